//! How the roles stop and what they log, as a service manager meets them: SIGTERM (what systemd
//! sends) stops a frontend, a backend and a monitor in order, closing kept-alive connections
//! cleanly and exiting 0; `--log-json` gives one JSON object per line; and `td demo`, stopped
//! after it served a visitor, starts again at once on the same ports.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{connect, get, Backend, DemoPlan, ANSWER_DEADLINE};

/// Long enough for any role to drain and stop; reaching it means the role ignored the signal.
const STOP_LIMIT: Duration = Duration::from_secs(30);

fn sigterm(pid: u32) {
    // SAFETY: plain kill(2) on our own child's pid.
    assert_eq!(unsafe { libc::kill(pid as i32, libc::SIGTERM) }, 0);
}

/// A process under test that was asked to stop.
trait Stopping {
    fn exited(&mut self) -> Option<std::process::ExitStatus>;
    /// What it said, for a failure's message.
    fn said(&self) -> String;
}

impl Stopping for Backend {
    fn exited(&mut self) -> Option<std::process::ExitStatus> {
        Backend::exited(self)
    }
    fn said(&self) -> String {
        self.stderr()
    }
}

/// A `td demo` and its log.
struct Demo(Child, std::path::PathBuf);

impl Stopping for Demo {
    fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.0.try_wait().unwrap()
    }
    fn said(&self) -> String {
        std::fs::read_to_string(&self.1).unwrap_or_default()
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits for `p` to exit after a SIGTERM; panics, with what it said, if it does not.
fn wait_exit(what: &str, p: &mut impl Stopping) -> std::process::ExitStatus {
    let asked = Instant::now();
    loop {
        if let Some(status) = p.exited() {
            return status;
        }
        assert!(
            asked.elapsed() < STOP_LIMIT,
            "{what} still runs {STOP_LIMIT:?} after SIGTERM:\n{}",
            p.said()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A kept-alive connection on which one request was answered: the server holds it open.
fn kept_alive(addr: &str, path: &str) -> TcpStream {
    let url = format!("GET http://{addr}{path}");
    let mut s = connect(addr, &url).unwrap_or_else(|e| panic!("{url}: {e}"));
    s.set_read_timeout(Some(ANSWER_DEADLINE)).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(
            s.read(&mut byte).unwrap(),
            1,
            "{url}: closed before answering"
        );
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    assert!(head.starts_with("HTTP/1.1 200"), "{url}: {head}");
    let len: usize = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .map(|v| v.trim().parse().unwrap())
        })
        .unwrap_or_else(|| panic!("{url}: no content-length in {head}"));
    let mut body = vec![0; len];
    s.read_exact(&mut body).unwrap();
    s
}

/// After the server stopped, the kept-alive connection ends with a clean close (EOF), not
/// a reset.
fn closed_cleanly(mut s: TcpStream, what: &str) {
    let mut rest = Vec::new();
    match s.read_to_end(&mut rest) {
        Ok(_) => {}
        Err(e) => panic!("{what}: the kept-alive connection was not closed cleanly: {e}"),
    }
}

#[test]
fn every_role_stops_on_sigterm_closing_its_connections_and_exiting_zero() {
    let plan = DemoPlan::prepare();
    let mut roles: Vec<(&str, Backend)> = ["node-a", "node-a-monitor", "fe-1"]
        .into_iter()
        .map(|name| (name, plan.start(name)))
        .collect();
    for (name, role) in &mut roles {
        let conn = kept_alive(&role.addr, "/health");
        sigterm(role.pid());
        let status = wait_exit(name, role);
        assert!(
            status.success(),
            "{name} ended {status}:\n{}",
            role.stderr()
        );
        closed_cleanly(conn, name);
        let said = role.stderr();
        assert!(
            said.contains("stopping") && said.contains("SIGTERM") && said.contains("stopped"),
            "{name} did not say it stopped on SIGTERM:\n{said}"
        );
    }
}

#[test]
fn a_backend_with_log_json_prints_one_json_object_per_line_with_fields() {
    let plan = DemoPlan::prepare();
    let (_, _, args) = plan.roles.iter().find(|(n, _, _)| n == "node-a").unwrap();
    let mut args: Vec<&str> = args.iter().map(String::as_str).collect();
    args.push("--log-json");
    let stderr = plan.dir.path().join("json.stderr");
    let mut role = common::start_td(&args, &stderr);
    sigterm(role.pid());
    let status = wait_exit("node-a", &mut role);
    assert!(status.success(), "{status}: {}", role.stderr());
    let said = role.stderr();
    let lines: Vec<serde_json::Value> = said
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l:?}")))
        .collect();
    let stopping = lines
        .iter()
        .find(|v| {
            v["message"]
                .as_str()
                .is_some_and(|m| m.contains("stopping"))
        })
        .unwrap_or_else(|| panic!("no line says it is stopping:\n{said}"));
    assert_eq!(stopping["level"], "INFO", "{stopping}");
    assert_eq!(
        stopping["role"], "backend",
        "a field of its own: {stopping}"
    );
    assert_eq!(stopping["signal"], "SIGTERM", "{stopping}");
    assert!(
        lines.iter().any(|v| v["node"] == "node-a"),
        "no line carries the node as a field:\n{said}"
    );

    // A filter that is not one is refused before anything starts, naming the flag.
    let out = Command::new(env!("CARGO_BIN_EXE_td"))
        .args(&args)
        .args(["--log-level", "loud=="])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("--log-level"), "{text}");
}

