//! Running `td backend` in tests and speaking HTTP to it.

#![allow(dead_code)] // each test file uses its own subset

pub mod ingest;
pub mod loop_disks;
pub mod monitor;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

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
        .split("http://")
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
            .find_map(|l| l.strip_prefix("canonical http://"))
            .expect("canonical address")
            .trim_end_matches('/')
            .to_string();
        let roles = text
            .lines()
            .filter_map(|l| {
                let (head, args) = l.split_once("  td ")?;
                let (name, url) = head.split_once(' ')?;
                let addr = url.strip_prefix("http://")?.trim_end_matches('/');
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

    pub fn addr(&self, name: &str) -> &str {
        &self.roles.iter().find(|(n, _, _)| n == name).unwrap().1
    }
}

/// One GET over a fresh connection: (status, head, body).
pub fn get(addr: &str, path: &str) -> (u16, String, Vec<u8>) {
    let mut s = TcpStream::connect(addr).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("end of head");
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
