//! A node killed (SIGKILL) and never started again: its replicas are masked at once (counted
//! under-replicated, naming the node), and after the node grace period (3 s here, against a
//! disk grace of 60 s, so it is the node's rule that acts) the survivors copy them to the third
//! node; the cluster is healthy again with node-b still dead, the copy the same bytes.

mod common;

use common::ingest::Cluster;
use common::monitor::wait_until;
use common::remirror::{
    adopt_disks, entry_state, manifest_set, start_all, status, Template, LIMIT,
};

#[test]
fn a_node_killed_for_good_has_its_images_copied_again_after_the_node_grace() {
    let mut c = Cluster::new(&["A", "B", "C"]);
    c.configure("[repair]\ndisk_grace_seconds = 60\nnode_grace_seconds = 3\n");
    adopt_disks(&mut c);
    let wave = Template::new("wave", "plasma:fractal", "700x500");
    wave.put(&c.disk(0));
    wave.put(&c.disk(1));
    start_all(&mut c);
    wait_until("wave healthy", LIMIT, || {
        (status(&c)["healthy"] == 1).then_some(())
    });

    c.stop(1);
    let s = wait_until("wave under-replicated", LIMIT, || {
        let s = status(&c);
        (s["under_replicated"] == 1).then_some(s)
    });
    assert!(s["problems"].to_string().contains("node-b"), "{s:#}");
    let s = wait_until("wave healthy again without node-b", LIMIT, || {
        let s = status(&c);
        (s["healthy"] == 1 && entry_state(&c, 2, "wave").as_deref() == Some("ok")).then_some(s)
    });
    assert_eq!(s["images"], 1, "{s:#}");
    assert_eq!(entry_state(&c, 0, "wave").as_deref(), Some("ok"));
    assert!(
        wave.differs(&c.disk(2).join("images/wave")).is_empty(),
        "node-c holds the same bytes"
    );
    // The survivor adopted the new pair (its job ends just after node-c publishes).
    wait_until("node-a names node-c", LIMIT, || {
        (manifest_set(&c.disk(0), "wave").0 == serde_json::json!(["node-a", "node-c"]))
            .then_some(())
    });
    assert_eq!(
        manifest_set(&c.disk(2), "wave"),
        manifest_set(&c.disk(0), "wave")
    );
}
