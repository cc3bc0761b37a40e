//! Where this frontend reads the accounts and the sessions signed out: from every node's
//! account book (`GET /internal/accounts`, read every [`REFRESH`] by [`AccountsWatch`]) and
//! this host's own accounts file, whichever has the newer version. A sign-out is written to
//! every node at once and kept here too, so it counts here at once and at the other frontend
//! within a refresh.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use cluster::accounts::{AccountBook, AccountsUpdate, Revocation};
use cluster::worker::{BoxFuture, Worker, WorkerState};
use floor::client::Call;
use warp::hyper::body::Bytes;

use super::users::{Users, UsersError};

/// How often the nodes' books are read.
pub const REFRESH: Duration = Duration::from_secs(1);
/// How long a node has to answer.
const ASK: Duration = Duration::from_secs(2);

pub struct Accounts {
    /// This host's accounts file (`users_file`).
    local: PathBuf,
    client: floor::Client,
    /// A `std::sync::RwLock`: read at every session check, written once a refresh; never held
    /// across an await.
    shared: RwLock<Shared>,
}

#[derive(Default)]
struct Shared {
    /// The newest accounts the nodes have.
    users: Option<Users>,
    /// Sessions signed out (here or at the nodes) → their expiry.
    revoked: HashMap<String, u64>,
}

impl Accounts {
    pub fn new(local: PathBuf, client: floor::Client) -> Accounts {
        Accounts {
            local,
            client,
            shared: RwLock::default(),
        }
    }

    /// The accounts now: the nodes' or this host's file, whichever is newer.
    pub fn users(&self) -> Result<Users, UsersError> {
        let local = Users::load(&self.local)?;
        let shared = self.shared.read().unwrap_or_else(|p| p.into_inner());
        Ok(match &shared.users {
            Some(u) if u.version > local.version => u.clone(),
            _ => local,
        })
    }

    pub fn revoked(&self, session: &str) -> bool {
        let shared = self.shared.read().unwrap_or_else(|p| p.into_inner());
        shared.revoked.contains_key(session)
    }

    /// Signs session `id` out: here at once, and at every node that answers (how many did).
    pub async fn revoke(&self, id: &str, until: u64) -> usize {
        self.shared
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .revoked
            .insert(id.to_string(), until);
        let body = serde_json::to_vec(&Revocation {
            id: id.to_string(),
            until,
        })
        .expect("plain data");
        let asks = self.client.nodes().map(|node| {
            let body = Bytes::from(body.clone());
            async move {
                let call = Call::new("POST", "/internal/sessions/revoke")
                    .user("portal")
                    .body(body);
                match self.client.call_any(node, call, ASK).await {
                    Ok(a) if a.status == 200 => true,
                    Ok(a) => {
                        tracing::warn!(node, status = a.status, body = %String::from_utf8_lossy(&a.body), "portal: a node did not take a sign-out");
                        false
                    }
                    Err(e) => {
                        tracing::warn!(node, error = %e, "portal: a node did not take a sign-out");
                        false
                    }
                }
            }
        });
        futures_util::future::join_all(asks)
            .await
            .into_iter()
            .filter(|ok| *ok)
            .count()
    }

