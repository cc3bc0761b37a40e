//! The monitor against real disk faults on real filesystems (ext4 on loop devices): a
//! filesystem shut down with the shutdown ioctl (the kernel logs it; every access fails), a
//! filesystem frozen with fsfreeze (writes hang), a disk filled past its threshold, and SMART
//! asked of a loop device (which has none) and, through a stand-in smartctl, answered with
//! recorded real outputs of failing drives.
//!
//! Needs root (loop devices, mount, /dev/kmsg). In CI it must run; elsewhere without root it
//! says it is skipped. `TD_TRIALS=10` repeats each fault (bench/detection).

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use cluster::EventKind;
use common::loop_disks::{sh, shut_down, LoopDisks, Thaw};
use common::monitor::*;

fn get_status(addr: &str, path: &str) -> u16 {
    common::get(addr, path).0
}

fn root_or_skip(test: &str) -> bool {
    common::root_or_skip(test, "loop devices, mount and /dev/kmsg")
}

/// Node `n1` over the given disks (id, mount point), each adopted as a backend would.
fn node(dir: &Path, disks: &[(&str, &Path)]) -> std::path::PathBuf {
    let mut toml = format!(
        "name = \"t\"\n[[node]]\nname = \"n1\"\naddress = \"{}\"\nmonitor = \"{}\"\n\
         power_domain = \"A\"\nstate_dir = \"state\"\n",
        free_addr(),
        free_addr()
    );
    for (n, (id, path)) in disks.iter().enumerate() {
        toml.push_str(&format!(
            "[[node.disk]]\nid = \"{id}\"\npath = \"{}\"\nserial = \"LOOP-{id}\"\n\
             location = {{ enclosure = \"e1\", slot = {n} }}\n",
            path.display()
        ));
        let identity = cluster::identity::Identity {
            disk_id: id.to_string(),
            node: "n1".into(),
            serial: None,
            slot: Some(n as u32),
            adopted_at: 0,
        };
        std::fs::write(
            path.join(cluster::identity::IDENTITY_FILE),
            serde_json::to_vec(&identity).unwrap(),
        )
        .unwrap();
    }
    let config = dir.join("cluster.toml");
    std::fs::write(&config, toml).unwrap();
    config
}

fn probes_pass(mon: &str, disk: &str) {
    wait_until(
        &format!("disk {disk} answers its probe"),
        Duration::from_secs(20),
        || {
            let line = detector(mon, &format!("disk probe {disk}"))["line"]
                .as_str()
                .unwrap()
                .to_string();
            line.contains("probes passed").then_some(())
        },
    );
}

