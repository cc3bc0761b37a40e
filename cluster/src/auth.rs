//! How the cluster's processes prove a request comes from inside the cluster, and that it is
//! this request, sent once, to this node: an HMAC-SHA256 keyed with the cluster's shared secret
//! over the method, the path with its query, the portal account the request acts for, the node
//! it is meant for, a time stamp, a nonce, the BLAKE3 hash of the body and the headers that
//! carry meaning (`Upload-Offset`, `Content-Type`), all in one header. A signature is good for five
//! minutes either side of the receiver's clock, and only once: the receiver keeps the nonces
//! it has seen for that long ([`NonceBook`]) and refuses one seen before. So a captured request
//! sent again, sent with another body or offset, or sent to another node is refused.
//!
//! The same secret signs the portal's session cookies and CSRF tokens ([`Secret::mac`]), so both
//! frontends accept a session the other one started.

use std::path::{Path, PathBuf};

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The header carrying `TIME.SIGNATURE`.
pub const AUTH_HEADER: &str = "x-td-auth";
/// The portal account a request acts for (signed with it); empty for the cluster itself.
pub const USER_HEADER: &str = "x-td-user";
/// How far a signature's time may be from the receiver's.
pub const MAX_SKEW_SECS: u64 = 300;
/// A body larger than this is hashed off the async threads (by the client that signs it and
/// the node that checks it): hashing takes a third of a millisecond per MiB, a visitor's
/// request waiting behind it on the same thread would feel it.
pub const HASH_APART: usize = 64 << 10;
/// Shortest secret accepted, in bytes of the file (hex or not).
const MIN_SECRET: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error(
        "cannot read the cluster secret {path}: {source} (make one with `td secret --config \
         CLUSTER.toml` on the first host; on each other host run `td secret join --config \
         CLUSTER.toml` with a code from `td secret invite` on a host that has it)"
    )]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the cluster secret {path} is too short ({len} bytes; at least {MIN_SECRET})")]
    Short { path: PathBuf, len: usize },
    #[error("cannot write the cluster secret {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot make a cluster secret: {0}")]
    Random(std::io::Error),
    #[error(
        "{path} holds another cluster secret than the one received; it was kept (move it away \
         first if this host now belongs to this cluster)"
    )]
    Other { path: PathBuf },
}

/// Why a signed request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("not signed with the cluster secret (no x-td-auth header)")]
    Missing,
    #[error("the x-td-auth header is malformed")]
    Malformed,
    #[error("the signature's time is more than 5 minutes from this node's clock")]
    Stale,
    #[error(
        "the signature does not match (another cluster's secret, the request was changed, or it \
         was meant for another node)"
    )]
    Wrong,
    #[error("this signed request was already received once (a replay)")]
    Replayed,
    #[error("too many signed requests within five minutes; try again shortly")]
    TooMany,
}

/// What a signed request is made of, as the sender sends it and the receiver sees it.
#[derive(Debug, Clone, Copy)]
pub struct SignedParts<'a> {
    pub method: &'a str,
    pub path_and_query: &'a str,
    /// The portal account the request acts for; "" for the cluster itself.
    pub user: &'a str,
    /// The node the request is meant for.
    pub target: &'a str,
    pub body: &'a [u8],
    /// The `Upload-Offset` header, "" when there is none.
    pub upload_offset: &'a str,
    /// The `Content-Type` header, "" when there is none.
    pub content_type: &'a str,
}

/// The cluster's shared secret.
#[derive(Clone)]
pub struct Secret(Vec<u8>);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(…)")
    }
}

impl Secret {
    pub fn from_bytes(bytes: &[u8]) -> Secret {
        Secret(bytes.to_vec())
    }

    /// The secret itself, as its file holds it (trimmed): for writing that file, and for
    /// handing it to a new host sealed ([`crate::join`]).
    pub fn bytes(&self) -> &[u8] {
        &self.0
    }

