//! The statements of every operation, in SQLite's dialect.

use std::time::Instant;

use rusqlite::{OptionalExtension, Row};

use super::SqliteTx;
use crate::backend::{
    MailQueued, ProfileRow, TokenSql, Tx, UserKey, UserRow, keep_or_set, token_sql,
};
use crate::outbox::TABLES;
use crate::plugin::{AppliedMigration, PluginData, PluginMigration};
use crate::{
    DueMail, Failures, Mail, MailStatus, OutboxMessage, Result, Session, TableCount, Timestamp,
    Token, TokenKind, User,
};

macro_rules! user_columns {
    () => {
        "uuid, name, email, email_verified, avatar, bio, created_at, updated_at"
    };
}

/// `SELECT <user columns> FROM users WHERE <column> = ?1`, as a literal so that
/// the statement cache keys on one string per lookup.
macro_rules! user_select {
    ($column:literal) => {
        concat!(
            "SELECT ",
            user_columns!(),
            " FROM users WHERE ",
            $column,
            " = ?1"
        )
    };
}

fn user_from_row(row: &Row<'_>) -> rusqlite::Result<User> {
    Ok(User {
        uuid: row.get(0)?,
        name: row.get(1)?,
        email: row.get(2)?,
        email_verified: row.get(3)?,
        avatar: row.get(4)?,
        bio: row.get(5)?,
        created_at: row.get(6)?,
        updated_at: row.get(7)?,
    })
}

fn session_from_row(row: &Row<'_>) -> rusqlite::Result<Session> {
    Ok(Session {
        id: row.get(0)?,
        user_uuid: row.get(1)?,
        created_at: row.get(2)?,
        expires_at: row.get(3)?,
    })
}

fn token_from_row(row: &Row<'_>) -> rusqlite::Result<Token> {
    Ok(Token {
        token: row.get(0)?,
        user_uuid: row.get(1)?,
        created_at: row.get(2)?,
        expires_at: row.get(3)?,
    })
}

fn failures_from_row(r: &Row<'_>) -> rusqlite::Result<Failures> {
    Ok(Failures {
        count: r.get(0)?,
        last_at: r.get(1)?,
    })
}

const EMAIL_VERIFICATION: TokenSql =
    token_sql!("email_verification_tokens", "?1", "?2", "?3", "?4");
const PASSWORD_RESET: TokenSql = token_sql!("password_reset_tokens", "?1", "?2", "?3", "?4");

fn token_sql(kind: TokenKind) -> &'static TokenSql {
    match kind {
        TokenKind::EmailVerification => &EMAIL_VERIFICATION,
        TokenKind::PasswordReset => &PASSWORD_RESET,
    }
}

impl SqliteTx {
    fn execute(&mut self, sql: &str, params: impl rusqlite::Params) -> Result<u64> {
        let n = self.write()?.prepare_cached(sql)?.execute(params)?;
        Ok(n as u64)
    }
}

impl Tx for SqliteTx {
    fn set_deadline(&mut self, deadline: Instant) {
        SqliteTx::set_deadline(self, deadline);
    }

    fn rows_written(&self) -> u64 {
        SqliteTx::rows_written(self)
    }

    fn is_writing(&self) -> bool {
        SqliteTx::is_writing(self)
    }

    fn commit(mut self: Box<Self>) -> Result<()> {
        SqliteTx::commit(&mut self)
    }

    fn insert_user(&mut self, row: &UserRow<'_>) -> Result<User> {
        let mut stmt = self.write()?.prepare_cached(concat!(
            "INSERT INTO users (uuid, name, name_key, email, password_hash, email_verified, created_at, updated_at)
             VALUES (?1, ?2, ?5, ?3, '', 0, ?4, ?4) RETURNING ",
            user_columns!()
        ))?;
        Ok(stmt.query_row(
            (row.uuid, row.name, row.email, row.now, row.name_key),
            user_from_row,
        )?)
    }

