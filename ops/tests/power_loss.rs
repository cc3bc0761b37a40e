//! Power cuts, not only kills. A SIGKILL keeps the page cache, so it never tests an fsync: here
//! every node's disk and state folder is a powerfs mount (`fixtures/powerfs.py`, see
//! `common/powerfs.rs`), which keeps what was not fsynced in memory and loses it when told the
//! power is cut (file data not fsynced, and names whose folder was not fsynced since they were
//! made, renamed or removed: POSIX at its strictest).
//!
//! First the layer itself is shown to keep exactly what was made durable. Then three real
//! backends ingest an upload, each node killing itself (`TD_CRASH_AT`) right after each step of
//! the protocol; the node that died has its power cut before it is started again on what is
//! left. An upload acknowledged to its provider ends published with two replicas of the same
//! bytes, a replica published before the cut is still there and served, and no third copy is
//! left anywhere; an upload not acknowledged yet can be sent again. Then the re-mirror, each
//! node killed and its power cut at each of its steps: the image ends with exactly two
//! replicas of the same bytes.
//!
//! Needs root (FUSE). In CI it must run; elsewhere without root it says it is skipped.

mod common;

use std::io::{Read, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use common::ingest::{header, noise_png, Cluster};
use common::monitor::wait_until;
use common::powerfs::PowerFs;
use common::remirror::{
    adopt_disks, crashed, manifest_set, redundancy, restart, served, status, wait_or_tell,
    wait_settled, with_grace, Template,
};

/// Long enough for a debug build on two busy cores going through FUSE; reaching it is a hang.
const LIMIT: Duration = Duration::from_secs(240);

/// Chunks the provider sends (the upload of the crash runs spans three).
const CHUNK: usize = 5 << 20;

/// Bytes that differ at every offset (a misplaced write shows).
fn pattern(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn fsync(path: &Path) {
    std::fs::File::open(path).unwrap().sync_all().unwrap();
}

fn names(dir: &Path) -> Vec<String> {
    let mut n: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    n.sort();
    n
}

#[test]
fn the_layer_keeps_what_was_made_durable_and_loses_the_rest_at_a_cut() {
    if !common::root_or_skip(
        "the_layer_keeps_what_was_made_durable_and_loses_the_rest_at_a_cut",
        "FUSE",
    ) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut fs = PowerFs::mount(&dir.path().join("mnt"), &dir.path().join("layer"));
    let w = fs.path().join("work");
    std::fs::create_dir(&w).unwrap();
    fsync(fs.path());
    let block = pattern(1, 1 << 20);
    let write_synced = |name: &str, bytes: &[u8]| {
        let mut f = std::fs::File::create(w.join(name)).unwrap();
        f.write_all(bytes).unwrap();
        f.sync_all().unwrap();
    };

    // Made durable: files written and fsynced, markers written the node's way (temp, fsync,
    // rename, fsync of the folder), a folder with a file, a big file; then the folder fsynced.
    write_synced("kept.bin", &block);
    write_synced("shrunk.bin", &block);
    floor::durable::write(&w.join("marker.json"), b"old").unwrap();
    floor::durable::write(&w.join("undone.json"), b"old").unwrap();
    write_synced("doomed", &block);
    std::fs::create_dir(w.join("tree")).unwrap();
    floor::durable::write(&w.join("tree").join("leaf"), b"leaf").unwrap();
    // Hundreds of MB, appended a MiB at a time as a transfer does, then fsynced.
    const BIG: usize = 256;
    {
        let mut f = std::fs::File::create(w.join("big.bin")).unwrap();
        for i in 0..BIG {
            f.write_all(&pattern(100 + i as u64, 1 << 20)).unwrap();
        }
        f.sync_all().unwrap();
    }
    fsync(&w);
    let durable_names = names(&w);

    // Then, never made durable (nothing below fsyncs `work`, but the first marker's write).
    // A marker replaced the node's way: durable, the folder fsynced last.
    floor::durable::write(&w.join("marker.json"), b"new").unwrap();
    // Appended, not fsynced.
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(w.join("kept.bin"))
        .unwrap();
    f.write_all(&[0xAA; 100_000]).unwrap();
    drop(f);
    // Truncated, not fsynced.
    std::fs::OpenOptions::new()
        .write(true)
        .open(w.join("shrunk.bin"))
        .unwrap()
        .set_len(10)
        .unwrap();
    // Created and fsynced, its folder never fsynced after.
    write_synced("orphan", b"orphan");
    // Replaced by a rename of an fsynced temp, without the folder's fsync.
    write_synced(".undone.json.tmp", b"new");
    std::fs::rename(w.join(".undone.json.tmp"), w.join("undone.json")).unwrap();
    // Unlinked; a folder removed with what it held.
    std::fs::remove_file(w.join("doomed")).unwrap();
    std::fs::remove_dir_all(w.join("tree")).unwrap();
    // A folder made and filled durably inside, its own name never made durable.
    std::fs::create_dir(w.join("fresh")).unwrap();
    floor::durable::write(&w.join("fresh").join("x"), b"x").unwrap();
    // 8 MiB of the big file overwritten and 1 MiB appended, not fsynced.
    {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .open(w.join("big.bin"))
            .unwrap();
        std::os::unix::fs::FileExt::write_all_at(&f, &[0x55; 8 << 20], 100 << 20).unwrap();
        std::io::Seek::seek(&mut f, std::io::SeekFrom::End(0)).unwrap();
        f.write_all(&[0x66; 1 << 20]).unwrap();
    }

    // While the power is on, every reader sees all of it (the layer is the page cache).
    let mut long = block.clone();
    long.extend_from_slice(&[0xAA; 100_000]);
    assert_eq!(std::fs::read(w.join("kept.bin")).unwrap(), long);
    assert_eq!(std::fs::read(w.join("shrunk.bin")).unwrap(), &block[..10]);
    assert_eq!(std::fs::read(w.join("undone.json")).unwrap(), b"new");
    assert_eq!(std::fs::read(w.join("fresh").join("x")).unwrap(), b"x");
    assert!(!w.join("doomed").exists() && !w.join("tree").exists());
    assert_eq!(
        std::fs::metadata(w.join("big.bin")).unwrap().len(),
        ((BIG + 1) << 20) as u64
    );
    assert!(fs2::available_space(fs.path()).unwrap() > 0, "statvfs");

    fs.cut();

    assert_eq!(names(&w), durable_names, "the names as last fsynced");
    assert_eq!(std::fs::read(w.join("kept.bin")).unwrap(), block);
    assert_eq!(std::fs::read(w.join("shrunk.bin")).unwrap(), block);
    assert_eq!(std::fs::read(w.join("marker.json")).unwrap(), b"new");
    assert_eq!(std::fs::read(w.join("undone.json")).unwrap(), b"old");
    assert_eq!(std::fs::read(w.join("doomed")).unwrap(), block);
    assert_eq!(std::fs::read(w.join("tree").join("leaf")).unwrap(), b"leaf");
    assert!(!w.join("orphan").exists());
    assert!(!w.join("fresh").exists());
    let mut big = std::fs::File::open(w.join("big.bin")).unwrap();
    assert_eq!(big.metadata().unwrap().len(), (BIG << 20) as u64);
    let mut mib = vec![0; 1 << 20];
    for i in 0..BIG {
        big.read_exact(&mut mib).unwrap();
        assert!(
            mib == pattern(100 + i as u64, 1 << 20),
            "MiB {i} of the big file"
        );
    }
    // After a cut everything left is durable: a second cut changes nothing.
    fs.cut();
    assert_eq!(names(&w), durable_names);
    assert_eq!(std::fs::read(w.join("undone.json")).unwrap(), b"old");
}

/// Stages of an upload the provider has been told are safe.
const ACKNOWLEDGED: [&str; 5] = ["durable", "tiling", "placing", "verifying", "published"];

/// A cluster whose nodes keep their disk and their state folder on powerfs mounts. Dropped:
/// the nodes killed first, then the mounts undone, then the folders removed.
struct Powered {
    c: Cluster,
    /// Per node: its disk, its state folder.
    mounts: Vec<[PowerFs; 2]>,
}

impl Powered {
    fn new(domains: &[&str]) -> Powered {
        let c = Cluster::new(domains);
        let mounts = (0..domains.len())
            .map(|i| {
                let layer = c.dir.path().join("powerfs").join(&c.nodes[i].0);
                [
                    PowerFs::mount(&c.disk(i), &layer.join("d1")),
                    PowerFs::mount(&c.state_dir(i), &layer.join("state")),
                ]
            })
            .collect();
        Powered { c, mounts }
    }

    /// Cuts node `i`'s power (its process is dead already).
    fn cut(&mut self, i: usize) {
        for m in &mut self.mounts[i] {
            m.cut();
        }
    }

    /// Everything written so far made durable, on every node.
    fn sync_all(&mut self) {
        for m in self.mounts.iter_mut().flatten() {
            m.sync();
        }
    }

    /// Every node that killed itself at `point` has its power cut and is started again, without
    /// a crash point (another node may reach the same point later). Returns them.
    fn revive(&mut self, point: &str) -> Vec<usize> {
        let dead: Vec<usize> = (0..self.c.nodes.len())
            .filter(|&i| self.c.died(i))
            .collect();
        for &i in &dead {
            assert!(
                self.c.stderr(i).contains(&format!("TD_CRASH_AT={point}")),
                "node {i} died otherwise: {}",
                self.c.stderr(i)
            );
            self.cut(i);
            self.c.start(i, None);
        }
        dead
    }

    fn staging_of(&self, id: &str) -> Vec<String> {
        (0..self.c.nodes.len())
            .flat_map(|i| {
                self.c
                    .staging(i)
                    .into_iter()
                    .filter(|s| s.contains(id))
                    .map(move |s| format!("{}: {s}", self.c.nodes[i].0))
            })
            .collect()
    }

    /// Every copy of `image` on every node: (node, state), hidden ones included.
    fn copies(&self, image: &str) -> Vec<(usize, String)> {
        let mut found = Vec::new();
        for i in 0..self.c.nodes.len() {
            let Ok(entries) = std::fs::read_dir(self.c.disk(i).join("images")) else {
                continue;
            };
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if name == image || name.starts_with(&format!(".{image}.")) {
                    found.push((i, name));
                }
            }
        }
        found.sort();
        found
    }

    fn everything(&self) -> String {
        (0..self.c.nodes.len())
            .map(|i| {
                format!(
                    "{}:\n{}\n{}\n{}",
                    self.c.nodes[i].0,
                    self.c.stderr(i),
                    self.mounts[i][0].stderr(),
                    self.mounts[i][1].stderr()
                )
            })
            .collect::<Vec<_>>()
            .join("\n---\n")
    }
}

impl Drop for Powered {
    fn drop(&mut self) {
        for i in 0..self.c.nodes.len() {
            self.c.stop(i);
        }
        self.mounts.clear();
    }
}

/// An upload started on node `i` and sent whole (or until the node dies): (upload id, image
/// id, the stage the last chunk's answer gave, if it was answered).
fn upload(c: &Cluster, i: usize, bytes: &[u8], title: &str) -> (String, String, Option<String>) {
    let (id, image) = c.create_upload(i, "ada", "noise.png", bytes.len(), title);
    let stage = send(c, i, &id, bytes, 0);
    (id, image, stage)
}

/// Sends `bytes[from..]`; the stage the last answer gave (none when the node died first).
fn send(c: &Cluster, i: usize, id: &str, bytes: &[u8], from: usize) -> Option<String> {
    let (s, head, body) = c.send_rest(i, "ada", id, bytes, from, CHUNK);
    assert!(
        s == 204 || s == 0,
        "a chunk: {s} {}\n{}",
        String::from_utf8_lossy(&body),
        c.stderr(i)
    );
    (s == 204).then(|| header(&head, "td-stage").unwrap_or_default())
}

/// Waits until upload `id` is published on two nodes with its staging cleared everywhere,
/// cutting the power of (and restarting) any node that kills itself at `point` meanwhile.
fn wait_published(p: &mut Powered, id: &str, image: &str, point: &str) {
    let deadline = Instant::now() + LIMIT;
    loop {
        p.revive(point);
        let status = p.c.status_of(0, "ada", id);
        let stage = status.as_ref().map(|s| s["stage"].clone());
        let published = (0..p.c.nodes.len())
            .filter(|&i| p.c.replica_state(i, image) == Some("published"))
            .count();
        assert!(published <= 2, "{point}: {:?}", p.copies(image));
        if stage == Some("published".into()) && published == 2 && p.staging_of(id).is_empty() {
            return;
        }
        assert!(
            stage != Some("failed".into()),
            "{point}: the upload failed: {status:?}"
        );
        assert!(
            Instant::now() < deadline,
            "{point}: not published in {LIMIT:?}: {status:?}; staging {:?}; copies {:?}\n{}",
            p.staging_of(id),
            p.copies(image),
            p.everything()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `image` is published on exactly two nodes in two power domains and nowhere else, each
/// replica whole against its manifest with the provider's original byte for byte, in its
/// node's catalog, and served alike by both. Returns the two nodes.
fn two_replicas_of(p: &Powered, image: &str, original: &[u8], when: &str) -> Vec<usize> {
    let c = &p.c;
    let copies = p.copies(image);
    let holders: Vec<usize> = copies.iter().map(|(i, _)| *i).collect();
    assert!(
        copies.len() == 2 && copies.iter().all(|(_, name)| name == image),
        "{when}: {image} must be published on two nodes and nowhere else: {copies:?}"
    );
    assert_ne!(
        c.nodes[holders[0]].2, c.nodes[holders[1]].2,
        "{when}: the replicas are in two power domains"
    );
    let mut served = Vec::new();
    for &h in &holders {
        let dir = c.disk(h).join("images").join(image);
        let manifest = backend::replica::read_manifest(&dir, image).unwrap();
        let wrong = backend::replica::verify(&dir, &manifest, &mut |_| {});
        assert!(wrong.is_empty(), "{when}: {image} on node {h}: {wrong:?}");
        let name = &manifest
            .files
            .iter()
            .find(|f| f.name.starts_with("original."))
            .unwrap()
            .name;
        assert!(
            std::fs::read(dir.join(name)).unwrap() == original,
            "{when}: {image} on node {h}: the original differs from what was sent"
        );
        let (s, _, body) = c.call(h, "GET", "/catalog", "", &[], b"");
        assert_eq!(s, 200);
        let page: cluster::CatalogPage = serde_json::from_slice(&body).unwrap();
        let entry = page.entries.iter().find(|e| e.id == image);
        assert!(
            entry.is_some_and(|e| e.state == cluster::ReplicaState::Ok),
            "{when}: {image} in node {h}'s catalog: {entry:?}"
        );
        let mut answers = Vec::new();
        for path in [
            format!("/thumbs/{image}.jpg"),
            format!("/tiles/{image}/0/0/0.jpg"),
            format!("/meta/{image}.json"),
        ] {
            let (s, head, body) = common::get(&c.nodes[h].1, &path);
            assert_eq!(s, 200, "{when}: {path} on node {h}: {head}");
            answers.push(body);
        }
        served.push(answers);
    }
    assert!(
        served[0] == served[1],
        "{when}: {image}: the two replicas serve different bytes"
    );
    holders
}

fn ingest_power_cut_at(point: &str) {
    let work = tempfile::tempdir().unwrap();
    let small = std::fs::read(noise_png(work.path(), "640x480")).unwrap();
    // ~10 MB of noise: three chunks up, two 8 MiB pieces between nodes.
    let big = std::fs::read(noise_png(work.path(), "2600x2000")).unwrap();
    // Two nodes share a power domain, so the second copy and the second replica go to the
    // third.
    let mut p = Powered::new(&["left", "left", "right"]);
    for i in 0..3 {
        p.c.start(i, None);
    }
    // A cluster in service: its disks adopted, an upload through, made durable by the nodes'
    // own fsyncs alone.
    let (id, first, _) = upload(&p.c, 0, &small, "First");
    wait_published(&mut p, &id, &first, "first");
    // Published before the cut, made durable by the nodes' own fsyncs alone.
    let (id, before, _) = upload(&p.c, 0, &small, "Before");
    wait_published(&mut p, &id, &before, "before");
    let held_before = two_replicas_of(&p, &before, &small, "before the cut");

    // Now every node kills itself at `point`, and has its power cut.
    for i in 0..3 {
        p.c.stop(i);
        p.c.start(i, Some(point));
    }
    let (mut id, mut image, answered) = upload(&p.c, 0, &big, &format!("Cut at {point}"));
    let mut acknowledged = answered
        .as_deref()
        .is_some_and(|s| ACKNOWLEDGED.contains(&s));
    let deadline = Instant::now() + LIMIT;
    let dead = loop {
        let dead = p.revive(point);
        if !dead.is_empty() {
            break dead;
        }
        // What the provider's page shows counts as told too.
        let stage = p.c.status_of(0, "ada", &id).map(|s| s["stage"].clone());
        acknowledged |= stage.is_some_and(|s| ACKNOWLEDGED.iter().any(|a| s == *a));
        assert!(
            Instant::now() < deadline,
            "TD_CRASH_AT={point} was never reached: {:?}",
            p.c.status_of(0, "ada", &id)
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    if !acknowledged {
        // Never told it is safe: the provider asks where the upload is and goes on, or, if
        // it is gone, sends it again.
        let (s, head, _) = p.c.call(
            0,
            "HEAD",
            &format!("/internal/uploads/{id}"),
            "ada",
            &[],
            b"",
        );
        if s == 200 {
            let at: usize = header(&head, "upload-offset").unwrap().parse().unwrap();
            eprintln!("{point}: not acknowledged; resumed from byte {at}");
            send(&p.c, 0, &id, &big, at).expect("the rest taken");
        } else {
            eprintln!("{point}: not acknowledged; the upload is gone ({s}), sent again");
            let again = upload(&p.c, 0, &big, &format!("Cut at {point}, again"));
            (id, image) = (again.0, again.1);
            assert!(again.2.is_some(), "sent again");
        }
    }
    wait_published(&mut p, &id, &image, point);
    two_replicas_of(&p, &image, &big, point);
    for (img, when) in [(&first, "first"), (&before, "before")] {
        let held = two_replicas_of(&p, img, &small, &format!("{point}: {when}"));
        if when == "before" {
            assert_eq!(
                held, held_before,
                "{point}: the replicas published before the cut"
            );
        }
    }
    eprintln!(
        "TD_CRASH_AT={point}: node {dead:?} killed and its power cut ({}acknowledged); \
         published, nothing lost",
        if acknowledged { "" } else { "not " }
    );
}

/// The folders a node makes on a disk after adopting it (`images/` in `disk.rs`, when the node
/// opens the disk; `staging/` at its first upload, in `Staging::create`; `tombstones/`, the
/// re-mirror's `state_dir/remirror/`) are flushed into their parent when made
/// (`floor::durable::create_dir`). Under POSIX's rule a folder never flushed into its parent
/// can vanish at a power cut with everything in it, however carefully each replica inside
/// was fsynced (ext4 and XFS commit the `mkdir` with the first fsync inside it, through their
/// journal; other filesystems need not): here an image published on three new disks, and
/// nothing else made durable, survives a cut of every node.
#[test]
fn folders_made_on_a_new_disk_are_durable_so_a_power_cut_keeps_their_images() {
    if !common::root_or_skip(
        "folders_made_on_a_new_disk_are_durable_so_a_power_cut_keeps_their_images",
        "FUSE",
    ) {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let small = std::fs::read(noise_png(work.path(), "640x480")).unwrap();
    let mut p = Powered::new(&["left", "left", "right"]);
    for i in 0..3 {
        p.c.start(i, None);
    }
    let (id, image, stage) = upload(&p.c, 0, &small, "New disks");
    assert!(stage.is_some_and(|s| ACKNOWLEDGED.contains(&s.as_str())));
    wait_published(&mut p, &id, &image, "new disks");
    let held = two_replicas_of(&p, &image, &small, "before the cut");
    for i in 0..3 {
        p.c.stop(i);
        p.cut(i);
    }
    for &i in &held {
        let left = names(&p.c.disk(i));
        assert!(
            left.contains(&"images".to_string()),
            "node {i}'s images/ lost at the cut: {left:?}"
        );
    }
    for i in 0..3 {
        p.c.start(i, None);
    }
    for i in 0..3 {
        wait_until("the node answers", LIMIT, || {
            common::connect(&p.c.nodes[i].1, "health").ok()
        });
    }
    let after = two_replicas_of(&p, &image, &small, "after the cut");
    assert_eq!(after, held, "the same two nodes hold it");
}

/// The handover: the home killed right after acknowledging and its power cut, left dead; the
/// node holding the second copy takes the upload over once the home is silent past the node
/// grace, and is killed right after recording that (`taken-over`) and has its power cut too,
/// then started again. The upload ends published on two nodes in two power domains with the
/// provider's bytes; the home, back, follows, and every staging copy is cleared.
#[test]
fn power_cut_after_taken_over() {
    if !common::root_or_skip("power_cut_after_taken_over", "FUSE") {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let small = std::fs::read(noise_png(work.path(), "640x480")).unwrap();
    let big = std::fs::read(noise_png(work.path(), "1200x900")).unwrap();
    // The home (a) shares "left" with c; the second copy goes to b, the first node in "right".
    let mut p = Powered::new(&["left", "right", "left", "right"]);
    p.c.configure("[repair]\nnode_grace_seconds = 3\n");
    for i in 0..4 {
        p.c.start(i, None);
    }
    let (id, first, _) = upload(&p.c, 0, &small, "First");
    wait_published(&mut p, &id, &first, "first");
    for i in 0..4 {
        p.c.stop(i);
        let point = ["acknowledged", "taken-over"].get(i).copied();
        p.c.start(i, point);
    }
    let (id, image, _) = upload(&p.c, 0, &big, "Taken over");
    let deadline = Instant::now() + LIMIT;
    for (i, point) in [(0, "acknowledged"), (1, "taken-over")] {
        while !p.c.died(i) {
            assert!(
                Instant::now() < deadline,
                "TD_CRASH_AT={point} never reached on node {i}:\n{}",
                p.everything()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(p.c.stderr(i).contains(&format!("TD_CRASH_AT={point}")));
        p.cut(i);
    }
    // b, started again on what it made durable, goes on with the upload; a stays dead.
    p.c.start(1, None);
    loop {
        let status = p.c.status_of(1, "ada", &id);
        let published = (0..4)
            .filter(|&i| p.c.replica_state(i, &image) == Some("published"))
            .count();
        if published == 2 && status.as_ref().is_some_and(|s| s["stage"] == "published") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not published without its home: {status:?}; copies {:?}\n{}",
            p.copies(&image),
            p.everything()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // The home is back: it follows, and every staging copy is cleared.
    p.c.start(0, None);
    while !p.staging_of(&id).is_empty() {
        assert!(
            Instant::now() < deadline,
            "staging left: {:?}\n{}",
            p.staging_of(&id),
            p.everything()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let held = two_replicas_of(&p, &image, &big, "taken-over");
    assert!(!held.contains(&0), "nothing placed on the home");
    two_replicas_of(&p, &first, &small, "taken-over: first");
}

/// The crash points named in `backend/src/DIR/*.rs`: what follows each `marker` up to the
/// next quote (names with a dot, file names, left out), with `prefix` put back, sorted.
fn crash_points_in(dir: &str, marker: &str, prefix: &str) -> Vec<String> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../backend/src")
        .join(dir);
    let mut points = Vec::new();
    for entry in std::fs::read_dir(&src).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let text = std::fs::read_to_string(path).unwrap();
        for rest in text.split(marker).skip(1) {
            let name = rest.split('"').next().unwrap();
            if !name.contains('.') {
                points.push(format!("{prefix}{name}"));
            }
        }
    }
    points.sort();
    points.dedup();
    points
}

/// Every point in `points` has its test in `tested`.
fn assert_tested(points: &[String], tested: &[&str]) {
    let untested: Vec<&String> = points
        .iter()
        .filter(|p| !tested.contains(&p.as_str()))
        .collect();
    assert!(untested.is_empty(), "no power cut test at {untested:?}");
}

macro_rules! ingest_cuts {
    ($($name:ident: $point:literal,)*) => {
        $(
            #[test]
            fn $name() {
                if common::root_or_skip(stringify!($name), "FUSE") {
                    ingest_power_cut_at($point);
                }
            }
        )*
        /// Every crash point of ingest (`crash_point("...")` in `backend/src/ingest/`) has
        /// its test here (the handover's, `taken-over`, its own).
        #[test]
        fn every_ingest_crash_point_has_a_power_cut_test() {
            let tested = [$($point,)* "taken-over"];
            let points = crash_points_in("ingest", "crash_point(\"", "");
            assert_tested(&points, &tested);
            let unknown: Vec<&&str> =
                tested.iter().filter(|t| !points.iter().any(|p| p == *t)).collect();
            assert!(unknown.is_empty(), "no such crash point: {unknown:?}");
        }
    };
}

ingest_cuts! {
    power_cut_after_staged_home: "staged-home",
    power_cut_mid_transfer: "mid-transfer",
    power_cut_after_copy_sealed: "copy-sealed",
    power_cut_after_staged_copy: "staged-copy",
    power_cut_after_acknowledged: "acknowledged",
    power_cut_after_tiled: "tiled",
    power_cut_after_chosen: "chosen",
    power_cut_after_target_sealed: "target-sealed",
    power_cut_after_placed: "placed",
    power_cut_after_target_verified: "target-verified",
    power_cut_after_verified: "verified",
    power_cut_after_target_renamed: "target-renamed",
    power_cut_after_published: "published",
    power_cut_after_cleared: "cleared",
}

const SURVIVOR: usize = 0;
const LOSER: usize = 1;
const TARGET: usize = 2;

/// The re-mirror, node `who` killed at `point` and its power cut before it starts again:
/// node-a and node-b hold an image, node-b's disk is pulled out, node-a (the survivor) copies
/// the image to node-c (the target), node-b's disk is put back (having lost what it had not
/// fsynced) and its superseded replica trimmed. Once settled, exactly two replicas are left,
/// node-a's and node-c's, naming that set and serving the bytes served before, with no hidden
/// copy and no job left anywhere.
fn remirror_power_cut_at(who: usize, point: &str) {
    let image = Template::new("wave", "plasma:fractal", "700x500");
    let id = image.id.as_str();
    let mut p = Powered::new(&["A", "B", "C"]);
    with_grace(&p.c, 2);
    adopt_disks(&mut p.c);
    image.put(&p.c.disk(SURVIVOR));
    image.put(&p.c.disk(LOSER));
    // Placed long ago: the test's own writes (not fsynced) written back since.
    p.sync_all();
    for i in 0..3 {
        p.c.start(i, (i == who).then_some(point));
    }
    wait_until("healthy", LIMIT, || {
        (status(&p.c)["healthy"] == 1).then_some(())
    });
    let before = served(&p.c.nodes[SURVIVOR].1, id);
    assert!(
        served(&p.c.nodes[LOSER].1, id) == before,
        "both serve one image"
    );

    p.mounts[LOSER][0].pull();
    if who == SURVIVOR {
        crashed(&mut p.c, who, point);
        p.cut(who);
        restart(&mut p.c, who);
    }
    if who == TARGET {
        // node-a gives the silent target up; with no other node in another power domain, it
        // waits. Then node-c is back, with whatever of its copy was durable.
        crashed(&mut p.c, who, point);
        p.cut(who);
        wait_or_tell(&p.c, &format!("{point}: node-a gives node-c up"), || {
            let r = redundancy(&p.c, SURVIVOR);
            r["waiting"]
                .as_array()
                .unwrap()
                .iter()
                .any(|w| w["blocked"].is_string())
                .then_some(())
                .ok_or(format!("node-a: {r}"))
        });
        restart(&mut p.c, who);
    }
    wait_or_tell(&p.c, &format!("{point}: node-a adopts {{a, c}}"), || {
        let (nodes, epoch) = manifest_set(&p.c.disk(SURVIVOR), id);
        if nodes != serde_json::json!(["node-a", "node-c"]) {
            return Err(format!("node-a's manifest names {nodes} at {epoch}"));
        }
        let s = status(&p.c);
        (s["healthy"] == 1)
            .then_some(())
            .ok_or(format!("td status: {s}"))
    });

    // node-b's disk is put back, with what it had made durable; checked, its replica trimmed.
    p.mounts[LOSER][0].plug();
    if who == LOSER {
        crashed(&mut p.c, who, point);
        p.cut(who);
        restart(&mut p.c, who);
    }
    wait_settled(&p.c, id, &[SURVIVOR, TARGET], point);
    for i in [SURVIVOR, TARGET] {
        let name = &p.c.nodes[i].0;
        let wrong = image.differs(&p.c.disk(i).join("images").join(id));
        assert!(wrong.is_empty(), "{point}: {name}'s {wrong:?} differ");
        assert!(
            served(&p.c.nodes[i].1, id) == before,
            "{point}: {name} serves other bytes"
        );
    }
    assert_eq!(
        common::get(&p.c.nodes[LOSER].1, &format!("/tiles/{id}/0/0/0.jpg")).0,
        404,
        "{point}: node-b serves it no more"
    );
    eprintln!(
        "TD_CRASH_AT={point} on {}, its power cut: settled, two replicas",
        p.c.nodes[who].0
    );
}

macro_rules! remirror_cuts {
    ($($(#[$attr:meta])* $name:ident: $who:ident $point:literal,)*) => {
        $(
            #[test]
            $(#[$attr])*
            fn $name() {
                if common::root_or_skip(stringify!($name), "FUSE") {
                    remirror_power_cut_at($who, $point);
                }
            }
        )*
        /// Every crash point of the re-mirror (`"remirror-…"` in `backend/src/redundancy/`)
        /// has its test here.
        #[test]
        fn every_remirror_crash_point_has_a_power_cut_test() {
            let tested = [$($point),*];
            let points = crash_points_in("redundancy", "\"remirror-", "remirror-");
            assert_tested(&points, &tested);
        }
    };
}

remirror_cuts! {
    remirror_power_cut_of_the_survivor_after_recorded: SURVIVOR "remirror-recorded",
    remirror_power_cut_of_the_survivor_after_sent: SURVIVOR "remirror-sent",
    remirror_power_cut_of_the_survivor_after_verified: SURVIVOR "remirror-verified",
    remirror_power_cut_of_the_survivor_after_published: SURVIVOR "remirror-published",
    remirror_power_cut_of_the_survivor_after_adopted: SURVIVOR "remirror-adopted",
    remirror_power_cut_of_the_survivor_after_done: SURVIVOR "remirror-done",
    remirror_power_cut_of_the_target_after_sealed: TARGET "target-sealed",
    remirror_power_cut_of_the_target_after_verified: TARGET "target-verified",
    remirror_power_cut_of_the_target_after_renamed: TARGET "target-renamed",
    remirror_power_cut_of_the_returning_node_after_trimmed: LOSER "remirror-trimmed",
}
