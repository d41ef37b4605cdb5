//! The statements of every operation, in PostgreSQL's dialect.

use std::time::Instant;

use tokio_postgres::Row;

use super::{Access, PgTx};
use crate::backend::{
    MailQueued, ProfileRow, TokenSql, Tx, UserKey, UserRow, keep_or_set, token_sql,
};
use crate::outbox::TABLES;
use crate::plugin::{AppliedMigration, PluginData, PluginMigration};
use crate::{
    DueMail, EngineError, Error, Failures, Mail, MailStatus, OutboxMessage, Result, Session,
    TableCount, Timestamp, Token, TokenKind, User,
};

/// The advisory lock class under which queuing mail to one recipient is
/// serialised across hosts (the key is a hash of the recipient).
const MAIL_LOCK_CLASS: i32 = 0x6d61_696c;
/// The advisory lock class of a plugin's schema (the key: its name's hash).
const PLUGIN_SCHEMA_LOCK_CLASS: i32 = 0x706c_7367;
/// The advisory lock class of one key of a plugin's bucket.
const KV_LOCK_CLASS: i32 = 0x706c_6b76;

macro_rules! user_columns {
    () => {
        "uuid, name, email, email_verified, avatar, bio, created_at, updated_at"
    };
}

macro_rules! user_select {
    ($column:literal) => {
        concat!(
            "SELECT ",
            user_columns!(),
            " FROM users WHERE ",
            $column,
            " = $1"
        )
    };
}

fn engine(e: tokio_postgres::Error) -> Error {
    Error::Engine(EngineError::new(e))
}

fn user_from_row(row: &Row) -> Result<User> {
    (|| {
        Ok(User {
            uuid: row.try_get(0)?,
            name: row.try_get(1)?,
            email: row.try_get(2)?,
            email_verified: row.try_get(3)?,
            avatar: row.try_get(4)?,
            bio: row.try_get(5)?,
            created_at: row.try_get(6)?,
            updated_at: row.try_get(7)?,
        })
    })()
    .map_err(engine)
}

fn session_from_row(row: &Row) -> Result<Session> {
    (|| {
        Ok(Session {
            id: row.try_get(0)?,
            user_uuid: row.try_get(1)?,
            created_at: row.try_get(2)?,
            expires_at: row.try_get(3)?,
        })
    })()
    .map_err(engine)
}

fn token_from_row(row: &Row) -> Result<Token> {
    (|| {
        Ok(Token {
            token: row.try_get(0)?,
            user_uuid: row.try_get(1)?,
            created_at: row.try_get(2)?,
            expires_at: row.try_get(3)?,
        })
    })()
    .map_err(engine)
}

/// An `INTEGER` column that holds a count.
fn count(row: &Row, i: usize) -> Result<u32> {
    let n: i32 = row.try_get(i).map_err(engine)?;
    Ok(u32::try_from(n).unwrap_or(0))
}

fn failures_from_row(row: &Row) -> Result<Failures> {
    Ok(Failures {
        count: count(row, 0)?,
        last_at: row.try_get(1).map_err(engine)?,
    })
}

const EMAIL_VERIFICATION: TokenSql =
    token_sql!("email_verification_tokens", "$1", "$2", "$3", "$4");
const PASSWORD_RESET: TokenSql = token_sql!("password_reset_tokens", "$1", "$2", "$3", "$4");

fn token_sql(kind: TokenKind) -> &'static TokenSql {
    match kind {
        TokenKind::EmailVerification => &EMAIL_VERIFICATION,
        TokenKind::PasswordReset => &PASSWORD_RESET,
    }
}

/// The counts of the rows a `COUNT(*)` of each table gives, in one statement.
const TABLE_COUNTS: &str = "SELECT
    (SELECT COUNT(*) FROM users),
    (SELECT COUNT(*) FROM sessions),
    (SELECT COUNT(*) FROM email_verification_tokens),
    (SELECT COUNT(*) FROM password_reset_tokens),
    (SELECT COUNT(*) FROM outbox),
    (SELECT COUNT(*) FROM failed_attempts),
    (SELECT COUNT(*) FROM schema_version)";

impl Tx for PgTx {
    fn set_deadline(&mut self, deadline: Instant) {
        PgTx::set_deadline(self, deadline);
    }

    fn rows_written(&self) -> u64 {
        PgTx::rows_written(self)
    }

    fn is_writing(&self) -> bool {
        PgTx::is_writing(self)
    }

