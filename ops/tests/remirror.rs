//! Redundancy restoring itself, on three real `td backend` processes (power domains A, B, C):
//! a disk that vanishes from under its node has its replicas copied again from their
//! survivors to the third node, through the hidden placement and verification of ingest;
//! when the disk comes back, its superseded replicas are checked and trimmed, so exactly two
//! remain; an image withdrawn with `td image rm` is gone from every node and stays gone when
//! a catalog is rebuilt. Counted throughout with `td status --json`, as an operator sees it.

mod common;

use common::get;
use common::ingest::Cluster;
use common::monitor::wait_until;
use common::remirror::{
    adopt_disks, entry_state, events_of, servable, start_all, status, td, wait_or_tell, with_grace,
    LIMIT,
};

#[test]
fn a_vanished_disk_is_re_mirrored_its_return_trimmed_and_a_withdrawn_image_stays_gone() {
    let mut c = Cluster::new(&["A", "B", "C"]);
    with_grace(&c, 3);
    adopt_disks(&mut c);
    common::place(&c.disk(0), "wave", "plasma:fractal", "700x500");
    common::place(&c.disk(1), "wave", "plasma:fractal", "700x500");
    common::place(&c.disk(0), "dune", "gradient:", "600x400");
    common::place(&c.disk(1), "dune", "gradient:", "600x400");
    let original = std::fs::read(c.disk(0).join("images/wave/pyramid.tdp")).unwrap();
    start_all(&mut c);
    let s = wait_until("two healthy images", LIMIT, || {
        let s = status(&c);
        (s["healthy"] == 2).then_some(s)
    });
    assert_eq!(s["images"], 2, "{s:#}");
    assert_eq!(s["under_replicated"], 0);

    // node-b's disk vanishes (moved away under the running node): its probe fails.
    let away = c.dir.path().join("node-b/d1.away");
    std::fs::rename(c.disk(1), &away).unwrap();
    let s = wait_until("the images under-replicated", LIMIT, || {
        let s = status(&c);
        (s["under_replicated"] == 2).then_some(s)
    });
    let problems = s["problems"].to_string();
    assert!(problems.contains("node-b"), "what was lost is named: {s:#}");
    // After the grace period, node-a copies both to node-c (the only other domain).
    let s = wait_until("healthy again", LIMIT, || {
        let s = status(&c);
        (s["healthy"] == 2).then_some(s)
    });
    assert_eq!(s["lost"], 0, "{s:#}");
    for id in ["wave", "dune"] {
        assert_eq!(
            entry_state(&c, 2, id).as_deref(),
            Some("ok"),
            "{id} on node-c"
        );
    }
    // The copy is the same bytes, served by node-c.
    let copied = std::fs::read(c.disk(2).join("images/wave/pyramid.tdp")).unwrap();
    assert_eq!(copied, original);
    assert_eq!(get(&c.nodes[2].1, "/tiles/wave/0/0/0.jpg").0, 200);
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(c.disk(0).join("images/wave/replica.json")).unwrap())
            .unwrap();
    assert_eq!(manifest["nodes"], serde_json::json!(["node-a", "node-c"]));
    // Healthy counts node-c's published copy of the other image before node-a adopts it: its
    // job ends just after.
    wait_or_tell(&c, "node-a's two copies done", || {
        let (ok, text) = td(&c, &["remirror"]);
        assert!(ok, "{text}");
        text.contains("node-a: 0 copies under way, 0 waiting, 2 copied")
            .then_some(())
            .ok_or(text)
    });

    // The disk comes back: checked, then its two superseded replicas are trimmed.
    std::fs::rename(&away, c.disk(1)).unwrap();
    wait_until("node-b's copies trimmed", LIMIT, || {
        (entry_state(&c, 1, "wave").as_deref() == Some("removed")
            && entry_state(&c, 1, "dune").as_deref() == Some("removed"))
        .then_some(())
    });
    // The catalog says so first, then the folder goes.
    wait_until("node-b's folder of wave removed", LIMIT, || {
        (!c.disk(1).join("images/wave").exists()).then_some(())
    });
    let s = status(&c);
    assert_eq!(
        (s["healthy"].as_u64(), s["images"].as_u64()),
        (Some(2), Some(2)),
        "{s:#}"
    );
    let health = |i: usize| -> serde_json::Value {
        serde_json::from_slice(&get(&c.nodes[i].1, "/health").2).unwrap()
    };
    assert_eq!(
        common::disk_health(&health(1), "node-b-d1")["state"],
        "healthy"
    );

    // An audit of a running node reads its catalog over HTTP and every file from its disks.
    let (ok, text) = td(&c, &["backend", "--audit", "--node", "node-a"]);
    assert!(
        ok && text.contains("node-a runs") && text.contains("2 replicas"),
        "{text}"
    );

    // Withdrawn: gone from both nodes, and a rebuilt catalog does not bring it back.
    let (ok, text) = td(&c, &["image", "rm", "wave"]);
    assert!(ok && text.contains("add --yes"), "a dry run first: {text}");
    assert!(c.disk(0).join("images/wave").exists());
    let (ok, text) = td(&c, &["image", "rm", "wave", "--yes"]);
    assert!(ok, "{text}");
    for i in [0, 2] {
        assert_eq!(entry_state(&c, i, "wave").as_deref(), Some("deleted"));
        assert_eq!(get(&c.nodes[i].1, "/tiles/wave/0/0/0.jpg").0, 404);
        assert!(!c.disk(i).join("images/wave").exists());
        assert!(c.disk(i).join("tombstones/wave.json").exists());
    }
    // The catalog thrown away: node-a rebuilds it from its disk when it starts.
    c.stop(0);
    std::fs::remove_dir_all(c.dir.path().join("node-a/state/catalog")).unwrap();
    c.start(0, None);
    wait_until("node-a back", LIMIT, || {
        common::connect(&c.nodes[0].1, "health").ok()
    });
    assert_eq!(get(&c.nodes[0].1, "/tiles/wave/0/0/0.jpg").0, 404);
    let s = wait_until("one image left", LIMIT, || {
        let s = status(&c);
        (s["images"] == 1 && s["healthy"] == 1).then_some(s)
    });
    assert_eq!(s["deleted"], 1, "{s:#}");
}

