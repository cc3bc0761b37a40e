//! One backend node put together from the cluster configuration: its disks (adopted or
//! recognised), its event log and catalog in its state folder, the library of servable images,
//! and the workers that watch the disks.

use std::path::PathBuf;
use std::sync::Arc;

use cluster::{ClusterConfig, Component, EventKind, NodeConfig, ReplicaState};
use floor::{EventLog, NewEvent};

use crate::audit::AuditReport;
use crate::catalog::{Catalog, CatalogError, SyncReport};
use crate::disk::{self, Disk};
use crate::disk_probe::DiskProbe;
use crate::faults::Faults;
use crate::ingest::status::StatusBook;
use crate::ingest::Ingest;
use crate::library::Library;
use crate::redundancy::{removal, Redundancy};
use crate::worker::Runner;

/// The catalog's folder inside the node's state folder.
pub const CATALOG_DIR: &str = "catalog";
/// The backend's event log inside the node's state folder.
pub const EVENTS_DIR: &str = "events-backend";
/// The portal's view of the uploads this node received.
pub const UPLOADS_DIR: &str = "uploads";

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("no node '{name}' in the configuration (it has: {known})")]
    UnknownNode { name: String, known: String },
    #[error("cannot create the node's state folder {path}: {source}")]
    StateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("event log: {0}")]
    Events(#[from] floor::store::StoreError),
    #[error("catalog: {0}")]
    Catalog(#[from] CatalogError),
    #[error(
        "node {node} has no catalog at {path}: it has not run yet, so there is nothing to audit"
    )]
    NoCatalog { node: String, path: PathBuf },
    #[error("its certificate: {0}")]
    Tls(#[from] floor::tls::TlsError),
}

/// Raises this process's open-file limit to as far as it may go: the more pyramid files a
/// node may keep open, the fewer it opens again (see `OpenPyramids::within_limit`).
fn raise_open_files_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read or write the struct given.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0
        || limit.rlim_cur >= limit.rlim_max
    {
        return;
    }
    let raised = libc::rlimit {
        rlim_cur: limit.rlim_max,
        rlim_max: limit.rlim_max,
    };
    // SAFETY: as above.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
        tracing::debug!(
            from = limit.rlim_cur,
            to = limit.rlim_max,
            "open-file limit raised"
        );
    }
}

/// How to treat the catalog when the node opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CatalogStart {
    /// Use it, bringing it up to date with the disks (rebuilt if missing or damaged).
    Sync,
    /// Throw it away and rebuild it from the disks.
    Rebuild,
}

/// What opening the node found, for its operator.
#[derive(Debug, Default)]
pub struct Opening {
    /// Why the catalog was rebuilt, if it was.
    pub rebuilt: Option<String>,
    pub sync: SyncReport,
    /// Disks not used, and images not served, with the reason.
    pub warnings: Vec<String>,
}

pub struct Node {
    pub config: NodeConfig,
    pub library: Arc<Library>,
    pub catalog: Arc<Catalog>,
    pub events: Arc<EventLog>,
    pub faults: Arc<Faults>,
    pub runner: Runner,
    /// What was found wrong when the node opened (refused disks, replicas not served), for
    /// `/health`.
    pub warnings: Vec<String>,
    /// Where the plain viewer's zoom and pan links go: `http://CANONICAL/images/` when the
    /// cluster has a canonical address, else this node's own `/view/`.
    pub viewer_links: String,
    /// The root of the collection's public URLs (IIIF ids, manifests): the cluster's
    /// `public_url`, else its canonical address, else this node's own address.
    pub public_url: String,
    /// Memory IIIF renders may hold at once.
    pub renders: Arc<crate::iiif::budget::RenderBudget>,
    /// The frontends, by name: this node is a witness in their failover.
    pub frontends: Vec<cluster::FrontendConfig>,
    /// Uploads: received here, staged here for another node, or placed here.
    pub ingest: Arc<Ingest>,
    /// Signs and checks the internal API; `None` when the node has none (uploads are off).
    pub secret: Option<cluster::auth::Secret>,
    /// This node's client for checks of other processes (a frontend, as a witness).
    pub client: floor::Client,
    /// Re-mirroring, trimming and withdrawals: redundancy restoring itself.
    pub redundancy: Arc<Redundancy>,
    /// The scrub's settings, or why it cannot run.
    pub scrub: Result<crate::redundancy::scrub::Settings, String>,
    /// Its certificate, when its image server speaks https.
    pub tls: Option<floor::tls::ServerTls>,
}

