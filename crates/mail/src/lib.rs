//! Delivers plinth's outbox.
//!
//! The mailer capability queues each message in the outbox table inside the
//! call's unit of work: a call that fails queues nothing. A [`Sender`] takes
//! what is due, hands it to a [`Transport`], and records the outcome:
//!
//! * delivered — the message is marked sent and its body scrubbed (a body
//!   may carry a sign-in or reset token; what the operator keeps never
//!   holds a usable one);
//! * refused for good (an SMTP 5xx answer, an address the transport cannot
//!   use) — marked failed, body scrubbed;
//! * failed for now (the server is down, a 4xx answer) — tried again after
//!   a delay that doubles each time ([`Retry`]), and given up on (failed,
//!   scrubbed) after [`Retry::max_attempts`].
//!
//! ```no_run
//! use plinth_mail::{Retry, Sender, Smtp, SmtpConfig, Tls};
//! use plinth_store::Db;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let db = Db::open("app.db")?;
//! let smtp = Smtp::new(&SmtpConfig {
//!     host: "mail.example.com".into(),
//!     port: 587,
//!     tls: Tls::StartTls,
//!     credentials: Some(("plinth".into(), "secret".into())),
//!     from: "accounts@example.com".into(),
//!     timeout: std::time::Duration::from_secs(10),
//! })?;
//! // In the background, every second, until the handle is dropped.
//! let sender = Sender::new(db, smtp, Retry::default()).spawn(std::time::Duration::from_secs(1))?;
//! # drop(sender);
//! # Ok(())
//! # }
//! ```

mod recording;
mod sender;
mod smtp;

pub use recording::RecordingTransport;
pub use sender::{Report, Retry, Sender, SenderHandle};
pub use smtp::{Smtp, SmtpConfig, Tls};

use plinth_store::Mail;

/// A `Result` whose error defaults to this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why the mail could not be handled (as opposed to one message not being
/// delivered, which is a [`DeliveryError`] recorded in the outbox).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The outbox could not be read or updated.
    #[error(transparent)]
    Store(#[from] plinth_store::Error),
    /// The transport's configuration is unusable (a bad sender address, a
    /// TLS setup that cannot be built).
    #[error("mail transport: {0}")]
    Config(String),
    /// The sender's thread could not be started.
    #[error("cannot start the mail sender: {0}")]
    Thread(#[source] std::io::Error),
}

/// Why one message was not delivered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DeliveryError {
    /// It may go through later (the server is down or busy, a 4xx answer).
    #[error("{0}")]
    Transient(String),
    /// It never will (a 5xx answer, an address that cannot be used).
    #[error("{0}")]
    Permanent(String),
}

/// Where a [`Sender`] hands each message.
pub trait Transport: Send + 'static {
    /// Delivers `mail` (outbox id `id`).
    ///
    /// # Errors
    /// A [`DeliveryError`] saying whether trying again may help.
    fn deliver(&mut self, id: i64, mail: &Mail) -> Result<(), DeliveryError>;
}
