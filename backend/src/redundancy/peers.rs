//! What this node knows of the others: each one's catalog, followed the way a frontend does
//! (`GET /catalog?since=V`, started again when the catalog's name changes), the room on its
//! disks (`/health`), whether it answers, and since when each replica has been unreadable
//! as far as this node has seen. Only what the re-mirror rules need is kept.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use cluster::{CatalogPage, ClusterConfig, ReplicaState};

use super::protocol::{Holding, Set};

/// How long a node has to answer a catalog or health question.
const ASK: Duration = Duration::from_secs(5);
/// Entries asked for at once (no file sums, no metadata: the rules need states and sets), and
/// pages read from one node at a round. Background work, so a few: a page costs its node some
/// 0.1 s of CPU, and a new frontend's pages and the visitors come first. A peer of 500,000
/// replicas is read whole in about 17 rounds (under a minute); nothing counts as lost until then.
const PAGE: usize = 10_000;
const PAGES_PER_ROUND: usize = 3;
/// The largest catalog page read (a page of 10,000 without file sums is some 5 MB).
const MAX_PAGE: usize = 64 << 20;
/// How much earlier than this node heard of it a replica may count as unreadable, from the
/// time stamp its node gave it: the news' longest usual way here (a re-mirror round and a slow
/// answer), so that a clock set wrong on that node cannot end a grace period early by more.
const HEARD_LATE: Duration = Duration::from_secs(10);

/// One replica of another node, as its catalog says it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Held {
    pub state: ReplicaState,
    pub set: Set,
    /// Since when it has not been servable, as first seen here.
    pub bad_since: Option<Instant>,
}

#[derive(Debug)]
pub struct PeerNode {
    pub name: String,
    pub domain: String,
    origin: String,
    pub catalog: String,
    version: u64,
    /// Whether its catalog was read whole at least once since this node started.
    pub known: bool,
    known_at: Option<Instant>,
    pub replicas: HashMap<String, Held>,
    /// When it last answered, and since when it has not.
    pub last_answer: Option<Instant>,
    pub silent_since: Option<Instant>,
    pub last_error: Option<String>,
    /// The most free bytes on one of its disks in service.
    pub most_free: Option<u64>,
}

impl PeerNode {
    pub fn up(&self) -> bool {
        self.silent_since.is_none() && self.last_answer.is_some()
    }

    /// What it holds of `image`, now.
    pub fn holding(&self, image: &str, now: Instant) -> Holding {
        if let Some(Held {
            state: ReplicaState::Deleted { .. },
            ..
        }) = self.replicas.get(image)
        {
            return Holding::Deleted;
        }
        if let Some(since) = self.silent_since {
            return Holding::Silent(now - since);
        }
        match self.replicas.get(image) {
            Some(h) if h.state.servable() => Holding::Readable(h.set.clone()),
            Some(Held {
                bad_since: Some(since),
                ..
            }) => Holding::Unreadable(now - *since),
            // Not in its catalog at all: counted from when this node started knowing it.
            _ => Holding::Unreadable(self.known_at.map_or(Duration::ZERO, |t| now - t)),
        }
    }
}

/// The other nodes.
#[derive(Debug)]
pub struct Peers {
    pub nodes: Vec<PeerNode>,
}

impl Peers {
    pub fn new(cluster: &ClusterConfig, me: &str) -> Peers {
        Peers {
            nodes: cluster
                .nodes
                .iter()
                .filter(|n| n.name != me)
                .map(|n| PeerNode {
                    name: n.name.clone(),
                    domain: n.power_domain.clone(),
                    origin: n.origin(),
                    catalog: String::new(),
                    version: 0,
                    known: false,
                    replicas: HashMap::new(),
                    last_answer: None,
                    silent_since: None,
                    last_error: None,
                    most_free: None,
                    known_at: None,
                })
                .collect(),
        }
    }

