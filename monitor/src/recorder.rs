//! From findings to events, once per fault: a detector reports a fault under a key of its own
//! (`probe:disk-a1:hung`); while that fault is open, more sightings only raise the event's
//! count and add evidence. It is closed when the detector sees it end (and says so with a
//! `recovered` event) or when it has not been seen for [`QUIET`].

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use cluster::Event;

use floor::event_log::{EventLog, NewEvent};

/// A fault not seen for this long is over: the next sighting is a new event.
pub const QUIET: Duration = Duration::from_secs(600);

pub struct Recorder {
    log: EventLog,
    /// A `std::sync::Mutex`: held for a map lookup and a sled write, never across an await.
    open: Mutex<HashMap<String, Open>>,
}

struct Open {
    id: u64,
    last: Instant,
}

/// What a report did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reported {
    /// A new event.
    New(Box<Event>),
    /// The fault was already open: its event `id` counted one more sighting.
    Counted { id: u64, count: u64 },
}

impl Reported {
    pub fn id(&self) -> u64 {
        match self {
            Reported::New(e) => e.id,
            Reported::Counted { id, .. } => *id,
        }
    }
}

impl Recorder {
    pub fn new(log: EventLog) -> Recorder {
        Recorder {
            log,
            open: Mutex::new(HashMap::new()),
        }
    }

    pub fn log(&self) -> &EventLog {
        &self.log
    }

    /// Reports the fault `key`: a new event unless it is open.
    pub fn report(&self, key: &str, new: NewEvent) -> Reported {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(o) = open.get_mut(key).filter(|o| o.last.elapsed() < QUIET) {
            o.last = Instant::now();
            // Gone (the log was moved aside) or unwritable: recorded afresh below.
            if let Ok(Some(e)) = self.log.seen_again(o.id, new.evidence.clone()) {
                return Reported::Counted {
                    id: e.id,
                    count: e.count,
                };
            }
        }
        let event = self.log.record(new);
        open.insert(
            key.to_string(),
            Open {
                id: event.id,
                last: Instant::now(),
            },
        );
        Reported::New(Box::new(event))
    }

    pub fn is_open(&self, key: &str) -> bool {
        let open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        open.get(key).is_some_and(|o| o.last.elapsed() < QUIET)
    }

    /// Closes the fault `key` if it is open, recording `recovered()` as its end.
    pub fn clear(&self, key: &str, recovered: impl FnOnce() -> NewEvent) -> Option<Event> {
        let was_open = {
            let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
            open.remove(key)
        };
        was_open.map(|o| {
            self.log
                .record(recovered().evidence(format!("ends the fault of event {}", o.id)))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cluster::{Component, EventKind};

    fn io_error(line: &str) -> NewEvent {
        NewEvent::new(
            Component::Disk { disk: "a1".into() },
            EventKind::IoError,
            "the kernel reports I/O errors on disk a1",
        )
        .evidence(line)
    }

    #[test]
    fn a_spewing_fault_is_one_event_with_a_count() {
        let dir = tempfile::tempdir().unwrap();
        let rec = Recorder::new(EventLog::open(&dir.path().join("ev"), "n", "monitor").unwrap());
        let first = rec.report("kmsg:a1:io", io_error("sector 0"));
        for n in 1..1000 {
            rec.report("kmsg:a1:io", io_error(&format!("sector {n}")));
        }
        let page = rec.log().since(0, 100);
        assert_eq!(page.events.len(), 1);
        let e = &page.events[0];
        assert_eq!((e.id, e.count), (first.id(), 1000));
        assert_eq!(e.evidence.len(), floor::event_log::MAX_EVIDENCE);
        assert_eq!(e.evidence[1], "sector 1");

        // Another fault is its own event; a cleared one starts afresh.
        rec.report("kmsg:a2:io", io_error("other disk"));
        let end = rec
            .clear("kmsg:a1:io", || {
                NewEvent::new(
                    Component::Disk { disk: "a1".into() },
                    EventKind::Recovered,
                    "over",
                )
            })
            .unwrap();
        assert_eq!(end.kind, EventKind::Recovered);
        assert!(rec.clear("kmsg:a1:io", || unreachable!()).is_none());
        assert!(matches!(
            rec.report("kmsg:a1:io", io_error("again")),
            Reported::New(_)
        ));
        assert_eq!(rec.log().since(0, 100).events.len(), 4);
    }
}
