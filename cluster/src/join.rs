//! How a new host gets the cluster secret without anyone copying the file: an operator on a
//! host that has it asks for a join code (`td secret invite NAME`), types that code on the new
//! host (`td secret join --code CODE`), and the new host asks any node for the secret.
//!
//! The code is the only thing that crosses by hand. It names the host it is for and when it
//! expires, and carries a key: the first 16 bytes of HMAC-SHA256(secret, "td join", name,
//! expiry). Only a holder of the secret can make that key, and only the operator and the new
//! host ever see it, since the request carries a proof made with it (HMAC over a fresh nonce),
//! never the key itself. The node that answers recomputes the key from its secret, checks the
//! proof, and answers with the secret sealed (ChaCha20-Poly1305) under a key derived from the
//! code's key, so a listener on the wire, or a node that is not ours, learns nothing; the new
//! host, having opened it, checks that the secret it got makes its code's key again, so it
//! keeps only the secret of the cluster that invited it.
//!
//! A request replayed by a listener gets the same sealed answer, which it still cannot open;
//! so a code need not be single-use. It is short-lived instead (an hour by default, at most a
//! week), so one left in a shell history soon opens nothing.

use hmac::{Hmac, Mac};
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, CHACHA20_POLY1305, NONCE_LEN};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::auth::{hex, unhex, Secret};

/// The longest a code may be valid for.
pub const MAX_VALID_SECS: u64 = 7 * 24 * 60 * 60;
/// The path a node answers join requests on.
pub const JOIN_PATH: &str = "/join";
/// The most a join request's body may hold.
pub const MAX_REQUEST_BYTES: usize = 4096;

const KEY_LEN: usize = 16;
const PREFIX: &str = "tdjoin";

/// A join code, as `tdjoin:NAME:EXPIRES:KEY` (KEY in hex).
#[derive(Clone, PartialEq, Eq)]
pub struct JoinCode {
    /// The host it was made for (a node's or frontend's name in the configuration).
    pub name: String,
    /// Unix time after which it opens nothing.
    pub expires: u64,
    key: [u8; KEY_LEN],
}

impl std::fmt::Debug for JoinCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "JoinCode({}, expires {}, …)", self.name, self.expires)
    }
}

impl std::fmt::Display for JoinCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{PREFIX}:{}:{}:{}",
            self.name,
            self.expires,
            hex(&self.key)
        )
    }
}

/// What a new host sends a node: which code (name and expiry, not its key) and a proof that
/// it holds the code's key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JoinRequest {
    pub name: String,
    pub expires: u64,
    /// 16 random bytes, hex: makes each proof new.
    pub nonce: String,
    /// HMAC-SHA256(code key, "td join request", nonce), hex.
    pub proof: String,
}

/// A node's answer: the secret, sealed for the code's holder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JoinReply {
    /// The AEAD nonce and the sealed secret with its tag, hex.
    pub sealed: String,
}

/// Why a code or an answer was not taken. Each says what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JoinError {
    #[error(
        "not a join code: {0} (it looks like tdjoin:NAME:EXPIRES:KEY; ask for one with \
         `td secret invite NAME` on a host that has the secret)"
    )]
    Malformed(String),
    #[error(
        "this join code expired {ago} s ago; ask for a new one with `td secret invite {name}`"
    )]
    Expired { name: String, ago: u64 },
    #[error(
        "this join code claims to be valid for more than {} days; codes are made for at most \
         that long", MAX_VALID_SECS / 86_400
    )]
    TooLong,
    #[error(
        "the join code does not fit this cluster's secret (mistyped, or made by another \
         cluster); ask for a new one with `td secret invite {0}`"
    )]
    WrongCode(String),
    #[error(
        "the answer cannot be opened with this code: it was not sealed by a holder of this \
         cluster's secret"
    )]
    Unsealed,
    #[error(
        "the node answered with a secret that did not make this code; it is not this cluster's"
    )]
    OtherCluster,
    #[error("no randomness from the kernel: {0}")]
    Random(String),
}

impl JoinCode {
    /// A code for host `name`, made with the cluster's secret, valid until `expires`.
    pub fn issue(secret: &Secret, name: &str, expires: u64) -> Result<JoinCode, JoinError> {
        check_name(name)?;
        Ok(JoinCode {
            name: name.to_string(),
            expires,
            key: code_key(secret, name, expires),
        })
    }

    /// Reads a code as typed (spaces around it are ignored).
    pub fn parse(text: &str) -> Result<JoinCode, JoinError> {
        let bad = || JoinError::Malformed(shorten(text.trim()));
        let mut parts = text.trim().split(':');
        let (Some(PREFIX), Some(name), Some(expires), Some(key), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return Err(bad());
        };
        check_name(name)?;
        if expires.is_empty() || !expires.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let expires = expires.parse().map_err(|_| bad())?;
        let key = unhex(key)
            .and_then(|k| <[u8; KEY_LEN]>::try_from(k).ok())
            .ok_or_else(bad)?;
        Ok(JoinCode {
            name: name.to_string(),
            expires,
            key,
        })
    }

