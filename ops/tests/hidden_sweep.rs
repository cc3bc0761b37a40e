//! Hidden copies nothing will publish are swept, on three real `td backend` processes: node-c
//! holds a verified hidden copy of an image that node-a and node-b serve whole in two power
//! domains (what a re-mirror target given up while it was down keeps, or a losing ingest
//! coordinator leaves), and a placed hidden copy of an image nobody serves (what an upload in
//! progress holds). The first goes after the disk grace period; the second stays, and so do
//! the two published replicas.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::ingest::Cluster;
use common::monitor::wait_until;

/// Long enough for a debug build on two busy cores; a hang is a failure, not a wait.
const LIMIT: Duration = Duration::from_secs(120);

fn status(cluster: &Cluster) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_td"))
        .args(["status", "--json", "--config"])
        .arg(&cluster.config)
        .output()
        .unwrap();
    serde_json::from_slice(&out.stdout).unwrap_or_default()
}

/// A replica folder's files copied whole (the same set, the same epoch).
fn copy_replica(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

#[test]
fn a_hidden_copy_beside_an_image_served_whole_elsewhere_is_swept_and_nothing_else() {
    let mut c = Cluster::new(&["A", "B", "C"]);
    c.configure("[repair]\ndisk_grace_seconds = 2\n");
    // Each node adopts its blank disk, then stops; the replicas are put there by hand.
    for i in 0..3 {
        c.start(i, None);
    }
    for i in 0..3 {
        wait_until("the node answers", LIMIT, || {
            common::connect(&c.nodes[i].1, "health").ok()
        });
        c.stop(i);
    }
    common::place(&c.disk(0), "wave", "plasma:fractal", "700x500");
    let wave = c.disk(0).join("images/wave");
    copy_replica(&wave, &c.disk(1).join("images/wave"));
    copy_replica(&wave, &c.disk(2).join("images/.wave.verified"));
    common::place(&c.disk(2), "dune", "gradient:", "600x400");
    let dune = c.disk(2).join("images/.dune.placed");
    std::fs::rename(c.disk(2).join("images/dune"), &dune).unwrap();
    for i in 0..3 {
        c.start(i, None);
    }
    wait_until("wave healthy", LIMIT, || {
        let s = status(&c);
        (s["healthy"] == 1).then_some(())
    });

    let hidden = c.disk(2).join("images/.wave.verified");
    wait_until("the hidden copy of wave swept", LIMIT, || {
        (!hidden.exists()).then_some(())
    });
    // The same look kept the copy of an image nobody serves.
    assert!(dune.is_dir(), "a hidden copy nothing supersedes stays");
    let log = wait_until("node-c's log line", Duration::from_secs(10), || {
        let log = c.stderr(2);
        log.contains("swept a hidden copy").then_some(log)
    });
    assert!(log.contains("wave"), "{log}");
    let s = status(&c);
    assert_eq!(s["images"], 1, "{s:#}");
    assert_eq!(s["healthy"], 1, "{s:#}");
    for i in 0..2 {
        assert!(c.disk(i).join("images/wave/replica.json").is_file());
    }
}
