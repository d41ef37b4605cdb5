//! Delivery over SMTP, with lettre.

use std::time::Duration;

use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls as LettreTls, TlsParameters};
use lettre::{Message, SmtpTransport, Transport as _};
use plinth_store::Mail;

use crate::{DeliveryError, Error, Result, Transport};

/// How the connection to the SMTP server is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Tls {
    /// None: for a server on this machine or a trusted network only.
    None,
    /// A plain connection upgraded with STARTTLS, which is required (port 587).
    StartTls,
    /// TLS from the first byte (port 465).
    Tls,
}

/// Where and how to send mail: the host's configuration, not a plugin's.
#[derive(Clone)]
pub struct SmtpConfig {
    /// The server's name (also the name its certificate must carry).
    pub host: String,
    /// Its port.
    pub port: u16,
    /// How the connection is protected.
    pub tls: Tls,
    /// A user name and password, when the server wants them.
    pub credentials: Option<(String, String)>,
    /// The `From:` address.
    pub from: String,
    /// How long one delivery may take.
    pub timeout: Duration,
}

impl std::fmt::Debug for SmtpConfig {
    /// Never prints the password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls)
            .field("user", &self.credentials.as_ref().map(|(u, _)| u))
            .field("from", &self.from)
            .finish_non_exhaustive()
    }
}

/// An SMTP transport.
pub struct Smtp {
    transport: SmtpTransport,
    from: Mailbox,
}

impl Smtp {
    /// A transport for `config`. Nothing is connected yet.
    ///
    /// # Errors
    /// [`Error::Config`] for an unusable `from` address or TLS setup.
    pub fn new(config: &SmtpConfig) -> Result<Self> {
        let from: Mailbox = config
            .from
            .parse()
            .map_err(|e| Error::Config(format!("from address {:?}: {e}", config.from)))?;
        let tls = || {
            TlsParameters::new(config.host.clone())
                .map_err(|e| Error::Config(format!("TLS for {}: {e}", config.host)))
        };
        let tls = match config.tls {
            Tls::None => LettreTls::None,
            Tls::StartTls => LettreTls::Required(tls()?),
            Tls::Tls => LettreTls::Wrapper(tls()?),
        };
        let mut builder = SmtpTransport::builder_dangerous(&config.host)
            .port(config.port)
            .tls(tls)
            .timeout(Some(config.timeout));
        if let Some((user, password)) = &config.credentials {
            builder = builder.credentials(Credentials::new(user.clone(), password.clone()));
        }
        Ok(Self {
            transport: builder.build(),
            from,
        })
    }
}

impl Transport for Smtp {
    fn deliver(&mut self, _id: i64, mail: &Mail) -> Result<(), DeliveryError> {
        let to: Mailbox = mail
            .to
            .parse()
            .map_err(|e| DeliveryError::Permanent(format!("recipient {:?}: {e}", mail.to)))?;
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(mail.subject.clone())
            .body(mail.body.clone())
            .map_err(|e| DeliveryError::Permanent(format!("message: {e}")))?;
        match self.transport.send(&message) {
            Ok(_) => Ok(()),
            Err(e) if e.is_permanent() => Err(DeliveryError::Permanent(e.to_string())),
            Err(e) => Err(DeliveryError::Transient(e.to_string())),
        }
    }
}
