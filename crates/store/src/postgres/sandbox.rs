//! Plugin SQL on PostgreSQL: a schema, a role and sessions of its own per
//! plugin.
//!
//! A plugin's objects live in the schema `plugin_<name>`, owned by its role
//! `plugin_<name>_<tag>`, which logs in with a secret only plinth's user
//! can read, is a member of nothing and has no privilege on anything else:
//! not the core tables, not another plugin's schema. Each plugin statement
//! runs in a session logged in as that role (a pool per plugin), in the
//! unit's transaction on that session, in a savepoint; so resetting the
//! role, any function and any setting gain only what the role has. A call
//! whose plugin session and host session both wrote commits by two-phase
//! commit ([`PgTx::commit_with_sessions`]); what a host that died left
//! prepared, the next one resolves ([`Postgres::resolve_in_doubt`]).
//!
//! The statement is also parsed first (sqlparser, PostgreSQL dialect) and
//! refused before it reaches the server when it is not a kind plugins may
//! run, names a schema, a `pg_` object or `information_schema`, or calls a
//! function outside a list — in an expression, in `FROM` or `LATERAL` —
//! and after it the session is checked for large objects and temporary
//! relations, which live outside its schema and quota.
//!
//! The host's database user needs `LOGIN CREATEROLE` and to own its
//! database; a superuser is refused unless allowed.

use std::ops::ControlFlow;

use sqlparser::ast::{
    Expr, ObjectName, ObjectNamePart, Query, SetExpr, Statement, TableFactor, Visit, Visitor,
};
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::Parser;
use tokio_postgres::types::{IsNull, ToSql, Type, to_sql_checked};

use std::pin::pin;

use futures_util::{StreamExt, TryStreamExt};
use std::time::Duration;

use tokio_postgres::NoTls;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};

use super::Postgres;
use super::errors::classify as classify_host;
use super::tx::{CANCEL_GRACE, PgTx, Want as HostWant};
use crate::engine::{Access, Arg};
use crate::sql::{Answers, Namespace, SqlError, SqlOutcome, SqlValue, Want};

/// The functions a plugin's SQL may call on PostgreSQL.
const FUNCTIONS: &[&str] = &[
    "abs",
    "age",
    "array_agg",
    "array_length",
    "avg",
    "bool_and",
    "bool_or",
    "btrim",
    "cardinality",
    "ceil",
    "ceiling",
    "char_length",
    "coalesce",
    "concat",
    "concat_ws",
    "count",
    "current_date",
    "current_timestamp",
    "date_part",
    "date_trunc",
    "dense_rank",
    "exp",
    "extract",
    "floor",
    "format",
    "gen_random_uuid",
    "generate_series",
    "greatest",
    "json_agg",
    "json_build_object",
    "jsonb_agg",
    "jsonb_build_object",
    "least",
    "left",
    "length",
    "ln",
    "localtimestamp",
    "log",
    "lower",
    "lpad",
    "ltrim",
    "max",
    "md5",
    "min",
    "mod",
    "now",
    "nullif",
    "octet_length",
    "plainto_tsquery",
    "position",
    "power",
    "random",
    "rank",
    "regexp_match",
    "regexp_replace",
    "replace",
    "right",
    "round",
    "row_number",
    "rpad",
    "rtrim",
    "setweight",
    "sign",
    "split_part",
    "sqrt",
    "starts_with",
    "string_agg",
    "strpos",
    "substr",
    "substring",
    "sum",
    "to_char",
    "to_timestamp",
    "to_tsquery",
    "to_tsvector",
    "trim",
    "trunc",
    "ts_headline",
    "ts_rank",
    "ts_rank_cd",
    "upper",
    "websearch_to_tsquery",
];

/// The schema of `ns`'s plugin: `plugin_<name>`; its role is that name and
/// the database's tag (`plugin_<name>_<tag>`: roles are the server's, shared
/// by its databases), which fits PostgreSQL's 63-byte names for plugin names
/// of at most 47 bytes.
pub(crate) fn schema_of(ns: &Namespace) -> Result<String, SqlError> {
    let name = format!("plugin_{}", ns.plugin());
    if name.len() > 63 - 9 {
        return Err(SqlError::AccessDenied(format!(
            "{}: on PostgreSQL a plugin that keeps tables has a name of at most 47 bytes",
            ns.plugin()
        )));
    }
    Ok(name)
}

/// Parses a plugin's SQL (one statement, or a migration's several) and
/// refuses what plugins may not run; returns each statement's text and
/// whether it may write.
pub(crate) fn checked(sql: &str, many: bool) -> Result<Vec<(String, bool)>, SqlError> {
    let statements = Parser::parse_sql(&PostgreSqlDialect {}, sql)
        .map_err(|e| SqlError::Syntax(e.to_string()))?;
    if statements.is_empty() || (!many && statements.len() != 1) {
        return Err(SqlError::Syntax(format!(
            "one statement per call, not {}",
            statements.len()
        )));
    }
    statements
        .into_iter()
        .map(|mut statement| {
            let writes = allowed(&statement)?;
            if let ControlFlow::Break(e) = statement.visit(&mut Names) {
                return Err(e);
            }
            for table in crate::sql::foreign_tables(&mut statement) {
                check_name(table)?;
            }
            Ok((statement.to_string(), writes))
        })
        .collect()
}