    fn commit(mut self: Box<Self>) -> Result<()> {
        PgTx::commit(&mut self)
    }

    fn insert_user(&mut self, row: &UserRow<'_>) -> Result<User> {
        let r = self.row(
            concat!(
                "INSERT INTO users (uuid, name, name_key, email, password_hash, email_verified, created_at, updated_at)
                 VALUES ($1, $2, $5, $3, '', FALSE, $4, $4) RETURNING ",
                user_columns!()
            ),
            &[&row.uuid, &row.name, &row.email, &row.now, &row.name_key],
            Access::Write,
        )?;
        user_from_row(&r)
    }

    fn user(&mut self, key: UserKey, value: &str) -> Result<User> {
        let sql = match key {
            UserKey::Email => user_select!("email"),
            UserKey::Uuid => user_select!("uuid"),
            UserKey::Name => user_select!("name"),
        };
        user_from_row(&self.row(sql, &[&value], Access::Read)?)
    }

    fn password_hash(&mut self, uuid: &str) -> Result<String> {
        let r = self.row(
            "SELECT password_hash FROM users WHERE uuid = $1 AND password_hash != ''",
            &[&uuid],
            Access::Read,
        )?;
        r.try_get(0).map_err(engine)
    }

    fn set_password(&mut self, uuid: &str, hash: &str, now: Timestamp) -> Result<u64> {
        self.execute(
            "UPDATE users SET password_hash = $2, updated_at = $3 WHERE uuid = $1",
            &[&uuid, &hash, &now],
        )
    }

    fn set_email_verified(&mut self, uuid: &str, verified: bool, now: Timestamp) -> Result<User> {
        let r = self.row(
            concat!(
                "UPDATE users SET email_verified = $2, updated_at = $3 WHERE uuid = $1 RETURNING ",
                user_columns!()
            ),
            &[&uuid, &verified, &now],
            Access::Write,
        )?;
        user_from_row(&r)
    }

    fn update_profile(&mut self, uuid: &str, row: &ProfileRow<'_>) -> Result<User> {
        let (keep_avatar, avatar) = keep_or_set(row.avatar);
        let (keep_bio, bio) = keep_or_set(row.bio);
        let (name, key) = row.name.unzip();
        let r = self.row(
            concat!(
                "UPDATE users SET
                    name = COALESCE($2, name),
                    name_key = COALESCE($8, name_key),
                    avatar = CASE WHEN $3 THEN avatar ELSE $4 END,
                    bio = CASE WHEN $5 THEN bio ELSE $6 END,
                    updated_at = $7
                 WHERE uuid = $1
                 RETURNING ",
                user_columns!()
            ),
            &[
                &uuid,
                &name,
                &keep_avatar,
                &avatar,
                &keep_bio,
                &bio,
                &row.now,
                &key,
            ],
            Access::Write,
        )?;
        user_from_row(&r)
    }

    fn delete_user(&mut self, uuid: &str) -> Result<u64> {
        self.execute("DELETE FROM users WHERE uuid = $1", &[&uuid])
    }

    fn insert_session(
        &mut self,
        id: &str,
        user: &str,
        now: Timestamp,
        expires: Timestamp,
    ) -> Result<Session> {
        let r = self.row(
            "INSERT INTO sessions (id, user_uuid, created_at, expires_at) VALUES ($1, $2, $3, $4)
             RETURNING id, user_uuid, created_at, expires_at",
            &[&id, &user, &now, &expires],
            Access::Write,
        )?;
        session_from_row(&r)
    }

    fn session(&mut self, id: &str, now: Timestamp) -> Result<Session> {
        let r = self.row(
            "SELECT id, user_uuid, created_at, expires_at FROM sessions
             WHERE id = $1 AND expires_at > $2",
            &[&id, &now],
            Access::Read,
        )?;
        session_from_row(&r)
    }

    fn extend_session(&mut self, id: &str, now: Timestamp, expires: Timestamp) -> Result<Session> {
        let r = self.row(
            "UPDATE sessions SET expires_at = $3 WHERE id = $1 AND expires_at > $2
             RETURNING id, user_uuid, created_at, expires_at",
            &[&id, &now, &expires],
            Access::Write,
        )?;
        session_from_row(&r)
    }

    fn delete_session(&mut self, id: &str) -> Result<u64> {
        self.execute("DELETE FROM sessions WHERE id = $1", &[&id])
    }

