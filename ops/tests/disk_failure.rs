//! A disk that fails for real while the node serves: two ext4 filesystems on loop devices, one
//! shut down with the filesystem shutdown ioctl (every later read returns EIO and the kernel
//! logs it). Its images answer 503 with Retry-After at once and `/health` names it; the other
//! disk's images keep being served.
//!
//! Needs root (loop devices, mount). In CI it must run; elsewhere without root it says it is
//! skipped.

mod common;

use common::loop_disks::{sh, shut_down, LoopDisks, Thaw};
use common::{disk_health, get, place, start_backend};
use std::time::Instant;

#[test]
fn a_disk_shut_down_under_the_node_is_masked_and_the_other_keeps_serving() {
    if !common::root_or_skip(
        "a_disk_shut_down_under_the_node_is_masked_and_the_other_keeps_serving",
        "loop devices and mount",
    ) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut disks = LoopDisks::default();
    let m1 = disks.add(d, "d1");
    let m2 = disks.add(d, "d2");
    let config = d.join("cluster.toml");
    std::fs::write(
        &config,
        format!(
            "name = \"t\"\n[[node]]\nname = \"n1\"\naddress = \"127.0.0.1:1\"\npower_domain = \"A\"\n\
             state_dir = \"state\"\n\
             [[node.disk]]\nid = \"d1\"\npath = \"{}\"\nserial = \"LOOP-1\"\nlocation = {{ slot = 1 }}\n\
             [[node.disk]]\nid = \"d2\"\npath = \"{}\"\nlocation = {{ slot = 2 }}\n",
            m1.display(),
            m2.display()
        ),
    )
    .unwrap();
    drop(start_backend(&config, "n1")); // adopts both disks
    place(&m1, "one", "plasma:fractal", "900x700");
    place(&m2, "two", "plasma:fractal", "900x700");
    let node = start_backend(&config, "n1");
    assert_eq!(get(&node.addr, "/tiles/one/0/0/0.jpg").0, 200);
    assert_eq!(get(&node.addr, "/tiles/two/0/0/0.jpg").0, 200);

    shut_down(&m1);
    sh("sh", &["-c", "echo 3 > /proc/sys/vm/drop_caches"]);
    let failed_at = Instant::now();
    // The first read of the dead disk fails and fails the disk; no later request touches it.
    let (status, head, _) = get(&node.addr, "/tiles/one/0/1/1.jpg");
    assert_eq!(status, 503, "{head}");
    assert!(
        head.to_ascii_lowercase().contains("retry-after: 1"),
        "{head}"
    );
    let masked = failed_at.elapsed();
    eprintln!("first request after the shutdown answered 503 in {masked:?}");
    for path in [
        "/tiles/one/1/0/0.jpg",
        "/iiif/3/one/full/200,/0/default.jpg",
        "/thumbs/one.jpg",
    ] {
        assert_eq!(get(&node.addr, path).0, 503, "{path}");
    }
    // The other disk is untouched by all of that.
    for path in [
        "/tiles/two/0/1/1.jpg",
        "/tiles/two/1/0/0.jpg",
        "/iiif/3/two/full/200,/0/default.jpg",
    ] {
        assert_eq!(get(&node.addr, path).0, 200, "{path}");
    }
    // Failed by the first read of it, or, when the disk's probe was under way at the
    // shutdown and masked it first (so no read reached it), by the probe's own I/O error:
    // wait for that, not for a time.
    let health = || {
        let (_, _, body) = get(&node.addr, "/health");
        serde_json::from_slice::<serde_json::Value>(&body).unwrap()
    };
    let asked = Instant::now();
    let mut h = health();
    while disk_health(&h, "d1")["state"] != "failed" {
        assert!(
            asked.elapsed() < std::time::Duration::from_secs(10),
            "d1 is not failed: {h}"
        );
        std::thread::yield_now();
        h = health();
    }
    assert_eq!(h["status"], "degraded");
    let d1 = disk_health(&h, "d1");
    assert_eq!(d1["serial"], "LOOP-1");
    assert!(
        d1["error"].as_str().unwrap().contains("Input/output error"),
        "{d1}"
    );
    let d2 = disk_health(&h, "d2");
    assert_eq!(d2["state"], "healthy");
    // One event, with the disk's location, serial and the error as evidence; the catalog tells
    // frontends that the replica on d1 cannot be served.
    let (_, _, body) = get(&node.addr, "/events");
    let events: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let failed: Vec<_> = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "disk_failed")
        .collect();
    assert_eq!(failed.len(), 1, "{events}");
    assert_eq!(
        (
            &failed[0]["disk"],
            &failed[0]["serial"],
            &failed[0]["location"]["slot"]
        ),
        (&"d1".into(), &"LOOP-1".into(), &1.into())
    );
    assert!(failed[0]["evidence"][0]
        .as_str()
        .unwrap()
        .contains("Input/output error"));
    let catalog = |id: &str| {
        let (_, _, body) = get(&node.addr, "/catalog");
        let page: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let entries = page["entries"].as_array().unwrap().clone();
        entries.into_iter().find(|e| e["id"] == id).unwrap()
    };
    // The catalog is marked off the request path: wait for that write, not for a time.
    let asked = Instant::now();
    while catalog("one")["state"] != "unreadable" {
        assert!(
            asked.elapsed() < std::time::Duration::from_secs(10),
            "catalog still says {}",
            catalog("one")
        );
        std::thread::yield_now();
    }
    assert_eq!(catalog("two")["state"], "ok");
    // Each disk has its probe worker; the failed disk's probe goes on, slowly, to see it
    // answer again (the first passes of a shut-down filesystem never come).
    let probe = |id: &str| {
        let (_, _, body) = get(&node.addr, "/workers");
        let workers: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let name = format!("disk probe {id}");
        let found = workers
            .as_array()
            .unwrap()
            .iter()
            .find(|w| w["name"] == name)
            .cloned();
        found.unwrap_or_else(|| panic!("no {name} in {workers}"))
    };
    let asked = Instant::now();
    while !probe("d1")["progress"]
        .as_str()
        .unwrap_or_default()
        .contains("probed every 5s")
    {
        assert!(
            asked.elapsed() < std::time::Duration::from_secs(20),
            "the failed disk's probe does not say it retries: {}",
            probe("d1")
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(
        probe("d2")["units_done"].as_u64().unwrap() >= 1,
        "{}",
        probe("d2")
    );

    // A hung disk: d2 frozen, so the probe's write blocks. Past the probe's budget it is
    // masked (slow: visitors go to the other replica); still blocked past the hang limit it is
    // failed, without any visitor request touching it.
    let thaw = Thaw(m2.clone());
    sh("fsfreeze", &["-f", m2.to_str().unwrap()]);
    let frozen_at = Instant::now();
    let mut seen_slow = false;
    let d2 = loop {
        let (_, _, body) = get(&node.addr, "/health");
        let h: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let d2 = disk_health(&h, "d2");
        if d2["state"] == "slow" && !seen_slow {
            seen_slow = true;
            assert_eq!(
                get(&node.addr, "/tiles/two/0/2/2.jpg").0,
                503,
                "masked while slow"
            );
        }
        if d2["state"] == "failed" {
            break d2;
        }
        assert!(
            frozen_at.elapsed()
                < backend::disk_probe::HANG_LIMIT + std::time::Duration::from_secs(30),
            "hung disk never failed: {h}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert!(seen_slow, "masked as slow before it was failed");
    eprintln!(
        "frozen disk failed by its probe after {:?}",
        frozen_at.elapsed()
    );
    assert!(
        d2["error"]
            .as_str()
            .unwrap()
            .contains("still not done after"),
        "{d2}"
    );
    assert_eq!(get(&node.addr, "/tiles/two/0/2/2.jpg").0, 503);

    // The kernel saw the shutdown too.
    let log = sh("dmesg", &[]);
    assert!(
        log.contains("shut down requested") || log.contains("shutdown"),
        "no kernel line about the shutdown"
    );
    drop(thaw);
    drop(node);
}