/// Whether plugins may run this kind of statement; `Ok(true)` when it may
/// write.
fn allowed(statement: &Statement) -> Result<bool, SqlError> {
    let refuse = |what: &str| Err(SqlError::AccessDenied(what.to_string()));
    match statement {
        Statement::Query(q) if selects_into(q) => refuse("SELECT INTO"),
        Statement::CreateTable(t) if t.like.is_some() || t.inherits.is_some() => {
            refuse("CREATE TABLE … LIKE or INHERITS")
        }
        Statement::CreateVirtualTable { .. } => refuse("virtual tables (SQLite's)"),
        // Its writes are counted by no one (the row limit sees what a
        // statement says it changed, and a query says nothing).
        Statement::Query(q)
            if q.with
                .as_ref()
                .is_some_and(|w| w.cte_tables.iter().any(|c| query_writes(&c.query))) =>
        {
            refuse("a data-modifying WITH: write with INSERT, UPDATE or DELETE … RETURNING")
        }
        Statement::Query(q) => {
            crate::sql::kind(statement)?;
            Ok(query_writes(q))
        }
        _ => {
            crate::sql::kind(statement)?;
            Ok(true)
        }
    }
}

/// Whether a query may write: a data-modifying `WITH`, a row lock, a body
/// that is not a plain query.
fn query_writes(q: &Query) -> bool {
    fn body_writes(body: &SetExpr) -> bool {
        match body {
            SetExpr::Select(_) | SetExpr::Values(_) | SetExpr::Table(_) => false,
            SetExpr::Query(q) => query_writes(q),
            SetExpr::SetOperation { left, right, .. } => body_writes(left) || body_writes(right),
            _ => true,
        }
    }
    !q.locks.is_empty()
        || body_writes(&q.body)
        || q.with
            .as_ref()
            .is_some_and(|w| w.cte_tables.iter().any(|c| query_writes(&c.query)))
}

/// Whether a query (or one inside it) is `SELECT … INTO`, which creates a
/// table (a temporary one, even).
fn selects_into(q: &Query) -> bool {
    match &*q.body {
        SetExpr::Select(s) => s.into.is_some(),
        SetExpr::Query(inner) => selects_into(inner),
        _ => false,
    }
}

/// Refuses names a plugin may not use: any with a schema, the catalog's.
fn check_name(name: &ObjectName) -> Result<(), SqlError> {
    let own = |n: &str| n.starts_with("pg_") || n == "information_schema";
    crate::sql::plain_name(name, own, "the server's own").map(|_| ())
}

/// Refuses a function named with a schema or not in [`FUNCTIONS`].
fn listed_function(name: &ObjectName) -> Result<(), SqlError> {
    let [ObjectNamePart::Identifier(ident)] = name.0.as_slice() else {
        return Err(SqlError::AccessDenied(format!(
            "{name}: a function named with a schema"
        )));
    };
    if !FUNCTIONS.contains(&ident.value.to_lowercase().as_str()) {
        return Err(SqlError::AccessDenied(format!(
            "the function {}",
            ident.value
        )));
    }
    Ok(())
}

/// Checks every relation and function a statement names.
struct Names;

impl Visitor for Names {
    type Break = SqlError;

    fn pre_visit_relation(&mut self, relation: &ObjectName) -> ControlFlow<SqlError> {
        match check_name(relation) {
            Ok(()) => ControlFlow::Continue(()),
            Err(e) => ControlFlow::Break(e),
        }
    }

    /// A function in FROM (`FROM current_setting(…)`, `LATERAL f(…)`) is a
    /// function call like any other: listed or refused.
    fn pre_visit_table_factor(&mut self, factor: &TableFactor) -> ControlFlow<SqlError> {
        let name = match factor {
            TableFactor::Table {
                name,
                args: Some(_),
                ..
            }
            | TableFactor::Function { name, .. } => name,
            _ => return ControlFlow::Continue(()),
        };
        match listed_function(name) {
            Ok(()) => ControlFlow::Continue(()),
            Err(e) => ControlFlow::Break(e),
        }
    }

    fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<SqlError> {
        let refuse = |why: String| ControlFlow::Break(SqlError::AccessDenied(why));
        match expr {
            Expr::Function(f) => {
                if let Err(e) = listed_function(&f.name) {
                    return ControlFlow::Break(e);
                }
            }
            Expr::CompoundIdentifier(parts) if parts.len() > 2 => {
                return refuse(format!(
                    "{expr}: a plugin names its tables without a schema"
                ));
            }
            _ => {}
        }
        ControlFlow::Continue(())
    }
}

