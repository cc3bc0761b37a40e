//! Running `td backend` in tests and speaking HTTP to it.

#![allow(dead_code)] // each test file uses its own subset

pub mod ingest;
pub mod loop_disks;
pub mod monitor;
pub mod powerfs;
pub mod remirror;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Whether a test that needs root may go on: true as root. Without root it prints one line
/// naming `test` and what it needs root for (`needs`), and returns false, so a developer's
/// run skips it; but under CI (`CI` set), where root-only tests must run, it panics instead
/// of skipping silently.
pub fn root_or_skip(test: &str, needs: &str) -> bool {
    // SAFETY: a plain query of our own user id.
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "{test} needs root ({needs}): CI must run the tests as root"
    );
    // Straight to stderr: the test harness keeps what eprintln! says for itself and shows it
    // only when the test fails. (nextest shows it: .config/nextest.toml.)
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED {test}: needs root ({needs}); CI runs it as root"
    );
    false
}

/// How long a test waits for a connection to a server on loopback. Loopback connects at once
/// or is refused at once; reaching this means the server's accept queue is stuck.
pub const CONNECT_DEADLINE: Duration = Duration::from_secs(10);

/// How long a test waits for a whole answer to a plain request. The slowest of them (an IIIF
/// rendering, a catalog) take well under a second; reaching this means the server hangs.
pub const ANSWER_DEADLINE: Duration = Duration::from_secs(60);

/// Connects to `addr` for `url` within [`CONNECT_DEADLINE`]. A refused connection is an
/// error for the caller; a connection that is neither made nor refused in time panics, naming
/// `url`.
pub fn connect(addr: &str, url: &str) -> std::io::Result<TcpStream> {
    let mut last = None;
    for a in addr.to_socket_addrs()? {
        match TcpStream::connect_timeout(&a, CONNECT_DEADLINE) {
            Ok(s) => return Ok(s),
            Err(e) if timed_out(&e) => {
                panic!("{url}: no connection within {CONNECT_DEADLINE:?}")
            }
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::other(format!("{addr} names no address"))))
}

/// Sends `request` on `s` and reads the answer up to the server's close, all within
/// `deadline`; other I/O errors (a reset, a broken pipe) are returned. When the deadline
/// passes first it panics, naming `url`.
pub fn exchange(
    s: &mut TcpStream,
    request: &[&[u8]],
    url: &str,
    deadline: Duration,
) -> std::io::Result<Vec<u8>> {
    let until = Instant::now() + deadline;
    let left = || {
        until
            .checked_duration_since(Instant::now())
            .filter(|d| !d.is_zero())
            .unwrap_or_else(|| panic!("{url}: no whole answer within {deadline:?}"))
    };
    let hung = |e: std::io::Error| -> std::io::Error {
        if timed_out(&e) {
            panic!("{url}: no whole answer within {deadline:?}");
        }
        e
    };
    for part in request {
        s.set_write_timeout(Some(left()))?;
        s.write_all(part).map_err(hung)?;
    }
    let mut raw = Vec::new();
    let mut buf = vec![0; 64 << 10];
    loop {
        s.set_read_timeout(Some(left()))?;
        match s.read(&mut buf) {
            Ok(0) => return Ok(raw),
            Ok(n) => raw.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(hung(e)),
        }
    }
}

/// A socket timeout, as std reports it on Linux (`EAGAIN`) or elsewhere.
fn timed_out(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
    )
}

/// A running `td backend`, killed when dropped.
pub struct Backend {
    child: Child,
    pub addr: String,
    pub banner: String,
    stderr: PathBuf,
}

impl Drop for Backend {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.stderr);
    }
}

impl Backend {
    /// How it ended, if it has.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What it said on stderr so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }
}

/// Starts `td backend` for `node` on a free loopback port and waits for its banner line.
/// Its stderr goes to a file next to `config` (a pipe nobody reads could fill and stall it).
pub fn start_backend(config: &Path, node: &str) -> Backend {
    let c = config.to_str().unwrap();
    start_td(
        &[
            "backend",
            "--config",
            c,
            "--node",
            node,
            "--listen",
            "127.0.0.1:0",
        ],
        &config.with_extension(format!("{node}.stderr")),
    )
}

