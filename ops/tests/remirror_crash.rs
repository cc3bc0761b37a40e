//! A SIGKILL at every step of a re-mirror, on three real `td backend` processes (power
//! domains A, B, C). node-a and node-b hold an image; node-b's disk vanishes, so node-a (the
//! survivor) copies it to node-c (the target) and node-b trims its superseded replica when the
//! disk is back. At each step one of them runs with `TD_CRASH_AT=point` and kills itself right
//! after the step's fact is on its disk (its last words name the point); it is started again
//! without it. Every time, once things settle, exactly two replicas are left (node-a's and
//! node-c's, both naming that set), serving the bytes served before the loss, with no hidden
//! copy, no third replica and no job left anywhere, and `td status` counts the image healthy.
//!
//! The points: on the survivor `remirror-recorded` (the job's target and epoch in its marker),
//! `remirror-sent` (every file sent and sealed on the target), `remirror-verified`,
//! `remirror-published`, `remirror-adopted` (its manifest names the new set) and
//! `remirror-done` (the job's marker gone); on the target `target-sealed`, `target-verified`
//! and `target-renamed` (published: renamed into place); on the node whose disk came back,
//! `remirror-trimmed` (its superseded replica taken off). A killed target is started again
//! only once node-a has given it up and waits, with no other node to copy to: a copy it had
//! published by then is taken back and adopted (before, the job waited beside it for ever), and
//! the waiting is one try a round, not a busy loop.

mod common;

use std::time::Instant;

use common::ingest::Cluster;
use common::monitor::wait_until;
use common::remirror::{
    adopt_disks, crashed, manifest_set, redundancy, restart, restart_after_crash, served, status,
    wait_or_tell, wait_settled, with_grace, Template, LIMIT,
};

const SURVIVOR: usize = 0;
const LOSER: usize = 1;
const TARGET: usize = 2;

/// One cluster: node `who` killed at `point`, then everything settled and checked.
fn killed_at(image: &Template, who: usize, point: &str) {
    let began = Instant::now();
    let id = image.id.as_str();
    let mut c = Cluster::new(&["A", "B", "C"]);
    with_grace(&c, 2);
    adopt_disks(&mut c);
    image.put(&c.disk(SURVIVOR));
    image.put(&c.disk(LOSER));
    for i in 0..c.nodes.len() {
        c.start(i, (i == who).then_some(point));
    }
    wait_until("healthy", LIMIT, || {
        (status(&c)["healthy"] == 1).then_some(())
    });
    let before = served(&c.nodes[SURVIVOR].1, id);
    assert!(
        served(&c.nodes[LOSER].1, id) == before,
        "both serve one image"
    );

    // node-b's disk vanishes (moved away under the running node): after the grace, node-a
    // copies the image to node-c.
    let away = c.dir.path().join("node-b/d1.away");
    std::fs::rename(c.disk(LOSER), &away).unwrap();
    if who == SURVIVOR {
        restart_after_crash(&mut c, who, point);
    }
    if who == TARGET {
        // node-a gives the silent target up; with no other node in another power domain with
        // room, it waits. Then node-c is back, with whatever copy it had made.
        crashed(&mut c, who, point);
        wait_or_tell(&c, &format!("{point}: node-a gives node-c up"), || {
            let r = redundancy(&c, SURVIVOR);
            let waiting = r["waiting"].as_array().unwrap();
            waiting
                .iter()
                .any(|w| w["blocked"].is_string())
                .then_some(())
                .ok_or(format!("node-a: {r}"))
        });
        restart(&mut c, who);
    }
    wait_or_tell(&c, &format!("{point}: node-a adopts {{a, c}}"), || {
        let (nodes, epoch) = manifest_set(&c.disk(SURVIVOR), id);
        if nodes != serde_json::json!(["node-a", "node-c"]) {
            return Err(format!("node-a's manifest names {nodes} at {epoch}"));
        }
        let s = status(&c);
        (s["healthy"] == 1)
            .then_some(())
            .ok_or(format!("td status: {s}"))
    });

    // The disk comes back: checked, its replica superseded and trimmed.
    std::fs::rename(&away, c.disk(LOSER)).unwrap();
    if who == LOSER {
        restart_after_crash(&mut c, who, point);
    }
    wait_settled(&c, id, &[SURVIVOR, TARGET], point);
    // While it had no target (the target down), the survivor tried again once a round, not
    // in a busy loop (which logged this thousands of times a second).
    let blocked = c.stderr(SURVIVOR).matches("re-mirror cannot start").count();
    assert!(blocked < 10, "{point}: node-a said it {blocked} times");
    if point == "target-renamed" {
        // node-c had published its copy before it was given up: taken back and adopted.
        assert!(
            c.stderr(SURVIVOR)
                .contains("a target given up published its copy; taken back"),
            "{point}: node-a never took node-c back"
        );
    }
    for i in [SURVIVOR, TARGET] {
        let name = &c.nodes[i].0;
        let folder = c.disk(i).join("images").join(id);
        let wrong = image.differs(&folder);
        assert!(wrong.is_empty(), "{point}: {name}'s {wrong:?} differ");
        assert!(
            served(&c.nodes[i].1, id) == before,
            "{point}: {name} serves other bytes"
        );
    }
    assert_eq!(
        common::get(&c.nodes[LOSER].1, &format!("/tiles/{id}/0/0/0.jpg")).0,
        404,
        "{point}: node-b serves it no more"
    );
    eprintln!(
        "TD_CRASH_AT={point} on {}: settled, two replicas, in {:?} (node-a waited for a target \
         {blocked} times)",
        c.nodes[who].0,
        began.elapsed()
    );
}

fn each(points: &[(usize, &str)]) {
    let image = Template::new("wave", "plasma:fractal", "700x500");
    for &(who, point) in points {
        killed_at(&image, who, point);
    }
}

#[test]
fn the_survivor_killed_before_the_copy_is_published_goes_on_with_the_same_target() {
    each(&[
        (SURVIVOR, "remirror-recorded"),
        (SURVIVOR, "remirror-sent"),
        (SURVIVOR, "remirror-verified"),
    ]);
}

#[test]
fn the_survivor_killed_after_the_copy_is_published_adopts_it_and_ends_the_job() {
    each(&[
        (SURVIVOR, "remirror-published"),
        (SURVIVOR, "remirror-adopted"),
        (SURVIVOR, "remirror-done"),
    ]);
}

#[test]
fn the_target_killed_at_each_of_its_steps_ends_with_one_copy() {
    each(&[
        (TARGET, "target-sealed"),
        (TARGET, "target-verified"),
        (TARGET, "target-renamed"),
    ]);
}

#[test]
fn the_returning_node_killed_after_its_trim_keeps_it_trimmed() {
    each(&[(LOSER, "remirror-trimmed")]);
}
