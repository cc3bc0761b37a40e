//! The disk probe worker, for real, under the runner every process uses, on a folder disk of a
//! real node: the disk's folder taken away fails the disk (the probe's write gets an I/O
//! error); put back, the failed disk is probed again, and after `RETURN_PASSES` passes in a row
//! it is marked returning and the return hook is called. While it is returning it is not probed;
//! once the check says it is good it is probed again and serves.
//!
//! Nothing here sleeps to let time pass: every wait is for a condition, with a deadline that only
//! a hang reaches.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use backend::disk::{Disk, DiskState};
use backend::disk_probe::{DiskProbe, OnReturn, PROBE_FILE, RETRY_INTERVAL, RETURN_PASSES};
use backend::worker::{Runner, WorkerStatus};
use backend::CatalogStart;
use common::TestCluster;

/// Far beyond what any of these steps takes (the longest, a return, is `RETURN_PASSES` retry
/// intervals: 15 s).
const DEADLINE: Duration = Duration::from_secs(90);

/// Waits until `ready` says yes, polling every 20 ms, or panics after [`DEADLINE`] saying what
/// it waited for and what `show` says then.
async fn wait_for(what: &str, mut ready: impl FnMut() -> bool, show: impl Fn() -> String) {
    let start = Instant::now();
    while !ready() {
        assert!(
            start.elapsed() < DEADLINE,
            "{what}: not so after {DEADLINE:?}: {}",
            show()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn status(runner: &Runner) -> WorkerStatus {
    let all = runner.statuses();
    assert_eq!(all.len(), 1, "{all:?}");
    all[0].clone()
}

/// The round number the probe last wrote into the disk's probe file.
fn probe_round(disk: &std::path::Path) -> Option<u64> {
    let text = std::fs::read_to_string(disk.join(PROBE_FILE)).ok()?;
    text.trim().rsplit(' ').next()?.parse().ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disk_taken_away_fails_and_when_it_is_back_it_is_probed_back_to_returning() {
    let cluster = TestCluster::new(2);
    let (node, _) = cluster.open(CatalogStart::Sync);
    let disk: Arc<Disk> = node
        .library
        .disks()
        .iter()
        .find(|d| d.config.id == "d1")
        .expect("disk d1")
        .clone();
    let path = cluster.disk_path(1);

    // The hook records the state the disk is in when it is called, and does nothing else: the
    // disk stays returning.
    let calls: Arc<Mutex<Vec<DiskState>>> = Arc::default();
    let hook: OnReturn = {
        let calls = calls.clone();
        Arc::new(move |d: Arc<Disk>| {
            calls.lock().unwrap().push(d.state());
            Box::pin(async {})
        })
    };
    let runner = Runner::new();
    runner.spawn(DiskProbe::new(disk.clone(), node.faults.clone(), hook));
    let show = || format!("{:?}; {:?}", disk.state(), status(&runner));

    // Healthy: probes pass, the probe file is written.
    wait_for(
        "two probes passed",
        || probe_round(&path).is_some_and(|r| r >= 2),
        show,
    )
    .await;
    assert_eq!(disk.state(), DiskState::Healthy);
    assert!(disk.serves());

    // The folder goes away (as when a disk is unmounted or renamed away): the probe's write
    // fails with an I/O error, and that fails the disk at once.
    let away = cluster.dir.path().join("d1.away");
    std::fs::rename(&path, &away).unwrap();
    wait_for("the disk failed", || disk.is_failed(), show).await;
    let DiskState::Failed { error, .. } = disk.state() else {
        panic!("not failed: {}", show());
    };
    assert!(error.contains("health probe"), "{error}");
    assert!(error.contains("No such file or directory"), "{error}");
    assert!(!disk.serves());
    let events = node.events.recent(100);
    let failed: Vec<_> = events
        .events
        .iter()
        .filter(|e| e.kind == cluster::EventKind::DiskFailed)
        .collect();
    assert_eq!(failed.len(), 1, "{events:?}");
    assert_eq!(
        failed[0].component,
        cluster::Component::Disk { disk: "d1".into() }
    );

    // While it is away the failed disk keeps being probed, and fails each time: it does not
    // return. (Two retries seen fail, counted by the runner's units of work.)
    let units = status(&runner).units_done;
    wait_for(
        "two more probes of the failed disk",
        || status(&runner).units_done >= units + 2,
        show,
    )
    .await;
    assert!(
        matches!(disk.state(), DiskState::Failed { .. }),
        "{}",
        show()
    );
    assert!(calls.lock().unwrap().is_empty());
    assert!(
        status(&runner)
            .progress
            .contains(&format!("0 of {RETURN_PASSES} passes")),
        "{}",
        show()
    );

    // Back: RETURN_PASSES probes in a row pass (one every RETRY_INTERVAL), then the disk is
    // returning and the hook is called, once, with the disk already marked.
    std::fs::rename(&away, &path).unwrap();
    let back = Instant::now();
    // The worker's progress counts the passes; each count stands for a retry interval, long
    // next to this poll, so every count on the way is seen.
    let mut seen = Vec::new();
    wait_for(
        "the return hook called",
        || {
            let progress = status(&runner).progress;
            if seen.last() != Some(&progress) {
                seen.push(progress);
            }
            !calls.lock().unwrap().is_empty()
        },
        show,
    )
    .await;
    let took = back.elapsed();
    for n in 1..RETURN_PASSES {
        let count = format!("{n} of {RETURN_PASSES} passes in a row");
        assert!(
            seen.iter().any(|p| p.contains(&count)),
            "never at {count}: {seen:#?}"
        );
    }
    assert!(
        matches!(calls.lock().unwrap()[..], [DiskState::Returning { .. }]),
        "{:?}",
        calls.lock().unwrap()
    );
    assert!(
        matches!(disk.state(), DiskState::Returning { .. }),
        "{}",
        show()
    );
    assert!(disk.is_failed(), "returning is still out of service");
    assert!(!disk.serves());
    let round_at_return = probe_round(&path).unwrap();
    eprintln!(
        "disk back: {RETURN_PASSES} passes at one per {RETRY_INTERVAL:?}, returning after {took:?}"
    );

    // Returning: not probed. The worker goes on with its units of work (it looks at the state
    // once a second) without writing the probe file.
    let units = status(&runner).units_done;
    wait_for(
        "three units of work while returning",
        || status(&runner).units_done >= units + 3,
        show,
    )
    .await;
    assert_eq!(probe_round(&path), Some(round_at_return), "{}", show());
    assert!(
        status(&runner).progress.contains("being checked"),
        "{}",
        show()
    );
    assert_eq!(calls.lock().unwrap().len(), 1, "the hook is called once");

    // The check passes: the disk serves, and is probed again as a healthy disk.
    disk.mark_returned();
    assert!(disk.serves());
    wait_for(
        "probed again once it is back in service",
        || probe_round(&path).is_some_and(|r| r >= round_at_return + 2),
        show,
    )
    .await;
    assert_eq!(disk.state(), DiskState::Healthy, "{}", show());
    // Still one disk_failed event, and no other fault recorded along the way.
    let kinds: Vec<_> = node
        .events
        .recent(100)
        .events
        .iter()
        .map(|e| e.kind)
        .collect();
    assert_eq!(
        kinds
            .iter()
            .filter(|k| matches!(
                k,
                cluster::EventKind::DiskFailed | cluster::EventKind::DiskHung
            ))
            .count(),
        1,
        "{kinds:?}"
    );
    runner.shutdown(Duration::from_secs(5)).await;
}
