//! The failover heartbeat on the wire, authenticated: one UDP datagram of ASCII,
//!
//! ```text
//! tdhb1 SENDER COUNTER HOLDING EPOCH HEALTHY TAG
//! tdhb1 fe-2 1718000000123456789 1 7 1 3f9a…(64 hex digits)
//! ```
//!
//! `HOLDING` and `HEALTHY` are `0` or `1`; `TAG` is the cluster secret's HMAC-SHA256
//! ([`cluster::auth::Secret::mac`], as the signed requests use) over a label, the sender, the
//! frontend it is meant for, the counter, holding, epoch and healthy. A [`Link`] seals this
//! frontend's beats and opens the peer's; it drops a datagram that is too large or not of this
//! form, that names another sender or comes from another address than the configured peer's,
//! whose tag is wrong, whose counter is not above the last one accepted (a replay), whose
//! counter is more than [`MAX_SKEW_SECS`] from this frontend's clock, or that claims an epoch
//! above [`MAX_EPOCH`]. [`Drops`] counts them by [`Dropped`] reason for `/failover`.
//!
//! Without this, one forged datagram "I hold it under a higher epoch" made the holder release.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};

use cluster::auth::{Secret, MAX_SKEW_SECS};

use crate::failover::{Beat, MAX_EPOCH};

/// The largest datagram opened. A genuine heartbeat is under 200 bytes (a frontend's name is
/// at most 64 plain characters); anything larger is dropped unread.
pub const MAX_PACKET: usize = 256;
/// First field: the format's version, so a change is dropped as malformed, not as a bad tag.
const MAGIC: &str = "tdhb1";
/// First part of the MAC, so a heartbeat's tag can never pass for a session's or a request's.
const LABEL: &str = "td-heartbeat-1";
const NANOS: u64 = 1_000_000_000;

/// Why a datagram was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Dropped {
    #[error("larger than a heartbeat can be")]
    Oversized,
    #[error("not a heartbeat of this version (truncated, garbled, or another format)")]
    Malformed,
    #[error("not from the configured peer (another name or another address)")]
    WrongSender,
    #[error("its tag does not match (not made with the cluster secret, or changed on the way)")]
    BadMac,
    #[error("its counter is not above the last one accepted (a replay)")]
    Replayed,
    #[error("its counter is more than 5 minutes from this frontend's clock")]
    Stale,
    #[error("authenticated, but it claims an impossible epoch")]
    ImpossibleEpoch,
}

impl Dropped {
    pub const ALL: [Dropped; 7] = [
        Dropped::Oversized,
        Dropped::Malformed,
        Dropped::WrongSender,
        Dropped::BadMac,
        Dropped::Replayed,
        Dropped::Stale,
        Dropped::ImpossibleEpoch,
    ];

    /// Its name in `/failover` and in log lines.
    pub fn key(self) -> &'static str {
        match self {
            Dropped::Oversized => "oversized",
            Dropped::Malformed => "malformed",
            Dropped::WrongSender => "wrong_sender",
            Dropped::BadMac => "bad_mac",
            Dropped::Replayed => "replayed",
            Dropped::Stale => "stale",
            Dropped::ImpossibleEpoch => "impossible_epoch",
        }
    }
}

/// Dropped datagrams by reason, since the frontend started. Atomics, because the holder
/// counts while `/failover` reads, and a count needs no lock.
#[derive(Debug, Default)]
pub struct Drops([AtomicU64; Dropped::ALL.len()]);

impl Drops {
    pub fn count(&self, why: Dropped) {
        self.0[why as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Every reason with its count, zeros included, so a reader need not know which exist.
    pub fn snapshot(&self) -> BTreeMap<&'static str, u64> {
        Dropped::ALL
            .iter()
            .map(|&why| (why.key(), self.0[why as usize].load(Ordering::Relaxed)))
            .collect()
    }
}

/// Nanoseconds since the Unix epoch by this machine's clock (0 before 1970).
pub fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// The heartbeats between this frontend and its peer, both ways.
#[derive(Debug)]
pub struct Link {
    secret: Secret,
    me: String,
    peer: String,
    /// The peer's index in the machine (`Beat::from`): not sent, known from its name.
    peer_index: u8,
    /// The peer's own address; only its IP is compared, the port being the peer's business.
    peer_addr: SocketAddr,
    /// The counter of the last beat sealed.
    sent: u64,
    /// The counter of the last beat accepted from the peer.
    accepted: u64,
}

impl Link {
    pub fn new(
        secret: Secret,
        me: &str,
        peer: &str,
        peer_index: u8,
        peer_addr: SocketAddr,
    ) -> Link {
        Link {
            secret,
            me: me.to_string(),
            peer: peer.to_string(),
            peer_index,
            peer_addr,
            sent: 0,
            accepted: 0,
        }
    }

