//! `CLUSTER.toml`: nodes, their disks and where each disk physically is, with the checks that
//! refuse a configuration that cannot be right.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The port a node's monitor listens on unless the configuration says otherwise.
pub const DEFAULT_MONITOR_PORT: u16 = 9190;

/// The whole cluster, as written in `CLUSTER.toml`.
// Not `Eq`: the byte quota is a decimal number of gigabytes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    /// A name for reports and the operator ("Museum of X, basement rack").
    pub name: String,
    /// The address visitors use (`http://canonical/images/ID`), held by one frontend at a time.
    #[serde(default)]
    pub canonical: Option<SocketAddr>,
    /// The prefix length of the canonical IP's network, for the alias (default 24).
    #[serde(default)]
    pub canonical_prefix: Option<u8>,
    /// The URL the world knows the collection by (`https://images.museum.example`): the root
    /// of every IIIF id, manifest and collection, whichever node or frontend answers, so ids
    /// stay the same across failover and never echo a visitor's `Host` header. Default: the
    /// canonical address over http, or over https when the frontends serve TLS.
    #[serde(default)]
    pub public_url: Option<String>,
    /// The certificates (PEM) that the cluster's processes trust when they call each other
    /// over https: the cluster's own CA, or its hosts' certificates. Relative to this file's
    /// folder; default: the system's trusted roots.
    #[serde(default)]
    pub tls_ca: Option<PathBuf>,
    /// The file holding the cluster's shared secret, which signs every request of the
    /// backends' internal API and the portal's session cookies. Relative to this file's folder;
    /// default `cluster.secret` next to it. `td secret --config` makes one.
    #[serde(default)]
    pub secret_file: Option<PathBuf>,
    /// The portal's accounts (`td user add`), Argon2 hashes. Default `users.json` next to this
    /// file.
    #[serde(default)]
    pub users_file: Option<PathBuf>,
    /// The addresses of TLS terminators or proxies in front of the frontends: only a
    /// connection from one of them may say, with `X-Forwarded-For` or `Forwarded`, which
    /// client it carries (for the sign-in limits); anyone else's such headers are ignored.
    #[serde(default)]
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// How the cluster restores redundancy by itself (grace periods before a replica counts
    /// as lost).
    #[serde(default)]
    pub repair: RepairConfig,
    /// Where the weekly visit report (and an urgent ticket's mail) goes, and when.
    #[serde(default)]
    pub mail: MailConfig,
    /// What one account may upload per day, on each node.
    #[serde(default)]
    pub quota: QuotaConfig,
    #[serde(rename = "frontend", default)]
    pub frontends: Vec<FrontendConfig>,
    #[serde(rename = "node")]
    pub nodes: Vec<NodeConfig>,
}

/// `[quota]`: what one account may send one node in 24 hours. Declared lengths count at once
/// (a declaration takes room and a staging folder); an image's pixels count once it is tiled,
/// and an account over its megapixels has nothing more tiled until the day has passed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QuotaConfig {
    /// Decimal: a small archive may allow `0.5`.
    pub gigabytes_per_day: f64,
    pub megapixels_per_day: u64,
}

impl Default for QuotaConfig {
    fn default() -> Self {
        QuotaConfig {
            gigabytes_per_day: 200.0,
            megapixels_per_day: 20_000,
        }
    }
}

impl QuotaConfig {
    /// The daily byte quota in bytes (a negative or unreadable number allows nothing).
    pub fn bytes_per_day(&self) -> u64 {
        // `as` saturates: NaN and negatives are 0, and anything past u64 is u64::MAX.
        (self.gigabytes_per_day * 1e9) as u64
    }
}

/// `[repair]`: when a replica counts as lost and is copied again from the other one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RepairConfig {
    /// A replica whose disk failed, vanished or was refused, or that was found damaged, is
    /// re-mirrored after this many seconds (default 60: a cable reseated at once is not worth
    /// a copy).
    pub disk_grace_seconds: u64,
    /// A replica on a node that does not answer is re-mirrored after this many seconds
    /// (default 900: a reboot is common and cheap, a copy of a node's disks is not).
    pub node_grace_seconds: u64,
    /// An upload that received no chunk for this many hours is abandoned: its staging is
    /// cleared on every node (default 24).
    pub upload_expiry_hours: u64,
    /// The same in seconds, for tests and impatient operators; wins over the hours when given.
    pub upload_expiry_seconds: Option<u64>,
    /// How often every replica on a disk is read back against its manifest, in days (default
    /// 30: a full pass of every disk a month).
    pub scrub_period_days: u64,
    /// When scrubbing may run, as a cron expression with seconds (`sec min hour day month
    /// weekday`, e.g. `"* * 1-5 * * *"` for 01:00–05:59 every day). Default: at any time.
    pub scrub_window: Option<String>,
    /// How fast one disk's scrub may read, in MB per second (default 50; 0 for no limit).
    pub scrub_rate_mb: u64,
    /// A backend alive but not answering for this many seconds is killed by its monitor and
    /// started again (default 60; only a monitor that starts its backend does this).
    pub hung_backend_seconds: u64,
    /// A node silent this many seconds is power-cycled through its `power_switch` by its
    /// watcher, at most once an hour (default 180: a reboot answers again sooner).
    pub power_cycle_after_seconds: u64,
    /// A disk or enclosure fault that lasts this many seconds becomes a repair ticket
    /// (default 30: a disk back sooner was reseated or reset, not broken); disks of one bus
    /// failing within it of each other are one fault of the bus.
    pub ticket_grace_seconds: u64,
    /// A repair ticket whose part was seen working again closes after it kept working this
    /// many seconds (default 600).
    pub ticket_settle_seconds: u64,
}

