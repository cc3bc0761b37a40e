//! The node's backend process: it must be alive and answer `GET /health` in time. A backend
//! that ends is restarted (when the monitor was told how) and both facts are events, with its
//! exit status and its last lines of output as evidence; one that is alive but does not answer
//! (stopped, deadlocked) is a hung process, with the kernel's word on its state; hung past a
//! limit, it is killed (when the monitor may start it again) and so restarted.
//!
//! A backend already running when the monitor starts (started by hand, or left by a monitor
//! that died) is adopted, not started twice.

use std::collections::VecDeque;
use std::io::{BufRead, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cluster::worker::BoxFuture;
use cluster::{Component, EventKind};

use crate::detector::{Detector, Findings, Look};
use floor::event_log::NewEvent;

/// `/health` must answer within this.
pub const DEADLINE: Duration = Duration::from_secs(1);
pub const INTERVAL: Duration = Duration::from_millis(250);
/// A backend may take this long to open its catalog and listen after a start.
const STARTING: Duration = Duration::from_secs(60);
/// Output lines kept as evidence.
const TAIL: usize = 12;

/// How to start the backend: a program and its arguments.
#[derive(Debug, Clone)]
pub struct StartCommand {
    pub program: PathBuf,
    pub args: Vec<String>,
}

/// The backend child, shared with the monitor so that it can stop it on the way out.
#[derive(Default)]
pub struct Supervised {
    child: Mutex<Option<Child>>,
}

impl Supervised {
    /// Stops the child (SIGINT, which the backend takes as "finish and flush", then SIGKILL
    /// after `grace`) if there is one.
    pub fn stop(&self, grace: Duration) {
        let Some(mut child) = self.child.lock().unwrap_or_else(|p| p.into_inner()).take() else {
            return;
        };
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
        let until = Instant::now() + grace;
        while Instant::now() < until {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

pub struct BackendWatch {
    node: String,
    address: SocketAddr,
    /// Asks the backend for `/health` over a kept-alive connection.
    client: floor::Client,
    start: Option<StartCommand>,
    supervised: Arc<Supervised>,
    /// The backend's pid, ours or adopted.
    pid: Option<u32>,
    adopted: bool,
    started: Instant,
    tail: Arc<Mutex<VecDeque<String>>>,
    restarts: u32,
    next_start: Option<Instant>,
    /// Whether the backend answered `/health` since it was last started.
    answered: bool,
    /// The threads passing its output on; they end when it has said its last word.
    readers: Vec<std::thread::JoinHandle<()>>,
    not_answering_since: Option<Instant>,
    /// Hung this long, it is killed and restarted (if it may be started).
    kill_after: Option<Duration>,
    /// The pid last killed: a kill takes a moment to end a process, and one is enough.
    killed: Option<u32>,
    line: String,
    first_run: bool,
}

impl BackendWatch {
    /// Watches the backend of `node` at `address`; restarts it with `start` when given.
    pub fn new(
        node: &str,
        address: SocketAddr,
        start: Option<StartCommand>,
        supervised: Arc<Supervised>,
    ) -> BackendWatch {
        BackendWatch {
            node: node.to_string(),
            address,
            client: floor::Client::new(),
            start,
            supervised,
            pid: None,
            adopted: false,
            started: Instant::now(),
            tail: Arc::default(),
            restarts: 0,
            next_start: None,
            answered: false,
            readers: Vec::new(),
            not_answering_since: None,
            kill_after: None,
            killed: None,
            line: String::new(),
            first_run: true,
        }
    }

    /// Kills a backend that stays hung for `limit` (when it may be started again).
    pub fn killing_after(mut self, limit: Duration) -> BackendWatch {
        self.kill_after = Some(limit);
        self
    }

    /// Hung past its limit and ours to start again: killed (SIGKILL: a stopped or deadlocked
    /// process takes no other signal), the action an event. Its end is then seen as any
    /// other, and it is restarted.
    fn kill_if_hung_too_long(&mut self, hung_for: Duration, found: &Findings) -> Option<String> {
        let limit = self.kill_after?;
        let pid = self.pid?;
        if hung_for < limit || self.start.is_none() || self.killed == Some(pid) {
            return None;
        }
        let state = process_state(pid).unwrap_or_default();
        // SAFETY: kill(2) on the backend's pid, ours or adopted (it answered /health as this
        // node's backend with that pid).
        if unsafe { libc::kill(pid as i32, libc::SIGKILL) } != 0 {
            return None;
        }
        self.killed = Some(pid);
        tracing::warn!(node = %self.node, pid, hung_s = hung_for.as_secs(), "killed a hung backend to restart it");
        found.log().record(
            NewEvent::new(
                Self::component(),
                EventKind::ProcessKilled,
                format!(
                    "the backend of {} (pid {pid}) did not answer for {} s: killed, to be restarted",
                    self.node,
                    hung_for.as_secs()
                ),
            )
            .evidence(state),
        );
        Some(format!("killed hung backend pid {pid}"))
    }

    fn component() -> Component {
        Component::Process {
            name: "backend".into(),
        }
    }

    fn spawn(&mut self) -> Result<u32, String> {
        use std::os::unix::process::CommandExt;
        let start = self
            .start
            .as_ref()
            .ok_or("no command to start the backend")?;
        let mut cmd = Command::new(&start.program);
        cmd.args(&start.args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // SAFETY: prctl and setpgid are async-signal-safe; nothing else runs between fork and
        // exec. The backend goes down with its monitor, which a supervisor (systemd) restarts
        // with it; in a group of its own, a Ctrl-C at the terminal reaches only the monitor,
        // which stops it in order instead of seeing it die and restarting it.
        unsafe {
            cmd.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0
                    || libc::setpgid(0, 0) != 0
                {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", start.program.display()))?;
        let pid = child.id();
        // Its output goes on to ours, and the last lines are kept as evidence.
        let outputs: [(Box<dyn std::io::Read + Send>, bool); 2] = [
            (Box::new(child.stdout.take().expect("piped")), false),
            (Box::new(child.stderr.take().expect("piped")), true),
        ];
        self.readers.clear();
        for (stream, is_err) in outputs {
            let tail = self.tail.clone();
            self.readers.push(std::thread::spawn(move || {
                for line in std::io::BufReader::new(stream)
                    .lines()
                    .map_while(Result::ok)
                {
                    // Passed on as the backend wrote it (already a log line, or a JSON
                    // object with --log-json): wrapping it in one of ours would bury it.
                    let _ = if is_err {
                        writeln!(std::io::stderr().lock(), "{line}")
                    } else {
                        writeln!(std::io::stdout().lock(), "{line}")
                    };
                    let mut t = tail.lock().unwrap_or_else(|p| p.into_inner());
                    if t.len() == TAIL {
                        t.pop_front();
                    }
                    t.push_back(line);
                }
            }));
        }
        *self
            .supervised
            .child
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(child);
        self.pid = Some(pid);
        self.adopted = false;
        self.answered = false;
        self.started = Instant::now();
        Ok(pid)
    }

    /// Whether the backend process is gone; the evidence if so.
    fn ended(&mut self) -> Option<String> {
        if self.adopted {
            let pid = self.pid?;
            return (!std::path::Path::new(&format!("/proc/{pid}")).exists())
                .then(|| format!("process {pid} no longer exists"));
        }
        let mut guard = self
            .supervised
            .child
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let child = guard.as_mut()?;
        match child.try_wait() {
            Ok(Some(status)) => {
                *guard = None;
                Some(describe_exit(status))
            }
            _ => None,
        }
    }

    fn start_with_events(&mut self, found: &Findings, why: &str) -> String {
        if self.next_start.is_some_and(|t| Instant::now() < t) {
            return "waiting to restart the backend".into();
        }
        match self.spawn() {
            Ok(pid) => {
                self.restarts += 1;
                // A backend that keeps dying is restarted less and less often.
                let wait = Duration::from_secs(1u64 << self.restarts.min(6));
                self.next_start = Some(Instant::now() + wait);
                if !self.first_run {
                    found.report(
                        "process:backend:restarted",
                        NewEvent::new(
                            Self::component(),
                            EventKind::ProcessRestarted,
                            format!("the backend of {} was restarted ({why})", self.node),
                        )
                        .evidence(format!("new pid {pid}")),
                    );
                }
                format!("started backend, pid {pid}")
            }
            Err(e) => e,
        }
    }
}

fn describe_exit(status: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with status {code}"),
        (None, Some(sig)) => format!("killed by signal {sig} ({})", signal_name(sig)),
        _ => status.to_string(),
    }
}

fn signal_name(sig: i32) -> &'static str {
    match sig {
        libc::SIGKILL => "SIGKILL",
        libc::SIGTERM => "SIGTERM",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGABRT => "SIGABRT",
        libc::SIGINT => "SIGINT",
        libc::SIGBUS => "SIGBUS",
        _ => "signal",
    }
}

/// The kernel's word on a process: the state letter of `/proc/PID/stat` and what it means.
pub fn process_state(pid: u32) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let state = stat.rsplit_once(") ")?.1.chars().next()?;
    let meaning = match state {
        'R' => "running",
        'S' => "sleeping",
        'D' => "in uninterruptible disk sleep",
        'T' => "stopped (SIGSTOP?)",
        't' => "stopped by a tracer",
        'Z' => "a zombie",
        _ => "other",
    };
    Some(format!("/proc/{pid}/stat state {state}: {meaning}"))
}

impl Detector for BackendWatch {
    fn name(&self) -> String {
        "backend process".into()
    }

    fn interval(&self) -> Duration {
        INTERVAL
    }

    fn budget(&self) -> Duration {
        DEADLINE + Duration::from_secs(1)
    }

    fn run<'a>(&'a mut self, found: &'a Findings) -> BoxFuture<'a, Result<Look, String>> {
        Box::pin(async move {
            if self.pid.is_none() && !self.adopted {
                // Adopt a backend that already answers for this node (started by hand, by
                // systemd, or left by a monitor that died); otherwise start one if we may.
                if let Ok(a) = self.client.get_at(self.address, "/health", DEADLINE).await {
                    let v: serde_json::Value = serde_json::from_slice(&a.body).unwrap_or_default();
                    if v["node"].as_str() == Some(self.node.as_str()) {
                        self.pid = v["pid"].as_u64().map(|p| p as u32);
                        self.adopted = true;
                        self.answered = true;
                        self.started = Instant::now();
                    }
                }
                if !self.adopted {
                    self.line = if self.start.is_some() {
                        let why = if self.first_run {
                            "first start"
                        } else {
                            "it was not running"
                        };
                        self.start_with_events(found, why)
                    } else {
                        "no backend answers (watch-only: the monitor does not start one)".into()
                    };
                    self.first_run = false;
                    return Ok(Look::Done(self.line.clone()));
                }
                self.first_run = false;
            }
            if let Some(how) = self.ended() {
                // Its last lines (why it died) may still be on their way through the pipes.
                for _ in 0..20 {
                    if self.readers.iter().all(|r| r.is_finished()) {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                let pid = self.pid.take();
                self.adopted = false;
                let tail: Vec<String> = self
                    .tail
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .iter()
                    .map(|l| format!("output: {l}"))
                    .collect();
                let mut event = NewEvent::new(
                    Self::component(),
                    EventKind::ProcessDied,
                    format!(
                        "the backend of {} (pid {}) {how}",
                        self.node,
                        pid.unwrap_or(0)
                    ),
                )
                .evidence(how.clone());
                for l in tail {
                    event = event.evidence(l);
                }
                found.report("process:backend:died", event);
                self.not_answering_since = None;
                found.clear("process:backend:hung", || {
                    NewEvent::new(
                        Self::component(),
                        EventKind::Recovered,
                        "the hung backend is gone",
                    )
                });
                self.line = if self.start.is_some() {
                    if self.answered {
                        // It served before it died: restart at once. One that dies before it
                        // ever answers (a bad configuration, its port taken) is in a crash
                        // loop and waits out its growing back-off.
                        self.restarts = 0;
                        self.next_start = None;
                    }
                    self.start_with_events(found, &how)
                } else {
                    format!("backend {how}; not restarted (the monitor only watches it)")
                };
                return Ok(Look::Done(self.line.clone()));
            }
            let asked = Instant::now();
            match self.client.get_at(self.address, "/health", DEADLINE).await {
                Ok(_) => {
                    if let Some(since) = self.not_answering_since.take() {
                        found.clear("process:backend:hung", || {
                            NewEvent::new(
                                Self::component(),
                                EventKind::Recovered,
                                format!(
                                    "the backend of {} answers again after {} ms",
                                    self.node,
                                    since.elapsed().as_millis()
                                ),
                            )
                        });
                    }
                    self.answered = true;
                    self.line = format!(
                        "backend pid {} answers /health in {} ms{}",
                        self.pid.map_or("?".into(), |p| p.to_string()),
                        asked.elapsed().as_millis(),
                        if self.adopted { " (adopted)" } else { "" }
                    );
                }
                Err(e) if e.is_refused() && self.started.elapsed() < STARTING => {
                    self.line = "backend starting: not listening yet".into();
                }
                Err(e) => {
                    let since = *self.not_answering_since.get_or_insert(asked);
                    let mut event = NewEvent::new(
                        Self::component(),
                        EventKind::ProcessHung,
                        format!(
                            "the backend of {} is alive but does not answer /health",
                            self.node
                        ),
                    )
                    .evidence(format!("GET http://{}/health: {e}", self.address));
                    if let Some(state) = self.pid.and_then(process_state) {
                        event = event.evidence(state);
                    }
                    found.report("process:backend:hung", event);
                    self.line = format!(
                        "backend not answering for {} ms: {e}",
                        since.elapsed().as_millis()
                    );
                    if let Some(killed) = self.kill_if_hung_too_long(since.elapsed(), found) {
                        self.line = killed;
                    }
                }
            }
            Ok(Look::Done(self.line.clone()))
        })
    }
}
