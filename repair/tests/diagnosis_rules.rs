//! The diagnosis rules, each with an event sequence as the monitors and backends record it
//! (components, kinds, sources and evidence as in their logs), and one that could break it.

use cluster::ticket::{Part, Ticket, TicketState};
use cluster::{ClusterConfig, Component, Event, EventKind};
use repair::{tickets, Input, Settings};

const CONFIG: &str = r#"
name = "test museum"
[[node]]
name = "node-a"
address = "127.0.0.1:1"
power_domain = "p1"
rack = "R1"
[[node.disk]]
id = "a1"
path = "/srv/a1"
serial = "S-A1"
location = { adapter = 0, bus = 1, enclosure = "E1", slot = 1 }
[[node.disk]]
id = "a2"
path = "/srv/a2"
serial = "S-A2"
location = { adapter = 0, bus = 1, enclosure = "E1", slot = 2 }
[[node.disk]]
id = "a3"
path = "/srv/a3"
serial = "S-A3"
location = { adapter = 0, bus = 2, enclosure = "E1", slot = 3 }
[[node]]
name = "node-b"
address = "127.0.0.1:2"
power_domain = "p2"
rack = "R2"
[[node]]
name = "node-c"
address = "127.0.0.1:3"
power_domain = "p1"
"#;

const SETTINGS: Settings = Settings {
    grace: 60,
    node_down: 900,
    settle: 600,
    crash_count: 3,
    crash_window: 600,
};

fn config() -> ClusterConfig {
    toml::from_str(CONFIG).unwrap()
}

/// Events of one node, numbered per source as the logs number them.
struct Log {
    node: &'static str,
    events: Vec<Event>,
}

impl Log {
    fn new(node: &'static str) -> Log {
        Log {
            node,
            events: Vec::new(),
        }
    }

    fn at(&mut self, time: u64, source: &str, component: Component, kind: EventKind) -> &mut Event {
        let id = self.events.iter().filter(|e| e.source == source).count() as u64 + 1;
        self.events.push(Event {
            id,
            time,
            node: self.node.into(),
            source: source.into(),
            component,
            kind,
            summary: format!("{kind:?}"),
            location: None,
            serial: None,
            evidence: vec![format!("{kind:?} evidence at {time}")],
            count: 1,
            last_seen: time,
        });
        self.events.last_mut().unwrap()
    }

    fn disk(&mut self, time: u64, disk: &str, kind: EventKind) -> &mut Event {
        let source = if matches!(kind, EventKind::DiskReturned | EventKind::DiskReplaced) {
            "backend"
        } else {
            "monitor"
        };
        self.at(time, source, Component::Disk { disk: disk.into() }, kind)
    }

    fn mark(&mut self, time: u64, ticket: &str, kind: EventKind) {
        self.at(
            time,
            "monitor",
            Component::Ticket {
                ticket: ticket.into(),
            },
            kind,
        );
    }

    fn tickets_at(&self, now: u64) -> Vec<Ticket> {
        self.tickets_blocked(now, &[])
    }

    fn tickets_blocked(&self, now: u64, blocked: &[(String, String)]) -> Vec<Ticket> {
        let config = config();
        tickets(
            &Input {
                cluster: &config,
                node: self.node,
                events: &self.events,
                blocked,
                now,
            },
            &SETTINGS,
        )
    }
}

fn parts(t: &Ticket) -> Vec<(Part, u8)> {
    t.suspects
        .iter()
        .map(|s| (s.part.clone(), s.likelihood))
        .collect()
}

fn disk(d: &str) -> Part {
    Part::Disk { disk: d.into() }
}

fn cable(d: &str) -> Part {
    Part::CableOrBackplane { disk: d.into() }
}

