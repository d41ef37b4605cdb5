//! One unit of work on one pooled PostgreSQL connection: the engine side
//! of [`Tx`]. Reads before the unit's first write run on their own; the
//! first write opens a transaction, and every statement inside one runs in
//! a savepoint pipelined in the same round trip (see the module above).

use std::borrow::Cow;
use std::pin::{Pin, pin};
use std::time::{Duration, Instant};

use tokio_postgres::types::ToSql;
use tokio_postgres::{NoTls, Row};

use super::errors::{classify, lost};
use super::{Postgres, sandbox};
use crate::engine::{Access, Arg, Lock, Sql, Tx, wait_budget};
use crate::{EngineError, Error, Result};

/// The advisory lock class under which queuing mail to one recipient is
/// serialised across hosts (the key is a hash of the recipient).
const MAIL_LOCK_CLASS: i32 = 0x6d61_696c;
/// The advisory lock class of a plugin's schema (the key: its name's hash).
const PLUGIN_SCHEMA_LOCK_CLASS: i32 = 0x706c_7367;
/// The advisory lock class of one key of a plugin's bucket.
const KV_LOCK_CLASS: i32 = 0x706c_6b76;

/// What a statement is run for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Want {
    /// Its rows.
    Rows,
    /// The number of rows it changed.
    Count,
}

/// One unit of work on one connection, taken at its first statement.
#[derive(Debug)]
pub(crate) struct PgTx {
    pub(super) pg: Postgres,
    pub(super) client: Option<deadpool_postgres::Object>,
    /// A transaction is open (the unit has written).
    pub(super) writing: bool,
    /// The connection was lost or is in a state not known: nothing more
    /// runs on it, and it is not reused.
    pub(super) broken: bool,
    pub(super) deadline: Option<Instant>,
    /// Fires when the unit's waits must end (see [`PgTx::run`]).
    pub(super) timer: Option<Pin<Box<tokio::time::Sleep>>>,
    pub(super) rows: u64,
    /// The plugins' sessions this unit ran statements in (see `sandbox`).
    pub(super) sessions: Vec<sandbox::PluginSession>,
}

/// How long a statement is given to end after its cancel request was sent.
pub(super) const CANCEL_GRACE: Duration = Duration::from_secs(1);

impl PgTx {
    /// Runs one statement: outside a transaction for a read before the
    /// first write; inside one, in a savepoint. Returns its rows and the
    /// count of rows it changed.
    pub(super) fn run(
        &mut self,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
        want: Want,
        access: Access,
    ) -> Result<(Vec<Row>, u64)> {
        if self.broken {
            return Err(Error::Unavailable(EngineError::from_message(
                "the unit's connection was lost; its writes were rolled back",
            )));
        }
        // Without a deadline the server's own bounds hold (`lock_timeout`,
        // the busy timeout, for lock waits) and a statement runs to its
        // end. With one, every wait also ends a little before it: the
        // unit's timer is set there (not capped by the busy timeout, which
        // bounds one lock wait, not the unit).
        let budget = match self.deadline {
            Some(_) => {
                let budget = wait_budget(self.deadline, Duration::MAX);
                if budget.is_zero() {
                    return Err(Error::Busy);
                }
                Some(budget)
            }
            None => None,
        };
        let busy_timeout = self.pg.inner.options.busy_timeout;
        let pg = self.pg.clone();
        let begin = access != Access::Read && !self.writing;
        let in_tx = self.writing || begin;
        let client_slot = &mut self.client;
        let timer_slot = &mut self.timer;
        let outcome = pg.run(async {
            // One timer for the unit, made at its first bounded statement and
            // polled by each: a timer made and dropped per statement costs a
            // wake of the runtime's driver thread every time.
            let timer = budget.map(|budget| {
                timer_slot.get_or_insert_with(|| Box::pin(tokio::time::sleep(budget)))
            });
            if client_slot.is_none() {
                // A wait for a free connection is a wait like any other.
                let client = match budget {
                    None => pg.connection().await?,
                    Some(budget) => tokio::time::timeout(budget.min(busy_timeout), pg.connection())
                        .await
                        .map_err(|_| Error::Busy)??,
                };
                *client_slot = Some(client);
            }
            let Some(client) = client_slot.as_ref() else {
                return Err(Error::invalid("no connection"));
            };
            Ok(statement(client, sql, params, want, begin, in_tx, timer).await)
        });
        // An error here is no connection: nothing ran.
        match outcome? {
            Outcome::Done(rows, n) => {
                if begin {
                    self.writing = true;
                }
                if access == Access::Write {
                    self.rows += n;
                }
                Ok((rows, n))
            }
            Outcome::Failed { error, began } => {
                if began {
                    self.writing = true;
                }
                Err(error)
            }
            Outcome::Lost(error) => {
                self.broken = true;
                Err(error)
            }
        }
    }