#[test]
fn real_disk_faults_are_events_with_their_evidence() {
    if !root_or_skip("real_disk_faults_are_events_with_their_evidence") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut disks = LoopDisks::default();
    let (shut, frozen, filled) = (
        disks.add(d, "shut"),
        disks.add(d, "frozen"),
        disks.add(d, "filled"),
    );
    let shut_dev = disks.device(&shut).trim_start_matches("/dev/").to_string();
    let config = node(
        d,
        &[("shut", &shut), ("frozen", &frozen), ("filled", &filled)],
    );
    let mon = start_monitor(&config, "n1", &["--watch-only", "--fill-warn", "80"]);
    for disk in ["shut", "frozen", "filled"] {
        probes_pass(&mon.addr, disk);
    }
    let (mut logged, mut probed, mut hung, mut full) = (vec![], vec![], vec![], vec![]);
    // The peer: util-linux's `dmesg --follow-new`, reading the same kernel log in the same run.
    let mut dmesg = Command::new("dmesg")
        .arg("--follow-new")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let out = dmesg.stdout.take().unwrap();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send((Instant::now(), line)).is_err() {
                break;
            }
        }
    });
    // It reads only what is logged after it started: log a line of our own until it shows one.
    let marker = format!("td monitor test {}: dmesg follows", std::process::id());
    wait_until(
        "dmesg follows the kernel log",
        Duration::from_secs(10),
        || {
            std::fs::write("/dev/kmsg", format!("{marker}\n")).unwrap();
            let shown = rx.recv_timeout(Duration::from_millis(100)).ok()?;
            shown.1.contains(&marker).then_some(())
        },
    );
    while rx.recv_timeout(Duration::from_millis(200)).is_ok() {}
    let mut peer = vec![];
    for trial in 0..trials() {
        // Shut down: the kernel's line and the probe's I/O error.
        let mark = Mark::now(&mon.addr);
        while rx.try_recv().is_ok() {}
        let t0 = Instant::now();
        shut_down(&shut);
        let (kernel, after) =
            wait_event(&mon.addr, &mark, EventKind::FilesystemShutdown, t0, |e| {
                disk_is(e, "shut")
            });
        logged.push(after);
        let line = format!("EXT4-fs ({shut_dev}): shut down requested");
        assert!(
            kernel.evidence.iter().any(|e| e.contains(&line)),
            "{line} in {kernel:?}"
        );
        assert_eq!(kernel.serial.as_deref(), Some("LOOP-shut"));
        let mut got = Vec::new();
        let seen = loop {
            let Ok((at, l)) = rx.recv_timeout(Duration::from_secs(10)) else {
                panic!("trial {trial}: dmesg did not show {line:?}; it showed {got:?}; the event: {kernel:?}");
            };
            if l.contains(&line) {
                break at;
            }
            got.push(l);
        };
        peer.push(seen - t0);
        let (failed, after) = wait_event(&mon.addr, &mark, EventKind::DiskFailed, t0, |e| {
            disk_is(e, "shut")
        });
        probed.push(after);
        assert!(
            failed.evidence[0].contains("Input/output error"),
            "{failed:?}"
        );
        // Mounted again (the journal replays): the disk answers, and that ends the fault.
        sh("umount", &[shut.to_str().unwrap()]);
        let dev = format!("/dev/{shut_dev}");
        sh("mount", &[&dev, shut.to_str().unwrap()]);
        wait_event(&mon.addr, &mark, EventKind::Recovered, t0, |e| {
            disk_is(e, "shut")
        });

        // Frozen: writes hang, the probe does not come back.
        let mark = Mark::now(&mon.addr);
        let thaw = Thaw(frozen.clone());
        let t0 = Instant::now();
        sh("fsfreeze", &["-f", frozen.to_str().unwrap()]);
        let (h, after) = wait_event(&mon.addr, &mark, EventKind::DiskHung, t0, |e| {
            disk_is(e, "frozen")
        });
        hung.push(after);
        assert!(h.evidence[0].contains("not back after"), "{h:?}");
        drop(thaw);
        wait_event(&mon.addr, &mark, EventKind::Recovered, t0, |e| {
            disk_is(e, "frozen")
        });

        // Filled past 80 %: an event before it is full.
        let mark = Mark::now(&mon.addr);
        let ballast = filled.join(format!("ballast-{trial}"));
        let (total, free) = (
            fs2::total_space(&filled).unwrap(),
            fs2::available_space(&filled).unwrap(),
        );
        let want = (total as f64 * 0.85) as u64 - (total - free);
        let t0 = Instant::now();
        sh(
            "fallocate",
            &["-l", &want.to_string(), ballast.to_str().unwrap()],
        );
        let (f, after) = wait_event(&mon.addr, &mark, EventKind::DiskFilling, t0, |e| {
            disk_is(e, "filled")
        });
        full.push(after);
        assert!(f.summary.contains("% full (warning at 80%)"), "{f:?}");
        std::fs::remove_file(&ballast).unwrap();
        wait_event(&mon.addr, &mark, EventKind::Recovered, t0, |e| {
            disk_is(e, "filled")
        });
    }
    let _ = dmesg.kill();
    let _ = dmesg.wait();
    report("shutdown ioctl, kernel log", &mut logged);
    report(
        "shutdown ioctl, the same line in dmesg --follow-new (peer)",
        &mut peer,
    );
    report("shutdown ioctl, probe EIO", &mut probed);
    report("fsfreeze hang", &mut hung);
    report("disk filling past its threshold", &mut full);

    // Each fault was one event with a count across the trials, not one per line or probe.
    let all = events(&mon.addr);
    let shutdowns: Vec<_> = all
        .iter()
        .filter(|e| e.kind == EventKind::FilesystemShutdown && disk_is(e, "shut"))
        .collect();
    assert_eq!(shutdowns.len(), 1, "{shutdowns:?}");
    assert_eq!(shutdowns[0].count as usize, trials());
    drop(mon);
}