#[test]
fn a_disk_back_within_the_grace_period_is_no_ticket() {
    let mut log = Log::new("node-a");
    log.disk(100, "a1", EventKind::DiskMissing);
    log.disk(102, "a1", EventKind::IoError);
    log.disk(130, "a1", EventKind::Recovered);
    assert!(log.tickets_at(10_000).is_empty());
    // The same outage, a minute and a half long, is one.
    log.events.last_mut().unwrap().time = 190;
    assert_eq!(log.tickets_at(10_000).len(), 1);
}

#[test]
fn a_failed_disk_is_one_ticket_after_the_grace_period_naming_disk_then_cable() {
    let mut log = Log::new("node-a");
    log.disk(100, "a1", EventKind::IoError).count = 40;
    log.disk(101, "a1", EventKind::DiskFailed);
    log.at(
        101,
        "backend",
        Component::Disk { disk: "a1".into() },
        EventKind::DiskFailed,
    );
    assert!(
        log.tickets_at(150).is_empty(),
        "not before the grace period"
    );
    let t = log.tickets_at(170);
    assert_eq!(t.len(), 1, "{t:#?}");
    let t = &t[0];
    assert_eq!(t.id, "node-a.m1");
    assert_eq!(t.state, TicketState::Open);
    assert_eq!(t.rack, "R1");
    assert_eq!(parts(t), vec![(disk("a1"), 70), (cable("a1"), 30)]);
    let first = &t.suspects[0];
    assert_eq!(first.serial.as_deref(), Some("S-A1"));
    assert_eq!(first.location.as_ref().unwrap().slot, Some(1));
    assert_eq!(t.out_of_service.len(), 1);
    assert!(t.out_of_service[0].contains("a1"));
    let io = t
        .evidence
        .iter()
        .find(|e| e.kind == EventKind::IoError)
        .unwrap();
    assert_eq!(io.count, 40);
    // The fault repeated (the probe fails again, the kernel logs more) adds no ticket.
    log.disk(400, "a1", EventKind::DiskFailed);
    log.disk(401, "a1", EventKind::IoError);
    assert_eq!(log.tickets_at(500).len(), 1);
}

#[test]
fn two_disks_of_one_bus_failing_together_are_one_fault_of_the_bus() {
    let mut log = Log::new("node-a");
    log.at(
        99,
        "monitor",
        Component::Bus { bus: "ata3".into() },
        EventKind::BusReset,
    );
    log.disk(99, "a2", EventKind::IoError);
    log.disk(100, "a1", EventKind::DiskFailed);
    log.disk(105, "a2", EventKind::DiskFailed);
    let t = log.tickets_at(1000);
    assert_eq!(t.len(), 1, "{t:#?}");
    assert_eq!(
        t[0].suspects[0].part,
        Part::Bus {
            bus: "adapter 0 bus 1".into()
        }
    );
    assert!(t[0].suspects[0].likelihood >= 50);
    assert_eq!(t[0].out_of_service.len(), 2);
    assert!(t[0].evidence.iter().any(|e| e.kind == EventKind::BusReset));
    let total: u32 = t[0].suspects.iter().map(|s| u32::from(s.likelihood)).sum();
    assert_eq!(total, 100);

    // Disks of two buses, or far apart in time, are separate faults.
    let mut log = Log::new("node-a");
    log.disk(100, "a1", EventKind::DiskFailed);
    log.disk(105, "a3", EventKind::DiskFailed);
    assert_eq!(log.tickets_at(1000).len(), 2);
    let mut log = Log::new("node-a");
    log.disk(100, "a1", EventKind::DiskFailed);
    log.disk(300, "a2", EventKind::DiskFailed);
    let t = log.tickets_at(1000);
    assert_eq!(t.len(), 2);
    assert!(t
        .iter()
        .all(|t| matches!(t.suspects[0].part, Part::Disk { .. })));
}

