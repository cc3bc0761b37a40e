//! The gallery's order: every row's place, sorted, in blocks of a few hundred to a few
//! thousand. A page at any depth is found by counting blocks (a thousand of them at a
//! million rows), not by walking every place before it; a row that comes or goes moves at
//! most one block's places. A `BTreeSet` keeps the order too, but cannot say where its n-th
//! entry is without walking to it.

/// Places in ascending order, cut into blocks of at most `2 * BLOCK`.
#[derive(Debug)]
pub struct Sorted<T> {
    blocks: Vec<Vec<T>>,
    len: usize,
}

/// A block's usual size: big enough that the blocks of a million places are few to count,
/// small enough that an insert shifts little.
const BLOCK: usize = 1024;

impl<T> Default for Sorted<T> {
    fn default() -> Self {
        Sorted {
            blocks: Vec::new(),
            len: 0,
        }
    }
}

impl<T: Ord> Sorted<T> {
    pub fn len(&self) -> usize {
        self.len
    }

    /// The block `place` belongs in: the first whose last place is not below it (or the last).
    fn block_of(&self, place: &T) -> usize {
        let b = self
            .blocks
            .partition_point(|block| block.last().is_some_and(|last| last < place));
        b.min(self.blocks.len().saturating_sub(1))
    }

    /// Adds every place of `batch` (a catalog page's new rows) at once; returns how many were
    /// not there yet. Each block they fall in is rebuilt once, where inserting them one by one
    /// shifted it once per place: at a million rows that shifting was a fifth of building a
    /// frontend's table.
    pub fn insert_many(&mut self, mut batch: Vec<T>) -> usize {
        if batch.is_empty() {
            return 0;
        }
        batch.sort_unstable();
        batch.dedup();
        if self.blocks.is_empty() {
            self.blocks.push(Vec::new());
        }
        let old = std::mem::take(&mut self.blocks);
        let last = old.len() - 1;
        let mut rest = batch.into_iter().peekable();
        let mut added = 0;
        for (i, block) in old.into_iter().enumerate() {
            // This block's share: up to its last place (the last block takes the rest).
            let mut mine = Vec::new();
            while let Some(place) =
                rest.next_if(|p| i == last || block.last().is_some_and(|l| p <= l))
            {
                mine.push(place);
            }
            if mine.is_empty() {
                self.blocks.push(block);
                continue;
            }
            // Where each new place goes, found before the block is taken apart.
            let mut cursor = 0;
            let spots: Vec<(usize, bool)> = mine
                .iter()
                .map(|p| {
                    cursor += block[cursor..].partition_point(|q| q < p);
                    (cursor, block.get(cursor) == Some(p))
                })
                .collect();
            let mut merged = Vec::with_capacity(block.len() + mine.len());
            let mut kept = block.into_iter();
            let mut taken = 0;
            for ((at, there), place) in spots.into_iter().zip(mine) {
                merged.extend(kept.by_ref().take(at - taken));
                taken = at;
                if !there {
                    merged.push(place);
                    added += 1;
                }
            }
            merged.extend(kept);
            self.push_cut(merged);
        }
        self.len += added;
        added
    }

    /// Appends `places` as blocks of `BLOCK` to `2 * BLOCK` (or one smaller block).
    fn push_cut(&mut self, places: Vec<T>) {
        if places.len() <= 2 * BLOCK {
            self.blocks.push(places);
            return;
        }
        let parts = places.len() / BLOCK;
        let (size, longer) = (places.len() / parts, places.len() % parts);
        let mut them = places.into_iter();
        for part in 0..parts {
            let take = size + usize::from(part < longer);
            self.blocks.push(them.by_ref().take(take).collect());
        }
    }

    /// Takes `place` out; false if it was not there.
    pub fn remove(&mut self, place: &T) -> bool {
        if self.blocks.is_empty() {
            return false;
        }
        let b = self.block_of(place);
        let block = &mut self.blocks[b];
        let Ok(at) = block.binary_search(place) else {
            return false;
        };
        block.remove(at);
        self.len -= 1;
        if block.is_empty() {
            self.blocks.remove(b);
        } else if block.len() < BLOCK / 4 && b + 1 < self.blocks.len() {
            // A small block joins the next one, so that the blocks stay few to count.
            let next = self.blocks.remove(b + 1);
            self.blocks[b].extend(next);
            if self.blocks[b].len() > 2 * BLOCK {
                let upper = self.blocks[b].split_off(BLOCK);
                self.blocks.insert(b + 1, upper);
            }
        }
        true
    }

