//! Delivering the outbox from the CLI: through SMTP when `PLINTH_SMTP` is
//! set, otherwise into the data directory's `mail/` folder (a recording
//! transport: nothing leaves the machine).

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use plinth_mail::{RecordingTransport, Report, Retry, Sender, Smtp, SmtpConfig, Tls};
use plinth_store::Db;

/// Where this CLI delivers mail.
#[derive(Clone)]
pub enum Delivery {
    /// Over SMTP, configured by the environment.
    Smtp(SmtpConfig),
    /// Into a folder (development: the folder is the inbox).
    Record(PathBuf),
    /// Nowhere: no SMTP server and no data directory; mail stays queued.
    Hold,
}

impl Delivery {
    /// From the environment: `PLINTH_SMTP` (`smtp://host:port`,
    /// `smtp+starttls://user@host:587`, `smtps://user@host:465`), its
    /// password in `PLINTH_SMTP_PASSWORD` (never on the command line), the
    /// sender in `PLINTH_MAIL_FROM`. Without `PLINTH_SMTP`, mail is recorded
    /// into `<data dir>/mail/`.
    pub fn from_env(data_dir: Option<&Path>) -> Result<Self> {
        match std::env::var("PLINTH_SMTP").ok().filter(|v| !v.is_empty()) {
            Some(url) => Ok(Delivery::Smtp(smtp_config(
                &url,
                std::env::var("PLINTH_SMTP_PASSWORD").ok(),
                std::env::var("PLINTH_MAIL_FROM").ok(),
            )?)),
            None => Ok(match data_dir {
                Some(dir) => Delivery::Record(dir.join("mail")),
                None => Delivery::Hold,
            }),
        }
    }

    /// Delivers what is due now; `None` when mail is held.
    pub fn deliver_due(&self, db: &Db) -> Result<Option<Report>> {
        let retry = Retry::default();
        let report = match self {
            Delivery::Smtp(config) => {
                Sender::new(db.clone(), Smtp::new(config)?, retry).deliver_due()?
            }
            Delivery::Record(dir) => {
                Sender::new(db.clone(), RecordingTransport::new(dir), retry).deliver_due()?
            }
            Delivery::Hold => return Ok(None),
        };
        Ok(Some(report))
    }

    /// One line saying where mail goes.
    pub fn describe(&self) -> String {
        match self {
            Delivery::Smtp(c) => format!("over SMTP to {}:{}", c.host, c.port),
            Delivery::Record(dir) => format!(
                "recorded into {} (set PLINTH_SMTP to send it)",
                dir.display()
            ),
            Delivery::Hold => {
                "held in the outbox (no PLINTH_SMTP and no data directory)".to_string()
            }
        }
    }
}

/// Parses `scheme://[user@]host[:port]`.
fn smtp_config(url: &str, password: Option<String>, from: Option<String>) -> Result<SmtpConfig> {
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| anyhow!("PLINTH_SMTP {url:?} is not scheme://[user@]host[:port]"))?;
    let (tls, default_port) = match scheme {
        "smtp" => (Tls::None, 25),
        "smtp+starttls" => (Tls::StartTls, 587),
        "smtps" => (Tls::Tls, 465),
        other => bail!("PLINTH_SMTP scheme {other:?}: use smtp, smtp+starttls or smtps"),
    };
    let rest = rest.trim_end_matches('/');
    let (user, hostport) = match rest.rsplit_once('@') {
        Some((user, hostport)) => (Some(user), hostport),
        None => (None, rest),
    };
    if user.is_some_and(|u| u.contains(':')) {
        bail!("put the SMTP password in PLINTH_SMTP_PASSWORD, not in PLINTH_SMTP");
    }
    let (host, port) = match hostport.rsplit_once(':') {
        Some((host, port)) => (
            host,
            port.parse()
                .with_context(|| format!("PLINTH_SMTP port {port:?}"))?,
        ),
        None => (hostport, default_port),
    };
    if host.is_empty() {
        bail!("PLINTH_SMTP {url:?} names no host");
    }
    let credentials = match (user, password) {
        (Some(user), Some(password)) => Some((user.to_string(), password)),
        (Some(user), None) => bail!("PLINTH_SMTP names user {user:?}: set PLINTH_SMTP_PASSWORD"),
        (None, _) => None,
    };
    Ok(SmtpConfig {
        host: host.to_string(),
        port,
        tls,
        credentials,
        from: from.unwrap_or_else(|| "plinth@localhost".into()),
        timeout: Duration::from_secs(15),
    })
}

/// The newest message delivered into `dir` to `to`, as text.
pub fn newest_recorded(dir: &Path, to: &str) -> Result<Option<String>> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(None);
    };
    let mut found: Vec<(i64, PathBuf)> = entries
        .flatten()
        .map(|e| e.path())
        .filter_map(|p| {
            let id = p.file_stem()?.to_str()?.parse().ok()?;
            (p.extension()? == "eml").then_some((id, p))
        })
        .collect();
    found.sort();
    for (_, path) in found.iter().rev() {
        let text = std::fs::read_to_string(path)?;
        if text.lines().next() == Some(&format!("To: {to}")) {
            return Ok(Some(text));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smtp_urls_parse_and_passwords_stay_out_of_them() -> Result<()> {
        let c = smtp_config(
            "smtp+starttls://ada@mail.example.com",
            Some("pw".into()),
            None,
        )?;
        assert_eq!(
            (c.host.as_str(), c.port, c.tls),
            ("mail.example.com", 587, Tls::StartTls)
        );
        assert_eq!(c.credentials, Some(("ada".into(), "pw".into())));
        assert!(!format!("{c:?}").contains("pw"), "the password is printed");
        let c = smtp_config("smtp://127.0.0.1:2525", None, Some("me@example.com".into()))?;
        assert_eq!((c.port, c.tls, &c.credentials), (2525, Tls::None, &None));
        assert!(smtp_config("smtps://ada:secret@host", None, None).is_err());
        assert!(smtp_config("smtps://ada@host", None, None).is_err());
        assert!(smtp_config("http://host", None, None).is_err());
        Ok(())
    }
}