    fn delete_user_sessions(&mut self, user: &str) -> Result<u64> {
        self.execute("DELETE FROM sessions WHERE user_uuid = $1", &[&user])
    }

    fn cleanup_sessions(&mut self, now: Timestamp) -> Result<u64> {
        self.execute("DELETE FROM sessions WHERE expires_at <= $1", &[&now])
    }

    fn insert_token(
        &mut self,
        kind: TokenKind,
        token: &str,
        user: &str,
        now: Timestamp,
        expires: Timestamp,
    ) -> Result<Token> {
        let r = self.row(
            token_sql(kind).insert,
            &[&token, &user, &now, &expires],
            Access::Write,
        )?;
        token_from_row(&r)
    }

    fn token(&mut self, kind: TokenKind, token: &str, now: Timestamp) -> Result<Token> {
        token_from_row(&self.row(token_sql(kind).get, &[&token, &now], Access::Read)?)
    }

    fn delete_token(&mut self, kind: TokenKind, token: &str) -> Result<u64> {
        self.execute(token_sql(kind).delete, &[&token])
    }

    fn consume_token(&mut self, kind: TokenKind, token: &str, now: Timestamp) -> Result<Token> {
        token_from_row(&self.row(token_sql(kind).consume, &[&token, &now], Access::Write)?)
    }

    fn delete_user_tokens(&mut self, kind: TokenKind, user: &str) -> Result<u64> {
        self.execute(token_sql(kind).delete_for_user, &[&user])
    }

    fn cleanup_tokens(&mut self, kind: TokenKind, now: Timestamp) -> Result<u64> {
        self.execute(token_sql(kind).cleanup, &[&now])
    }

    fn failures(&mut self, key: &str) -> Result<Option<Failures>> {
        let rows = self.rows(
            "SELECT count, last_at FROM failed_attempts WHERE key = $1",
            &[&key],
            Access::Read,
        )?;
        rows.first().map(failures_from_row).transpose()
    }

    fn record_failure(&mut self, key: &str, now: Timestamp) -> Result<Failures> {
        let r = self.row(
            "INSERT INTO failed_attempts (key, count, last_at) VALUES ($1, 1, $2)
             ON CONFLICT (key) DO UPDATE
                 SET count = failed_attempts.count + 1, last_at = excluded.last_at
             RETURNING count, last_at",
            &[&key, &now],
            Access::Write,
        )?;
        failures_from_row(&r)
    }

    fn reserve_failure(
        &mut self,
        key: &str,
        expected: u32,
        now: Timestamp,
    ) -> Result<Option<Failures>> {
        // No row is a count of 0 (clearing deletes the row). Two hosts
        // racing: the second insert waits for the first to commit and then
        // does nothing; the second update re-reads the row and no longer
        // matches the count.
        let rows = if expected == 0 {
            self.rows(
                "INSERT INTO failed_attempts (key, count, last_at) VALUES ($1, 1, $2)
                 ON CONFLICT (key) DO NOTHING
                 RETURNING count, last_at",
                &[&key, &now],
                Access::Write,
            )?
        } else {
            let expected = i32::try_from(expected).unwrap_or(i32::MAX);
            self.rows(
                "UPDATE failed_attempts SET count = count + 1, last_at = $2
                 WHERE key = $1 AND count = $3
                 RETURNING count, last_at",
                &[&key, &now, &expected],
                Access::Write,
            )?
        };
        rows.first().map(failures_from_row).transpose()
    }

    fn clear_failures(&mut self, key: &str) -> Result<()> {
        self.execute("DELETE FROM failed_attempts WHERE key = $1", &[&key])?;
        Ok(())
    }

    fn queue_mail(
        &mut self,
        mail: &Mail,
        now: Timestamp,
        limit: Option<(Timestamp, u32)>,
    ) -> Result<MailQueued> {
        if let Some((since, most)) = limit {
            // Every host queuing to this recipient takes the same lock until
            // its commit: the count below sees all of their mail.
            self.rows(
                "SELECT pg_advisory_xact_lock($1, hashtext($2))",
                &[&MAIL_LOCK_CLASS, &mail.to],
                Access::Lock,
            )?;
            let (recent, oldest) = self.mail_sent_since(&mail.to, since)?;
            if recent >= most {
                return Ok(MailQueued::Limited { recent, oldest });
            }
        }
        let r = self.row(
            "INSERT INTO outbox (recipient, subject, body, created_at, status, next_attempt_at)
             VALUES ($1, $2, $3, $4, 'queued', $4)
             RETURNING id",
            &[&mail.to, &mail.subject, &mail.body, &now],
            Access::Write,
        )?;
        Ok(MailQueued::Queued(r.try_get(0).map_err(engine)?))
    }