#[test]
fn crc_errors_point_at_the_cable_and_medium_errors_at_the_disk() {
    let mut log = Log::new("node-a");
    log.disk(100, "a1", EventKind::CableErrors);
    let t = log.tickets_at(101);
    assert_eq!(t.len(), 1, "a definite sign needs no grace period");
    assert_eq!(parts(&t[0]), vec![(cable("a1"), 80), (disk("a1"), 20)]);
    assert!(t[0].out_of_service.is_empty(), "the disk still serves");

    let mut log = Log::new("node-a");
    log.disk(100, "a1", EventKind::MediumError);
    assert!(
        log.tickets_at(1000).is_empty(),
        "one medium error is not growing"
    );
    log.disk(200, "a1", EventKind::MediumError);
    let t = log.tickets_at(1000);
    assert_eq!(parts(&t[0]), vec![(disk("a1"), 100)]);

    let mut log = Log::new("node-a");
    log.disk(100, "a2", EventKind::SmartFailed);
    assert_eq!(parts(&log.tickets_at(100)[0]), vec![(disk("a2"), 100)]);
}

#[test]
fn a_disk_that_fails_again_after_it_came_back_is_the_disk() {
    let mut log = Log::new("node-a");
    log.disk(100, "a1", EventKind::DiskFailed);
    log.disk(300, "a1", EventKind::DiskReturned);
    log.disk(300, "a1", EventKind::Recovered);
    let t = log.tickets_at(400);
    assert_eq!(t[0].state, TicketState::Verified);
    assert_eq!(log.tickets_at(300 + 600)[0].state, TicketState::Closed);

    // Again before it closed: the same ticket, open, now naming the disk alone.
    let mut again = Log::new("node-a");
    again.events = log.events.clone();
    again.disk(500, "a1", EventKind::DiskFailed);
    let t = again.tickets_at(1000);
    assert_eq!(t.len(), 1, "{t:#?}");
    assert_eq!(t[0].state, TicketState::Open);
    assert_eq!(parts(&t[0]), vec![(disk("a1"), 100)]);

    // Again after it closed: a new ticket, naming the disk alone.
    log.disk(5000, "a1", EventKind::DiskFailed);
    let t = log.tickets_at(6000);
    assert_eq!(t.len(), 2);
    assert_eq!(t[0].state, TicketState::Closed);
    assert_eq!(t[1].state, TicketState::Open);
    assert_eq!(parts(&t[1]), vec![(disk("a1"), 100)]);
    assert!(t[1].summary.contains("again"), "{}", t[1].summary);
}

#[test]
fn a_replaced_disk_verifies_and_closes_its_ticket() {
    let mut log = Log::new("node-a");
    log.disk(100, "a1", EventKind::DiskFailed);
    let id = log.tickets_at(200)[0].id.clone();
    log.mark(1000, &id, EventKind::TicketDone);
    assert_eq!(log.tickets_at(1001)[0].state, TicketState::Done);
    log.disk(1100, "a1", EventKind::DiskReplaced);
    log.disk(1101, "a1", EventKind::Recovered);
    let t = &log.tickets_at(1200)[0];
    assert_eq!(t.state, TicketState::Verified);
    assert_eq!(t.verified_at, Some(1100));
    let t = &log.tickets_at(1100 + 600)[0];
    assert_eq!(t.state, TicketState::Closed);
    assert_eq!(t.id, id);
    // A blank disk adopted without the operator's mark counts as done by the swap.
    let mut log = Log::new("node-a");
    log.disk(100, "a1", EventKind::DiskFailed);
    log.disk(1100, "a1", EventKind::DiskReplaced);
    let t = &log.tickets_at(1200)[0];
    assert_eq!((t.state, t.done_at), (TicketState::Verified, Some(1100)));
    // The new disk fails at once: the same ticket opens again.
    log.disk(1150, "a1", EventKind::DiskFailed);
    assert_eq!(log.tickets_at(1300)[0].state, TicketState::Open);
    assert_eq!(log.tickets_at(1300).len(), 1);
}