#[test]
fn a_replica_damaged_on_its_disk_is_found_by_the_scrub_not_served_and_copied_again() {
    let mut c = Cluster::new(&["A", "B", "C"]);
    // Continuous passes, no rate limit: the damage is found at the next pass.
    let mut toml = std::fs::read_to_string(&c.config).unwrap();
    // The grace leaves a few seconds between the damage found and the copy made again, to
    // see the damaged replica refused.
    toml.push_str("\n[repair]\ndisk_grace_seconds = 5\nscrub_period_days = 0\nscrub_rate_mb = 0\n");
    std::fs::write(&c.config, toml).unwrap();
    adopt_disks(&mut c);
    common::place(&c.disk(0), "wave", "plasma:fractal", "700x500");
    common::place(&c.disk(1), "wave", "plasma:fractal", "700x500");
    let good = std::fs::read(c.disk(0).join("images/wave/pyramid.tdp")).unwrap();
    start_all(&mut c);
    wait_until("healthy", LIMIT, || {
        (status(&c)["healthy"] == 1).then_some(())
    });

    // A tile of node-b's copy served, so it is in node-b's tile cache.
    assert_eq!(get(&c.nodes[1].1, "/tiles/wave/0/0/0.jpg").0, 200);
    // One byte flipped in node-b's copy, under the running node (the page cache too: the
    // scrub drops it and reads the disk).
    let damaged = c.disk(1).join("images/wave/pyramid.tdp");
    let mut bytes = std::fs::read(&damaged).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x40;
    std::fs::write(&damaged, bytes).unwrap();
    wait_until("the scrub finds it", LIMIT, || {
        let (_, _, body) = get(&c.nodes[1].1, "/events");
        let events: serde_json::Value = serde_json::from_slice(&body).unwrap();
        events["events"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["kind"] == "replica_corrupt" && e["image"] == "wave")
            .cloned()
    });
    // Refused at once, the cached tile too: the viewer goes to the other replica.
    assert_eq!(get(&c.nodes[1].1, "/tiles/wave/0/0/0.jpg").0, 503);
    // It is healthy again: two readable replicas with the right bytes, in two domains.
    let s = wait_until("healthy again", LIMIT, || {
        let s = status(&c);
        (s["healthy"] == 1 && servable(&c, "wave").len() == 2).then_some(s)
    });
    assert_eq!(s["under_replicated"], 0, "{s:#}");
    for i in servable(&c, "wave") {
        let bytes = std::fs::read(c.disk(i).join("images/wave/pyramid.tdp")).unwrap();
        assert!(bytes == good, "node {i} serves the good bytes");
        assert_eq!(get(&c.nodes[i].1, "/tiles/wave/0/0/0.jpg").0, 200);
    }
    // The damaged copy was replaced or taken off; nothing serves it.
    if !servable(&c, "wave").contains(&1) {
        wait_until("the damaged copy taken off", LIMIT, || {
            (!c.disk(1).join("images/wave").exists()).then_some(())
        });
    }
}