    pub(super) fn rows(
        &mut self,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
        access: Access,
    ) -> Result<Vec<Row>> {
        Ok(self.run(sql, params, Want::Rows, access)?.0)
    }

    pub(super) fn end(&mut self, sql: &'static str) -> Result<()> {
        let Some(client) = self.client.as_ref() else {
            return Ok(());
        };
        let result = self.pg.run(client.batch_execute(sql));
        self.writing = false;
        result.map_err(|e| {
            self.broken = true;
            classify(e)
        })
    }
}

/// How one statement ended.
enum Outcome {
    /// It ran: its rows and count.
    Done(Vec<Row>, u64),
    /// It failed and changed nothing (its savepoint was rolled back); the
    /// unit goes on. `began`: the transaction it opened stays open.
    Failed { error: Error, began: bool },
    /// The connection is gone or in an unknown state.
    Lost(Error),
}

/// Runs one statement on `client` within `budget`, pipelining the
/// transaction's `BEGIN` and the savepoint around it into one round trip.
async fn statement(
    client: &deadpool_postgres::Object,
    sql: &'static str,
    params: &[&(dyn ToSql + Sync)],
    want: Want,
    begin: bool,
    in_tx: bool,
    timer: Option<&mut Pin<Box<tokio::time::Sleep>>>,
) -> Outcome {
    let open = match (begin, in_tx) {
        (true, _) => "BEGIN; SAVEPOINT plinth_statement",
        (false, true) => "SAVEPOINT plinth_statement",
        (false, false) => "",
    };
    let work = async {
        let prepared = client.prepare_cached(sql).await?;
        let opened = async {
            if open.is_empty() {
                Ok(())
            } else {
                client.batch_execute(open).await
            }
        };
        let ran = async {
            match want {
                Want::Rows => client.query(&prepared, params).await.map(|rows| {
                    let n = rows.len() as u64;
                    (rows, n)
                }),
                Want::Count => client
                    .execute(&prepared, params)
                    .await
                    .map(|n| (Vec::new(), n)),
            }
        };
        let released = async {
            if in_tx {
                client
                    .batch_execute("RELEASE SAVEPOINT plinth_statement")
                    .await
            } else {
                Ok(())
            }
        };
        if !in_tx {
            // A read on its own: one request, nothing around it.
            return ran.await;
        }
        // Sent in one go; answered in order.
        let (opened, ran, released) = tokio::join!(opened, ran, released);
        opened?;
        let ran = ran?;
        released?;
        Ok::<_, tokio_postgres::Error>(ran)
    };
    let mut work = pin!(work);
    let result = match timer {
        None => work.await,
        Some(timer) => tokio::select! {
        result = &mut work => result,
        () = timer.as_mut() => {
            // Past the budget: ask the server to stop the statement, then
            // give it a moment to answer so that the savepoint can be
            // rolled back and the unit go on.
            let _ = client.cancel_token().cancel_query(NoTls).await;
            match tokio::time::timeout(CANCEL_GRACE, &mut work).await {
                Ok(Ok(done)) => Ok(done),
                Ok(Err(_)) => {
                    return settle(client, in_tx, begin, Error::Busy).await;
                }
                Err(_) => return Outcome::Lost(Error::Busy),
            }
        }
        },
    };
    match result {
        Ok((rows, n)) => Outcome::Done(rows, n),
        Err(e) if client.is_closed() => Outcome::Lost(lost(e)),
        Err(e) => settle(client, in_tx, begin, classify(e)).await,
    }
}