    pub fn peer(&self) -> &str {
        &self.peer
    }

    pub fn peer_addr(&self) -> SocketAddr {
        self.peer_addr
    }

    /// The datagram for `beat`, at `now_ns` (see [`now_ns`]).
    pub fn seal(&mut self, beat: &Beat, now_ns: u64) -> Vec<u8> {
        // The counter is the clock in nanoseconds, or one more than the last when the clock
        // has not moved on (or went back): strictly increasing within this process, and after a
        // restart it starts at the time of the restart, above everything the earlier life sent
        // (ten beats a second never catch up with a clock counting 10^9 a second), so the peer
        // accepts a restarted frontend at once without a counter kept on disk. A clock set back
        // across a restart by more than the peer's window makes the peer drop it as a replay or
        // as stale until it catches up; signed requests already need the clocks within that.
        self.sent = now_ns.max(self.sent.saturating_add(1));
        let fields = Fields {
            sender: &self.me,
            counter: self.sent,
            holding: beat.holding,
            epoch: beat.epoch,
            healthy: beat.healthy,
        };
        let text = fields.text();
        let tag = self.secret.mac(&[LABEL, &self.peer, &text]);
        format!("{MAGIC} {text} {tag}").into_bytes()
    }

    /// The peer's beat in `packet`, received from `from` at `now_ns`, or why it was dropped.
    /// Only an accepted beat moves the replay counter.
    pub fn open(&mut self, packet: &[u8], from: SocketAddr, now_ns: u64) -> Result<Beat, Dropped> {
        if packet.len() > MAX_PACKET {
            return Err(Dropped::Oversized);
        }
        let text = std::str::from_utf8(packet).map_err(|_| Dropped::Malformed)?;
        let (fields, tag) = Fields::parse(text).ok_or(Dropped::Malformed)?;
        if fields.sender != self.peer || from.ip() != self.peer_addr.ip() {
            return Err(Dropped::WrongSender);
        }
        // The tag covers the whole heartbeat as read here (rendered again from the parsed
        // values) and this frontend's name, so a beat the peer meant for another frontend
        // does not pass here.
        if !self
            .secret
            .check_mac(&[LABEL, &self.me, &fields.text()], tag)
        {
            return Err(Dropped::BadMac);
        }
        if fields.counter <= self.accepted {
            return Err(Dropped::Replayed);
        }
        // The counter is also a time: one far from ours is a replay of a beat captured before
        // this frontend restarted (and forgot its last counter), or the peer's clock is wrong.
        if fields.counter.abs_diff(now_ns) > MAX_SKEW_SECS * NANOS {
            return Err(Dropped::Stale);
        }
        if fields.epoch > MAX_EPOCH {
            return Err(Dropped::ImpossibleEpoch);
        }
        self.accepted = fields.counter;
        Ok(Beat {
            from: self.peer_index,
            holding: fields.holding,
            epoch: fields.epoch,
            healthy: fields.healthy,
        })
    }
}

/// A heartbeat's fields but the tag.
struct Fields<'a> {
    sender: &'a str,
    counter: u64,
    holding: bool,
    epoch: u64,
    healthy: bool,
}

impl<'a> Fields<'a> {
    /// The fields as sent (and as MACed): one text for both, so they cannot disagree.
    fn text(&self) -> String {
        format!(
            "{} {} {} {} {}",
            self.sender,
            self.counter,
            u8::from(self.holding),
            self.epoch,
            u8::from(self.healthy)
        )
    }