    pub fn get(&self, name: &str) -> Option<&PeerNode> {
        self.nodes.iter().find(|n| n.name == name)
    }

    /// Asks every other node for its catalog changes and its room. A node that does not
    /// answer is silent from the first failure. Returns the ids whose entries changed.
    pub async fn refresh(&mut self, client: &floor::Client) -> Vec<String> {
        let asks = self.nodes.iter().map(|n| {
            let (client, origin, version, catalog) = (
                client.clone(),
                n.origin.clone(),
                n.version,
                n.catalog.clone(),
            );
            async move {
                let pages = read_pages(&client, &origin, version, catalog).await;
                let health: Option<serde_json::Value> = client
                    .get_json(&format!("{origin}/health"), ASK, 1 << 20)
                    .await
                    .ok();
                (pages, health)
            }
        });
        let answers = futures_util::future::join_all(asks).await;
        let now = Instant::now();
        let mut changed = Vec::new();
        for (node, (pages, health)) in self.nodes.iter_mut().zip(answers) {
            match pages {
                Ok(pages) => pages
                    .into_iter()
                    .for_each(|p| node.apply(p, now, &mut changed)),
                Err(e) => {
                    node.silent_since.get_or_insert(now);
                    node.last_error = Some(e.to_string());
                }
            }
            node.most_free = health.and_then(|h| most_free(&h));
        }
        changed
    }
}

/// The changes of a node's catalog after `version` of catalog `name`, a page at a time, up to
/// [`PAGES_PER_ROUND`] (the rest at the next round). A catalog renamed (rebuilt) is read again
/// from its start. An error after the first page keeps the pages read.
async fn read_pages(
    client: &floor::Client,
    origin: &str,
    mut since: u64,
    mut name: String,
) -> Result<Vec<CatalogPage>, floor::CallError> {
    let mut pages: Vec<CatalogPage> = Vec::new();
    while pages.len() < PAGES_PER_ROUND {
        let url = format!("{origin}/catalog?since={since}&files=false&meta=false&limit={PAGE}");
        let page: CatalogPage = match client.get_json_in_background(&url, ASK, MAX_PAGE).await {
            Ok(p) => p,
            Err(_) if !pages.is_empty() => break,
            Err(e) => return Err(e),
        };
        if page.catalog != name && since != 0 {
            // Rebuilt: read it whole again.
            (since, name) = (0, page.catalog);
            pages.clear();
            continue;
        }
        (since, name) = (page.version, page.catalog.clone());
        let more = page.more;
        pages.push(page);
        if !more {
            break;
        }
    }
    Ok(pages)
}

impl PeerNode {
    fn apply(&mut self, page: CatalogPage, now: Instant, changed: &mut Vec<String>) {
        if page.catalog != self.catalog {
            // Rebuilt (or new): nothing it said before holds, and nothing missing from it
            // means anything until it has been read whole again.
            self.replicas.clear();
            self.catalog = page.catalog.clone();
            (self.known, self.known_at) = (false, None);
        }
        let now_ms = cluster::unix_now_ms();
        for e in page.entries {
            changed.push(e.id.clone());
            let servable = e.state.servable();
            let old_bad = self.replicas.get(&e.id).and_then(|h| h.bad_since);
            let bad_since = if servable {
                None
            } else {
                old_bad.or_else(|| Some(unreadable_since(&e.state, now, now_ms)))
            };
            self.replicas.insert(
                e.id.clone(),
                Held {
                    set: Set::new(e.epoch, e.nodes),
                    state: e.state,
                    bad_since,
                },
            );
        }
        self.version = page.version;
        if !self.known && !page.more {
            self.known = true;
            self.known_at = Some(now);
        }
        self.last_answer = Some(now);
        self.silent_since = None;
        self.last_error = None;
    }
}

