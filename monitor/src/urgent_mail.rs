//! The one case a human is told at once: a ticket of this node is urgent (some image is one
//! failure from loss and the cluster cannot restore it by itself). Each urgent ticket is
//! mailed once, as `[mail]` says (SMTP or the outbox), and the mail is an event on the
//! ticket; everything else waits for the weekly report.
//!
//! It never mails a ticket twice (the mailed ones are kept in the event log's state, so a
//! restart does not send them again), and tries a failed send again at most once a minute.

use std::time::Duration;

use cluster::ticket::TicketState;
use cluster::worker::BoxFuture;
use cluster::{ClusterConfig, Component, EventKind, NodeConfig};
use floor::event_log::NewEvent;

use crate::detector::{Detector, Findings, Look};

/// A failed send is tried again after this long.
const RETRY: u64 = 60;

pub struct UrgentMail {
    cluster: ClusterConfig,
    node: NodeConfig,
}

impl UrgentMail {
    pub fn new(cluster: &ClusterConfig, node: &NodeConfig) -> UrgentMail {
        UrgentMail {
            cluster: cluster.clone(),
            node: node.clone(),
        }
    }
}

/// The mail about one urgent ticket.
pub fn mail(cluster: &str, t: &cluster::Ticket) -> repair::mail::Mail {
    let text = format!(
        "Urgent, from {cluster}: some image is one failure from loss, and the cluster cannot \
         restore its second copy by itself. Please come before the weekly visit.\n\n{}",
        repair::ticket_text::text(t)
    );
    let html = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{subject}</title></head><body><h1>{subject}</h1><pre style=\"white-space: pre-wrap\">{body}</pre></body></html>",
        subject = repair::report::esc(&format!("Urgent: {}", t.summary)),
        body = repair::report::esc(&text)
    );
    repair::mail::Mail {
        subject: format!("[{cluster}] urgent: {} ({})", t.summary, t.id),
        text,
        html,
    }
}

impl Detector for UrgentMail {
    fn name(&self) -> String {
        "urgent mail".into()
    }

    fn interval(&self) -> Duration {
        Duration::from_secs(5)
    }

    fn budget(&self) -> Duration {
        repair::mail::SMTP_TIMEOUT * 2
    }

    fn run<'a>(&'a mut self, found: &'a Findings) -> BoxFuture<'a, Result<Look, String>> {
        Box::pin(async move {
            let config = &self.cluster.mail;
            if config.to.is_empty() || (config.smtp_host.is_none() && config.outbox.is_none()) {
                return Ok(Look::Unavailable(
                    "no [mail] configured: urgent tickets are only listed (td tickets)".into(),
                ));
            }
            let log = found.log();
            let page = crate::tickets::page_of(&self.cluster, &self.node, log).await;
            let urgent: Vec<_> = page
                .tickets
                .into_iter()
                .filter(|t| t.urgent && matches!(t.state, TicketState::Open | TicketState::Done))
                .collect();
            let mut sent = 0;
            let mut failed = Vec::new();
            for t in &urgent {
                let key = format!("urgent_mailed:{}", t.id);
                if log.recall::<u64>(&key).is_some() {
                    continue;
                }
                let tried = format!("urgent_tried:{}", t.id);
                let now = cluster::unix_now();
                if log
                    .recall::<u64>(&tried)
                    .is_some_and(|at| now.saturating_sub(at) < RETRY)
                {
                    continue;
                }
                log.remember(&tried, &now);
                match repair::mail::send(config, &mail(&self.cluster.name, t)).await {
                    Ok(delivered) => {
                        log.remember(&key, &now);
                        log.record(
                            NewEvent::new(
                                Component::Ticket {
                                    ticket: t.id.clone(),
                                },
                                EventKind::TicketMailed,
                                format!("urgent ticket {} mailed: {delivered}", t.id),
                            )
                            .evidence(t.summary.clone()),
                        );
                        sent += 1;
                    }
                    Err(e) => failed.push(format!("{}: {e}", t.id)),
                }
            }
            if !failed.is_empty() {
                return Err(format!("urgent mail not delivered: {}", failed.join("; ")));
            }
            Ok(Look::Done(format!(
                "{} urgent tickets, {sent} mailed now",
                urgent.len()
            )))
        })
    }
}