/// A value bound to a parameter of whatever type the server inferred: a
/// plugin's as plinth's own.
impl ToSql for Arg<'_> {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut bytes::BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        let bad = || -> Box<dyn std::error::Error + Sync + Send> {
            format!("a {} cannot be passed as {ty}", kind(self)).into()
        };
        match (*self, ty) {
            (Arg::Null, _) => Ok(IsNull::Yes),
            (Arg::Int(n), &Type::INT8) => n.to_sql(ty, out),
            (Arg::Int(n), &Type::INT4) => i32::try_from(n).map_err(|_| bad())?.to_sql(ty, out),
            (Arg::Int(n), &Type::INT2) => i16::try_from(n).map_err(|_| bad())?.to_sql(ty, out),
            (Arg::Int(n), &Type::BOOL) => (n != 0).to_sql(ty, out),
            #[allow(clippy::cast_precision_loss)]
            (Arg::Int(n), &Type::FLOAT8) => (n as f64).to_sql(ty, out),
            (Arg::Real(x), &Type::FLOAT8) => x.to_sql(ty, out),
            #[allow(clippy::cast_possible_truncation)]
            (Arg::Real(x), &Type::FLOAT4) => (x as f32).to_sql(ty, out),
            (Arg::Text(t), ty) if is_text(ty) => t.to_sql(ty, out),
            (Arg::Blob(b), &Type::BYTEA) => b.to_sql(ty, out),
            _ => Err(bad()),
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

fn is_text(ty: &Type) -> bool {
    [
        Type::TEXT,
        Type::VARCHAR,
        Type::BPCHAR,
        Type::NAME,
        Type::UNKNOWN,
    ]
    .contains(ty)
}

fn kind(v: &Arg<'_>) -> &'static str {
    match v {
        Arg::Null => "null",
        Arg::Int(_) => "integer",
        Arg::Real(_) => "real",
        Arg::Text(_) => "text",
        Arg::Blob(_) => "blob",
    }
}

/// One column of a row, as plinth:sql carries it.
pub(crate) fn value(row: &tokio_postgres::Row, i: usize) -> Result<SqlValue, SqlError> {
    let column = &row.columns()[i];
    let ty = column.type_();
    let get = |e: tokio_postgres::Error| SqlError::Internal(e.to_string());
    let v = match *ty {
        Type::INT8 => row
            .try_get::<_, Option<i64>>(i)
            .map_err(get)?
            .map(SqlValue::Integer),
        Type::INT4 => row
            .try_get::<_, Option<i32>>(i)
            .map_err(get)?
            .map(|n| SqlValue::Integer(n.into())),
        Type::INT2 => row
            .try_get::<_, Option<i16>>(i)
            .map_err(get)?
            .map(|n| SqlValue::Integer(n.into())),
        Type::BOOL => row
            .try_get::<_, Option<bool>>(i)
            .map_err(get)?
            .map(|b| SqlValue::Integer(b.into())),
        Type::FLOAT8 => row
            .try_get::<_, Option<f64>>(i)
            .map_err(get)?
            .map(SqlValue::Real),
        Type::FLOAT4 => row
            .try_get::<_, Option<f32>>(i)
            .map_err(get)?
            .map(|x| SqlValue::Real(x.into())),
        Type::BYTEA => row
            .try_get::<_, Option<Vec<u8>>>(i)
            .map_err(get)?
            .map(SqlValue::Blob),
        ref t if is_text(t) => row
            .try_get::<_, Option<String>>(i)
            .map_err(get)?
            .map(SqlValue::Text),
        ref t => {
            return Err(SqlError::Syntax(format!(
                "column {} is {t}, which plinth:sql does not carry: cast it (::text, ::float8, ::bigint)",
                column.name()
            )));
        }
    };
    Ok(v.unwrap_or(SqlValue::Null))
}

/// Run in the plugin's session after each of its statements, pipelined
/// with it: large objects its role owns and temporary relations of its
/// session (both outside its schema and its quota, and refused), and, when
/// `$2`, the bytes its schema's tables (with their TOAST data), indexes and
/// sequences take.
const AFTER: &str = "SELECT (SELECT count(*) FROM pg_largeobject_metadata
             WHERE lomowner = (SELECT oid FROM pg_roles WHERE rolname = current_user))
          + (SELECT count(*) FROM pg_class WHERE relnamespace = pg_my_temp_schema()),
            CASE WHEN $2 THEN
            (SELECT COALESCE(SUM(CASE WHEN c.relkind = 'i' THEN pg_relation_size(c.oid)
                                       ELSE pg_table_size(c.oid) END), 0)
                     FROM pg_class AS c JOIN pg_namespace AS n ON n.oid = c.relnamespace
                     WHERE n.nspname = $1 AND c.relkind IN ('r', 'm', 'i', 'S'))::bigint
            END";

/// The bytes of a plugin's keys and values (read in the host's session).
const KV_SIZE: &str = "SELECT COALESCE(SUM(octet_length(key) + octet_length(value)), 0)::bigint
                       FROM plugin_keyvalue WHERE plugin = $1";

/// A plugin statement's answers and, when measured, what the plugin keeps.
type Ran = Result<(Answers, Option<u64>), Failed>;

/// Why a plugin statement failed on the server's side.
enum Failed {
    /// The server refused it, or a value could not be carried.
    Server(tokio_postgres::Error),
    /// It could not be run as given.
    Sql(SqlError),
}

impl From<tokio_postgres::Error> for Failed {
    fn from(e: tokio_postgres::Error) -> Self {
        Failed::Server(e)
    }
}

impl From<SqlError> for Failed {
    fn from(e: SqlError) -> Self {
        Failed::Sql(e)
    }
}

/// Classifies the server's answer to a plugin statement.
fn classify(e: &tokio_postgres::Error) -> SqlError {
    use tokio_postgres::error::SqlState;
    let Some(db) = e.as_db_error() else {
        return SqlError::Internal(e.to_string());
    };
    let code = db.code();
    let message = match db.constraint() {
        Some(c) => format!("{} ({c})", db.message()),
        None => db.message().to_string(),
    };
    if let Some(at) = message.find(ROW_TOO_LARGE) {
        return SqlError::TooLarge(
            message[at..]
                .trim_end_matches('"')
                .replace("plinth: a row", "a row"),
        );
    }
    let class = &code.code()[..2];
    if *code == SqlState::INSUFFICIENT_PRIVILEGE {
        SqlError::AccessDenied(message)
    } else if *code == SqlState::QUERY_CANCELED {
        SqlError::TimedOut
    } else if *code == SqlState::PROGRAM_LIMIT_EXCEEDED
        || *code == SqlState::STRING_DATA_RIGHT_TRUNCATION
        || *code == SqlState::OUT_OF_MEMORY
    {
        SqlError::TooLarge(message)
    } else if *code == SqlState::LOCK_NOT_AVAILABLE
        || *code == SqlState::T_R_SERIALIZATION_FAILURE
        || *code == SqlState::T_R_DEADLOCK_DETECTED
    {
        SqlError::Busy
    } else if class == "23" {
        SqlError::Constraint(message)
    } else if class == "42" || class == "22" {
        SqlError::Syntax(message)
    } else {
        SqlError::Internal(message)
    }
}

/// Runs one checked statement in the plugin's own session, inside the
/// savepoint `plinth_plugin` (left open: the caller releases it or rolls
/// back to it); `begin` opens the session's transaction first. Returns the
/// answer and, when `measure`, the bytes the plugin's tables take after it.
#[allow(clippy::too_many_arguments)]
async fn plugin_statement(
    client: &tokio_postgres::Client,
    schema: &str,
    begin: bool,
    sql: &str,
    each: &[&[SqlValue]],
    want: Want,
    budget: u64,
    measure: bool,
) -> Result<(Answers, Option<u64>), Failed> {
    let setup = if begin {
        format!("BEGIN; SET LOCAL search_path TO \"{schema}\"; SAVEPOINT plinth_plugin")
    } else {
        "SAVEPOINT plinth_plugin".to_string()
    };
    // Rows wanted: each is measured on the server before it is sent, so
    // that no row larger than the budget (one value may be as large as the
    // server makes it, up to 1 GB) reaches the host (`bounded`).
    let bounded;
    let sql = if want == Want::Rows {
        bounded = bounded_rows(sql, budget);
        bounded.as_str()
    } else {
        sql
    };
    // Pipelined: the statement is prepared after the path is set, so that
    // its names resolve in the plugin's schema.
    let (set, prepared) = tokio::join!(client.batch_execute(&setup), client.prepare(sql));
    set?;
    let prepared = prepared?;
    let mut answers = Answers::new(budget);
    if want == Want::Rows {
        // Every run of one statement has the same columns.
        answers.set_columns(prepared.columns().iter().map(|c| c.name()))?;
    }
    run_prepared(client, &prepared, each, want, budget, &mut answers).await?;
    let after = client.query_one(AFTER, &[&schema, &measure]).await?;
    let outside: i64 = after.try_get(0)?;
    if outside > 0 {
        return Err(Failed::Sql(SqlError::AccessDenied(
            "large objects and temporary tables are outside the plugin's schema".into(),
        )));
    }
    let size: Option<i64> = after.try_get(1)?;
    Ok((answers, size.map(|b| u64::try_from(b).unwrap_or(0))))
}

/// Runs of one batch in flight at once on the plugin's session: sent
/// together and answered in order, so that a batch costs about one round
/// trip per this many runs rather than one per run.
const PIPELINE: usize = 64;

/// What the server says for a row over the budget (in the error of a cast
/// that fails on purpose: plain SQL has no other way to raise one).
const ROW_TOO_LARGE: &str = "plinth: a row over the budget of";

/// `sql` (a checked statement that returns rows) as one that answers the
/// same rows in the same order — a CTE scan keeps the order its query
/// produced — but fails on the server, before the row is sent, for any row
/// whose size (`pg_column_size` of the whole row) is over `budget`.
fn bounded_rows(sql: &str, budget: u64) -> String {
    format!(
        "WITH plinth_rows AS ({sql}) SELECT * FROM plinth_rows WHERE CASE \
         WHEN pg_column_size(plinth_rows.*) <= {budget} THEN true \
         ELSE ('{ROW_TOO_LARGE} {budget} bytes: ' || pg_column_size(plinth_rows.*))::int = 0 END"
    )
}

/// What one run of a prepared statement answered.
enum Run {
    /// Its rows, converted and counted.
    Rows(Answers),
    /// The rows it changed.
    Count(u64),
}

/// Runs a prepared plugin statement once per parameter list, pipelined
/// ([`PIPELINE`]), and adds the answers to `out` in order. Each run's rows
/// are read from the server's stream one by one and held to `budget` while
/// they are (a run's responses reach the client only after the previous
/// run's, so at most one run is being read at a time).
async fn run_prepared(
    client: &tokio_postgres::Client,
    prepared: &tokio_postgres::Statement,
    each: &[&[SqlValue]],
    want: Want,
    budget: u64,
    out: &mut Answers,
) -> Result<(), Failed> {
    let width = prepared.params().len();
    if let Some(params) = each.iter().find(|p| p.len() != width) {
        return Err(Failed::Sql(SqlError::Syntax(format!(
            "the statement has {width} parameters; {} were given",
            params.len()
        ))));
    }
    let mut pending = futures_util::stream::FuturesOrdered::new();
    let mut next = each.iter();
    loop {
        while pending.len() < PIPELINE {
            let Some(params) = next.next() else { break };
            pending.push_back(run_once(client, prepared, params, want, budget));
        }
        let Some(run) = pending.next().await else {
            break;
        };
        match run? {
            Run::Rows(run) => out.append_run(run)?,
            Run::Count(n) => out.outcomes.push(SqlOutcome {
                rows_affected: n,
                last_insert_id: None,
            }),
        }
    }
    Ok(())
}

/// One run of a prepared statement.
async fn run_once(
    client: &tokio_postgres::Client,
    prepared: &tokio_postgres::Statement,
    params: &[SqlValue],
    want: Want,
    budget: u64,
) -> Result<Run, Failed> {
    let values: Vec<Arg<'_>> = params.iter().map(Arg::from).collect();
    let refs: Vec<&(dyn ToSql + Sync)> = values.iter().map(|v| v as &(dyn ToSql + Sync)).collect();
    match want {
        Want::Rows => {
            let stream = client.query_raw(prepared, refs.iter().copied()).await?;
            let mut stream = pin!(stream);
            let n = prepared.columns().len();
            let mut run = Answers::new(budget);
            run.begin_run();
            while let Some(row) = stream.try_next().await? {
                for i in 0..n {
                    run.push_value(value(&row, i)?)?;
                }
                run.end_row()?;
            }
            Ok(Run::Rows(run))
        }
        Want::Outcome => Ok(Run::Count(client.execute(prepared, &refs).await?)),
    }
}

impl Postgres {
    /// The pool of sessions as `schema`'s role, creating the role and its
    /// schema the first time (once across hosts: under an advisory lock, in
    /// a transaction of its own). A role or schema of that name that plinth
    /// did not create (not recorded in `plugin_roles`) is refused, never
    /// adopted.
    fn plugin_pool(&self, plugin: &str, schema: &str) -> crate::Result<Pool> {
        let mut pools = self
            .inner
            .plugin_pools
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(pool) = pools.get(schema) {
            return Ok(pool.clone());
        }
        let tag = self
            .inner
            .role_tag
            .get()
            .ok_or_else(|| crate::Error::invalid("the database is not open"))?;
        let role = format!("{schema}_{tag}");
        let secret = self.run(self.ensure_plugin_role(plugin, schema, &role))?;
        let pool = self.session_pool(&role, &secret)?;
        pools.insert(schema.to_string(), pool.clone());
        Ok(pool)
    }

    /// A pool of sessions logged in as `role` with `secret`. A session goes
    /// back to the pool reset — its settings, advisory locks, temporary
    /// objects, prepared statements and cursors — whatever the plugin did.
    fn session_pool(&self, role: &str, secret: &str) -> crate::Result<Pool> {
        let mut config = self.inner.config.clone();
        config
            .user(role)
            .password(secret)
            .application_name(format!("plinth {role}"));
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Custom(
                    "ROLLBACK; RESET ALL; SELECT pg_advisory_unlock_all(); CLOSE ALL; \
                     DEALLOCATE ALL; DISCARD TEMP; DISCARD SEQUENCES; UNLISTEN *"
                        .into(),
                ),
            },
        );
        Pool::builder(manager)
            .max_size(self.inner.options.max_idle_connections.max(1))
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .wait_timeout(Some(self.inner.options.busy_timeout))
            .create_timeout(Some(self.inner.pg.connect_timeout))
            .build()
            .map_err(|e| crate::Error::ServerSetup(format!("{role}'s sessions: {e}")))
    }

    /// Creates `plugin`'s role (logging in with a secret only plinth's user
    /// can read, member of nothing) and its schema (owned by it), or finds
    /// them recorded; returns the secret.
    async fn ensure_plugin_role(
        &self,
        plugin: &str,
        schema: &str,
        role: &str,
    ) -> crate::Result<String> {
        let setup = |why: String| crate::Error::ServerSetup(format!("plugin {plugin}: {why}"));
        let client = self.connection().await?;
        let prepared: i64 = client
            .query_one(
                "SELECT current_setting('max_prepared_transactions')::bigint",
                &[],
            )
            .await
            .map_err(classify_host)?
            .get(0);
        if prepared == 0 {
            return Err(setup(
                "the server has max_prepared_transactions = 0; a plugin's statements run in a session \
                 of its own, committed with the call's other writes by two-phase commit: set \
                 max_prepared_transactions (e.g. 100) in postgresql.conf and restart the server"
                    .into(),
            ));
        }
        client.batch_execute("BEGIN").await.map_err(classify_host)?;
        let done = async {
            client
                .execute(
                    "SELECT pg_advisory_xact_lock($1, hashtext($2))",
                    &[&PLUGIN_SCHEMA_LOCK_CLASS, &role],
                )
                .await?;
            let known = client
                .query_opt("SELECT secret FROM plugin_roles WHERE role = $1", &[&role])
                .await?;
            if let Some(row) = known {
                return Ok(Ok(row.get::<_, String>(0)));
            }
            let role_exists = client
                .query_opt("SELECT 1 FROM pg_roles WHERE rolname = $1", &[&role])
                .await?
                .is_some();
            if role_exists {
                return Ok(Err(setup(format!(
                    "a role {role} exists that plinth did not create; plinth will not use it as the \
                     plugin's (drop or rename it, or give the plugin another name)"
                ))));
            }
            let schema_exists = client
                .query_opt("SELECT 1 FROM pg_namespace WHERE nspname = $1", &[&schema])
                .await?
                .is_some();
            if schema_exists {
                return Ok(Err(setup(format!(
                    "a schema {schema} exists that plinth did not create; plinth will not use it as the \
                     plugin's (drop or rename it)"
                ))));
            }
            let secret = format!(
                "{}{}",
                uuid::Uuid::new_v4().simple(),
                uuid::Uuid::new_v4().simple()
            );
            let create = format!(
                "CREATE ROLE \"{role}\" LOGIN PASSWORD '{secret}' NOSUPERUSER NOCREATEDB NOCREATEROLE \
                     NOINHERIT NOREPLICATION NOBYPASSRLS CONNECTION LIMIT 64;
                 COMMENT ON ROLE \"{role}\" IS 'plinth: the database role of plugin {plugin}';
                 GRANT \"{role}\" TO CURRENT_USER;
                 CREATE SCHEMA \"{schema}\" AUTHORIZATION \"{role}\";
                 ALTER ROLE \"{role}\" SET search_path TO \"{schema}\";"
            );
            if let Err(e) = client.batch_execute(&create).await {
                let why = match e.as_db_error() {
                    Some(db) if *db.code() == tokio_postgres::error::SqlState::INSUFFICIENT_PRIVILEGE => {
                        format!(
                            "plinth's database user may not create the plugin's role and schema ({}); \
                             it needs CREATEROLE and to own the database (README, \"Running on PostgreSQL\")",
                            db.message()
                        )
                    }
                    Some(db) => db.message().to_string(),
                    None => e.to_string(),
                };
                return Ok(Err(setup(why)));
            }
            let now = self.inner.options.clock.now();
            client
                .execute(
                    "INSERT INTO plugin_roles (plugin, role, secret, created_at) VALUES ($1, $2, $3, $4)",
                    &[&plugin, &role, &secret, &now],
                )
                .await?;
            Ok::<_, tokio_postgres::Error>(Ok(secret))
        }
        .await;
        match done {
            Ok(Ok(secret)) => {
                client
                    .batch_execute("COMMIT")
                    .await
                    .map_err(classify_host)?;
                Ok(secret)
            }
            Ok(Err(e)) => {
                let _ = client.batch_execute("ROLLBACK").await;
                Err(e)
            }
            Err(e) => {
                let _ = client.batch_execute("ROLLBACK").await;
                Err(classify_host(e))
            }
        }
    }

    /// Resolves the two-phase commits of plugin sessions that hosts left
    /// prepared (a host that died between the steps of a commit): committed
    /// where the host's transaction recorded the decision, rolled back
    /// where it did not. A host still in the middle of its commit holds its
    /// decision row; the `abort` this writes waits for it (at most the busy
    /// timeout, then that one is left for the next host to start).
    pub(super) async fn resolve_in_doubt(&self) -> crate::Result<()> {
        let client = self.connection().await?;
        let prepared = client
            .query(
                "SELECT gid, owner::text FROM pg_prepared_xacts
                 WHERE database = current_database() AND gid LIKE 'plinth:%'",
                &[],
            )
            .await
            .map_err(classify_host)?;
        let now = self.inner.options.clock.now();
        for row in prepared {
            let gid: String = row.get(0);
            let owner: String = row.get(1);
            let decided = client
                .execute(
                    "INSERT INTO plugin_commits (gid, plugin, decision, at)
                     VALUES ($1, '', 'abort', $2) ON CONFLICT (gid) DO NOTHING",
                    &[&gid, &now],
                )
                .await;
            if decided.is_err() {
                // Its host is still deciding: left for later.
                continue;
            }
            let decision: String = client
                .query_one(
                    "SELECT decision FROM plugin_commits WHERE gid = $1",
                    &[&gid],
                )
                .await
                .map_err(classify_host)?
                .get(0);
            let Some(secret) = client
                .query_opt("SELECT secret FROM plugin_roles WHERE role = $1", &[&owner])
                .await
                .map_err(classify_host)?
                .map(|r| r.get::<_, String>(0))
            else {
                continue;
            };
            let pool = self.session_pool(&owner, &secret)?;
            let session = pool.get().await.map_err(|e| self.connect_error(e))?;
            let verb = if decision == "commit" {
                "COMMIT PREPARED"
            } else {
                "ROLLBACK PREPARED"
            };
            let gid_literal = gid.replace('\'', "''");
            session
                .batch_execute(&format!("{verb} '{gid_literal}'"))
                .await
                .map_err(classify_host)?;
            client
                .execute("DELETE FROM plugin_commits WHERE gid = $1", &[&gid])
                .await
                .map_err(classify_host)?;
        }
        Ok(())
    }
}