/// When a replica first heard of as not servable became so, on this node's clock: its node's
/// time stamp, at most [`HEARD_LATE`] before `now`; now when it has none.
fn unreadable_since(state: &ReplicaState, now: Instant, now_ms: u64) -> Instant {
    let since_ms = match state {
        ReplicaState::Unreadable { since_ms, .. } if *since_ms > 0 => *since_ms,
        _ => return now,
    };
    let ago = Duration::from_millis(now_ms.saturating_sub(since_ms)).min(HEARD_LATE);
    now.checked_sub(ago).unwrap_or(now)
}

/// The most free bytes on one disk in service, from a node's `/health`.
fn most_free(health: &serde_json::Value) -> Option<u64> {
    health["disks"]
        .as_array()?
        .iter()
        .filter(|d| d["state"] == "healthy")
        .filter_map(|d| d["free_bytes"].as_u64())
        .max()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(version: u64, state: ReplicaState) -> CatalogPage {
        CatalogPage {
            node: "node-b".into(),
            catalog: "b-1".into(),
            version,
            more: false,
            entries: vec![cluster::CatalogEntry {
                id: "img-1".into(),
                version,
                state,
                disk: "b1".into(),
                nodes: vec!["node-a".into(), "node-b".into()],
                epoch: 1,
                width: 1,
                height: 1,
                meta: cluster::ImageMeta::default(),
                files: Vec::new(),
            }],
        }
    }

    fn peer() -> PeerNode {
        PeerNode {
            name: "node-b".into(),
            domain: "p2".into(),
            origin: "http://127.0.0.1:8002".into(),
            catalog: String::new(),
            version: 0,
            known: false,
            known_at: None,
            replicas: HashMap::new(),
            last_answer: None,
            silent_since: None,
            last_error: None,
            most_free: None,
        }
    }

    fn unreadable_for(p: &PeerNode, now: Instant) -> Duration {
        match p.holding("img-1", now) {
            Holding::Unreadable(d) => d,
            other => panic!("img-1 should be unreadable, is {other:?}"),
        }
    }

    #[test]
    fn a_grace_counts_from_the_failure_as_its_node_stamped_it_within_a_bound() {
        let now = Instant::now();
        let now_ms = cluster::unix_now_ms();
        let mut p = peer();
        p.apply(page(1, ReplicaState::Ok), now, &mut Vec::new());
        assert!(matches!(p.holding("img-1", now), Holding::Readable(_)));

        // Stamped 3 s ago by its node: unreadable for 3 s already, as this node first hears.
        let stamped = ReplicaState::Unreadable {
            reason: "disk b1 failed".into(),
            since_ms: now_ms - 3_000,
        };
        p.apply(page(2, stamped), now, &mut Vec::new());
        let d = unreadable_for(&p, now);
        assert!(
            d >= Duration::from_millis(2_900) && d <= Duration::from_millis(3_500),
            "{d:?}"
        );

        // Said again later (another change of the entry): the first time holds.
        let later = now + Duration::from_secs(1);
        let again = ReplicaState::Unreadable {
            reason: "disk b1 failed".into(),
            since_ms: now_ms + 1_000,
        };
        p.apply(page(3, again), later, &mut Vec::new());
        assert!(unreadable_for(&p, later) >= Duration::from_millis(3_900));

        // A stamp an hour old (a clock set wrong, or old news) counts as HEARD_LATE at most.
        let mut p = peer();
        let old = ReplicaState::Unreadable {
            reason: "disk b1 failed".into(),
            since_ms: now_ms - 3_600_000,
        };
        p.apply(page(1, old), now, &mut Vec::new());
        assert!(unreadable_for(&p, now) <= HEARD_LATE + Duration::from_millis(500));

        // One in the future, or none: from when this node heard.
        for since_ms in [now_ms + 60_000, 0] {
            let mut p = peer();
            let state = ReplicaState::Unreadable {
                reason: "disk b1 failed".into(),
                since_ms,
            };
            p.apply(page(1, state), now, &mut Vec::new());
            assert!(unreadable_for(&p, now) < Duration::from_millis(500));
        }
    }
}
