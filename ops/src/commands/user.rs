//! `td user`: the accounts of the upload portal (content providers) and of the operator's
//! dashboard (operators), kept in the cluster's accounts file as Argon2id hashes with a role.

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use cluster::ClusterConfig;
use frontend::portal::accounts;
use frontend::portal::users::{Role, Users};

/// Manage the accounts: add one (the password is asked for, or read from standard input with
/// --password-stdin), give one another role, remove one, or list them. A content provider
/// uploads in the portal (/portal/); an operator also opens the dashboard (/ops/) and marks
/// repair tickets there. The accounts file is `users_file` in the configuration (default
/// `users.json` next to it); every change is also handed to every node, where both frontends
/// read it within seconds, so nothing is copied by hand. A new password, `signout` and
/// `remove` end the account's sessions at both frontends.
#[derive(clap::Args)]
pub struct Args {
    /// The cluster configuration (TOML); before or after the action.
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    action: Action,
}

#[derive(clap::Subcommand)]
enum Action {
    /// Add an account (lower-case letters, digits, '-' and '_'; a password of 10 or more
    /// characters).
    Add {
        name: String,
        /// Read the password from the first line of standard input (for scripts).
        #[arg(long)]
        password_stdin: bool,
        /// Set a new password for an account that exists (it keeps its role unless --role
        /// is given).
        #[arg(long)]
        replace: bool,
        /// What the account may do [default for a new account: content-provider].
        #[arg(long, value_enum)]
        role: Option<RoleArg>,
    },
    /// Give an account another role; its password stays.
    Role {
        name: String,
        #[arg(value_enum)]
        role: RoleArg,
    },
    /// Set a new password (asked for, or --password-stdin); the account's sessions end.
    Passwd {
        name: String,
        #[arg(long)]
        password_stdin: bool,
    },
    /// End every session of an account, at both frontends; its password stays.
    Signout { name: String },
    /// Remove an account (its images stay, and stay its own); its sessions end.
    Remove { name: String },
    /// List the accounts and their roles.
    List,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum RoleArg {
    /// Uploads originals and edits the details of its own images.
    ContentProvider,
    /// Also opens the operator's dashboard (/ops/) and marks repair tickets.
    Operator,
}

impl From<RoleArg> for Role {
    fn from(r: RoleArg) -> Role {
        match r {
            RoleArg::ContentProvider => Role::ContentProvider,
            RoleArg::Operator => Role::Operator,
        }
    }
}

pub fn run(args: Args) -> Result<ExitCode> {
    let Some(config) = &args.config else {
        bail!("which cluster? give --config CLUSTER.toml");
    };
    let config = ClusterConfig::load(config)?;
    // Calls to hosts with TLS trust the cluster's CA.
    floor::tls::trust_cluster(&config)?;
    let path = config.users_path();
    let mut users = Users::load(&path)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    // The nodes' copy may be newer than this host's file (a change made on another host).
    let client = cluster::auth::Secret::load(&config.secret_path())
        .ok()
        .map(|secret| {
            let origins = config
                .nodes
                .iter()
                .map(|n| (n.name.clone(), n.origin()))
                .collect();
            floor::Client::signed(Ok(secret), origins)
        });
    if let Some(client) = &client {
        if let Ok(at_nodes) = runtime.block_on(accounts::newest_at_nodes(client)) {
            if at_nodes.version > users.version {
                users = at_nodes;
            }
        }
    }
    let changed = !matches!(args.action, Action::List);
    match args.action {
        Action::Add {
            name,
            password_stdin,
            replace,
            role,
        } => {
            let password = if password_stdin {
                read_stdin_line()?
            } else {
                ask_twice()?
            };
            users.add_as(&name, &password, role.map(Role::from), replace)?;
            users.version += 1;
            users.save(&path)?;
            let role = users.role(&name).unwrap_or_default();
            println!("account {name} saved in {} ({role})", path.display());
        }
        Action::Role { name, role } => {
            let role = Role::from(role);
            users.set_role(&name, role)?;
            users.version += 1;
            users.save(&path)?;
            println!("account {name} is a {role} now ({})", path.display());
        }
        Action::Passwd {
            name,
            password_stdin,
        } => {
            if users.role(&name).is_none() {
                bail!("no account '{name}'");
            }
            let password = if password_stdin {
                read_stdin_line()?
            } else {
                ask_twice()?
            };
            users.add_as(&name, &password, None, true)?;
            users.version += 1;
            users.save(&path)?;
            println!("account {name} has a new password; its sessions are over");
        }
        Action::Signout { name } => {
            users.end_sessions(&name)?;
            users.version += 1;
            users.save(&path)?;
            println!("every session of account {name} is over");
        }
        Action::Remove { name } => {
            users.remove(&name)?;
            users.version += 1;
            users.save(&path)?;
            println!("account {name} removed from {}", path.display());
        }
        Action::List => {
            for u in &users.users {
                println!("{}\t{}", u.name, u.role);
            }
        }
    }
    if !changed {
        return Ok(ExitCode::SUCCESS);
    }
    let Some(client) = &client else {
        eprintln!(
            "no cluster secret ({}): the accounts were not handed to the nodes; only this \
             host's frontend sees the change",
            config.secret_path().display()
        );
        return Ok(ExitCode::SUCCESS);
    };
    let (took, not) = runtime.block_on(accounts::hand_over(client, &users));
    if !took.is_empty() {
        println!("handed to {}", took.join(", "));
    }
    for why in &not {
        eprintln!("not handed over: {why}");
    }
    // Saved here all the same: a node that missed it gets it with the next change, and the
    // frontend on this host reads this file too.
    Ok(ExitCode::SUCCESS)
}

fn read_stdin_line() -> Result<String> {
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("cannot read the password from standard input")?;
    Ok(line.trim_end_matches(['\n', '\r']).to_string())
}

fn ask_twice() -> Result<String> {
    if !std::io::stdin().is_terminal() {
        bail!("no terminal to ask the password on; use --password-stdin");
    }
    let first = rpassword::prompt_password("Password: ")?;
    let second = rpassword::prompt_password("Again: ")?;
    std::io::stdout().flush().ok();
    if first != second {
        bail!("the two passwords differ; nothing was saved");
    }
    Ok(first)
}
