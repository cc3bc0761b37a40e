//! For the re-mirror tests: three backends (power domains A, B, C), their disks adopted and
//! replicas placed by hand, asked what an operator asks (`td status --json`, catalogs,
//! `/redundancy`), and what a settled image must look like: exactly two replicas, readable, the
//! same bytes, no hidden copy and no job left anywhere.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::get;
use super::ingest::Cluster;
use super::monitor::wait_until;

/// Long enough for a debug build on two busy cores; a hang is a failure, not a wait.
pub const LIMIT: Duration = Duration::from_secs(180);

/// `td status --json`, as an operator sees the cluster.
pub fn status(cluster: &Cluster) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_td"))
        .args(["status", "--json", "--config"])
        .arg(&cluster.config)
        .output()
        .unwrap();
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "td status --json: {e}\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// `td ARGS --config CLUSTER`: whether it succeeded, and what it said.
pub fn td(cluster: &Cluster, args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_td"))
        .args(args)
        .arg("--config")
        .arg(&cluster.config)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// The state of node `i`'s catalog entry for `id` ("ok", "removed", "deleted", …), if any.
pub fn entry_state(cluster: &Cluster, i: usize, id: &str) -> Option<String> {
    let (status, _, body) = get(&cluster.nodes[i].1, "/catalog?since=0");
    assert_eq!(status, 200);
    let page: serde_json::Value = serde_json::from_slice(&body).unwrap();
    page["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["id"] == id)
        .map(|e| e["state"].as_str().unwrap().to_string())
}

/// The nodes (indexes) whose catalog serves `id`.
pub fn servable(cluster: &Cluster, id: &str) -> Vec<usize> {
    (0..cluster.nodes.len())
        .filter(|&i| entry_state(cluster, i, id).as_deref() == Some("ok"))
        .collect()
}

/// Node `i`'s event log.
pub fn events_of(cluster: &Cluster, i: usize) -> Vec<serde_json::Value> {
    let (_, _, body) = get(&cluster.nodes[i].1, "/events");
    let events: serde_json::Value = serde_json::from_slice(&body).unwrap();
    events["events"].as_array().unwrap().clone()
}

/// Disk `disk`'s entry in node `i`'s `/health`.
pub fn disk_state(cluster: &Cluster, i: usize, disk: &str) -> serde_json::Value {
    let h: serde_json::Value =
        serde_json::from_slice(&get(&cluster.nodes[i].1, "/health").2).unwrap();
    super::disk_health(&h, disk)
}

/// A replica missing from its disk for `seconds` counts as lost.
pub fn with_grace(cluster: &Cluster, seconds: u64) {
    cluster.configure(&format!("[repair]\ndisk_grace_seconds = {seconds}\n"));
}

/// Starts every node once, so it adopts its blank disk, and stops it again (replicas are then
/// placed by hand on the adopted disks).
pub fn adopt_disks(c: &mut Cluster) {
    for i in 0..c.nodes.len() {
        c.start(i, None);
    }
    for i in 0..c.nodes.len() {
        wait_until("the node answers", LIMIT, || {
            super::connect(&c.nodes[i].1, "health").ok()
        });
        c.stop(i);
    }
}

pub fn start_all(c: &mut Cluster) {
    for i in 0..c.nodes.len() {
        c.start(i, None);
    }
}

/// A replica of `id` made once (ImageMagick, `td tile`: slow in a debug build) in a folder of
/// its own, set `node-a`, `node-b`; [`Template::put`] copies it onto a disk.
pub struct Template {
    dir: tempfile::TempDir,
    pub id: String,
}

impl Template {
    pub fn new(id: &str, picture: &str, size: &str) -> Template {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("images")).unwrap();
        super::place(dir.path(), id, picture, size);
        Template {
            dir,
            id: id.to_string(),
        }
    }

    /// The replica's folder.
    pub fn folder(&self) -> PathBuf {
        self.dir.path().join("images").join(&self.id)
    }

    /// Places the replica on `disk` (its node stopped).
    pub fn put(&self, disk: &Path) {
        let to = disk.join("images").join(&self.id);
        std::fs::create_dir_all(&to).unwrap();
        for entry in std::fs::read_dir(self.folder()).unwrap() {
            let entry = entry.unwrap();
            std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
        }
    }

    /// The files of replica folder `dir` whose bytes are not the template's (the manifest is
    /// left out: the set it names changes with a re-mirror).
    pub fn differs(&self, dir: &Path) -> Vec<String> {
        let mut wrong = Vec::new();
        for entry in std::fs::read_dir(self.folder()).unwrap() {
            let name = entry.unwrap().file_name().to_string_lossy().into_owned();
            if name == "replica.json" {
                continue;
            }
            if std::fs::read(self.folder().join(&name)).ok() != std::fs::read(dir.join(&name)).ok()
            {
                wrong.push(name);
            }
        }
        wrong
    }
}

/// What node `addr` serves of `id` over HTTP: its thumbnail and every tile of every level
/// (walked row by row until a 404), by path. Panics on any other status than 200 and 404.
pub fn served(addr: &str, id: &str) -> Vec<(String, Vec<u8>)> {
    let mut all = Vec::new();
    let mut fetch = |path: String| -> bool {
        let (status, head, body) = get(addr, &path);
        match status {
            200 => {
                all.push((path, body));
                true
            }
            404 => false,
            _ => panic!("GET {addr}{path}: {head}"),
        }
    };
    assert!(
        fetch(format!("/thumbs/{id}.jpg")),
        "no thumbnail of {id} at {addr}"
    );
    for level in 0.. {
        let mut row = 0;
        while fetch(format!("/tiles/{id}/{level}/0/{row}.jpg")) {
            let mut col = 1;
            while fetch(format!("/tiles/{id}/{level}/{col}/{row}.jpg")) {
                col += 1;
            }
            row += 1;
        }
        if row == 0 {
            break;
        }
    }
    assert!(all.len() > 2, "{addr} serves {} files of {id}", all.len());
    all
}

/// The names in folder `dir`, sorted (none if it is not there).
fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// The folders under `disk/images` (hidden ones too).
pub fn folders(disk: &Path) -> Vec<String> {
    names_in(&disk.join("images"))
}

/// The re-mirror job markers in node `i`'s state folder.
pub fn job_markers(cluster: &Cluster, i: usize) -> Vec<String> {
    names_in(&cluster.state_dir(i).join("remirror"))
}

/// Node `i`'s `/redundancy`.
pub fn redundancy(cluster: &Cluster, i: usize) -> serde_json::Value {
    let (status, _, body) = get(&cluster.nodes[i].1, "/redundancy");
    assert_eq!(status, 200);
    serde_json::from_slice(&body).unwrap()
}

/// Node `i`'s `/redundancy`: (copies under way, images waiting).
pub fn remirror_work(cluster: &Cluster, i: usize) -> (usize, usize) {
    let r = redundancy(cluster, i);
    (
        r["jobs"].as_array().map_or(0, Vec::len),
        r["waiting"].as_array().map_or(0, Vec::len),
    )
}

/// The set named by the manifest of the replica of `id` on `disk`: (nodes, epoch).
pub fn manifest_set(disk: &Path, id: &str) -> (serde_json::Value, u64) {
    let path = disk.join("images").join(id).join("replica.json");
    let m: serde_json::Value = serde_json::from_slice(
        &std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())),
    )
    .unwrap();
    (m["nodes"].clone(), m["placed_at"].as_u64().unwrap())
}

