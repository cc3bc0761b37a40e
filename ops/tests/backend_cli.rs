//! `td backend` as an operator runs it: blank disks are adopted, a node serves the replicas on
//! all its disks, a disk that is not the configured one is left alone while the others keep
//! serving, and `--audit` checks a stopped node.

mod common;

use std::path::Path;
use std::process::Command;

use common::{get, place, start_backend as start};

fn status(addr: &str, path: &str) -> u16 {
    get(addr, path).0
}

/// Runs `td backend --audit`: (exit code, stdout).
fn audit(config: &Path) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_td"))
        .args(["backend", "--audit", "--config", config.to_str().unwrap()])
        .args(["--node", "node-a"])
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap(), text)
}

const CONFIG: &str = r#"
name = "test"

[[node]]
name = "node-a"
address = "127.0.0.1:1"
power_domain = "A"
state_dir = "state"

[[node.disk]]
id = "a1"
path = "a1"
location = { enclosure = "e1", slot = 1 }

[[node.disk]]
id = "a2"
path = "a2"
location = { enclosure = "e1", slot = 2 }

[[node]]
name = "node-b"
address = "127.0.0.1:2"
power_domain = "B"
"#;

#[test]
fn a_node_adopts_blank_disks_serves_them_and_leaves_a_foreign_disk_alone() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for disk in ["a1", "a2"] {
        std::fs::create_dir(d.join(disk)).unwrap();
    }
    let config = d.join("cluster.toml");
    std::fs::write(&config, CONFIG).unwrap();

    // First start: both blank disks are adopted.
    let first = start(&config, "node-a");
    assert!(
        first.banner.contains("0 images on 2 disks"),
        "{}",
        first.banner
    );
    drop(first);
    for disk in ["a1", "a2"] {
        let id: serde_json::Value =
            serde_json::from_slice(&std::fs::read(d.join(disk).join("td-disk.json")).unwrap())
                .unwrap();
        assert_eq!(
            (id["disk_id"].as_str(), id["node"].as_str()),
            (Some(disk), Some("node-a"))
        );
    }

    // Replicas placed on both disks are served, and listed in the catalog.
    place(&d.join("a1"), "one", "gradient:red-blue", "600x400");
    place(&d.join("a2"), "two", "gradient:red-blue", "600x400");
    let node = start(&config, "node-a");
    assert!(
        node.banner.contains("2 images on 2 disks"),
        "{}",
        node.banner
    );
    assert_eq!(status(&node.addr, "/tiles/one/0/0/0.jpg"), 200);
    assert_eq!(status(&node.addr, "/tiles/two/0/0/0.jpg"), 200);
    let catalog: serde_json::Value =
        serde_json::from_slice(&get(&node.addr, "/catalog").2).unwrap();
    assert_eq!(catalog["entries"].as_array().unwrap().len(), 2);
    // The catalog is the running node's: the audit reads it over HTTP at the configured
    // address (here not where this node listens), and says so when it cannot
    // (`ops/tests/remirror.rs` audits running nodes at their addresses).
    let (code, text) = audit(&config);
    assert!(
        code == 1 && text.contains("node-a runs") && text.contains("cannot be read from http://"),
        "{text}"
    );
    drop(node);

    let (code, text) = audit(&config);
    assert_eq!(code, 0, "{text}");
    assert!(
        text.contains("2 replicas") && text.contains("all agree"),
        "{text}"
    );
    let original = d.join("a2/images/two/original.png");
    let mut bytes = std::fs::read(&original).unwrap();
    bytes[100] ^= 0x10;
    std::fs::write(&original, bytes).unwrap();
    let (code, text) = audit(&config);
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains("problem: two on disk a2") && text.contains("original.png"),
        "{text}"
    );

    // Disk a2 now claims to be another disk: it is not used, a1 still serves.
    let id_path = d.join("a2/td-disk.json");
    let text = std::fs::read_to_string(&id_path)
        .unwrap()
        .replace("\"a2\"", "\"b7\"");
    std::fs::write(&id_path, text).unwrap();
    let node = start(&config, "node-a");
    assert!(
        node.banner.contains("1 images on 1 disks"),
        "{}",
        node.banner
    );
    assert_eq!(status(&node.addr, "/tiles/one/0/0/0.jpg"), 200);
    assert_eq!(status(&node.addr, "/tiles/two/0/0/0.jpg"), 404);
    let err = node.stderr();
    assert!(
        err.contains("is disk b7 of node node-a, not disk a2"),
        "{err}"
    );
}

/// Runs `td backend` expecting it to refuse to start; returns its stderr.
fn refused(config: &Path, node: &str) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_td"))
        .args([
            "backend",
            "--config",
            config.to_str().unwrap(),
            "--node",
            node,
        ])
        .output()
        .unwrap();
    assert!(!out.status.success(), "td backend started");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn unknown_node_and_bad_configuration_are_explained() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("cluster.toml");
    std::fs::write(&config, CONFIG).unwrap();
    let err = refused(&config, "node-z");
    assert!(
        err.contains("no node 'node-z'") && err.contains("node-a, node-b"),
        "{err}"
    );

    let typo = CONFIG.replace("power_domain = \"B\"", "power_domain = \"B\"\nspeed = 3");
    std::fs::write(&config, typo).unwrap();
    let err = refused(&config, "node-a");
    assert!(
        err.contains("not a valid cluster configuration") && err.contains("speed"),
        "{err}"
    );
}
