//! Failover of the canonical address for real, in network namespaces joined by a bridge: a
//! client, two frontends (each with its own veth) and three backend nodes. The frontend
//! holding the canonical IP as an alias is killed with SIGKILL; the other takes the alias and
//! announces it with a gratuitous ARP, and the client reconnects to it. The killed one comes
//! back, removes its leftover alias and gets the address back; then a partition between the
//! two frontends alone moves nothing. In a second cluster, the monitor on the killed
//! frontend's host removes the alias it left at once, without waiting for it to come back. In
//! a third, a forger in its own namespace sends the heartbeats an attacker sent (the old
//! "release"/higher-epoch ones, 30 in 3 s, epoch u64::MAX, a replay of a captured genuine one),
//! from the peer's address with raw sockets, while a client asks through the canonical
//! address: nothing moves, no request fails, and `/failover` counts every drop.
//! Needs root (runs in CI); every namespace, link and process is removed at the end, even when
//! the test fails.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, SocketAddrV4, TcpStream, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{start_program, Backend, DemoPlan};

fn ip(args: &[&str]) -> String {
    let out = Command::new("ip")
        .args(args)
        .output()
        .expect("ip (iproute2)");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The namespaces of one test, removed on drop.
struct Net {
    tag: String,
    processes: Vec<Backend>,
}

impl Net {
    fn ns(&self, role: &str) -> String {
        format!("td{role}{}", self.tag)
    }

    fn create() -> Net {
        let net = Net {
            tag: (std::process::id() % 100_000).to_string(),
            processes: Vec::new(),
        };
        let sw = net.ns("sw");
        ip(&["netns", "add", &sw]);
        ip(&["-n", &sw, "link", "add", "br0", "type", "bridge"]);
        ip(&["-n", &sw, "link", "set", "br0", "up"]);
        for (role, addrs) in [
            ("c", vec!["10.77.0.2"]),
            ("f1", vec!["10.77.0.11"]),
            ("f2", vec!["10.77.0.12"]),
            ("b", vec!["10.77.0.21", "10.77.0.22", "10.77.0.23"]),
            // A stranger on the same network: the forger.
            ("x", vec!["10.77.0.66"]),
        ] {
            let ns = net.ns(role);
            ip(&["netns", "add", &ns]);
            let port = format!("v{role}{}", net.tag);
            ip(&[
                "link", "add", &port, "netns", &sw, "type", "veth", "peer", "name", "eth0",
                "netns", &ns,
            ]);
            ip(&["-n", &sw, "link", "set", &port, "master", "br0", "up"]);
            for a in addrs {
                ip(&["-n", &ns, "addr", "add", &format!("{a}/24"), "dev", "eth0"]);
            }
            ip(&["-n", &ns, "link", "set", "eth0", "up"]);
            ip(&["-n", &ns, "link", "set", "lo", "up"]);
        }
        net
    }

    fn mac(&self, role: &str) -> String {
        let text = ip(&["-n", &self.ns(role), "link", "show", "eth0"]);
        text.split("link/ether ")
            .nth(1)
            .and_then(|s| s.split_whitespace().next())
            .unwrap()
            .to_string()
    }

    /// The MAC the client's ARP cache has for the canonical address.
    fn client_sees(&self) -> String {
        ip(&["-n", &self.ns("c"), "neigh", "show", "10.77.0.10"])
    }

    fn holds_alias(&self, role: &str) -> bool {
        ip(&["-n", &self.ns(role), "addr", "show", "eth0"]).contains("10.77.0.10/")
    }

    /// Starts `td ARGS` inside namespace `role`.
    fn start(&mut self, role: &str, args: &[&str], log: &std::path::Path) -> usize {
        let ns = self.ns(role);
        let mut all = vec!["netns", "exec", ns.as_str(), env!("CARGO_BIN_EXE_td")];
        all.extend_from_slice(args);
        self.processes.push(start_program("ip", &all, log));
        self.processes.len() - 1
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        self.processes.clear(); // killed and reaped
        for role in ["c", "f1", "f2", "b", "x", "sw"] {
            let _ = Command::new("ip")
                .args(["netns", "del", &self.ns(role)])
                .status();
        }
    }
}

/// A client in namespace `ns` asking the canonical address who answers, every 20 ms, and
/// keeping (time, answerer or None).
/// When the client asked, and which frontend answered.
type Answers = Arc<Mutex<Vec<(Instant, Option<String>)>>>;

struct Client {
    log: Answers,
    stop: Arc<AtomicBool>,
}

impl Client {
    fn start(ns: &str) -> Client {
        let log = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (l, s, path) = (log.clone(), stop.clone(), format!("/run/netns/{ns}"));
        std::thread::spawn(move || {
            let f = std::fs::File::open(&path).unwrap();
            // SAFETY: moves only this thread into the client's network namespace.
            assert_eq!(unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) }, 0);
            let canonical: SocketAddr = "10.77.0.10:80".parse().unwrap();
            while !s.load(Ordering::SeqCst) {
                let who = ask(canonical);
                l.lock().unwrap().push((Instant::now(), who));
                std::thread::sleep(Duration::from_millis(20)); // the client's pace, not a wait
            }
        });
        Client { log, stop }
    }

    fn last(&self) -> Option<String> {
        self.log.lock().unwrap().last().and_then(|(_, w)| w.clone())
    }

    /// Waits until `who` answers; returns when it first did.
    fn wait_for(&self, who: &str, within: Duration) -> Instant {
        let start = Instant::now();
        loop {
            if let Some((t, _)) = self
                .log
                .lock()
                .unwrap()
                .iter()
                .rev()
                .find(|(t, w)| *t >= start && w.as_deref() == Some(who))
            {
                return *t;
            }
            assert!(start.elapsed() < within, "{who} never answered");
            std::thread::yield_now();
        }
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// Which frontend answers `GET /failover` at `addr`, if any does within 200 ms.
fn ask(addr: SocketAddr) -> Option<String> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_millis(200)).ok()?;
    s.set_read_timeout(Some(Duration::from_millis(500))).ok()?;
    write!(s, "GET /failover HTTP/1.0\r\nHost: {addr}\r\n\r\n").ok()?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).ok()?;
    let body = raw.split(|b| *b == b'\n').next_back()?;
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    v["frontend"].as_str().map(String::from)
}

