//! The lookup table: for every published image, its metadata and its replicas, and for every
//! backend, whether it answers and which of its disks have failed. It is built from the
//! backends' catalogs and health answers alone, so a restarted frontend rebuilds it in a second
//! or two, and it decides where a visitor is sent.

mod index;
mod order;
mod packed;
mod ranks;
mod terms;
mod words;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use cluster::{CatalogPage, ImageMeta, ReplicaState};
use roaring::RoaringBitmap;
use serde::Serialize;

use index::{combine, Index};
use order::Sorted;
use packed::PackedMeta;
use ranks::Ranks;
use terms::{Answer, Asked, Terms};

/// A backend as this frontend sees it.
#[derive(Debug)]
struct Backend {
    pub node: String,
    pub origin: String,
    pub up: bool,
    /// Why it is down, or what its last catalog fetch said when that failed.
    pub last_error: Option<String>,
    pub failed_disks: HashSet<String>,
    /// The name and version of its catalog this table holds.
    pub catalog: String,
    pub version: u64,
    /// Visitors sent to it by this frontend: the load it is spread by.
    pub redirects: Counted,
}

/// A count kept in several lanes, each on a cache line of its own, each thread adding to one:
/// the threads that answer redirects at once (one per core) would otherwise pass one line
/// back and forth at every answer. Each thread spreads its own visitors by its own lane's
/// counts, so the whole is spread as evenly.
#[derive(Debug, Default)]
struct Counted {
    lanes: [Lane; COUNTED_LANES],
}

const COUNTED_LANES: usize = 8;

#[derive(Debug, Default)]
#[repr(align(128))]
struct Lane(AtomicU64);

impl Counted {
    /// This thread's lane.
    fn lane() -> usize {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        thread_local! {
            static LANE: usize = (NEXT.fetch_add(1, Ordering::Relaxed) as usize) % COUNTED_LANES;
        }
        LANE.with(|lane| *lane)
    }

    fn of_lane(&self, lane: usize) -> u64 {
        self.lanes[lane].0.load(Ordering::Relaxed)
    }

    fn add(&self, lane: usize) {
        self.lanes[lane].0.fetch_add(1, Ordering::Relaxed);
    }

    fn total(&self) -> u64 {
        self.lanes.iter().map(|l| l.0.load(Ordering::Relaxed)).sum()
    }
}

/// A backend's record as `/health` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct BackendView {
    pub node: String,
    pub origin: String,
    pub up: bool,
    pub last_error: Option<String>,
    pub failed_disks: Vec<String>,
    pub catalog: String,
    pub version: u64,
    pub redirects: u64,
}

/// A replica as the table keeps it: its node and disk as numbers of [`Names`], and what its
/// state means here (12 bytes; its node's reasons stay with the node).
#[derive(Debug, Clone, Copy)]
struct Replica {
    node: u32,
    disk: u32,
    state: Kept,
}

/// A replica's state as a frontend uses it: to send visitors or not, and to count an image's
/// redundancy (`cluster::redundancy::classify`, which reads no reason).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kept {
    Ok,
    Suspect,
    Unreadable,
}

impl Kept {
    /// `None` for a replica gone from its node (removed, withdrawn): the table drops it.
    fn of(state: &ReplicaState) -> Option<Kept> {
        match state {
            ReplicaState::Ok => Some(Kept::Ok),
            ReplicaState::Suspect { .. } => Some(Kept::Suspect),
            ReplicaState::Unreadable { .. } => Some(Kept::Unreadable),
            ReplicaState::Removed | ReplicaState::Deleted { .. } => None,
        }
    }

    fn servable(self) -> bool {
        matches!(self, Kept::Ok | Kept::Suspect)
    }

    /// The node's state this stands for, as `classify` reads it.
    fn state(self) -> &'static ReplicaState {
        static OK: ReplicaState = ReplicaState::Ok;
        static SUSPECT: ReplicaState = ReplicaState::Suspect {
            reason: String::new(),
        };
        static UNREADABLE: ReplicaState = ReplicaState::Unreadable {
            reason: String::new(),
            since_ms: 0,
        };
        match self {
            Kept::Ok => &OK,
            Kept::Suspect => &SUSPECT,
            Kept::Unreadable => &UNREADABLE,
        }
    }
}

/// An image's replicas, two of them in the row itself: a redirect reads the row and has them,
/// with no further read elsewhere in memory (a third, a re-mirror's copy waiting for its trim,
/// goes to the heap).
type Replicas = smallvec::SmallVec<[Replica; 2]>;

/// A row's place in the gallery: its title in lower case, then its id; and its number.
/// `key` is the title's first 16 bytes, so that most comparisons end without reading the
/// title from elsewhere in memory (at a million rows, those reads were a quarter of building
/// the table): it orders as the title does, and equal keys leave it to the title.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Place {
    key: [u64; 2],
    title: Arc<str>,
    id: Arc<str>,
    row: u32,
}

impl Place {
    fn new(title: &str, id: Arc<str>, row: u32) -> Place {
        Place {
            key: title_key(title),
            title: Arc::from(title),
            id,
            row,
        }
    }
}

/// The first 16 bytes of `title`, zero after its end, as two big-endian numbers: they compare
/// as the bytes do, and a title that is a beginning of another has the smaller key or an
/// equal one.
fn title_key(title: &str) -> [u64; 2] {
    let mut bytes = [0u8; 16];
    let n = title.len().min(16);
    bytes[..n].copy_from_slice(&title.as_bytes()[..n]);
    let (high, low) = bytes.split_at(8);
    [
        u64::from_be_bytes(high.try_into().expect("8 bytes")),
        u64::from_be_bytes(low.try_into().expect("8 bytes")),
    ]
}

/// What an applied page leaves to do once its entries are read: rows to put in the gallery's
/// order and rows whose words to index, each done for the whole page at once.
#[derive(Default)]
struct Later {
    placed: Vec<Place>,
    indexed: Vec<u32>,
}

/// One image as the table keeps it, compact: a million of them must fit well under 1 GiB.
#[derive(Debug, Clone)]
struct Stored {
    /// Its title in lower case and its id, shared with its place in the gallery's order
    /// (whose title key is `Inner::title_keys`).
    title: Arc<str>,
    id: Arc<str>,
    meta: PackedMeta,
    replicas: Replicas,
    width: u32,
    height: u32,
    /// The year its date names, for searches by years.
    year: Option<i32>,
}

/// One image of the table, as pages show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub id: String,
    pub meta: ImageMeta,
    pub width: u32,
    pub height: u32,
}

impl Stored {
    fn row(&self) -> Row {
        Row {
            id: self.id.to_string(),
            meta: self.meta.unpack(),
            width: self.width,
            height: self.height,
        }
    }
}

/// Node and disk names, each kept once and named by its number in the rows.
#[derive(Default)]
struct Names {
    names: Vec<Arc<str>>,
    numbers: HashMap<Arc<str>, u32>,
}

impl Names {
    fn number(&mut self, name: &str) -> u32 {
        if let Some(&n) = self.numbers.get(name) {
            return n;
        }
        let n = self.names.len() as u32;
        let name: Arc<str> = Arc::from(name);
        self.names.push(name.clone());
        self.numbers.insert(name, n);
        n
    }

    fn name(&self, number: u32) -> &str {
        self.names.get(number as usize).map_or("", |n| n)
    }
}

/// Where to send a visitor.
#[derive(Debug, PartialEq, Eq)]
pub enum Choice {
    /// The origin of a healthy replica (`http://host:port`).
    Origin(String),
    /// The image exists, but no replica can be served now.
    Unavailable,
    Unknown,
}