impl RepairConfig {
    /// How long an upload may go without a chunk before it is cleared.
    pub fn upload_expiry(&self) -> std::time::Duration {
        std::time::Duration::from_secs(
            self.upload_expiry_seconds
                .unwrap_or(self.upload_expiry_hours.saturating_mul(3600)),
        )
    }
}

impl Default for RepairConfig {
    fn default() -> RepairConfig {
        RepairConfig {
            disk_grace_seconds: 60,
            node_grace_seconds: 900,
            upload_expiry_hours: 24,
            upload_expiry_seconds: None,
            scrub_period_days: 30,
            scrub_window: None,
            scrub_rate_mb: 50,
            hung_backend_seconds: 60,
            power_cycle_after_seconds: 180,
            ticket_grace_seconds: 30,
            ticket_settle_seconds: 600,
        }
    }
}

/// `[mail]`: the operator's mail. Sent through `smtp_host` when it is set; otherwise, with
/// `outbox`, written into that folder as `.eml` files (the demo, or a site without a mail
/// server); with neither, no mail is sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MailConfig {
    /// The SMTP server (a name or an IP address).
    pub smtp_host: Option<String>,
    /// Its port (default 587, the submission port; 465 for `security = "tls"`).
    pub smtp_port: u16,
    /// How the connection is protected (default `starttls`).
    pub security: MailSecurity,
    /// The account on the SMTP server, if it asks for one.
    pub user: Option<String>,
    /// The file holding that account's password (one line). Relative to this file's folder.
    pub password_file: Option<PathBuf>,
    /// The sender (`td@museum.example` or `Tertiary Disk <td@museum.example>`).
    pub from: Option<String>,
    /// The operators who get the mail.
    pub to: Vec<String>,
    /// Without `smtp_host`: the folder the mails are written into. Relative to this file's
    /// folder.
    pub outbox: Option<PathBuf>,
    /// When the weekly visit report is sent: a cron expression with seconds (`sec min hour
    /// day month weekday`), in the frontend's local time. Default `"0 0 7 * * Mon"`: Mondays
    /// at 07:00.
    pub report_schedule: String,
}

/// The default of `[mail] report_schedule`: Mondays at 07:00.
pub const DEFAULT_REPORT_SCHEDULE: &str = "0 0 7 * * Mon";

impl Default for MailConfig {
    fn default() -> MailConfig {
        MailConfig {
            smtp_host: None,
            smtp_port: 587,
            security: MailSecurity::default(),
            user: None,
            password_file: None,
            from: None,
            to: Vec::new(),
            outbox: None,
            report_schedule: DEFAULT_REPORT_SCHEDULE.to_string(),
        }
    }
}

impl MailConfig {
    /// Whether mail goes anywhere (an SMTP server or an outbox folder).
    pub fn enabled(&self) -> bool {
        self.smtp_host.is_some() || self.outbox.is_some()
    }

    /// The report schedule, parsed (it was checked when the configuration was read).
    pub fn schedule(&self) -> Result<cron::Schedule, Problem> {
        parse_schedule(&self.report_schedule)
    }