/// The `/failover` state of a frontend, asked from inside namespace `ns`.
fn failover_state(ns: &str, addr: &str) -> serde_json::Value {
    let out = Command::new("ip")
        .args(["netns", "exec", ns, "curl", "-s", "-m", "1"])
        .arg(format!("http://{addr}/failover"))
        .output()
        .unwrap();
    serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null)
}

/// The demo's cluster moved into the namespaces: the canonical address 10.77.0.10 as an alias on
/// the frontends' eth0, the three backends started in `b`, fe-1 in `f1` and fe-2 in `f2`; the
/// index of fe-1's process in the net.
fn cluster_in_namespaces() -> (DemoPlan, String, Net, usize) {
    let plan = DemoPlan::prepare();
    let config = plan.dir.path().join("cluster.toml");
    let mut text = std::fs::read_to_string(&config).unwrap();
    let moves = [
        ("fe-1", "10.77.0.11:8080"),
        ("fe-2", "10.77.0.12:8080"),
        ("node-a", "10.77.0.21:8080"),
        ("node-b", "10.77.0.22:8080"),
        ("node-c", "10.77.0.23:8080"),
    ];
    for (role, to) in moves {
        text = text.replace(&format!("\"{}\"", plan.addr(role)), &format!("\"{to}\""));
    }
    text = text.replace(
        &format!("canonical = \"{}\"", plan.canonical),
        "canonical = \"10.77.0.10:80\"\ncanonical_prefix = 24",
    );
    text = text.replace(
        "address = \"10.77.0.11:8080\"",
        "address = \"10.77.0.11:8080\"\ninterface = \"eth0\"",
    );
    text = text.replace(
        "address = \"10.77.0.12:8080\"",
        "address = \"10.77.0.12:8080\"\ninterface = \"eth0\"",
    );
    std::fs::write(&config, &text).unwrap();
    let c = config.to_str().unwrap().to_string();
    let log = |name: &str| plan.dir.path().join(format!("{name}.log"));

    let mut net = Net::create();
    for node in ["node-a", "node-b", "node-c"] {
        net.start(
            "b",
            &["backend", "--config", &c, "--node", node],
            &log(node),
        );
    }
    let fe1 = net.start(
        "f1",
        &["frontend", "--config", &c, "--name", "fe-1"],
        &log("fe-1"),
    );
    net.start(
        "f2",
        &["frontend", "--config", &c, "--name", "fe-2"],
        &log("fe-2"),
    );
    (plan, c, net, fe1)
}