    /// Whether the code may still be used at `now`.
    pub fn check_time(&self, now: u64) -> Result<(), JoinError> {
        check_time(&self.name, self.expires, now)
    }

    /// A request proving this code, with a fresh nonce.
    pub fn request(&self) -> Result<JoinRequest, JoinError> {
        let nonce = crate::auth::random_hex(16).map_err(|e| JoinError::Random(e.to_string()))?;
        Ok(JoinRequest {
            name: self.name.clone(),
            expires: self.expires,
            proof: hex(&proof(&self.key, &nonce)),
            nonce,
        })
    }

    /// The secret in a node's answer, once it is opened and found to be the one that made
    /// this code.
    pub fn open(&self, reply: &JoinReply) -> Result<Secret, JoinError> {
        let sealed = unhex(&reply.sealed).ok_or(JoinError::Unsealed)?;
        if sealed.len() < NONCE_LEN + CHACHA20_POLY1305.tag_len() {
            return Err(JoinError::Unsealed);
        }
        let (nonce, text) = sealed.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| JoinError::Unsealed)?;
        let mut text = text.to_vec();
        let opened = seal_key(&self.key)
            .open_in_place(nonce, Aad::from(self.name.as_bytes()), &mut text)
            .map_err(|_| JoinError::Unsealed)?;
        let secret = Secret::from_bytes(opened);
        // Constant time: the key is what keeps the secret.
        let made = code_key(&secret, &self.name, self.expires);
        if !same(&made, &self.key) {
            return Err(JoinError::OtherCluster);
        }
        Ok(secret)
    }
}

/// A node's side: checks `request` against the cluster's `secret` at `now` and seals the
/// secret for it.
pub fn answer(secret: &Secret, request: &JoinRequest, now: u64) -> Result<JoinReply, JoinError> {
    check_name(&request.name)?;
    check_time(&request.name, request.expires, now)?;
    let key = code_key(secret, &request.name, request.expires);
    let wrong = || JoinError::WrongCode(request.name.clone());
    let given = unhex(&request.proof).ok_or_else(wrong)?;
    if request.nonce.is_empty() || request.nonce.len() > 64 {
        return Err(wrong());
    }
    if !same(&proof(&key, &request.nonce), &given) {
        return Err(wrong());
    }
    seal(&key, &request.name, secret.bytes())
}

/// `text` sealed for the holder of `key`, bound to the host's name.
fn seal(key: &[u8; KEY_LEN], name: &str, text: &[u8]) -> Result<JoinReply, JoinError> {
    let mut nonce = [0u8; NONCE_LEN];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut nonce)
        .map_err(|_| JoinError::Random("the kernel gave no random bytes".into()))?;
    let mut text = text.to_vec();
    seal_key(key)
        .seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(name.as_bytes()),
            &mut text,
        )
        .map_err(|_| JoinError::Unsealed)?;
    let mut sealed = nonce.to_vec();
    sealed.extend_from_slice(&text);
    Ok(JoinReply {
        sealed: hex(&sealed),
    })
}

fn check_name(name: &str) -> Result<(), JoinError> {
    if name.is_empty()
        || name.len() > 64
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
    {
        return Err(JoinError::Malformed(format!(
            "'{}' is not a host's name (letters, digits, '-', '_' and '.')",
            shorten(name)
        )));
    }
    Ok(())
}

fn check_time(name: &str, expires: u64, now: u64) -> Result<(), JoinError> {
    if expires <= now {
        return Err(JoinError::Expired {
            name: name.to_string(),
            ago: now - expires,
        });
    }
    if expires - now > MAX_VALID_SECS {
        return Err(JoinError::TooLong);
    }
    Ok(())
}

fn code_key(secret: &Secret, name: &str, expires: u64) -> [u8; KEY_LEN] {
    let tag = secret.mac_bytes(&["td join", name, &expires.to_string()]);
    tag[..KEY_LEN].try_into().expect("a MAC is 32 bytes")
}

fn keyed(key: &[u8], parts: &[&str]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("any key length");
    for p in parts {
        mac.update(&(p.len() as u64).to_be_bytes());
        mac.update(p.as_bytes());
    }
    mac.finalize().into_bytes().to_vec()
}

fn proof(key: &[u8; KEY_LEN], nonce: &str) -> Vec<u8> {
    keyed(key, &["td join request", nonce])
}