    pub fn load(path: &Path) -> Result<Secret, SecretError> {
        let bytes = std::fs::read(path).map_err(|source| SecretError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let trimmed = bytes.trim_ascii();
        if trimmed.len() < MIN_SECRET {
            return Err(SecretError::Short {
                path: path.to_path_buf(),
                len: trimmed.len(),
            });
        }
        Ok(Secret(trimmed.to_vec()))
    }

    /// A new random secret (32 bytes from the kernel, as hex), and the text of its file.
    pub fn generate() -> std::io::Result<(Secret, String)> {
        let text = random_hex(32)?;
        Ok((Secret(text.clone().into_bytes()), format!("{text}\n")))
    }

    /// HMAC-SHA256 of the parts (joined unambiguously), as hex.
    pub fn mac(&self, parts: &[&str]) -> String {
        hex(&self.mac_bytes(parts))
    }

    /// [`Secret::mac`] as bytes.
    pub(crate) fn mac_bytes(&self, parts: &[&str]) -> Vec<u8> {
        self.hmac(parts).finalize().into_bytes().to_vec()
    }

    fn hmac(&self, parts: &[&str]) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).expect("any key length");
        for p in parts {
            mac.update(&(p.len() as u64).to_be_bytes());
            mac.update(p.as_bytes());
        }
        mac
    }

    /// Checks `tag` (hex) against the parts, in constant time.
    pub fn check_mac(&self, parts: &[&str], tag: &str) -> bool {
        match unhex(tag) {
            Some(bytes) => self.hmac(parts).verify_slice(&bytes).is_ok(),
            None => false,
        }
    }

    /// The value of [`AUTH_HEADER`] for a request: `3.TIME.NONCE.TAG`.
    pub fn sign_request(&self, parts: &SignedParts<'_>, now: u64) -> String {
        self.sign_request_summed(parts, &body_sum(parts.body), now)
    }

    /// As [`Secret::sign_request`], with the body's [`body_sum`] worked out already (off the
    /// async threads, for a large body): `parts.body` is not read.
    pub fn sign_request_summed(&self, parts: &SignedParts<'_>, body_sum: &str, now: u64) -> String {
        let time = now.to_string();
        let nonce = next_nonce();
        let tag = self.mac(&parts.mac_parts(&time, &nonce, body_sum));
        format!("{SIGNATURE_VERSION}.{time}.{nonce}.{tag}")
    }

    /// Checks a request's [`AUTH_HEADER`] against what arrived. On success, the nonce and its
    /// time, for [`NonceBook::first_use`]: the caller must refuse a nonce seen before.
    pub fn verify_request(
        &self,
        header: Option<&str>,
        parts: &SignedParts<'_>,
        now: u64,
    ) -> Result<Nonce, Refused> {
        self.verify_request_summed(header, parts, &body_sum(parts.body), now)
    }

    /// As [`Secret::verify_request`], with the body's [`body_sum`] worked out already:
    /// `parts.body` is not read.
    pub fn verify_request_summed(
        &self,
        header: Option<&str>,
        parts: &SignedParts<'_>,
        body_sum: &str,
        now: u64,
    ) -> Result<Nonce, Refused> {
        let header = header.ok_or(Refused::Missing)?;
        let mut fields = header.split('.');
        let (Some(version), Some(time), Some(nonce), Some(tag), None) = (
            fields.next(),
            fields.next(),
            fields.next(),
            fields.next(),
            fields.next(),
        ) else {
            return Err(Refused::Malformed);
        };
        if version != SIGNATURE_VERSION {
            return Err(Refused::Malformed);
        }
        let t: u64 = time.parse().map_err(|_| Refused::Malformed)?;
        if nonce.is_empty() || nonce.len() > 64 || !nonce.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(Refused::Malformed);
        }
        if t.abs_diff(now) > MAX_SKEW_SECS {
            return Err(Refused::Stale);
        }
        if self.check_mac(&parts.mac_parts(time, nonce, body_sum), tag) {
            Ok(Nonce {
                nonce: nonce.to_string(),
                time: t,
            })
        } else {
            Err(Refused::Wrong)
        }
    }
}

/// The signature's format, first in the header, so a change of what is signed is refused
/// plainly rather than as a wrong signature. 3: the body's BLAKE3 (2: its SHA-256).
pub const SIGNATURE_VERSION: &str = "3";

impl SignedParts<'_> {
    fn mac_parts<'a>(&'a self, time: &'a str, nonce: &'a str, body: &'a str) -> [&'a str; 10] {
        [
            "td-internal-3",
            self.method,
            self.path_and_query,
            self.user,
            self.target,
            time,
            nonce,
            body,
            self.upload_offset,
            self.content_type,
        ]
    }
}

/// The hash of a request's body a signature covers, as hex: BLAKE3, not SHA-256, because every
/// byte a node sends to another (an upload's chunks, a re-mirror's files) is hashed by both
/// ends, and BLAKE3 takes half SHA-256's time even where the CPU computes SHA-256 itself (1 GiB:
/// 0.37 s against 0.72 s on the reference machine), a fifth where it does not. Replicas' own
/// sums stay SHA-256 (`sha256sum` checks them).
pub fn body_sum(body: &[u8]) -> String {
    hex(blake3::hash(body).as_bytes())
}

/// [`body_sum`] worked out piece by piece, as a body arrives: the sum is ready when its last
/// byte is, instead of a pass over the whole body after it.
#[derive(Default)]
pub struct BodySummer(blake3::Hasher);

