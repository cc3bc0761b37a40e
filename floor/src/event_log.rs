//! The node's event log: facts with their evidence, in a sled store on the node, numbered in
//! the order they were recorded.

use std::path::Path;

use cluster::{Component, Event, EventKind, EventPage, Location};

use crate::store::{self, Opened, StoreError};

/// Evidence kept per event: the first lines tell the story; the count tells the rest.
pub const MAX_EVIDENCE: usize = 10;

/// One process's log of events on its node. (sled lets one process hold a store, so the
/// backend and the monitor each keep their own and serve it at `/events`.)
pub struct EventLog {
    db: sled::Db,
    node: String,
    source: String,
}

/// An event before the log numbers and stamps it.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub component: Component,
    pub kind: EventKind,
    pub summary: String,
    pub location: Option<Location>,
    pub serial: Option<String>,
    pub evidence: Vec<String>,
}

impl NewEvent {
    pub fn new(component: Component, kind: EventKind, summary: impl Into<String>) -> NewEvent {
        NewEvent {
            component,
            kind,
            summary: summary.into(),
            location: None,
            serial: None,
            evidence: Vec::new(),
        }
    }

    pub fn evidence(mut self, line: impl Into<String>) -> NewEvent {
        self.evidence.push(line.into());
        self
    }

    pub fn at(mut self, location: Location, serial: Option<String>) -> NewEvent {
        self.location = Some(location);
        self.serial = serial;
        self
    }
}

impl EventLog {
    /// Opens the log at `path` for `source` (e.g. `backend`) on `node`. A damaged log is moved
    /// aside (the detectors find a lasting fault again) and that is the first new event.
    pub fn open(path: &Path, node: &str, source: &str) -> Result<EventLog, StoreError> {
        let (db, opened) = store::open(path)?;
        let log = EventLog {
            db,
            node: node.to_string(),
            source: source.to_string(),
        };
        if let Opened::MovedAside { to, why } = opened {
            log.record(
                NewEvent::new(
                    Component::Process {
                        name: source.to_string(),
                    },
                    EventKind::Started,
                    format!(
                        "the event log was damaged and moved aside to {}",
                        to.display()
                    ),
                )
                .evidence(why),
            );
        }
        Ok(log)
    }

    /// Records an event and returns it as stored. A log that cannot be written (its disk full)
    /// must not stop the work that noticed the fault: the event goes to stderr instead.
    pub fn record(&self, new: NewEvent) -> Event {
        let id = self.db.generate_id().map(|id| id + 1).unwrap_or(0);
        let now = cluster::unix_now();
        let event = Event {
            id,
            time: now,
            node: self.node.clone(),
            source: self.source.clone(),
            component: new.component,
            kind: new.kind,
            summary: new.summary,
            location: new.location,
            serial: new.serial,
            evidence: new.evidence,
            count: 1,
            last_seen: now,
        };
        if let Err(e) = self.write(&event) {
            tracing::error!(node = %self.node, source = %self.source, error = %e, event = %event.summary, "event log: cannot record an event");
        }
        event
    }

    /// Records `event` under its id (new, or replacing the one stored).
    fn write(&self, event: &Event) -> Result<(), sled::Error> {
        let value = serde_json::to_vec(event).expect("plain data");
        self.db.insert(event.id.to_be_bytes(), value).map(drop)
    }

    /// Counts one more sighting of event `id`, adding `evidence` while it has fewer than
    /// [`MAX_EVIDENCE`] lines. Returns the event as stored, or `None` if it is gone.
    pub fn seen_again(&self, id: u64, evidence: Vec<String>) -> Result<Option<Event>, sled::Error> {
        let Some(raw) = self.db.get(id.to_be_bytes())? else {
            return Ok(None);
        };
        let Ok(mut event) = serde_json::from_slice::<Event>(&raw) else {
            return Ok(None);
        };
        event.count += 1;
        event.last_seen = cluster::unix_now();
        for line in evidence {
            if event.evidence.len() >= MAX_EVIDENCE {
                break;
            }
            if !event.evidence.contains(&line) {
                event.evidence.push(line);
            }
        }
        self.write(&event)?;
        Ok(Some(event))
    }

