//! Repair tickets from real disk faults, end to end: a node (`td backend` and `td monitor`)
//! over three ext4 filesystems on loop devices, disks 1 and 2 behind one adapter and bus, disk
//! 3 behind another, each with its enclosure slot and serial configured.
//!
//! - Disk 3's filesystem shut down (the shutdown ioctl: every I/O fails, the kernel logs it):
//!   one open ticket naming disk 3, its enclosure, slot and serial; the fault going on adds
//!   none; an unsigned mark is refused; `td ticket done` marks it; a new blank disk in the slot
//!   is adopted, and the ticket verifies and closes.
//! - Disks 1 and 2 shut down together: one ticket, for their bus.
//! - Disk 2 unmounted and mounted again at once (a reseat): seen, and no ticket.
//!
//! Needs root (loop devices, mount, /dev/kmsg); in CI it must run, elsewhere without root it
//! says it is skipped. Prints the time from the fault to its ticket.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::ingest::request;
use common::loop_disks::{sh, shut_down, LoopDisks};
use common::monitor::{free_addr, probe_rounds, start_monitor, wait_until};
use common::{start_td, Backend};

const LIMIT: Duration = Duration::from_secs(60);

/// The node, dropped in order: its processes killed (nothing holds the filesystems), then the
/// disks unmounted and detached, then the folder removed.
struct Node {
    monitor: Option<Backend>,
    backend: Option<Backend>,
    disks: LoopDisks,
    mounts: Vec<PathBuf>,
    config: PathBuf,
    dir: tempfile::TempDir,
}

impl Drop for Node {
    fn drop(&mut self) {
        self.monitor = None;
        self.backend = None;
        drop(std::mem::take(&mut self.disks));
    }
}

impl Node {
    fn new() -> Node {
        let dir = tempfile::tempdir().unwrap();
        let mut disks = LoopDisks::default();
        let mut mounts = Vec::new();
        let mut toml = format!(
            "name = \"repair test\"\n\n[repair]\nticket_grace_seconds = 3\nticket_settle_seconds = 3\n\n\
             [[node]]\nname = \"n1\"\naddress = \"{}\"\nmonitor = \"{}\"\npower_domain = \"A\"\n\
             rack = \"R7\"\nstate_dir = \"state\"\n",
            free_addr(),
            free_addr()
        );
        for (n, bus) in [(1, 1), (2, 1), (3, 2)] {
            let mnt = disks.add(dir.path(), &format!("d{n}"));
            toml.push_str(&format!(
                "[[node.disk]]\nid = \"d{n}\"\npath = \"{}\"\nserial = \"LOOP-SN-{n}\"\n\
                 location = {{ adapter = 0, bus = {bus}, enclosure = \"E1\", slot = {n} }}\n",
                mnt.display()
            ));
            mounts.push(mnt);
        }
        let config = dir.path().join("cluster.toml");
        std::fs::write(&config, toml).unwrap();
        floor::secret_file::create(&dir.path().join("cluster.secret")).unwrap();
        let mut node = Node {
            monitor: None,
            backend: None,
            disks,
            mounts,
            config,
            dir,
        };
        let c = node.config.to_str().unwrap().to_string();
        node.backend = Some(start_td(
            &["backend", "--config", &c, "--node", "n1"],
            &node.dir.path().join("backend.stderr"),
        ));
        node.monitor = Some(start_monitor(&node.config, "n1", &["--watch-only"]));
        for d in ["d1", "d2", "d3"] {
            probe_rounds(&node.mon(), d, 2);
        }
        node
    }

    fn mon(&self) -> String {
        self.monitor.as_ref().unwrap().addr.clone()
    }

    fn td(&self, args: &[&str]) -> (i32, String, String) {
        let out = Command::new(env!("CARGO_BIN_EXE_td"))
            .args(args)
            .arg("--config")
            .arg(&self.config)
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// `td tickets --all --json`: every ticket.
    fn tickets(&self) -> Vec<serde_json::Value> {
        let (_, out, err) = self.td(&["tickets", "--all", "--json"]);
        let v: serde_json::Value =
            serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out} {err}"));
        assert_eq!(v["problems"], serde_json::json!([]), "{v}");
        v["tickets"].as_array().unwrap().clone()
    }

    fn disk(&self, n: usize) -> &Path {
        &self.mounts[n - 1]
    }
}

fn root_or_skip(test: &str) -> bool {
    common::root_or_skip(test, "loop devices, mount and /dev/kmsg")
}

