//! A cluster of `td backend` processes at their configured addresses, with a cluster secret,
//! for ingest tests: start, kill and restart nodes (optionally with `TD_CRASH_AT`), and speak
//! the signed internal API to them.

use std::path::{Path, PathBuf};
use std::time::Duration;

use cluster::auth::{Secret, SignedParts, AUTH_HEADER, USER_HEADER};

use super::monitor::free_addr;
use super::{connect, exchange, start_program_env, Backend};

pub struct Cluster {
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    /// (name, address, power domain).
    pub nodes: Vec<(String, String, String)>,
    pub secret: Secret,
    procs: Vec<Option<Backend>>,
}

/// An answer: status (0 when the connection failed), head, body.
pub type Answer = (u16, String, Vec<u8>);

impl Cluster {
    /// Nodes `node-a`, `node-b`, … in the given power domains, one folder disk each.
    pub fn new(domains: &[&str]) -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let mut toml = String::from("name = \"ingest test\"\n");
        let mut nodes = Vec::new();
        for (i, domain) in domains.iter().enumerate() {
            let name = format!("node-{}", (b'a' + i as u8) as char);
            let addr = free_addr();
            toml.push_str(&format!(
                "\n[[node]]\nname = \"{name}\"\naddress = \"{addr}\"\npower_domain = \"{domain}\"\n\
                 state_dir = \"{name}/state\"\n\n[[node.disk]]\nid = \"{name}-d1\"\npath = \"{name}/d1\"\n"
            ));
            std::fs::create_dir_all(dir.path().join(&name).join("d1")).unwrap();
            nodes.push((name, addr, domain.to_string()));
        }
        let config = dir.path().join("cluster.toml");
        std::fs::write(&config, toml).unwrap();
        let secret = floor::secret_file::create(&dir.path().join("cluster.secret")).unwrap();
        let procs = nodes.iter().map(|_| None).collect();
        Cluster {
            dir,
            config,
            nodes,
            secret,
            procs,
        }
    }

    /// Adds `toml` (whole tables, e.g. `[repair]`) to the cluster's configuration; before the
    /// nodes start.
    pub fn configure(&self, toml: &str) {
        let mut all = std::fs::read_to_string(&self.config).unwrap();
        all.push('\n');
        all.push_str(toml);
        std::fs::write(&self.config, all).unwrap();
    }

    /// The upload folders in node `i`'s staging (hidden ones, being made or cleared, too).
    pub fn staging(&self, i: usize) -> Vec<String> {
        std::fs::read_dir(self.disk(i).join("staging"))
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect()
    }

    /// Starts an upload of `length` bytes on node `i` for `user`; its id.
    pub fn start_upload(&self, i: usize, user: &str, filename: &str, length: usize) -> String {
        self.create_upload(i, user, filename, length, filename).0
    }

    /// Starts an upload titled `title` on node `i` for `user`; its id and its image's id.
    pub fn create_upload(
        &self,
        i: usize,
        user: &str,
        filename: &str,
        length: usize,
        title: &str,
    ) -> (String, String) {
        let new = serde_json::json!({
            "filename": filename,
            "length": length,
            "meta": { "title": title, "artist": "Test", "keywords": ["noise"] },
        });
        let (status, _, body) = self.call(
            i,
            "POST",
            "/internal/uploads",
            user,
            &[("content-type", "application/json".into())],
            new.to_string().as_bytes(),
        );
        assert_eq!(status, 201, "{}", String::from_utf8_lossy(&body));
        let created: serde_json::Value = serde_json::from_slice(&body).unwrap();
        (
            created["id"].as_str().unwrap().to_string(),
            created["image"].as_str().unwrap().to_string(),
        )
    }

    /// Sends one chunk of upload `id` at `offset` to node `i` (`PATCH /internal/uploads/ID`).
    pub fn send_chunk(
        &self,
        i: usize,
        user: &str,
        id: &str,
        offset: usize,
        bytes: &[u8],
    ) -> Answer {
        self.call(
            i,
            "PATCH",
            &format!("/internal/uploads/{id}"),
            user,
            &[("upload-offset", offset.to_string())],
            bytes,
        )
    }

    /// Upload `id` as node `i`'s status book has it for `user` (`GET /internal/uploads`).
    pub fn status_of(&self, i: usize, user: &str, id: &str) -> Option<serde_json::Value> {
        let (s, _, body) = self.call(i, "GET", "/internal/uploads", user, &[], b"");
        if s != 200 {
            return None;
        }
        let list: Vec<serde_json::Value> = serde_json::from_slice(&body).ok()?;
        list.into_iter().find(|u| u["id"] == id)
    }

    pub fn disk(&self, i: usize) -> PathBuf {
        self.dir.path().join(&self.nodes[i].0).join("d1")
    }

    /// Node `i`'s `state_dir` (made by the node when it starts, if missing).
    pub fn state_dir(&self, i: usize) -> PathBuf {
        self.dir.path().join(&self.nodes[i].0).join("state")
    }

    /// How far replica `image` came on node `i`'s disk: "incoming", "placed", "verified",
    /// "published", or none.
    pub fn replica_state(&self, i: usize, image: &str) -> Option<&'static str> {
        let images = self.disk(i).join("images");
        // In the order a replica moves: a rename between two looks then shows the next state,
        // never none.
        [
            ("incoming", format!(".{image}.incoming")),
            ("placed", format!(".{image}.placed")),
            ("verified", format!(".{image}.verified")),
            ("published", image.to_string()),
        ]
        .into_iter()
        .find(|(_, name)| images.join(name).is_dir())
        .map(|(s, _)| s)
    }

    /// Sends `bytes[offset..]` of upload `id` to node `i` in chunks of `chunk` bytes, each from
    /// where the node says the upload ends; returns the last answer (status 0: the node died
    /// on the way, anything but 204: refused).
    pub fn send_rest(
        &self,
        i: usize,
        user: &str,
        id: &str,
        bytes: &[u8],
        mut offset: usize,
        chunk: usize,
    ) -> Answer {
        let mut last = (204, String::new(), Vec::new());
        while offset < bytes.len() {
            let end = (offset + chunk).min(bytes.len());
            last = self.send_chunk(i, user, id, offset, &bytes[offset..end]);
            if last.0 != 204 {
                return last;
            }
            offset = header(&last.1, "upload-offset")
                .and_then(|o| o.parse().ok())
                .expect("Upload-Offset in the answer to a chunk");
        }
        last
    }

    /// Starts node `i` at its address; with `crash_at`, it kills itself at that point.
    pub fn start(&mut self, i: usize, crash_at: Option<&str>) {
        let name = self.nodes[i].0.clone();
        let env: Vec<(&str, &str)> = crash_at.map(|p| ("TD_CRASH_AT", p)).into_iter().collect();
        // The old process (and its stderr file) goes first.
        self.procs[i] = None;
        let stderr = self.dir.path().join(format!("{name}.stderr"));
        let b = start_program_env(
            env!("CARGO_BIN_EXE_td"),
            &[
                "backend",
                "--config",
                self.config.to_str().unwrap(),
                "--node",
                &name,
            ],
            &env,
            &stderr,
        );
        self.procs[i] = Some(b);
    }

    /// Node `i`'s process id (it must be running).
    pub fn pid(&self, i: usize) -> u32 {
        self.procs[i].as_ref().expect("node running").pid()
    }

    pub fn stop(&mut self, i: usize) {
        self.procs[i] = None;
    }

    /// True once node `i`'s process has ended (it was started and is not running).
    pub fn died(&mut self, i: usize) -> bool {
        self.procs[i].as_mut().is_some_and(|b| b.exited().is_some())
    }

    pub fn stderr(&self, i: usize) -> String {
        std::fs::read_to_string(self.dir.path().join(format!("{}.stderr", self.nodes[i].0)))
            .unwrap_or_default()
    }

    /// A signed request to node `i` for `user`.
    pub fn call(
        &self,
        i: usize,
        method: &str,
        path: &str,
        user: &str,
        headers: &[(&str, String)],
        body: &[u8],
    ) -> Answer {
        let all = self.signed_headers(i, method, path, user, headers, body);
        request(&self.nodes[i].1, method, path, &all, body)
    }

    /// The headers of a request to node `i` signed as the cluster's own processes sign it,
    /// with `headers` after the signature's.
    pub fn signed_headers<'a>(
        &self,
        i: usize,
        method: &str,
        path: &str,
        user: &str,
        headers: &[(&'a str, String)],
        body: &[u8],
    ) -> Vec<(&'a str, String)> {
        let header = |name: &str| {
            headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map_or("", |(_, v)| v.as_str())
        };
        let parts = SignedParts {
            method,
            path_and_query: path,
            user,
            target: &self.nodes[i].0,
            body,
            upload_offset: header("upload-offset"),
            content_type: header("content-type"),
        };
        let auth = self.secret.sign_request(&parts, cluster::unix_now());
        let mut all = vec![(AUTH_HEADER, auth), (USER_HEADER, user.to_string())];
        all.extend(headers.iter().map(|(k, v)| (*k, v.clone())));
        all
    }
}