/// The advisory lock class of creating a plugin's schema.
const PLUGIN_SCHEMA_LOCK_CLASS: i32 = 0x706c_7363;

/// A plugin's session in one unit: a connection logged in as its role,
/// with the unit's transaction on it once it ran a statement.
#[derive(Debug)]
pub(crate) struct PluginSession {
    /// The plugin.
    plugin: String,
    /// Its role and schema.
    schema: String,
    client: deadpool_postgres::Object,
    /// A transaction is open on it.
    open: bool,
    /// A statement that may write ran in it.
    pub(crate) wrote: bool,
    /// Its state is not known: rolled back by the server when dropped, never
    /// reused.
    broken: bool,
}

impl PgTx {
    /// Runs a plugin's statement (or, with `many`, a migration's
    /// statements) in the plugin's own session, each measured against the
    /// quota.
    pub(crate) fn run_plugin_sql(
        &mut self,
        ns: &Namespace,
        sql: &str,
        each: &[&[SqlValue]],
        want: Want,
        many: bool,
        used: &mut Option<crate::quota::Usage>,
    ) -> Result<Answers, SqlError> {
        let schema = schema_of(ns)?;
        let statements = checked(sql, many)?;
        if ns.read_only() && statements.iter().any(|(_, writes)| *writes) {
            return Err(SqlError::AccessDenied(
                "the plugin may only read its tables (a read grant)".into(),
            ));
        }
        let session = self.session(ns.plugin(), &schema)?;
        if ns.quota().is_some() && used.is_none() && statements.iter().any(|(_, writes)| *writes) {
            // What is recorded, for the unit to bring up to date at commit
            // with what its statements measured: a key-value write in a
            // later unit then counts what the tables took.
            let recorded = (self as &mut dyn crate::engine::Tx)
                .plugin_bytes(ns.plugin())
                .map_err(crate::sql::from_store)?;
            *used = Some(crate::quota::Usage::recorded(recorded));
        }
        let mut last = Answers::new(ns.result_budget());
        for (text, writes) in &statements {
            // Under a quota a statement that may write is measured.
            let measured = (*writes && ns.quota().is_some()).then_some(&mut *used);
            last = self.one_plugin_statement(ns, session, text, each, want, measured)?;
            if *writes {
                self.sessions[session].wrote = true;
                if want == Want::Rows {
                    // `… RETURNING` run as a query: a row back for each
                    // row written.
                    self.rows += last.rows.counts.iter().map(|&n| u64::from(n)).sum::<u64>();
                }
            }
        }
        Ok(last)
    }