    fn mail_sent_since(
        &mut self,
        recipient: &str,
        since: Timestamp,
    ) -> Result<(u32, Option<Timestamp>)> {
        let r = self.row(
            "SELECT COUNT(*), MIN(created_at) FROM outbox WHERE recipient = $1 AND created_at > $2",
            &[&recipient, &since],
            Access::Read,
        )?;
        let n: i64 = r.try_get(0).map_err(engine)?;
        Ok((
            u32::try_from(n).unwrap_or(u32::MAX),
            r.try_get(1).map_err(engine)?,
        ))
    }

    fn outbox(&mut self, recipient: Option<&str>, limit: u32) -> Result<Vec<OutboxMessage>> {
        let limit = i64::from(limit);
        let rows = self.rows(
            "SELECT id, recipient, subject, body, created_at, status, attempts, sent_at, last_error
             FROM (
                 SELECT * FROM outbox WHERE $1::text IS NULL OR recipient = $1
                 ORDER BY id DESC LIMIT $2
             ) newest ORDER BY id",
            &[&recipient, &limit],
            Access::Read,
        )?;
        rows.iter()
            .map(|r| {
                Ok(OutboxMessage {
                    id: r.try_get(0).map_err(engine)?,
                    to: r.try_get(1).map_err(engine)?,
                    subject: r.try_get(2).map_err(engine)?,
                    body: r.try_get(3).map_err(engine)?,
                    created_at: r.try_get(4).map_err(engine)?,
                    status: MailStatus::parse(r.try_get(5).map_err(engine)?),
                    attempts: count(r, 6)?,
                    sent_at: r.try_get(7).map_err(engine)?,
                    last_error: r.try_get(8).map_err(engine)?,
                })
            })
            .collect()
    }

    fn due_mail(&mut self, now: Timestamp, limit: u32) -> Result<Vec<DueMail>> {
        let limit = i64::from(limit);
        let rows = self.rows(
            "SELECT id, recipient, subject, body, attempts FROM outbox
             WHERE status = 'queued' AND next_attempt_at <= $1
             ORDER BY id LIMIT $2",
            &[&now, &limit],
            Access::Read,
        )?;
        rows.iter()
            .map(|r| {
                Ok(DueMail {
                    id: r.try_get(0).map_err(engine)?,
                    mail: Mail {
                        to: r.try_get(1).map_err(engine)?,
                        subject: r.try_get(2).map_err(engine)?,
                        body: r.try_get(3).map_err(engine)?,
                    },
                    attempts: count(r, 4)?,
                })
            })
            .collect()
    }

    fn claim_mail(&mut self, id: i64, now: Timestamp, until: Timestamp) -> Result<u64> {
        self.execute(
            "UPDATE outbox SET next_attempt_at = $3
             WHERE id = $1 AND status = 'queued' AND next_attempt_at <= $2",
            &[&id, &now, &until],
        )
    }

    fn mail_queued(&mut self) -> Result<u64> {
        let rows = self.rows(
            "SELECT COUNT(*) FROM outbox WHERE status = 'queued'",
            &[],
            Access::Read,
        )?;
        let n: i64 = match rows.first() {
            Some(r) => r.try_get(0).map_err(engine)?,
            None => 0,
        };
        Ok(u64::try_from(n).unwrap_or(0))
    }

    fn mark_sent(&mut self, id: i64, now: Timestamp) -> Result<u64> {
        self.execute(
            "UPDATE outbox SET status = 'sent', sent_at = $2, body = '',
                 attempts = attempts + 1, last_error = NULL
             WHERE id = $1 AND status = 'queued'",
            &[&id, &now],
        )
    }

    fn mark_failed(&mut self, id: i64, error: &str, retry_at: Option<Timestamp>) -> Result<u64> {
        match retry_at {
            Some(at) => self.execute(
                "UPDATE outbox SET attempts = attempts + 1, last_error = $2,
                     next_attempt_at = $3
                 WHERE id = $1 AND status = 'queued'",
                &[&id, &error, &at],
            ),
            None => self.execute(
                "UPDATE outbox SET status = 'failed', attempts = attempts + 1,
                     last_error = $2, body = ''
                 WHERE id = $1 AND status = 'queued'",
                &[&id, &error],
            ),
        }
    }

