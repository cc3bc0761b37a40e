//! Slow clients meet `td frontend` and `td backend` as processes: a request head sent half and
//! then nothing more is closed once the header timeout has passed (it used to be held open for
//! as long as the client liked), while other visitors are served.

mod common;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use common::{connect, get, DemoPlan};

/// Long past the header timeout: reaching it means the half-sent request was never closed.
const GIVE_UP: Duration = Duration::from_secs(60);

#[test]
fn a_half_sent_request_is_closed_by_a_frontend_and_by_a_node() {
    let plan = DemoPlan::prepare();
    let fe = plan.start("fe-1");
    let node = plan.start("node-a");
    let mut halves = Vec::new();
    for (role, addr) in [("fe-1", &fe.addr), ("node-a", &node.addr)] {
        let mut s = connect(addr, role).unwrap();
        s.write_all(b"GET /health HTTP/1.1\r\nhost: test\r\nx-half: ")
            .unwrap();
        halves.push((role, s, Instant::now()));
    }
    // Others are served meanwhile.
    assert_eq!(get(&fe.addr, "/health").0, 200);
    assert_eq!(get(&node.addr, "/health").0, 200);
    for (role, mut s, sent) in halves {
        s.set_read_timeout(Some(GIVE_UP)).unwrap();
        let mut byte = [0u8; 256];
        match s.read(&mut byte) {
            Ok(0) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
            Ok(n) => panic!(
                "{role} answered half a request: {:?}",
                String::from_utf8_lossy(&byte[..n])
            ),
            Err(e) => panic!("{role}: a half-sent request still open ({e})"),
        }
        let after = sent.elapsed();
        assert!(
            after >= floor::serve::HEADER_READ,
            "{role} closed it after {after:?}, before the header timeout"
        );
    }
}