    /// The index of `plugin`'s session in this unit, taken from its pool
    /// (made, with its role, the first time) when the unit has none yet.
    fn session(&mut self, plugin: &str, schema: &str) -> Result<usize, SqlError> {
        if let Some(i) = self.sessions.iter().position(|s| s.schema == schema) {
            return Ok(i);
        }
        let pool = self
            .pg
            .plugin_pool(plugin, schema)
            .map_err(crate::sql::from_store)?;
        let pg = self.pg.clone();
        let client = self
            .pg
            .run(async { pool.get().await.map_err(|e| pg.connect_error(e)) })
            .map_err(crate::sql::from_store)?;
        self.sessions.push(PluginSession {
            plugin: plugin.to_string(),
            schema: schema.to_string(),
            client,
            open: false,
            wrote: false,
            broken: false,
        });
        Ok(self.sessions.len() - 1)
    }

    fn one_plugin_statement(
        &mut self,
        ns: &Namespace,
        session: usize,
        sql: &str,
        each: &[&[SqlValue]],
        want: Want,
        mut measured: Option<&mut Option<crate::quota::Usage>>,
    ) -> Result<Answers, SqlError> {
        let measure = measured.is_some();
        let lost = || {
            SqlError::Internal("the plugin's session was lost; its writes were rolled back".into())
        };
        if self.broken || self.sessions[session].broken {
            return Err(lost());
        }
        let budget = match self.deadline {
            Some(_) => {
                let budget = crate::engine::wait_budget(self.deadline, Duration::MAX);
                if budget.is_zero() {
                    return Err(SqlError::TimedOut);
                }
                Some(budget)
            }
            None => None,
        };
        // The keys and values count toward the quota too (read in the
        // host's session, which the plugin's cannot read).
        let kv_bytes = if measure {
            let plugin = ns.plugin().to_string();
            let rows = self
                .rows(KV_SIZE, &[&plugin], Access::Read)
                .map_err(|e| SqlError::Internal(e.to_string()))?;
            let bytes: i64 = rows.first().map_or(0, |r| r.get(0));
            u64::try_from(bytes).unwrap_or(0)
        } else {
            0
        };
        let pg = self.pg.clone();
        let s = &mut self.sessions[session];
        let begin = !s.open;
        let client = &*s.client;
        let schema = s.schema.as_str();
        let result_budget = ns.result_budget();
        let outcome: Result<Ran, ()> = pg.run(async {
            let work = plugin_statement(
                client,
                schema,
                begin,
                sql,
                each,
                want,
                result_budget,
                measure,
            );
            let mut work = pin!(work);
            match budget {
                None => Ok(work.await),
                Some(budget) => tokio::select! {
                    done = &mut work => Ok(done),
                    () = tokio::time::sleep(budget) => {
                        let _ = client.cancel_token().cancel_query(NoTls).await;
                        match tokio::time::timeout(CANCEL_GRACE, &mut work).await {
                            Ok(Ok(done)) => Ok(Ok(done)),
                            Ok(Err(_)) => Ok(Err(Failed::Sql(SqlError::TimedOut))),
                            Err(_) => Err(()),
                        }
                    }
                },
            }
        });
        if begin {
            s.open = true;
        }
        let undo = "ROLLBACK TO SAVEPOINT plinth_plugin; RELEASE SAVEPOINT plinth_plugin";
        let result = match outcome {
            Err(()) => {
                s.broken = true;
                return Err(SqlError::TimedOut);
            }
            Ok(Ok((answer, size))) => {
                // What the plugin's data takes now: its schema and its keys.
                let after = size.map(|size| size.saturating_add(kv_bytes));
                if let (Some(after), Some(quota)) = (after, ns.quota())
                    && let Err(refusal) = crate::quota::check(after, quota)
                {
                    self.session_batch(session, undo)?;
                    return Err(SqlError::TooLarge(refusal));
                }
                self.session_batch(session, "RELEASE SAVEPOINT plinth_plugin")?;
                if let (Some(after), Some(Some(u))) =
                    (after, measured.as_mut().map(|used| used.as_mut()))
                {
                    u.now = after;
                }
                Ok(answer)
            }
            Ok(Err(failed)) => {
                let error = match &failed {
                    Failed::Server(e) if e.is_closed() => {
                        s.broken = true;
                        return Err(SqlError::Internal(e.to_string()));
                    }
                    Failed::Server(e) => classify(e),
                    Failed::Sql(e) => e.clone(),
                };
                // Back to the savepoint: the statement's writes and settings
                // go with it.
                self.session_batch(session, undo)?;
                Err(error)
            }
        };
        if let Ok(answers) = &result {
            for o in &answers.outcomes {
                self.rows += o.rows_affected;
            }
        }
        result
    }