fn seal_key(key: &[u8; KEY_LEN]) -> LessSafeKey {
    let bytes = keyed(key, &["td join reply"]);
    LessSafeKey::new(UnboundKey::new(&CHACHA20_POLY1305, &bytes).expect("a 32-byte key"))
}

/// Equal, in time that does not depend on where two byte strings of one length differ.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len()
        && std::hint::black_box(a.iter().zip(b).fold(0u8, |d, (x, y)| d | (x ^ y))) == 0
}

fn shorten(text: &str) -> String {
    text.chars().take(80).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const NOW: u64 = 1_800_000_000;

    fn secret(s: &str) -> Secret {
        Secret::from_bytes(format!("{s:0>64}").as_bytes())
    }

    #[test]
    fn a_code_fetches_the_secret_and_nothing_else_does() {
        let ours = secret("ours");
        let code = JoinCode::issue(&ours, "node-c", NOW + 3600).unwrap();
        let text = code.to_string();
        assert!(text.starts_with("tdjoin:node-c:1800003600:"), "{text}");
        let typed = JoinCode::parse(&format!("  {text}\n")).unwrap();
        assert_eq!(typed, code);
        let request = typed.request().unwrap();
        // The request never carries the key.
        let wire = serde_json::to_string(&request).unwrap();
        assert!(!wire.contains(&hex(&code.key)), "{wire}");
        let reply = answer(&ours, &request, NOW).unwrap();
        assert!(!reply.sealed.contains(&hex(ours.bytes())));
        let got = typed.open(&reply).unwrap();
        assert_eq!(got.bytes(), ours.bytes());

        // Another cluster's node cannot answer it, and its code does not open ours.
        assert_eq!(
            answer(&secret("theirs"), &request, NOW),
            Err(JoinError::WrongCode("node-c".into()))
        );
        let theirs = JoinCode::issue(&secret("theirs"), "node-c", NOW + 3600).unwrap();
        assert_eq!(theirs.open(&reply).err(), Some(JoinError::Unsealed));
        // Whoever might know our code's key (no one but us can) still cannot pass another
        // secret off as ours.
        let forged = seal(&code.key, "node-c", secret("theirs").bytes()).unwrap();
        assert_eq!(code.open(&forged).err(), Some(JoinError::OtherCluster));
    }

    #[test]
    fn time_limits_hold() {
        let s = secret("ours");
        let late = JoinCode::issue(&s, "fe-2", NOW - 1).unwrap();
        assert_eq!(
            answer(&s, &late.request().unwrap(), NOW),
            Err(JoinError::Expired {
                name: "fe-2".into(),
                ago: 1
            })
        );
        let far = JoinCode::issue(&s, "fe-2", NOW + MAX_VALID_SECS + 1).unwrap();
        assert_eq!(
            answer(&s, &far.request().unwrap(), NOW),
            Err(JoinError::TooLong)
        );
        assert!(JoinCode::issue(&s, "fe-2", NOW + MAX_VALID_SECS)
            .unwrap()
            .check_time(NOW)
            .is_ok());
    }

    #[test]
    fn malformed_codes_are_named() {
        for bad in [
            "",
            "tdjoin",
            "tdjoin:a:1",
            "tdjoin:a:1:00",
            "tdjoin:a:+1:00112233445566778899aabbccddeeff",
            "tdjoin:a b:1:00112233445566778899aabbccddeeff",
            "tdjoin:a:1:00112233445566778899aabbccddeeff:x",
            "other:a:1:00112233445566778899aabbccddeeff",
        ] {
            assert!(
                matches!(JoinCode::parse(bad), Err(JoinError::Malformed(_))),
                "{bad:?}"
            );
        }
    }

    proptest! {
        /// Any change to a request (name, expiry, nonce, proof) is refused, and any change to
        /// the sealed answer does not open.
        #[test]
        fn tampering_is_refused(at in 0usize..200, bit in 0u8..8) {
            let s = secret("ours");
            let code = JoinCode::issue(&s, "node-c", NOW + 60).unwrap();
            let request = code.request().unwrap();
            let mut wire = serde_json::to_vec(&request).unwrap();
            let at = at % wire.len();
            wire[at] ^= 1 << bit;
            if let Ok(changed) = serde_json::from_slice::<JoinRequest>(&wire) {
                if changed != request && changed.proof.to_lowercase() != request.proof {
                    prop_assert!(answer(&s, &changed, NOW).is_err(), "{changed:?}");
                }
            }
            let reply = answer(&s, &request, NOW).unwrap();
            let mut sealed = unhex(&reply.sealed).unwrap();
            let at = at % sealed.len();
            sealed[at] ^= 1 << bit;
            prop_assert_eq!(
                code.open(&JoinReply { sealed: hex(&sealed) }).err(),
                Some(JoinError::Unsealed)
            );
        }
    }
}