/// Runs `td ARGS` to its end with `stdin` on its standard input (a password, a code).
pub fn td_with_input(args: &[&str], stdin: &str) -> std::process::Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_td"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

/// Starts `td ARGS` and waits for its first line on stdout, which names the address it
/// listens on; its stderr goes to `stderr`.
pub fn start_td(args: &[&str], stderr: &Path) -> Backend {
    start_program(env!("CARGO_BIN_EXE_td"), args, stderr)
}

/// Starts `program ARGS` (a `td`, or `ip netns exec … td`) and waits for its first line on
/// stdout, which names the address it listens on (a program that prints nothing is simply
/// started); its stderr goes to `stderr`.
pub fn start_program(program: &str, args: &[&str], stderr: &Path) -> Backend {
    start_program_env(program, args, &[], stderr)
}

/// [`start_program`] with more in its environment.
pub fn start_program_env(
    program: &str,
    args: &[&str],
    env: &[(&str, &str)],
    stderr: &Path,
) -> Backend {
    let mut child = Command::new(program)
        .args(args)
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(stderr).unwrap())
        .spawn()
        .unwrap();
    let mut banner = String::new();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    stdout.read_line(&mut banner).unwrap();
    if banner.is_empty() && program != "true" {
        panic!(
            "{program} {args:?} did not start: {}",
            std::fs::read_to_string(stderr).unwrap_or_default()
        );
    }
    // Whatever it prints later is read and dropped, so it never blocks on a full pipe.
    std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
    let addr = banner
        .split("://")
        .nth(1)
        .unwrap_or_default()
        .trim()
        .trim_end_matches('/')
        .to_string();
    Backend {
        child,
        addr,
        banner,
        stderr: stderr.to_path_buf(),
    }
}

/// A demo prepared by `td demo --prepare` on free ports: the canonical address and, for each
/// role (fe-1, fe-2, node-a, …), its address and the `td` arguments that run it.
pub struct DemoPlan {
    pub dir: tempfile::TempDir,
    pub canonical: String,
    pub roles: Vec<(String, String, Vec<String>)>,
}

impl DemoPlan {
    pub fn prepare() -> DemoPlan {
        DemoPlan::prepare_with(&[])
    }

    /// [`DemoPlan::prepare`] with more arguments for `td demo` (`--tls`).
    pub fn prepare_with(more: &[&str]) -> DemoPlan {
        let dir = tempfile::tempdir().unwrap();
        // Rendering and tiling the samples is the slow part, and the same for every test of
        // this build: the first test keeps its originals, later ones start from a copy.
        let exe = std::fs::metadata(env!("CARGO_BIN_EXE_td")).unwrap();
        let stamp = exe
            .modified()
            .unwrap()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let cache = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("demo-originals-{stamp}"));
        let originals = dir.path().join("originals");
        if cache.is_dir() {
            copy_dir(&cache, &originals);
        }
        let out = Command::new(env!("CARGO_BIN_EXE_td"))
            .args(["demo", "--listen", "127.0.0.1:0", "--prepare", "--data"])
            .arg(dir.path())
            .args(more)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        if !cache.is_dir() {
            let temp = cache.with_extension(format!("tmp{}", std::process::id()));
            copy_dir(&originals, &temp);
            if std::fs::rename(&temp, &cache).is_err() {
                let _ = std::fs::remove_dir_all(&temp); // another test was first
            }
        }
        let canonical = text
            .lines()
            .find_map(|l| {
                l.strip_prefix("canonical http://")
                    .or_else(|| l.strip_prefix("canonical https://"))
            })
            .expect("canonical address")
            .trim_end_matches('/')
            .to_string();
        let roles = text
            .lines()
            .filter_map(|l| {
                let (head, args) = l.split_once("  td ")?;
                let (name, url) = head.split_once(' ')?;
                let addr = url
                    .strip_prefix("http://")
                    .or_else(|| url.strip_prefix("https://"))?
                    .trim_end_matches('/');
                let args = args.split(' ').map(String::from).collect();
                Some((name.to_string(), addr.to_string(), args))
            })
            .collect();
        DemoPlan {
            dir,
            canonical,
            roles,
        }
    }

    /// Starts role `name` as its own process.
    pub fn start(&self, name: &str) -> Backend {
        let (_, _, args) = self
            .roles
            .iter()
            .find(|(n, _, _)| n == name)
            .unwrap_or_else(|| panic!("no role {name}"));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        start_td(&args, &self.dir.path().join(format!("{name}.stderr")))
    }

    /// Starts the three nodes and fe-1, and waits until the canonical address (bound once
    /// fe-1 holds it) serves all three images: `health` asks it for its `/health`.
    pub fn start_serving(&self, health: impl Fn() -> Option<serde_json::Value>) -> Vec<Backend> {
        let mut processes: Vec<Backend> = ["node-a", "node-b", "node-c"]
            .iter()
            .map(|n| self.start(n))
            .collect();
        processes.push(self.start("fe-1"));
        let started = std::time::Instant::now();
        while !health().is_some_and(|h| h["images"] == 3 && h["status"] == "ok") {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "the canonical address {} never served all three images",
                self.canonical
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        processes
    }

    pub fn addr(&self, name: &str) -> &str {
        &self.roles.iter().find(|(n, _, _)| n == name).unwrap().1
    }
}