#[test]
fn the_canonical_address_moves_to_the_survivor_and_a_partition_moves_nothing() {
    if !common::root_or_skip(
        "the_canonical_address_moves_to_the_survivor_and_a_partition_moves_nothing",
        "network namespaces",
    ) {
        return;
    }
    let (plan, c, mut net, fe1) = cluster_in_namespaces();
    let c = c.as_str();
    let log = |name: &str| plan.dir.path().join(format!("{name}.log"));
    let client = Client::start(&net.ns("c"));
    client.wait_for("fe-1", Duration::from_secs(30));
    assert!(net.holds_alias("f1") && !net.holds_alias("f2"));
    let (mac1, mac2) = (net.mac("f1"), net.mac("f2"));
    assert!(net.client_sees().contains(&mac1), "{}", net.client_sees());

    // fe-1 dies without a word.
    net.processes[fe1] = start_program("true", &[], &log("placeholder"));
    let killed = Instant::now();
    let back = client.wait_for("fe-2", Duration::from_secs(10));
    let gap = back.duration_since(killed);
    eprintln!("canonical address answered by fe-2 {gap:?} after fe-1 was killed (SIGKILL)");
    assert!(net.holds_alias("f2"));
    assert!(
        net.client_sees().contains(&mac2),
        "the client learnt the new holder from the gratuitous ARP: {}",
        net.client_sees()
    );

    // fe-1 comes back: its leftover alias goes first, then the address is handed back to it.
    assert!(
        net.holds_alias("f1"),
        "a SIGKILLed holder leaves its alias behind"
    );
    net.processes[fe1] = {
        let ns = net.ns("f1");
        start_program(
            "ip",
            &[
                "netns",
                "exec",
                &ns,
                env!("CARGO_BIN_EXE_td"),
                "frontend",
                "--config",
                c,
                "--name",
                "fe-1",
            ],
            &log("fe-1b"),
        )
    };
    client.wait_for("fe-1", Duration::from_secs(20));
    assert!(!net.holds_alias("f2"), "fe-2 released it");
    assert!(net.client_sees().contains(&mac1), "{}", net.client_sees());

    // A partition between the two frontends only: each stops hearing the other, the backends
    // still see both, and nothing moves.
    ip(&[
        "-n",
        &net.ns("f1"),
        "route",
        "add",
        "blackhole",
        "10.77.0.12/32",
    ]);
    ip(&[
        "-n",
        &net.ns("f2"),
        "route",
        "add",
        "blackhole",
        "10.77.0.11/32",
    ]);
    let cut = Instant::now();
    let f2 = net.ns("f2");
    let rounds = |s: &serde_json::Value| s["witness_rounds"].as_u64().unwrap_or(0);
    let before = rounds(&failover_state(&f2, "10.77.0.12:8080"));
    // fe-2 asks the witnesses about fe-1 again and again while it hears nothing; four rounds
    // of "fe-1 is alive and holds it" must leave everything where it was.
    loop {
        let s = failover_state(&f2, "10.77.0.12:8080");
        assert_eq!(
            s["failover"]["holding"], false,
            "fe-2 took the address in a partition: {s}"
        );
        assert_eq!(client.last().as_deref(), Some("fe-1"));
        if s["failover"]["peer"]["peer"] == "silent" && rounds(&s) >= before + 4 {
            assert_eq!(s["last_verdict"]["alive"]["holding"], true, "{s}");
            break;
        }
        assert!(cut.elapsed() < Duration::from_secs(30), "{s}");
    }
    assert!(net.holds_alias("f1") && !net.holds_alias("f2"));
    drop(client);
}