    /// Reads every node's book: the newest accounts, every sign-out. Err when no node answered.
    pub async fn refresh(&self) -> Result<(), String> {
        let asks = self.client.nodes().map(|node| async move {
            let call = Call::new("GET", "/internal/accounts").user("portal");
            let a = self.client.call_any(node, call, ASK).await;
            (node.to_string(), a)
        });
        let mut books = Vec::new();
        let mut problems = Vec::new();
        for (node, a) in futures_util::future::join_all(asks).await {
            match a {
                Ok(a) if a.status == 200 => match serde_json::from_slice::<AccountBook>(&a.body) {
                    Ok(b) => books.push(b),
                    Err(e) => problems.push(format!("{node}: {e}")),
                },
                Ok(a) => problems.push(format!("{node}: status {}", a.status)),
                Err(e) => problems.push(format!("{node}: {e}")),
            }
        }
        if books.is_empty() && !problems.is_empty() {
            return Err(format!("no node's account book: {}", problems.join("; ")));
        }
        let now = cluster::unix_now();
        let newest = books
            .iter()
            .filter(|b| b.version > 0)
            .max_by_key(|b| b.version)
            .and_then(|b| match serde_json::from_str::<Users>(&b.users) {
                Ok(u) => Some(u),
                Err(e) => {
                    tracing::warn!(version = b.version, error = %e, "portal: the nodes' accounts file does not read");
                    None
                }
            });
        let mut shared = self.shared.write().unwrap_or_else(|p| p.into_inner());
        if let Some(u) = newest {
            if shared
                .users
                .as_ref()
                .is_none_or(|old| u.version >= old.version)
            {
                shared.users = Some(u);
            }
        }
        shared.revoked.retain(|_, until| *until > now);
        for b in books {
            shared
                .revoked
                .extend(b.revoked.into_iter().filter(|(_, u)| *u > now));
        }
        Ok(())
    }
}

/// Hands `users` to every node (`td user`): the nodes that took it, and why the others did not.
pub async fn hand_over(client: &floor::Client, users: &Users) -> (Vec<String>, Vec<String>) {
    let update = AccountsUpdate {
        version: users.version,
        users: serde_json::to_string(users).expect("plain data"),
    };
    let body = serde_json::to_vec(&update).expect("plain data");
    let asks = client.nodes().map(|node| {
        let body = Bytes::from(body.clone());
        async move {
            let call = Call::new("PUT", "/internal/accounts")
                .user("td-user")
                .body(body);
            let a = client.call_any(node, call, ASK).await;
            (node.to_string(), a)
        }
    });
    let (mut took, mut not) = (Vec::new(), Vec::new());
    for (node, a) in futures_util::future::join_all(asks).await {
        match a {
            Ok(a) if a.status == 200 => took.push(node),
            Ok(a) => not.push(format!(
                "{node}: {}",
                String::from_utf8_lossy(&a.body).trim()
            )),
            Err(e) => not.push(format!("{node}: {e}")),
        }
    }
    (took, not)
}

/// The newest accounts any node has (version 0 and empty when none has any).
pub async fn newest_at_nodes(client: &floor::Client) -> Result<Users, String> {
    let accounts = Accounts::new(PathBuf::new(), client.clone());
    accounts.refresh().await?;
    let shared = accounts.shared.read().unwrap_or_else(|p| p.into_inner());
    Ok(shared.users.clone().unwrap_or_default())
}

/// Reads the nodes' books every [`REFRESH`].
pub struct AccountsWatch {
    pub accounts: Arc<Accounts>,
    reads: u64,
    /// Why the last read found no book; kept reading every second all the same, so a node back
    /// counts at once (the runner's back-off would wait up to a minute).
    problem: Option<String>,
}

impl AccountsWatch {
    pub fn new(accounts: Arc<Accounts>) -> AccountsWatch {
        AccountsWatch {
            accounts,
            reads: 0,
            problem: None,
        }
    }
}

impl Worker for AccountsWatch {
    fn name(&self) -> String {
        "accounts".into()
    }

    fn work(&mut self) -> BoxFuture<'_, Result<WorkerState, String>> {
        Box::pin(async move {
            self.problem = self.accounts.refresh().await.err();
            self.reads += 1;
            Ok(WorkerState::Throttled(REFRESH))
        })
    }

    fn wait_for_work(&mut self) -> BoxFuture<'_, ()> {
        Box::pin(tokio::time::sleep(REFRESH))
    }

    fn progress(&self) -> String {
        match &self.problem {
            None => format!("{} reads of the nodes' account books", self.reads),
            Some(p) => format!("{} reads; {p}", self.reads),
        }
    }
}