/// One GET over a fresh connection: (status, head, body). It panics, naming the URL, when
/// the server cannot be reached or gives no whole answer within [`ANSWER_DEADLINE`].
pub fn get(addr: &str, path: &str) -> (u16, String, Vec<u8>) {
    request(addr, "GET", path, &[])
}

/// [`get`] with another method and more headers (a `Host` among them replaces the address).
pub fn request(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> (u16, String, Vec<u8>) {
    let url = format!("{method} http://{addr}{path}");
    let mut s = connect(addr, &url).unwrap_or_else(|e| panic!("{url}: {e}"));
    let host = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("host"))
        .map_or(addr, |(_, v)| v);
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n");
    for (k, v) in headers
        .iter()
        .filter(|(k, _)| !k.eq_ignore_ascii_case("host"))
    {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    request.push_str("\r\n");
    let raw = exchange(&mut s, &[request.as_bytes()], &url, ANSWER_DEADLINE)
        .unwrap_or_else(|e| panic!("{url}: {e}"));
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("{url}: no end of head in {} bytes", raw.len()));
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, head, raw[split + 4..].to_vec())
}

/// The entry of disk `id` in a `/health` document.
pub fn disk_health(health: &serde_json::Value, id: &str) -> serde_json::Value {
    health["disks"]
        .as_array()
        .expect("disks in /health")
        .iter()
        .find(|d| d["id"] == id)
        .unwrap_or_else(|| panic!("no disk {id} in {health}"))
        .clone()
}

/// Makes a picture with ImageMagick (`picture` of `size`), tiles it with `td tile` and places it as a replica of `id` on `disk`.
pub fn place(disk: &Path, id: &str, picture: &str, size: &str) {
    let work = tempfile::tempdir().unwrap();
    let png = work.path().join(format!("{id}.png"));
    let out = Command::new("convert")
        .args(["-size", size, picture, png.to_str().unwrap()])
        .output()
        .expect("ImageMagick (the README's test command installs it)");
    assert!(out.status.success());
    let out = Command::new(env!("CARGO_BIN_EXE_td"))
        .args(["tile", "-q", png.to_str().unwrap(), "-o"])
        .arg(work.path().join("p.tdp"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta = backend::ImageMeta {
        title: id.into(),
        ..Default::default()
    };
    let sources = backend::replica::Sources {
        original: &png,
        pyramid: &work.path().join("p.tdp"),
        thumbnail: &work.path().join("p.thumb.jpg"),
        meta: &meta,
    };
    let nodes = ["node-a".to_string(), "node-b".to_string()];
    backend::replica::place(&disk.join("images"), id, &sources, &nodes).unwrap();
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}
