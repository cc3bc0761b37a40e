//! Running `td backend` in tests and speaking HTTP to it.

#![allow(dead_code)] // each test file uses its own subset

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
    /// What it said on stderr so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }
}

/// Starts `td backend` for `node` on a free loopback port and waits for its banner line.
/// Its stderr goes to a file next to `config` (a pipe nobody reads could fill and stall it).
pub fn start_backend(config: &Path, node: &str) -> Backend {
    let stderr = config.with_extension(format!("{node}.stderr"));
    let mut child = Command::new(env!("CARGO_BIN_EXE_td"))
        .args([
            "backend",
            "--config",
            config.to_str().unwrap(),
            "--node",
            node,
        ])
        .args(["--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&stderr).unwrap())
        .spawn()
        .unwrap();
    let mut banner = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut banner)
        .unwrap();
    assert!(
        !banner.is_empty(),
        "td backend did not start: {}",
        std::fs::read_to_string(&stderr).unwrap_or_default()
    );
    let addr = banner
        .split("http://")
        .nth(1)
        .expect("address in the banner");
    let addr = addr.trim().trim_end_matches('/').to_string();
    Backend {
        child,
        addr,
        banner,
        stderr,
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
