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

    /// Adds `place`; false if it was already there.
    pub fn insert(&mut self, place: T) -> bool {
        if self.blocks.is_empty() {
            self.blocks.push(Vec::with_capacity(BLOCK));
        }
        let b = self.block_of(&place);
        let block = &mut self.blocks[b];
        let Err(at) = block.binary_search(&place) else {
            return false;
        };
        block.insert(at, place);
        self.len += 1;
        if block.len() > 2 * BLOCK {
            let upper = block.split_off(BLOCK);
            self.blocks.insert(b + 1, upper);
        }
        true
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
                    prop_assert_eq!(sorted.insert(v), set.insert(v));
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

    #[test]
    fn many_places_make_many_blocks_and_few_go_back_to_one() {
        let mut sorted = Sorted::default();
        for v in (0..20_000u32).rev() {
            sorted.insert(v);
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
