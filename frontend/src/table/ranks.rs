//! Each row's rank in the gallery's order, as counted the last time, so that a search page
//! puts its matches in title order by a number read from one array, instead of comparing
//! their titles.
//!
//! The order itself changes as rows come, go and are retitled; counting it again costs a walk
//! of every place (a few milliseconds at a million rows, under the table's write lock), so it
//! is done only once enough rows have moved. A row placed, retitled or dropped since the last
//! count is *unranked*: its old rank, if any, no longer says where it is, and a page compares
//! it by its title instead. The ranks of the others still order them as the order does (none
//! of them moved, and rows coming and going around them change no two ranks' comparison).

use std::time::{Duration, Instant};

use roaring::RoaringBitmap;

/// No rank: not in the order at the last count.
const NONE: u32 = u32::MAX;

pub struct Ranks {
    /// The rank of every row by its number, as last counted.
    of_row: Vec<u32>,
    /// The row of every rank, as last counted.
    row_of_rank: Vec<u32>,
    /// Rows placed, retitled or dropped since the last count.
    unranked: RoaringBitmap,
    /// Rows that may move before a count, whatever the table's size.
    recount_from: usize,
    /// When the ranks were last counted.
    counted_at: Instant,
}

impl Default for Ranks {
    fn default() -> Self {
        Ranks {
            of_row: Vec::new(),
            row_of_rank: Vec::new(),
            unranked: RoaringBitmap::new(),
            recount_from: 4096,
            counted_at: Instant::now(),
        }
    }
}

/// How long rows stay unranked at most while the table is quiet: a count then ranks them, so
/// that pages stop sorting them (after a new frontend's table is built from pages, up to a
/// thirty-second of the rows are left unranked, and every search sorted its share of them).
const SETTLE: Duration = Duration::from_secs(10);

/// Buckets of ranks a selection counts its matches in: few enough to count quickly, many
/// enough that the buckets holding the page are small.
const BUCKETS_LOG2: u32 = 12;

impl Ranks {
    /// Row `row`'s place changed (new, retitled, or dropped): its rank says nothing until the
    /// next count.
    pub fn moved(&mut self, row: u32) {
        self.unranked.insert(row);
    }

    /// The rows that moved since the last count.
    pub fn unranked(&self) -> &RoaringBitmap {
        &self.unranked
    }

    /// Whether enough rows moved (of `len` placed) that a count pays: each search page sorts
    /// the unranked among its matches by title, so they are kept to a small share of the
    /// rows; a count walks every place.
    pub fn stale(&self, len: usize) -> bool {
        self.unranked.len() as usize > (len / 32).max(self.recount_from)
    }

    /// Whether some rows are unranked and the last count is old enough that counting again is
    /// worth its walk while nothing else is asked of the table.
    pub fn settle(&self) -> bool {
        !self.unranked.is_empty() && self.counted_at.elapsed() >= SETTLE
    }

    /// Counts again once more than `rows` moved, at any size (tests mix ranked and unranked
    /// rows with it).
    #[cfg(test)]
    pub fn recount_from(&mut self, rows: usize) {
        self.recount_from = rows;
    }

    /// Counts again: `rows` gives every placed row's number, in the order.
    pub fn count(&mut self, rows: usize, order: impl Iterator<Item = u32>) {
        self.of_row.clear();
        self.of_row.resize(rows, NONE);
        self.row_of_rank.clear();
        for row in order {
            if let Some(slot) = self.of_row.get_mut(row as usize) {
                *slot = self.row_of_rank.len() as u32;
                self.row_of_rank.push(row);
            }
        }
        self.unranked.clear();
        self.counted_at = Instant::now();
    }

    /// The ranks of the rows of `rows` not unranked: the same rows, named by their places in
    /// the order as last counted, so that a page of them is a slice of this bitmap
    /// ([`Ranks::select_ranked`]) instead of a selection among all of them.
    pub fn to_ranks(&self, rows: &RoaringBitmap) -> RoaringBitmap {
        let ranked = rows - &self.unranked;
        let ranks = ranked
            .iter()
            .filter_map(|n| self.of_row.get(n as usize).copied())
            .filter(|&r| r != NONE);
        if ranked.len() < 4096 {
            let mut few: Vec<u32> = ranks.collect();
            few.sort_unstable();
            return RoaringBitmap::from_sorted_iter(few).unwrap_or_default();
        }
        // Many: set as bits, read in one pass (sorting them cost more than the bits' memory).
        let mut bits = vec![0u8; self.row_of_rank.len().div_ceil(8)];
        for r in ranks {
            bits[r as usize / 8] |= 1 << (r % 8);
        }
        RoaringBitmap::from_lsb0_bytes(0, &bits)
    }