    /// The places from the `first`-th (from 0) on, in order.
    pub fn iter_from(&self, first: usize) -> impl Iterator<Item = &T> + '_ {
        let mut skip = first;
        let mut b = 0;
        while b < self.blocks.len() && skip >= self.blocks[b].len() {
            skip -= self.blocks[b].len();
            b += 1;
        }
        self.blocks
            .get(b..)
            .unwrap_or_default()
            .iter()
            .enumerate()
            .flat_map(move |(i, block)| block[if i == 0 { skip } else { 0 }..].iter())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    proptest! {
        /// Whatever comes and goes, the blocks hold what a BTreeSet holds, in its order,
        /// and a walk from any depth starts at the place a walk from the start would reach.
        #[test]
        fn the_blocks_keep_what_a_btreeset_keeps(
            steps in proptest::collection::vec((any::<bool>(), 0u32..6000), 0..6000),
            from in 0usize..7000,
        ) {
            let mut sorted = Sorted::default();
            let mut set = BTreeSet::new();
            for (add, v) in steps {
                if add {
                    prop_assert_eq!(sorted.insert_many(vec![v]) == 1, set.insert(v));
                } else {
                    prop_assert_eq!(sorted.remove(&v), set.remove(&v));
                }
            }
            prop_assert_eq!(sorted.len(), set.len());
            let all: Vec<u32> = sorted.iter_from(0).copied().collect();
            prop_assert_eq!(&all, &set.iter().copied().collect::<Vec<_>>());
            let deep: Vec<u32> = sorted.iter_from(from).copied().collect();
            prop_assert_eq!(&deep[..], all.get(from..).unwrap_or_default());
        }
    }

    proptest! {
        /// Places added a batch at a time end where one at a time would put them.
        #[test]
        fn batches_land_where_single_places_would(
            batches in proptest::collection::vec(proptest::collection::vec(0u32..9000, 0..3000), 0..6),
            removed in proptest::collection::vec(0u32..9000, 0..2000),
            from in 0usize..9000,
        ) {
            let mut sorted = Sorted::default();
            let mut set = BTreeSet::new();
            for batch in batches {
                let new = batch.iter().filter(|v| !set.contains(*v)).collect::<BTreeSet<_>>().len();
                set.extend(batch.iter().copied());
                prop_assert_eq!(sorted.insert_many(batch), new);
                prop_assert!(sorted.blocks.iter().all(|b| !b.is_empty() && b.len() <= 2 * BLOCK));
            }
            for v in &removed {
                prop_assert_eq!(sorted.remove(v), set.remove(v));
            }
            prop_assert_eq!(sorted.len(), set.len());
            let all: Vec<u32> = sorted.iter_from(0).copied().collect();
            prop_assert_eq!(&all, &set.iter().copied().collect::<Vec<_>>());
            let deep: Vec<u32> = sorted.iter_from(from).copied().collect();
            prop_assert_eq!(&deep[..], all.get(from..).unwrap_or_default());
        }
    }

    #[test]
    fn many_places_make_many_blocks_and_few_go_back_to_one() {
        let mut sorted = Sorted::default();
        for v in (0..20_000u32).rev() {
            sorted.insert_many(vec![v]);
        }
        assert!(sorted.blocks.len() >= 20_000 / (2 * BLOCK));
        assert!(sorted.blocks.iter().all(|b| b.len() <= 2 * BLOCK));
        assert_eq!(sorted.iter_from(12_345).next(), Some(&12_345));
        for v in 10..20_000u32 {
            sorted.remove(&v);
        }
        assert_eq!(sorted.iter_from(0).count(), 10);
        assert_eq!(sorted.blocks.len(), 1);
        assert_eq!(sorted.iter_from(10).next(), None);
    }
}