/// What a gallery or search page asks for. Empty fields match everything.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Query {
    /// Words each of which must begin a word of the title, artist, date, description or
    /// keywords. A word of signs only ("-", "&") asks for nothing.
    pub words: Vec<String>,
    pub artist: String,
    pub from_year: Option<i32>,
    pub to_year: Option<i32>,
    pub order: Order,
}

/// The order of a search's results.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    /// By title, those whose title holds every word asked first (the title is what names a
    /// work: a search for "harbour" shows "The Harbour at Dawn" before a portrait whose
    /// description mentions a harbour). Without words: by title.
    #[default]
    BestFirst,
    /// By title only.
    Title,
}

impl Query {
    pub fn parse(q: &str, artist: &str, from: &str, to: &str) -> Query {
        let asks = |w: &String| words::words(w).next().is_some();
        let artist = artist.trim().to_lowercase();
        Query {
            words: q
                .split_whitespace()
                .map(str::to_lowercase)
                .filter(asks)
                .collect(),
            artist: if asks(&artist) { artist } else { String::new() },
            from_year: from.trim().parse().ok(),
            to_year: to.trim().parse().ok(),
            order: Order::default(),
        }
    }

    /// Whether it asks for nothing: every row matches.
    pub fn is_empty(&self) -> bool {
        self.words.is_empty()
            && self.artist.is_empty()
            && self.from_year.is_none()
            && self.to_year.is_none()
    }

    fn matches(&self, row: &Stored) -> bool {
        let asks = |w: &str| words::words(w).next().is_some();
        self.words.iter().all(|w| !asks(w) || row.meta.has_word(w))
            && (!asks(&self.artist) || words::begins_a_word(row.meta.artist(), &self.artist))
            && (self.from_year.is_none() && self.to_year.is_none()
                || row.year.is_some_and(|y| {
                    self.from_year.is_none_or(|f| y >= f) && self.to_year.is_none_or(|t| y <= t)
                }))
    }
}

/// The first run of 3 or 4 digits in a date ("c. 1650", "1503–1506", "1880s"), as a year.
fn year_of(date: &str) -> Option<i32> {
    let digits: String = date
        .chars()
        .skip_while(|c| !c.is_ascii_digit())
        .take_while(char::is_ascii_digit)
        .collect();
    (3..=4)
        .contains(&digits.len())
        .then(|| digits.parse().ok())?
}

/// The part of a search's matches a page is cut from (its number: its place in
/// `Answer::by_rank`).
#[derive(Debug, Clone, Copy)]
enum Tier {
    All = 0,
    /// Those whose title holds every word asked (first, best first).
    Titled = 1,
    /// The others.
    Rest = 2,
}

/// A part of a search's matches by rank: kept, or made at the first asking.
struct RankedPart<'a> {
    kept: &'a std::sync::OnceLock<RoaringBitmap>,
    make: Box<dyn Fn() -> RoaringBitmap + 'a>,
}

impl RankedPart<'_> {
    fn get(&self) -> &RoaringBitmap {
        self.kept.get_or_init(&self.make)
    }
}

/// Rows a search reads under one taking of the lock.
const SEARCH_SLICE: usize = 4096;

#[derive(Default)]
struct Inner {
    /// Every row by its number; a number freed is given again.
    rows: Vec<Option<Stored>>,
    /// Every row's title key (`Place::key`) by its number, side by side: a deep search page
    /// reads the keys of all its matches, and read from their rows, scattered over the
    /// table's memory, they took 9 ms at a million rows.
    title_keys: Vec<[u64; 2]>,
    free: Vec<u32>,
    /// Every row's number by its image's id.
    ids: HashMap<Arc<str>, u32>,
    /// The names the rows' replicas number.
    names: Names,
    backends: BTreeMap<String, Backend>,
    /// Every row's place: the gallery's order, kept as rows come, go and are retitled, so no
    /// page ever waits for a sort of the whole collection, nor walks to its depth.
    order: Sorted<Place>,
    /// Each row's rank in that order as last counted, for putting a search's matches in it.
    ranks: Ranks,
    /// Which rows hold which words and years.
    index: Index,
    /// The index's bitmaps searched lately, by number and by rank; forgotten at every change
    /// of the index or the ranks.
    terms: Terms,
    /// Node → power domain, for counting redundancy.
    domains: BTreeMap<String, String>,
    /// Images some node keeps a tombstone of (withdrawn), for the portal's list of uploads:
    /// their rows are gone.
    withdrawn: std::collections::HashSet<String>,
    /// Counts every change that can move the redundancy counts (rows, replicas, backends up
    /// or down, failed disks, domains).
    changes: u64,
}

impl Stored {
    /// Its place in the gallery's order: row `n`, whose title key is in `title_keys`.
    fn place(&self, n: u32, title_keys: &[[u64; 2]]) -> Place {
        Place {
            key: title_keys.get(n as usize).copied().unwrap_or_default(),
            title: self.title.clone(),
            id: self.id.clone(),
            row: n,
        }
    }

    fn drop_replica_of(&mut self, node: u32) {
        self.replicas.retain(|r| r.node != node);
    }
}

impl Inner {
    fn get(&self, id: &str) -> Option<&Stored> {
        self.ids.get(id).and_then(|&n| self.stored(n))
    }

    fn stored(&self, n: u32) -> Option<&Stored> {
        self.rows.get(n as usize).and_then(Option::as_ref)
    }

    /// The number of `id`'s row, and whether it is new: a new row is made untitled, with
    /// nothing, and is in neither the gallery's order nor the index until it is described.
    fn number(&mut self, id: &str) -> (u32, bool) {
        if let Some(&n) = self.ids.get(id) {
            return (n, false);
        }
        let n = self.free.pop().unwrap_or(self.rows.len() as u32);
        let id: Arc<str> = Arc::from(id);
        let stored = Stored {
            title: Arc::from(""),
            id: id.clone(),
            meta: PackedMeta::pack(&ImageMeta::default()),
            replicas: Replicas::new(),
            width: 0,
            height: 0,
            year: None,
        };
        match self.rows.get_mut(n as usize) {
            Some(slot) => *slot = Some(stored),
            None => self.rows.push(Some(stored)),
        }
        match self.title_keys.get_mut(n as usize) {
            Some(key) => *key = title_key(""),
            None => self.title_keys.push(title_key("")),
        }
        self.ids.insert(id, n);
        (n, true)
    }

    /// Gives row `n` its metadata. Its words and year go to the index, and (new, or
    /// retitled) its place to the gallery's order, with the page's others (`later`).
    fn describe(
        &mut self,
        n: u32,
        new: bool,
        meta: PackedMeta,
        year: Option<i32>,
        later: &mut Later,
    ) {
        let Inner {
            rows,
            title_keys,
            order,
            index,
            ranks,
            terms,
            ..
        } = self;
        let Some(row) = rows.get_mut(n as usize).and_then(Option::as_mut) else {
            return;
        };
        if !new && row.meta == meta && row.year == year {
            return; // the other replica's node says the same: the usual case
        }
        terms.forget();
        if !new {
            index.remove(n, &row.meta, row.year);
        }
        later.indexed.push(n);
        let title = meta.title().to_lowercase();
        if new || *row.title != *title {
            if !new {
                order.remove(&row.place(n, title_keys));
            }
            ranks.moved(n);
            let place = Place::new(&title, row.id.clone(), n);
            row.title = place.title.clone();
            later.placed.push(place);
        }
        (row.meta, row.year) = (meta, year);
    }

