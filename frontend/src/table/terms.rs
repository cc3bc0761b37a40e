//! The bitmaps of the terms searched lately (`index::Term`: a word's beginning, a year, a
//! decade...), kept from one search to the next, each also with its rows named by rank
//! (`Ranks::to_ranks`), so that a search for common words takes its page as a slice of ranks
//! instead of ranking every match again; and the answers of the searches whose pages were
//! cut from ranks, so that the next page of one is a slice at once.
//!
//! At a million rows a common word is in a tenth of them: putting its matches in title order
//! read each one's rank and sorted the page's share (half of a search's time), and the union of
//! its words' bitmaps was a seventh. Both are now done once per term until the table changes.
//!
//! What is kept is only ever a copy: it is forgotten at every change of the index or of the
//! ranks (`Terms::forget`, under the table's write lock), so a search never reads a bitmap older
//! than the rows it names; and it is bounded ([`BUDGET`]): a visitor asking for ever new words
//! costs what the search cost before, not memory.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use roaring::RoaringBitmap;

use super::index::{Index, Term};
use super::ranks::Ranks;

/// Bytes of bitmaps kept at most (counted as serialized): past it, all is forgotten and kept
/// again as searches ask. A common word's two bitmaps at a million rows take about 250 KB.
const BUDGET: usize = 64 << 20;

#[derive(Default)]
pub struct Terms {
    kept: Mutex<Kept>,
}

#[derive(Default)]
struct Kept {
    terms: HashMap<Term, Arc<TermRows>>,
    /// Answers whose pages were cut from ranks: the next page of the same search (a visitor
    /// paging on, or the same words asked again) is cut from them at once.
    answers: HashMap<Asked, Arc<Answer>>,
    bytes: usize,
}

impl Kept {
    /// Room for `bytes` more: past the budget, everything is forgotten.
    fn make_room(&mut self, bytes: usize) {
        if self.bytes + bytes > BUDGET {
            *self = Kept::default();
        }
        self.bytes += bytes;
    }
}

/// What a search asks of the index, as a key: the terms of its matches (`index::Plan`), and
/// of its first part, the matches whose title holds every word (best first).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Asked {
    pub all: Vec<Vec<Term>>,
    pub titles: Option<Vec<Vec<Term>>>,
}

/// A search's answer: its matches and their first part by number, and each part by rank once a
/// page was cut from it.
pub struct Answer {
    pub matches: RoaringBitmap,
    /// The matches whose title holds every word, when they come first.
    pub titled: Option<RoaringBitmap>,
    /// By rank: all of the matches, the first part, the rest (`Tier` as a number).
    pub by_rank: [OnceLock<RoaringBitmap>; 3],
}

impl Answer {
    pub fn new(matches: RoaringBitmap, titled: Option<RoaringBitmap>) -> Answer {
        Answer {
            matches,
            titled,
            by_rank: Default::default(),
        }
    }

    fn size(&self) -> usize {
        let by_number = self.matches.serialized_size()
            + self
                .titled
                .as_ref()
                .map_or(0, RoaringBitmap::serialized_size);
        let by_rank: usize = self
            .by_rank
            .iter()
            .filter_map(|b| b.get().map(RoaringBitmap::serialized_size))
            .sum();
        by_number + by_rank
    }
}

/// A term's rows, by number and (once asked) by rank.
struct TermRows {
    rows: RoaringBitmap,
    ranked: OnceLock<RoaringBitmap>,
    /// How many searches asked for it since it was kept.
    asked: AtomicU32,
}

impl TermRows {
    /// The rows by rank (the unranked left out), made at the first asking.
    fn ranked(&self, ranks: &Ranks) -> &RoaringBitmap {
        self.ranked.get_or_init(|| ranks.to_ranks(&self.rows))
    }
}

impl Terms {
    /// Forgets every term: the index or the ranks changed.
    pub fn forget(&mut self) {
        let kept = self.kept.get_mut().unwrap_or_else(|e| e.into_inner());
        if kept.bytes > 0 {
            *kept = Kept::default();
        }
    }

    /// The rows of `term`, kept or taken from `index` and kept.
    fn get(&self, index: &Index, term: &Term) -> Arc<TermRows> {
        let lock = || self.kept.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(held) = lock().terms.get(term) {
            held.asked.fetch_add(1, Ordering::Relaxed);
            return held.clone();
        }
        // Taken outside the lock: another search may take the same meanwhile, and one of
        // the two copies is kept.
        let held = Arc::new(TermRows {
            rows: index.rows(term).into_owned(),
            ranked: OnceLock::new(),
            asked: AtomicU32::new(1),
        });
        // The ranked copy is about as large as the rows.
        let bytes = 2 * held.rows.serialized_size() + term_size(term);
        let mut kept = lock();
        kept.make_room(bytes);
        kept.terms
            .entry(term.clone())
            .or_insert_with(|| held.clone())
            .clone()
    }

    /// Whether `term` was asked for before: naming its rows by rank costs a pass over them,
    /// more than a selection among a search's matches (fewer than the term's), so it is done
    /// for the terms asked again; one asked once is selected among, as without kept bitmaps.
    pub fn asked_again(&self, term: &Term) -> bool {
        let kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
        kept.terms
            .get(term)
            .is_some_and(|held| held.asked.load(Ordering::Relaxed) > 1)
    }

    /// The answer kept for `asked`, if any.
    pub fn answer(&self, asked: &Asked) -> Option<Arc<Answer>> {
        let kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
        kept.answers.get(asked).cloned()
    }

    /// Keeps `answer` for the next search that asks the same.
    pub fn keep(&self, asked: Asked, answer: Arc<Answer>) {
        let mut kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
        kept.make_room(answer.size() + std::mem::size_of::<Asked>());
        kept.answers.insert(asked, answer);
    }

    pub fn by_number(&self, index: &Index, term: &Term) -> ByNumber {
        ByNumber(self.get(index, term))
    }

    pub fn by_rank<'r>(&self, index: &Index, ranks: &'r Ranks, term: &Term) -> ByRank<'r> {
        ByRank(self.get(index, term), ranks)
    }

    /// How many answers are kept.
    #[cfg(test)]
    pub fn answers(&self) -> usize {
        self.kept.lock().map_or(0, |k| k.answers.len())
    }
}

fn term_size(term: &Term) -> usize {
    std::mem::size_of::<Term>()
        + match term {
            Term::Beginning { start, .. } | Term::Holding(start) => start.len(),
            _ => 0,
        }
}

/// A term's rows by number, as [`super::index::combine`] takes them.
pub struct ByNumber(Arc<TermRows>);

impl std::ops::Deref for ByNumber {
    type Target = RoaringBitmap;
    fn deref(&self) -> &RoaringBitmap {
        &self.0.rows
    }
}

/// A term's rows by rank, as [`super::index::combine`] takes them.
pub struct ByRank<'r>(Arc<TermRows>, &'r Ranks);

impl std::ops::Deref for ByRank<'_> {
    type Target = RoaringBitmap;
    fn deref(&self) -> &RoaringBitmap {
        self.0.ranked(self.1)
    }
}