    fn check(&self) -> Result<(), Problem> {
        self.schedule()?;
        let incomplete = |what: &str| Problem::MailIncomplete(what.to_string());
        if self.smtp_host.is_some() && self.outbox.is_some() {
            return Err(incomplete(
                "smtp_host and outbox are both set; mail goes to one of them: remove one",
            ));
        }
        if self
            .smtp_host
            .as_deref()
            .is_some_and(|h| h.trim().is_empty())
        {
            return Err(incomplete("smtp_host is empty"));
        }
        if self.user.is_some() != self.password_file.is_some() {
            return Err(incomplete(
                "user and password_file go together: give both, or neither",
            ));
        }
        if self.enabled() {
            if self.from.is_none() {
                return Err(incomplete("from (the sender's address) is missing"));
            }
            if self.to.is_empty() {
                return Err(incomplete(
                    "to (at least one operator's address) is missing",
                ));
            }
        }
        for address in self.from.iter().chain(&self.to) {
            if !plausible_address(address) {
                return Err(Problem::MailAddress(address.clone()));
            }
        }
        if let (Some(host), MailSecurity::None, Some(_)) =
            (&self.smtp_host, self.security, &self.user)
        {
            if !is_loopback_host(host) {
                return Err(Problem::MailClearPassword(host.clone()));
            }
        }
        Ok(())
    }
}

/// How the connection to the SMTP server is protected.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MailSecurity {
    /// Plain at first, then TLS before anything is sent (`STARTTLS`, required).
    #[default]
    Starttls,
    /// TLS from the first byte (usually port 465).
    Tls,
    /// No encryption: only for a server on this machine (a test server on loopback).
    None,
}

impl std::fmt::Display for MailSecurity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            MailSecurity::Starttls => "STARTTLS",
            MailSecurity::Tls => "TLS",
            MailSecurity::None => "no encryption",
        })
    }
}

/// A cron expression with seconds, or the problem naming it.
fn parse_schedule(expression: &str) -> Result<cron::Schedule, Problem> {
    use std::str::FromStr;
    cron::Schedule::from_str(expression).map_err(|e| Problem::BadSchedule {
        expression: expression.to_string(),
        why: e.to_string(),
    })
}

/// An address as a person writes it: `someone@host`, or `Name <someone@host>`. The mail
/// library checks it fully when it sends; this catches what is plainly wrong when the
/// configuration is read.
fn plausible_address(text: &str) -> bool {
    let bare = match (text.rfind('<'), text.strip_suffix('>')) {
        (Some(open), Some(inner)) => &inner[open + 1..],
        (None, None) => text,
        _ => return false,
    };
    let Some((local, domain)) = bare.rsplit_once('@') else {
        return false;
    };
    !local.is_empty()
        && !domain.is_empty()
        && !bare
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '<' | '>' | ',' | ';'))
        && !text.chars().any(char::is_control)
}

/// `localhost`, or an IP address on this machine's loopback.
fn is_loopback_host(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// One of the redirecting frontends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FrontendConfig {
    pub name: String,
    /// Its own address (not the canonical one): for its peer (heartbeats over UDP on the
    /// same port) and for operators.
    pub address: SocketAddr,
    /// On a real network: the interface the canonical IP is added to as an alias. Without
    /// it (the demo), the canonical address is a socket address only the holder binds.
    #[serde(default)]
    pub interface: Option<String>,
    /// Its certificate chain (PEM), with `tls_key`: both its addresses then speak https
    /// only. It serves the canonical address too when it holds it, so it must also name the
    /// canonical address and the host of `public_url`.
    #[serde(default)]
    pub tls_cert: Option<PathBuf>,
    /// The private key (PEM) of `tls_cert`.
    #[serde(default)]
    pub tls_key: Option<PathBuf>,
}

/// One backend node: a PC with disks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    pub name: String,
    /// Where its image server listens.
    pub address: SocketAddr,
    /// Where its monitor answers (`/health`, `/events`). Default: the node's IP, port
    /// [`DEFAULT_MONITOR_PORT`].
    #[serde(default)]
    pub monitor: Option<SocketAddr>,
    /// The two replicas of an image live in different power domains.
    pub power_domain: String,
    #[serde(default)]
    pub rack: String,
    /// Where the node keeps its own state (catalog, event log): a folder on its system disk,
    /// never on one of its data disks. Default: `/var/lib/td/NODE`.
    #[serde(default)]
    pub state_dir: Option<PathBuf>,
    #[serde(rename = "disk", default)]
    pub disks: Vec<DiskConfig>,
    /// Memory IIIF renders may hold at once on this node, in MiB (default 512); renders
    /// beyond it wait briefly, then are answered 503. Stored tiles never count.
    #[serde(default)]
    pub render_memory_mb: Option<u64>,
    /// Memory a tiling of an uploaded original may take, in MiB (default 4096): it runs as a
    /// child process held to it, so an image that needs more fails alone, with a reason.
    #[serde(default)]
    pub tile_memory_mb: Option<u64>,
    /// Minutes a tiling may take (default 60).
    #[serde(default)]
    pub tile_minutes: Option<u64>,
    /// The remote power switch that can cycle its outlet: a node silent for
    /// `power_cycle_after_seconds` is power-cycled through it by its watcher, at most once an
    /// hour.
    #[serde(default)]
    pub power_switch: Option<PowerSwitch>,
    /// Its certificate chain (PEM), with `tls_key`: its image server then speaks https only,
    /// and the certificate must name its address (as visitors are sent to it).
    #[serde(default)]
    pub tls_cert: Option<PathBuf>,
    /// The private key (PEM) of `tls_cert`.
    #[serde(default)]
    pub tls_key: Option<PathBuf>,
}