impl BodySummer {
    pub fn update(&mut self, piece: &[u8]) {
        self.0.update(piece);
    }

    pub fn finish(&self) -> String {
        hex(self.0.finalize().as_bytes())
    }
}

/// A nonce unique to this process and call: a random prefix drawn once per process, and a
/// counter. (It needs to be unique, not secret: the signature covers it.)
fn next_nonce() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::OnceLock;
    static PREFIX: OnceLock<String> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let prefix = PREFIX.get_or_init(|| {
        // Without the kernel's randomness, the time and pid still make a restarted process's
        // nonces differ from its earlier life's.
        random_hex(12).unwrap_or_else(|_| {
            let t = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos());
            format!("{t:x}{:x}", std::process::id())
        })
    });
    format!("{prefix}{:x}", COUNTER.fetch_add(1, Ordering::Relaxed))
}

/// A verified request's nonce, and the time it was signed at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Nonce {
    pub nonce: String,
    pub time: u64,
}

/// The nonces a node has accepted within the signatures' window, so that each is accepted once.
/// Only verified requests reach it (a stranger cannot make a valid signature), so it holds at
/// most what the cluster itself sent in ten minutes; it is bounded all the same.
pub struct NonceBook {
    /// nonce → the time it stops mattering (its signature is stale from then on).
    seen: std::sync::Mutex<std::collections::HashMap<String, u64>>,
    capacity: usize,
}

impl Default for NonceBook {
    fn default() -> NonceBook {
        NonceBook::with_capacity(1 << 20)
    }
}

impl NonceBook {
    pub fn with_capacity(capacity: usize) -> NonceBook {
        NonceBook {
            seen: std::sync::Mutex::default(),
            capacity,
        }
    }