    fn user(&mut self, key: UserKey, value: &str) -> Result<User> {
        let sql = match key {
            UserKey::Email => user_select!("email"),
            UserKey::Uuid => user_select!("uuid"),
            UserKey::Name => user_select!("name"),
        };
        let mut stmt = self.read()?.prepare_cached(sql)?;
        Ok(stmt.query_row([value], user_from_row)?)
    }

    fn password_hash(&mut self, uuid: &str) -> Result<String> {
        let mut stmt = self
            .read()?
            // An empty hash is a user with no password yet.
            .prepare_cached(
                "SELECT password_hash FROM users WHERE uuid = ?1 AND password_hash != ''",
            )?;
        Ok(stmt.query_row([uuid], |r| r.get(0))?)
    }

    fn set_password(&mut self, uuid: &str, hash: &str, now: Timestamp) -> Result<u64> {
        self.execute(
            "UPDATE users SET password_hash = ?2, updated_at = ?3 WHERE uuid = ?1",
            (uuid, hash, now),
        )
    }

    fn set_email_verified(&mut self, uuid: &str, verified: bool, now: Timestamp) -> Result<User> {
        let mut stmt = self.write()?.prepare_cached(concat!(
            "UPDATE users SET email_verified = ?2, updated_at = ?3 WHERE uuid = ?1 RETURNING ",
            user_columns!()
        ))?;
        Ok(stmt.query_row((uuid, verified, now), user_from_row)?)
    }

    fn update_profile(&mut self, uuid: &str, row: &ProfileRow<'_>) -> Result<User> {
        let (keep_avatar, avatar) = keep_or_set(row.avatar);
        let (keep_bio, bio) = keep_or_set(row.bio);
        let (name, key) = row.name.unzip();
        let mut stmt = self.write()?.prepare_cached(concat!(
            "UPDATE users SET
                name = COALESCE(?2, name),
                name_key = COALESCE(?8, name_key),
                avatar = CASE WHEN ?3 THEN avatar ELSE ?4 END,
                bio = CASE WHEN ?5 THEN bio ELSE ?6 END,
                updated_at = ?7
             WHERE uuid = ?1
             RETURNING ",
            user_columns!()
        ))?;
        Ok(stmt.query_row(
            (uuid, name, keep_avatar, avatar, keep_bio, bio, row.now, key),
            user_from_row,
        )?)
    }

    fn delete_user(&mut self, uuid: &str) -> Result<u64> {
        self.execute("DELETE FROM users WHERE uuid = ?1", [uuid])
    }

    fn insert_session(
        &mut self,
        id: &str,
        user: &str,
        now: Timestamp,
        expires: Timestamp,
    ) -> Result<Session> {
        let mut stmt = self.write()?.prepare_cached(
            "INSERT INTO sessions (id, user_uuid, created_at, expires_at) VALUES (?1, ?2, ?3, ?4)
             RETURNING id, user_uuid, created_at, expires_at",
        )?;
        Ok(stmt.query_row((id, user, now, expires), session_from_row)?)
    }

    fn session(&mut self, id: &str, now: Timestamp) -> Result<Session> {
        let mut stmt = self.read()?.prepare_cached(
            "SELECT id, user_uuid, created_at, expires_at FROM sessions
             WHERE id = ?1 AND expires_at > ?2",
        )?;
        Ok(stmt.query_row((id, now), session_from_row)?)
    }

    fn extend_session(&mut self, id: &str, now: Timestamp, expires: Timestamp) -> Result<Session> {
        let mut stmt = self.write()?.prepare_cached(
            "UPDATE sessions SET expires_at = ?3 WHERE id = ?1 AND expires_at > ?2
             RETURNING id, user_uuid, created_at, expires_at",
        )?;
        Ok(stmt.query_row((id, now, expires), session_from_row)?)
    }

    fn delete_session(&mut self, id: &str) -> Result<u64> {
        self.execute("DELETE FROM sessions WHERE id = ?1", [id])
    }

    fn delete_user_sessions(&mut self, user: &str) -> Result<u64> {
        self.execute("DELETE FROM sessions WHERE user_uuid = ?1", [user])
    }

