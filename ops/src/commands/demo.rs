//! `td demo`: the whole appliance on this machine, run the way a real cluster runs: a
//! `CLUSTER.toml`, two frontends sharing the canonical address, three backend nodes with disks,
//! identities and catalogs, and every sample mirrored on two nodes in different power domains.
//! Each role is its own `td` process, so killing any one of them leaves every image viewable.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use backend::replica::{self, Sources};
use cluster::ClusterConfig;
use tiler::TileOptions;

use crate::samples::{Sample, SAMPLES};

const FRONTENDS: [&str; 2] = ["fe-1", "fe-2"];
/// Three nodes in three power domains, two folder disks each.
const NODES: [&str; 3] = ["node-a", "node-b", "node-c"];
const DISKS_PER_NODE: usize = 2;

/// Render and tile a few built-in sample artworks, place two replicas of each on three demo
/// nodes, then run two frontends and the three nodes as processes on this machine, each node
/// under its monitor (which starts its backend, restarts it if it dies, and records faults).
///
/// The first run renders the samples and tiles them (a minute or less); later runs reuse them.
/// Everything lives under --data: the originals, `cluster.toml`, and each node's disks and
/// state. Visitors use the canonical address (--listen); the frontends take the next two
/// ports, the nodes the three after and their monitors the three after those. Stop it with
/// Ctrl-C. See what the monitors noticed with `td events --config DATA/cluster.toml`.
#[derive(clap::Args)]
pub struct Args {
    /// Where the demo keeps its originals, configuration, disks and node state.
    #[arg(long, default_value = "demo-data")]
    data: PathBuf,
    /// The canonical address visitors open (loopback by default: the demo is for this
    /// machine). The frontends, nodes and monitors take the eight ports after it; port 0 picks
    /// free ports.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Prepare everything (samples, disks, `cluster.toml`) and exit, printing how to start
    /// each process by hand.
    #[arg(long)]
    prepare: bool,
    /// Serve https everywhere, with certificates from a CA of the demo's own (kept in
    /// DATA/tls/; it prints how to make curl and a browser trust it).
    #[arg(long)]
    tls: bool,
}

/// Why `addr` cannot be had, in words that fit what holds it: a program that answers there
/// (another demo, most likely), or nothing that answers.
fn taken(addr: SocketAddr, e: std::io::Error) -> anyhow::Error {
    let answers =
        std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_millis(500)).is_ok();
    if e.kind() == std::io::ErrorKind::AddrInUse && answers {
        anyhow::anyhow!(
            "cannot listen on {addr}: another program listens there (is another demo running? \
             stop it, or try --listen 127.0.0.1:9080)"
        )
    } else {
        anyhow::anyhow!("cannot listen on {addr}: {e} (try --listen 127.0.0.1:9080)")
    }
}

/// The addresses of the demo: canonical, frontends, nodes, the nodes' monitors.
struct Addresses {
    canonical: SocketAddr,
    frontends: [SocketAddr; 2],
    nodes: [SocketAddr; 3],
    monitors: [SocketAddr; 3],
}

fn addresses(listen: SocketAddr) -> Result<Addresses> {
    // Bound (then let go) to find free ports for port 0 and to say at once which port is
    // taken; all nine are held until the last is bound, so port 0 never hands out one twice.
    let mut held = Vec::new();
    for n in 0..9u16 {
        let mut addr = listen;
        if listen.port() != 0 {
            addr.set_port(listen.port().checked_add(n).context("port out of range")?);
        }
        held.push(std::net::TcpListener::bind(addr).map_err(|e| taken(addr, e))?);
    }
    let a: Vec<SocketAddr> = held
        .iter()
        .map(std::net::TcpListener::local_addr)
        .collect::<std::io::Result<_>>()?;
    drop(held); // the ports are for the demo's processes to bind
    Ok(Addresses {
        canonical: a[0],
        frontends: [a[1], a[2]],
        nodes: [a[3], a[4], a[5]],
        monitors: [a[6], a[7], a[8]],
    })
}