/// A loop device has no SMART: the detector says so. Through a stand-in smartctl that prints
/// recorded real outputs, a failing drive's attributes and a cable's CRC errors are events.
#[test]
fn smart_is_read_from_recorded_outputs_and_absent_smart_is_said() {
    if !root_or_skip("smart_is_read_from_recorded_outputs_and_absent_smart_is_said") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut disks = LoopDisks::default();
    let (a, b) = (disks.add(d, "a"), disks.add(d, "b"));
    let config = node(d, &[("a", &a), ("b", &b)]);

    let real = start_monitor(&config, "n1", &["--watch-only"]);
    let smart = wait_until("SMART ran", Duration::from_secs(20), || {
        let s = detector(&real.addr, "SMART");
        (s["runs"].as_u64() > Some(0)).then_some(s)
    });
    assert_eq!(smart["state"], "unavailable", "{smart}");
    assert!(
        smart["line"]
            .as_str()
            .unwrap()
            .contains("Unable to detect device type"),
        "smartctl's own words: {smart}"
    );
    drop(real);

    // The stand-in answers for disk a's device with a failing drive, for b's with a bad cable.
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../monitor/tests/fixtures/smart");
    let fake = d.join("smartctl");
    script(
        &fake,
        &format!(
            "#!/bin/sh\n# smartctl --json -a DEV\ncase \"$3\" in\n  {}) cat '{}/ata-failing.json'; exit 216;;\n  *) cat '{}/ata-crc.json';;\nesac\n",
            disks.device(&a),
            fixtures.display(),
            fixtures.display()
        ),
    );
    let mon = start_monitor(
        &config,
        "n1",
        &["--watch-only", "--smartctl", fake.to_str().unwrap()],
    );
    let mark = Mark::empty();
    let t0 = Instant::now();
    let (failed, _) = wait_event(&mon.addr, &mark, EventKind::SmartFailed, t0, |e| {
        disk_is(e, "a")
    });
    assert_eq!(
        failed.location.as_ref().unwrap().enclosure.as_deref(),
        Some("e1")
    );
    let (realloc, _) = wait_event(&mon.addr, &mark, EventKind::SmartWarning, t0, |e| {
        disk_is(e, "a") && e.summary.contains("Reallocated_Sector_Ct")
    });
    assert!(
        realloc.summary.contains("1975 sectors reallocated"),
        "{realloc:?}"
    );
    wait_event(&mon.addr, &mark, EventKind::SmartWarning, t0, |e| {
        disk_is(e, "a") && e.summary.contains("197 Current_Pending_Sector")
    });
    let (cable, _) = wait_event(&mon.addr, &mark, EventKind::CableErrors, t0, |e| {
        disk_is(e, "b")
    });
    assert!(cable.summary.contains("not the disk"), "{cable:?}");
    // The recorded drives' serials are not the configured ones: that too is said.
    wait_event(&mon.addr, &mark, EventKind::DiskRefused, t0, |e| {
        disk_is(e, "a") && e.summary.contains("MSK423Y20S3HBC")
    });
}