/// After a failed statement inside a transaction: rolls back to its
/// savepoint, so that the transaction goes on without it.
async fn settle(
    client: &deadpool_postgres::Object,
    in_tx: bool,
    began: bool,
    error: Error,
) -> Outcome {
    if !in_tx {
        return Outcome::Failed {
            error,
            began: false,
        };
    }
    match client
        .batch_execute("ROLLBACK TO SAVEPOINT plinth_statement; RELEASE SAVEPOINT plinth_statement")
        .await
    {
        Ok(()) => Outcome::Failed { error, began },
        Err(e) if began => {
            // The BEGIN itself may have failed: no transaction to keep.
            if client.is_closed() {
                Outcome::Lost(lost(e))
            } else {
                Outcome::Lost(error)
            }
        }
        Err(e) => Outcome::Lost(lost(e)),
    }
}

impl Drop for PgTx {
    fn drop(&mut self) {
        self.end_sessions();
        if self.writing && !self.broken && self.end("ROLLBACK").is_err() {
            self.broken = true;
        }
        if let Some(client) = self.client.take()
            && self.broken
        {
            // Not returned to the pool: its state is not known.
            drop(deadpool_postgres::Object::take(client));
        }
    }
}

impl PgTx {
    pub(super) fn new(pg: Postgres) -> Self {
        Self {
            pg,
            client: None,
            writing: false,
            broken: false,
            deadline: None,
            timer: None,
            rows: 0,
            sessions: Vec::new(),
        }
    }
}

