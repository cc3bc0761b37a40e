//! The weekly visit report's schedule. Every frontend runs this worker, and it acts only while
//! its frontend holds the canonical address, so that exactly one process of the cluster sends
//! each report; the other frontend notes that it stood by. At each time of `[mail]
//! report_schedule` (a cron expression, in this machine's local time) the holder has the report
//! made (by the `compose` it is given: the same gathering as `td report`) and mails it; a
//! failed send is tried again with the runner's back-off until it goes or the next time of
//! the schedule comes. Its status (`GET /workers`) says when the next report is due and when
//! and where the last one went.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Local};
use cluster::worker::{BoxFuture, Worker, WorkerState};
use cluster::{ClusterConfig, MailConfig, Problem};
use repair::mail::Mail;
use repair::report::VisitReport;

use crate::Front;

/// Makes the report now (asks every node).
pub type Compose = Arc<dyn Fn() -> BoxFuture<'static, VisitReport> + Send + Sync>;
/// Whether this frontend holds the canonical address now.
pub type Holding = Arc<dyn Fn() -> bool + Send + Sync>;

/// The longest the worker sleeps before it looks at the clock again (the wall clock may be
/// set, or the machine suspended, while it waits).
const LOOK_AGAIN: Duration = Duration::from_secs(60);

pub struct ReportSchedule {
    frontend: String,
    schedule: cron::Schedule,
    mail: MailConfig,
    holding: Holding,
    compose: Compose,
    /// The next time of the schedule.
    next: Option<DateTime<Local>>,
    /// A time of the schedule that has come and whose report has not gone yet.
    due: Option<DateTime<Local>>,
    /// Reports sent since the frontend started, and when and where the last one went.
    sent: u64,
    last_sent: Option<String>,
    /// Times of the schedule this frontend stood by for (not holding the address), and the
    /// last of them.
    stood_by: u64,
    last_stood_by: Option<String>,
}

impl ReportSchedule {
    pub fn new(
        frontend: &str,
        mail: &MailConfig,
        holding: Holding,
        compose: Compose,
    ) -> Result<ReportSchedule, Problem> {
        Ok(ReportSchedule {
            frontend: frontend.to_string(),
            schedule: mail.schedule()?,
            mail: mail.clone(),
            holding,
            compose,
            next: None,
            due: None,
            sent: 0,
            last_sent: None,
            stood_by: 0,
            last_stood_by: None,
        })
    }

    /// Moves the schedule on to `now`: a time that has passed becomes due (a later one
    /// replaces an earlier one still due: one report, the newest).
    fn advance(&mut self, now: DateTime<Local>) {
        if self.next.is_none() {
            self.next = self.schedule.after(&now).next();
        }
        if let Some(next) = self.next.filter(|n| *n <= now) {
            self.due = Some(next);
            self.next = self.schedule.after(&now).next();
        }
    }

    async fn unit(&mut self) -> Result<WorkerState, String> {
        self.advance(Local::now());
        let Some(due) = self.due else {
            return Ok(WorkerState::Idle);
        };
        if !(self.holding)() {
            tracing::info!(
                frontend = %self.frontend,
                due = %due.to_rfc3339(),
                "visit report: not holding the canonical address, the holder sends it"
            );
            self.stood_by += 1;
            self.last_stood_by = Some(due.format("%a %Y-%m-%d %H:%M:%S").to_string());
            self.due = None;
            return Ok(WorkerState::Idle);
        }
        let report = (self.compose)().await;
        let mail = Mail::report(&report);
        match repair::mail::send(&self.mail, &mail).await {
            Ok(delivered) => {
                tracing::info!(
                    frontend = %self.frontend,
                    due = %due.to_rfc3339(),
                    delivered = %delivered,
                    "visit report sent"
                );
                self.sent += 1;
                self.last_sent = Some(format!(
                    "the report of {} {delivered} at {}",
                    due.format("%a %Y-%m-%d %H:%M"),
                    Local::now().format("%a %Y-%m-%d %H:%M:%S")
                ));
                self.due = None;
                Ok(WorkerState::Idle)
            }
            Err(e) => {
                tracing::warn!(
                    frontend = %self.frontend,
                    due = %due.to_rfc3339(),
                    error = %e,
                    "visit report not sent; trying again"
                );
                Err(format!(
                    "the report of {} was not sent (tried again): {e}",
                    due.format("%a %Y-%m-%d %H:%M")
                ))
            }
        }
    }
}