    /// Does what the entries of a page left to do.
    fn finish(&mut self, later: Later) {
        // The keys beside the rows follow the places into the order.
        for place in &later.placed {
            if let Some(key) = self.title_keys.get_mut(place.row as usize) {
                *key = place.key;
            }
        }
        self.order.insert_many(later.placed);
        let Inner { rows, index, .. } = self;
        index.add_many(later.indexed.into_iter().filter_map(|n| {
            let row = rows.get(n as usize)?.as_ref()?;
            Some((n, &row.meta, row.year))
        }));
        if self.ranks.stale(self.order.len()) {
            self.count_ranks();
        }
    }

    /// Counts every row's rank again (a walk of the order).
    fn count_ranks(&mut self) {
        let start = std::time::Instant::now();
        let moved = self.ranks.unranked().len();
        let order = self.order.iter_from(0).map(|p| p.row);
        self.ranks.count(self.rows.len(), order);
        self.terms.forget();
        tracing::debug!(
            rows = self.order.len(),
            moved,
            took_ms = start.elapsed().as_millis() as u64,
            "ranks counted"
        );
    }

    /// Takes row `n` out of everything.
    fn drop_row(&mut self, n: u32) {
        let Some(row) = self.rows.get_mut(n as usize).and_then(Option::take) else {
            return;
        };
        self.index.remove(n, &row.meta, row.year);
        self.order.remove(&row.place(n, &self.title_keys));
        self.ranks.moved(n);
        self.terms.forget();
        self.ids.remove(&row.id);
        self.free.push(n);
    }

    /// Rows `first..first + count` of `matches` in the gallery's order. `by_rank` gives the
    /// ranked of them by rank (`terms.rs`): a page is then cut from ranks instead of selected
    /// among all the matches, and when they are kept already, the order is not walked either.
    fn page_of(
        &self,
        matches: &RoaringBitmap,
        by_rank: Option<RankedPart>,
        first: usize,
        count: usize,
    ) -> Vec<&Stored> {
        let found = matches.len() as usize;
        if first >= found {
            return Vec::new();
        }
        let want = (first + count).min(found);
        let kept = by_rank.as_ref().is_some_and(|p| p.kept.get().is_some());
        // Walking the order finds the last match wanted after about want * rows / found
        // places; selecting by rank reads every match once, at a fraction of a walked
        // place's cost (a walked place is looked up in the matches; a match's rank is read
        // from one array, in the order of the row numbers).
        let walk = want.saturating_mul(self.order.len()) / found;
        if walk <= found / 8 && !kept {
            // That estimate takes the matches as spread evenly over the order; those whose
            // title holds a word often are not (titles that begin with it sit together): the
            // walk stops at four times its estimate, and the selection takes over.
            let budget = (4 * walk + 1024).min(found / 2);
            let mut walked = 0;
            let mut page = Vec::new();
            let mut seen = 0;
            for p in self.order.iter_from(0).take(budget) {
                walked += 1;
                if matches.contains(p.row) {
                    if seen >= first {
                        page.extend(self.stored(p.row));
                    }
                    seen += 1;
                    if seen == want {
                        return page;
                    }
                }
            }
            if walked < budget {
                return page; // the whole order walked
            }
        }
        // The matches ranked at the last count come in rank order; those that moved since
        // are few (a count follows once they are a thirty-second of the rows) and are put
        // among them by title. Of the ranked, only those that can fall on the page are
        // selected: up to `unranked` places before it, since each unranked match before them
        // pushes them one place on.
        let unranked = matches & self.ranks.unranked();
        let n_unranked = unranked.len() as usize;
        let n_ranked = found - n_unranked;
        let from = first.saturating_sub(n_unranked);
        let to = n_ranked.min(want);
        let key = |n: u32| {
            (
                self.title_keys.get(n as usize).copied().unwrap_or_default(),
                n,
            )
        };
        let selected = match by_rank {
            Some(part) => self.ranks.select_ranked(part.get(), from, to),
            // Without them, selected among the ranked matches (a copy only if some moved).
            None if unranked.is_empty() => self.ranks.select(matches, from, to),
            None => self.ranks.select(&(matches - &unranked), from, to),
        };
        let selected: Vec<([u64; 2], u32)> = selected.into_iter().map(key).collect();
        // The unranked in title order: compared by their keys, and as their places are when
        // two keys are equal (by title, id, number: a row elsewhere in memory is read only then).
        let rest = |n: u32| self.stored(n).map(|r| (&*r.title, &*r.id, n));
        let order = |a: &([u64; 2], u32), b: &([u64; 2], u32)| {
            a.0.cmp(&b.0).then_with(|| rest(a.1).cmp(&rest(b.1)))
        };
        let mut moved: Vec<([u64; 2], u32)> = unranked.iter().map(key).collect();
        moved.sort_unstable_by(order);
        // Those before the first selected are counted, not shown (unless the selection begins
        // with the first ranked match: then they come first); those after the last are left
        // out (unless it ends with the last ranked match).
        let (before, kept) = match (selected.first(), selected.last()) {
            (Some(lo), Some(hi)) => {
                let below = moved.partition_point(|m| order(m, lo).is_lt());
                let above = moved.partition_point(|m| order(m, hi).is_le());
                let lo = if from == 0 { 0 } else { below };
                let hi = if to == n_ranked { moved.len() } else { above };
                (lo, &moved[lo..hi])
            }
            _ => (0, &moved[..]),
        };
        // The merged matches hold every place from the first shown on, from place `at`.
        let at = from + before;
        let mut merged = Vec::with_capacity(selected.len() + kept.len());
        let (mut s, mut m) = (selected.iter().peekable(), kept.iter().peekable());
        while merged.len() < want.saturating_sub(at) {
            let next = match (s.peek(), m.peek()) {
                (Some(a), Some(b)) if order(a, b).is_le() => s.next(),
                (Some(_), Some(_)) | (None, Some(_)) => m.next(),
                (Some(_), None) => s.next(),
                (None, None) => break,
            };
            merged.extend(next.map(|&(_, n)| n));
        }
        merged
            .into_iter()
            .skip(first - at)
            .filter_map(|n| self.stored(n))
            .collect()
    }

    /// Rows `first..first + count` of `answer` best first: those whose title holds every word
    /// asked (`answer.titled`), then the others, each part in title order; in title order
    /// only without that part. `by_rank` makes a part by rank, kept in `answer.by_rank`.
    fn best_first(
        &self,
        answer: &Answer,
        by_rank: Option<&dyn Fn(Tier) -> RoaringBitmap>,
        first: usize,
        count: usize,
    ) -> Vec<&Stored> {
        let part = |tier: Tier| {
            by_rank.map(|make| RankedPart {
                kept: &answer.by_rank[tier as usize],
                make: Box::new(move || make(tier)),
            })
        };
        match &answer.titled {
            Some(first_tier) => {
                let mut shown = self.page_of(first_tier, part(Tier::Titled), first, count);
                if shown.len() < count {
                    let rest = &answer.matches - first_tier;
                    let skip = first.saturating_sub(first_tier.len() as usize);
                    let more = count - shown.len();
                    shown.extend(self.page_of(&rest, part(Tier::Rest), skip, more));
                }
                shown
            }
            None => self.page_of(&answer.matches, part(Tier::All), first, count),
        }
    }

    /// Whether the replica's node answers and its disk has not failed.
    fn serves(&self, r: &Replica) -> bool {
        self.serving(r).is_some()
    }