/// The `/events` of a monitor listening at `addr` inside namespace `ns`.
fn events_in(ns: &str, addr: &str) -> Vec<serde_json::Value> {
    let out = Command::new("ip")
        .args(["netns", "exec", ns, "curl", "-s", "-m", "1"])
        .arg(format!("http://{addr}/events?since=0&limit=10000"))
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    v["events"].as_array().cloned().unwrap_or_default()
}

#[test]
fn a_dead_frontends_leftover_alias_is_removed_by_the_monitor_on_its_host() {
    if !common::root_or_skip(
        "a_dead_frontends_leftover_alias_is_removed_by_the_monitor_on_its_host",
        "network namespaces",
    ) {
        return;
    }
    let (plan, c, mut net, fe1) = cluster_in_namespaces();
    let c = c.as_str();
    let log = |name: &str| plan.dir.path().join(format!("{name}.log"));
    // The monitor on fe-1's host (here node-a's, watching only: its backend runs elsewhere).
    let monitor = "10.77.0.11:9190";
    net.start(
        "f1",
        &[
            "monitor",
            "--config",
            c,
            "--node",
            "node-a",
            "--watch-only",
            "--frontend",
            "fe-1",
            "--listen",
            monitor,
        ],
        &log("monitor"),
    );
    let client = Client::start(&net.ns("c"));
    client.wait_for("fe-1", Duration::from_secs(30));
    // Alive, fe-1 keeps its alias whatever the monitor checks.
    let f1 = net.ns("f1");
    let runs = || {
        let out = Command::new("ip")
            .args(["netns", "exec", &f1, "curl", "-s", "-m", "1"])
            .arg(format!("http://{monitor}/health"))
            .output()
            .unwrap();
        let h: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        h["detectors"]
            .as_array()
            .and_then(|d| d.iter().find(|d| d["name"] == "frontend alias fe-1"))
            .and_then(|d| d["runs"].as_u64())
            .unwrap_or(0)
    };
    let until = Instant::now() + Duration::from_secs(30);
    while runs() < 3 {
        assert!(
            Instant::now() < until,
            "the monitor's alias check never ran"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        net.holds_alias("f1"),
        "a live frontend's alias is left alone"
    );

    // fe-1 dies without a word: fe-2 takes the address, and the monitor on fe-1's host removes
    // the alias fe-1 left behind, before fe-1 ever starts again.
    net.processes[fe1] = start_program("true", &[], &log("placeholder"));
    let killed = Instant::now();
    client.wait_for("fe-2", Duration::from_secs(10));
    while net.holds_alias("f1") {
        assert!(
            killed.elapsed() < Duration::from_secs(15),
            "the leftover alias is still on fe-1's host"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    eprintln!(
        "fe-1's leftover alias removed {:?} after it was killed",
        killed.elapsed()
    );
    assert!(net.holds_alias("f2"));
    let removed: Vec<_> = events_in(&f1, monitor)
        .into_iter()
        .filter(|e| e["kind"] == "alias_removed")
        .collect();
    assert_eq!(removed.len(), 1, "{removed:#?}");
    assert!(
        removed[0]["summary"]
            .as_str()
            .unwrap()
            .contains("10.77.0.10/24"),
        "{removed:#?}"
    );
    assert_eq!(client.last().as_deref(), Some("fe-2"));
}

/// Runs `f` on a thread inside network namespace `ns`. A socket made there stays in that
/// namespace, whichever thread uses it later.
fn in_namespace<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let path = format!("/run/netns/{ns}");
    std::thread::spawn(move || {
        let file = std::fs::File::open(&path).unwrap();
        // SAFETY: moves only this short-lived thread into the namespace.
        assert_eq!(
            unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) },
            0
        );
        f()
    })
    .join()
    .unwrap()
}