    fn plugin_sql(
        &mut self,
        ns: &crate::sql::Namespace,
        sql: &str,
        each: &[&[crate::sql::SqlValue]],
        want: crate::sql::Want,
        _used: &mut Option<crate::unit::Usage>,
    ) -> std::result::Result<crate::sql::Answers, crate::sql::SqlError> {
        self.run_plugin_sql(ns, sql, each, want, false)
    }

    fn plugin_script(
        &mut self,
        ns: &crate::sql::Namespace,
        script: &str,
        _used: &mut Option<crate::unit::Usage>,
    ) -> std::result::Result<(), crate::sql::SqlError> {
        // Each statement is measured against the quota as it runs.
        self.run_plugin_sql(ns, script, &[&[]], crate::sql::Want::Outcome, true)
            .map(|_| ())
    }

    fn lock_plugin_schema(&mut self, plugin: &str) -> Result<Vec<AppliedMigration>> {
        // Every host migrating this plugin takes the same lock until its
        // commit, and then reads what the others applied.
        self.rows(
            "SELECT pg_advisory_xact_lock($1, hashtext($2))",
            &[&PLUGIN_SCHEMA_LOCK_CLASS, &plugin],
            Access::Lock,
        )?;
        self.plugin_migrations(plugin)
    }

    fn plugin_migrations(&mut self, plugin: &str) -> Result<Vec<AppliedMigration>> {
        let rows = self.rows(
            "SELECT version, name, checksum, applied_at FROM plugin_migrations
             WHERE plugin = $1 ORDER BY version",
            &[&plugin],
            Access::Read,
        )?;
        rows.iter()
            .map(|r| {
                let version: i32 = r.try_get(0).map_err(engine)?;
                Ok(AppliedMigration {
                    version: u32::try_from(version).unwrap_or(0),
                    name: r.try_get(1).map_err(engine)?,
                    checksum: r.try_get(2).map_err(engine)?,
                    applied_at: r.try_get(3).map_err(engine)?,
                })
            })
            .collect()
    }

    fn record_plugin_migration(
        &mut self,
        plugin: &str,
        m: &PluginMigration,
        now: Timestamp,
    ) -> Result<()> {
        let version = i32::try_from(m.version).map_err(|_| Error::invalid("migration version"))?;
        self.execute(
            "INSERT INTO plugin_migrations (plugin, version, name, checksum, applied_at)
             VALUES ($1, $2, $3, $4, $5)",
            &[&plugin, &version, &m.name, &m.checksum(), &now],
        )?;
        Ok(())
    }

