//! Sessions end at both frontends within seconds, with the demo's roles as real processes: a
//! cookie kept after signing out, after `td user passwd` and after `td user remove` is refused
//! for an upload at fe-1 and fe-2. The account changes are made with `td user` from another
//! host's copy of the configuration (its own accounts file), so the frontends can only learn
//! them from the nodes.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{connect, exchange, get, request, Backend, DemoPlan};

/// How long a change may take to reach both frontends.
const DEADLINE: Duration = Duration::from_secs(15);

/// A POST with a body: (status, head).
fn post(addr: &str, path: &str, headers: &[(&str, &str)], body: &str) -> (u16, String) {
    let url = format!("POST http://{addr}{path}");
    let mut s = connect(addr, &url).unwrap();
    let mut req = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\ncontent-length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    let raw = exchange(
        &mut s,
        &[req.as_bytes(), body.as_bytes()],
        &url,
        Duration::from_secs(10),
    )
    .unwrap();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text.split(' ').nth(1).unwrap().parse().unwrap();
    (status, text)
}

/// Signs in at `addr`, retrying until the account is known there: the session cookie.
fn sign_in(addr: &str, name: &str, password: &str) -> String {
    let form = |v: &str| v.replace('%', "%25").replace('\'', "%27").replace(' ', "+");
    let body = format!("name={}&password={}", form(name), form(password));
    let until = Instant::now() + DEADLINE;
    loop {
        let (status, text) = post(
            addr,
            "/portal/login",
            &[("content-type", "application/x-www-form-urlencoded")],
            &body,
        );
        if status == 303 {
            return text
                .lines()
                .filter_map(|l| l.strip_prefix("set-cookie: "))
                .find(|c| c.starts_with("td_session="))
                .unwrap()
                .split(';')
                .next()
                .unwrap()
                .to_string();
        }
        assert!(
            Instant::now() < until,
            "{name} cannot sign in at {addr}: {text}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The CSRF token of the session, from the upload page.
fn csrf(addr: &str, cookie: &str) -> String {
    let (status, _, body) = request(addr, "GET", "/portal/", &[("cookie", cookie)]);
    assert_eq!(status, 200);
    let body = String::from_utf8(body).unwrap();
    let at = body
        .find("name=\"csrf-token\" content=\"")
        .expect("a signed-in page")
        + 27;
    body[at..].split('"').next().unwrap().to_string()
}

/// The status of starting an upload with this session: 401 when it is not signed in.
fn upload_status(addr: &str, cookie: &str, token: &str) -> u16 {
    let body = r#"{"filename":"a.png","length":10,"meta":{"title":"t"}}"#;
    post(
        addr,
        "/portal/api/uploads",
        &[
            ("cookie", cookie),
            ("x-csrf-token", token),
            ("content-type", "application/json"),
        ],
        body,
    )
    .0
}

/// Waits until the kept session is refused at every frontend.
fn refused_everywhere(frontends: &[&str], cookie: &str, token: &str, after: &str) {
    let until = Instant::now() + DEADLINE;
    for fe in frontends {
        loop {
            let status = upload_status(fe, cookie, token);
            if status == 401 {
                break;
            }
            assert!(
                Instant::now() < until,
                "{after}: the kept cookie still starts uploads at {fe} ({status})"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// `td user ARGS --config CONFIG`, the password (if any) on standard input.
fn td_user(config: &Path, args: &[&str], password: &str) {
    let config = config.to_str().unwrap();
    let args: Vec<&str> = ["user"]
        .into_iter()
        .chain(args.iter().copied())
        .chain(["--config", config])
        .collect();
    let out = common::td_with_input(&args, &format!("{password}\n"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "td user {args:?}: {text}");
    assert!(text.contains("handed to node-"), "td user {args:?}: {text}");
}

/// Another host: the same configuration and secret, its own (empty) accounts file.
fn other_host(plan: &DemoPlan) -> PathBuf {
    let (_, _, args) = plan.roles.iter().find(|(n, _, _)| n == "fe-1").unwrap();
    let config = PathBuf::from(&args[args.iter().position(|a| a == "--config").unwrap() + 1]);
    let loaded = cluster::ClusterConfig::load(&config).unwrap();
    let host = plan.dir.path().join("host-2");
    std::fs::create_dir_all(&host).unwrap();
    let mut text = std::fs::read_to_string(&config).unwrap();
    text = format!(
        "secret_file = \"{}\"\n{text}",
        loaded.secret_path().display()
    );
    let copy = host.join("cluster.toml");
    std::fs::write(&copy, text).unwrap();
    copy
}

fn healthy(fe: &Backend) {
    let until = Instant::now() + DEADLINE;
    while get(&fe.addr, "/health").0 != 200 {
        assert!(Instant::now() < until, "{} not up", fe.addr);
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_kept_cookie_is_refused_at_both_frontends_after_sign_out_passwd_and_remove() {
    let plan = DemoPlan::prepare();
    // Dropped (and so stopped) whatever happens.
    let _nodes: Vec<Backend> = ["node-a", "node-b", "node-c"]
        .iter()
        .map(|n| plan.start(n))
        .collect();
    let fe1 = plan.start("fe-1");
    let fe2 = plan.start("fe-2");
    healthy(&fe1);
    healthy(&fe2);
    let fes = [fe1.addr.as_str(), fe2.addr.as_str()];
    let host2 = other_host(&plan);
    td_user(
        &host2,
        &["add", "ada", "--password-stdin"],
        "ada's first password",
    );

    // Signed out at fe-1: the copy of the cookie is refused at both.
    let cookie = sign_in(fes[0], "ada", "ada's first password");
    let token = csrf(fes[0], &cookie);
    for fe in fes {
        assert_ne!(upload_status(fe, &cookie, &token), 401, "signed in at {fe}");
    }
    let (status, _) = post(
        fes[0],
        "/portal/logout",
        &[
            ("cookie", &cookie),
            ("content-type", "application/x-www-form-urlencoded"),
        ],
        &format!("csrf={token}"),
    );
    assert_eq!(status, 303);
    refused_everywhere(&fes, &cookie, &token, "sign-out");

    // A new password, set on another host.
    let cookie = sign_in(fes[0], "ada", "ada's first password");
    let token = csrf(fes[0], &cookie);
    assert_ne!(upload_status(fes[1], &cookie, &token), 401);
    td_user(
        &host2,
        &["passwd", "ada", "--password-stdin"],
        "ada's second password",
    );
    refused_everywhere(&fes, &cookie, &token, "td user passwd");

    // The account removed, on another host.
    let cookie = sign_in(fes[1], "ada", "ada's second password");
    let token = csrf(fes[1], &cookie);
    assert_ne!(upload_status(fes[0], &cookie, &token), 401);
    td_user(&host2, &["remove", "ada"], "");
    refused_everywhere(&fes, &cookie, &token, "td user remove");
}