/// A base port with the nine after it free (the demo takes nine in a row).
fn free_run_of_ports() -> u16 {
    let seed = std::process::id() as u16;
    for attempt in 0..200u16 {
        let base = 20000 + (seed.wrapping_mul(31).wrapping_add(attempt * 97)) % 30000;
        let held: Vec<_> = (0..9)
            .map_while(|n| std::net::TcpListener::bind(("127.0.0.1", base + n)).ok())
            .collect();
        if held.len() == 9 {
            return base;
        }
    }
    panic!("no nine free ports in a row on loopback");
}

/// Runs `td demo` on `base` with the data in `dir`; its stdout and stderr go to `log`.
fn start_demo(dir: &Path, base: u16, log: &Path) -> Demo {
    let child = Command::new(env!("CARGO_BIN_EXE_td"))
        .args(["demo", "--listen", &format!("127.0.0.1:{base}"), "--data"])
        .arg(dir)
        .stdout(std::fs::File::create(log.with_extension("stdout")).unwrap())
        .stderr(std::fs::File::create(log).unwrap())
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    Demo(child, log.to_path_buf())
}

/// Waits until the demo's gallery answers at `canonical`; panics with its log if it ends.
fn wait_serving(demo: &mut Demo, canonical: &str) {
    let asked = Instant::now();
    loop {
        if let Some(status) = demo.exited() {
            panic!("the demo ended ({status}):\n{}", demo.said());
        }
        let addr = canonical.parse().unwrap();
        let up = std::net::TcpStream::connect_timeout(&addr, common::CONNECT_DEADLINE).is_ok();
        if up && get(canonical, "/").0 == 200 {
            return;
        }
        assert!(
            asked.elapsed() < Duration::from_secs(120),
            "the demo does not serve {canonical}:\n{}",
            demo.said()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn the_demo_stopped_after_serving_a_visitor_starts_again_at_once() {
    // The prepared demo's originals and tiles are reused by `td demo` on the same data.
    let plan = DemoPlan::prepare();
    let base = free_run_of_ports();
    let canonical = format!("127.0.0.1:{base}");
    let log = |n: usize| plan.dir.path().join(format!("demo-{n}.log"));
    let mut demo = start_demo(plan.dir.path(), base, &log(1));
    wait_serving(&mut demo, &canonical);
    // A visitor whose connection is still open when the demo stops: the server closes it,
    // which leaves the canonical port's side of it in TIME_WAIT.
    let visitor = kept_alive(&canonical, "/");
    sigterm(demo.0.id());
    let status = wait_exit("td demo", &mut demo);
    assert!(status.success(), "{status}: {}", demo.said());
    closed_cleanly(visitor, "the canonical address");

    let mut again = start_demo(plan.dir.path(), base, &log(2));
    wait_serving(&mut again, &canonical);
    assert!(!again.said().contains("another demo"), "{}", again.said());

    // While one runs, a second is told plainly that another demo holds the ports.
    let out = Command::new(env!("CARGO_BIN_EXE_td"))
        .args(["demo", "--listen", &canonical, "--data"])
        .arg(plan.dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("is another demo running?"), "{text}");
    sigterm(again.0.id());
    let status = wait_exit("td demo", &mut again);
    assert!(status.success(), "{status}: {}", again.said());
}
