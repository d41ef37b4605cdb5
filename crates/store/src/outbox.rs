//! The mail outbox: a queue. A call queues its mail in its unit of work (a
//! call that fails sends nothing); a sender takes what is due, delivers it,
//! and marks it sent — scrubbing the body, which may carry a token — or
//! failed for now (retried later) or for good (scrubbed too).

use crate::domain::MailQueued;
use crate::limits::{MAX_EMAIL_BYTES, MAX_MAIL_BODY_BYTES, MAX_MAIL_SUBJECT_BYTES, check_len};
use crate::{Db, Error, Result, Timestamp, Unit};

/// A message to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mail {
    /// One address.
    pub to: String,
    /// One line.
    pub subject: String,
    /// Plain text.
    pub body: String,
}

/// Where a message is in its delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum MailStatus {
    /// Waiting for a sender (again, after a failed attempt).
    Queued,
    /// Delivered; its body is gone.
    Sent,
    /// Given up on after the sender's last attempt; its body is gone.
    Failed,
}

impl MailStatus {
    pub(crate) fn parse(text: &str) -> Self {
        match text {
            "sent" => MailStatus::Sent,
            "failed" => MailStatus::Failed,
            _ => MailStatus::Queued,
        }
    }

    /// `queued`, `sent` or `failed`.
    pub fn as_str(self) -> &'static str {
        match self {
            MailStatus::Queued => "queued",
            MailStatus::Sent => "sent",
            MailStatus::Failed => "failed",
        }
    }
}

/// A message in the outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxMessage {
    /// Increasing with each message.
    pub id: i64,
    /// The recipient.
    pub to: String,
    /// The subject line.
    pub subject: String,
    /// The body while the message is queued; empty once it was sent or
    /// given up on.
    pub body: String,
    /// When it was queued.
    pub created_at: Timestamp,
    /// Where it is in its delivery.
    pub status: MailStatus,
    /// Delivery attempts so far.
    pub attempts: u32,
    /// When it was delivered.
    pub sent_at: Option<Timestamp>,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
}

/// A queued message due for delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueMail {
    /// Its id in the outbox.
    pub id: i64,
    /// What to send.
    pub mail: Mail,
    /// Delivery attempts before this one.
    pub attempts: u32,
}

/// The number of rows in one table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableCount {
    /// The table.
    pub table: &'static str,
    /// Its rows.
    pub rows: i64,
}

/// Every table, in the order `db status` shows them.
pub const TABLES: [&str; 7] = [
    "users",
    "sessions",
    "email_verification_tokens",
    "password_reset_tokens",
    "outbox",
    "failed_attempts",
    "schema_version",
];

impl Unit {
    /// Queues a message, stamped now; returns its id. It is delivered only
    /// if the unit commits.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for an empty or oversized recipient, a subject
    /// over [`MAX_MAIL_SUBJECT_BYTES`] or with a line break, a body over
    /// [`MAX_MAIL_BODY_BYTES`].
    pub fn record_mail(&mut self, mail: &Mail) -> Result<i64> {
        check_mail(mail)?;
        let now = self.now();
        match self.tx().queue_mail(mail, now, None)? {
            MailQueued::Queued(id) => Ok(id),
            MailQueued::Limited { .. } => Err(Error::invalid("no limit was asked for")),
        }
    }

    /// Queues a message as [`record_mail`](Self::record_mail) does, unless
    /// `most` messages to its recipient were queued in the last
    /// `window_seconds` already. The count and the insert are atomic
    /// against every other unit queuing to the same recipient, on this host
    /// or another: two racing callers cannot both take the last place.
    ///
    /// # Errors
    /// As [`record_mail`](Self::record_mail).
    pub fn queue_mail_limited(
        &mut self,
        mail: &Mail,
        window_seconds: u32,
        most: u32,
    ) -> Result<MailQueued> {
        check_mail(mail)?;
        let now = self.now();
        let since = now - i64::from(window_seconds);
        self.tx().queue_mail(mail, now, Some((since, most)))
    }

    /// How many messages `recipient` was sent after `since`, and when the
    /// oldest of them was.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for an oversized recipient.
    pub fn mail_sent_since(
        &mut self,
        recipient: &str,
        since: Timestamp,
    ) -> Result<(u32, Option<Timestamp>)> {
        check_len("recipient", recipient, MAX_EMAIL_BYTES, true)?;
        self.tx().mail_sent_since(recipient, since)
    }
}