#[test]
fn a_blank_disk_in_a_failed_slot_is_adopted_and_refilled_and_another_node_s_disk_is_refused() {
    let mut c = Cluster::new(&["A", "B", "C"]);
    with_grace(&c, 2);
    adopt_disks(&mut c);
    common::place(&c.disk(0), "wave", "plasma:fractal", "700x500");
    common::place(&c.disk(1), "wave", "plasma:fractal", "700x500");
    start_all(&mut c);
    wait_until("healthy", LIMIT, || {
        (status(&c)["healthy"] == 1).then_some(())
    });
    let disk_state = |i: usize, id: &str| -> serde_json::Value {
        let h: serde_json::Value =
            serde_json::from_slice(&get(&c.nodes[i].1, "/health").2).unwrap();
        common::disk_health(&h, id)
    };

    // node-b's disk fails (taken out) and a blank one goes into its slot.
    std::fs::rename(c.disk(1), c.dir.path().join("node-b/d1.old")).unwrap();
    wait_until("node-b's disk failed", LIMIT, || {
        (disk_state(1, "node-b-d1")["state"] == "failed").then_some(())
    });
    std::fs::create_dir(c.disk(1)).unwrap();
    wait_until("the blank disk adopted", LIMIT, || {
        (disk_state(1, "node-b-d1")["state"] == "healthy").then_some(())
    });
    let identity: serde_json::Value =
        serde_json::from_slice(&std::fs::read(c.disk(1).join("td-disk.json")).unwrap()).unwrap();
    assert_eq!(identity["node"], "node-b");
    // (The event is written once the disk serves again: its state may say so first.)
    wait_or_tell(&c, "the adoption told", || {
        let events = events_of(&c, 1);
        events
            .iter()
            .any(|e| {
                e["kind"] == "disk_replaced"
                    && e["summary"].as_str().unwrap().contains("blank disk")
            })
            .then_some(())
            .ok_or(format!("{events:#?}"))
    });
    // Refilled: the image is healthy again, with two readable replicas.
    wait_until("healthy again", LIMIT, || {
        (status(&c)["healthy"] == 1 && servable(&c, "wave").len() == 2).then_some(())
    });

    // node-c's disk is taken out, and a disk of node-a (its identity file says so) is put in
    // its place: it answers, but is not used.
    std::fs::rename(c.disk(2), c.dir.path().join("node-c/d1.old")).unwrap();
    wait_until("node-c's disk failed", LIMIT, || {
        (disk_state(2, "node-c-d1")["state"] == "failed").then_some(())
    });
    std::fs::create_dir(c.disk(2)).unwrap();
    std::fs::copy(
        c.disk(0).join("td-disk.json"),
        c.disk(2).join("td-disk.json"),
    )
    .unwrap();
    wait_until("the foreign disk refused", LIMIT, || {
        events_of(&c, 2)
            .iter()
            .find(|e| e["kind"] == "disk_refused")
            .cloned()
    });
    let d = disk_state(2, "node-c-d1");
    assert_eq!(d["state"], "failed", "{d}");
    assert!(
        d["error"].as_str().unwrap().contains("came back, but"),
        "{d}"
    );
    assert!(
        !c.disk(2).join("images").exists(),
        "nothing written to a foreign disk"
    );
}
