//! `td user`: the upload portal's accounts (content providers), kept in the cluster's accounts
//! file as Argon2id hashes.

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use cluster::ClusterConfig;
use frontend::portal::users::Users;

/// Manage the upload portal's accounts: add one (the password is asked for, or read from
/// standard input with --password-stdin), remove one, or list them. The accounts file is
/// `users_file` in the configuration (default `users.json` next to it); copy it to both
/// frontends after a change. A new account can sign in at once: the file is read at every
/// sign-in.
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
        /// Set a new password for an account that exists.
        #[arg(long)]
        replace: bool,
    },
    /// Remove an account (its images stay, and stay its own).
    Remove { name: String },
    /// List the accounts.
    List,
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
            users.add(&name, &password, replace)?;
            users.save(&path)?;
            println!("account {name} saved in {}", path.display());
        }
        Action::Remove { name } => {
            users.remove(&name)?;
            users.save(&path)?;
            println!("account {name} removed from {}", path.display());
        }
        Action::List => {
            for u in &users.users {
                println!("{}", u.name);
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
