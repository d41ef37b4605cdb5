//! `plinth:auth/mailer`: the default transport records messages in the
//! database's outbox, at most [`MAIL_PER_RECIPIENT`] per recipient in any
//! [`MAIL_WINDOW_SECONDS`].

use crate::bindings::auth::plinth::auth::mailer::{Host, MailError as WitMailError, Message};
use crate::grants::{Access, Interface};
use crate::state::CallState;

/// Most messages one recipient is sent in any window.
pub const MAIL_PER_RECIPIENT: u32 = 3;
/// The window of the per-recipient limit: 10 minutes.
pub const MAIL_WINDOW_SECONDS: i64 = 600;

/// Why `send` failed, before it reaches the guest.
#[derive(Debug, thiserror::Error)]
pub enum MailError {
    /// Too much mail to this recipient; retry after this many seconds.
    #[error("rate limited; retry after {0} s")]
    RateLimited(u32),
    /// The mailer is not granted.
    #[error("plinth:auth/mailer is not granted")]
    AccessDenied,
    /// The store refused or failed.
    #[error(transparent)]
    Store(#[from] plinth_store::Error),
}

impl Host for CallState {
    fn send(&mut self, message: Message) -> Result<(), MailError> {
        if !self.plugin.grants.allows(Interface::Mailer, Access::Write) {
            return Err(MailError::AccessDenied);
        }
        let unit = self.unit()?;
        let now = unit.now();
        let (recent, oldest) = unit.mail_sent_since(&message.to, now - MAIL_WINDOW_SECONDS)?;
        if recent >= MAIL_PER_RECIPIENT {
            let free_at = oldest.unwrap_or(now) + MAIL_WINDOW_SECONDS;
            let wait = u32::try_from((free_at - now).max(1)).unwrap_or(u32::MAX);
            return Err(MailError::RateLimited(wait));
        }
        let id = unit.record_mail(&plinth_store::Mail {
            to: message.to,
            subject: message.subject,
            body: message.body,
        })?;
        tracing::info!(plugin = %self.plugin.name, outbox_id = id, "mail recorded");
        Ok(())
    }

    fn convert_mail_error(&mut self, err: MailError) -> wasmtime::Result<WitMailError> {
        Ok(match err {
            MailError::RateLimited(s) => WitMailError::RateLimited(s),
            MailError::AccessDenied => WitMailError::AccessDenied,
            MailError::Store(plinth_store::Error::InvalidInput(why)) => {
                WitMailError::InvalidMessage(why)
            }
            MailError::Store(plinth_store::Error::Busy) => {
                WitMailError::Failed("database busy".into())
            }
            MailError::Store(e) => {
                tracing::error!(plugin = %self.plugin.name, error = %e, "mail transport fault");
                WitMailError::Failed("transport error; see the host's log".into())
            }
        })
    }
}