pub fn run(args: Args) -> Result<ExitCode> {
    std::fs::create_dir_all(&args.data)
        .with_context(|| format!("cannot create {}", args.data.display()))?;
    let data = args
        .data
        .canonicalize()
        .with_context(|| format!("cannot resolve {}", args.data.display()))?;
    let addrs = addresses(args.listen)?;
    let config_path = data.join("cluster.toml");
    let ca = if args.tls {
        let hosts: Vec<&str> = FRONTENDS.iter().chain(NODES.iter()).copied().collect();
        Some(super::demo_tls::make(&data, &hosts, addrs.canonical.ip())?)
    } else {
        None
    };
    std::fs::write(&config_path, cluster_toml(&addrs, args.tls))
        .with_context(|| format!("cannot write {}", config_path.display()))?;
    let config = ClusterConfig::load(&config_path)?;
    let scheme = if args.tls { "https" } else { "http" };
    let trust = ca.map(|ca| super::demo_tls::how_to_trust(&ca, &addrs.canonical.to_string()));
    floor::secret_file::create(&config.secret_path())?;
    let account = demo_account(&config, &data)?;
    // The demo's disks are folders; a real node's are mounted filesystems.
    for disk in config.nodes.iter().flat_map(|n| &n.disks) {
        std::fs::create_dir_all(&disk.path)
            .with_context(|| format!("cannot create {}", disk.path.display()))?;
    }
    for (i, sample) in SAMPLES.iter().enumerate() {
        prepare(sample, i, &data, &config)?;
    }
    let config_arg = config_path.display().to_string();
    let role = |name: &str, addr, args: &[&str]| {
        let mut all: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        all.extend(["--config".to_string(), config_arg.clone()]);
        (name.to_string(), addr, all)
    };
    let frontends: Vec<(String, SocketAddr, Vec<String>)> = FRONTENDS
        .iter()
        .zip(addrs.frontends)
        .map(|(name, addr)| role(name, addr, &["frontend", "--name", name]))
        .collect();
    let backends = NODES
        .iter()
        .zip(addrs.nodes)
        .map(|(name, addr)| role(name, addr, &["backend", "--node", name]));
    // Run by hand, a monitor beside its backend only watches it; in the demo it runs it.
    let monitors = |watch_only: bool| {
        NODES.iter().zip(addrs.monitors).map(move |(name, addr)| {
            let mut r = role(
                &format!("{name}-monitor"),
                addr,
                &["monitor", "--node", name],
            );
            if watch_only {
                r.2.push("--watch-only".into());
            }
            r
        })
    };
    if args.prepare {
        println!("Prepared {} ({} samples).", data.display(), SAMPLES.len());
        println!("canonical {scheme}://{}/", addrs.canonical);
        println!("demo account: {} {}", account.0, account.1);
        let by_hand = frontends
            .iter()
            .cloned()
            .chain(backends)
            .chain(monitors(true));
        for (name, addr, args) in by_hand {
            // Monitors speak plain http: they answer operators and the cluster only.
            let scheme = if name.ends_with("-monitor") {
                "http"
            } else {
                scheme
            };
            println!("{name} {scheme}://{addr}/  td {}", args.join(" "));
        }
        if let Some(trust) = &trust {
            println!("{trust}");
        }
        return Ok(ExitCode::SUCCESS);
    }
    let roles: Vec<_> = frontends.into_iter().chain(monitors(false)).collect();
    let exe = std::env::current_exe().context("cannot find the td program itself")?;
    let mut children: Vec<(String, Child)> = Vec::new();
    for (name, _, role_args) in &roles {
        let child = spawn_child(&exe, role_args).with_context(|| format!("cannot start {name}"))?;
        children.push((name.clone(), child));
        if name == FRONTENDS[0] {
            // fe-1 first, so that it is the one holding the canonical address.
            std::thread::sleep(Duration::from_millis(300));
        }
    }
    println!(
        "Tertiary Disk demo: {} sample images, each on two of {} nodes; frontends {} and {}.",
        SAMPLES.len(),
        NODES.len(),
        FRONTENDS[0],
        FRONTENDS[1]
    );
    for (name, addr, _) in &roles {
        let scheme = if name.ends_with("-monitor") {
            "http"
        } else {
            scheme
        };
        println!("  {name:14} {scheme}://{addr}/");
    }
    for (name, addr) in NODES.iter().zip(addrs.nodes) {
        println!("  {name:14} {scheme}://{addr}/  (started by its monitor)");
    }
    if let Some(trust) = &trust {
        println!("{trust}");
    }
    println!(
        "Upload at {scheme}://{}/portal/ — sign in as {} with the password {} (more accounts: \
         td user add --config {config_arg} NAME).",
        addrs.canonical, account.0, account.1
    );
    println!(
        "Open {scheme}://{}/ in a browser. Stop with Ctrl-C.\n\
         Faults the monitors notice: td events --config {config_arg} --follow\n\
         To cause one, stop a node's backend (kill -STOP, then kill -CONT) or kill it (kill -9: \
         its monitor restarts it); its pid is in http://{}/health.\n\
         The visit report: td report --config {config_arg} (--send writes the mail into {}).",
        addrs.canonical,
        addrs.nodes[1],
        data.join("outbox").display()
    );
    supervise(children)
}

