//! The search index: for every word of the searched fields (title, artist, date,
//! description, keywords), the rows that hold it, and for every year the rows of that year,
//! each as a compressed bitmap of row numbers. A search asks it which rows may match,
//! instead of reading every row.
//!
//! It answers for rows only by their numbers: a frontend that one day asks a search service
//! instead would replace this module and keep the table.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::ops::Bound;

use roaring::{MultiOps, RoaringBitmap};

use super::packed::PackedMeta;
use super::words::{is_word_and_sign, lower, words, words_and_signs};
use super::Query;

#[derive(Default)]
pub struct Index {
    /// Each word, in lower case, and the rows whose searched fields hold it; and of those,
    /// the rows whose title holds it (a search ranks first the rows whose title holds every
    /// word asked).
    words: BTreeMap<Box<str>, Rows>,
    years: BTreeMap<i32, RoaringBitmap>,
    /// The same rows by decade and by century: a range of years is the union of a few of
    /// these and of the years at its ends, not of every year in it (at a million rows, a
    /// search for 1450 to 2000 took the union of 550 years' rows, a third of search's time).
    decades: BTreeMap<i32, RoaringBitmap>,
    centuries: BTreeMap<i32, RoaringBitmap>,
}

/// One bitmap of the index that a search combines with others. A search is a [`Plan`] of
/// terms, so that the bitmaps of the terms asked often can be kept between searches
/// (`super::terms`), each built once instead of once per search.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Term {
    /// The rows holding a word that begins with `start` (in their title, when `titled`).
    Beginning {
        start: Box<str>,
        titled: bool,
    },
    /// The rows holding exactly this word with its sign ("no.").
    Holding(Box<str>),
    Year(i32),
    /// Years divided by 10, by 100.
    Decade(i32),
    Century(i32),
}

impl Term {
    fn beginning(start: &str, titled: bool) -> Term {
        Term::Beginning {
            start: start.into(),
            titled,
        }
    }
}

/// What a query asks of the index: the rows in every one of `all`, each the union of its
/// terms (a union of none holds no row).
#[derive(Debug)]
pub struct Plan {
    pub all: Vec<Vec<Term>>,
    /// Whether every row of them matches, without reading it.
    pub exact: bool,
}

/// The rows in every one of `all`, each the union of its terms' rows as `rows_of` gives
/// them; None when `all` is empty (nothing asked).
pub fn combine<B: std::ops::Deref<Target = RoaringBitmap>>(
    all: &[Vec<Term>],
    mut rows_of: impl FnMut(&Term) -> B,
) -> Option<RoaringBitmap> {
    let mut sets: Vec<RoaringBitmap> = all
        .iter()
        .map(|any| {
            let held: Vec<B> = any.iter().map(&mut rows_of).collect();
            held.iter().map(|b| &**b).union()
        })
        .collect();
    // The smallest first, so the intersection shrinks at once.
    sets.sort_by_key(RoaringBitmap::len);
    sets.into_iter().reduce(|a, b| a & b)
}

/// The rows of one word, and which of them hold it in their title. Most words of a
/// collection are in one row only (a number, a name): a bitmap for each of them was a tenth of
/// a frontend's memory at a million images. The title's rows are kept here rather than in a
/// map of their own, which would cost a key for every word of every title again.
enum Rows {
    One { row: u32, titled: bool },
    Many(Box<ManyRows>),
}

struct ManyRows {
    all: RoaringBitmap,
    titled: RoaringBitmap,
}

impl Rows {
    fn new(row: u32, titled: bool) -> Rows {
        Rows::One { row, titled }
    }

    fn insert(&mut self, row: u32, in_title: bool) {
        match self {
            Rows::One { row: one, titled } if *one == row => *titled |= in_title,
            Rows::One { row: one, titled } => {
                let titled = [(*one, *titled), (row, in_title)]
                    .into_iter()
                    .filter_map(|(r, t)| t.then_some(r));
                *self = Rows::Many(Box::new(ManyRows {
                    all: RoaringBitmap::from_iter([*one, row]),
                    titled: RoaringBitmap::from_iter(titled),
                }));
            }
            Rows::Many(rows) => {
                rows.all.insert(row);
                if in_title {
                    rows.titled.insert(row);
                }
            }
        }
    }

    /// Takes `row` out; true when no row is left.
    fn remove(&mut self, row: u32) -> bool {
        match self {
            Rows::One { row: one, .. } => *one == row,
            Rows::Many(rows) => {
                rows.all.remove(row);
                rows.titled.remove(row);
                if rows.all.len() == 1 {
                    let one = rows.all.min().unwrap_or(row);
                    *self = Rows::new(one, rows.titled.contains(one));
                }
                false
            }
        }
    }
}

/// The distinct words of a row's title.
fn title_words(meta: &PackedMeta) -> Vec<String> {
    let lowered = lower(meta.title());
    let mut all: Vec<String> = words(&lowered).map(str::to_string).collect();
    all.sort_unstable();
    all.dedup();
    all
}