fn checked_fd(fd: libc::c_int, what: &str) -> OwnedFd {
    assert!(fd >= 0, "{what}: {}", std::io::Error::last_os_error());
    // SAFETY: a descriptor just returned by the kernel, owned by nobody else.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

/// A raw IPv4 socket in namespace `ns`: it sends UDP datagrams with any source address, as a
/// forger on the network can.
fn spoofing_socket(ns: &str) -> OwnedFd {
    in_namespace(ns, || {
        // SAFETY: a plain socket(2) call.
        let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_RAW) };
        checked_fd(fd, "raw socket")
    })
}

/// Sends `payload` in one UDP datagram from `src` to `dst`, headers written here (the kernel
/// fills in the IP checksum; a UDP checksum of 0 means none, allowed on IPv4).
fn send_spoofed(raw: &OwnedFd, src: SocketAddrV4, dst: SocketAddrV4, payload: &[u8]) {
    let total = 20 + 8 + payload.len();
    let mut p = Vec::with_capacity(total);
    p.extend_from_slice(&[0x45, 0]);
    p.extend_from_slice(&(total as u16).to_be_bytes());
    p.extend_from_slice(&[0, 0, 0x40, 0, 64, libc::IPPROTO_UDP as u8, 0, 0]);
    p.extend_from_slice(&src.ip().octets());
    p.extend_from_slice(&dst.ip().octets());
    p.extend_from_slice(&src.port().to_be_bytes());
    p.extend_from_slice(&dst.port().to_be_bytes());
    p.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    p.extend_from_slice(&[0, 0]);
    p.extend_from_slice(payload);
    let to = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: 0,
        sin_addr: libc::in_addr {
            s_addr: u32::from_ne_bytes(dst.ip().octets()),
        },
        sin_zero: [0; 8],
    };
    // SAFETY: the buffer and the address live across the call; their lengths are theirs.
    let sent = unsafe {
        libc::sendto(
            raw.as_raw_fd(),
            p.as_ptr().cast(),
            p.len(),
            0,
            (&to as *const libc::sockaddr_in).cast(),
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        )
    };
    assert_eq!(
        sent,
        p.len() as isize,
        "{}",
        std::io::Error::last_os_error()
    );
}

/// The payload of the next UDP datagram from `src` to `dst` seen in namespace `ns` (a packet
/// socket: what someone who can read the wire sees).
fn capture(ns: &str, src: SocketAddrV4, dst: SocketAddrV4) -> Vec<u8> {
    let fd = in_namespace(ns, || {
        let ip = (libc::ETH_P_IP as u16).to_be() as libc::c_int;
        // SAFETY: a plain socket(2) call.
        checked_fd(
            unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_DGRAM, ip) },
            "packet socket",
        )
    });
    let tick = libc::timeval {
        tv_sec: 0,
        tv_usec: 200_000,
    };
    // SAFETY: the option's value lives across the call and has the size given.
    unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&tick as *const libc::timeval).cast(),
            std::mem::size_of::<libc::timeval>() as libc::socklen_t,
        )
    };
    let start = Instant::now();
    let mut buf = [0u8; 2048];
    loop {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "no datagram {src} → {dst} seen"
        );
        // SAFETY: the buffer outlives the call and has the length given.
        let n = unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        let Ok(n) = usize::try_from(n) else {
            continue; // the receive timeout: look at the clock again
        };
        let p = &buf[..n];
        let ihl = usize::from(p.first().copied().unwrap_or(0) & 0x0f) * 4;
        if n < ihl + 8 || ihl < 20 || p[9] != libc::IPPROTO_UDP as u8 {
            continue;
        }
        let (s, d) = (&p[12..16], &p[16..20]);
        let (sport, dport) = (&p[ihl..ihl + 2], &p[ihl + 2..ihl + 4]);
        if s == src.ip().octets()
            && d == dst.ip().octets()
            && sport == src.port().to_be_bytes()
            && dport == dst.port().to_be_bytes()
        {
            return p[ihl + 8..].to_vec();
        }
    }
}