    fn parse(text: &'a str) -> Option<(Fields<'a>, &'a str)> {
        let mut it = text.split(' ');
        let magic = it.next()?;
        let sender = it.next()?;
        let counter = it.next()?;
        let holding = it.next()?;
        let epoch = it.next()?;
        let healthy = it.next()?;
        let tag = it.next()?;
        if magic != MAGIC || it.next().is_some() || !cluster::upload::plain_name(sender) {
            return None;
        }
        let flag = |f: &str| match f {
            "0" => Some(false),
            "1" => Some(true),
            _ => None,
        };
        let digits = |f: &str| !f.is_empty() && f.bytes().all(|b| b.is_ascii_digit());
        if !digits(counter) || !digits(epoch) || tag.len() != 64 {
            return None;
        }
        let fields = Fields {
            sender,
            counter: counter.parse().ok()?,
            holding: flag(holding)?,
            epoch: epoch.parse().ok()?,
            healthy: flag(healthy)?,
        };
        Some((fields, tag))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";
    /// Some moment, in nanoseconds since the epoch.
    const T: u64 = 1_718_000_000 * NANOS;

    fn addr(a: &str) -> SocketAddr {
        a.parse().unwrap()
    }

    /// fe-1 (index 0) at 10.0.0.11 and fe-2 (index 1) at 10.0.0.12, as each sees the other.
    fn pair() -> (Link, Link) {
        let secret = Secret::from_bytes(SECRET);
        let fe1 = Link::new(secret.clone(), "fe-1", "fe-2", 1, addr("10.0.0.12:8080"));
        let fe2 = Link::new(secret, "fe-2", "fe-1", 0, addr("10.0.0.11:8080"));
        (fe1, fe2)
    }

    const FROM_FE1: &str = "10.0.0.11:8080";

    fn beat(holding: bool, epoch: u64) -> Beat {
        Beat {
            from: 0,
            holding,
            epoch,
            healthy: true,
        }
    }

    #[test]
    fn a_sealed_beat_opens_at_the_peer_as_it_was_sent() {
        let (mut fe1, mut fe2) = pair();
        let packet = fe1.seal(&beat(true, 7), T);
        assert!(packet.len() <= MAX_PACKET);
        assert_eq!(fe2.open(&packet, addr(FROM_FE1), T), Ok(beat(true, 7)));
        // fe-2's beats carry index 1, whatever fe-2 claims to be: its name decides.
        let back = fe2.seal(&beat(false, 7), T + 1);
        let got = fe1.open(&back, addr("10.0.0.12:8080"), T + 1).unwrap();
        assert_eq!(got.from, 1);
        assert!(!got.holding && got.epoch == 7 && got.healthy);
    }

    #[test]
    fn a_forged_tag_is_dropped_and_changes_nothing() {
        let (mut fe1, mut fe2) = pair();
        let mut stranger = Link::new(
            Secret::from_bytes(b"a guess at the secret, 32 bytes long"),
            "fe-1",
            "fe-2",
            1,
            addr("10.0.0.12:8080"),
        );
        // The attack: "fe-1 holds it under a higher epoch", and an epoch that would wrap.
        for epoch in [8, u64::MAX] {
            let forged = stranger.seal(&beat(true, epoch), T + 10);
            assert_eq!(fe2.open(&forged, addr(FROM_FE1), T), Err(Dropped::BadMac));
        }
        // The same text with one field changed, the genuine tag kept.
        let genuine = String::from_utf8(fe1.seal(&beat(false, 7), T)).unwrap();
        let changed = genuine.replacen(" 0 7 1 ", " 1 7 1 ", 1);
        assert_ne!(changed, genuine);
        assert_eq!(
            fe2.open(changed.as_bytes(), addr(FROM_FE1), T),
            Err(Dropped::BadMac)
        );
        // Nothing was accepted, so the genuine beat still opens.
        assert!(fe2.open(genuine.as_bytes(), addr(FROM_FE1), T).is_ok());
    }

    #[test]
    fn a_beat_from_another_sender_or_address_is_dropped() {
        let (mut fe1, mut fe2) = pair();
        let genuine = fe1.seal(&beat(true, 1), T);
        assert_eq!(
            fe2.open(&genuine, addr("10.0.0.66:8080"), T),
            Err(Dropped::WrongSender),
            "another address"
        );
        // fe-2's own beat sent back to it (a reflection) names fe-2.
        let own = fe2.seal(&beat(true, 1), T);
        assert_eq!(fe2.open(&own, addr(FROM_FE1), T), Err(Dropped::WrongSender));
        // A third frontend of a cluster sharing the secret: its name is not the peer's.
        let mut fe3 = Link::new(
            Secret::from_bytes(SECRET),
            "fe-3",
            "fe-2",
            1,
            addr("10.0.0.12:8080"),
        );
        let other = fe3.seal(&beat(true, 1), T);
        assert_eq!(
            fe2.open(&other, addr(FROM_FE1), T),
            Err(Dropped::WrongSender)
        );
        // fe-1's beat meant for another frontend than fe-2 does not pass at fe-2.
        let mut elsewhere = Link::new(
            Secret::from_bytes(SECRET),
            "fe-1",
            "fe-9",
            1,
            addr("10.0.0.19:8080"),
        );
        let misdirected = elsewhere.seal(&beat(true, 1), T);
        assert_eq!(
            fe2.open(&misdirected, addr(FROM_FE1), T),
            Err(Dropped::BadMac)
        );
        assert!(
            fe2.open(&genuine, addr("10.0.0.11:40000"), T).is_ok(),
            "any port"
        );
    }

    #[test]
    fn a_replayed_beat_is_dropped_and_a_restarted_peer_is_heard_at_once() {
        let (mut fe1, mut fe2) = pair();
        let first = fe1.seal(&beat(true, 1), T);
        let second = fe1.seal(&beat(false, 1), T); // the clock did not move: counter + 1
        assert_eq!(fe2.open(&first, addr(FROM_FE1), T), Ok(beat(true, 1)));
        assert_eq!(fe2.open(&first, addr(FROM_FE1), T), Err(Dropped::Replayed));
        assert_eq!(fe2.open(&second, addr(FROM_FE1), T), Ok(beat(false, 1)));
        // An older beat arriving after a newer one is a replay too.
        assert_eq!(fe2.open(&first, addr(FROM_FE1), T), Err(Dropped::Replayed));
        // fe-1 restarts a second later, its counter forgotten: it starts from the clock.
        let (mut reborn, _) = pair();
        let after = reborn.seal(&beat(false, 0), T + NANOS);
        assert_eq!(
            fe2.open(&after, addr(FROM_FE1), T + NANOS),
            Ok(beat(false, 0))
        );
        assert_eq!(
            fe2.open(&second, addr(FROM_FE1), T + NANOS),
            Err(Dropped::Replayed),
            "the earlier life's beats stay refused"
        );
    }

    #[test]
    fn a_beat_captured_before_the_receiver_restarted_is_stale() {
        let (mut fe1, _) = pair();
        let captured = fe1.seal(&beat(true, 3), T);
        // fe-2 restarted and remembers no counter; ten minutes after the capture:
        let (_, mut fe2) = pair();
        let later = T + 2 * MAX_SKEW_SECS * NANOS;
        assert_eq!(
            fe2.open(&captured, addr(FROM_FE1), later),
            Err(Dropped::Stale)
        );
        // and a peer whose clock runs far ahead is refused as well, rather than accepted
        // and then locking its own later beats out.
        let mut ahead = pair().0;
        let early = ahead.seal(&beat(true, 3), later);
        assert_eq!(fe2.open(&early, addr(FROM_FE1), T), Err(Dropped::Stale));
    }

    #[test]
    fn an_authenticated_impossible_epoch_is_dropped() {
        let (mut fe1, mut fe2) = pair();
        for epoch in [u64::MAX, MAX_EPOCH + 1] {
            let packet = fe1.seal(&beat(true, epoch), T);
            assert_eq!(
                fe2.open(&packet, addr(FROM_FE1), T),
                Err(Dropped::ImpossibleEpoch)
            );
        }
        let top = fe1.seal(&beat(true, MAX_EPOCH), T);
        assert_eq!(fe2.open(&top, addr(FROM_FE1), T), Ok(beat(true, MAX_EPOCH)));
    }

    #[test]
    fn truncated_oversized_and_other_formats_are_dropped() {
        let (mut fe1, mut fe2) = pair();
        let genuine = fe1.seal(&beat(true, 1), T);
        for n in 0..genuine.len() {
            assert_eq!(
                fe2.open(&genuine[..n], addr(FROM_FE1), T),
                Err(Dropped::Malformed),
                "truncated to {n} bytes"
            );
        }
        let mut padded = genuine.clone();
        padded.resize(MAX_PACKET + 1, b' ');
        assert_eq!(
            fe2.open(&padded, addr(FROM_FE1), T),
            Err(Dropped::Oversized)
        );
        let mut trailing = genuine.clone();
        trailing.extend_from_slice(b" extra");
        assert_eq!(
            fe2.open(&trailing, addr(FROM_FE1), T),
            Err(Dropped::Malformed)
        );
        let text = String::from_utf8(genuine.clone()).unwrap();
        for bad in [
            // The format the attacker used, when heartbeats were plain JSON.
            r#"{"from":0,"holding":true,"epoch":18446744073709551615,"healthy":true}"#.to_string(),
            text.replacen("tdhb1", "tdhb2", 1),
            text.replacen(" 1 1 1 ", " 2 1 1 ", 1),
            text.replacen(" 1 1 1 ", " 1 -1 1 ", 1),
            text.replacen(" 1 1 1 ", " 1 18446744073709551616 1 ", 1),
            text.replacen(" 1 1 1 ", " 1 +1 1 ", 1),
            text.replacen("fe-1", "fe 1", 1),
        ] {
            assert_ne!(bad, text);
            assert_eq!(
                fe2.open(bad.as_bytes(), addr(FROM_FE1), T),
                Err(Dropped::Malformed),
                "{bad}"
            );
        }
        assert_eq!(
            fe2.open(&[0xff, 0xfe, b' '], addr(FROM_FE1), T),
            Err(Dropped::Malformed)
        );
        assert!(
            fe2.open(&genuine, addr(FROM_FE1), T).is_ok(),
            "nothing was accepted before"
        );
    }

    #[test]
    fn drops_are_counted_by_reason() {
        let drops = Drops::default();
        drops.count(Dropped::BadMac);
        drops.count(Dropped::BadMac);
        drops.count(Dropped::Replayed);
        let counts = drops.snapshot();
        assert_eq!(counts.len(), Dropped::ALL.len());
        assert_eq!(counts["bad_mac"], 2);
        assert_eq!(counts["replayed"], 1);
        assert_eq!(counts["stale"], 0);
    }
}