    /// Records `nonce`; `Err` if it was seen before (a replay), or if the book is full of
    /// nonces still within their window.
    pub fn first_use(&self, nonce: &Nonce, now: u64) -> Result<(), Refused> {
        // A std mutex: held for a hash-map insert, never across an await.
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if seen.contains_key(&nonce.nonce) {
            return Err(Refused::Replayed);
        }
        if seen.len() >= self.capacity {
            seen.retain(|_, until| *until >= now);
            if seen.len() >= self.capacity {
                return Err(Refused::TooMany);
            }
        }
        seen.insert(nonce.nonce.clone(), nonce.time + MAX_SKEW_SECS + 1);
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.seen.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// `n` random bytes from the kernel, as hex.
pub fn random_hex(n: usize) -> std::io::Result<String> {
    let mut bytes = vec![0; n];
    std::io::Read::read_exact(&mut std::fs::File::open("/dev/urandom")?, &mut bytes)?;
    Ok(hex(&bytes))
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Hex digits only: `from_str_radix` alone also takes a sign, so `+d` would read as `0d` and
/// one tag would have many spellings (found by the hostile-input tests).
pub(crate) fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tag_is_read_from_hex_digits_only() {
        assert_eq!(unhex("0d0A"), Some(vec![13, 10]));
        assert_eq!(unhex("+d"), None);
        assert_eq!(unhex("-1"), None);
        assert_eq!(unhex(" d"), None);
        assert_eq!(unhex("abc"), None);
    }

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn chunk<'a>(body: &'a [u8], offset: &'a str) -> SignedParts<'a> {
        SignedParts {
            method: "PATCH",
            path_and_query: "/internal/uploads/x",
            user: "ada",
            target: "node-a",
            body,
            upload_offset: offset,
            content_type: "application/offset+octet-stream",
        }
    }

    #[test]
    fn a_body_summed_piece_by_piece_has_the_sum_of_the_whole() {
        let body: Vec<u8> = (0..3 * HASH_APART + 5).map(|i| (i % 251) as u8).collect();
        let mut summer = BodySummer::default();
        for piece in body.chunks(HASH_APART / 3 + 1) {
            summer.update(piece);
        }
        assert_eq!(summer.finish(), body_sum(&body));
        assert_ne!(summer.finish(), body_sum(&body[1..]));
    }

    #[test]
    fn a_body_summed_apart_signs_and_checks_as_the_body_itself() {
        let s = Secret::from_bytes(SECRET);
        let body = vec![7u8; HASH_APART + 1];
        let sum = body_sum(&body);
        let without_body = chunk(&[], "0");
        // Signed with the sum, checked with the body; and the other way round.
        let h = s.sign_request_summed(&without_body, &sum, 1000);
        assert!(s.verify_request(Some(&h), &chunk(&body, "0"), 1000).is_ok());
        let h = s.sign_request(&chunk(&body, "0"), 1000);
        assert!(s
            .verify_request_summed(Some(&h), &without_body, &sum, 1000)
            .is_ok());
        // Another body's sum is refused.
        let other = body_sum(&body[1..]);
        assert_eq!(
            s.verify_request_summed(Some(&h), &without_body, &other, 1000)
                .map(|_| ()),
            Err(Refused::Wrong)
        );
    }

    #[test]
    fn a_signature_of_another_format_is_refused_as_malformed_not_as_wrong() {
        let s = Secret::from_bytes(SECRET);
        let h = s.sign_request(&chunk(b"bytes", "0"), 1000);
        let old = h.replacen(&format!("{SIGNATURE_VERSION}."), "2.", 1);
        assert_eq!(
            s.verify_request(Some(&old), &chunk(b"bytes", "0"), 1000)
                .map(|_| ()),
            Err(Refused::Malformed)
        );
    }

    #[test]
    fn a_signature_holds_only_for_its_request_body_headers_node_secret_and_time() {
        let s = Secret::from_bytes(SECRET);
        let parts = chunk(b"the bytes", "0");
        let h = s.sign_request(&parts, 1000);
        let check = |p: &SignedParts<'_>, now| s.verify_request(Some(&h), p, now).map(|_| ());
        assert_eq!(check(&parts, 1200), Ok(()));
        let changed: [(&str, SignedParts<'_>); 7] = [
            ("body", chunk(b"other bytes", "0")),
            ("offset", chunk(b"the bytes", "8388608")),
            (
                "node",
                SignedParts {
                    target: "node-b",
                    ..parts
                },
            ),
            (
                "account",
                SignedParts {
                    user: "bob",
                    ..parts
                },
            ),
            (
                "method",
                SignedParts {
                    method: "PUT",
                    ..parts
                },
            ),
            (
                "path",
                SignedParts {
                    path_and_query: "/internal/uploads/y",
                    ..parts
                },
            ),
            (
                "type",
                SignedParts {
                    content_type: "text/plain",
                    ..parts
                },
            ),
        ];
        for (what, p) in changed {
            assert_eq!(check(&p, 1000), Err(Refused::Wrong), "another {what}");
        }
        assert_eq!(check(&parts, 1400), Err(Refused::Stale));
        let other = Secret::from_bytes(b"another secret, of another cluster!!");
        assert_eq!(
            other.verify_request(Some(&h), &parts, 1000).map(|_| ()),
            Err(Refused::Wrong)
        );
        assert_eq!(
            s.verify_request(None, &parts, 1000).map(|_| ()),
            Err(Refused::Missing)
        );
        for bad in [
            "garbage",
            "1.1000.ab.cd",
            "3.1000.zz.cd",
            "3.x.ab.cd",
            "3.1000.ab.cd.ef",
        ] {
            assert_eq!(
                s.verify_request(Some(bad), &parts, 1000).map(|_| ()),
                Err(Refused::Malformed),
                "{bad}"
            );
        }
        assert_eq!(
            s.verify_request(Some("3.1000.ab.zz"), &parts, 1000)
                .map(|_| ()),
            Err(Refused::Wrong)
        );
    }

    #[test]
    fn each_signature_is_accepted_once_and_each_call_has_its_own_nonce() {
        let s = Secret::from_bytes(SECRET);
        let parts = chunk(b"", "");
        let book = NonceBook::default();
        let first = s.sign_request(&parts, 1000);
        let second = s.sign_request(&parts, 1000);
        assert_ne!(first, second, "two calls, two nonces");
        let n1 = s.verify_request(Some(&first), &parts, 1000).unwrap();
        let n2 = s.verify_request(Some(&second), &parts, 1000).unwrap();
        assert_eq!(book.first_use(&n1, 1000), Ok(()));
        assert_eq!(book.first_use(&n1, 1001), Err(Refused::Replayed));
        assert_eq!(book.first_use(&n2, 1001), Ok(()));
    }

    #[test]
    fn a_full_book_forgets_stale_nonces_and_refuses_only_when_all_are_live() {
        let book = NonceBook::with_capacity(2);
        let n = |nonce: &str, time| Nonce {
            nonce: nonce.into(),
            time,
        };
        book.first_use(&n("a1", 1000), 1000).unwrap();
        book.first_use(&n("a2", 1000), 1000).unwrap();
        assert_eq!(book.first_use(&n("a3", 1000), 1000), Err(Refused::TooMany));
        // Ten minutes on, the first two are stale everywhere: their room is reused.
        book.first_use(&n("a3", 1700), 1700).unwrap();
        assert_eq!(book.len(), 1);
    }
}
