//! The mail outbox: a queue. A call queues its mail in its unit of work (a
//! call that fails sends nothing); a sender takes what is due, delivers it,
//! and marks it sent — scrubbing the body, which may carry a token — or
//! failed for now (retried later) or for good (scrubbed too).

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
    fn parse(text: &str) -> Self {
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
        check_len("recipient", &mail.to, MAX_EMAIL_BYTES, true)?;
        check_len("subject", &mail.subject, MAX_MAIL_SUBJECT_BYTES, false)?;
        check_len("body", &mail.body, MAX_MAIL_BODY_BYTES, false)?;
        if mail.subject.contains(['\r', '\n']) {
            return Err(Error::invalid("subject must be one line"));
        }
        let now = self.now();
        let mut stmt = self.write()?.prepare_cached(
            "INSERT INTO outbox (recipient, subject, body, created_at, status, next_attempt_at)
             VALUES (?1, ?2, ?3, ?4, 'queued', ?4)
             RETURNING id",
        )?;
        Ok(stmt.query_row((&mail.to, &mail.subject, &mail.body, now), |r| r.get(0))?)
    }

    /// How many messages `recipient` was sent after `since`, and when the
    /// oldest of them was.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for an oversized recipient.
    pub fn mail_sent_since(
        &self,
        recipient: &str,
        since: Timestamp,
    ) -> Result<(u32, Option<Timestamp>)> {
        check_len("recipient", recipient, MAX_EMAIL_BYTES, true)?;
        let mut stmt = self.read()?.prepare_cached(
            "SELECT COUNT(*), MIN(created_at) FROM outbox WHERE recipient = ?1 AND created_at > ?2",
        )?;
        Ok(stmt.query_row((recipient, since), |r| Ok((r.get(0)?, r.get(1)?)))?)
    }
}

impl Db {
    /// The newest `limit` messages of the outbox, oldest first; only those
    /// to `recipient` when given.
    ///
    /// # Errors
    /// [`Error::Engine`] when the file cannot be read.
    pub fn outbox(&self, recipient: Option<&str>, limit: u32) -> Result<Vec<OutboxMessage>> {
        let unit = self.unit()?;
        let mut stmt = unit.read()?.prepare_cached(
            "SELECT id, recipient, subject, body, created_at, status, attempts, sent_at, last_error
             FROM (
                 SELECT * FROM outbox WHERE ?1 IS NULL OR recipient = ?1
                 ORDER BY id DESC LIMIT ?2
             ) ORDER BY id",
        )?;
        let rows = stmt.query_map((recipient, limit), |r| {
            Ok(OutboxMessage {
                id: r.get(0)?,
                to: r.get(1)?,
                subject: r.get(2)?,
                body: r.get(3)?,
                created_at: r.get(4)?,
                status: MailStatus::parse(&r.get::<_, String>(5)?),
                attempts: r.get(6)?,
                sent_at: r.get(7)?,
                last_error: r.get(8)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Queued messages whose next attempt is due by now, oldest first, at
    /// most `limit`.
    ///
    /// # Errors
    /// [`Error::Engine`] when the file cannot be read.
    pub fn due_mail(&self, limit: u32) -> Result<Vec<DueMail>> {
        let unit = self.unit()?;
        let now = unit.now();
        let mut stmt = unit.read()?.prepare_cached(
            "SELECT id, recipient, subject, body, attempts FROM outbox
             WHERE status = 'queued' AND next_attempt_at <= ?1
             ORDER BY id LIMIT ?2",
        )?;
        let rows = stmt.query_map((now, limit), |r| {
            Ok(DueMail {
                id: r.get(0)?,
                mail: Mail {
                    to: r.get(1)?,
                    subject: r.get(2)?,
                    body: r.get(3)?,
                },
                attempts: r.get(4)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Marks a queued message delivered, now, and scrubs its body.
    ///
    /// # Errors
    /// [`Error::NotFound`] when no queued message has that id (another
    /// sender got there first); [`Error::Busy`], [`Error::Engine`].
    pub fn mail_sent(&self, id: i64) -> Result<()> {
        self.with_unit(|u| {
            let now = u.now();
            let changed = u
                .write()?
                .prepare_cached(
                    "UPDATE outbox SET status = 'sent', sent_at = ?2, body = '',
                         attempts = attempts + 1, last_error = NULL
                     WHERE id = ?1 AND status = 'queued'",
                )?
                .execute((id, now))?;
            if changed == 0 {
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
            let now = u.now();
            let changed = match retry_in {
                Some(delay) => u
                    .write()?
                    .prepare_cached(
                        "UPDATE outbox SET attempts = attempts + 1, last_error = ?2,
                             next_attempt_at = ?3
                         WHERE id = ?1 AND status = 'queued'",
                    )?
                    .execute((id, &error, now + i64::from(delay)))?,
                None => u
                    .write()?
                    .prepare_cached(
                        "UPDATE outbox SET status = 'failed', attempts = attempts + 1,
                             last_error = ?2, body = ''
                         WHERE id = ?1 AND status = 'queued'",
                    )?
                    .execute((id, &error))?,
            };
            if changed == 0 {
                return Err(Error::NotFound);
            }
            Ok(())
        })
    }

    /// Copies the write-ahead log into the database file and empties the
    /// log, so that older versions of rewritten pages (a mail body before it
    /// was scrubbed) do not stay in it. Best effort: with readers active the
    /// log may not be emptied, and a later checkpoint does it.
    pub fn checkpoint(&self) {
        if let Ok(conn) = self.acquire() {
            let _ = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
            self.release(conn);
        }
    }

    /// Row counts of every table.
    ///
    /// # Errors
    /// [`Error::Engine`] when the file cannot be read.
    pub fn table_counts(&self) -> Result<Vec<TableCount>> {
        let unit = self.unit()?;
        let conn = unit.read()?;
        TABLES
            .iter()
            .map(|table| {
                let rows =
                    conn.query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |r| r.get(0))?;
                Ok(TableCount { table, rows })
            })
            .collect()
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