    /// The rows at places `from..to` of `ranked`, ranks as [`Ranks::to_ranks`] gives them.
    pub fn select_ranked(&self, ranked: &RoaringBitmap, from: usize, to: usize) -> Vec<u32> {
        let Some(first) = u32::try_from(from).ok().and_then(|f| ranked.select(f)) else {
            return Vec::new();
        };
        ranked
            .range(first..)
            .take(to.saturating_sub(from))
            .filter_map(|r| self.row_of_rank.get(r as usize).copied())
            .collect()
    }

    /// The rows of `ranked` (none of them unranked) at places `from..to` when ordered by rank.
    /// One pass over `ranked` reads each one's rank and counts it in its bucket of ranks;
    /// the buckets holding those places are then found, and only their rows sorted.
    pub fn select(&self, ranked: &RoaringBitmap, from: usize, to: usize) -> Vec<u32> {
        let to = to.min(ranked.len() as usize);
        if from >= to {
            return Vec::new();
        }
        let bits = u32::BITS - (self.of_row.len() as u32).leading_zeros();
        let shift = bits.saturating_sub(BUCKETS_LOG2);
        let buckets = (self.of_row.len() >> shift) + 2;
        let bucket = |r: u32| (r as usize >> shift).min(buckets - 1);
        let mut counts = vec![0usize; buckets];
        let all: Vec<(u32, u32)> = ranked
            .iter()
            .map(|n| {
                let r = self.of_row.get(n as usize).copied().unwrap_or(NONE);
                counts[bucket(r)] += 1;
                (r, n)
            })
            .collect();
        // The buckets holding places `from` and `to - 1`, and the places before the first.
        let (mut before, mut seen, mut first) = (0, 0, None);
        let mut last = buckets - 1;
        for (b, &c) in counts.iter().enumerate() {
            if first.is_none() && seen + c > from {
                first = Some(b);
                before = seen;
            }
            seen += c;
            if seen >= to {
                last = b;
                break;
            }
        }
        let first = first.unwrap_or(last);
        let mut held: Vec<(u32, u32)> = all
            .into_iter()
            .filter(|&(r, _)| (first..=last).contains(&bucket(r)))
            .collect();
        held.sort_unstable();
        held.into_iter()
            .skip(from - before)
            .take(to - from)
            .map(|(_, n)| n)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// The rows selected are those a sort of every row by rank puts at those places.
        #[test]
        fn a_selection_is_a_slice_of_the_rows_sorted_by_rank(
            order in (1usize..20_000).prop_flat_map(|n| {
                (Just(n), proptest::sample::subsequence((0..n as u32).collect::<Vec<_>>(), 0..n.min(3000)))
            }),
            shuffle in any::<u64>(),
            from in 0usize..3100,
            width in 0usize..400,
        ) {
            let (rows, picked) = order;
            // The rows placed in an order of their own: a fixed shuffle of their numbers.
            let mut placed: Vec<u32> = (0..rows as u32).collect();
            let mut s = shuffle | 1;
            for i in (1..placed.len()).rev() {
                s ^= s << 13; s ^= s >> 7; s ^= s << 17;
                placed.swap(i, (s % (i as u64 + 1)) as usize);
            }
            let mut ranks = Ranks::default();
            ranks.count(rows, placed.iter().copied());
            let matches: RoaringBitmap = picked.iter().copied().collect();
            let mut by_rank: Vec<u32> = matches.iter().collect();
            by_rank.sort_by_key(|&n| ranks.of_row[n as usize]);
            let want: Vec<u32> = by_rank.iter().copied().skip(from).take(width).collect();
            prop_assert_eq!(ranks.select(&matches, from, from + width), want);
        }
    }

    #[test]
    fn a_count_forgets_what_moved_and_ranks_only_the_rows_placed() {
        let mut ranks = Ranks::default();
        ranks.moved(3);
        ranks.moved(5);
        assert_eq!(ranks.unranked().len(), 2);
        assert!(!ranks.stale(1000));
        ranks.count(6, [4, 0, 2].into_iter());
        assert!(ranks.unranked().is_empty());
        assert_eq!(ranks.of_row, vec![1, NONE, 2, NONE, 0, NONE]);
        let all: RoaringBitmap = [0, 2, 4].into_iter().collect();
        assert_eq!(ranks.select(&all, 0, 3), vec![4, 0, 2]);
        assert_eq!(ranks.select(&all, 1, 9), vec![0, 2]);
        assert_eq!(ranks.select(&all, 3, 4), Vec::<u32>::new());
    }
}