/// How long an ingest request may take: a chunk is mirrored to another node and written
/// back before it is answered, and a debug build on two busy cores is slow at it, but minutes
/// means the node hangs.
pub const INGEST_DEADLINE: Duration = Duration::from_secs(120);

/// One HTTP/1.1 request over a fresh connection; status 0 when the connection failed (a
/// refused connect, a reset: the node died). A node that neither answers nor closes within
/// [`INGEST_DEADLINE`] is a hang, and panics naming the URL.
pub fn request(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, String)],
    body: &[u8],
) -> Answer {
    let url = format!("{method} http://{addr}{path}");
    let attempt = || -> std::io::Result<Answer> {
        let mut s = connect(addr, &url)?;
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
            body.len()
        );
        for (k, v) in headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        let raw = exchange(&mut s, &[head.as_bytes(), body], &url, INGEST_DEADLINE)?;
        let split = raw
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .ok_or(std::io::ErrorKind::UnexpectedEof)?;
        let head = String::from_utf8_lossy(&raw[..split]).to_string();
        let status = head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        Ok((status, head, raw[split + 4..].to_vec()))
    };
    attempt().unwrap_or((0, String::new(), Vec::new()))
}

/// A header's value in a response head.
pub fn header(head: &str, name: &str) -> Option<String> {
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.trim().to_string())
    })
}

/// A noisy PNG (incompressible, so it spans several 8 MiB chunks) made with ImageMagick.
pub fn noise_png(dir: &Path, size: &str) -> PathBuf {
    let png = dir.join(format!("noise-{size}.png"));
    let out = std::process::Command::new("convert")
        .args(["-seed", "7", "-size", size, "xc:gray", "+noise", "Random"])
        .arg(&png)
        .output()
        .expect("ImageMagick (the README's test command installs it)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    png
}
