//! One worker per backend: every second, ask its `/health` (which touches each of its disks),
//! and when it answers, fetch what changed in its catalog. A backend that does not answer in
//! time is down at once, so its images go to their other replica within about a second.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use cluster::worker::{BoxFuture, Worker, WorkerState};
use cluster::CatalogPage;
use serde::Deserialize;

use crate::table::Table;

/// How often every backend is asked.
pub const CHECK_INTERVAL: Duration = Duration::from_secs(1);
/// A health answer slower than this counts as none.
pub const HEALTH_DEADLINE: Duration = Duration::from_millis(500);
/// A catalog page may be large (the first one holds every image of the node).
pub const CATALOG_DEADLINE: Duration = Duration::from_secs(20);
/// Larger catalog pages are refused: a page of 100 000 entries is about 60 MB.
const MAX_CATALOG: usize = 256 << 20;
/// Entries asked for in one catalog answer (the node's most), and answers applied per round.
const CATALOG_PAGE: usize = 10_000;
const PAGES_PER_ROUND: usize = 20;

/// The part of a backend's `/health` a frontend needs.
#[derive(Deserialize)]
struct Health {
    #[serde(default)]
    disks: Vec<DiskHealth>,
}

#[derive(Deserialize)]
struct DiskHealth {
    id: String,
    state: String,
}

pub struct BackendWatch {
    node: String,
    origin: String,
    table: Arc<Table>,
    /// Kept-alive connections to every backend, shared by the watches of one frontend.
    client: floor::Client,
    checks: u64,
    /// The last failure, said once until it changes.
    last_said: Option<String>,
}

impl BackendWatch {
    pub fn new(node: &str, origin: &str, table: Arc<Table>, client: floor::Client) -> BackendWatch {
        BackendWatch {
            node: node.to_string(),
            origin: origin.to_string(),
            table,
            client,
            checks: 0,
            last_said: None,
        }
    }

    /// Logs a failure once, not every second.
    fn say(&mut self, what: Option<String>) {
        if what != self.last_said {
            let me = self.client.identity().unwrap_or_default();
            match &what {
                Some(w) => {
                    tracing::warn!(frontend = me, backend = %self.node, "backend {}: {w}", self.node)
                }
                None if self.checks > 1 => {
                    tracing::info!(frontend = me, backend = %self.node, "backend {} answers again", self.node)
                }
                None => {}
            }
            self.last_said = what;
        }
    }

    async fn check(&mut self) -> Option<String> {
        let health: Health = match self
            .client
            .get_json(
                &format!("{}/health", self.origin),
                HEALTH_DEADLINE,
                floor::client::MAX_ANSWER,
            )
            .await
            .map_err(|e| e.to_string())
        {
            Ok(h) => h,
            Err(e) => {
                self.table.set_health(&self.node, Err(e.clone()));
                return Some(format!("down: {e}"));
            }
        };
        let failed: HashSet<String> = health
            .disks
            .into_iter()
            .filter(|d| d.state == "failed")
            .map(|d| d.id)
            .collect();
        self.table.set_health(&self.node, Ok(failed));
        let (name, since) = self.table.cursor(&self.node);
        let page = match self.fetch(since).await {
            Ok(page) if page.catalog != name && since != 0 => self.fetch(0).await,
            other => other,
        };
        match page {
            Ok(page) if page.node != self.node => {
                let why = format!(
                    "its catalog says it is node {}, not {}: ignored (check the configuration)",
                    page.node, self.node
                );
                self.table.catalog_failed(&self.node, why.clone());
                Some(why)
            }
            Ok(mut page) => {
                // A large catalog comes in pages; a few of them a round, so that a backend
                // going down during the first load is still seen within seconds.
                for _ in 0..PAGES_PER_ROUND {
                    let (more, next, catalog) = (page.more, page.version, page.catalog.clone());
                    self.table.apply(page);
                    if !more {
                        break;
                    }
                    page = match self.fetch(next).await {
                        Ok(p) if p.node == self.node && p.catalog == catalog => p,
                        // Rebuilt meanwhile: the next round starts it again from 0.
                        Ok(_) => break,
                        Err(e) => {
                            let why = format!("catalog: {e}");
                            self.table.catalog_failed(&self.node, why.clone());
                            return Some(why);
                        }
                    };
                }
                None
            }
            Err(e) => {
                let why = format!("catalog: {e}");
                self.table.catalog_failed(&self.node, why.clone());
                Some(why)
            }
        }
    }

    async fn fetch(&self, since: u64) -> Result<CatalogPage, String> {
        self.client
            .get_json(
                // No file sums: the table uses none, and they are most of a page.
                &format!(
                    "{}/catalog?since={since}&files=false&limit={CATALOG_PAGE}",
                    self.origin
                ),
                CATALOG_DEADLINE,
                MAX_CATALOG,
            )
            .await
            .map_err(|e| e.to_string())
    }
}

impl Worker for BackendWatch {
    fn name(&self) -> String {
        format!("watch backend {}", self.node)
    }

    fn work(&mut self) -> BoxFuture<'_, Result<WorkerState, String>> {
        Box::pin(async move {
            self.checks += 1;
            let problem = self.check().await;
            self.say(problem);
            Ok(WorkerState::Throttled(CHECK_INTERVAL))
        })
    }

    fn wait_for_work(&mut self) -> BoxFuture<'_, ()> {
        Box::pin(tokio::time::sleep(CHECK_INTERVAL))
    }

    fn progress(&self) -> String {
        match &self.last_said {
            None => format!("{} checks, up", self.checks),
            Some(p) => format!("{} checks; {p}", self.checks),
        }
    }
}
