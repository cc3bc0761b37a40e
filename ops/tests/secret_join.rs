//! The cluster secret reaches a new host without being copied by hand: `td secret invite` on
//! the first host prints a code, `td secret join` on the new host fetches the secret from a
//! running node with it. Against a real `td backend`, with the joiner given a configuration
//! whose first node does not answer, and tried as a stranger would: wrong, expired and
//! oversized requests, a request replayed off the wire.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Output;

use cluster::auth::Secret;
use cluster::join::{JoinCode, JoinReply};
use common::monitor::free_addr;
use common::{connect, exchange};

fn td(args: &[&str], stdin: &str) -> Output {
    common::td_with_input(args, stdin)
}

/// `td secret join --config CONFIG --code CODE`.
fn join(config: &str, code: &str) -> Output {
    td(&["secret", "join", "--config", config, "--code", code], "")
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A host's folder with the cluster's configuration: `dead` (nothing listens there) first,
/// then node-a at `addr`.
fn host(dir: &Path, dead: &str, addr: &str) -> String {
    std::fs::create_dir_all(dir.join("disk")).unwrap();
    let config = dir.join("cluster.toml");
    std::fs::write(
        &config,
        format!(
            "name = \"t\"\n\
             [[node]]\nname = \"node-z\"\naddress = \"{dead}\"\npower_domain = \"B\"\n\
             [[node]]\nname = \"node-a\"\naddress = \"{addr}\"\npower_domain = \"A\"\n\
             state_dir = \"state\"\n\
             [[node.disk]]\nid = \"a1\"\npath = \"disk\"\n"
        ),
    )
    .unwrap();
    config.to_str().unwrap().to_string()
}

/// `POST /join` with `body`, raw: the status and the body.
fn post_join(addr: &str, body: &[u8]) -> (u16, String) {
    let url = format!("POST http://{addr}/join");
    let mut s = connect(addr, &url).unwrap();
    let head = format!(
        "POST /join HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: \
         application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    let raw = exchange(
        &mut s,
        &[head.as_bytes(), body],
        &url,
        std::time::Duration::from_secs(10),
    )
    .unwrap();
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (
        status,
        String::from_utf8_lossy(&raw[split + 4..]).into_owned(),
    )
}

#[test]
fn a_new_host_fetches_the_secret_with_a_code_and_nothing_else_gets_it() {
    let root = tempfile::tempdir().unwrap();
    let (addr, dead) = (free_addr(), free_addr());
    let first = host(&root.path().join("first"), &dead, &addr);
    let out = td(&["secret", "--config", &first], "");
    assert!(out.status.success(), "{}", text(&out));
    let secret_file = root.path().join("first/cluster.secret");
    let ours = Secret::load(&secret_file).unwrap();
    // It listens where the configuration says: that is where the new host will ask.
    let node = common::start_td(
        &[
            "backend", "--config", &first, "--node", "node-a", "--listen", &addr,
        ],
        &root.path().join("node-a.stderr"),
    );

    // The operator asks for a code on the first host.
    let out = td(
        &[
            "secret", "invite", "--config", &first, "fe-2", "--valid", "10m",
        ],
        "",
    );
    assert!(out.status.success(), "{}", text(&out));
    let said = text(&out);
    assert!(said.contains("not a node or frontend"), "{said}");
    let code = said
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("tdjoin:"))
        .unwrap_or_else(|| panic!("no code in {said}"))
        .to_string();

    // The new host has the configuration but no secret; it types the code.
    let new = host(&root.path().join("new"), &dead, &addr);
    let out = td(&["secret", "join", "--config", &new], &format!("{code}\n"));
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("from node-a"), "{}", text(&out));
    let written = root.path().join("new/cluster.secret");
    assert_eq!(Secret::load(&written).unwrap().bytes(), ours.bytes());
    let mode = std::fs::metadata(&written).unwrap().permissions().mode();
    assert_eq!(mode & 0o077, 0, "{mode:o}");
    // Again: nothing to do.
    let out = join(&new, &code);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("already holds"), "{}", text(&out));

    // A mistyped code: refused by the node, and nothing written.
    let wrong_host = host(&root.path().join("wrong"), &dead, &addr);
    let last = code.chars().last().unwrap();
    let typo = format!(
        "{}{}",
        &code[..code.len() - 1],
        if last == '0' { '1' } else { '0' }
    );
    let out = join(&wrong_host, &typo);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("refused the code") && text(&out).contains("does not fit"),
        "{}",
        text(&out)
    );
    assert!(!root.path().join("wrong/cluster.secret").exists());
    // An expired code is refused before anything is sent, and by the node if sent anyway.
    let now = now();
    let old = JoinCode::issue(&ours, "fe-2", now - 5).unwrap();
    let out = join(&wrong_host, &old.to_string());
    assert!(!out.status.success());
    assert!(text(&out).contains("expired"), "{}", text(&out));
    let (status, body) = post_join(&addr, &serde_json::to_vec(&old.request().unwrap()).unwrap());
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("expired"), "{body}");

    // What a listener on the wire sees: the request and its sealed answer, never the secret;
    // sent again, the request gets another sealed answer that only the code opens.
    let good = JoinCode::parse(&code).unwrap();
    let request = serde_json::to_vec(&good.request().unwrap()).unwrap();
    let secret_text = String::from_utf8_lossy(ours.bytes()).into_owned();
    for _ in 0..2 {
        let (status, body) = post_join(&addr, &request);
        assert_eq!(status, 200, "{body}");
        assert!(!body.contains(&secret_text), "{body}");
        let reply: JoinReply = serde_json::from_str(&body).unwrap();
        assert_eq!(good.open(&reply).unwrap().bytes(), ours.bytes());
        let other = JoinCode::issue(&Secret::from_bytes(&[7; 32]), "fe-2", good.expires).unwrap();
        assert!(other.open(&reply).is_err());
    }

    // A stranger's requests: not JSON, too large, a made-up proof.
    let (status, body) = post_join(&addr, b"{\"name\":");
    assert_eq!(status, 400, "{body}");
    let (status, body) = post_join(&addr, &vec![b' '; 5000]);
    assert_eq!(status, 413, "{body}");
    let forged = format!(
        "{{\"name\":\"fe-2\",\"expires\":{},\"nonce\":\"00\",\"proof\":\"{}\"}}",
        now + 60,
        "ab".repeat(32)
    );
    let (status, body) = post_join(&addr, forged.as_bytes());
    assert_eq!(status, 403, "{body}");
    // The node still serves, and logged each refusal.
    assert_eq!(common::get(&addr, "/health").0, 200);
    let log = node.stderr();
    assert!(log.contains("refused a join request"), "{log}");
    assert!(log.contains("handed the cluster secret"), "{log}");
}

#[test]
fn without_a_node_to_ask_join_says_what_it_tried() {
    let root = tempfile::tempdir().unwrap();
    let (a, z) = (free_addr(), free_addr());
    let config = host(root.path(), &z, &a);
    let secret = Secret::from_bytes(&[b'x'; 64]);
    let code = JoinCode::issue(&secret, "node-a", u64::from(u32::MAX)).unwrap();
    let out = join(&config, &code.to_string());
    assert!(!out.status.success());
    let said = text(&out);
    // u32::MAX is far past a week from now: the code is refused before any node is asked.
    assert!(said.contains("more than 7 days"), "{said}");
    let out = join(&config, "tdjoin:x");
    assert!(text(&out).contains("not a join code"), "{}", text(&out));

    let now = now();
    let code = JoinCode::issue(&secret, "node-a", now + 60).unwrap();
    let out = join(&config, &code.to_string());
    assert!(!out.status.success());
    let said = text(&out);
    assert!(
        said.contains("no node gave the secret")
            && said.contains("node-z")
            && said.contains("node-a"),
        "{said}"
    );
    assert!(!root.path().join("cluster.secret").exists());
}