    /// The backend that serves replica `r`, if it is up and `r`'s disk is not failed.
    fn serving(&self, r: &Replica) -> Option<&Backend> {
        self.backends
            .get(self.names.name(r.node))
            .filter(|b| b.up && !b.failed_disks.contains(self.names.name(r.disk)))
    }
}

/// How many images are how redundant, counted by `cluster::redundancy::classify`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Redundancy {
    pub images: usize,
    pub healthy: usize,
    pub under_replicated: usize,
    pub lost: usize,
}

#[derive(Default)]
pub struct Table {
    inner: RwLock<Inner>,
    /// The redundancy counts as of a version of the table (`Inner::changes`): `/health` and
    /// `/metrics` are public, and counting walks every row, so it is done once per change,
    /// not once per request.
    counted: std::sync::Mutex<Option<(u64, Redundancy)>>,
}

impl Table {
    /// Tells the table each node's power domain: (node name, domain).
    pub fn set_domains(&self, domains: &[(String, String)]) {
        let mut inner = self.write();
        inner.domains = domains.iter().cloned().collect();
        inner.changes += 1;
    }

    /// Every image counted by how many readable replicas it has in how many power domains,
    /// as this frontend sees the backends now (the same rule as `td status`).
    pub fn redundancy(&self) -> Redundancy {
        // Held while counting: a crowd of requests after a change waits for one count.
        let mut counted = self.counted.lock().unwrap_or_else(|p| p.into_inner());
        let changes = self.read().changes;
        if let Some((at, counts)) = *counted {
            if at == changes {
                return counts;
            }
        }
        let (at, counts) = self.count();
        *counted = Some((at, counts));
        counts
    }

    /// The redundancy counts, walking every row, and the version of the table counted.
    fn count(&self) -> (u64, Redundancy) {
        use cluster::redundancy::{classify, ImageHealth, Seen};
        let inner = self.read();
        let mut counts = Redundancy::default();
        for row in inner.rows.iter().flatten() {
            let seen: Vec<Seen> = row
                .replicas
                .iter()
                .map(|r| Seen {
                    node: inner.names.name(r.node),
                    disk: inner.names.name(r.disk),
                    state: r.state.state(),
                    node_up: inner.serves(r),
                })
                .collect();
            let health = classify(&seen, |n| inner.domains.get(n).map(String::as_str));
            counts.images += 1;
            match health {
                ImageHealth::Healthy => counts.healthy += 1,
                ImageHealth::UnderReplicated { .. } => counts.under_replicated += 1,
                ImageHealth::Lost { .. } => counts.lost += 1,
                ImageHealth::Deleted => counts.images -= 1,
            }
        }
        (inner.changes, counts)
    }

