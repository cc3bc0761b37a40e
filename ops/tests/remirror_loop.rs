//! Re-mirroring after real disk faults, on three `td backend` processes (power domains A, B,
//! C); node-b's disk is an ext4 filesystem on a loop device, node-a and node-b hold an image.
//!
//! - The filesystem shut down under node-b (the shutdown ioctl: every I/O fails): node-a copies
//!   the image to node-c; the filesystem mounted again, node-b checks the disk and trims its
//!   superseded replica, so exactly two remain.
//! - Bytes of the replica's pyramid flipped in the loop device's backing file, below the
//!   filesystem: node-b's scrub finds it, the replica answers 503, node-a copies the good one
//!   to node-c, and node-b takes the damaged one off.
//!
//! Each time, once settled, node-a and node-c serve the bytes served before, and no hidden copy,
//! third replica or job is left. Needs root (loop devices, mount); in CI it must run, elsewhere
//! without root it says it is skipped.

mod common;

use std::os::unix::fs::FileExt;
use std::path::PathBuf;

use common::ingest::Cluster;
use common::loop_disks::{physical_offset, sh, shut_down, LoopDisks};
use common::monitor::wait_until;
use common::remirror::{
    adopt_disks, disk_state, events_of, manifest_set, served, start_all, status, wait_or_tell,
    wait_settled, Template, LIMIT,
};

const SURVIVOR: usize = 0;
const LOSER: usize = 1;
const TARGET: usize = 2;

/// The cluster, node-b's disk on a loop device. Dropped in order, even when a test fails: the
/// nodes stopped (nothing holds the filesystem any more), then the disk unmounted and its loop
/// device detached, then the folders removed.
struct LoopCluster {
    c: Cluster,
    disks: LoopDisks,
    /// node-b's disk: its mount point, and the file behind its loop device.
    mnt: PathBuf,
    backing: PathBuf,
}

impl LoopCluster {
    /// `[repair]` settings added to the configuration.
    fn new(repair: &str, image: &Template) -> LoopCluster {
        let c = Cluster::new(&["A", "B", "C"]);
        c.configure(&format!("[repair]\n{repair}"));
        let mut disks = LoopDisks::default();
        let folder = c.dir.path().join("node-b");
        std::fs::remove_dir(c.disk(LOSER)).unwrap();
        let mnt = disks.add(&folder, "d1");
        assert_eq!(mnt, c.disk(LOSER));
        let mut lc = LoopCluster {
            c,
            disks,
            mnt,
            backing: folder.join("d1.img"),
        };
        adopt_disks(&mut lc.c);
        image.put(&lc.c.disk(SURVIVOR));
        image.put(&lc.c.disk(LOSER));
        start_all(&mut lc.c);
        wait_until("healthy", LIMIT, || {
            (status(&lc.c)["healthy"] == 1).then_some(())
        });
        lc
    }
}

impl Drop for LoopCluster {
    fn drop(&mut self) {
        for i in 0..self.c.nodes.len() {
            self.c.stop(i);
        }
        drop(std::mem::take(&mut self.disks));
    }
}

/// What must hold once settled: node-a and node-c hold the image (the set of the two), serve
/// the bytes served `before`, and the files are the template's.
fn two_again(c: &Cluster, image: &Template, before: &[(String, Vec<u8>)], what: &str) {
    let id = image.id.as_str();
    wait_settled(c, id, &[SURVIVOR, TARGET], what);
    for i in [SURVIVOR, TARGET] {
        let name = &c.nodes[i].0;
        let wrong = image.differs(&c.disk(i).join("images").join(id));
        assert!(wrong.is_empty(), "{what}: {name}'s {wrong:?} differ");
        assert!(
            served(&c.nodes[i].1, id) == before,
            "{what}: {name} serves other bytes"
        );
    }
}