/// The demo's portal account: `demo`, with a random password made at the first run and kept
/// in the data folder (readable by its owner only).
fn demo_account(config: &ClusterConfig, data: &Path) -> Result<(String, String)> {
    use std::os::unix::fs::OpenOptionsExt;
    let name = "demo".to_string();
    let kept = data.join("demo-password");
    let password = match std::fs::read_to_string(&kept) {
        Ok(p) if p.trim().len() >= frontend::portal::users::MIN_PASSWORD => p.trim().to_string(),
        _ => {
            let p = cluster::auth::random_hex(8)?;
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&kept)
                .with_context(|| format!("cannot write {}", kept.display()))?;
            std::io::Write::write_all(&mut f, p.as_bytes())?;
            p
        }
    };
    let path = config.users_path();
    let mut users = frontend::portal::users::Users::load(&path)?;
    if !users.check(&name, &password) {
        users.add(&name, &password, true)?;
        users.save(&path)?;
    }
    Ok((name, password))
}

/// Starts `td ARGS` as a child that dies with the demo (even if the demo is killed).
fn spawn_child(exe: &Path, args: &[String]) -> std::io::Result<Child> {
    use std::os::unix::process::CommandExt;
    let mut cmd = Command::new(exe);
    cmd.args(args).stdin(Stdio::null());
    // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd.spawn()
}

