//! The visit report's mail, for real: `td report --send` against a real SMTP server on
//! loopback (Debian's aiosmtpd, storing what it receives in a maildir) with a demo cluster
//! whose disk was taken away and whose third node is down; the mail that arrived is read back
//! with Python's own MIME parser. And without a server: the outbox, and the frontends'
//! schedule, where only the frontend holding the canonical address sends.
//!
//! Needs `/usr/bin/python3` with aiosmtpd (Debian `python3-aiosmtpd`, installed by
//! `run-tests`). No root.

mod common;

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::monitor::wait_until;
use common::{get, DemoPlan};

const PYTHON: &str = "/usr/bin/python3";

/// A real SMTP server on loopback, killed when dropped (also when the test fails).
struct SmtpServer {
    child: Child,
    port: u16,
    maildir: PathBuf,
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl SmtpServer {
    /// Starts aiosmtpd on a free loopback port, storing mails in `maildir`, and waits until it
    /// accepts connections.
    fn start(maildir: &Path) -> SmtpServer {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let log = maildir.with_extension("log");
        let child = Command::new(PYTHON)
            .args(["-m", "aiosmtpd", "-n", "-l"])
            .arg(format!("127.0.0.1:{port}"))
            .args(["-c", "aiosmtpd.handlers.Mailbox"])
            .arg(maildir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {PYTHON} -m aiosmtpd: {e}"));
        let mut server = SmtpServer {
            child,
            port,
            maildir: maildir.to_path_buf(),
        };
        wait_until(
            &format!("aiosmtpd answering on 127.0.0.1:{port}"),
            Duration::from_secs(30),
            || {
                if let Ok(Some(status)) = server.child.try_wait() {
                    panic!(
                        "aiosmtpd ended ({status}): {} (is python3-aiosmtpd installed? run-tests \
                         installs it)",
                        std::fs::read_to_string(&log).unwrap_or_default()
                    );
                }
                TcpStream::connect(("127.0.0.1", port)).ok()
            },
        );
        server
    }

    /// The mails that arrived, as files.
    fn mails(&self) -> Vec<PathBuf> {
        files(&self.maildir.join("new"), "")
    }
}

/// The files in `dir` whose names end with `ending`, sorted.
fn files(dir: &Path, ending: &str) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.to_string_lossy().ends_with(ending))
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

/// A mail as Python's `email` package reads it: its headers and its leaf parts, decoded.
#[derive(Debug)]
struct Parsed {
    subject: String,
    content_type: String,
    rcpt_to: String,
    parts: Vec<(String, String)>,
}

impl Parsed {
    fn part(&self, content_type: &str) -> &str {
        &self
            .parts
            .iter()
            .find(|(t, _)| t == content_type)
            .unwrap_or_else(|| panic!("no {content_type} part in {self:?}"))
            .1
    }
}

fn parse_mail(file: &Path) -> Parsed {
    let script = r#"
import email, json, sys
from email import policy
with open(sys.argv[1], "rb") as f:
    m = email.message_from_binary_file(f, policy=policy.default)
print(json.dumps({
    "subject": str(m["subject"]),
    "type": m.get_content_type(),
    "rcpt_to": str(m.get("X-RcptTo", "")),
    "parts": [[p.get_content_type(), p.get_content()] for p in m.walk() if not p.is_multipart()],
}))
"#;
    let out = Command::new(PYTHON)
        .args(["-c", script])
        .arg(file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    Parsed {
        subject: v["subject"].as_str().unwrap().to_string(),
        content_type: v["type"].as_str().unwrap().to_string(),
        rcpt_to: v["rcpt_to"].as_str().unwrap().to_string(),
        parts: v["parts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                (
                    p[0].as_str().unwrap().to_string(),
                    p[1].as_str().unwrap().to_string(),
                )
            })
            .collect(),
    }
}

