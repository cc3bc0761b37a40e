//! The operator's mail: the visit report as one message with a plain-text and an HTML part
//! (`multipart/alternative`), sent through the SMTP server of `[mail]` in `CLUSTER.toml`
//! (STARTTLS, TLS from the first byte, or, for a server on this machine, none; with the
//! account's password read from its file), or, without a server, written as an `.eml` file
//! into the configured outbox folder.

use std::path::{Path, PathBuf};
use std::time::Duration;

use cluster::{MailConfig, MailSecurity};
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use crate::report::VisitReport;

/// How long one SMTP command may take before the server counts as not answering.
pub const SMTP_TIMEOUT: Duration = Duration::from_secs(30);

/// A mail ready to go: its subject and its two renderings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mail {
    pub subject: String,
    pub text: String,
    pub html: String,
}

impl Mail {
    /// The visit report as a mail.
    pub fn report(report: &VisitReport) -> Mail {
        Mail {
            subject: report.subject(),
            text: report.text(),
            html: report.html(),
        }
    }
}

/// Where a mail went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivered {
    /// Accepted by the SMTP server.
    Smtp {
        /// `host:port`.
        server: String,
        security: MailSecurity,
        to: Vec<String>,
    },
    /// Written into the outbox.
    Outbox { path: PathBuf },
}

impl std::fmt::Display for Delivered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Delivered::Smtp {
                server,
                security,
                to,
            } => write!(f, "sent to {} through {server} ({security})", to.join(", ")),
            Delivered::Outbox { path } => write!(f, "written to {}", path.display()),
        }
    }
}

/// Why a mail did not go. Each names the server, file or address concerned.
#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error("no mail is configured: give [mail] smtp_host (or outbox), from and to in the cluster configuration")]
    NotConfigured,
    #[error("[mail] has no sender (from)")]
    NoSender,
    #[error("[mail] has no recipient (to)")]
    NoRecipient,
    #[error("[mail] {field} {address:?} is not a mail address: {why}")]
    Address {
        field: &'static str,
        address: String,
        why: String,
    },
    #[error("cannot put the mail together: {0}")]
    Build(String),
    #[error("cannot read the SMTP password for {server} from {path}: {source}")]
    Password {
        server: String,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the SMTP password file {path} for {server} is empty")]
    EmptyPassword { server: String, path: PathBuf },
    #[error("cannot set up TLS for {server}: {why}")]
    Tls { server: String, why: String },
    #[error("{server}: {what}: {why}")]
    Smtp {
        server: String,
        what: &'static str,
        why: String,
    },
    #[error("cannot write the mail into the outbox {path}: {why}")]
    Outbox { path: PathBuf, why: String },
}

/// The message `mail` becomes under `config`: from its sender to its recipients, a text and
/// an HTML part.
pub fn message(config: &MailConfig, mail: &Mail) -> Result<Message, MailError> {
    let from = config.from.as_deref().ok_or(MailError::NoSender)?;
    if config.to.is_empty() {
        return Err(MailError::NoRecipient);
    }
    let mut builder = Message::builder()
        .from(mailbox("from", from)?)
        .subject(mail.subject.clone())
        .date_now()
        .message_id(None)
        .user_agent(format!("Tertiary Disk {}", env!("CARGO_PKG_VERSION")));
    for to in &config.to {
        builder = builder.to(mailbox("to", to)?);
    }
    builder
        .multipart(MultiPart::alternative_plain_html(
            mail.text.clone(),
            mail.html.clone(),
        ))
        .map_err(|e| MailError::Build(e.to_string()))
}

fn mailbox(field: &'static str, address: &str) -> Result<Mailbox, MailError> {
    address
        .parse()
        .map_err(|e: lettre::address::AddressError| MailError::Address {
            field,
            address: address.to_string(),
            why: e.to_string(),
        })
}

/// Sends `mail` as `config` says: through its SMTP server, or into its outbox.
pub async fn send(config: &MailConfig, mail: &Mail) -> Result<Delivered, MailError> {
    let message = message(config, mail)?;
    let delivered = match (&config.smtp_host, &config.outbox) {
        (Some(host), _) => send_smtp(config, host, message).await,
        (None, Some(outbox)) => write_outbox(outbox, message).await,
        (None, None) => Err(MailError::NotConfigured),
    };
    // The caller says what became of it, to the operator or in its log.
    match &delivered {
        Ok(d) => tracing::debug!(subject = %mail.subject, delivered = %d, "mail delivered"),
        Err(e) => tracing::debug!(subject = %mail.subject, error = %e, "mail not delivered"),
    }
    delivered
}