    fn cleanup_sessions(&mut self, now: Timestamp) -> Result<u64> {
        self.execute("DELETE FROM sessions WHERE expires_at <= ?1", [now])
    }

    fn insert_token(
        &mut self,
        kind: TokenKind,
        token: &str,
        user: &str,
        now: Timestamp,
        expires: Timestamp,
    ) -> Result<Token> {
        let mut stmt = self.write()?.prepare_cached(token_sql(kind).insert)?;
        Ok(stmt.query_row((token, user, now, expires), token_from_row)?)
    }

    fn token(&mut self, kind: TokenKind, token: &str, now: Timestamp) -> Result<Token> {
        let mut stmt = self.read()?.prepare_cached(token_sql(kind).get)?;
        Ok(stmt.query_row((token, now), token_from_row)?)
    }

    fn delete_token(&mut self, kind: TokenKind, token: &str) -> Result<u64> {
        self.execute(token_sql(kind).delete, [token])
    }

    fn consume_token(&mut self, kind: TokenKind, token: &str, now: Timestamp) -> Result<Token> {
        let mut stmt = self.write()?.prepare_cached(token_sql(kind).consume)?;
        Ok(stmt.query_row((token, now), token_from_row)?)
    }

    fn delete_user_tokens(&mut self, kind: TokenKind, user: &str) -> Result<u64> {
        self.execute(token_sql(kind).delete_for_user, [user])
    }

    fn cleanup_tokens(&mut self, kind: TokenKind, now: Timestamp) -> Result<u64> {
        self.execute(token_sql(kind).cleanup, [now])
    }

    fn failures(&mut self, key: &str) -> Result<Option<Failures>> {
        let mut stmt = self
            .read()?
            .prepare_cached("SELECT count, last_at FROM failed_attempts WHERE key = ?1")?;
        Ok(stmt.query_row([key], failures_from_row).optional()?)
    }

    fn record_failure(&mut self, key: &str, now: Timestamp) -> Result<Failures> {
        let mut stmt = self.write()?.prepare_cached(
            "INSERT INTO failed_attempts (key, count, last_at) VALUES (?1, 1, ?2)
             ON CONFLICT (key) DO UPDATE SET count = count + 1, last_at = excluded.last_at
             RETURNING count, last_at",
        )?;
        Ok(stmt.query_row((key, now), failures_from_row)?)
    }

    fn reserve_failure(
        &mut self,
        key: &str,
        expected: u32,
        now: Timestamp,
    ) -> Result<Option<Failures>> {
        let conn = self.write()?;
        // No row is a count of 0 (clearing deletes the row).
        let row = if expected == 0 {
            conn.prepare_cached(
                "INSERT INTO failed_attempts (key, count, last_at) VALUES (?1, 1, ?2)
                 ON CONFLICT (key) DO NOTHING
                 RETURNING count, last_at",
            )?
            .query_row((key, now), failures_from_row)
        } else {
            conn.prepare_cached(
                "UPDATE failed_attempts SET count = count + 1, last_at = ?2
                 WHERE key = ?1 AND count = ?3
                 RETURNING count, last_at",
            )?
            .query_row((key, now, expected), failures_from_row)
        };
        Ok(row.optional()?)
    }

    fn clear_failures(&mut self, key: &str) -> Result<()> {
        self.execute("DELETE FROM failed_attempts WHERE key = ?1", [key])?;
        Ok(())
    }

    fn queue_mail(
        &mut self,
        mail: &Mail,
        now: Timestamp,
        limit: Option<(Timestamp, u32)>,
    ) -> Result<MailQueued> {
        // The write lock first: the count and the insert are then atomic
        // against every other writer of the file.
        self.write()?;
        if let Some((since, most)) = limit {
            let (recent, oldest) = self.mail_sent_since(&mail.to, since)?;
            if recent >= most {
                return Ok(MailQueued::Limited { recent, oldest });
            }
        }
        let mut stmt = self.write()?.prepare_cached(
            "INSERT INTO outbox (recipient, subject, body, created_at, status, next_attempt_at)
             VALUES (?1, ?2, ?3, ?4, 'queued', ?4)
             RETURNING id",
        )?;
        let id = stmt.query_row((&mail.to, &mail.subject, &mail.body, now), |r| r.get(0))?;
        Ok(MailQueued::Queued(id))
    }

