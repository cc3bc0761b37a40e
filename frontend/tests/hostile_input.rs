//! What a stranger can send to the frontend's parsers that face the network, as random input
//! (property tests, run in every CI build): failover heartbeats (UDP, any bytes from anyone)
//! and session cookies. Each is refused, never a panic and never accepted, and a genuine one
//! changed in any one byte is refused.

use std::net::SocketAddr;

use cluster::auth::Secret;
use frontend::failover::Beat;
use frontend::heartbeat::Link;
use frontend::portal::session;
use proptest::prelude::*;

const NOW_NS: u64 = 1_800_000_000 * 1_000_000_000;

fn links() -> (Link, Link, SocketAddr) {
    let secret = Secret::from_bytes(b"a cluster secret of the test");
    let (a, b): (SocketAddr, SocketAddr) = (
        "10.0.0.11:8080".parse().unwrap(),
        "10.0.0.12:8080".parse().unwrap(),
    );
    (
        Link::new(secret.clone(), "fe-1", "fe-2", 1, b),
        Link::new(secret, "fe-2", "fe-1", 0, a),
        b,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn any_datagram_is_dropped_not_a_panic(
        bytes in proptest::collection::vec(any::<u8>(), 0..600),
        text in "tdhb1 fe-2 [0-9]{1,22} [01] [0-9]{1,22} [01] [0-9a-f]{0,70}",
    ) {
        let (mut fe1, _, from) = links();
        prop_assert!(fe1.open(&bytes, from, NOW_NS).is_err());
        prop_assert!(fe1.open(text.as_bytes(), from, NOW_NS).is_err(), "{text}");
    }

    #[test]
    fn a_genuine_heartbeat_changed_in_one_byte_is_dropped(at in 0usize..300, to in any::<u8>()) {
        let (mut fe1, mut fe2, from) = links();
        let beat = Beat { from: 1, holding: true, epoch: 7, healthy: true };
        let good = fe2.seal(&beat, NOW_NS);
        let mut bad = good.clone();
        let at = at % bad.len();
        bad[at] = to;
        // The tag is hex, read in either case: the same bytes, the same heartbeat.
        let tag_from = good.iter().rposition(|&b| b == b' ').unwrap();
        let same_tag = at > tag_from && bad.eq_ignore_ascii_case(&good);
        if bad != good && !same_tag {
            prop_assert!(fe1.open(&bad, from, NOW_NS).is_err());
        }
        prop_assert!(fe1.open(&good, from, NOW_NS).is_ok());
        // And once accepted, the same datagram again is a replay.
        prop_assert!(fe1.open(&good, from, NOW_NS).is_err());
    }

    #[test]
    fn any_cookie_header_is_no_session(header in "\\PC{0,300}", value in "[a-z0-9.]{0,200}") {
        let secret = Secret::from_bytes(b"a cluster secret of the test");
        let now = 1_800_000_000;
        prop_assert!(session::from_cookies(&secret, Some(&header), now).is_none());
        let forged = format!("{}={value}", session::COOKIE);
        prop_assert!(session::from_cookies(&secret, Some(&forged), now).is_none());
    }

    #[test]
    fn a_genuine_session_cookie_changed_in_one_character_is_no_session(at in 0usize..200, by in "[ -~]") {
        let secret = Secret::from_bytes(b"a cluster secret of the test");
        let now = 1_800_000_000;
        let value = session::start(&secret, "ada", 3, "0123456789abcdef", now);
        let cookie = |v: &str| format!("theme=dark; {}={v}", session::COOKIE);
        prop_assert!(session::from_cookies(&secret, Some(&cookie(&value)), now).is_some());
        let at = at % value.len();
        let mut bad = value.clone();
        bad.replace_range(at..at + 1, &by);
        // The tag is hex, read in either case: the same bytes, the same session.
        let same_tag = at > value.rfind('.').unwrap() && bad.eq_ignore_ascii_case(&value);
        if bad != value && !same_tag {
            prop_assert!(session::from_cookies(&secret, Some(&cookie(&bad)), now).is_none(), "{bad}");
        }
    }
}