/// The event log's own disk fills up: the monitor keeps detecting and answering, says in its
/// `/health` when the log cannot be written, and records once there is room.
#[test]
fn a_full_event_log_disk_is_said_and_nothing_stops() {
    if !root_or_skip("a_full_event_log_disk_is_said_and_nothing_stops") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut disks = LoopDisks::default();
    let data = disks.add(d, "data");
    let state = disks.add_sized(d, "state", 16 << 20);
    let config = node(d, &[("data", &data)]);
    let text = std::fs::read_to_string(&config).unwrap().replace(
        "state_dir = \"state\"",
        &format!("state_dir = \"{}\"", state.display()),
    );
    std::fs::write(&config, text).unwrap();
    let mon = start_monitor(&config, "n1", &["--watch-only"]);
    probes_pass(&mon.addr, "data");
    let ballast = state.join("ballast");
    // Fill it to the last block.
    let _ = Command::new("dd")
        .args([
            "if=/dev/zero",
            &format!("of={}", ballast.display()),
            "bs=1M",
        ])
        .stderr(std::process::Stdio::null())
        .status();
    // A fault to record: the data disk's identity is damaged.
    std::fs::write(data.join(cluster::identity::IDENTITY_FILE), b"{ not json").unwrap();
    // sled writes into log segments it allocated before: the fault is recorded there, or,
    // once they are full, /health says the log cannot be written. Either way nothing stops.
    let outcome = wait_until(
        "the fault is recorded or the log said unwritable",
        Duration::from_secs(30),
        || {
            let h = health(&mon.addr);
            if h["event_log"]["writable"] == false {
                return Some(format!("unwritable: {}", h["event_log"]["error"]));
            }
            events(&mon.addr)
                .iter()
                .any(|e| e.kind == EventKind::DiskRefused && disk_is(e, "data"))
                .then(|| "recorded in space sled had allocated".to_string())
        },
    );
    eprintln!("with its disk full, the event log: {outcome}");
    assert_eq!(get_status(&mon.addr, "/ping"), 200);
    let probe = detector(&mon.addr, "disk probe data");
    assert!(
        probe["line"].as_str().unwrap().contains("refused"),
        "it still looks: {probe}"
    );
    // Room again: the fault is (still) recorded and the log is writable.
    std::fs::remove_file(&ballast).unwrap();
    let mark = Mark::empty();
    let (refused, _) = wait_event(
        &mon.addr,
        &mark,
        EventKind::DiskRefused,
        Instant::now(),
        |e| disk_is(e, "data"),
    );
    assert!(refused.evidence[0].contains("damaged"), "{refused:?}");
    wait_until(
        "/health says the log can be written",
        Duration::from_secs(30),
        || (health(&mon.addr)["event_log"]["writable"] == true).then_some(()),
    );
}

/// Two disks swapped for real (each filesystem unmounted and mounted at the other's place):
/// each is refused at the first probe after, and the probe never writes on the wrong disk.
#[test]
fn disks_swapped_between_slots_are_refused_and_never_written() {
    if !root_or_skip("disks_swapped_between_slots_are_refused_and_never_written") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut disks = LoopDisks::default();
    let (a, b) = (disks.add(d, "a"), disks.add(d, "b"));
    let (dev_a, dev_b) = (disks.device(&a).to_string(), disks.device(&b).to_string());
    let config = node(d, &[("a", &a), ("b", &b)]);
    let mon = start_monitor(&config, "n1", &["--watch-only"]);
    probes_pass(&mon.addr, "a");
    probes_pass(&mon.addr, "b");
    let mark = Mark::now(&mon.addr);
    let t0 = Instant::now();
    // The probe opens its file for a moment every half second: umount may find it busy.
    let umount = |m: &Path| {
        wait_until("umount", Duration::from_secs(10), || {
            Command::new("umount")
                .arg(m)
                .status()
                .unwrap()
                .success()
                .then_some(())
        })
    };
    umount(&a);
    umount(&b);
    let probe_of = |dev: &str| {
        // Read each filesystem's probe file where nothing probes it.
        let look = d.join(format!("look-{}", dev.trim_start_matches("/dev/")));
        std::fs::create_dir_all(&look).unwrap();
        sh("mount", &[dev, look.to_str().unwrap()]);
        let text = std::fs::read_to_string(look.join(".td-monitor-probe")).unwrap();
        sh("umount", &[look.to_str().unwrap()]);
        text
    };
    let (before_a, before_b) = (probe_of(&dev_a), probe_of(&dev_b));
    sh("mount", &[&dev_a, b.to_str().unwrap()]);
    sh("mount", &[&dev_b, a.to_str().unwrap()]);
    for disk in ["a", "b"] {
        let (refused, _) = wait_event(&mon.addr, &mark, EventKind::DiskRefused, t0, |e| {
            disk_is(e, disk)
        });
        assert!(refused.evidence[0].contains("not disk"), "{refused:?}");
    }
    // Two more rounds each, then look: neither filesystem was written by the probe.
    for disk in ["a", "b"] {
        probe_rounds(&mon.addr, disk, 2);
    }
    umount(&a);
    umount(&b);
    assert_eq!(
        probe_of(&dev_a),
        before_a,
        "disk a, in b's slot, was not written"
    );
    assert_eq!(
        probe_of(&dev_b),
        before_b,
        "disk b, in a's slot, was not written"
    );
    // Put back where LoopDisks will unmount them.
    sh("mount", &[&dev_a, a.to_str().unwrap()]);
    sh("mount", &[&dev_b, b.to_str().unwrap()]);
}