/// The prepared demo's configuration, changed by `edit`; checked to end with its `[mail]`
/// table, so that lines appended land there.
fn edit_config(plan: &DemoPlan, edit: impl FnOnce(String) -> String) -> PathBuf {
    let path = plan.dir.path().join("cluster.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let last_table = text.lines().rfind(|l| l.starts_with('[')).unwrap();
    assert_eq!(last_table, "[mail]", "the demo's [mail] is no longer last");
    std::fs::write(&path, edit(text)).unwrap();
    path
}

fn td_report(config: &Path, extra: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_td"))
        .args(["report", "--config"])
        .arg(config)
        .args(extra)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A disk of node-a taken away (its folder moved) is a ticket; node-c is down. `td report
/// --send` mails the report to a real SMTP server, and the mail that arrived holds a text and
/// an HTML part naming the cluster, the disk to replace with its place and serial, the silent
/// node, and the cluster's state.
#[test]
fn report_mailed_to_a_real_smtp_server() {
    let plan = DemoPlan::prepare();
    let maildir = plan.dir.path().join("maildir");
    let smtp = SmtpServer::start(&maildir);
    let config = edit_config(&plan, |text| {
        let text = text.replace(
            "outbox = \"outbox\"\n",
            &format!(
                "smtp_host = \"127.0.0.1\"\nsmtp_port = {}\nsecurity = \"none\"\n",
                smtp.port
            ),
        );
        // A disk gone for 2 s is a ticket (30 s by default).
        match text.find("[repair]\n") {
            Some(at) => format!(
                "{}[repair]\nticket_grace_seconds = 2\n{}",
                &text[..at],
                &text[at + "[repair]\n".len()..]
            ),
            None => text.replacen(
                "\n[[frontend]]",
                "\n[repair]\nticket_grace_seconds = 2\n\n[[frontend]]",
                1,
            ),
        }
    });
    // node-a and node-b run, with their monitors; node-c does not.
    let _a = plan.start("node-a");
    let _b = plan.start("node-b");
    let monitor_a = plan.start("node-a-monitor");
    let _monitor_b = plan.start("node-b-monitor");
    let disk = plan.dir.path().join("node-a").join("disk1");
    std::fs::rename(&disk, disk.with_extension("away")).unwrap();
    let ticket = wait_until(
        "a ticket for node-a-disk1 on node-a's monitor",
        Duration::from_secs(60),
        || {
            let (status, _, body) = get(&monitor_a.addr, "/tickets");
            if status != 200 {
                return None;
            }
            let page: cluster::TicketPage = serde_json::from_slice(&body).unwrap();
            page.tickets.into_iter().find(|t| {
                t.state == cluster::TicketState::Open
                    && t.suspects.first().map(|s| &s.part)
                        == Some(&cluster::Part::Disk {
                            disk: "node-a-disk1".into(),
                        })
            })
        },
    );

    let (ok, stdout, stderr) = td_report(&config, &["--send"]);
    assert!(ok, "{stdout}{stderr}");
    assert!(
        stdout.contains(&format!(
            "sent to operator@localhost through 127.0.0.1:{} (no encryption)",
            smtp.port
        )),
        "{stdout}"
    );
    assert!(
        stderr.contains("node node-c: its monitor does not answer"),
        "{stderr}"
    );
    let mail = wait_until(
        "the mail in the SMTP server's maildir",
        Duration::from_secs(20),
        || smtp.mails().into_iter().next(),
    );
    assert_eq!(smtp.mails().len(), 1, "one mail, once");
    let m = parse_mail(&mail);
    assert_eq!(m.content_type, "multipart/alternative");
    let types: Vec<&str> = m.parts.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(types, ["text/plain", "text/html"]);
    assert_eq!(m.rcpt_to, "operator@localhost");
    assert!(
        m.subject
            .starts_with("Tertiary Disk demo: visit report of ")
            && m.subject.contains("1 part to see to"),
        "{}",
        m.subject
    );
    let text = m.part("text/plain");
    for expected in [
        "Visit report: Tertiary Disk demo",
        "1. Replace disk node-a-disk1: rack demo, node node-a, enclosure node-a-front, slot 1 \
         (serial DEMO-A1)",
        &format!("Ticket {}, open since", ticket.id),
        "[1 REPLACE] [2]",
        "node node-c: its monitor does not answer",
        "node node-c: NOT ANSWERING",
        "FAILURE LOG",
    ] {
        assert!(text.contains(expected), "{expected:?} not in\n{text}");
    }
    // Three images, each on two nodes: none healthy with node-c down and a disk gone, so the
    // state line counts them all.
    assert!(text.contains("images: 3 in all,"), "{text}");
    let html = m.part("text/html");
    assert!(html.starts_with("<!DOCTYPE html>"), "{html}");
    assert!(html.contains("<svg") && html.contains("class=\"slot replace\" data-slot=\"1\""));
    assert!(html.contains("Replace disk node-a-disk1"));
    assert!(html.contains("DEMO-A1"));
    assert!(html.contains("@media print"));
}

/// Without a server the mail goes into the outbox (`td report --send`); and on the schedule,
/// only the frontend holding the canonical address sends: fe-1 sends every time, fe-2 stands
/// by, and no time of the schedule gives two mails.
#[test]
fn outbox_and_schedule_send_once() {
    let plan = DemoPlan::prepare();
    let config = edit_config(&plan, |text| {
        format!("{text}report_schedule = \"*/2 * * * * *\"\n")
    });
    let outbox = plan.dir.path().join("outbox");
    let _a = plan.start("node-a");
    let _b = plan.start("node-b");
    let _c = plan.start("node-c");

    // No monitor runs: every node's tickets are unknown, and the report says so.
    let (ok, stdout, stderr) = td_report(&config, &["--send", "--html"]);
    assert!(!ok, "--html needs a file: {stdout}");
    assert!(stderr.contains("--html"), "{stderr}");
    let html_file = plan.dir.path().join("report.html");
    let (ok, stdout, stderr) =
        td_report(&config, &["--send", "--html", html_file.to_str().unwrap()]);
    assert!(ok, "{stdout}{stderr}");
    let written = files(&outbox, ".eml");
    assert_eq!(written.len(), 1, "{written:?}");
    assert!(
        stdout.contains(&format!("written to {}", written[0].display())),
        "{stdout}"
    );
    let m = parse_mail(&written[0]);
    assert_eq!(m.content_type, "multipart/alternative");
    assert!(m.subject.contains("3 nodes not answering"), "{}", m.subject);
    let text = m.part("text/plain");
    assert!(
        text.contains("TO DO ON THIS VISIT: nothing to replace"),
        "{text}"
    );
    for node in ["node-a", "node-b", "node-c"] {
        assert!(
            text.contains(&format!("  node {node}: its monitor does not answer")),
            "{node} in\n{text}"
        );
        assert!(text.contains(&format!(
            "the tickets of node {node} (its monitor did not answer)"
        )));
    }
    assert!(text.contains("images: 3 in all, 3 healthy"), "{text}");
    let page = std::fs::read_to_string(&html_file).unwrap();
    assert_eq!(
        page,
        m.part("text/html"),
        "the file and the mail's HTML part are the same"
    );

    // The schedule: fe-1 takes the canonical address first, then fe-2 starts.
    let fe1 = plan.start("fe-1");
    wait_until(
        "fe-1 holding the canonical address",
        Duration::from_secs(20),
        || {
            let (_, _, body) = get(&fe1.addr, "/failover");
            let v: serde_json::Value = serde_json::from_slice(&body).ok()?;
            (v["failover"]["holding"] == true).then_some(())
        },
    );
    let fe2 = plan.start("fe-2");
    let progress = |addr: &str| -> String {
        let (_, _, body) = get(addr, "/workers");
        let workers: serde_json::Value = serde_json::from_slice(&body).unwrap();
        workers
            .as_array()
            .unwrap()
            .iter()
            .find(|w| w["name"] == "visit report")
            .unwrap_or_else(|| panic!("no visit report worker in {workers}"))["progress"]
            .as_str()
            .unwrap()
            .to_string()
    };
    // (sent, stood by) of a frontend's report worker, from its progress line.
    let counts = |addr: &str| -> (u64, u64) {
        let p = progress(addr);
        let sent = p
            .split("; ")
            .find_map(|part| {
                part.split(" sent since it started")
                    .next()?
                    .parse::<u64>()
                    .ok()
            })
            .unwrap_or(0);
        let stood = p
            .split("stood by ")
            .nth(1)
            .and_then(|r| r.split(' ').next()?.parse::<u64>().ok())
            .unwrap_or(0);
        (sent, stood)
    };
    // Each time of the schedule, one frontend sends and the other stands by: fe-1, holding the
    // address, sends (were fe-2 to take the address over on a loaded machine, the roles would
    // swap, and the sums below would still hold).
    let (one, two) = wait_until(
        "two reports sent and two stood by",
        Duration::from_secs(40),
        || {
            let (one, two) = (counts(&fe1.addr), counts(&fe2.addr));
            (one.0 + two.0 >= 2 && one.1 + two.1 >= 2).then_some((one, two))
        },
    );
    if two.0 == 0 {
        assert!(progress(&fe2.addr).contains("none sent by this frontend"));
        assert!(one.0 >= 2, "fe-1 {one:?}, fe-2 {two:?}");
    }
    assert!(
        progress(&fe1.addr).contains("written to ") || two.0 > 0,
        "{}",
        progress(&fe1.addr)
    );
    // Every report counted as sent is in the outbox (besides the one sent by hand): a mail is
    // written before it is counted, so the outbox is listed after the counts are read.
    let sent = counts(&fe1.addr).0 + counts(&fe2.addr).0;
    let mails = files(&outbox, ".eml").len() as u64;
    assert!(
        mails > sent,
        "{mails} mails, {sent} counted as sent and 1 by hand"
    );
    // Each time of the schedule gave one mail: no two written in the same second (a second
    // one would be named td-mail-TIME-1.eml).
    let all = files(&outbox, ".eml");
    assert!(all.len() >= 3, "{all:?}");
    for f in &all {
        let name = f.file_name().unwrap().to_string_lossy();
        let stamp = name
            .strip_prefix("td-mail-")
            .and_then(|n| n.strip_suffix(".eml"))
            .unwrap();
        assert_eq!(
            stamp.len(),
            "20261207T070000Z".len(),
            "two mails in one second: {all:?}"
        );
    }
}