/// A host's certificate chain and key, both PEM files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

fn tls_files(cert: &Option<PathBuf>, key: &Option<PathBuf>) -> Option<TlsFiles> {
    Some(TlsFiles {
        cert: cert.clone()?,
        key: key.clone()?,
    })
}

impl FrontendConfig {
    /// Its certificate and key, when it serves https.
    pub fn tls(&self) -> Option<TlsFiles> {
        tls_files(&self.tls_cert, &self.tls_key)
    }
}

/// `[node.power_switch]`: reached over SSH with a key; its command cycles the node's outlet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PowerSwitch {
    /// `HOST:PORT` of its SSH server.
    pub host: String,
    pub user: String,
    /// The private key to log in with (relative to this file's folder).
    pub key_file: PathBuf,
    /// A known_hosts file naming the switch's host key (relative to this file's folder). Without
    /// it the key is taken as offered and its fingerprint recorded with the action.
    #[serde(default)]
    pub known_hosts: Option<PathBuf>,
    /// What to run there to cycle this node's outlet (`power cycle outlet 3`).
    pub command: String,
}

impl NodeConfig {
    /// The folder of the node's catalog and event log.
    pub fn state_dir(&self) -> PathBuf {
        self.state_dir
            .clone()
            .unwrap_or_else(|| Path::new("/var/lib/td").join(&self.name))
    }

    /// Where its monitor answers.
    pub fn monitor_address(&self) -> SocketAddr {
        self.monitor
            .unwrap_or_else(|| SocketAddr::new(self.address.ip(), DEFAULT_MONITOR_PORT))
    }

    /// The origin its image server answers at, as a browser writes it.
    pub fn origin(&self) -> String {
        let scheme = if self.tls().is_some() {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://{}", self.address)
    }

    /// Its certificate and key, when it serves https.
    pub fn tls(&self) -> Option<TlsFiles> {
        tls_files(&self.tls_cert, &self.tls_key)
    }
}

/// One disk of a node: a mounted filesystem (or, in the demo, a directory).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiskConfig {
    /// Unique in the cluster; written into the disk's identity file when it is adopted.
    pub id: String,
    /// Where it is mounted.
    pub path: PathBuf,
    /// The drive's serial number, where known (the operator matches it on the label).
    #[serde(default)]
    pub serial: Option<String>,
    #[serde(default)]
    pub location: Location,
}

/// Where a disk physically is, so that a repair instruction names the right slot.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Location {
    pub adapter: Option<u32>,
    pub bus: Option<u32>,
    pub target: Option<u32>,
    pub enclosure: Option<String>,
    pub slot: Option<u32>,
    pub power_feed: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a valid cluster configuration: {source}")]
    Syntax {
        path: PathBuf,
        source: Box<toml::de::Error>,
    },
    #[error("{path}: {problem}")]
    Invalid { path: PathBuf, problem: Problem },
}

/// What is wrong in a configuration that parses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    #[error("the cluster has no nodes")]
    NoNodes,
    #[error("the name '{0}' is given to two nodes or frontends")]
    DuplicateNode(String),
    #[error("address {0} is given twice (nodes, frontends and the canonical address each need their own)")]
    DuplicateAddress(SocketAddr),
    #[error("disk id '{0}' is used twice")]
    DuplicateDisk(String),
    #[error("disk path {0} is given to two disks")]
    DuplicatePath(PathBuf),
    #[error("'{0}' is not a usable name: letters, digits, '-' and '_' only, 1 to 64 of them")]
    BadName(String),
    #[error("[mail] report_schedule {expression:?} is not a cron expression with seconds (sec min hour day month weekday, e.g. \"0 0 7 * * Mon\"): {why}")]
    BadSchedule { expression: String, why: String },
    #[error("public_url {0:?} is not a site's root URL: write it as http://host or https://host, with an optional :port and no path, query or trailing slash")]
    PublicUrl(String),
    #[error("some frontends have tls_cert and tls_key and others not: the canonical address moves between them, so all serve https or none")]
    TlsOnSomeFrontends,
    #[error("{0} has only one of tls_cert and tls_key: give both (a certificate chain and its private key, PEM) or neither")]
    TlsHalf(String),
    #[error("[mail]: {0}")]
    MailIncomplete(String),
    #[error(
        "[mail]: {0:?} is not a mail address (someone@example.org, or Name <someone@example.org>)"
    )]
    MailAddress(String),
    #[error("[mail]: security = \"none\" would send the password to {0} unencrypted; use \"starttls\" or \"tls\" (\"none\" is for a server on this machine)")]
    MailClearPassword(String),
}

