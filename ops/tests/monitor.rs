//! `td monitor` against real processes on this machine: the backend it runs is killed
//! (SIGKILL) and stopped (SIGSTOP) for real; a disk's identity is swapped under it; a peer's
//! monitor is away, then back; an enclosure's status page (sg_ses's format) shows a failed
//! power supply. `td events` shows what was recorded, and follows it.

mod common;

use std::io::BufRead;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cluster::{Component, EventKind};
use common::get;
use common::monitor::*;

/// One node `n1` with `disks` folder disks, and `peers` more nodes; returns the config path.
fn cluster(dir: &Path, disks: usize, peers: usize) -> std::path::PathBuf {
    let mut toml = String::from("name = \"monitor test\"\n");
    for n in 1..=1 + peers {
        toml.push_str(&format!(
            "\n[[node]]\nname = \"n{n}\"\naddress = \"{}\"\nmonitor = \"{}\"\npower_domain = \"P{n}\"\nrack = \"r1\"\n\
             state_dir = \"n{n}/state\"\n",
            free_addr(),
            free_addr()
        ));
        if n == 1 {
            for d in 1..=disks {
                std::fs::create_dir_all(dir.join(format!("n1/d{d}"))).unwrap();
                toml.push_str(&format!(
                    "[[node.disk]]\nid = \"d{d}\"\npath = \"n1/d{d}\"\nserial = \"SER-{d}\"\n\
                     location = {{ enclosure = \"front\", slot = {d} }}\n"
                ));
            }
        }
    }
    let path = dir.join("cluster.toml");
    std::fs::write(&path, toml).unwrap();
    path
}

fn backend_pid(mon: &str) -> u32 {
    wait_until(
        "the backend answers its monitor",
        Duration::from_secs(30),
        || {
            let d = detector(mon, "backend process");
            let line = d["line"].as_str().unwrap_or("").to_string();
            line.contains("answers /health")
                .then(|| line.split_whitespace().nth(2)?.parse().ok())
                .flatten()
        },
    )
}

fn signal(pid: u32, sig: i32) {
    assert_eq!(unsafe { libc::kill(pid as i32, sig) }, 0);
}