async fn send_smtp(
    config: &MailConfig,
    host: &str,
    message: Message,
) -> Result<Delivered, MailError> {
    let server = format!("{host}:{}", config.smtp_port);
    let tls = |e: lettre::transport::smtp::Error| MailError::Tls {
        server: server.clone(),
        why: floor::client::chain(&e),
    };
    let builder = match config.security {
        MailSecurity::Starttls => {
            AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(host).map_err(tls)?
        }
        MailSecurity::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(host).map_err(tls)?,
        MailSecurity::None => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host),
    };
    let mut builder = builder.port(config.smtp_port).timeout(Some(SMTP_TIMEOUT));
    if let (Some(user), Some(path)) = (&config.user, &config.password_file) {
        let password = read_password(&server, path).await?;
        builder = builder.credentials(Credentials::new(user.clone(), password));
    }
    let transport = builder.build();
    let to = config.to.clone();
    tracing::debug!(server = %server, security = %config.security, "sending mail");
    transport.send(message).await.map_err(|e| {
        let mut why = floor::client::chain(&e);
        let answered = e.is_permanent() || e.is_transient() || e.is_response();
        if config.security == MailSecurity::Tls && !answered {
            why.push_str(
                " (security = \"tls\" speaks TLS from the first byte, as port 465 does; a \
                 submission port such as 587 wants \"starttls\")",
            );
        }
        MailError::Smtp {
            server: server.clone(),
            what: smtp_failure(&e),
            why,
        }
    })?;
    Ok(Delivered::Smtp {
        server,
        security: config.security,
        to,
    })
}

/// What went wrong in an SMTP exchange, in words.
fn smtp_failure(e: &lettre::transport::smtp::Error) -> &'static str {
    if e.is_permanent() {
        "the server refused the mail"
    } else if e.is_transient() {
        "the server turned the mail away for now (try again later)"
    } else if e.is_timeout() {
        "the server did not answer in time"
    } else if e.is_tls() {
        "the TLS handshake failed"
    } else if e.is_response() || e.is_client() {
        "the exchange with the server failed"
    } else {
        "cannot connect, or the connection broke"
    }
}

/// The password in `path`: its first line.
async fn read_password(server: &str, path: &Path) -> Result<String, MailError> {
    let text = tokio::fs::read_to_string(path)
        .await
        .map_err(|source| MailError::Password {
            server: server.to_string(),
            path: path.to_path_buf(),
            source,
        })?;
    let password = text.lines().next().unwrap_or_default().to_string();
    if password.is_empty() {
        return Err(MailError::EmptyPassword {
            server: server.to_string(),
            path: path.to_path_buf(),
        });
    }
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = std::fs::metadata(path) {
            if meta.permissions().mode() & 0o077 != 0 {
                tracing::warn!(
                    path = %path.display(),
                    "the SMTP password file can be read by others than its owner (chmod 600 it)"
                );
            }
        }
    }
    Ok(password)
}