#[test]
fn a_disk_shut_down_under_its_node_is_re_mirrored_and_trimmed_when_mounted_again() {
    if !common::root_or_skip(
        "a_disk_shut_down_under_its_node_is_re_mirrored_and_trimmed_when_mounted_again",
        "loop devices and mount",
    ) {
        return;
    }
    let image = Template::new("wave", "plasma:fractal", "700x500");
    let id = image.id.as_str();
    let mut lc = LoopCluster::new("disk_grace_seconds = 2\n", &image);
    let c = &lc.c;
    let before = served(&c.nodes[SURVIVOR].1, id);
    assert!(served(&c.nodes[LOSER].1, id) == before);

    // Every I/O of node-b's filesystem fails from now on: its probe fails the disk.
    shut_down(&lc.mnt);
    wait_or_tell(c, "node-b's disk failed", || {
        let d = disk_state(c, LOSER, "node-b-d1");
        (d["state"] == "failed").then_some(()).ok_or(d.to_string())
    });
    // After the grace, node-a copies the image to node-c and adopts the new set.
    wait_or_tell(c, "node-a adopts {a, c}", || {
        let (nodes, epoch) = manifest_set(&c.disk(SURVIVOR), id);
        if nodes != serde_json::json!(["node-a", "node-c"]) {
            return Err(format!("node-a's manifest names {nodes} at {epoch}"));
        }
        let s = status(c);
        (s["healthy"] == 1 && s["under_replicated"] == 0)
            .then_some(())
            .ok_or(format!("td status: {s}"))
    });

    // The filesystem back: node-b checks the disk, serves it again, and trims its superseded
    // replica. node-b still holds the failed filesystem's files open (its replica's pyramid),
    // so it cannot simply be unmounted and mounted again: the disk is pulled and put back (a
    // new loop device on the same backing file, mounted at the same place).
    let held = LoopDisks::open_under(&lc.mnt);
    eprintln!("open on the failed filesystem: {held:?}");
    lc.disks.reattach(&lc.mnt);
    wait_or_tell(c, "node-b's disk back", || {
        let d = disk_state(c, LOSER, "node-b-d1");
        (d["state"] == "healthy").then_some(()).ok_or(d.to_string())
    });
    two_again(c, &image, &before, "shut down, mounted again");
    assert!(
        events_of(c, LOSER)
            .iter()
            .any(|e| e["kind"] == "disk_returned"),
        "{:#?}",
        events_of(c, LOSER)
    );
}

#[test]
fn bytes_flipped_below_the_filesystem_are_found_by_the_scrub_and_copied_again_from_the_good_replica(
) {
    if !common::root_or_skip(
        "bytes_flipped_below_the_filesystem_are_found_by_the_scrub_and_copied_again_from_the_good_replica",
        "loop devices and mount",
    ) {
        return;
    }
    let image = Template::new("wave", "plasma:fractal", "700x500");
    let id = image.id.as_str();
    // Continuous scrub passes, no rate limit: the damage is found at the next pass. The grace
    // leaves time to see the damaged replica refused before it is taken off.
    let lc = LoopCluster::new(
        "disk_grace_seconds = 5\nscrub_period_days = 0\nscrub_rate_mb = 0\n",
        &image,
    );
    let c = &lc.c;
    // (node-b's tiles are not asked for: one in its tile cache would still be answered from
    // there, checked bytes, after the damage is found.)
    let before = served(&c.nodes[SURVIVOR].1, id);

    // 64 bytes in the middle of node-b's pyramid file, inverted where the loop device keeps
    // them (below the filesystem: no checksum of ext4's sees it), then every cache dropped.
    let pyramid = image.folder().join("pyramid.tdp");
    // At the start of a block (4096 is a multiple of any ext4 block size), so all 64 are in it.
    let offset = (std::fs::metadata(&pyramid).unwrap().len() / 2) & !4095;
    let at = physical_offset(
        lc.disks.device(&lc.mnt),
        &format!("/images/{id}/pyramid.tdp"),
        offset,
    );
    let backing = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&lc.backing)
        .unwrap();
    let mut bytes = [0u8; 64];
    backing.read_exact_at(&mut bytes, at).unwrap();
    let good: Vec<u8> = std::fs::read(&pyramid).unwrap()[offset as usize..][..64].to_vec();
    assert_eq!(bytes.to_vec(), good, "the file's bytes are at {at}");
    for b in &mut bytes {
        *b = !*b;
    }
    backing.write_all_at(&bytes, at).unwrap();
    backing.sync_all().unwrap();
    sh("sh", &["-c", "echo 3 > /proc/sys/vm/drop_caches"]);
    let seen = std::fs::read(c.disk(LOSER).join("images").join(id).join("pyramid.tdp")).unwrap();
    assert_ne!(
        &seen[offset as usize..][..64],
        &good[..],
        "the filesystem reads the flipped bytes"
    );

    // The scrub reads it back against its manifest: damaged, refused at once.
    let event = wait_or_tell(c, "the scrub finds it", || {
        events_of(c, LOSER)
            .into_iter()
            .find(|e| e["kind"] == "replica_corrupt" && e["image"] == id)
            .ok_or_else(|| "no replica_corrupt event on node-b".to_string())
    });
    let (code, head, _) = common::get(&c.nodes[LOSER].1, &format!("/tiles/{id}/0/0/0.jpg"));
    assert_eq!(code, 503, "the damaged replica is refused: {head}\n{event}");
    // node-a copies its good replica to node-c; node-b takes the damaged one off.
    two_again(c, &image, &before, "flipped below the filesystem");
}