#[test]
fn a_killed_backend_is_restarted_and_a_stopped_one_is_hung() {
    let dir = tempfile::tempdir().unwrap();
    let config = cluster(dir.path(), 1, 0);
    let mon = start_monitor(&config, "n1", &[]);
    let (mut killed, mut stopped) = (Vec::new(), Vec::new());
    for _ in 0..trials() {
        let pid = backend_pid(&mon.addr);
        let mark = Mark::now(&mon.addr);
        let t0 = Instant::now();
        signal(pid, libc::SIGKILL);
        let (died, after) = wait_event(&mon.addr, &mark, EventKind::ProcessDied, t0, |_| true);
        killed.push(after);
        assert!(
            died.evidence.iter().any(|e| e.contains("SIGKILL")),
            "{died:?}"
        );
        assert!(
            died.evidence.iter().any(|e| e.contains("listening on")),
            "its last output: {died:?}"
        );
        wait_event(&mon.addr, &mark, EventKind::ProcessRestarted, t0, |_| true);
        let again = backend_pid(&mon.addr);
        assert_ne!(again, pid, "a new backend process");

        let mark = Mark::now(&mon.addr);
        let t0 = Instant::now();
        signal(again, libc::SIGSTOP);
        let (hung, after) = wait_event(&mon.addr, &mark, EventKind::ProcessHung, t0, |_| true);
        stopped.push(after);
        signal(again, libc::SIGCONT);
        assert!(
            hung.evidence.iter().any(|e| e.contains("state T")),
            "the kernel's word on it: {hung:?}"
        );
        wait_event(&mon.addr, &mark, EventKind::Recovered, t0, |e| {
            e.component
                == Component::Process {
                    name: "backend".into(),
                }
        });
        assert_eq!(
            backend_pid(&mon.addr),
            again,
            "a hung backend is not restarted"
        );
    }
    report("backend SIGKILL", &mut killed);
    report("backend SIGSTOP", &mut stopped);

    // `td events` shows it, with its evidence; --since and --json work.
    let out = Command::new(env!("CARGO_BIN_EXE_td"))
        .args([
            "events",
            "--config",
            config.to_str().unwrap(),
            "--node",
            "n1",
            "--since",
            "1h",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for needle in [
        "process_died",
        "process_restarted",
        "process_hung",
        "| killed by signal 9 (SIGKILL)",
    ] {
        assert!(text.contains(needle), "{needle} in:\n{text}");
    }
    let json = Command::new(env!("CARGO_BIN_EXE_td"))
        .args(["events", "--config", config.to_str().unwrap(), "--json"])
        .output()
        .unwrap();
    let kinds: Vec<EventKind> = String::from_utf8_lossy(&json.stdout)
        .lines()
        .map(|l| serde_json::from_str::<cluster::Event>(l).unwrap().kind)
        .collect();
    assert!(kinds.contains(&EventKind::ProcessDied), "{kinds:?}");
    let none = Command::new(env!("CARGO_BIN_EXE_td"))
        .args([
            "events",
            "--config",
            config.to_str().unwrap(),
            "--since",
            "tomorrow",
        ])
        .output()
        .unwrap();
    assert!(!none.status.success());
    assert!(String::from_utf8_lossy(&none.stderr).contains("--since"));
}

/// Writes the identity a backend writes when it adopts disk `id` of `node` at `path`.
fn adopt(path: &Path, id: &str, node: &str) {
    let identity = cluster::identity::Identity {
        disk_id: id.into(),
        node: node.into(),
        serial: None,
        slot: None,
        adopted_at: 0,
    };
    std::fs::write(
        path.join(cluster::identity::IDENTITY_FILE),
        serde_json::to_vec(&identity).unwrap(),
    )
    .unwrap();
}

#[test]
fn swapped_disks_are_refused_and_never_written_and_td_events_follows() {
    let dir = tempfile::tempdir().unwrap();
    let config = cluster(dir.path(), 2, 0);
    let (d1, d2) = (dir.path().join("n1/d1"), dir.path().join("n1/d2"));
    adopt(&d1, "d1", "n1");
    adopt(&d2, "d2", "n1");
    let mon = start_monitor(&config, "n1", &["--watch-only"]);
    for d in ["d1", "d2"] {
        wait_until("the probes pass", Duration::from_secs(10), || {
            detector(&mon.addr, &format!("disk probe {d}"))["line"]
                .as_str()
                .unwrap()
                .contains("probes passed")
                .then_some(())
        });
    }
    let mut follow = std::process::Command::new(env!("CARGO_BIN_EXE_td"))
        .args(["events", "--config", config.to_str().unwrap(), "--follow"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(follow.stdout.take().unwrap()).lines();
    // The two disks trade places: each holds the other's identity.
    let mark = Mark::now(&mon.addr);
    let t0 = Instant::now();
    let (a, b) = (
        std::fs::read(d1.join("td-disk.json")).unwrap(),
        std::fs::read(d2.join("td-disk.json")).unwrap(),
    );
    std::fs::write(d1.join("td-disk.json"), b).unwrap();
    std::fs::write(d2.join("td-disk.json"), a).unwrap();
    let probe = d1.join(".td-monitor-probe");
    let (refused, _) = wait_event(&mon.addr, &mark, EventKind::DiskRefused, t0, |e| {
        disk_is(e, "d1")
    });
    assert!(
        refused.evidence[0].contains("is disk d2 of node n1, not disk d1"),
        "{refused:?}"
    );
    assert_eq!(refused.serial.as_deref(), Some("SER-1"));
    assert_eq!(refused.location.as_ref().unwrap().slot, Some(1));
    wait_event(&mon.addr, &mark, EventKind::DiskRefused, t0, |e| {
        disk_is(e, "d2")
    });
    // Refused, it is not written again. (These folders share one filesystem, so the swap is
    // seen at the next read of the identity, within four rounds; a real swap mounts another
    // filesystem there and is seen at the very next probe.)
    let before = std::fs::read_to_string(&probe).unwrap();
    // Two more probe rounds: the wrong disk is never written to.
    probe_rounds(&mon.addr, "d1", 2);
    let after = std::fs::read_to_string(&probe).unwrap();
    assert_eq!(
        before, after,
        "the probe file of a refused disk is not written"
    );
    // Many rounds of the same fault: one event each, counted.
    let refusals = events(&mon.addr)
        .into_iter()
        .filter(|e| e.kind == EventKind::DiskRefused && disk_is(e, "d1"))
        .collect::<Vec<_>>();
    assert_eq!(refusals.len(), 1);
    assert!(refusals[0].count >= 2, "{:?}", refusals[0]);

    // A disk that vanishes (its folder gone, as an unmounted disk's mount point is empty).
    let mark = Mark::now(&mon.addr);
    let t0 = Instant::now();
    std::fs::rename(&d2, dir.path().join("n1/d2-pulled")).unwrap();
    let (missing, _) = wait_event(&mon.addr, &mark, EventKind::DiskMissing, t0, |e| {
        disk_is(e, "d2")
    });
    assert!(
        missing.evidence[0].contains("does not exist"),
        "{missing:?}"
    );
    // No enclosure on this machine: said, not an error.
    let enclosure = detector(&mon.addr, "enclosure");
    assert_eq!(enclosure["state"], "unavailable", "{enclosure}");
    assert!(
        enclosure["line"]
            .as_str()
            .unwrap()
            .contains("no SES enclosure"),
        "{enclosure}"
    );

    let followed = wait_until(
        "td events --follow shows it",
        Duration::from_secs(10),
        || {
            let line = lines.next()?.ok()?;
            line.contains("disk_refused").then_some(line)
        },
    );
    assert!(followed.contains("n1 monitor disk d"), "{followed}");
    let place = wait_until(
        "with rack, node, serial and slot",
        Duration::from_secs(10),
        || {
            let line = lines.next()?.ok()?;
            line.contains("at rack r1, node n1, serial SER-")
                .then_some(line)
        },
    );
    assert!(place.contains("slot"), "{place}");
    let _ = follow.kill();
    let _ = follow.wait();
}

#[test]
fn a_silent_peer_is_an_event_and_its_return_another() {
    let dir = tempfile::tempdir().unwrap();
    let config = cluster(dir.path(), 0, 1);
    let m1 = start_monitor(&config, "n1", &["--watch-only"]);
    let mark = Mark::now(&m1.addr);
    let t0 = Instant::now();
    let (silent, after) = wait_event(&m1.addr, &mark, EventKind::PeerSilent, t0, |e| {
        e.component == Component::Peer { peer: "n2".into() }
    });
    assert!(
        silent.evidence[0].contains("connection refused"),
        "{silent:?}"
    );
    assert!(
        after >= Duration::from_secs(2),
        "three missed checks a second apart"
    );
    let mark = Mark::now(&m1.addr);
    let _m2 = start_monitor(&config, "n2", &["--watch-only"]);
    let t0 = Instant::now();
    wait_event(&m1.addr, &mark, EventKind::Recovered, t0, |e| {
        e.component == Component::Peer { peer: "n2".into() }
    });
    assert_eq!(get(&m1.addr, "/ping").0, 200);
}

/// sg_ses's Enclosure Status page, in the format of sg3_utils' `sg_ses --page=es` (see
/// `monitor/tests/fixtures/SOURCES.md`): a failed power supply, a fan and a slot at fault.
#[test]
fn an_enclosure_fault_is_an_event_and_absent_hardware_is_said() {
    let dir = tempfile::tempdir().unwrap();
    let config = cluster(dir.path(), 2, 0);
    let page = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../monitor/tests/fixtures/ses/es-psu-fan-slot-fault.txt");
    let fake = dir.path().join("sg_ses");
    script(&fake, &format!("#!/bin/sh\ncat '{}'\n", page.display()));
    let mon = start_monitor(
        &config,
        "n1",
        &[
            "--watch-only",
            "--sg-ses",
            fake.to_str().unwrap(),
            "--enclosure",
            "/dev/sg7",
        ],
    );
    let mark = Mark::empty();
    let t0 = Instant::now();
    let (psu, _) = wait_event(
        &mon.addr,
        &mark,
        EventKind::EnclosureFault,
        t0,
        |e| matches!(&e.component, Component::Enclosure { element, .. } if element == "Power supply 1"),
    );
    assert!(psu.summary.contains("AC fail"), "{psu:?}");
    let (slot, _) = wait_event(
        &mon.addr,
        &mark,
        EventKind::EnclosureFault,
        t0,
        |e| matches!(&e.component, Component::Enclosure { element, .. } if element == "Array device slot 2"),
    );
    assert!(slot.summary.contains("(disk d2)"), "{slot:?}");
    assert_eq!(slot.serial.as_deref(), Some("SER-2"));
    let ok = events(&mon.addr)
        .into_iter()
        .filter(|e| e.kind == EventKind::EnclosureFault)
        .count();
    assert_eq!(ok, 3, "the faulty elements only: a PSU, a fan, a slot");

    // Without the program, or without an enclosure: said in the status, nothing crashes.
    let other = tempfile::tempdir().unwrap();
    let config = cluster(other.path(), 1, 0);
    let mon = start_monitor(
        &config,
        "n1",
        &[
            "--watch-only",
            "--sg-ses",
            "/nonexistent/sg_ses",
            "--enclosure",
            "/dev/sg7",
            "--smartctl",
            "/nonexistent/smartctl",
        ],
    );
    let status = wait_until(
        "the enclosure detector ran",
        Duration::from_secs(10),
        || {
            let d = detector(&mon.addr, "enclosure");
            (d["runs"].as_u64() > Some(0)).then_some(d)
        },
    );
    assert!(
        status["last_error"]
            .as_str()
            .unwrap()
            .contains("not installed"),
        "{status}"
    );
    let smart = wait_until("the SMART detector ran", Duration::from_secs(10), || {
        let d = detector(&mon.addr, "SMART");
        (d["runs"].as_u64() > Some(0)).then_some(d)
    });
    assert_eq!(smart["state"], "unavailable", "{smart}");
    assert_eq!(get(&mon.addr, "/ping").0, 200);
}

/// With --watch-only, a backend started by something else is adopted; its death is an event
/// but it is not restarted; one started again is adopted again.
#[test]
fn a_watch_only_monitor_adopts_the_backend_it_finds() {
    let dir = tempfile::tempdir().unwrap();
    let config = cluster(dir.path(), 1, 0);
    let c = config.to_str().unwrap();
    let stderr = dir.path().join("backend.stderr");
    let backend = common::start_td(&["backend", "--config", c, "--node", "n1"], &stderr);
    let mon = start_monitor(&config, "n1", &["--watch-only"]);
    let adopted = |mon: &str| {
        wait_until("the backend is adopted", Duration::from_secs(20), || {
            let line = detector(mon, "backend process")["line"]
                .as_str()?
                .to_string();
            line.ends_with("(adopted)").then_some(line)
        })
    };
    adopted(&mon.addr);
    let mark = Mark::now(&mon.addr);
    let t0 = Instant::now();
    drop(backend); // killed
    let (died, _) = wait_event(&mon.addr, &mark, EventKind::ProcessDied, t0, |_| true);
    assert!(died.summary.contains("no longer exists"), "{died:?}");
    wait_until("said not restarted", Duration::from_secs(10), || {
        let line = detector(&mon.addr, "backend process")["line"]
            .as_str()?
            .to_string();
        line.contains("watch-only").then_some(())
    });
    assert!(!events(&mon.addr)
        .iter()
        .any(|e| e.kind == EventKind::ProcessRestarted));
    let _again = common::start_td(&["backend", "--config", c, "--node", "n1"], &stderr);
    adopted(&mon.addr);
}

/// A backend that dies before it ever answers (here its address is taken) is in a crash loop:
/// its death is one event with a count and its restarts wait out a growing back-off.
#[test]
fn a_backend_in_a_crash_loop_is_restarted_less_and_less_often() {
    let dir = tempfile::tempdir().unwrap();
    let config = cluster(dir.path(), 1, 0);
    let text = std::fs::read_to_string(&config).unwrap();
    let address = text
        .lines()
        .find_map(|l| l.strip_prefix("address = \""))
        .unwrap()
        .trim_end_matches('"')
        .to_string();
    let _squatter = std::net::TcpListener::bind(&address).unwrap();
    let mon = start_monitor(&config, "n1", &[]);
    let (died, _) = wait_event(
        &mon.addr,
        &Mark::empty(),
        EventKind::ProcessDied,
        Instant::now(),
        |_| true,
    );
    assert!(
        died.evidence.iter().any(|e| e.contains("cannot listen on")),
        "its own words on why: {died:?}"
    );
    wait_until(
        "the restart waits out its back-off",
        Duration::from_secs(20),
        || {
            let line = detector(&mon.addr, "backend process")["line"]
                .as_str()?
                .to_string();
            line.contains("waiting to restart").then_some(())
        },
    );
    let deaths: Vec<_> = events(&mon.addr)
        .into_iter()
        .filter(|e| e.kind == EventKind::ProcessDied)
        .collect();
    assert_eq!(deaths.len(), 1, "one event, counted: {deaths:?}");
}

/// A backend stopped (SIGSTOP) past `hung_backend_seconds` is killed and restarted by its
/// monitor; dying twice more within minutes, it is a crash loop: one software ticket, a bug
/// report whose evidence is its last output, and no part named.
#[test]
fn a_backend_hung_past_its_limit_is_killed_and_restarted_and_a_crash_loop_is_a_software_ticket() {
    let dir = tempfile::tempdir().unwrap();
    let config = cluster(dir.path(), 1, 0);
    let mut toml = std::fs::read_to_string(&config).unwrap();
    toml.push_str("\n[repair]\nhung_backend_seconds = 2\n");
    std::fs::write(&config, toml).unwrap();
    let mon = start_monitor(&config, "n1", &[]);
    let pid = backend_pid(&mon.addr);
    let mark = Mark::now(&mon.addr);
    let t0 = Instant::now();
    signal(pid, libc::SIGSTOP);
    let (killed, after) = wait_event(&mon.addr, &mark, EventKind::ProcessKilled, t0, |_| true);
    eprintln!("stopped to killed: {after:?}");
    assert!(after >= Duration::from_secs(2), "not before its limit");
    assert!(
        killed.evidence.iter().any(|e| e.contains("state T")),
        "{killed:?}"
    );
    let (died, _) = wait_event(&mon.addr, &mark, EventKind::ProcessDied, t0, |_| true);
    assert!(
        died.evidence.iter().any(|e| e.contains("SIGKILL")),
        "{died:?}"
    );
    wait_event(&mon.addr, &mark, EventKind::ProcessRestarted, t0, |_| true);
    let mut last = backend_pid(&mon.addr);
    assert_ne!(last, pid, "a new backend process");

    let tickets = || {
        let out = Command::new(env!("CARGO_BIN_EXE_td"))
            .args(["tickets", "--json", "--config", config.to_str().unwrap()])
            .output()
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        v["tickets"].as_array().unwrap().clone()
    };
    assert!(tickets().is_empty(), "one death is no loop");
    for _ in 0..2 {
        signal(last, libc::SIGKILL);
        last = wait_until("restarted", Duration::from_secs(60), || {
            let now = backend_pid(&mon.addr);
            (now != last).then_some(now)
        });
    }
    let t = tickets();
    assert_eq!(t.len(), 1, "{t:#?}");
    assert_eq!(t[0]["suspects"][0]["part"], "software");
    assert_eq!(t[0]["suspects"][0]["process"], "backend");
    assert_eq!(t[0]["suspects"].as_array().unwrap().len(), 1);
    let evidence = t[0]["evidence"].to_string();
    assert!(evidence.contains("output: "), "its last output: {evidence}");
    let actions = t[0]["actions"].to_string();
    assert!(
        actions.contains("killed 1 times after it hung"),
        "{actions}\n{:#?}",
        events(&mon.addr)
    );
}