/// `http(s)://host[:port]`: a host of letters, digits, '.', '-' (or a bracketed IPv6
/// address), nothing after it. Ids are built from it, so it must not carry a path or quotes.
fn valid_public_url(url: &str) -> bool {
    let Some(rest) = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
    else {
        return false;
    };
    let (host, port) = match rest.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') || h.ends_with(']') => (h, Some(p)),
        _ => (rest, None),
    };
    let host_ok = if let Some(v6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        v6.parse::<std::net::Ipv6Addr>().is_ok()
    } else {
        !host.is_empty()
            && host.len() <= 253
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
            && !host.starts_with(['.', '-'])
    };
    host_ok && port.is_none_or(|p| p.parse::<u16>().is_ok_and(|p| p > 0))
}

fn valid_name(name: &str) -> bool {
    crate::upload::plain_name(name)
}

impl ClusterConfig {
    /// Reads and checks `path`. Relative disk and state paths are taken relative to the file's folder.
    pub fn load(path: &Path) -> Result<ClusterConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let mut config = ClusterConfig::parse(&text).map_err(|e| match e {
            ParseError::Syntax(source) => ConfigError::Syntax {
                path: path.to_path_buf(),
                source,
            },
            ParseError::Invalid(problem) => ConfigError::Invalid {
                path: path.to_path_buf(),
                problem,
            },
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        let tls = config
            .frontends
            .iter_mut()
            .flat_map(|f| [&mut f.tls_cert, &mut f.tls_key])
            .chain(
                config
                    .nodes
                    .iter_mut()
                    .flat_map(|n| [&mut n.tls_cert, &mut n.tls_key]),
            );
        for file in [
            &mut config.mail.password_file,
            &mut config.mail.outbox,
            &mut config.tls_ca,
        ]
        .into_iter()
        .chain(tls)
        {
            if let Some(named) = file.as_mut().filter(|p| p.is_relative()) {
                *named = base.join(&*named);
            }
        }
        for (file, default) in [
            (&mut config.secret_file, "cluster.secret"),
            (&mut config.users_file, "users.json"),
        ] {
            let named = file.take().unwrap_or_else(|| PathBuf::from(default));
            *file = Some(if named.is_relative() {
                base.join(named)
            } else {
                named
            });
        }
        for node in &mut config.nodes {
            if let Some(state) = node.state_dir.as_mut().filter(|p| p.is_relative()) {
                *state = base.join(&*state);
            }
            for disk in node.disks.iter_mut().filter(|d| d.path.is_relative()) {
                disk.path = base.join(&disk.path);
            }
            if let Some(switch) = node.power_switch.as_mut() {
                for file in std::iter::once(&mut switch.key_file).chain(switch.known_hosts.as_mut())
                {
                    if file.is_relative() {
                        *file = base.join(&*file);
                    }
                }
            }
        }
        Ok(config)
    }

    /// Parses and checks a configuration's text.
    pub fn parse(text: &str) -> Result<ClusterConfig, ParseError> {
        let config: ClusterConfig =
            toml::from_str(text).map_err(|e| ParseError::Syntax(Box::new(e)))?;
        config.check().map_err(ParseError::Invalid)?;
        Ok(config)
    }

    fn check(&self) -> Result<(), Problem> {
        if self.nodes.is_empty() {
            return Err(Problem::NoNodes);
        }
        self.mail.check()?;
        if let Some(url) = &self.public_url {
            if !valid_public_url(url) {
                return Err(Problem::PublicUrl(url.clone()));
            }
        }
        let (mut names, mut addresses, mut disks, mut paths) = (
            HashSet::new(),
            HashSet::new(),
            HashSet::new(),
            HashSet::new(),
        );
        let halves = self
            .frontends
            .iter()
            .map(|f| (&f.name, &f.tls_cert, &f.tls_key))
            .chain(
                self.nodes
                    .iter()
                    .map(|n| (&n.name, &n.tls_cert, &n.tls_key)),
            );
        for (name, cert, key) in halves {
            if cert.is_some() != key.is_some() {
                return Err(Problem::TlsHalf(name.clone()));
            }
        }
        // The canonical address moves between frontends: its scheme must not.
        if self.frontends.iter().any(|f| f.tls().is_some())
            && self.frontends.iter().any(|f| f.tls().is_none())
        {
            return Err(Problem::TlsOnSomeFrontends);
        }
        for fe in &self.frontends {
            if !valid_name(&fe.name) {
                return Err(Problem::BadName(fe.name.clone()));
            }
            if !names.insert(&fe.name) {
                return Err(Problem::DuplicateNode(fe.name.clone()));
            }
            if !addresses.insert(fe.address) {
                return Err(Problem::DuplicateAddress(fe.address));
            }
        }
        if let Some(canonical) = self.canonical {
            if !addresses.insert(canonical) {
                return Err(Problem::DuplicateAddress(canonical));
            }
        }
        for node in &self.nodes {
            if !valid_name(&node.name) {
                return Err(Problem::BadName(node.name.clone()));
            }
            if !names.insert(&node.name) {
                return Err(Problem::DuplicateNode(node.name.clone()));
            }
            // A default monitor address is not checked: nodes sharing an IP (tests) may leave it
            // out when they run no monitor.
            for addr in std::iter::once(node.address).chain(node.monitor) {
                if !addresses.insert(addr) {
                    return Err(Problem::DuplicateAddress(addr));
                }
            }
            for disk in &node.disks {
                if !valid_name(&disk.id) {
                    return Err(Problem::BadName(disk.id.clone()));
                }
                if !disks.insert(&disk.id) {
                    return Err(Problem::DuplicateDisk(disk.id.clone()));
                }
                if !paths.insert(&disk.path) {
                    return Err(Problem::DuplicatePath(disk.path.clone()));
                }
            }
        }
        Ok(())
    }

    /// The root of the collection's public URLs: `public_url`, else `http://CANONICAL`
    /// (`https://` when the frontends serve TLS); `None` when the cluster has neither (each
    /// server then names itself).
    pub fn public_base(&self) -> Option<String> {
        let scheme = if self.frontends_tls() {
            "https"
        } else {
            "http"
        };
        self.public_url
            .clone()
            .or_else(|| self.canonical.map(|c| format!("{scheme}://{c}")))
    }

    /// Whether the frontends (all of them, see [`ClusterConfig::check`]) serve https.
    pub fn frontends_tls(&self) -> bool {
        self.frontends.iter().any(|f| f.tls().is_some())
    }

    /// The shared secret's file (see [`ClusterConfig::secret_file`]).
    pub fn secret_path(&self) -> PathBuf {
        self.secret_file
            .clone()
            .unwrap_or_else(|| PathBuf::from("/etc/td/cluster.secret"))
    }

    /// The portal's accounts file (see [`ClusterConfig::users_file`]).
    pub fn users_path(&self) -> PathBuf {
        self.users_file
            .clone()
            .unwrap_or_else(|| PathBuf::from("/etc/td/users.json"))
    }

    pub fn node(&self, name: &str) -> Option<&NodeConfig> {
        self.nodes.iter().find(|n| n.name == name)
    }

    pub fn frontend(&self, name: &str) -> Option<&FrontendConfig> {
        self.frontends.iter().find(|f| f.name == name)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    #[error(transparent)]
    Syntax(Box<toml::de::Error>),
    #[error(transparent)]
    Invalid(Problem),
}

#[cfg(test)]
mod tests {
    use super::*;

    const TWO_NODES: &str = r#"
name = "test cluster"
canonical = "127.0.0.1:8080"

[[frontend]]
name = "fe-1"
address = "127.0.0.1:8091"

[[frontend]]
name = "fe-2"
address = "127.0.0.1:8092"

[[node]]
name = "node-a"
address = "127.0.0.1:8101"
power_domain = "A"
rack = "r1"

[[node.disk]]
id = "a1"
path = "disks/a1"
serial = "WD-123"
location = { adapter = 0, bus = 0, target = 1, enclosure = "e1", slot = 3, power_feed = "A" }

[[node]]
name = "node-b"
address = "127.0.0.1:8102"
monitor = "127.0.0.1:8202"
power_domain = "B"
"#;

    #[test]
    fn parses_nodes_disks_and_locations() {
        let c = ClusterConfig::parse(TWO_NODES).unwrap();
        assert_eq!(c.nodes.len(), 2);
        let a = c.node("node-a").unwrap();
        assert_eq!(a.disks[0].serial.as_deref(), Some("WD-123"));
        assert_eq!(a.disks[0].location.slot, Some(3));
        assert!(c.node("node-b").unwrap().disks.is_empty());
        assert_eq!(c.frontends.len(), 2);
        assert_eq!(c.frontend("fe-2").unwrap().address.port(), 8092);
        assert_eq!(a.monitor_address().to_string(), "127.0.0.1:9190");
        assert_eq!(c.node("node-b").unwrap().monitor_address().port(), 8202);
    }

    #[test]
    fn the_byte_quota_takes_whole_and_decimal_gigabytes() {
        for (written, bytes) in [("200", 200_000_000_000), ("0.5", 500_000_000), ("0", 0)] {
            let c = ClusterConfig::parse(&format!(
                "{TWO_NODES}\n[quota]\ngigabytes_per_day = {written}\n"
            ))
            .unwrap();
            assert_eq!(c.quota.bytes_per_day(), bytes, "{written}");
        }
        assert_eq!(
            ClusterConfig::parse(TWO_NODES)
                .unwrap()
                .quota
                .bytes_per_day(),
            200_000_000_000
        );
    }

    #[test]
    fn mistakes_are_named() {
        let dup = TWO_NODES.replace("node-b", "node-a");
        assert!(
            matches!(ClusterConfig::parse(&dup), Err(ParseError::Invalid(Problem::DuplicateNode(n))) if n == "node-a")
        );
        let addr = TWO_NODES.replace("8102", "8101");
        assert!(matches!(
            ClusterConfig::parse(&addr),
            Err(ParseError::Invalid(Problem::DuplicateAddress(_)))
        ));
        let clash = TWO_NODES.replace("8092", "8080");
        assert!(matches!(
            ClusterConfig::parse(&clash),
            Err(ParseError::Invalid(Problem::DuplicateAddress(_)))
        ));
        let monitor_clash = TWO_NODES.replace("8202", "8101");
        assert!(matches!(
            ClusterConfig::parse(&monitor_clash),
            Err(ParseError::Invalid(Problem::DuplicateAddress(_)))
        ));
        let typo = TWO_NODES.replace("power_domain = \"B\"", "power_domian = \"B\"");
        let err = ClusterConfig::parse(&typo).unwrap_err().to_string();
        assert!(err.contains("power_domian"), "{err}");
        let bad = TWO_NODES.replace("id = \"a1\"", "id = \"a/1\"");
        assert!(matches!(
            ClusterConfig::parse(&bad),
            Err(ParseError::Invalid(Problem::BadName(_)))
        ));
    }

    #[test]
    fn public_url_is_a_site_root_and_defaults_to_the_canonical_address() {
        let c = ClusterConfig::parse(TWO_NODES).unwrap();
        assert_eq!(c.public_base().as_deref(), Some("http://127.0.0.1:8080"));
        let with = |url: &str| {
            ClusterConfig::parse(&TWO_NODES.replacen(
                "canonical = ",
                &format!("public_url = {url:?}\ncanonical = "),
                1,
            ))
        };
        for good in [
            "https://images.museum.example",
            "http://images.museum.example:8443",
            "http://[::1]:8080",
            "https://127.0.0.1",
        ] {
            assert_eq!(with(good).unwrap().public_base().as_deref(), Some(good));
        }
        for bad in [
            "images.museum.example",
            "https://images.museum.example/",
            "https://images.museum.example/iiif",
            "https://evil\".example",
            "https://x.example:0",
            "https://x.example:99999",
            "ftp://x.example",
            "https://",
            "https://[nonsense]:80",
        ] {
            let err = with(bad).unwrap_err().to_string();
            assert!(err.contains("public_url"), "{bad}: {err}");
        }
    }

    #[test]
    fn tls_makes_origins_and_the_public_base_https() {
        let tls = |text: &str| {
            TWO_NODES
                .replace(
                    "address = \"127.0.0.1:8091\"",
                    "address = \"127.0.0.1:8091\"\ntls_cert = \"fe.pem\"\ntls_key = \"fe.key\"",
                )
                .replace(
                    "address = \"127.0.0.1:8092\"",
                    &format!("address = \"127.0.0.1:8092\"\n{text}"),
                )
                .replace(
                    "address = \"127.0.0.1:8101\"",
                    "address = \"127.0.0.1:8101\"\ntls_cert = \"a.pem\"\ntls_key = \"a.key\"",
                )
        };
        let both = tls("tls_cert = \"fe2.pem\"\ntls_key = \"fe2.key\"");
        let c = ClusterConfig::parse(&both).unwrap();
        assert_eq!(c.public_base().as_deref(), Some("https://127.0.0.1:8080"));
        assert_eq!(c.nodes[0].origin(), "https://127.0.0.1:8101");
        assert_eq!(c.nodes[1].origin(), "http://127.0.0.1:8102");
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("CLUSTER.toml");
        std::fs::write(&file, &both).unwrap();
        let loaded = ClusterConfig::load(&file).unwrap();
        assert_eq!(
            loaded.nodes[0].tls().unwrap().cert,
            dir.path().join("a.pem")
        );
        assert_eq!(
            loaded.frontends[0].tls().unwrap().key,
            dir.path().join("fe.key")
        );
        let err = ClusterConfig::parse(&tls("")).unwrap_err().to_string();
        assert!(err.contains("all serve https or none"), "{err}");
        let err = ClusterConfig::parse(&tls("tls_cert = \"fe2.pem\""))
            .unwrap_err()
            .to_string();
        assert!(err.contains("fe-2 has only one"), "{err}");
    }

    #[test]
    fn mail_defaults_and_paths() {
        let c = ClusterConfig::parse(TWO_NODES).unwrap();
        assert!(!c.mail.enabled());
        assert_eq!(c.mail.smtp_port, 587);
        assert_eq!(c.mail.security, MailSecurity::Starttls);
        assert_eq!(c.mail.report_schedule, DEFAULT_REPORT_SCHEDULE);
        assert!(c.mail.schedule().is_ok());

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cluster.toml");
        let text = format!(
            "{TWO_NODES}\n[mail]\nsmtp_host = \"mail.example.org\"\nuser = \"td\"\n\
             password_file = \"mail.password\"\nfrom = \"Tertiary Disk <td@example.org>\"\n\
             to = [\"ops@example.org\"]\nsecurity = \"tls\"\nsmtp_port = 465\n"
        );
        std::fs::write(&path, text).unwrap();
        let c = ClusterConfig::load(&path).unwrap();
        assert_eq!(c.mail.security, MailSecurity::Tls);
        assert_eq!(c.mail.smtp_port, 465);
        assert_eq!(
            c.mail.password_file.as_deref(),
            Some(dir.path().join("mail.password").as_path())
        );

        let outbox = format!(
            "{TWO_NODES}\n[mail]\noutbox = \"outbox\"\nfrom = \"td@localhost\"\nto = [\"ops@localhost\"]\n"
        );
        std::fs::write(&path, outbox).unwrap();
        let c = ClusterConfig::load(&path).unwrap();
        assert!(c.mail.enabled());
        assert_eq!(c.mail.outbox, Some(dir.path().join("outbox")));
    }

    #[test]
    fn mail_mistakes_are_named() {
        let with = |mail: &str| ClusterConfig::parse(&format!("{TWO_NODES}\n[mail]\n{mail}\n"));
        let err = with("report_schedule = \"every monday\"")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("report_schedule") && err.contains("every monday"),
            "{err}"
        );
        // Five fields (no seconds) are not enough.
        assert!(matches!(
            with("report_schedule = \"0 7 * * Mon\""),
            Err(ParseError::Invalid(Problem::BadSchedule { .. }))
        ));
        assert!(with("report_schedule = \"0 30 6 * * Mon-Fri\"").is_ok());
        let typo = with("smtp_hots = \"x\"").unwrap_err().to_string();
        assert!(typo.contains("smtp_hots"), "{typo}");
        assert!(matches!(
            with("security = \"ssl\""),
            Err(ParseError::Syntax(_))
        ));
        assert!(matches!(
            with("smtp_host = \"mail\"\nto = [\"a@b\"]"),
            Err(ParseError::Invalid(Problem::MailIncomplete(m))) if m.contains("from")
        ));
        assert!(matches!(
            with("smtp_host = \"mail\"\nfrom = \"a@b\""),
            Err(ParseError::Invalid(Problem::MailIncomplete(m))) if m.contains("to")
        ));
        assert!(matches!(
            with("outbox = \"o\"\nsmtp_host = \"mail\"\nfrom = \"a@b\"\nto = [\"c@d\"]"),
            Err(ParseError::Invalid(Problem::MailIncomplete(m))) if m.contains("both")
        ));
        assert!(matches!(
            with("outbox = \"o\"\nfrom = \"a@b\"\nto = [\"operator at museum\"]"),
            Err(ParseError::Invalid(Problem::MailAddress(a))) if a == "operator at museum"
        ));
        assert!(matches!(
            with("smtp_host = \"mail\"\nuser = \"td\"\nfrom = \"a@b\"\nto = [\"c@d\"]"),
            Err(ParseError::Invalid(Problem::MailIncomplete(m))) if m.contains("password_file")
        ));
        let clear = "security = \"none\"\nuser = \"td\"\npassword_file = \"p\"\n\
                     from = \"a@b\"\nto = [\"c@d\"]\n";
        assert!(matches!(
            with(&format!("smtp_host = \"mail.example.org\"\n{clear}")),
            Err(ParseError::Invalid(Problem::MailClearPassword(h))) if h == "mail.example.org"
        ));
        assert!(with(&format!("smtp_host = \"127.0.0.1\"\n{clear}")).is_ok());
        assert!(plausible_address("Tertiary Disk <td@example.org>"));
        assert!(!plausible_address("td@"));
        assert!(!plausible_address("Name <td@example.org"));
    }
}