/// Waits for Ctrl-C (the children get it too, from the terminal) or reports a child that
/// ends on its own; the others keep serving, which is the point.
fn supervise(mut children: Vec<(String, Child)>) -> Result<ExitCode> {
    let interrupted = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    {
        let flag = interrupted.clone();
        // SIGINT and SIGTERM set the flag; the loop below notices within 200 ms.
        let handler = move || flag.store(true, std::sync::atomic::Ordering::SeqCst);
        signal_hook_lite(handler)?;
    }
    while !interrupted.load(std::sync::atomic::Ordering::SeqCst) {
        children.retain_mut(|(name, child)| match child.try_wait() {
            Ok(Some(status)) => {
                eprintln!("td demo: {name} stopped ({status}); the others go on serving");
                false
            }
            _ => true,
        });
        if children.is_empty() {
            bail!("every process of the demo has stopped");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    for (_, child) in &mut children {
        // SAFETY: plain kill(2) on our own child's pid.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    }
    // Each role finishes its requests in flight and stops; one that has not within the
    // deadline is killed, so the demo never hangs on its way out.
    let until = std::time::Instant::now() + STOP_DEADLINE;
    for (name, child) in &mut children {
        loop {
            match child.try_wait() {
                Ok(Some(_)) | Err(_) => break,
                Ok(None) if std::time::Instant::now() >= until => {
                    eprintln!("td demo: {name} did not stop within {STOP_DEADLINE:?}; killed");
                    let _ = child.kill();
                    let _ = child.wait();
                    break;
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    }
    println!("stopped");
    Ok(ExitCode::SUCCESS)
}

/// How long the roles may take to stop once asked (their own drain of requests in flight is
/// shorter).
const STOP_DEADLINE: Duration = Duration::from_secs(15);

/// Runs `on_signal` from a thread when SIGINT or SIGTERM arrives.
fn signal_hook_lite(on_signal: impl Fn() + Send + 'static) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the signal thread")?;
    std::thread::spawn(move || {
        runtime.block_on(async {
            use tokio::signal::unix::{signal, SignalKind};
            let (Ok(mut int), Ok(mut term)) = (
                signal(SignalKind::interrupt()),
                signal(SignalKind::terminate()),
            ) else {
                return;
            };
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
            }
            on_signal();
        });
    });
    Ok(())
}

/// The demo cluster: paths relative to the file, so the data folder can be moved.
fn cluster_toml(addrs: &Addresses, tls: bool) -> String {
    // With TLS, each host has its certificate, and the cluster trusts the demo's CA.
    let tls_files = |host: &str| {
        if !tls {
            return String::new();
        }
        let (cert, key) = super::demo_tls::host_files(host);
        format!("tls_cert = \"{cert}\"\ntls_key = \"{key}\"\n")
    };
    let mut out = format!(
        "# Written by `td demo` at every start (the addresses may change); edit a copy instead.\n\
         name = \"Tertiary Disk demo\"\ncanonical = \"{}\"\n\n\
         # A repaired part's ticket closes after a minute of working (600 s by default).\n\
         [repair]\nticket_settle_seconds = 60\n",
        addrs.canonical
    );
    if tls {
        // Before the first table: a top-level key.
        let at = out.find("\n# A repaired").unwrap_or(out.len());
        out.insert_str(
            at,
            &format!(
                "tls_ca = \"{}/{}\"\n",
                super::demo_tls::FOLDER,
                super::demo_tls::CA_FILE
            ),
        );
    }
    for (name, addr) in FRONTENDS.iter().zip(addrs.frontends) {
        out.push_str(&format!(
            "\n[[frontend]]\nname = \"{name}\"\naddress = \"{addr}\"\n{}",
            tls_files(name)
        ));
    }
    for (n, ((name, addr), monitor)) in NODES
        .iter()
        .zip(addrs.nodes)
        .zip(addrs.monitors)
        .enumerate()
    {
        let domain = ["A", "B", "C"][n];
        out.push_str(&format!(
            "\n[[node]]\nname = \"{name}\"\naddress = \"{addr}\"\nmonitor = \"{monitor}\"\n\
             power_domain = \"{domain}\"\n\
             rack = \"demo\"\nstate_dir = \"{name}/state\"\n{}",
            tls_files(name)
        ));
        for d in 1..=DISKS_PER_NODE {
            out.push_str(&format!(
                "\n[[node.disk]]\nid = \"{name}-disk{d}\"\npath = \"{name}/disk{d}\"\n\
                 serial = \"DEMO-{domain}{d}\"\n\
                 location = {{ enclosure = \"{name}-front\", slot = {d}, power_feed = \"{domain}\" }}\n"
            ));
        }
    }
    // No mail server here: the operator's mail is written into the data folder.
    out.push_str(
        "\n# The operator's mail (td report --send, the weekly visit report): written into\n\
         # outbox/ as .eml files. Give smtp_host instead of outbox to send it.\n\
         [mail]\noutbox = \"outbox\"\nfrom = \"Tertiary Disk demo <td@localhost>\"\n\
         to = [\"operator@localhost\"]\n",
    );
    out
}

/// Renders and tiles sample number `turn` unless done before, then places its two replicas:
/// on nodes `turn` and `turn + 1` (every pair of nodes is in two power domains), each on one
/// of its disks, taking turns so every disk holds some.
fn prepare(sample: &Sample, turn: usize, data: &Path, config: &ClusterConfig) -> Result<()> {
    let work = data.join("originals");
    std::fs::create_dir_all(&work).with_context(|| format!("cannot create {}", work.display()))?;
    let original = work.join(format!("{}.jpg", sample.id));
    let pyramid = work.join(format!("{}.tdp", sample.id));
    let thumb = tiler::default_thumbnail_path(&pyramid);
    let placed = |node: &cluster::NodeConfig| {
        node.disks.iter().any(|d| {
            d.path
                .join(backend::disk::IMAGES_DIR)
                .join(sample.id)
                .exists()
        })
    };
    let holders: Vec<&cluster::NodeConfig> = (0..2)
        .map(|k| &config.nodes[(turn + k) % config.nodes.len()])
        .collect();
    if holders.iter().all(|n| placed(n)) {
        return Ok(());
    }
    if !original.exists() {
        eprintln!(
            "rendering {} ({}×{}) …",
            sample.id, sample.width, sample.height
        );
        sample.render(&original)?;
    }
    if tiler::PyramidReader::open(&pyramid).is_err() || !thumb.exists() {
        eprintln!("tiling {} …", sample.id);
        let report = tiler::tile(
            &original,
            &pyramid,
            &thumb,
            &TileOptions::default(),
            &|_, _| {},
        )?;
        eprintln!(
            "  {} levels, {} tiles in {:.1} s",
            report.geometry.levels.len(),
            report.geometry.tile_count(),
            report.seconds
        );
    }
    let nodes: Vec<String> = holders.iter().map(|n| n.name.clone()).collect();
    let meta = (sample.meta)();
    for (n, node) in holders.iter().enumerate() {
        if placed(node) {
            continue;
        }
        let disk = &node.disks[(turn + n) % node.disks.len()];
        backend::disk::adopt_or_check(disk, &node.name)?;
        let sources = Sources {
            original: &original,
            pyramid: &pyramid,
            thumbnail: &thumb,
            meta: &meta,
        };
        replica::place(
            &disk.path.join(backend::disk::IMAGES_DIR),
            sample.id,
            &sources,
            &nodes,
        )
        .with_context(|| format!("placing {} on disk {}", sample.id, disk.id))?;
    }
    Ok(())
}