/// A frontend's dropped heartbeats by reason, from its `/failover`.
fn drops(state: &serde_json::Value) -> std::collections::BTreeMap<String, u64> {
    state["dropped_heartbeats"]
        .as_object()
        .map(|o| {
            o.iter()
                .map(|(k, v)| (k.clone(), v.as_u64().unwrap_or(0)))
                .collect()
        })
        .unwrap_or_default()
}

/// `after - before`, by reason, leaving out reasons that did not move.
fn moved(
    before: &std::collections::BTreeMap<String, u64>,
    after: &std::collections::BTreeMap<String, u64>,
) -> std::collections::BTreeMap<String, u64> {
    after
        .iter()
        .map(|(k, v)| (k.clone(), v - before.get(k).copied().unwrap_or(0)))
        .filter(|(_, v)| *v > 0)
        .collect()
}

#[test]
fn forged_and_replayed_heartbeats_are_dropped_and_move_nothing() {
    if !common::root_or_skip(
        "forged_and_replayed_heartbeats_are_dropped_and_move_nothing",
        "network namespaces",
    ) {
        return;
    }
    let (plan, _c, net, _fe1) = cluster_in_namespaces();
    let client = Client::start(&net.ns("c"));
    client.wait_for("fe-1", Duration::from_secs(30));
    let (f1, f2, x) = (net.ns("f1"), net.ns("f2"), net.ns("x"));
    let fe1: SocketAddrV4 = "10.77.0.11:8080".parse().unwrap();
    let fe2: SocketAddrV4 = "10.77.0.12:8080".parse().unwrap();
    let state = |ns: &str, at: SocketAddrV4| failover_state(ns, &at.to_string());
    // A genuine heartbeat of fe-2's, read off the wire at fe-1, to be sent again later.
    let genuine = capture(&f1, fe2, fe1);
    assert!(genuine.starts_with(b"tdhb1 fe-2 "), "{genuine:?}");
    // Both have heard each other, so fe-2 stands by knowing that fe-1 holds.
    let settled = Instant::now();
    let (held, standby) = loop {
        let (a, b) = (state(&f1, fe1), state(&f2, fe2));
        if a["failover"]["holding"] == true && b["failover"]["peer"]["holding"] == true {
            break (a, b);
        }
        assert!(settled.elapsed() < Duration::from_secs(10), "{a}\n{b}");
        std::thread::sleep(Duration::from_millis(50));
    };
    let epoch = held["failover"]["epoch"].as_u64().unwrap();
    let seen = (
        held["failover"]["seen"].as_u64().unwrap(),
        standby["failover"]["seen"].as_u64().unwrap(),
    );
    let before = (drops(&held), drops(&standby));
    assert!(!before.0.is_empty(), "/failover counts drops: {held}");
    let asked_before = client.log.lock().unwrap().len();

    let raw = spoofing_socket(&x);
    // As the peer, to the holder: the forger knows no secret, so it signs with a guess.
    let mut guess = frontend::heartbeat::Link::new(
        cluster::auth::Secret::from_bytes(b"not the cluster's secret, 32 bytes"),
        "fe-2",
        "fe-1",
        0,
        SocketAddr::V4(fe1),
    );
    let took_it = |epoch: u64| frontend::failover::Beat {
        from: 1,
        holding: true,
        epoch,
        healthy: true,
    };
    let json = |epoch: u64| {
        format!(r#"{{"from":1,"holding":true,"epoch":{epoch},"healthy":true}}"#).into_bytes()
    };
    // The attacker's first packet: one "I hold it under a higher epoch", in the old format.
    send_spoofed(&raw, fe2, fe1, &json(epoch + 1));
    // Then 30 in 3 s, well-formed but signed with the guess, each epoch higher.
    for k in 0..30 {
        let packet = guess.seal(&took_it(epoch + 1 + k), frontend::heartbeat::now_ns());
        send_spoofed(&raw, fe2, fe1, &packet);
        assert!(
            net.holds_alias("f1"),
            "fe-1 let go after {} forgeries",
            k + 2
        );
        std::thread::sleep(Duration::from_millis(100)); // the attacker's pace
    }
    // The epoch that wrapped the holder's to 0, in both formats; to the standby as well.
    send_spoofed(&raw, fe2, fe1, &json(u64::MAX));
    let packet = guess.seal(&took_it(u64::MAX), frontend::heartbeat::now_ns());
    send_spoofed(&raw, fe2, fe1, &packet);
    let mut as_fe1 = frontend::heartbeat::Link::new(
        cluster::auth::Secret::from_bytes(b"not the cluster's secret, 32 bytes"),
        "fe-1",
        "fe-2",
        1,
        SocketAddr::V4(fe2),
    );
    let gave_up = frontend::failover::Beat {
        from: 0,
        holding: false,
        epoch: u64::MAX,
        healthy: false,
    };
    let packet = as_fe1.seal(&gave_up, frontend::heartbeat::now_ns());
    send_spoofed(&raw, fe1, fe2, &packet);
    send_spoofed(&raw, fe1, fe2, &json(u64::MAX));
    // The genuine heartbeat captured before, sent again.
    send_spoofed(&raw, fe2, fe1, &genuine);
    // Larger than any heartbeat.
    send_spoofed(&raw, fe2, fe1, &[b'x'; 1000]);
    // And one from the forger's own address, under fe-2's name.
    let own = in_namespace(&x, || UdpSocket::bind("10.77.0.66:0").unwrap());
    own.send_to(
        &guess.seal(&took_it(epoch + 99), frontend::heartbeat::now_ns()),
        fe1,
    )
    .unwrap();

    let expected_fe1: std::collections::BTreeMap<String, u64> = [
        ("malformed", 2),
        ("bad_mac", 31),
        ("replayed", 1),
        ("oversized", 1),
        ("wrong_sender", 1),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let expected_fe2: std::collections::BTreeMap<String, u64> = [("malformed", 1), ("bad_mac", 1)]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    let counted = Instant::now();
    let (after, after2) = loop {
        let (a, b) = (state(&f1, fe1), state(&f2, fe2));
        let (da, db) = (moved(&before.0, &drops(&a)), moved(&before.1, &drops(&b)));
        if da == expected_fe1 && db == expected_fe2 {
            break (a, b);
        }
        assert!(
            counted.elapsed() < Duration::from_secs(10),
            "drops counted, fe-1: {da:?} (expected {expected_fe1:?}); fe-2: {db:?} (expected \
             {expected_fe2:?})"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    // Nothing moved: fe-1 holds under the same epoch, neither adopted a forged epoch.
    assert_eq!(after["failover"]["holding"], true, "{after}");
    assert_eq!(after["failover"]["epoch"], epoch, "{after}");
    assert_eq!(after["failover"]["seen"], seen.0, "{after}");
    assert_eq!(after2["failover"]["seen"], seen.1, "{after2}");
    assert_eq!(after2["failover"]["holding"], false, "{after2}");
    assert!(net.holds_alias("f1") && !net.holds_alias("f2"));
    // A few more answers after the last forgery, then every one since the attack began.
    let asked = client.log.lock().unwrap().len();
    while client.log.lock().unwrap().len() < asked + 5 {
        std::thread::yield_now();
    }
    let answers: Vec<Option<String>> = client.log.lock().unwrap()[asked_before..]
        .iter()
        .map(|(_, who)| who.clone())
        .collect();
    let failed = answers
        .iter()
        .filter(|w| w.as_deref() != Some("fe-1"))
        .count();
    eprintln!(
        "{} requests through the canonical address during the forgeries, {failed} not answered \
         by fe-1",
        answers.len()
    );
    assert_eq!(failed, 0, "{answers:?}");
    // Logged, but not once per packet.
    let log = std::fs::read_to_string(plan.dir.path().join("fe-1.log")).unwrap();
    let lines = log.matches("heartbeats dropped").count();
    assert!(
        (1..=5).contains(&lines),
        "{lines} log lines for 36 dropped heartbeats:\n{log}"
    );
    drop(client);
}