/// The rows of `held` holding a word that begins with `start` (in their title only, when
/// `titled`).
fn beginning(held: &BTreeMap<Box<str>, Rows>, start: &str, titled: bool) -> RoaringBitmap {
    let mut ones = RoaringBitmap::new();
    let mut many = Vec::new();
    for (_, rows) in held
        .range::<str, _>((Bound::Included(start), Bound::Unbounded))
        .take_while(|(w, _)| w.starts_with(start))
    {
        match rows {
            Rows::One { row, titled: t } => {
                if *t || !titled {
                    ones.insert(*row);
                }
            }
            Rows::Many(rows) if titled => many.push(&rows.titled),
            Rows::Many(rows) => many.push(&rows.all),
        }
    }
    many.push(&ones);
    many.union()
}

/// The distinct words of a row's searched fields, and each with the sign after it.
fn words_of(meta: &PackedMeta) -> Vec<String> {
    let mut all = Vec::new();
    for field in meta.searched() {
        let lowered = lower(field);
        all.extend(words_and_signs(&lowered).map(str::to_string));
    }
    all.sort_unstable();
    all.dedup();
    all
}

/// The first and last unit of `size` years (a decade, a century) wholly within `a..=b`, as
/// keys (year divided by `size`, rounded down); the first is past the last when there is none.
fn whole_units(a: i64, b: i64, size: i64) -> (i64, i64) {
    (-(-a).div_euclid(size), (b + 1).div_euclid(size) - 1)
}

/// Adds to `parts` the terms of `held`'s keys `a..=b` (none when `a > b`), each made by `term`.
fn keys_between(
    held: &BTreeMap<i32, RoaringBitmap>,
    a: i64,
    b: i64,
    term: fn(i32) -> Term,
    parts: &mut Vec<Term>,
) {
    if a <= b {
        // Within the years held (or their tenths or hundredths): they fit an i32.
        let (a, b) = (a as i32, b as i32);
        parts.extend(held.range(a..=b).map(|(&k, _)| term(k)));
    }
}

impl Index {
    /// Adds rows with their metadata and years, as many as a catalog page brings at once:
    /// each word is looked up once for all the rows holding it (one at a time, the lookups
    /// and the bitmaps they reach were a fifth of building a frontend's table).
    pub fn add_many<'a>(
        &mut self,
        rows: impl IntoIterator<Item = (u32, &'a PackedMeta, Option<i32>)>,
    ) {
        let mut by_word: HashMap<String, Vec<(u32, bool)>> = HashMap::new();
        for (row, meta, year) in rows {
            let title = title_words(meta);
            for word in words_of(meta) {
                let in_title = title.binary_search(&word).is_ok();
                by_word.entry(word).or_default().push((row, in_title));
            }
            if let Some(year) = year {
                for (held, at) in self.year_maps(year) {
                    held.entry(at).or_default().insert(row);
                }
            }
        }
        for (word, rows) in by_word {
            match self.words.get_mut(word.as_str()) {
                Some(held) => rows.into_iter().for_each(|(row, t)| held.insert(row, t)),
                None => {
                    let mut held = Rows::new(rows[0].0, rows[0].1);
                    rows[1..].iter().for_each(|&(row, t)| held.insert(row, t));
                    self.words.insert(word.into_boxed_str(), held);
                }
            }
        }
    }

    /// Takes out what [`Index::add_many`] put in for the same row, metadata and year.
    pub fn remove(&mut self, row: u32, meta: &PackedMeta, year: Option<i32>) {
        for word in words_of(meta) {
            if self
                .words
                .get_mut(word.as_str())
                .is_some_and(|rows| rows.remove(row))
            {
                self.words.remove(word.as_str());
            }
        }
        if let Some(year) = year {
            for (held, at) in self.year_maps(year) {
                if let Some(rows) = held.get_mut(&at) {
                    rows.remove(row);
                    if rows.is_empty() {
                        held.remove(&at);
                    }
                }
            }
        }
    }

    /// The maps a year's rows are in: by year, by decade, by century; each with its key.
    fn year_maps(&mut self, year: i32) -> [(&mut BTreeMap<i32, RoaringBitmap>, i32); 3] {
        [
            (&mut self.years, year),
            (&mut self.decades, year.div_euclid(10)),
            (&mut self.centuries, year.div_euclid(100)),
        ]
    }

    /// The terms of the years `from..=to` (either end open): whole centuries, then whole
    /// decades, then single years at the ends.
    fn year_terms(&self, from: Option<i32>, to: Option<i32>) -> Vec<Term> {
        let (Some((&first, _)), Some((&last, _))) =
            (self.years.first_key_value(), self.years.last_key_value())
        else {
            return Vec::new();
        };
        let lo = i64::from(from.map_or(first, |f| f.max(first)));
        let hi = i64::from(to.map_or(last, |t| t.min(last)));
        let mut parts = Vec::new();
        let mut ends = Vec::new();
        let (c0, c1) = whole_units(lo, hi, 100);
        if c0 <= c1 {
            keys_between(&self.centuries, c0, c1, Term::Century, &mut parts);
            ends.extend([(lo, c0 * 100 - 1), ((c1 + 1) * 100, hi)]);
        } else {
            ends.push((lo, hi));
        }
        for (a, b) in ends {
            let (d0, d1) = whole_units(a, b, 10);
            if d0 <= d1 {
                keys_between(&self.decades, d0, d1, Term::Decade, &mut parts);
                keys_between(&self.years, a, d0 * 10 - 1, Term::Year, &mut parts);
                keys_between(&self.years, (d1 + 1) * 10, b, Term::Year, &mut parts);
            } else {
                keys_between(&self.years, a, b, Term::Year, &mut parts);
            }
        }
        parts
    }