    /// Keeps a small piece of the monitor's own state (where it stopped reading the kernel
    /// log) beside the events.
    pub fn remember<T: serde::Serialize>(&self, key: &str, value: &T) {
        let bytes = serde_json::to_vec(value).expect("plain data");
        if let Err(e) = self
            .db
            .open_tree("state")
            .and_then(|t| t.insert(key, bytes))
        {
            tracing::error!(node = %self.node, key, error = %e, "event log: cannot keep its state");
        }
    }

    pub fn recall<T: serde::de::DeserializeOwned>(&self, key: &str) -> Option<T> {
        let raw = self.db.open_tree("state").ok()?.get(key).ok()??;
        serde_json::from_slice(&raw).ok()
    }

    /// Whether the log can be written now (its disk full or failing makes it false).
    pub fn writable(&self) -> Result<(), String> {
        self.db
            .open_tree("write-check")
            .and_then(|t| t.insert("last", &cluster::unix_now().to_be_bytes()))
            .and_then(|_| self.db.flush())
            .map(drop)
            .map_err(|e| e.to_string())
    }

    /// Up to `limit` events with ids above `since`, oldest first.
    pub fn since(&self, since: u64, limit: usize) -> EventPage {
        self.since_time(since, 0, limit)
    }

    /// Up to `limit` events with ids above `since` last seen at or after `from` (seconds since
    /// the Unix epoch), oldest first.
    pub fn since_time(&self, since: u64, from: u64, limit: usize) -> EventPage {
        let events: Vec<Event> = self
            .db
            .range((since.saturating_add(1)).to_be_bytes()..)
            .values()
            .filter_map(|v| {
                v.ok()
                    .and_then(|v| serde_json::from_slice::<Event>(&v).ok())
            })
            .filter(|e| e.last_seen.max(e.time) >= from)
            .take(limit)
            .collect();
        let next = events.last().map_or(since, |e| e.id);
        EventPage {
            node: self.node.clone(),
            events,
            next,
        }
    }

    /// The last `limit` events, oldest first.
    pub fn recent(&self, limit: usize) -> EventPage {
        let mut events: Vec<Event> = self
            .db
            .iter()
            .values()
            .rev()
            .filter_map(|v| v.ok().and_then(|v| serde_json::from_slice(&v).ok()))
            .take(limit)
            .collect();
        events.reverse();
        let next = events.last().map_or(0, |e| e.id);
        EventPage {
            node: self.node.clone(),
            events,
            next,
        }
    }

    /// Makes what was recorded durable (sled also does this on its own every half second).
    pub fn flush(&self) {
        let _ = self.db.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn disk_failed(disk: &str) -> NewEvent {
        NewEvent::new(
            Component::Disk { disk: disk.into() },
            EventKind::DiskFailed,
            format!("disk {disk} failed"),
        )
        .evidence("Input/output error (os error 5)")
    }

    #[test]
    fn events_are_numbered_in_order_and_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events");
        let first = {
            let log = EventLog::open(&path, "node-a", "backend").unwrap();
            let a = log.record(disk_failed("a1"));
            let b = log.record(disk_failed("a2"));
            assert!(b.id > a.id);
            log.flush();
            a
        };
        let log = EventLog::open(&path, "node-a", "backend").unwrap();
        let c = log.record(disk_failed("a3"));
        let all = log.since(0, 100);
        let disks: Vec<_> = all
            .events
            .iter()
            .map(|e| match &e.component {
                Component::Disk { disk } => disk.as_str(),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(disks, ["a1", "a2", "a3"]);
        assert_eq!(all.events[0], first);
        assert_eq!(all.next, c.id);
        let after = log.since(first.id, 1);
        assert_eq!(after.events.len(), 1);
        assert_eq!(
            after.events[0].evidence,
            ["Input/output error (os error 5)"]
        );
        assert_eq!(log.recent(2).events.last().unwrap().id, c.id);
    }
}