impl Worker for ReportSchedule {
    fn name(&self) -> String {
        "visit report".into()
    }

    fn work(&mut self) -> BoxFuture<'_, Result<WorkerState, String>> {
        Box::pin(self.unit())
    }

    fn wait_for_work(&mut self) -> BoxFuture<'_, ()> {
        let wait = self
            .next
            .map(|n| (n - Local::now()).to_std().unwrap_or(Duration::ZERO))
            .unwrap_or(LOOK_AGAIN)
            .min(LOOK_AGAIN);
        Box::pin(tokio::time::sleep(wait))
    }

    fn progress(&self) -> String {
        let mut parts = Vec::new();
        if let Some(next) = self.next {
            parts.push(format!("next at {}", next.format("%a %Y-%m-%d %H:%M %:z")));
        }
        parts.push(match &self.last_sent {
            Some(last) => format!("{} sent since it started, the last: {last}", self.sent),
            None => "none sent by this frontend since it started".to_string(),
        });
        if let Some(last) = &self.last_stood_by {
            parts.push(format!(
                "stood by {} times, the last at {last} (the frontend holding the canonical \
                 address sends it)",
                self.stood_by
            ));
        }
        parts.join("; ")
    }
}

/// Starts the report schedule on `front`'s runner when `[mail]` sends mail anywhere. It acts
/// while `front` holds the canonical address; in a cluster without one, the first frontend of
/// the configuration sends.
pub fn start(
    cluster: &ClusterConfig,
    front: &Arc<Front>,
    compose: Compose,
) -> Result<bool, Problem> {
    if !cluster.mail.enabled() {
        tracing::info!(
            frontend = %front.name,
            "no [mail] smtp_host or outbox: the visit report is not sent on a schedule"
        );
        return Ok(false);
    }
    let weak = Arc::downgrade(front);
    let alone = cluster.canonical.is_none()
        && cluster.frontends.first().map(|f| f.name.as_str()) == Some(front.name.as_str());
    let holding: Holding = Arc::new(move || {
        let Some(front) = weak.upgrade() else {
            return false;
        };
        match front.failover.get() {
            Some(state) => {
                state
                    .machine
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .holding
            }
            None => alone,
        }
    });
    let worker = ReportSchedule::new(&front.name, &cluster.mail, holding, compose)?;
    front.runner.spawn(worker);
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn schedule(holding: bool) -> ReportSchedule {
        let mail = MailConfig {
            report_schedule: "0 0 7 * * Mon".into(),
            ..MailConfig::default()
        };
        ReportSchedule::new(
            "fe-1",
            &mail,
            Arc::new(move || holding),
            Arc::new(|| Box::pin(async { unreachable!("nothing is composed in these tests") })),
        )
        .unwrap()
    }

    fn at(s: &str) -> DateTime<Local> {
        DateTime::parse_from_rfc3339(s)
            .unwrap()
            .with_timezone(&Local)
    }

    #[test]
    fn a_time_that_passes_becomes_due_once() {
        let mut s = schedule(true);
        // Sunday: the next is Monday 07:00, nothing due.
        s.advance(at("2026-12-06T12:00:00+00:00"));
        assert!(s.due.is_none());
        let next = s.next.unwrap();
        assert_eq!(
            next,
            cron::Schedule::from_str("0 0 7 * * Mon")
                .unwrap()
                .after(&at("2026-12-06T12:00:00+00:00"))
                .next()
                .unwrap()
        );
        // Just after it: due, and the next is a week later.
        s.advance(next + chrono::Duration::seconds(1));
        assert_eq!(s.due, Some(next));
        assert_eq!(s.next, Some(next + chrono::Duration::days(7)));
        // Looking again changes nothing.
        s.advance(next + chrono::Duration::seconds(2));
        assert_eq!(s.due, Some(next));
    }

    #[tokio::test]
    async fn a_frontend_not_holding_the_address_stands_by() {
        let mut s = schedule(false);
        s.next = Some(Local::now() - chrono::Duration::seconds(5));
        assert_eq!(s.unit().await, Ok(WorkerState::Idle));
        assert!(s.due.is_none());
        assert!(s.last_sent.is_none());
        assert!(
            s.progress().contains("stood by 1 times"),
            "{}",
            s.progress()
        );
        assert!(s.progress().contains("none sent"), "{}", s.progress());
    }
}