#[test]
fn an_acquitted_ticket_ends_and_a_later_fault_is_a_new_one() {
    let mut log = Log::new("node-a");
    log.disk(100, "a1", EventKind::CableErrors);
    let id = log.tickets_at(200)[0].id.clone();
    log.mark(300, &id, EventKind::TicketAcquitted);
    log.mark(301, "node-a.m999", EventKind::TicketDone);
    let t = log.tickets_at(400);
    assert_eq!(t.len(), 1);
    assert_eq!(t[0].state, TicketState::Acquitted);
    log.disk(500, "a1", EventKind::DiskFailed);
    let t = log.tickets_at(1000);
    assert_eq!(t.len(), 2);
    assert_eq!(t[1].state, TicketState::Open);
}

#[test]
fn a_crash_looping_program_is_a_software_defect_not_a_part() {
    let mut log = Log::new("node-a");
    let backend = || Component::Process {
        name: "backend".into(),
    };
    log.at(100, "monitor", backend(), EventKind::ProcessDied);
    log.at(101, "monitor", backend(), EventKind::ProcessRestarted);
    log.at(200, "monitor", backend(), EventKind::ProcessDied);
    assert!(log.tickets_at(250).is_empty(), "two deaths are not a loop");
    log.at(300, "monitor", backend(), EventKind::ProcessDied);
    let t = log.tickets_at(350);
    assert_eq!(t.len(), 1);
    assert_eq!(
        t[0].suspects[0].part,
        Part::Software {
            process: "backend".into()
        }
    );
    assert!(!t[0].urgent);
    assert!(
        t[0].actions[0].contains("restarted 1 times"),
        "{:?}",
        t[0].actions
    );
    // It stopped failing: closed after the settle period.
    assert_eq!(log.tickets_at(300 + 600)[0].state, TicketState::Closed);
    // Hangs that passed by themselves are no deaths.
    let mut log = Log::new("node-a");
    for k in 0..5 {
        log.at(100 + k * 10, "monitor", backend(), EventKind::ProcessHung);
    }
    assert!(log.tickets_at(200).is_empty());
    // Deaths spread over hours are no loop.
    let mut log = Log::new("node-a");
    for k in 0..5 {
        log.at(100 + k * 3600, "monitor", backend(), EventKind::ProcessDied);
    }
    assert!(log.tickets_at(100_000).is_empty());
}

#[test]
fn a_silent_node_is_a_ticket_of_its_watcher_only_once_it_stays_silent() {
    let silent = |log: &mut Log, peer: &str, t: u64| {
        log.at(
            t,
            "monitor",
            Component::Peer { peer: peer.into() },
            EventKind::PeerSilent,
        );
    };
    let mut c = Log::new("node-c");
    silent(&mut c, "node-b", 100);
    assert!(c.tickets_at(500).is_empty(), "a reboot is common");
    let t = c.tickets_at(100 + 900);
    assert_eq!(t.len(), 1);
    assert_eq!(
        t[0].rack, "R2",
        "the operator walks to the silent node's rack"
    );
    assert_eq!(
        t[0].suspects[0].part,
        Part::Node {
            node: "node-b".into()
        }
    );
    // node-a sees it too, but node-c (the next in the configuration) keeps the ticket...
    let mut a = Log::new("node-a");
    silent(&mut a, "node-b", 100);
    assert!(a.tickets_at(2000).is_empty());
    // ...unless node-c is silent too.
    silent(&mut a, "node-c", 150);
    let t = a.tickets_at(2000);
    assert_eq!(t.len(), 2, "{t:#?}");
    // It answers again: verified.
    c.at(
        1500,
        "monitor",
        Component::Peer {
            peer: "node-b".into(),
        },
        EventKind::Recovered,
    );
    assert_eq!(c.tickets_at(1600)[0].state, TicketState::Verified);
}

#[test]
fn an_enclosure_element_at_fault_is_that_element() {
    let mut log = Log::new("node-a");
    let fan = || Component::Enclosure {
        enclosure: "E1".into(),
        element: "fan 2".into(),
    };
    log.at(100, "monitor", fan(), EventKind::EnclosureFault);
    let t = log.tickets_at(200);
    assert_eq!(
        t[0].suspects[0].part,
        Part::EnclosureElement {
            enclosure: "E1".into(),
            element: "fan 2".into()
        }
    );
    log.at(300, "monitor", fan(), EventKind::Recovered);
    assert_eq!(log.tickets_at(301)[0].state, TicketState::Verified);
}