/// What is not yet as it must be once a re-mirror of `id` settled with its replicas on
/// `holders` (node indexes): exactly those nodes serve it, from a folder on their disk naming
/// the set of the two; no other disk holds a folder of it, no disk a hidden copy; no node has a
/// job or an image waiting; `td status` counts it healthy. `None` once all of that holds.
pub fn unsettled(cluster: &Cluster, id: &str, holders: &[usize]) -> Option<String> {
    let names: Vec<String> = holders
        .iter()
        .map(|&i| cluster.nodes[i].0.clone())
        .collect();
    let servers = servable(cluster, id);
    if servers != holders {
        return Some(format!("{id} served by nodes {servers:?}"));
    }
    let mut sets = Vec::new();
    for i in 0..cluster.nodes.len() {
        let here = folders(&cluster.disk(i));
        let kept = here.iter().any(|n| n == id);
        if kept != holders.contains(&i) {
            return Some(format!("{} holds {here:?}", cluster.nodes[i].0));
        }
        if let Some(hidden) = here.iter().find(|n| n.starts_with('.')) {
            return Some(format!("{} holds hidden {hidden}", cluster.nodes[i].0));
        }
        if kept {
            sets.push(manifest_set(&cluster.disk(i), id));
        }
        let markers = job_markers(cluster, i);
        if !markers.is_empty() {
            return Some(format!("{} has jobs {markers:?}", cluster.nodes[i].0));
        }
        let work = remirror_work(cluster, i);
        if work != (0, 0) {
            return Some(format!(
                "{} has (jobs, waiting) {work:?}",
                cluster.nodes[i].0
            ));
        }
    }
    if sets
        .iter()
        .any(|(nodes, _)| *nodes != serde_json::json!(names))
        || sets[0] != sets[1]
    {
        return Some(format!("the holders' manifests name {sets:?}"));
    }
    let s = status(cluster);
    if s["healthy"] != 1 || s["images"] != 1 || s["under_replicated"] != 0 || s["lost"] != 0 {
        return Some(format!("td status: {s}"));
    }
    None
}

