//! `td demo --tls` as a visitor meets it with curl trusting only the demo's CA: the canonical
//! address and a node speak https, the frontend's redirects and the IIIF ids say https, every
//! answer carries Strict-Transport-Security, and plain http on the same ports is sent on to
//! https.

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::{Backend, DemoPlan};

/// A demo cluster over TLS with its canonical address held.
struct Cluster {
    plan: DemoPlan,
    ca: PathBuf,
    _processes: Vec<Backend>,
}

/// `curl ARGS` trusting the demo's CA only: (head, body). Never follows redirects.
fn curl(ca: &PathBuf, args: &[&str]) -> (String, String) {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "20", "-D", "-", "--cacert"])
        .arg(ca)
        .args(args)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "curl {args:?}: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    (head.to_string(), body.to_string())
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(": ")?;
        k.eq_ignore_ascii_case(name).then_some(v.trim())
    })
}

fn status(head: &str) -> u16 {
    head.split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

impl Cluster {
    fn start() -> Cluster {
        let plan = DemoPlan::prepare_with(&["--tls"]);
        let ca = plan.dir.path().join("tls/ca.pem");
        assert!(ca.is_file(), "td demo --tls writes its CA");
        let processes = plan.start_serving(|| {
            let out = Command::new("curl")
                .args(["-s", "--max-time", "5", "--cacert"])
                .arg(&ca)
                .arg(format!("https://{}/health", plan.canonical))
                .output()
                .unwrap();
            serde_json::from_slice(&out.stdout).ok()
        });
        Cluster {
            plan,
            ca,
            _processes: processes,
        }
    }
}

#[test]
fn the_canonical_address_and_the_nodes_speak_https_and_send_plain_http_on_to_it() {
    let c = Cluster::start();
    let canonical = &c.plan.canonical;

    // The redirect to a replica names it over https, and says so for a year.
    let (head, _) = curl(
        &c.ca,
        &[&format!(
            "https://{canonical}/iiif/3/seahorse-valley/info.json"
        )],
    );
    assert_eq!(status(&head), 302, "{head}");
    let replica = header(&head, "location").expect("a location").to_string();
    assert!(replica.starts_with("https://127.0.0.1:"), "{head}");
    assert_eq!(
        header(&head, "strict-transport-security"),
        Some("max-age=31536000"),
        "{head}"
    );

    // The replica answers over https with the CA's certificate; its ids are the public URL.
    let (head, body) = curl(&c.ca, &[&replica]);
    assert_eq!(status(&head), 200, "{head}");
    assert_eq!(
        header(&head, "strict-transport-security"),
        Some("max-age=31536000"),
        "{head}"
    );
    let info: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        info["id"],
        format!("https://{canonical}/iiif/3/seahorse-valley"),
        "{info}"
    );

    // The viewer page at the node lists its replicas' origins over https only.
    let node = c.plan.addr("node-a").to_string();
    let (head, page) = curl(&c.ca, &[&format!("https://{node}/view/seahorse-valley")]);
    assert_eq!(status(&head), 200, "{head}");
    let other = format!("https://{}", c.plan.addr("node-b"));
    assert!(page.contains(&other), "{other} not in {page}");
    assert!(!page.contains("http://127.0.0.1"), "{page}");

    // Plain http on the same ports: sent on to https, same path and query.
    for addr in [canonical.as_str(), node.as_str()] {
        let (head, _) = curl(
            &c.ca,
            &[&format!("http://{addr}/iiif/3/zone-plate/info.json?x=1")],
        );
        assert_eq!(status(&head), 308, "{addr}: {head}");
        assert_eq!(
            header(&head, "location"),
            Some(format!("https://{addr}/iiif/3/zone-plate/info.json?x=1").as_str()),
            "{head}"
        );
    }

    // A client that trusts only the system's roots is refused: the certificate is the demo's.
    let out = Command::new("curl")
        .args(["-s", "--max-time", "10", "--cacert", "/dev/null"])
        .arg(format!("https://{canonical}/health"))
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "an untrusted certificate is accepted"
    );
}