#[test]
fn a_ticket_is_urgent_only_when_the_cluster_cannot_restore_redundancy_by_itself() {
    let mut log = Log::new("node-a");
    log.disk(100, "a1", EventKind::DiskFailed);
    assert!(!log.tickets_at(200)[0].urgent);
    let blocked = vec![(
        "node-a".to_string(),
        "img-1: no disk in another power domain has room".to_string(),
    )];
    let t = log.tickets_blocked(200, &blocked);
    assert!(t[0].urgent);
    assert!(t[0].notes.iter().any(|n| n.contains("no disk")));
    // Images that lost their copy on another node make no ticket of this one urgent.
    let elsewhere = vec![("node-b".to_string(), "img-2: no room".to_string())];
    assert!(!log.tickets_blocked(200, &elsewhere)[0].urgent);
}

#[test]
fn tickets_are_the_same_whatever_order_the_logs_are_read_in() {
    let mut log = Log::new("node-a");
    log.disk(100, "a1", EventKind::IoError);
    log.disk(100, "a1", EventKind::DiskFailed);
    log.disk(105, "a2", EventKind::DiskFailed);
    log.disk(300, "a3", EventKind::CableErrors);
    let forward = log.tickets_at(1000);
    log.events.reverse();
    assert_eq!(log.tickets_at(1000), forward);
}

/// A sequence recorded for real: node-a's events (its monitor's and its backend's, as `td
/// events --json` printed them) in `td demo`, while the README's repair steps ran: disk1's
/// folder moved away, then a blank folder made in its place and adopted.
#[test]
fn the_demos_recorded_disk_failure_and_replacement() {
    let config: ClusterConfig = toml::from_str(include_str!("fixtures/demo.cluster.toml")).unwrap();
    let events: Vec<Event> = include_str!("fixtures/demo_disk_replaced.node-a.jsonl")
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let settings = Settings::from_config(&config.repair);
    // As the node saw it at `now`: the events recorded by then (each with its final count).
    let at = |now: u64| {
        let seen: Vec<Event> = events.iter().filter(|e| e.time <= now).cloned().collect();
        tickets(
            &Input {
                cluster: &config,
                node: "node-a",
                events: &seen,
                blocked: &[],
                now,
            },
            &settings,
        )
    };
    let gone = events
        .iter()
        .find(|e| e.kind == EventKind::DiskMissing)
        .unwrap()
        .time;
    let adopted = events
        .iter()
        .find(|e| e.kind == EventKind::DiskReplaced)
        .unwrap()
        .time;
    assert!(
        at(gone + settings.grace - 1).is_empty(),
        "not within the grace period"
    );
    let open = at(gone + settings.grace);
    assert_eq!(open.len(), 1, "{open:#?}");
    assert_eq!(open[0].state, TicketState::Open);
    assert_eq!(
        parts(&open[0]),
        vec![(disk("node-a-disk1"), 70), (cable("node-a-disk1"), 30)]
    );
    let first = &open[0].suspects[0];
    assert_eq!(first.serial.as_deref(), Some("DEMO-A1"));
    let location = first.location.as_ref().unwrap();
    assert_eq!(
        (location.enclosure.as_deref(), location.slot),
        (Some("node-a-front"), Some(1))
    );
    // The blank disk adopted: verified at once, closed after the demo's minute.
    let verified = at(adopted + 1);
    assert_eq!(verified.len(), 1);
    assert_eq!(verified[0].state, TicketState::Verified);
    assert_eq!(verified[0].id, open[0].id);
    let closed = at(adopted + settings.settle);
    assert_eq!(closed.len(), 1);
    assert_eq!(closed[0].state, TicketState::Closed);
}
