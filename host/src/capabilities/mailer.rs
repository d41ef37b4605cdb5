//! `plinth:auth/mailer`: the default transport records messages in the
//! database's outbox, at most [`MAIL_PER_RECIPIENT`] per recipient in any
//! [`MAIL_WINDOW_SECONDS`], inside the call's unit of work (a call that
//! fails sends nothing).

use super::{Database, DbView};
use crate::bindings::plinth::auth::mailer::{self, MailError as WitMailError, Message};
use crate::capability::{Capability, Function, Gate, Interface};
use crate::grants::Access;

/// Most messages one recipient is sent in any window.
pub const MAIL_PER_RECIPIENT: u32 = 3;
/// The window of the per-recipient limit: 10 minutes.
pub const MAIL_WINDOW_SECONDS: i64 = 600;

/// `plinth:auth/mailer`.
pub const MAILER: Interface = Interface {
    name: "plinth:auth/mailer",
    version: "0.1.0",
    summary: "sends mail (recorded in the outbox), rate limited per recipient",
    gate: Gate::Manifest,
    functions: &[Function::write("send"), Function::read("link")],
};

/// The capability: links `plinth:auth/mailer`.
pub const CAPABILITY: Capability = Capability {
    interfaces: &[MAILER],
    add_to_linker: |linker| {
        mailer::add_to_linker::<_, Database>(linker, |s| DbView::of(s, &MAILER))
    },
};

const SEND: Access = MAILER.access("send");
const LINK: Access = MAILER.access("link");

/// The longest path `link` joins to the public URL, in bytes.
pub const MAX_LINK_PATH_BYTES: usize = 2048;

/// Why `send` failed, before it reaches the guest.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
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

impl mailer::Host for DbView<'_> {
    fn send(&mut self, message: Message) -> Result<(), MailError> {
        if self.check(SEND).is_err() {
            return Err(MailError::AccessDenied);
        }
        let unit = self.open_unit()?;
        let now = unit.now();
        let mail = plinth_store::Mail {
            to: message.to,
            subject: message.subject,
            body: message.body,
        };
        // The count and the insert are one step against every other call,
        // on this host or another sharing the database.
        let window = u32::try_from(MAIL_WINDOW_SECONDS).unwrap_or(u32::MAX);
        let id = match unit.queue_mail_limited(&mail, window, MAIL_PER_RECIPIENT)? {
            plinth_store::MailQueued::Queued(id) => id,
            plinth_store::MailQueued::Limited { oldest, .. } => {
                let free_at = oldest.unwrap_or(now) + MAIL_WINDOW_SECONDS;
                let wait = u32::try_from((free_at - now).max(1)).unwrap_or(u32::MAX);
                return Err(MailError::RateLimited(wait));
            }
        };
        tracing::info!(plugin = %self.plugin_name(), outbox_id = id, "mail recorded");
        Ok(())
    }

    fn link(&mut self, path: String) -> wasmtime::Result<Option<String>> {
        if self.check(LINK).is_err() {
            return Ok(None);
        }
        let Some(base) = self.plugin.public_url.clone() else {
            return Ok(None);
        };
        // A path of this site: no scheme, no authority, no line breaks.
        if !path.starts_with('/')
            || path.starts_with("//")
            || path.len() > MAX_LINK_PATH_BYTES
            || path.chars().any(|c| c.is_control() || c.is_whitespace())
        {
            return Ok(None);
        }
        Ok(Some(format!("{}{path}", base.trim_end_matches('/'))))
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
                tracing::error!(plugin = %self.plugin_name(), error = %e, "mail transport fault");
                WitMailError::Failed("transport error; see the host's log".into())
            }
        })
    }
}