/// Waits until [`unsettled`] says nothing, panicking with what it said last and what the
/// nodes say.
pub fn wait_settled(cluster: &Cluster, id: &str, holders: &[usize], what: &str) {
    wait_or_tell(cluster, &format!("{what}: settled"), || {
        unsettled(cluster, id, holders).map_or(Ok(()), Err)
    });
}

/// Polls `ok` until it holds, at most [`LIMIT`]; otherwise panics with `what`, the last thing
/// `ok` said, and each node's re-mirror status and last log lines.
pub fn wait_or_tell<T>(
    cluster: &Cluster,
    what: &str,
    mut ok: impl FnMut() -> Result<T, String>,
) -> T {
    let until = std::time::Instant::now() + LIMIT;
    loop {
        match ok() {
            Ok(v) => return v,
            Err(why) if std::time::Instant::now() >= until => {
                panic!("{what}: not after {LIMIT:?}: {why}\n{}", told(cluster))
            }
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

/// Each node's `/redundancy` and the last lines of its log, for a failure's message.
pub fn told(cluster: &Cluster) -> String {
    let mut all = String::new();
    for (i, (name, addr, _)) in cluster.nodes.iter().enumerate() {
        let redundancy = super::connect(addr, "redundancy")
            .ok()
            .map(|_| String::from_utf8_lossy(&get(addr, "/redundancy").2).into_owned());
        let log = cluster.stderr(i);
        let lines: Vec<&str> = log.lines().collect();
        let tail = lines[lines.len().saturating_sub(40)..].join("\n");
        all.push_str(&format!(
            "--- {name}: /redundancy {}\n{tail}\n",
            redundancy.as_deref().unwrap_or("(no answer)")
        ));
    }
    all
}

/// Node `i`, started with `TD_CRASH_AT=point`, killed itself there: waits for its end and
/// checks its last words name the point. Returns what it said.
pub fn crashed(cluster: &mut Cluster, i: usize, point: &str) -> String {
    let name = cluster.nodes[i].0.clone();
    wait_until(&format!("{name} killed at {point}"), LIMIT, || {
        cluster.died(i).then_some(())
    });
    let said = cluster.stderr(i);
    assert!(
        said.contains(&format!("TD_CRASH_AT={point}")),
        "{name} died, but not at {point}:\n{said}"
    );
    said
}

/// Starts node `i` again (without `TD_CRASH_AT`) and waits until it answers.
pub fn restart(cluster: &mut Cluster, i: usize) {
    cluster.start(i, None);
    let name = cluster.nodes[i].0.clone();
    wait_until(&format!("{name} answers again"), LIMIT, || {
        super::connect(&cluster.nodes[i].1, "health").ok()
    });
}

/// [`crashed`], then [`restart`].
pub fn restart_after_crash(cluster: &mut Cluster, i: usize, point: &str) -> String {
    let said = crashed(cluster, i, point);
    restart(cluster, i);
    said
}