    fn mail_sent_since(
        &mut self,
        recipient: &str,
        since: Timestamp,
    ) -> Result<(u32, Option<Timestamp>)> {
        let mut stmt = self.read()?.prepare_cached(
            "SELECT COUNT(*), MIN(created_at) FROM outbox WHERE recipient = ?1 AND created_at > ?2",
        )?;
        Ok(stmt.query_row((recipient, since), |r| Ok((r.get(0)?, r.get(1)?)))?)
    }

    fn outbox(&mut self, recipient: Option<&str>, limit: u32) -> Result<Vec<OutboxMessage>> {
        let mut stmt = self.read()?.prepare_cached(
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

    fn due_mail(&mut self, now: Timestamp, limit: u32) -> Result<Vec<DueMail>> {
        let mut stmt = self.read()?.prepare_cached(
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

    fn claim_mail(&mut self, id: i64, now: Timestamp, until: Timestamp) -> Result<u64> {
        self.execute(
            "UPDATE outbox SET next_attempt_at = ?3
             WHERE id = ?1 AND status = 'queued' AND next_attempt_at <= ?2",
            (id, now, until),
        )
    }

    fn mail_queued(&mut self) -> Result<u64> {
        let n: i64 = self.read()?.query_row(
            "SELECT COUNT(*) FROM outbox WHERE status = 'queued'",
            [],
            |r| r.get(0),
        )?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    fn mark_sent(&mut self, id: i64, now: Timestamp) -> Result<u64> {
        self.execute(
            "UPDATE outbox SET status = 'sent', sent_at = ?2, body = '',
                 attempts = attempts + 1, last_error = NULL
             WHERE id = ?1 AND status = 'queued'",
            (id, now),
        )
    }

    fn mark_failed(&mut self, id: i64, error: &str, retry_at: Option<Timestamp>) -> Result<u64> {
        match retry_at {
            Some(at) => self.execute(
                "UPDATE outbox SET attempts = attempts + 1, last_error = ?2,
                     next_attempt_at = ?3
                 WHERE id = ?1 AND status = 'queued'",
                (id, error, at),
            ),
            None => self.execute(
                "UPDATE outbox SET status = 'failed', attempts = attempts + 1,
                     last_error = ?2, body = ''
                 WHERE id = ?1 AND status = 'queued'",
                (id, error),
            ),
        }
    }

    fn plugin_sql(
        &mut self,
        ns: &crate::sql::Namespace,
        sql: &str,
        each: &[&[crate::sql::SqlValue]],
        want: crate::sql::Want,
        used: &mut Option<crate::unit::Usage>,
    ) -> std::result::Result<crate::sql::Answers, crate::sql::SqlError> {
        self.run_plugin_sql(ns, sql, each, want, used)
    }

    fn plugin_bytes(&mut self, plugin: &str) -> Result<u64> {
        let recorded: Option<i64> = self
            .write()?
            .prepare_cached("SELECT bytes FROM plugin_usage WHERE plugin = ?1")?
            .query_row([plugin], |r| r.get(0))
            .optional()?;
        if let Some(bytes) = recorded {
            return Ok(u64::try_from(bytes).unwrap_or(0));
        }
        let bytes = self
            .read_plugin_data(Some(plugin))?
            .first()
            .map_or(0, PluginData::bytes);
        self.execute(
            "INSERT INTO plugin_usage (plugin, bytes) VALUES (?1, ?2)",
            (plugin, i64::try_from(bytes).unwrap_or(i64::MAX)),
        )?;
        Ok(bytes)
    }

    fn add_plugin_bytes(&mut self, plugin: &str, delta: i64) -> Result<()> {
        self.execute(
            "UPDATE plugin_usage SET bytes = max(0, bytes + ?2) WHERE plugin = ?1",
            (plugin, delta),
        )?;
        Ok(())
    }

    fn forget_plugin_bytes(&mut self, plugin: &str) -> Result<()> {
        self.execute("DELETE FROM plugin_usage WHERE plugin = ?1", [plugin])?;
        Ok(())
    }

    fn plugin_script(
        &mut self,
        ns: &crate::sql::Namespace,
        script: &str,
        used: &mut Option<crate::unit::Usage>,
    ) -> std::result::Result<(), crate::sql::SqlError> {
        self.run_plugin_script(ns, script, used)
    }

    fn lock_plugin_schema(&mut self, plugin: &str) -> Result<Vec<AppliedMigration>> {
        self.write()?;
        self.plugin_migrations(plugin)
    }

    fn plugin_migrations(&mut self, plugin: &str) -> Result<Vec<AppliedMigration>> {
        let mut stmt = self.read()?.prepare_cached(
            "SELECT version, name, checksum, applied_at FROM plugin_migrations
             WHERE plugin = ?1 ORDER BY version",
        )?;
        let rows = stmt.query_map([plugin], |r| {
            Ok(AppliedMigration {
                version: r.get(0)?,
                name: r.get(1)?,
                checksum: r.get(2)?,
                applied_at: r.get(3)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn record_plugin_migration(
        &mut self,
        plugin: &str,
        m: &PluginMigration,
        now: Timestamp,
    ) -> Result<()> {
        self.execute(
            "INSERT INTO plugin_migrations (plugin, version, name, checksum, applied_at)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            (plugin, m.version, &m.name, m.checksum(), now),
        )?;
        Ok(())
    }

    fn plugin_data(&mut self, plugin: Option<&str>) -> Result<Vec<PluginData>> {
        self.read_plugin_data(plugin)
    }

    fn kv_get(&mut self, plugin: &str, bucket: &str, key: &str) -> Result<Option<Vec<u8>>> {
        let mut stmt = self.read()?.prepare_cached(
            "SELECT value FROM plugin_keyvalue WHERE plugin = ?1 AND bucket = ?2 AND key = ?3",
        )?;
        Ok(stmt
            .query_row((plugin, bucket, key), |r| r.get(0))
            .optional()?)
    }

    fn kv_get_for_update(
        &mut self,
        plugin: &str,
        bucket: &str,
        key: &str,
    ) -> Result<Option<Vec<u8>>> {
        // The write lock first: nothing changes the value until the unit ends.
        let mut stmt = self.write()?.prepare_cached(
            "SELECT value FROM plugin_keyvalue WHERE plugin = ?1 AND bucket = ?2 AND key = ?3",
        )?;
        Ok(stmt
            .query_row((plugin, bucket, key), |r| r.get(0))
            .optional()?)
    }

    fn kv_set(&mut self, plugin: &str, bucket: &str, key: &str, value: &[u8]) -> Result<()> {
        self.execute(
            "INSERT INTO plugin_keyvalue (plugin, bucket, key, value) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (plugin, bucket, key) DO UPDATE SET value = excluded.value",
            (plugin, bucket, key, value),
        )?;
        Ok(())
    }

    fn kv_delete(&mut self, plugin: &str, bucket: &str, key: &str) -> Result<()> {
        self.execute(
            "DELETE FROM plugin_keyvalue WHERE plugin = ?1 AND bucket = ?2 AND key = ?3",
            (plugin, bucket, key),
        )?;
        Ok(())
    }

    fn kv_keys(
        &mut self,
        plugin: &str,
        bucket: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<String>> {
        let mut stmt = self.read()?.prepare_cached(
            "SELECT key FROM plugin_keyvalue
             WHERE plugin = ?1 AND bucket = ?2 AND (?3 IS NULL OR key > ?3)
             ORDER BY key LIMIT ?4",
        )?;
        let rows = stmt.query_map((plugin, bucket, after, limit), |r| r.get(0))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn table_counts(&mut self) -> Result<Vec<TableCount>> {
        let conn = self.read()?;
        TABLES
            .iter()
            .map(|table| {
                let rows =
                    conn.query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |r| r.get(0))?;
                Ok(TableCount { table, rows })
            })
            .collect()
    }
}
