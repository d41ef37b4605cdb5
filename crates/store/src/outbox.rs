//! The mail outbox: what the default mail transport records.

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

/// A recorded message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxMessage {
    /// Increasing with each message.
    pub id: i64,
    /// The recipient.
    pub to: String,
    /// The subject line.
    pub subject: String,
    /// The body.
    pub body: String,
    /// When it was recorded.
    pub created_at: Timestamp,
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
    /// Records a message, stamped now; returns its id.
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
            "INSERT INTO outbox (recipient, subject, body, created_at) VALUES (?1, ?2, ?3, ?4)
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
            "SELECT id, recipient, subject, body, created_at FROM (
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
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
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
