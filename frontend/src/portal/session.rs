//! Signed-in sessions: the cookie is `NAME.GENERATION.ID.EXPIRY.MAC`, the MAC made with the
//! cluster secret, so either frontend accepts a session the other one started (a takeover does
//! not sign anyone out). It ends early in two ways both frontends see within seconds (the
//! portal checks them, `super::accounts`): the account's session generation moves on (a new
//! password, `td user signout`, the account removed), or its id is in the nodes' list of
//! sessions signed out. The CSRF token of a session is another MAC of the cookie, required on
//! every form and API call that changes something.
//!
//! A browser that signed in to an account also keeps a device cookie (`NAME.MAC`, a year): the
//! account's sign-in back-off (`super::limiter`) does not hold it up, so a guesser hammering
//! the account does not keep its owner out.

use cluster::auth::Secret;

pub const COOKIE: &str = "td_session";
pub const DEVICE_COOKIE: &str = "td_device";
/// How long a sign-in lasts.
pub const LIFETIME_SECS: u64 = 12 * 3600;
/// How long a browser stays known to an account.
pub const DEVICE_SECS: u64 = 365 * 24 * 3600;

/// A signed-in account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub user: String,
    /// The account's session generation when it was started.
    pub generation: u64,
    /// This session's own id, which a sign-out revokes.
    pub id: String,
    /// Unix seconds: how long a revocation of it must be kept.
    pub expiry: u64,
    /// The cookie's value, which the CSRF token is derived from.
    pub cookie: String,
}

/// A new session's cookie value for `user`, in session generation `generation`, with id `id`.
pub fn start(secret: &Secret, user: &str, generation: u64, id: &str, now: u64) -> String {
    let expiry = (now + LIFETIME_SECS).to_string();
    let generation = generation.to_string();
    let mac = secret.mac(&["session", user, &generation, id, &expiry]);
    format!("{user}.{generation}.{id}.{expiry}.{mac}")
}

fn cookie<'a>(header: Option<&'a str>, name: &str) -> Option<&'a str> {
    header?
        .split(';')
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// The session a `Cookie` header carries, if it is signed and not expired (whether it was
/// ended since is the portal's to check).
pub fn from_cookies(secret: &Secret, header: Option<&str>, now: u64) -> Option<Session> {
    let value = cookie(header, COOKIE)?;
    let mut parts = value.splitn(5, '.');
    let (user, generation, id, expiry, mac) = (
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
    );
    let t: u64 = expiry.parse().ok()?;
    let g: u64 = generation.parse().ok()?;
    let id_ok = (1..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_hexdigit());
    (t > now
        && id_ok
        && super::users::valid_name(user)
        && secret.check_mac(&["session", user, generation, id, expiry], mac))
    .then(|| Session {
        user: user.to_string(),
        generation: g,
        id: id.to_string(),
        expiry: t,
        cookie: value.to_string(),
    })
}

/// The CSRF token for a session.
pub fn csrf(secret: &Secret, session: &Session) -> String {
    secret.mac(&["csrf", &session.cookie])
}

pub fn check_csrf(secret: &Secret, session: &Session, token: Option<&str>) -> bool {
    token.is_some_and(|t| secret.check_mac(&["csrf", &session.cookie], t))
}

/// The `Set-Cookie` value; `Secure` when the page was reached over TLS (a TLS terminator in
/// front says so with `X-Forwarded-Proto: https`).
pub fn set_cookie(value: &str, secure: bool) -> String {
    let max_age = if value.is_empty() { 0 } else { LIFETIME_SECS };
    format!(
        "{COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{}",
        if secure { "; Secure" } else { "" }
    )
}

/// The device cookie's `Set-Cookie` value for a browser that just signed in as `user`.
pub fn set_device_cookie(secret: &Secret, user: &str, secure: bool) -> String {
    let mac = secret.mac(&["device", user]);
    format!(
        "{DEVICE_COOKIE}={user}.{mac}; Path=/portal/; HttpOnly; SameSite=Strict; Max-Age={DEVICE_SECS}{}",
        if secure { "; Secure" } else { "" }
    )
}

/// Whether the `Cookie` header shows a browser that signed in as `user` before.
pub fn known_device(secret: &Secret, header: Option<&str>, user: &str) -> bool {
    cookie(header, DEVICE_COOKIE)
        .and_then(|v| v.split_once('.'))
        .is_some_and(|(name, mac)| name == user && secret.check_mac(&["device", user], mac))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_is_good_only_signed_unexpired_and_unchanged() {
        let s = Secret::from_bytes(b"0123456789abcdef0123456789abcdef");
        let value = start(&s, "ada", 3, "0a1b", 1000);
        let header = format!("theme=dark; {COOKIE}={value}");
        let session = from_cookies(&s, Some(&header), 2000).unwrap();
        assert_eq!(
            (
                session.user.as_str(),
                session.generation,
                session.id.as_str()
            ),
            ("ada", 3, "0a1b")
        );
        assert!(from_cookies(&s, Some(&header), 1000 + LIFETIME_SECS).is_none());
        let forged = value.replacen("ada", "bob", 1);
        assert!(from_cookies(&s, Some(&format!("{COOKIE}={forged}")), 2000).is_none());
        let older = value.replacen("ada.3.", "ada.2.", 1);
        assert!(from_cookies(&s, Some(&format!("{COOKIE}={older}")), 2000).is_none());
        let other = Secret::from_bytes(b"another cluster's secret, 32 bytes!");
        assert!(from_cookies(&other, Some(&header), 2000).is_none());
        let token = csrf(&s, &session);
        assert!(check_csrf(&s, &session, Some(&token)));
        assert!(!check_csrf(&s, &session, None));
        let bob = from_cookies(
            &s,
            Some(&format!("{COOKIE}={}", start(&s, "bob", 0, "ff", 1000))),
            2000,
        )
        .unwrap();
        assert!(!check_csrf(&s, &bob, Some(&token)));
        let cookie = set_cookie(&value, false);
        assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"));
        assert!(!cookie.contains("Secure") && set_cookie(&value, true).ends_with("; Secure"));
    }

    #[test]
    fn a_device_cookie_vouches_for_its_account_only() {
        let s = Secret::from_bytes(b"0123456789abcdef0123456789abcdef");
        let set = set_device_cookie(&s, "ada", false);
        let pair = set.split(';').next().unwrap();
        assert!(known_device(&s, Some(pair), "ada"));
        assert!(!known_device(&s, Some(pair), "bob"));
        assert!(!known_device(
            &s,
            Some(&pair.replacen("ada", "bob", 1)),
            "bob"
        ));
        assert!(!known_device(&s, None, "ada"));
    }
}
