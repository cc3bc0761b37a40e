//! The portal's accounts as the nodes keep them for both frontends (`GET`/`PUT
//! /internal/accounts`, `POST /internal/sessions/revoke`): the accounts file as `td user` last
//! handed it over, and the sessions signed out. Each frontend reads every node's book every
//! second, so an account added, changed or removed on one host, or a sign-out at one frontend,
//! counts at both within seconds without copying files.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One node's book.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountBook {
    /// The accounts file's own version (raised at every change): of two books, the higher
    /// version has the newer accounts. 0: none handed over yet.
    #[serde(default)]
    pub version: u64,
    /// The accounts file, as its text (the portal's to read).
    #[serde(default)]
    pub users: String,
    /// Sessions signed out: session id → Unix seconds after which it has expired anyway.
    #[serde(default)]
    pub revoked: BTreeMap<String, u64>,
}

/// `PUT /internal/accounts`: a new accounts file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountsUpdate {
    pub version: u64,
    pub users: String,
}

/// `POST /internal/sessions/revoke`: a session signed out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revocation {
    pub id: String,
    /// Unix seconds: the session's own expiry, after which the entry can go.
    pub until: u64,
}