/// Writes the message whole (or not at all) into `outbox` as `td-mail-TIME.eml`.
async fn write_outbox(outbox: &Path, message: Message) -> Result<Delivered, MailError> {
    let outbox = outbox.to_path_buf();
    let bytes = message.formatted();
    let failed = |path: &Path, why: String| MailError::Outbox {
        path: path.to_path_buf(),
        why,
    };
    let dir = outbox.clone();
    tokio::task::spawn_blocking(move || {
        floor::durable::create_dir(&dir).map_err(|e| failed(&dir, e.to_string()))?;
        let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%SZ");
        for n in 0..1000u32 {
            let name = if n == 0 {
                format!("td-mail-{stamp}.eml")
            } else {
                format!("td-mail-{stamp}-{n}.eml")
            };
            let path = dir.join(name);
            let options = floor::durable::Options {
                keep_existing: true,
                ..floor::durable::Options::default()
            };
            match floor::durable::write_with(&path, &bytes, options) {
                Ok(()) => return Ok(Delivered::Outbox { path }),
                Err(e) if e.source.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(failed(&dir, e.to_string())),
            }
        }
        Err(failed(
            &dir,
            "a thousand mails of this second are there already".into(),
        ))
    })
    .await
    .map_err(|e| failed(&outbox, format!("the writing task failed: {e}")))?
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> MailConfig {
        MailConfig {
            from: Some("Tertiary Disk <td@museum.example>".into()),
            to: vec![
                "ops@museum.example".into(),
                "Second <two@museum.example>".into(),
            ],
            ..MailConfig::default()
        }
    }

    fn mail() -> Mail {
        Mail {
            subject: "Museum: visit report, 1 part to see to".into(),
            text: "Replace disk a1\n".into(),
            html: "<!DOCTYPE html><p>Replace disk <b>a1</b></p>".into(),
        }
    }

    #[test]
    fn the_message_has_a_text_and_an_html_part() {
        let m = message(&config(), &mail()).unwrap();
        let raw = String::from_utf8(m.formatted()).unwrap();
        assert!(
            raw.contains("Subject: Museum: visit report, 1 part to see to"),
            "{raw}"
        );
        assert!(
            raw.contains("From: \"Tertiary Disk\" <td@museum.example>"),
            "{raw}"
        );
        assert!(raw.contains("ops@museum.example") && raw.contains("two@museum.example"));
        assert!(raw.contains("Content-Type: multipart/alternative"), "{raw}");
        let text = raw.find("Content-Type: text/plain").unwrap();
        let html = raw.find("Content-Type: text/html").unwrap();
        assert!(
            text < html,
            "the plain part comes first, as the least preferred"
        );
        assert!(
            raw.contains("Message-ID: <") && raw.contains("Date: "),
            "{raw}"
        );
    }

    #[test]
    fn bad_addresses_are_named() {
        let mut c = config();
        c.to.push("not an address".into());
        let e = message(&c, &mail()).unwrap_err();
        assert!(
            matches!(&e, MailError::Address { field: "to", address, .. } if address == "not an address"),
            "{e}"
        );
        c.to.clear();
        assert!(matches!(message(&c, &mail()), Err(MailError::NoRecipient)));
        c.from = None;
        assert!(matches!(message(&c, &mail()), Err(MailError::NoSender)));
    }

    #[tokio::test]
    async fn without_server_or_outbox_nothing_is_sent() {
        assert!(matches!(
            send(&config(), &mail()).await,
            Err(MailError::NotConfigured)
        ));
    }

    #[tokio::test]
    async fn the_outbox_gets_one_whole_file_per_mail() {
        let dir = tempfile::tempdir().unwrap();
        let outbox = dir.path().join("new").join("outbox");
        let c = MailConfig {
            outbox: Some(outbox.clone()),
            ..config()
        };
        let first = send(&c, &mail()).await.unwrap();
        let second = send(&c, &mail()).await.unwrap();
        let (Delivered::Outbox { path: a }, Delivered::Outbox { path: b }) = (&first, &second)
        else {
            panic!("{first:?} {second:?}");
        };
        assert_ne!(a, b);
        assert!(first.to_string().starts_with("written to "));
        let mut names: Vec<String> = std::fs::read_dir(&outbox)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names.len(), 2, "{names:?}");
        assert!(names
            .iter()
            .all(|n| n.starts_with("td-mail-") && n.ends_with(".eml")));
        let raw = std::fs::read_to_string(a).unwrap();
        assert!(raw.contains("multipart/alternative"));
    }

    #[tokio::test]
    async fn a_server_that_is_not_there_is_named() {
        // A port nothing listens on: bound, then let go.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let c = MailConfig {
            smtp_host: Some("127.0.0.1".into()),
            smtp_port: port,
            security: MailSecurity::None,
            ..config()
        };
        let e = send(&c, &mail()).await.unwrap_err();
        let text = e.to_string();
        assert!(
            text.starts_with(&format!("127.0.0.1:{port}: cannot connect")),
            "{text}"
        );
    }

    #[tokio::test]
    async fn a_missing_password_file_is_named() {
        let c = MailConfig {
            smtp_host: Some("127.0.0.1".into()),
            smtp_port: 1,
            security: MailSecurity::None,
            user: Some("td".into()),
            password_file: Some("/nonexistent/td-mail.password".into()),
            ..config()
        };
        let e = send(&c, &mail()).await.unwrap_err().to_string();
        assert!(
            e.contains("/nonexistent/td-mail.password") && e.contains("127.0.0.1:1"),
            "{e}"
        );
    }
}