fn node_config(cluster: &ClusterConfig, name: &str) -> Result<NodeConfig, NodeError> {
    cluster
        .node(name)
        .cloned()
        .ok_or_else(|| NodeError::UnknownNode {
            name: name.to_string(),
            known: cluster
                .nodes
                .iter()
                .map(|n| n.name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        })
}

/// Audits node `name` while it is not running: its catalog against its disks, reading every
/// file (see [`crate::audit`]). Changes nothing. Disks that are not the configured ones are
/// problems of the report.
pub fn audit(
    cluster: &ClusterConfig,
    name: &str,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<AuditReport, NodeError> {
    let config = node_config(cluster, name)?;
    let path = config.state_dir().join(CATALOG_DIR);
    if !path.exists() {
        return Err(NodeError::NoCatalog {
            node: name.to_string(),
            path,
        });
    }
    let (catalog, why) = Catalog::open(&path, name)?;
    let mut report = audit_disks(&config, catalog.entries(), progress);
    if let Some(why) = why {
        report.problems.insert(0, format!("catalog: {why}"));
    }
    Ok(report)
}

/// Audits running node `name` against `entries`, its catalog as its `/catalog` says it.
pub fn audit_running(
    cluster: &ClusterConfig,
    name: &str,
    entries: Vec<cluster::CatalogEntry>,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<AuditReport, NodeError> {
    let config = node_config(cluster, name)?;
    Ok(audit_disks(&config, entries, progress))
}

fn audit_disks(
    config: &NodeConfig,
    entries: Vec<cluster::CatalogEntry>,
    progress: &mut dyn FnMut(u64, u64),
) -> AuditReport {
    let mut disks = Vec::new();
    let mut refused = Vec::new();
    for d in &config.disks {
        match disk::check(d, &config.name) {
            Ok(_) => disks.push(Arc::new(Disk::new(d.clone()))),
            Err(e) => refused.push(e.to_string()),
        }
    }
    let mut report = crate::audit::audit_entries(entries, &disks, progress);
    report.problems.extend(refused);
    report
}

fn unreadable_event(id: &str, disk: &str, reason: &str) -> NewEvent {
    NewEvent::new(
        Component::Replica {
            image: id.to_string(),
            disk: disk.to_string(),
        },
        EventKind::ReplicaUnreadable,
        format!("the replica of {id} on disk {disk} cannot be read and is not served"),
    )
    .evidence(reason)
}

impl Node {
    /// Opens node `name` of `cluster`. Nothing here stops a node from serving what it can: a
    /// refused disk or an unreadable replica is a warning and an event.
    pub fn open(
        cluster: &ClusterConfig,
        name: &str,
        start: CatalogStart,
    ) -> Result<(Node, Opening), NodeError> {
        let config = node_config(cluster, name)?;
        // Before anything is opened: a certificate that cannot serve stops the start at once.
        let tls = config
            .tls()
            .map(|files| floor::tls::ServerTls::load(files, vec![config.address.to_string()]))
            .transpose()?;
        let state = config.state_dir();
        floor::durable::create_dir(&state).map_err(|source| NodeError::StateDir {
            path: state.clone(),
            source,
        })?;
        let events = Arc::new(EventLog::open(&state.join(EVENTS_DIR), name, "backend")?);
        let mut opening = Opening::default();
        let mut disks = Vec::new();
        for d in &config.disks {
            match disk::adopt_or_check(d, name) {
                Ok(_) => disks.push(Arc::new(Disk::new(d.clone()))),
                Err(e) => {
                    opening.warnings.push(e.to_string());
                    events.record(
                        NewEvent::new(
                            Component::Disk { disk: d.id.clone() },
                            EventKind::DiskRefused,
                            format!("disk {} is not used", d.id),
                        )
                        .at(d.location.clone(), d.serial.clone())
                        .evidence(e.to_string()),
                    );
                }
            }
        }
        let (catalog, why) = Catalog::open(&state.join(CATALOG_DIR), name)?;
        let why = why.or((start == CatalogStart::Rebuild).then(|| "asked for".to_string()));
        opening.sync = match &why {
            Some(why) => {
                let report = catalog.rebuild(&disks)?;
                events.record(NewEvent::new(
                    Component::Catalog,
                    EventKind::CatalogRebuilt,
                    format!(
                        "the catalog was rebuilt from the disks ({why}): {} replicas, {} unreadable",
                        report.added,
                        report.unreadable.len()
                    ),
                ));
                report
            }
            None => catalog.sync(&disks)?,
        };
        opening.rebuilt = why;
        opening
            .warnings
            .extend(opening.sync.problems.iter().cloned());
        for (id, disk, reason) in &opening.sync.unreadable {
            events.record(unreadable_event(id, disk, reason));
        }
        let origin_of = |node: &str| {
            (node != name)
                .then(|| cluster.node(node).map(NodeConfig::origin))
                .flatten()
        };
        raise_open_files_limit();
        let (library, failed) = Library::from_catalog(catalog.entries(), disks, origin_of);
        for (id, reason) in failed {
            if catalog.set_state(&id, ReplicaState::unreadable(reason.clone()))? {
                let disk = catalog.get(&id).map(|e| e.disk).unwrap_or_default();
                events.record(unreadable_event(&id, &disk, &reason));
            }
            opening.warnings.push(format!("{id}: not served: {reason}"));
        }
        // Withdrawn images stay withdrawn, whatever a rebuild or a returning disk found.
        match removal::apply_tombstones(&catalog, &library, library.disks()) {
            Ok(0) => {}
            Ok(n) => tracing::info!(node = name, withdrawn = n, "tombstones applied"),
            Err(e) => opening.warnings.push(format!("tombstones: {e}")),
        }
        catalog.flush();
        events.flush();
        let catalog = Arc::new(catalog);
        let faults = Arc::new(Faults::new(catalog.clone(), events.clone()));
        let library = Arc::new(library);
        let secret = cluster::auth::Secret::load(&cluster.secret_path());
        if let Err(e) = &secret {
            opening.warnings.push(format!("uploads are off: {e}"));
        }
        let secret = secret.map_err(|e| e.to_string());
        let status = StatusBook::open(&state.join(UPLOADS_DIR))?;
        let ingest = Arc::new(Ingest::new(
            name,
            cluster,
            library.disks().to_vec(),
            catalog.clone(),
            library.clone(),
            secret.clone(),
            status,
        ));
        let origins = cluster
            .nodes
            .iter()
            .map(|n| (n.name.clone(), n.origin()))
            .collect();
        let redundancy = Arc::new(Redundancy::new(
            name,
            cluster,
            &state,
            catalog.clone(),
            library.clone(),
            floor::Client::signed(secret.clone(), origins),
            events.clone(),
        ));
        let scrub = crate::redundancy::scrub::Settings::from_config(&cluster.repair);
        if let Err(e) = &scrub {
            opening.warnings.push(format!("scrubbing is off: {e}"));
        }
        let public_url = cluster.public_base().unwrap_or_else(|| config.origin());
        let renders = Arc::new(crate::iiif::budget::RenderBudget::new(
            config
                .render_memory_mb
                .map_or(crate::iiif::budget::DEFAULT_RENDER_MEMORY, |mb| mb << 20),
            crate::iiif::budget::MAX_WAITING,
            crate::iiif::budget::MAX_WAIT,
        ));
        let node = Node {
            tls,
            renders,
            scrub,
            redundancy,
            ingest,
            secret: secret.ok(),
            client: floor::Client::new(),
            config,
            library,
            catalog,
            events,
            faults,
            runner: Runner::new(),
            warnings: opening.warnings.clone(),
            frontends: cluster.frontends.clone(),
            viewer_links: cluster
                .public_base()
                .map_or_else(|| "/view/".to_string(), |base| format!("{base}/images/")),
            public_url,
        };
        Ok((node, opening))
    }

    /// Starts the workers that watch the node's disks and drive its uploads.
    pub fn start_workers(&self) {
        if self.secret.is_some() {
            self.runner.spawn(self.ingest.worker());
        }
        self.runner.spawn(self.redundancy.worker());
        match &self.scrub {
            Ok(settings) => {
                for disk in self.library.disks() {
                    self.runner.spawn(crate::redundancy::scrub::Scrubber::new(
                        disk.clone(),
                        &self.config.state_dir(),
                        self.catalog.clone(),
                        self.library.clone(),
                        self.events.clone(),
                        settings.clone(),
                    ));
                }
            }
            Err(e) => tracing::error!(error = %e, "scrubbing is off"),
        }
        for disk in self.library.disks() {
            self.runner.spawn(DiskProbe::new(
                disk.clone(),
                self.faults.clone(),
                self.return_hook(),
            ));
        }
    }

    /// What a failed disk that answers again goes through before it serves: see
    /// [`crate::redundancy::disk_return`].
    fn return_hook(&self) -> crate::disk_probe::OnReturn {
        let (catalog, library, events) = (
            self.catalog.clone(),
            self.library.clone(),
            self.events.clone(),
        );
        let (me, redundancy) = (self.config.name.clone(), self.redundancy.clone());
        Arc::new(move |disk| {
            let (catalog, library, events, me, r) = (
                catalog.clone(),
                library.clone(),
                events.clone(),
                me.clone(),
                redundancy.clone(),
            );
            Box::pin(async move {
                let checked = tokio::task::spawn_blocking(move || {
                    let origin_of = |n: &str| r.origin_of(n);
                    crate::redundancy::disk_return::check(
                        &me, &disk, &catalog, &library, &events, &origin_of,
                    )
                })
                .await;
                match checked {
                    Ok(Ok(found)) => tracing::info!(?found, "a returning disk was checked"),
                    Ok(Err(e)) => tracing::error!(error = %e, "a returning disk is not used"),
                    Err(e) => tracing::error!(error = %e, "the check of a returning disk died"),
                }
            })
        })
    }
}