/// The parameters of a statement as tokio-postgres takes them.
fn params<'a>(args: &'a [Arg<'a>]) -> Vec<&'a (dyn ToSql + Sync)> {
    args.iter().map(|a| a as &(dyn ToSql + Sync)).collect()
}

impl Tx for PgTx {
    fn set_deadline(&mut self, deadline: Instant) {
        self.deadline = Some(deadline);
        self.timer = None;
    }

    fn rows_written(&self) -> u64 {
        self.rows
    }

    fn is_writing(&self) -> bool {
        self.writing
    }

    fn commit(mut self: Box<Self>) -> Result<()> {
        if self.broken {
            return Err(Error::Unavailable(EngineError::from_message(
                "the unit's connection was lost; its writes were rolled back",
            )));
        }
        if self.sessions.iter().any(|s| s.wrote) {
            return self.commit_with_sessions();
        }
        self.end_sessions();
        if self.writing {
            self.end("COMMIT")?;
        }
        Ok(())
    }

    fn execute(&mut self, sql: &Sql, args: &[Arg<'_>]) -> Result<u64> {
        Ok(self
            .run(sql.postgres, &params(args), Want::Count, Access::Write)?
            .1)
    }

    fn query(
        &mut self,
        sql: &Sql,
        args: &[Arg<'_>],
        access: Access,
        each: &mut dyn FnMut(&dyn crate::engine::Row) -> Result<std::ops::ControlFlow<()>>,
    ) -> Result<()> {
        // The server sent every row: stopping only stops reading them.
        for row in &self.rows(sql.postgres, &params(args), access)? {
            if each(&PgRow(row))?.is_break() {
                break;
            }
        }
        Ok(())
    }

    /// An advisory lock on the key, held to the commit.
    fn lock(&mut self, lock: Lock<'_>) -> Result<()> {
        let (class, key) = match lock {
            Lock::Recipient(to) => (MAIL_LOCK_CLASS, Cow::Borrowed(to)),
            Lock::PluginSchema(plugin) => (PLUGIN_SCHEMA_LOCK_CLASS, Cow::Borrowed(plugin)),
            Lock::Key {
                plugin,
                bucket,
                key,
            } => (
                KV_LOCK_CLASS,
                Cow::Owned(format!("{plugin}\n{bucket}\n{key}")),
            ),
        };
        let key: &str = &key;
        self.rows(
            "SELECT pg_advisory_xact_lock($1, hashtext($2))",
            &[&class, &key],
            Access::Lock,
        )?;
        Ok(())
    }

    fn plugin_sql(
        &mut self,
        ns: &crate::sql::Namespace,
        sql: &str,
        each: &[&[crate::sql::SqlValue]],
        want: crate::sql::Want,
        used: &mut Option<crate::quota::Usage>,
    ) -> std::result::Result<crate::sql::Answers, crate::sql::SqlError> {
        self.run_plugin_sql(ns, sql, each, want, false, used)
    }

    fn plugin_script(
        &mut self,
        ns: &crate::sql::Namespace,
        script: &str,
        used: &mut Option<crate::quota::Usage>,
    ) -> std::result::Result<(), crate::sql::SqlError> {
        // Each statement is measured against the quota as it runs.
        self.run_plugin_sql(ns, script, &[&[]], crate::sql::Want::Outcome, true, used)
            .map(|_| ())
    }

    /// Each plugin's schema's tables, materialised views and indexes, with
    /// the bytes the server keeps for them.
    fn plugin_objects(&mut self, plugin: Option<&str>) -> Result<Vec<(String, String, u64)>> {
        let rows = self.rows(
            "SELECT substr(n.nspname, 8), c.relname::text,
                    (CASE WHEN c.relkind = 'i' THEN pg_relation_size(c.oid)
                          ELSE pg_table_size(c.oid) END)::bigint
             FROM pg_class AS c JOIN pg_namespace AS n ON n.oid = c.relnamespace
             WHERE n.nspname LIKE 'plugin\\_%' AND c.relkind IN ('r', 'm', 'i')
               AND ($1::text IS NULL OR n.nspname = 'plugin_' || $1)
             ORDER BY 1, 2",
            &[&plugin],
            Access::Read,
        )?;
        rows.iter()
            .map(|r| {
                let row: &dyn crate::engine::Row = &PgRow(r);
                Ok((row.get(0)?, row.get(1)?, row.get(2)?))
            })
            .collect()
    }
}

/// A row of a statement, read as the seam's values.
struct PgRow<'a>(&'a Row);

impl crate::engine::Row for PgRow<'_> {
    fn int(&self, i: usize) -> Result<Option<i64>> {
        use tokio_postgres::types::Type;
        let get = |e: tokio_postgres::Error| Error::Engine(EngineError::new(e));
        let row = self.0;
        Ok(match *row.columns()[i].type_() {
            Type::INT8 => row.try_get::<_, Option<i64>>(i).map_err(get)?,
            Type::INT4 => row
                .try_get::<_, Option<i32>>(i)
                .map_err(get)?
                .map(i64::from),
            Type::INT2 => row
                .try_get::<_, Option<i16>>(i)
                .map_err(get)?
                .map(i64::from),
            Type::BOOL => row
                .try_get::<_, Option<bool>>(i)
                .map_err(get)?
                .map(i64::from),
            _ => return Err(crate::engine::not_a(i, "an integer")),
        })
    }

    fn text(&self, i: usize) -> Result<Option<String>> {
        self.0
            .try_get(i)
            .map_err(|e| Error::Engine(EngineError::new(e)))
    }

    fn blob(&self, i: usize) -> Result<Option<Vec<u8>>> {
        self.0
            .try_get(i)
            .map_err(|e| Error::Engine(EngineError::new(e)))
    }
}