#[test]
fn a_failed_disk_is_one_ticket_with_its_slot_and_serial_and_a_new_blank_disk_closes_it() {
    if !root_or_skip("a_failed_disk_is_one_ticket_with_its_slot_and_serial") {
        return;
    }
    let mut node = Node::new();
    assert!(node.tickets().is_empty(), "no fault, no ticket");

    let fault = Instant::now();
    shut_down(node.disk(3));
    let ticket = wait_until("a ticket", LIMIT, || node.tickets().first().cloned());
    eprintln!("fault to ticket: {:?}", fault.elapsed());
    assert_eq!(ticket["state"], "open", "{ticket:#}");
    let first = &ticket["suspects"][0];
    assert_eq!(first["part"], "disk", "{ticket:#}");
    assert_eq!(first["disk"], "d3");
    assert_eq!(first["serial"], "LOOP-SN-3");
    assert_eq!(first["location"]["enclosure"], "E1");
    assert_eq!(first["location"]["slot"], 3);
    assert_eq!(ticket["rack"], "R7");
    assert!(ticket["out_of_service"][0].as_str().unwrap().contains("d3"));
    let id = ticket["id"].as_str().unwrap().to_string();
    let (code, text, _) = node.td(&["tickets"]);
    assert_eq!(code, 1, "an open ticket: exit status 1\n{text}");
    assert!(
        text.contains("slot 3") && text.contains("LOOP-SN-3") && text.contains("rack R7"),
        "{text}"
    );

    // The fault goes on (more probes fail, reads of the disk fail): no second ticket.
    probe_rounds(&node.mon(), "d3", 3);
    let _ = std::fs::read_dir(node.disk(3)).map(|d| d.count());
    let all = node.tickets();
    assert_eq!(all.len(), 1, "{all:#?}");
    assert_eq!(all[0]["id"], id.as_str());

    // A stranger's mark, unsigned or signed with another secret, is refused.
    let mon = node.mon();
    let path = format!("/tickets/{id}");
    let body = br#"{"mark":"done"}"#;
    let json = ("content-type", "application/json".to_string());
    let (status, _, said) = request(&mon, "POST", &path, std::slice::from_ref(&json), body);
    assert_eq!(status, 401, "{}", String::from_utf8_lossy(&said));
    let forged = format!(
        "{}.{}.00ff.{}",
        cluster::auth::SIGNATURE_VERSION,
        cluster::unix_now(),
        "ab".repeat(32)
    );
    let (status, _, _) = request(&mon, "POST", &path, &[json, ("x-td-auth", forged)], body);
    assert_eq!(status, 401);
    assert_eq!(node.tickets()[0]["state"], "open");

    // The operator swaps the disk and says so.
    let (code, out, err) = node.td(&["ticket", "done", &id, "--by", "pat", "--note", "new disk"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("Done"), "{out}");
    let (code, _, err) = node.td(&["ticket", "done", "n1.m999999"]);
    assert_ne!(code, 0);
    assert!(err.contains("no ticket"), "{err}");

    node.disks.swap_blank(&node.mounts[2].clone());
    let verified = wait_until("verified", LIMIT, || {
        let t = node.tickets();
        (t[0]["verified_at"].is_u64()).then(|| t[0].clone())
    });
    assert!(
        verified["notes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n.as_str().unwrap().contains("blank disk was adopted")),
        "{verified:#}"
    );
    let closed = wait_until("closed", LIMIT, || {
        let t = node.tickets();
        (t[0]["state"] == "closed").then(|| t.clone())
    });
    assert_eq!(closed.len(), 1, "{closed:#?}");
    assert_eq!(closed[0]["id"], id.as_str());
    let (code, text, _) = node.td(&["tickets"]);
    assert_eq!(code, 0, "nothing open\n{text}");
    assert!(text.contains("CLOSED"), "closed this week: listed\n{text}");
    // Marking a closed ticket is refused.
    let (code, _, err) = node.td(&["ticket", "acquit", &id]);
    assert_ne!(code, 0);
    assert!(err.contains("Closed already"), "{err}");
    drop(node);
}

#[test]
fn two_disks_behind_one_bus_failing_together_are_one_ticket_for_the_bus() {
    if !root_or_skip("two_disks_behind_one_bus_failing_together") {
        return;
    }
    let node = Node::new();
    shut_down(node.disk(1));
    shut_down(node.disk(2));
    let t = wait_until("a ticket with both disks", LIMIT, || {
        let t = node.tickets();
        t.iter()
            .any(|t| t["out_of_service"].as_array().unwrap().len() == 2)
            .then_some(t)
    });
    // Both disks' faults are past the grace period: whatever else was to come has come.
    probe_rounds(&node.mon(), "d1", 2);
    let again = node.tickets();
    assert_eq!(again.len(), 1, "{again:#?}");
    assert_eq!(t.len(), 1, "{t:#?}");
    let first = &t[0]["suspects"][0];
    assert_eq!(first["part"], "bus", "{t:#?}");
    assert_eq!(first["bus"], "adapter 0 bus 1");
    let disks: Vec<&str> = t[0]["suspects"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["part"] == "disk")
        .map(|s| s["disk"].as_str().unwrap())
        .collect();
    assert_eq!(disks, ["d1", "d2"]);
    drop(node);
}

#[test]
fn a_disk_pulled_and_put_back_within_the_grace_period_is_no_ticket() {
    if !root_or_skip("a_disk_pulled_and_put_back_within_the_grace_period") {
        return;
    }
    let node = Node::new();
    let mnt = node.disk(2).to_path_buf();
    let dev = node.disks.device(&mnt).to_string();
    let mark = common::monitor::Mark::now(&node.mon());
    sh("umount", &["-l", mnt.to_str().unwrap()]);
    // Seen gone by its monitor, then put back at once (a reseat).
    common::monitor::wait_event(
        &node.mon(),
        &mark,
        cluster::EventKind::DiskMissing,
        Instant::now(),
        |e| common::monitor::disk_is(e, "d2"),
    );
    sh("mount", &[&dev, mnt.to_str().unwrap()]);
    common::monitor::wait_event(
        &node.mon(),
        &mark,
        cluster::EventKind::Recovered,
        Instant::now(),
        |e| common::monitor::disk_is(e, "d2"),
    );
    // Past the grace period (3 s): the fault was seen and is over, and is no ticket.
    probe_rounds(&node.mon(), "d2", 10);
    let all = node.tickets();
    assert!(all.is_empty(), "a reseat is no ticket: {all:#?}");
    drop(node);
}