    /// The rows of the years `from..=to` (either end open).
    #[cfg(test)]
    fn years_between(&self, from: Option<i32>, to: Option<i32>) -> RoaringBitmap {
        combine(&[self.year_terms(from, to)], |t| self.rows(t)).unwrap_or_default()
    }

    /// The rows of `term`.
    pub fn rows(&self, term: &Term) -> Cow<'_, RoaringBitmap> {
        let (held, at) = match term {
            Term::Beginning { start, titled } => {
                return Cow::Owned(beginning(&self.words, start, *titled))
            }
            Term::Holding(word) => return self.holding(word),
            Term::Year(y) => (&self.years, y),
            Term::Decade(d) => (&self.decades, d),
            Term::Century(c) => (&self.centuries, c),
        };
        held.get(at)
            .map_or_else(|| Cow::Owned(RoaringBitmap::new()), Cow::Borrowed)
    }

    /// The rows holding `word` itself.
    fn holding(&self, word: &str) -> Cow<'_, RoaringBitmap> {
        match self.words.get(word) {
            Some(Rows::One { row, .. }) => Cow::Owned(RoaringBitmap::from_iter([*row])),
            Some(Rows::Many(rows)) => Cow::Borrowed(&rows.all),
            None => Cow::Owned(RoaringBitmap::new()),
        }
    }

    /// The rows whose title holds a word beginning with each word of `query` (with their
    /// signs left out), or None when the query asks for no words.
    pub fn title_plan(&self, query: &Query) -> Option<Vec<Vec<Term>>> {
        let starts: HashSet<&str> = query.words.iter().flat_map(|w| words(w)).collect();
        let all: Vec<Vec<Term>> = starts
            .into_iter()
            .map(|start| vec![Term::beginning(start, true)])
            .collect();
        (!all.is_empty()).then_some(all)
    }

    /// The rows that may match `query`, or None when it asks for nothing the index holds (no
    /// words but signs, no years): every row matches.
    pub fn plan(&self, query: &Query) -> Option<Plan> {
        let mut exact = true;
        let mut all = Vec::new();
        let mut starts = HashSet::new();
        for word in &query.words {
            if words(word).next() == Some(word.as_str()) {
                // Letters and digits only: the rows holding a word that begins with it.
                starts.insert(word.as_str());
            } else if is_word_and_sign(word) {
                // A word and its sign ("no."): the rows holding exactly that.
                all.push(vec![Term::Holding(word.as_str().into())]);
            } else {
                // Any other: a superset, each row of it read.
                exact = false;
                starts.extend(words(word));
            }
        }
        if !query.artist.is_empty() {
            exact = false; // the artist's words must be in the artist field
            starts.extend(words(&query.artist));
        }
        all.extend(
            starts
                .into_iter()
                .map(|start| vec![Term::beginning(start, false)]),
        );
        if query.from_year.is_some() || query.to_year.is_some() {
            let backwards = query.from_year > query.to_year && query.to_year.is_some();
            all.push(if backwards {
                Vec::new()
            } else {
                self.year_terms(query.from_year, query.to_year)
            });
        }
        (!all.is_empty()).then_some(Plan { all, exact })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// A range of years taken by centuries, decades and single years holds the rows of
        /// every year in it and no other, whatever came and went.
        #[test]
        fn a_range_of_years_holds_the_rows_of_every_year_in_it(
            years in proptest::collection::vec(proptest::option::of(1290i32..2110), 0..300),
            from in proptest::option::of(1250i32..2150),
            to in proptest::option::of(1250i32..2150),
            removed in proptest::collection::vec(0usize..300, 0..60),
        ) {
            let mut index = Index::default();
            let meta = PackedMeta::pack(&cluster::ImageMeta::default());
            index.add_many(years.iter().enumerate().map(|(row, y)| (row as u32, &meta, *y)));
            for &row in &removed {
                if let Some(year) = years.get(row) {
                    index.remove(row as u32, &meta, *year);
                }
            }
            let gone: HashSet<usize> = removed.into_iter().collect();
            let want: RoaringBitmap = years
                .iter()
                .enumerate()
                .filter(|(row, y)| {
                    !gone.contains(row)
                        && y.is_some_and(|y| from.is_none_or(|f| y >= f) && to.is_none_or(|t| y <= t))
                })
                .map(|(row, _)| row as u32)
                .collect();
            prop_assert_eq!(index.years_between(from, to), want);
        }
    }
}
