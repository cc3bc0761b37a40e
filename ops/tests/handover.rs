//! The home node lost after acknowledging: real nodes, the home killed right after it told the
//! provider the upload is safe (`TD_CRASH_AT=acknowledged`) and left dead. The node holding the
//! second staged copy takes the upload over once the home has been silent past the node grace
//! period (3 s here), tiles it from its own copy, and publishes two replicas in two power
//! domains with the bytes the provider sent. The home, started again, follows the node that
//! took over (it never drives the upload beside it), and every staging copy is cleared.

mod common;

use std::time::{Duration, Instant};

use common::ingest::{noise_png, Cluster};

/// Far beyond any step here; only a hang reaches it.
const DEADLINE: Duration = Duration::from_secs(120);

fn published_on(c: &Cluster, image: &str) -> Vec<usize> {
    (0..c.nodes.len())
        .filter(|&i| c.replica_state(i, image) == Some("published"))
        .collect()
}

#[test]
fn an_upload_whose_home_dies_after_acknowledging_is_published_by_the_node_holding_its_copy() {
    let work = tempfile::tempdir().unwrap();
    let png = noise_png(work.path(), "1200x900");
    let bytes = std::fs::read(&png).unwrap();
    // The home (a) is alone in "left" with c; the second copy goes to b, the first node in
    // "right"; with a dead, b and c (or d) can take the replicas.
    let mut c = Cluster::new(&["left", "right", "left", "right"]);
    c.configure("[repair]\nnode_grace_seconds = 3\n");
    c.start(0, Some("acknowledged"));
    for i in 1..4 {
        c.start(i, None);
    }
    let (id, image) = c.create_upload(0, "ada", "noise.png", bytes.len(), "Noise");
    c.send_rest(0, "ada", &id, &bytes, 0, 4 << 20);

    let deadline = Instant::now() + DEADLINE;
    while !c.died(0) {
        assert!(Instant::now() < deadline, "the home never acknowledged");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(c.stderr(0).contains("TD_CRASH_AT=acknowledged"));
    assert!(
        c.staging(1).contains(&id),
        "b holds the second copy: {:?}",
        c.staging(1)
    );

    // b takes over and publishes, with a gone for good.
    loop {
        let published = published_on(&c, &image);
        if published.len() == 2 {
            assert!(!published.contains(&0));
            let domains: Vec<&str> = published.iter().map(|&i| c.nodes[i].2.as_str()).collect();
            assert_ne!(domains[0], domains[1], "two power domains: {published:?}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not published without its home; b's log:\n{}",
            c.stderr(1)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        c.stderr(1).contains("took the upload over"),
        "{}",
        c.stderr(1)
    );
    for i in published_on(&c, &image) {
        let original = c.disk(i).join("images").join(&image).join("original.png");
        assert_eq!(
            std::fs::read(&original).unwrap(),
            bytes,
            "the provider's bytes on {}",
            c.nodes[i].0
        );
    }
    // b's status book says so to a provider who asks it.
    let status = c.status_of(1, "ada", &id).expect("b knows the upload");
    assert_eq!(status["stage"], "published", "{status}");

    // The home comes back: it follows b, which clears both staging copies; nothing more is
    // placed anywhere.
    c.start(0, None);
    loop {
        let left: Vec<usize> = (0..4).filter(|&i| c.staging(i).contains(&id)).collect();
        if left.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "staging left on {left:?}; a's log:\n{}\nb's log:\n{}",
            c.stderr(0),
            c.stderr(1)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(published_on(&c, &image).len(), 2);
    assert_eq!(
        c.replica_state(0, &image),
        None,
        "nothing placed on the home"
    );
    assert!(
        !c.stderr(0).contains("TD_CRASH_AT"),
        "the home, started again, ran without crashing"
    );
}