    /// Runs host statements in a plugin's session; a failure leaves the
    /// session in a state not known: the unit is over.
    fn session_batch(&mut self, session: usize, sql: &str) -> Result<(), SqlError> {
        let s = &mut self.sessions[session];
        match self.pg.run(s.client.batch_execute(sql)) {
            Ok(()) => Ok(()),
            Err(e) => {
                s.broken = true;
                Err(SqlError::Internal(e.to_string()))
            }
        }
    }

    /// Ends every plugin session of the unit without keeping its writes
    /// (or, for one that only read, with nothing to keep), and gives it
    /// back to its pool; a broken one is closed.
    pub(crate) fn end_sessions(&mut self) {
        for mut s in std::mem::take(&mut self.sessions) {
            if s.open && !s.broken && self.pg.run(s.client.batch_execute("ROLLBACK")).is_err() {
                s.broken = true;
            }
            if s.broken {
                drop(deadpool_postgres::Object::take(s.client));
            }
        }
    }

    /// Commits a unit whose plugin sessions wrote: with the host's session
    /// alone when it wrote nothing and one plugin session did (one commit);
    /// otherwise by two-phase commit — each plugin session's transaction
    /// prepared, the decision written in the host's transaction, that
    /// committed, then the prepared ones. A host that dies between the
    /// steps leaves prepared transactions that the next host to start
    /// resolves by the decision (`Postgres::resolve_in_doubt`).
    pub(crate) fn commit_with_sessions(&mut self) -> crate::Result<()> {
        let lost = |why: &str| crate::Error::Unavailable(crate::EngineError::from_message(why));
        if self.sessions.iter().any(|s| s.broken) {
            self.end_sessions();
            return Err(lost(
                "a plugin's session was lost; the call's writes were rolled back",
            ));
        }
        let writers = self.sessions.iter().filter(|s| s.wrote).count();
        if !self.writing && writers == 1 {
            let mut kept = Ok(());
            for s in &mut self.sessions {
                let end = if s.wrote { "COMMIT" } else { "ROLLBACK" };
                if let Err(e) = self.pg.run(s.client.batch_execute(end)) {
                    s.broken = true;
                    if s.wrote {
                        kept = Err(classify_host(e));
                    }
                } else {
                    s.open = false;
                }
            }
            self.end_sessions();
            return kept;
        }
        // Two-phase: the decision rows first (in the host's transaction,
        // uncommitted: a host resolving at start waits on them), then the
        // prepares.
        let id = uuid::Uuid::new_v4().simple().to_string();
        let now = self.pg.inner.options.clock.now();
        let mut prepared: Vec<(usize, String)> = Vec::new();
        for (i, s) in self.sessions.iter().enumerate() {
            if s.wrote {
                prepared.push((i, format!("plinth:{id}:{i}")));
            }
        }
        for (i, gid) in &prepared {
            let plugin = self.sessions[*i].plugin.clone();
            self.run(
                "INSERT INTO plugin_commits (gid, plugin, decision, at) VALUES ($1, $2, 'commit', $3)",
                &[gid, &plugin, &now],
                HostWant::Count,
                Access::Lock,
            )?;
        }
        for (i, gid) in &prepared {
            let s = &mut self.sessions[*i];
            if let Err(e) = self.pg.run(
                s.client
                    .batch_execute(&format!("PREPARE TRANSACTION '{gid}'")),
            ) {
                s.broken = true;
                self.rollback_prepared(&prepared);
                self.end_sessions();
                return Err(classify_host(e));
            }
            s.open = false;
        }
        self.abort_here("decided");
        if let Err(e) = self.end("COMMIT") {
            self.rollback_prepared(&prepared);
            self.end_sessions();
            return Err(e);
        }
        self.abort_here("committed");
        // Decided: the prepared transactions are committed now, or by the
        // next host to start if this fails.
        for (i, gid) in &prepared {
            let s = &mut self.sessions[*i];
            if self
                .pg
                .run(s.client.batch_execute(&format!("COMMIT PREPARED '{gid}'")))
                .is_err()
            {
                s.broken = true;
                continue;
            }
            let _ = self.run(
                "DELETE FROM plugin_commits WHERE gid = $1",
                &[gid],
                HostWant::Count,
                Access::Read,
            );
        }
        self.end_sessions();
        Ok(())
    }

