//! Signed-in sessions without server state: the cookie is `NAME.EXPIRY.MAC`, the MAC made
//! with the cluster secret, so either frontend accepts a session the other one started (a
//! takeover does not sign anyone out). The CSRF token of a session is another MAC of the cookie,
//! required on every form and API call that changes something.

use cluster::auth::Secret;

pub const COOKIE: &str = "td_session";
/// How long a sign-in lasts.
pub const LIFETIME_SECS: u64 = 12 * 3600;

/// A signed-in account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub user: String,
    /// The cookie's value, which the CSRF token is derived from.
    pub cookie: String,
}

/// A new session's cookie value for `user`.
pub fn start(secret: &Secret, user: &str, now: u64) -> String {
    let expiry = (now + LIFETIME_SECS).to_string();
    let mac = secret.mac(&["session", user, &expiry]);
    format!("{user}.{expiry}.{mac}")
}

/// The session a `Cookie` header carries, if it is valid and not expired.
pub fn from_cookies(secret: &Secret, header: Option<&str>, now: u64) -> Option<Session> {
    let value = header?
        .split(';')
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)?
        .1;
    let mut parts = value.splitn(3, '.');
    let (user, expiry, mac) = (parts.next()?, parts.next()?, parts.next()?);
    let t: u64 = expiry.parse().ok()?;
    (t > now && super::users::valid_name(user) && secret.check_mac(&["session", user, expiry], mac))
        .then(|| Session {
            user: user.to_string(),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_is_good_only_signed_unexpired_and_unchanged() {
        let s = Secret::from_bytes(b"0123456789abcdef0123456789abcdef");
        let value = start(&s, "ada", 1000);
        let header = format!("theme=dark; {COOKIE}={value}");
        let session = from_cookies(&s, Some(&header), 2000).unwrap();
        assert_eq!(session.user, "ada");
        assert!(from_cookies(&s, Some(&header), 1000 + LIFETIME_SECS).is_none());
        let forged = value.replacen("ada", "bob", 1);
        assert!(from_cookies(&s, Some(&format!("{COOKIE}={forged}")), 2000).is_none());
        let other = Secret::from_bytes(b"another cluster's secret, 32 bytes!");
        assert!(from_cookies(&other, Some(&header), 2000).is_none());
        let token = csrf(&s, &session);
        assert!(check_csrf(&s, &session, Some(&token)));
        assert!(!check_csrf(&s, &session, None));
        let bob = Session {
            user: "bob".into(),
            cookie: start(&s, "bob", 1000),
        };
        assert!(!check_csrf(&s, &bob, Some(&token)));
        let cookie = set_cookie(&value, false);
        assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"));
        assert!(!cookie.contains("Secure") && set_cookie(&value, true).ends_with("; Secure"));
    }
}