    fn plugin_data(&mut self, plugin: Option<&str>) -> Result<Vec<PluginData>> {
        let versions = self
            .rows(
                "SELECT plugin, MAX(version) FROM plugin_migrations GROUP BY plugin",
                &[],
                Access::Read,
            )?
            .iter()
            .map(|r| {
                let v: i32 = r.try_get(1).map_err(engine)?;
                Ok((r.try_get(0).map_err(engine)?, u32::try_from(v).unwrap_or(0)))
            })
            .collect::<Result<Vec<_>>>()?;
        let keys = self
            .rows(
                "SELECT plugin, COUNT(*), COALESCE(SUM(octet_length(key) + octet_length(value)), 0)::bigint
                 FROM plugin_keyvalue GROUP BY plugin",
                &[],
                Access::Read,
            )?
            .iter()
            .map(|r| {
                let n: i64 = r.try_get(1).map_err(engine)?;
                let bytes: i64 = r.try_get(2).map_err(engine)?;
                Ok((
                    r.try_get(0).map_err(engine)?,
                    u64::try_from(n).unwrap_or(0),
                    u64::try_from(bytes).unwrap_or(0),
                ))
            })
            .collect::<Result<Vec<_>>>()?;
        let objects = self
            .rows(
                "SELECT substr(n.nspname, 8), c.relname::text,
                        (CASE WHEN c.relkind = 'i' THEN pg_relation_size(c.oid)
                              ELSE pg_table_size(c.oid) END)::bigint
                 FROM pg_class AS c JOIN pg_namespace AS n ON n.oid = c.relnamespace
                 WHERE n.nspname LIKE 'plugin\\_%' AND c.relkind IN ('r', 'm', 'i')
                 ORDER BY 1, 2",
                &[],
                Access::Read,
            )?
            .iter()
            .map(|r| {
                let bytes: i64 = r.try_get(2).map_err(engine)?;
                Ok((
                    r.try_get(0).map_err(engine)?,
                    r.try_get(1).map_err(engine)?,
                    u64::try_from(bytes).unwrap_or(0),
                ))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(crate::plugin::gather(plugin, versions, keys, objects))
    }

    fn plugin_bytes(&mut self, plugin: &str) -> Result<u64> {
        let rows = self.rows(
            "SELECT bytes FROM plugin_usage WHERE plugin = $1",
            &[&plugin],
            Access::Read,
        )?;
        if let Some(r) = rows.first() {
            let bytes: i64 = r.try_get(0).map_err(engine)?;
            return Ok(u64::try_from(bytes).unwrap_or(0));
        }
        let bytes = self
            .plugin_data(Some(plugin))?
            .first()
            .map_or(0, PluginData::bytes);
        let stored = i64::try_from(bytes).unwrap_or(i64::MAX);
        // Two hosts may both count it: the first row stays.
        self.execute(
            "INSERT INTO plugin_usage (plugin, bytes) VALUES ($1, $2)
             ON CONFLICT ON CONSTRAINT plugin_usage_pkey DO NOTHING",
            &[&plugin, &stored],
        )?;
        Ok(bytes)
    }

    fn add_plugin_bytes(&mut self, plugin: &str, delta: i64) -> Result<()> {
        self.execute(
            "UPDATE plugin_usage SET bytes = greatest(0, bytes + $2) WHERE plugin = $1",
            &[&plugin, &delta],
        )?;
        Ok(())
    }

    fn forget_plugin_bytes(&mut self, plugin: &str) -> Result<()> {
        self.execute("DELETE FROM plugin_usage WHERE plugin = $1", &[&plugin])?;
        Ok(())
    }

    fn kv_get(&mut self, plugin: &str, bucket: &str, key: &str) -> Result<Option<Vec<u8>>> {
        let rows = self.rows(
            "SELECT value FROM plugin_keyvalue WHERE plugin = $1 AND bucket = $2 AND key = $3",
            &[&plugin, &bucket, &key],
            Access::Read,
        )?;
        rows.first()
            .map(|r| r.try_get(0).map_err(engine))
            .transpose()
    }

    fn kv_get_for_update(
        &mut self,
        plugin: &str,
        bucket: &str,
        key: &str,
    ) -> Result<Option<Vec<u8>>> {
        // A lock on the key, held to the commit, whether or not it has a
        // row yet: two hosts incrementing a new key take turns.
        let lock_key = format!("{plugin}\n{bucket}\n{key}");
        self.rows(
            "SELECT pg_advisory_xact_lock($1, hashtext($2))",
            &[&KV_LOCK_CLASS, &lock_key],
            Access::Lock,
        )?;
        self.kv_get(plugin, bucket, key)
    }

    fn kv_set(&mut self, plugin: &str, bucket: &str, key: &str, value: &[u8]) -> Result<()> {
        self.execute(
            "INSERT INTO plugin_keyvalue (plugin, bucket, key, value) VALUES ($1, $2, $3, $4)
             ON CONFLICT ON CONSTRAINT plugin_keyvalue_pkey DO UPDATE SET value = excluded.value",
            &[&plugin, &bucket, &key, &value],
        )?;
        Ok(())
    }

    fn kv_delete(&mut self, plugin: &str, bucket: &str, key: &str) -> Result<()> {
        self.execute(
            "DELETE FROM plugin_keyvalue WHERE plugin = $1 AND bucket = $2 AND key = $3",
            &[&plugin, &bucket, &key],
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
        let limit = i64::from(limit);
        let rows = self.rows(
            "SELECT key FROM plugin_keyvalue
             WHERE plugin = $1 AND bucket = $2 AND ($3::text IS NULL OR key COLLATE \"C\" > $3)
             ORDER BY key COLLATE \"C\" LIMIT $4",
            &[&plugin, &bucket, &after, &limit],
            Access::Read,
        )?;
        rows.iter().map(|r| r.try_get(0).map_err(engine)).collect()
    }

    fn table_counts(&mut self) -> Result<Vec<TableCount>> {
        let r = self.row(TABLE_COUNTS, &[], Access::Read)?;
        TABLES
            .iter()
            .enumerate()
            .map(|(i, table)| {
                Ok(TableCount {
                    table,
                    rows: r.try_get(i).map_err(engine)?,
                })
            })
            .collect()
    }
}