    /// An empty table over `backends`: (node name, origin).
    pub fn new(backends: &[(String, String)]) -> Table {
        let mut inner = Inner::default();
        for (node, origin) in backends {
            inner.backends.insert(
                node.clone(),
                Backend {
                    node: node.clone(),
                    origin: origin.clone(),
                    up: false,
                    last_error: Some("not asked yet".into()),
                    failed_disks: HashSet::new(),
                    catalog: String::new(),
                    version: 0,
                    redirects: Counted::default(),
                },
            );
        }
        Table {
            inner: RwLock::new(inner),
            counted: std::sync::Mutex::new(None),
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Inner> {
        self.inner.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Inner> {
        self.inner.write().unwrap_or_else(|p| p.into_inner())
    }

    fn update_backend(&self, node: &str, change: impl FnOnce(&mut Backend)) {
        let mut inner = self.write();
        if let Some(b) = inner.backends.get_mut(node) {
            let before = (b.up, b.failed_disks.clone());
            change(b);
            if (b.up, &b.failed_disks) != (before.0, &before.1) {
                inner.changes += 1;
            }
        }
    }

    /// The catalog name and version held for `node`: ask for `since=version` next.
    pub fn cursor(&self, node: &str) -> (String, u64) {
        self.read()
            .backends
            .get(node)
            .map_or((String::new(), 0), |b| (b.catalog.clone(), b.version))
    }

    /// Records the answer of `node`'s health check: up with its failed disks, or down and why.
    pub fn set_health(&self, node: &str, health: Result<HashSet<String>, String>) {
        self.update_backend(node, |b| match health {
            Ok(failed) => {
                b.up = true;
                b.failed_disks = failed;
                b.last_error = None;
            }
            Err(why) => {
                b.up = false;
                b.last_error = Some(why);
            }
        });
    }

    /// Records that `node` answers its health check but its catalog could not be read.
    pub fn catalog_failed(&self, node: &str, why: String) {
        self.update_backend(node, |b| b.last_error = Some(why));
    }

    /// Applies a page of `node`'s catalog. A catalog with another name than the one held (it
    /// was rebuilt) replaces everything this table had from that node.
    ///
    /// Every backend answers every second, mostly with nothing new, and redirects wait while
    /// this holds the lock: so an empty page costs nothing, and otherwise the work is in
    /// proportion to the page (only a rebuilt catalog walks every row).
    pub fn apply(&self, page: CatalogPage) {
        // Packed before the lock is taken: redirects wait only for the table's own changes.
        let packed: Vec<(PackedMeta, Option<i32>)> = page
            .entries
            .iter()
            .map(|e| (PackedMeta::pack(&e.meta), year_of(&e.meta.date)))
            .collect();
        let mut inner = self.write();
        let node = page.node.clone();
        let Some(backend) = inner.backends.get_mut(&node) else {
            return;
        };
        let fresh = backend.catalog != page.catalog;
        if !fresh && page.version < backend.version {
            return; // an older answer overtaken by a newer one
        }
        if !fresh && page.entries.is_empty() {
            backend.version = page.version;
            backend.last_error = None;
            // A quiet moment (each backend says so every second): the rows moved since the
            // last count are ranked, at most every few seconds.
            if inner.ranks.settle() {
                inner.count_ranks();
            }
            return;
        }
        let node_number = inner.names.number(&node);
        if fresh {
            for row in inner.rows.iter_mut().flatten() {
                row.drop_replica_of(node_number);
            }
        }
        inner.changes += 1;
        let mut touched = Vec::with_capacity(page.entries.len());
        let mut later = Later::default();
        for (entry, (meta, year)) in page.entries.into_iter().zip(packed) {
            if matches!(entry.state, ReplicaState::Deleted { .. }) {
                inner.withdrawn.insert(entry.id.clone());
            }
            let disk = inner.names.number(&entry.disk);
            let (n, new) = inner.number(&entry.id);
            let Some(row) = inner.rows.get_mut(n as usize).and_then(Option::as_mut) else {
                continue;
            };
            row.drop_replica_of(node_number);
            if let Some(state) = Kept::of(&entry.state) {
                row.replicas.push(Replica {
                    node: node_number,
                    disk,
                    state,
                });
                (row.width, row.height) = (entry.width, entry.height);
                inner.describe(n, new, meta, year, &mut later);
            }
            touched.push(n);
        }
        inner.finish(later);
        // A row with no replica left is gone (a new one whose entry said gone, too).
        let gone: Vec<u32> = if fresh {
            (0..inner.rows.len() as u32)
                .filter(|&n| inner.stored(n).is_some_and(|r| r.replicas.is_empty()))
                .collect()
        } else {
            touched
                .into_iter()
                .filter(|&n| inner.stored(n).is_some_and(|r| r.replicas.is_empty()))
                .collect()
        };
        for n in gone {
            inner.drop_row(n);
        }
        if let Some(b) = inner.backends.get_mut(&node) {
            (b.catalog, b.version) = (page.catalog, page.version);
            b.last_error = None;
        }
    }

    /// Where to send a visitor for image `id`: the healthy replica whose backend this frontend
    /// has sent the fewest visitors to.
    pub fn choose(&self, id: &str) -> Choice {
        let inner = self.read();
        let Some(row) = inner.get(id) else {
            return Choice::Unknown;
        };
        let lane = Counted::lane();
        let n = row.replicas.len().max(1);
        // The least sent to by this thread; on a tie, each thread starts from another replica,
        // so two visitors in a row are sent to two replicas whichever threads answer them.
        let best = row
            .replicas
            .iter()
            .enumerate()
            .filter(|(_, r)| r.state.servable())
            .filter_map(|(i, r)| inner.serving(r).map(|b| (i, b)))
            .min_by_key(|(i, b)| (b.redirects.of_lane(lane), (i + lane) % n))
            .map(|(_, b)| b);
        match best {
            Some(b) => {
                b.redirects.add(lane);
                Choice::Origin(b.origin.clone())
            }
            None => Choice::Unavailable,
        }
    }

    /// The rows matching `query`, by title: those of page `page` (from 0) of `per_page`, and
    /// how many match in all. The gallery (no query) takes its page straight from the order;
    /// a search asks the index which rows hold its words and years.
    pub fn search(&self, query: &Query, page: usize, per_page: usize) -> (Vec<Row>, usize) {
        let first = page.saturating_mul(per_page);
        if query.is_empty() {
            let inner = self.read();
            let shown = inner
                .order
                .iter_from(first)
                .take(per_page)
                .filter_map(|p| inner.stored(p.row).map(Stored::row))
                .collect();
            return (shown, inner.order.len());
        }
        let inner = self.read();
        let Some(plan) = inner.index.plan(query) else {
            // Only signs were asked for, which every row matches: the gallery.
            drop(inner);
            return self.search(&Query::default(), page, per_page);
        };
        let titles = match query.order {
            Order::BestFirst => inner.index.title_plan(query),
            Order::Title => None,
        };
        if plan.exact {
            // The index's answer is the matches: all under this taking of the lock, with the
            // bitmaps kept of its terms, or of the same search asked before.
            let (index, ranks, terms) = (&inner.index, &inner.ranks, &inner.terms);
            let asked = Asked {
                all: plan.all,
                titles,
            };
            let kept = terms.answer(&asked);
            let answer = kept.clone().unwrap_or_else(|| {
                let matches =
                    combine(&asked.all, |t| terms.by_number(index, t)).unwrap_or_default();
                let titled = asked.titles.as_ref().map(|all| {
                    let titled = combine(all, |t| terms.by_number(index, t));
                    titled.unwrap_or_default() & &matches
                });
                Arc::new(Answer::new(matches, titled))
            });
            // A part by rank: the parts' terms by rank, combined as by number. (Each part is
            // made into its place in `answer.by_rank` by `page_of`, and made here of the others.)
            let [all_kept, titled_kept, _] = &answer.by_rank;
            let make_all =
                || combine(&asked.all, |t| terms.by_rank(index, ranks, t)).unwrap_or_default();
            let all = || all_kept.get_or_init(make_all);
            let make_titled = || {
                let parts = asked.titles.as_deref().unwrap_or_default();
                let titled = combine(parts, |t| terms.by_rank(index, ranks, t));
                titled.unwrap_or_default() & all()
            };
            let by_rank = |tier: Tier| match tier {
                Tier::All => make_all(),
                Tier::Titled => make_titled(),
                Tier::Rest => all() - titled_kept.get_or_init(make_titled),
            };
            // By rank once every term was asked before (a search asked once selects among its
            // matches, as cheap as that is); a kept answer, always.
            let mut terms_asked = asked.all.iter().chain(asked.titles.iter().flatten());
            let rank_them =
                kept.is_some() || terms_asked.all(|any| any.iter().all(|t| terms.asked_again(t)));
            let by_rank = rank_them.then_some(&by_rank as &dyn Fn(Tier) -> RoaringBitmap);
            let shown = inner.best_first(&answer, by_rank, first, per_page);
            let shown = shown.into_iter().map(Stored::row).collect();
            if kept.is_none() && answer.by_rank.iter().any(|b| b.get().is_some()) {
                terms.keep(asked, answer.clone());
            }
            return (shown, answer.matches.len() as usize);
        }
        // Some rows must be read to know: those the index names, a slice at a time, each
        // taking of the lock short (a catalog page may be waiting, and redirects behind it).
        let candidates = combine(&plan.all, |t| inner.index.rows(t)).unwrap_or_default();
        drop(inner);
        let matches = self.check(query, &candidates);
        let inner = self.read();
        let titled = titles.map(|all| {
            let titled = combine(&all, |t| inner.index.rows(t));
            titled.unwrap_or_default() & &matches
        });
        let answer = Answer::new(matches, titled);
        let shown = inner
            .best_first(&answer, None, first, per_page)
            .into_iter()
            .filter(|r| query.matches(r))
            .map(Stored::row)
            .collect();
        (shown, answer.matches.len() as usize)
    }

    /// Those of `rows` that match `query`, read a slice at a time under the lock, so that a
    /// catalog page waiting to be applied (and the redirects behind it) waits for one slice.
    fn check(&self, query: &Query, rows: &RoaringBitmap) -> RoaringBitmap {
        let mut matches = RoaringBitmap::new();
        let mut them = rows.iter().peekable();
        while them.peek().is_some() {
            let inner = self.read();
            for n in them.by_ref().take(SEARCH_SLICE) {
                if inner.stored(n).is_some_and(|r| query.matches(r)) {
                    matches.insert(n);
                }
            }
        }
        matches
    }

    /// Ids and titles of the published images `first..first + count` by title, and how many
    /// there are.
    pub fn titles(&self, first: usize, count: usize) -> (Vec<(String, String)>, usize) {
        let inner = self.read();
        let shown = inner
            .order
            .iter_from(first)
            .take(count)
            .filter_map(|p| inner.stored(p.row))
            .map(|r| (r.id.to_string(), r.meta.title().to_string()))
            .collect();
        (shown, inner.order.len())
    }

    pub fn backends(&self) -> Vec<BackendView> {
        self.read()
            .backends
            .values()
            .map(|b| {
                let mut failed_disks: Vec<_> = b.failed_disks.iter().cloned().collect();
                failed_disks.sort();
                BackendView {
                    node: b.node.clone(),
                    origin: b.origin.clone(),
                    up: b.up,
                    last_error: b.last_error.clone(),
                    failed_disks,
                    catalog: b.catalog.clone(),
                    version: b.version,
                    redirects: b.redirects.total(),
                }
            })
            .collect()
    }

    pub fn len(&self) -> usize {
        self.read().ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The row of image `id`, if the table has it.
    pub fn row(&self, id: &str) -> Option<Row> {
        self.read().get(id).map(Stored::row)
    }

    /// Whether a node reported a tombstone of `id`: it was withdrawn.
    pub fn withdrawn(&self, id: &str) -> bool {
        self.read().withdrawn.contains(id)
    }

    /// The replicas of `id` as (node, disk, servable now), for `/health` and tests.
    pub fn replicas(&self, id: &str) -> Vec<(String, String, bool)> {
        let inner = self.read();
        inner.get(id).map_or_else(Vec::new, |row| {
            row.replicas
                .iter()
                .map(|r| {
                    let ok = r.state.servable() && inner.serves(r);
                    (
                        inner.names.name(r.node).to_string(),
                        inner.names.name(r.disk).to_string(),
                        ok,
                    )
                })
                .collect()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cluster::CatalogEntry;

    fn entry(id: &str, disk: &str, state: ReplicaState, title: &str, date: &str) -> CatalogEntry {
        CatalogEntry {
            id: id.into(),
            version: 0,
            state,
            disk: disk.into(),
            nodes: vec!["a".into(), "b".into()],
            epoch: 0,
            width: 100,
            height: 100,
            meta: ImageMeta {
                title: title.into(),
                artist: "Hokusai".into(),
                date: date.into(),
                keywords: vec!["wave".into()],
                ..ImageMeta::default()
            },
            files: vec![],
        }
    }

    fn page(node: &str, catalog: &str, version: u64, entries: Vec<CatalogEntry>) -> CatalogPage {
        CatalogPage {
            more: false,
            node: node.into(),
            catalog: catalog.into(),
            version,
            entries,
        }
    }

    fn table() -> Table {
        let t = Table::new(&[
            ("a".into(), "http://a".into()),
            ("b".into(), "http://b".into()),
        ]);
        for node in ["a", "b"] {
            t.apply(page(
                node,
                &format!("{node}-1"),
                2,
                vec![
                    entry(
                        "wave",
                        &format!("{node}1"),
                        ReplicaState::Ok,
                        "The Great Wave",
                        "c. 1831",
                    ),
                    entry(
                        "fuji",
                        &format!("{node}2"),
                        ReplicaState::Ok,
                        "Red Fuji",
                        "1830–1832",
                    ),
                ],
            ));
            t.set_health(node, Ok(HashSet::new()));
        }
        t
    }

    #[test]
    fn visitors_answered_by_different_threads_are_spread_as_evenly() {
        let t = table();
        // Two visitors, each answered by a thread of its own (as two connections on two
        // cores are): two replicas.
        let pick = |t: &Table| std::thread::scope(|s| s.spawn(|| t.choose("wave")).join().unwrap());
        assert_ne!(pick(&t), pick(&t));
        // Many, by a few threads at once: even, to within one per thread.
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for _ in 0..500 {
                        t.choose("wave");
                    }
                });
            }
        });
        let counts: Vec<u64> = t.backends().iter().map(|b| b.redirects).collect();
        assert_eq!(counts.iter().sum::<u64>(), 2002, "{counts:?}");
        assert!(counts[0].abs_diff(counts[1]) <= 6, "{counts:?}");
    }

    #[test]
    fn visitors_are_spread_over_healthy_replicas_only() {
        let t = table();
        let picks: Vec<_> = (0..4).map(|_| t.choose("wave")).collect();
        let to_a = picks
            .iter()
            .filter(|c| **c == Choice::Origin("http://a".into()))
            .count();
        assert_eq!(to_a, 2, "{picks:?}");
        t.set_health("a", Err("timed out".into()));
        assert!((0..3).all(|_| t.choose("wave") == Choice::Origin("http://b".into())));
        t.set_health("a", Ok(HashSet::new()));
        t.set_health("b", Ok(HashSet::from(["b1".to_string()])));
        assert_eq!(
            t.choose("wave"),
            Choice::Origin("http://a".into()),
            "b's disk b1 failed"
        );
        t.set_health("a", Err("refused".into()));
        assert_eq!(t.choose("wave"), Choice::Unavailable);
        assert_eq!(t.choose("fuji"), Choice::Origin("http://b".into()));
        assert_eq!(t.choose("nope"), Choice::Unknown);
    }

    fn gallery(t: &Table) -> Vec<String> {
        t.search(&Query::default(), 0, 100)
            .0
            .into_iter()
            .map(|r| r.id)
            .collect()
    }

    /// The gallery's order follows every change without a sort: a row that comes, goes, is
    /// retitled, or loses every replica when its node's catalog is rebuilt.
    #[test]
    fn the_order_follows_every_row_that_comes_goes_or_is_retitled() {
        let t = table();
        let one = |t: &Table, node: &str, catalog: &str, version, e| {
            t.apply(page(node, catalog, version, vec![e]))
        };
        assert_eq!(gallery(&t), ["fuji", "wave"]);
        t.apply(page("a", "a-1", 5, vec![]));
        assert_eq!(t.cursor("a"), ("a-1".to_string(), 5));
        let unreadable = ReplicaState::unreadable("disk a1 failed");
        one(
            &t,
            "a",
            "a-1",
            6,
            entry("wave", "a1", unreadable, "The Great Wave", "c. 1831"),
        );
        assert_eq!(gallery(&t), ["fuji", "wave"], "a state change");
        one(
            &t,
            "a",
            "a-1",
            7,
            entry("wave", "a1", ReplicaState::Ok, "A Wave", "c. 1831"),
        );
        assert_eq!(
            gallery(&t),
            ["wave", "fuji"],
            "A Wave comes before Red Fuji"
        );
        one(
            &t,
            "a",
            "a-1",
            8,
            entry("new", "a1", ReplicaState::Ok, "Zebra", ""),
        );
        let (shown, total) = t.search(&Query::default(), 1, 2);
        assert_eq!((shown[0].id.as_str(), shown.len(), total), ("new", 1, 3));
        assert_eq!(t.titles(2, 5), (vec![("new".into(), "Zebra".into())], 3));
        let deleted = ReplicaState::Deleted { at: 1 };
        one(&t, "a", "a-1", 9, entry("new", "a1", deleted, "Zebra", ""));
        assert_eq!(gallery(&t), ["wave", "fuji"], "a row gone");
        // Node a's catalog rebuilt without "wave": it keeps b's replica; a rebuilt b without
        // it takes it out of the gallery.
        one(
            &t,
            "a",
            "a-2",
            1,
            entry("fuji", "a2", ReplicaState::Ok, "Red Fuji", "1831"),
        );
        assert_eq!(gallery(&t), ["wave", "fuji"]);
        one(
            &t,
            "b",
            "b-2",
            1,
            entry("fuji", "b1", ReplicaState::Ok, "Red Fuji", "1831"),
        );
        assert_eq!(gallery(&t), ["fuji"]);
        assert_eq!(t.titles(0, 10).1, 1);
    }

    /// Matches that sit together at the end of the order (titles that begin with the word
    /// asked) are found whole, on every page, though walking the order to them from the
    /// start looked short for their number; the walk gives up and the matches are selected
    /// by their title keys, here all the same.
    #[test]
    fn matches_together_at_the_end_of_the_order_are_found_on_every_page() {
        let t = Table::new(&[("a".into(), "http://a".into())]);
        t.set_health("a", Ok(HashSet::new()));
        let (others, harbours) = (1000, 300);
        let entries = (0..others + harbours)
            .map(|i| {
                let title = if i < others {
                    format!("Field {i:04}")
                } else {
                    // Longer than a title key: every key the same, the titles decide.
                    format!("Harbour at dawn, number {i:04}")
                };
                entry(&format!("img-{i:05}"), "a1", ReplicaState::Ok, &title, "")
            })
            .collect();
        t.apply(page("a", "a-1", 1, entries));
        let q = Query::parse("harbour", "", "", "");
        let mut all = Vec::new();
        for page_no in 0..harbours / 24 + 1 {
            let (rows, total) = t.search(&q, page_no, 24);
            assert_eq!(total, harbours);
            all.extend(rows.into_iter().map(|r| r.meta.title));
        }
        let want: Vec<String> = (others..others + harbours)
            .map(|i| format!("Harbour at dawn, number {i:04}"))
            .collect();
        assert_eq!(all, want);
    }

    /// A search walks the order a slice at a time: across many slices it misses no row and
    /// counts none twice, and its pages are in title order.
    #[test]
    fn a_search_across_many_slices_finds_every_match_once_in_order() {
        let t = Table::new(&[("a".into(), "http://a".into())]);
        t.set_health("a", Ok(HashSet::new()));
        let n = SEARCH_SLICE * 2 + 123;
        let entries = (0..n)
            .map(|i| {
                let word = if i % 3 == 0 { "harbour" } else { "field" };
                entry(
                    &format!("img-{i:05}"),
                    "a1",
                    ReplicaState::Ok,
                    &format!("{word}: {:05}", n - i),
                    "",
                )
            })
            .collect();
        t.apply(page("a", "a-1", 1, entries));
        let q = Query::parse("Harbour", "", "", "");
        let want = n.div_ceil(3);
        let (first, total) = t.search(&q, 0, 50);
        assert_eq!(total, want);
        let (last, _) = t.search(&q, (want - 1) / 50, 50);
        let titles: Vec<String> = first
            .iter()
            .chain(&last)
            .map(|r| r.meta.title.clone())
            .collect();
        let mut sorted = titles.clone();
        sorted.sort();
        assert_eq!(titles, sorted);
        assert_eq!(last.len(), (want - 1) % 50 + 1);
        assert_eq!(t.search(&Query::default(), 0, 1).1, n);
        // A query of signs only asks for nothing: the gallery.
        let (some, all) = t.search(&Query::parse(":", "", "", ""), 1, 10);
        assert_eq!((all, some.len()), (n, 10));
    }

    mod title_keys {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            /// Two keys that differ order their titles as the titles' bytes do (titles with
            /// long beginnings in common, one a beginning of the other, any characters).
            #[test]
            fn a_title_key_orders_as_its_title(a in "[ab\u{e9}\u{0}]{0,20}|\\PC{0,20}", b in "[ab\u{e9}\u{0}]{0,20}|\\PC{0,20}") {
                let (ka, kb) = (title_key(&a), title_key(&b));
                if ka != kb {
                    prop_assert_eq!(ka.cmp(&kb), a.as_bytes().cmp(b.as_bytes()));
                }
                let (pa, pb) = (Place::new(&a, Arc::from("x"), 0), Place::new(&b, Arc::from("x"), 0));
                prop_assert_eq!(pa.cmp(&pb), a.cmp(&b));
            }
        }
    }

    /// Whatever the rows and the changes, a search through the index answers what reading
    /// every row in the gallery's order answers, page by page: in title order, or best first
    /// (the rows whose title holds every word asked, then the others).
    mod against_every_row {
        use super::*;
        use proptest::prelude::*;

        const TITLE_WORDS: &[&str] = &[
            "Sea",
            "seahorse",
            "Harbour",
            "c.",
            "1831",
            "ΘΆΛΑΣΣΑ",
            "wave:",
            "no.5",
            "c.1831",
            "sea.",
        ];
        const SEARCHED: &[&str] = &[
            "sea",
            "se",
            "harb",
            "c.",
            "18",
            "θάλασσα",
            ":",
            "wave",
            "x",
            "wave:",
            "no.",
            "c.1",
            "sea.",
            "no",
        ];

        fn title(words: &[usize]) -> String {
            words
                .iter()
                .map(|&w| TITLE_WORDS[w % TITLE_WORDS.len()])
                .collect::<Vec<_>>()
                .join(" ")
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(256))]
            #[test]
            fn a_search_answers_as_reading_every_row(
                changes in proptest::collection::vec(
                    (0u8..60, any::<bool>(), any::<bool>(), proptest::collection::vec(0usize..TITLE_WORDS.len(), 0..4), 1825i32..1840),
                    1..200,
                ),
                words in proptest::collection::vec(0usize..SEARCHED.len(), 0..3),
                artist in 0usize..3,
                years in (proptest::option::of(1825i32..1840), proptest::option::of(1825i32..1840)),
                per_page in 1usize..7,
                by_title in any::<bool>(),
                recount_from in 0usize..80,
                asked_before in 0usize..200,
            ) {
                let t = Table::new(&[("a".into(), "http://a".into()), ("b".into(), "http://b".into())]);
                // Counted again after a few rows moved, or many: pages mix rows ranked at the
                // last count and rows placed since, in every proportion.
                t.write().ranks.recount_from(recount_from);
                let query = Query {
                    words: words.iter().map(|&w| SEARCHED[w].to_string()).collect(),
                    artist: ["", "hoku", "art g"][artist].to_string(),
                    from_year: years.0,
                    to_year: years.1,
                    order: if by_title { Order::Title } else { Order::BestFirst },
                };
                // Every page of the search against every row read, in title order; best first:
                // those whose title has a word beginning with each word asked (its letters and
                // digits), then the rest.
                let every_page = |t: &Table| -> Result<(), TestCaseError> {
                    let in_title = |r: &Stored| {
                        let title = r.meta.title().to_lowercase();
                        query.words.iter().flat_map(|w| words::words(w)).all(|part| {
                            words::words(&title).any(|t| t.starts_with(part))
                        })
                    };
                    let every: Vec<String> = {
                        let inner = t.read();
                        let matching: Vec<&Stored> = inner
                            .order
                            .iter_from(0)
                            .filter_map(|p| inner.stored(p.row))
                            .filter(|r| query.is_empty() || query.matches(r))
                            .collect();
                        let (mut first, rest): (Vec<&Stored>, Vec<&Stored>) = if by_title {
                            (matching, Vec::new())
                        } else {
                            matching.into_iter().partition(|r| in_title(r))
                        };
                        first.extend(rest);
                        first.into_iter().map(|r| r.id.to_string()).collect()
                    };
                    // Each page asked twice: the second may be cut from what the first kept.
                    for page_no in (0..every.len() / per_page + 2).flat_map(|p| [p, p]) {
                        let (rows, total) = t.search(&query, page_no, per_page);
                        prop_assert_eq!(total, every.len());
                        let ids: Vec<String> = rows.into_iter().map(|r| r.id).collect();
                        let want = every.iter().skip(page_no * per_page).take(per_page).cloned().collect::<Vec<_>>();
                        prop_assert_eq!(ids, want, "page {} of {:?}", page_no, query);
                    }
                    Ok(())
                };
                // The same search asked midway too: what it kept must not outlive the changes
                // that follow.
                for (version, (id, on_a, kept, title_words, year)) in changes.into_iter().enumerate() {
                    if version == asked_before {
                        every_page(&t)?;
                    }
                    let node = if on_a { "a" } else { "b" };
                    let state = if kept { ReplicaState::Ok } else { ReplicaState::Removed };
                    let mut e = entry(&format!("img-{id}"), "d1", state, &title(&title_words), &year.to_string());
                    e.meta.artist = ["Hokusai", "Art Group", ""][id as usize % 3].into();
                    t.apply(page(node, &format!("{node}-1"), version as u64 + 1, vec![e]));
                }
                every_page(&t)?;
            }
        }
    }

    /// A search asked again is cut by rank and keeps its answer, later pages are cut from it,
    /// and any change of the table forgets it.
    #[test]
    fn a_search_asked_again_is_kept_until_the_table_changes() {
        let t = Table::new(&[("a".into(), "http://a".into())]);
        t.write().ranks.recount_from(0); // every row ranked at each page's end
        let entries = (0..600)
            .map(|i| {
                // A few zebras at the end of the order: a walk from the start would be long.
                let title = if i % 10 == 0 { "Zebra" } else { "Apple" };
                let (id, title) = (format!("img-{i:03}"), format!("{title} {i:03}"));
                entry(&id, "d1", ReplicaState::Ok, &title, "1850")
            })
            .collect();
        t.apply(page("a", "a-1", 1, entries));
        let zebra = Query::parse("zebra", "", "", "");
        let page_of = |n: usize| {
            let (rows, total) = t.search(&zebra, n, 4);
            let ids: Vec<String> = rows.into_iter().map(|r| r.id).collect();
            (ids.join(" "), total, t.read().terms.answers())
        };
        assert_eq!(
            page_of(0),
            ("img-000 img-010 img-020 img-030".into(), 60, 0)
        );
        assert_eq!(
            page_of(1),
            ("img-040 img-050 img-060 img-070".into(), 60, 1)
        );
        assert_eq!(
            page_of(2),
            ("img-080 img-090 img-100 img-110".into(), 60, 1)
        );
        // A zebra retitled: what was kept is forgotten, and the search sees the change.
        let apple = entry("img-000", "d1", ReplicaState::Ok, "Apple 000", "1850");
        t.apply(page("a", "a-1", 2, vec![apple]));
        assert_eq!(t.read().terms.answers(), 0);
        assert_eq!(
            page_of(0),
            ("img-010 img-020 img-030 img-040".into(), 59, 0)
        );
        assert_eq!(
            page_of(0),
            ("img-010 img-020 img-030 img-040".into(), 59, 1)
        );
    }

    /// A row keeps two replicas in place and a third beside it (a re-mirror's copy before
    /// the trim); what a replica's state means survives the compact form: a suspect replica
    /// is served and counted readable, an unreadable one neither.
    #[test]
    fn a_third_replica_and_each_state_are_kept_as_the_nodes_say() {
        let t = Table::new(&[
            ("a".into(), "http://a".into()),
            ("b".into(), "http://b".into()),
            ("c".into(), "http://c".into()),
        ]);
        t.set_domains(&[
            ("a".into(), "A".into()),
            ("b".into(), "B".into()),
            ("c".into(), "C".into()),
        ]);
        for node in ["a", "b", "c"] {
            let e = entry(
                "wave",
                &format!("{node}1"),
                ReplicaState::Ok,
                "Wave",
                "1831",
            );
            t.apply(page(node, &format!("{node}-1"), 2, vec![e]));
            t.set_health(node, Ok(HashSet::new()));
        }
        let mut held = t.replicas("wave");
        held.sort();
        let on = |node: &str, disk: &str, ok| (node.to_string(), disk.to_string(), ok);
        assert_eq!(
            held,
            [
                on("a", "a1", true),
                on("b", "b1", true),
                on("c", "c1", true)
            ]
        );
        let picks: HashSet<_> = (0..3).map(|_| format!("{:?}", t.choose("wave"))).collect();
        assert_eq!(
            picks.len(),
            3,
            "each of the three is chosen in turn: {picks:?}"
        );

        let state = |node: &str, version, state| {
            let e = entry("wave", &format!("{node}1"), state, "Wave", "1831");
            t.apply(page(node, &format!("{node}-1"), version, vec![e]));
        };
        state("a", 3, ReplicaState::Removed);
        state(
            "b",
            3,
            ReplicaState::Suspect {
                reason: "tile 3 damaged".into(),
            },
        );
        state("c", 3, ReplicaState::unreadable("disk c1 failed"));
        assert_eq!(
            t.replicas("wave"),
            [on("b", "b1", true), on("c", "c1", false)]
        );
        assert!((0..3).all(|_| t.choose("wave") == Choice::Origin("http://b".into())));
        let r = t.redundancy();
        assert_eq!(
            (r.images, r.healthy, r.under_replicated),
            (1, 0, 1),
            "{r:?}"
        );
        state("c", 4, ReplicaState::Ok);
        assert_eq!(
            t.redundancy().healthy,
            1,
            "suspect b and ok c: two domains readable"
        );
        state("b", 4, ReplicaState::Removed);
        state("c", 5, ReplicaState::Removed);
        assert_eq!(
            t.choose("wave"),
            Choice::Unknown,
            "no replica left: the row is gone"
        );
    }

    /// Counted once per change, whatever the number of requests, and never stale.
    #[test]
    fn redundancy_is_counted_again_only_after_a_change() {
        let t = table();
        t.set_domains(&[("a".into(), "A".into()), ("b".into(), "B".into())]);
        let first = t.redundancy();
        assert_eq!((first.images, first.healthy), (2, 2));
        let version = |t: &Table| t.counted.lock().unwrap().unwrap().0;
        let counted = version(&t);
        t.set_health("a", Ok(HashSet::new()));
        t.apply(page("a", "a-1", 9, vec![]));
        assert_eq!(t.redundancy(), first);
        assert_eq!(version(&t), counted, "nothing changed: not counted again");
        t.set_health("a", Err("timed out".into()));
        let now = t.redundancy();
        assert_eq!((now.healthy, now.under_replicated), (0, 2));
        assert_ne!(version(&t), counted);
        t.set_health("a", Ok(HashSet::new()));
        assert_eq!(t.redundancy().healthy, 2);
    }

    #[test]
    fn catalog_changes_and_rebuilds_update_the_table() {
        let t = table();
        assert_eq!(t.cursor("a"), ("a-1".to_string(), 2));
        let suspect = ReplicaState::unreadable("disk a1 failed");
        t.apply(page(
            "a",
            "a-1",
            3,
            vec![entry("wave", "a1", suspect, "The Great Wave", "1831")],
        ));
        assert_eq!(
            t.replicas("wave"),
            [
                ("b".into(), "b1".into(), true),
                ("a".into(), "a1".into(), false)
            ]
        );
        // Node b's catalog was rebuilt and no longer has fuji; a still has it.
        t.apply(page(
            "b",
            "b-2",
            1,
            vec![entry(
                "wave",
                "b1",
                ReplicaState::Ok,
                "The Great Wave",
                "1831",
            )],
        ));
        assert_eq!(t.replicas("fuji"), [("a".into(), "a2".into(), true)]);
        t.apply(page(
            "a",
            "a-1",
            4,
            vec![entry("fuji", "a2", ReplicaState::Removed, "", "")],
        ));
        assert_eq!(
            t.choose("fuji"),
            Choice::Unknown,
            "no replica left anywhere"
        );
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn search_by_words_artist_and_years_in_title_order() {
        let t = table();
        let find = |q: Query| {
            t.search(&q, 0, 10)
                .0
                .into_iter()
                .map(|r| r.id)
                .collect::<Vec<_>>()
        };
        assert_eq!(
            find(Query::default()),
            ["fuji", "wave"],
            "Red Fuji, The Great Wave"
        );
        assert_eq!(find(Query::parse("GREAT wave", "", "", "")), ["wave"]);
        assert_eq!(
            find(Query::parse("wave", "hoku", "", "")).len(),
            2,
            "keywords count"
        );
        assert_eq!(find(Query::parse("", "", "1831", "")), ["wave"]);
        assert_eq!(find(Query::parse("", "", "", "1830")), ["fuji"]);
        assert!(find(Query::parse("", "hiroshige", "", "")).is_empty());
        let (page2, total) = t.search(&Query::default(), 1, 1);
        assert_eq!((page2[0].id.as_str(), total), ("wave", 2));
    }
}