fn check_mail(mail: &Mail) -> Result<()> {
    check_len("recipient", &mail.to, MAX_EMAIL_BYTES, true)?;
    check_len("subject", &mail.subject, MAX_MAIL_SUBJECT_BYTES, false)?;
    check_len("body", &mail.body, MAX_MAIL_BODY_BYTES, false)?;
    if mail.subject.contains(['\r', '\n']) {
        return Err(Error::invalid("subject must be one line"));
    }
    Ok(())
}

impl Db {
    /// The newest `limit` messages of the outbox, oldest first; only those
    /// to `recipient` when given.
    ///
    /// # Errors
    /// [`Error::Engine`] when the database cannot be read.
    pub fn outbox(&self, recipient: Option<&str>, limit: u32) -> Result<Vec<OutboxMessage>> {
        self.unit()?.tx().outbox(recipient, limit)
    }

    /// Queued messages whose next attempt is due by now, oldest first, at
    /// most `limit`.
    ///
    /// # Errors
    /// [`Error::Engine`] when the database cannot be read.
    pub fn due_mail(&self, limit: u32) -> Result<Vec<DueMail>> {
        let mut unit = self.unit()?;
        let now = unit.now();
        unit.tx().due_mail(now, limit)
    }

    /// Takes a due message for this sender for `lease_seconds`: until then
    /// no other sender, on this host or another sharing the database, takes
    /// it. `false` when another sender took it first (or it is no longer
    /// queued). A sender that stops before recording the outcome leaves it
    /// to be taken again once the lease ends.
    ///
    /// # Errors
    /// [`Error::Busy`], [`Error::Engine`].
    pub fn claim_mail(&self, id: i64, lease_seconds: u32) -> Result<bool> {
        self.with_unit(|u| {
            let now = u.now();
            Ok(u.tx().claim_mail(id, now, now + i64::from(lease_seconds))? == 1)
        })
    }

    /// How many messages wait in the outbox (due now or later).
    ///
    /// # Errors
    /// [`Error::Engine`] when the database cannot be read.
    pub fn mail_queued(&self) -> Result<u64> {
        self.unit()?.tx().mail_queued()
    }

    /// Marks a queued message delivered, now, and scrubs its body.
    ///
    /// # Errors
    /// [`Error::NotFound`] when no queued message has that id (another
    /// sender got there first); [`Error::Busy`], [`Error::Engine`].
    pub fn mail_sent(&self, id: i64) -> Result<()> {
        self.with_unit(|u| {
            let now = u.now();
            if u.tx().mark_sent(id, now)? == 0 {
                return Err(Error::NotFound);
            }
            Ok(())
        })
    }

    /// Records a failed attempt to deliver a queued message: it is tried
    /// again `retry_in` seconds from now, or, with `None`, given up on (and
    /// its body scrubbed).
    ///
    /// # Errors
    /// [`Error::NotFound`] when no queued message has that id;
    /// [`Error::Busy`], [`Error::Engine`].
    pub fn mail_failed(&self, id: i64, error: &str, retry_in: Option<u32>) -> Result<()> {
        let error: String = error.chars().take(1000).collect();
        self.with_unit(|u| {
            let retry_at = retry_in.map(|delay| u.now() + i64::from(delay));
            if u.tx().mark_failed(id, &error, retry_at)? == 0 {
                return Err(Error::NotFound);
            }
            Ok(())
        })
    }

    /// Makes older versions of rewritten rows (a mail body before it was
    /// scrubbed) unreadable where that is the engine's job: on SQLite,
    /// copies the write-ahead log into the database file and empties it.
    /// Best effort: with readers active the log may not be emptied, and a
    /// later checkpoint does it.
    pub fn checkpoint(&self) {
        self.backend().checkpoint();
    }

    /// Row counts of every table.
    ///
    /// # Errors
    /// [`Error::Engine`] when the database cannot be read.
    pub fn table_counts(&self) -> Result<Vec<TableCount>> {
        self.unit()?.tx().table_counts()
    }

    /// Deletes expired sessions and tokens; returns how many of each.
    ///
    /// # Errors
    /// [`Error::Busy`] or [`Error::Engine`].
    pub fn cleanup_expired(&self) -> Result<[(&'static str, u32); 3]> {
        self.with_unit(|u| {
            Ok([
                ("sessions", u.cleanup_expired_sessions()?),
                (
                    "email_verification_tokens",
                    u.cleanup_expired_tokens(crate::TokenKind::EmailVerification)?,
                ),
                (
                    "password_reset_tokens",
                    u.cleanup_expired_tokens(crate::TokenKind::PasswordReset)?,
                ),
            ])
        })
    }
}
