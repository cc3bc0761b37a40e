//! A silent node power-cycled through its remote power switch, against a real OpenSSH `sshd`
//! on loopback standing in for the switch: its forced command really kills the stopped node
//! (monitor and backend, SIGSTOPped by the test so that they stop answering) and starts it
//! again, as cutting and restoring its outlet would. The watcher records the cycle with the
//! switch's answer; the node answers again, so no ticket is opened; stopped again within the
//! hour, it is not cycled a second time. A switch whose host key is not the one known is
//! refused before anything runs.
//!
//! Needs root (sshd logs in as root with a key); in CI it must run, elsewhere without root it
//! says it is skipped.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cluster::EventKind;
use common::loop_disks::sh;
use common::monitor::{events, free_addr, start_monitor, wait_until};

const LIMIT: Duration = Duration::from_secs(60);

/// `sshd -D` on a loopback port, killed when dropped.
struct Sshd {
    child: Child,
    port: u16,
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Kills the processes whose pids are in these files when dropped (the node the switch
/// started again is no child of the test).
struct KillPids(Vec<PathBuf>);

impl Drop for KillPids {
    fn drop(&mut self) {
        for f in &self.0 {
            if let Some(pid) = std::fs::read_to_string(f)
                .ok()
                .and_then(|s| s.trim().parse::<i32>().ok())
            {
                unsafe {
                    libc::kill(pid, libc::SIGCONT);
                    libc::kill(pid, libc::SIGKILL);
                }
            }
        }
    }
}

fn keygen(path: &Path) {
    sh(
        "ssh-keygen",
        &[
            "-q",
            "-t",
            "ed25519",
            "-N",
            "",
            "-f",
            path.to_str().unwrap(),
        ],
    );
}

/// An sshd whose only key runs `forced` whatever the client asks.
fn sshd(dir: &Path, forced: &Path) -> Sshd {
    keygen(&dir.join("host_key"));
    keygen(&dir.join("client_key"));
    let public = std::fs::read_to_string(dir.join("client_key.pub")).unwrap();
    std::fs::write(
        dir.join("authorized_keys"),
        format!(
            "command=\"/bin/sh {}\",no-pty,no-port-forwarding {public}",
            forced.display()
        ),
    )
    .unwrap();
    let port: u16 = free_addr().rsplit_once(':').unwrap().1.parse().unwrap();
    let conf = dir.join("sshd_config");
    std::fs::write(
        &conf,
        format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {d}/host_key\n\
             AuthorizedKeysFile {d}/authorized_keys\nPasswordAuthentication no\n\
             KbdInteractiveAuthentication no\nStrictModes no\nUsePAM no\n\
             PermitRootLogin prohibit-password\nPidFile {d}/sshd.pid\n",
            d = dir.display()
        ),
    )
    .unwrap();
    std::fs::create_dir_all("/run/sshd").unwrap();
    let child = Command::new("/usr/sbin/sshd")
        .args(["-D", "-e", "-f", conf.to_str().unwrap()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("sshd.stderr")).unwrap())
        .spawn()
        .expect("/usr/sbin/sshd (Debian openssh-server)");
    let server = Sshd { child, port };
    wait_until("sshd listens", Duration::from_secs(10), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).ok()
    });
    server
}

fn backend_pid_of(monitor: &str) -> u32 {
    wait_until("the backend answers its monitor", LIMIT, || {
        let h = common::monitor::detector(monitor, "backend process");
        let line = h["line"].as_str().unwrap_or("").to_string();
        line.contains("answers /health")
            .then(|| line.split_whitespace().nth(2)?.parse().ok())
            .flatten()
    })
}

fn monitor_pid(monitor: &str) -> u32 {
    common::monitor::health(monitor)["pid"].as_u64().unwrap() as u32
}

fn stop(pids: &[u32]) {
    for pid in pids {
        assert_eq!(unsafe { libc::kill(*pid as i32, libc::SIGSTOP) }, 0);
    }
}

fn cycles(n1: &str) -> Vec<cluster::Event> {
    events(n1)
        .into_iter()
        .filter(|e| e.kind == EventKind::PowerCycled)
        .collect()
}

