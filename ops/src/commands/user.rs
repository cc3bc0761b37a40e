//! `td user`: the accounts of the upload portal (content providers) and of the operator's
//! dashboard (operators), kept in the cluster's accounts file as Argon2id hashes with a role.

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use cluster::ClusterConfig;
use frontend::portal::users::{Role, Users};

/// Manage the accounts: add one (the password is asked for, or read from standard input with
/// --password-stdin), give one another role, remove one, or list them. A content provider
/// uploads in the portal (/portal/); an operator also opens the dashboard (/ops/) and marks
/// repair tickets there. The accounts file is `users_file` in the configuration (default
/// `users.json` next to it); copy it to both frontends after a change. A change counts at
/// once: the file is read at every sign-in and every dashboard page.
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
    /// Remove an account (its images stay, and stay its own).
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
    let path = config.users_path();
    let mut users = Users::load(&path)?;
    match args.action {
        Action::Add {
            name,
            password_stdin,
            replace,
            role,
        } => {
            let password = if password_stdin {
                let mut line = String::new();
                std::io::stdin()
                    .lock()
                    .read_line(&mut line)
                    .context("cannot read the password from standard input")?;
                line.trim_end_matches(['\n', '\r']).to_string()
            } else {
                ask_twice()?
            };
            users.add_as(&name, &password, role.map(Role::from), replace)?;
            users.save(&path)?;
            let role = users.role(&name).unwrap_or_default();
            println!("account {name} saved in {} ({role})", path.display());
        }
        Action::Role { name, role } => {
            let role = Role::from(role);
            users.set_role(&name, role)?;
            users.save(&path)?;
            println!("account {name} is a {role} now ({})", path.display());
        }
        Action::Remove { name } => {
            users.remove(&name)?;
            users.save(&path)?;
            println!("account {name} removed from {}", path.display());
        }
        Action::List => {
            for u in &users.users {
                println!("{}\t{}", u.name, u.role);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
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