    /// Rolls back what this unit prepared (best effort: a host that starts
    /// does it otherwise, no decision to commit being recorded).
    fn rollback_prepared(&mut self, prepared: &[(usize, String)]) {
        for (i, gid) in prepared {
            let s = &mut self.sessions[*i];
            if self
                .pg
                .run(
                    s.client
                        .batch_execute(&format!("ROLLBACK PREPARED '{gid}'")),
                )
                .is_err()
            {
                s.broken = true;
            }
        }
    }

    /// Tests only: dies here as a killed host would (`PostgresOptions::abort_commit_after`).
    fn abort_here(&self, step: &str) {
        if self.pg.inner.pg.abort_commit_after == Some(step) {
            std::process::abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use anyhow::ensure;

    use super::*;
    use crate::engine::Backend;

    /// What a plugin's session sets for itself — by a road the parse would
    /// refuse, run here on the session as the plugin's role — is gone when
    /// the session comes back from its pool; a large object its role made
    /// refuses the next statement through the sandbox.
    #[test]
    fn a_session_comes_back_reset_and_a_large_object_is_refused() -> anyhow::Result<()> {
        let Some((_cluster, url)) = plinth_pg_cluster::test_database("sandbox::reset")? else {
            return Ok(());
        };
        let pg = Postgres::new(
            &url,
            crate::Options::default(),
            super::super::PostgresOptions::default(),
        )?;
        pg.ensure_open()?;
        let ns = Namespace::new("alpha", false)?;
        let schema = schema_of(&ns)?;
        let pool = pg.plugin_pool("alpha", &schema)?;
        pg.run(async {
            let s = pool.get().await?;
            s.batch_execute(
                "SELECT set_config('search_path', 'public', false);
                 SELECT pg_advisory_lock(1886154356);
                 CREATE TEMP TABLE left_behind (x INT);
                 SET statement_timeout = 1",
            )
            .await?;
            Ok::<_, anyhow::Error>(())
        })?;
        pg.run(async {
            let s = pool.get().await?;
            let path: String = s.query_one("SHOW search_path", &[]).await?.get(0);
            ensure!(path.contains("plugin_alpha"), "{path}");
            let timeout: String = s.query_one("SHOW statement_timeout", &[]).await?.get(0);
            ensure!(timeout == "0", "{timeout}");
            let locks: i64 = s
                .query_one(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = 1886154356",
                    &[],
                )
                .await?
                .get(0);
            ensure!(locks == 0, "{locks} advisory locks kept");
            let temp: i64 = s
                .query_one(
                    "SELECT count(*) FROM pg_class WHERE relnamespace = pg_my_temp_schema()",
                    &[],
                )
                .await?
                .get(0);
            ensure!(temp == 0, "{temp} temporary relations kept");
            s.batch_execute("SELECT lo_from_bytea(0, 'outside')").await?;
            Ok::<_, anyhow::Error>(())
        })?;
        let mut tx = pg.begin()?;
        match tx.plugin_sql(&ns, "SELECT 1", &[&[]], Want::Rows, &mut None) {
            Err(SqlError::AccessDenied(why)) => ensure!(why.contains("large objects"), "{why}"),
            other => anyhow::bail!("{:?}", other.map(|a| a.rows)),
        }
        Ok(())
    }
}