#[test]
fn a_silent_node_is_power_cycled_once_through_its_switch_and_answers_again() {
    if !common::root_or_skip(
        "a_silent_node_is_power_cycled_once_through_its_switch",
        "sshd logging in as root",
    ) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let config = d.join("cluster.toml");
    let n2_monitor = free_addr();
    // The switch: kills the node's processes (stopped, they take only SIGKILL) and starts the
    // node again, detached, as power coming back would.
    let forced = d.join("cycle.sh");
    std::fs::write(
        &forced,
        format!(
            "for f in {d}/n2-*.pid; do kill -9 $(cat $f) 2>/dev/null; done\n\
             setsid {td} monitor --config {config} --node n2 >{d}/n2-again.log 2>&1 </dev/null &\n\
             echo $! > {d}/n2-again.pid\n\
             echo \"outlet 2 cycled\"\n",
            d = d.display(),
            td = env!("CARGO_BIN_EXE_td"),
            config = config.display()
        ),
    )
    .unwrap();
    let server = sshd(d, &forced);
    let host_key = std::fs::read_to_string(d.join("host_key.pub")).unwrap();
    std::fs::write(
        d.join("known_hosts"),
        format!("[127.0.0.1]:{} {host_key}", server.port),
    )
    .unwrap();
    let _cleanup = KillPids(vec![
        d.join("n2-again.pid"),
        d.join("n2-monitor.pid"),
        d.join("n2-backend.pid"),
    ]);
    let mut toml =
        String::from("name = \"power test\"\n\n[repair]\npower_cycle_after_seconds = 2\n");
    for (n, monitor) in [("n1", free_addr()), ("n2", n2_monitor.clone())] {
        std::fs::create_dir_all(d.join(format!("{n}/d1"))).unwrap();
        toml.push_str(&format!(
            "\n[[node]]\nname = \"{n}\"\naddress = \"{}\"\nmonitor = \"{monitor}\"\n\
             power_domain = \"P{n}\"\nstate_dir = \"{n}/state\"\n\
             [[node.disk]]\nid = \"{n}-d1\"\npath = \"{n}/d1\"\n",
            free_addr()
        ));
    }
    toml.push_str(&format!(
        "[node.power_switch]\nhost = \"127.0.0.1:{}\"\nuser = \"root\"\nkey_file = \"client_key\"\n\
         known_hosts = \"known_hosts\"\ncommand = \"cycle outlet 2\"\n",
        server.port
    ));
    std::fs::write(&config, toml).unwrap();
    floor::secret_file::create(&d.join("cluster.secret")).unwrap();

    let n1 = start_monitor(&config, "n1", &[]);
    let n2 = start_monitor(&config, "n2", &[]);
    backend_pid_of(&n1.addr);
    let first = (monitor_pid(&n2.addr), backend_pid_of(&n2.addr));
    std::fs::write(d.join("n2-monitor.pid"), first.0.to_string()).unwrap();
    std::fs::write(d.join("n2-backend.pid"), first.1.to_string()).unwrap();

    let t0 = Instant::now();
    stop(&[first.0, first.1]);
    let cycled = wait_until("n1 power-cycles n2", LIMIT, || {
        cycles(&n1.addr).into_iter().next()
    });
    eprintln!("silent to power-cycled: {:?}", t0.elapsed());
    assert!(cycled.summary.contains("the switch did it"), "{cycled:#?}");
    assert!(
        cycled
            .evidence
            .iter()
            .any(|e| e == "switch: outlet 2 cycled"),
        "{cycled:#?}"
    );
    assert!(cycled
        .evidence
        .iter()
        .any(|e| e.contains("host key SHA256:")));

    // Power back: the node answers again, a new process, and the silence was no ticket.
    let again = wait_until("n2 answers again", LIMIT, || {
        std::panic::catch_unwind(|| monitor_pid(&n2_monitor))
            .ok()
            .filter(|p| *p != first.0)
    });
    eprintln!("silent to answering again: {:?}", t0.elapsed());
    wait_until("n1 sees n2 again", LIMIT, || {
        events(&n1.addr)
            .iter()
            .any(|e| {
                e.kind == EventKind::Recovered && e.time >= cycled.time && e.summary.contains("n2")
            })
            .then_some(())
    });
    let out = Command::new(env!("CARGO_BIN_EXE_td"))
        .args(["tickets", "--json", "--config", config.to_str().unwrap()])
        .output()
        .unwrap();
    let listed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(listed["tickets"], serde_json::json!([]), "{listed:#}");

    // Silent again within the hour: not cycled again.
    let backend = backend_pid_of(&n2_monitor);
    std::fs::write(d.join("n2-monitor.pid"), again.to_string()).unwrap();
    std::fs::write(d.join("n2-backend.pid"), backend.to_string()).unwrap();
    stop(&[again, backend]);
    wait_until("n1 holds back", LIMIT, || {
        let line = common::monitor::detector(&n1.addr, "power switch")["line"]
            .as_str()
            .unwrap_or("")
            .to_string();
        line.contains("at most once an hour").then_some(())
    });
    assert_eq!(cycles(&n1.addr).len(), 1);
    drop(n2);
    drop(n1);

    // A switch offering another host key than the known one is refused before anything runs.
    keygen(&d.join("other_key"));
    let other = std::fs::read_to_string(d.join("other_key.pub")).unwrap();
    std::fs::write(
        d.join("known_other"),
        format!("[127.0.0.1]:{} {other}", server.port),
    )
    .unwrap();
    let _ = std::fs::remove_file(d.join("n2-again.pid"));
    let switch = cluster::PowerSwitch {
        host: format!("127.0.0.1:{}", server.port),
        user: "root".into(),
        key_file: d.join("client_key"),
        known_hosts: Some(d.join("known_other")),
        command: "cycle".into(),
    };
    let refused = monitor::power_cycle::cycle(&switch).unwrap_err();
    assert!(refused.to_string().contains("does not name"), "{refused}");
    assert!(
        !d.join("n2-again.pid").exists(),
        "nothing ran on the switch"
    );
}
