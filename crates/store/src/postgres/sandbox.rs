//! Plugin SQL on PostgreSQL: a schema and a role of its own per plugin.
//!
//! A plugin's objects live in the schema `plugin_<name>`, owned by the
//! role of the same name (no login), which has no privilege on anything
//! else: not the core tables, not another plugin's schema. Each plugin
//! statement runs in the unit's transaction, in a savepoint, under
//! `SET LOCAL ROLE` to that role and `SET LOCAL search_path` to that schema
//! only; then the host's role and path come back. The role is the
//! boundary; the statement is also parsed first (sqlparser, PostgreSQL
//! dialect) and refused before it reaches the server when it is not a kind
//! plugins may run, names a schema, a `pg_` object or `information_schema`,
//! or calls a function outside a list — in particular `set_config`, with
//! which a role could set itself back to the session's, and anything that
//! runs SQL text (`query_to_xml`) or reads the server (`pg_read_file`,
//! `current_setting`, advisory locks).
//!
//! The host's database user needs `CREATEROLE` (or to be a superuser) to
//! create the roles.

use std::ops::ControlFlow;

use sqlparser::ast::{
    ColumnOption, Expr, ObjectName, ObjectNamePart, Query, SetExpr, Statement, TableConstraint,
    Visit, Visitor,
};
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::Parser;
use tokio_postgres::types::{IsNull, ToSql, Type, to_sql_checked};

use std::pin::pin;

use futures_util::TryStreamExt;
use std::time::Duration;

use tokio_postgres::NoTls;

use super::{Access, CANCEL_GRACE, PgTx, Postgres};
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

/// The schema and role of `ns`'s plugin: `plugin_<name>`, which fits
/// PostgreSQL's 63-byte names for plugin names of at most 56 bytes.
pub(crate) fn schema_of(ns: &Namespace) -> Result<String, SqlError> {
    let name = format!("plugin_{}", ns.plugin());
    if name.len() > 63 {
        return Err(SqlError::AccessDenied(format!(
            "{}: on PostgreSQL a plugin that keeps tables has a name of at most 56 bytes",
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
        .iter()
        .map(|statement| {
            let writes = allowed(statement)?;
            if let ControlFlow::Break(e) = statement.visit(&mut Names) {
                return Err(e);
            }
            foreign_keys(statement)?;
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
    let [ObjectNamePart::Identifier(ident)] = name.0.as_slice() else {
        return Err(SqlError::AccessDenied(format!(
            "{name}: a plugin names its tables without a schema"
        )));
    };
    let lower = ident.value.to_lowercase();
    if lower.starts_with("pg_") || lower == "information_schema" {
        return Err(SqlError::AccessDenied(format!(
            "{}: the server's own",
            ident.value
        )));
    }
    Ok(())
}

/// Foreign keys name tables the visitor does not see as relations.
fn foreign_keys(statement: &Statement) -> Result<(), SqlError> {
    let Statement::CreateTable(table) = statement else {
        return Ok(());
    };
    for constraint in &table.constraints {
        if let TableConstraint::ForeignKey { foreign_table, .. } = constraint {
            check_name(foreign_table)?;
        }
    }
    for column in &table.columns {
        for option in &column.options {
            if let ColumnOption::ForeignKey { foreign_table, .. } = &option.option {
                check_name(foreign_table)?;
            }
        }
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

    fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<SqlError> {
        let refuse = |why: String| ControlFlow::Break(SqlError::AccessDenied(why));
        match expr {
            Expr::Function(f) => {
                let [ObjectNamePart::Identifier(ident)] = f.name.0.as_slice() else {
                    return refuse(format!("{}: a function named with a schema", f.name));
                };
                if !FUNCTIONS.contains(&ident.value.to_lowercase().as_str()) {
                    return refuse(format!("the function {}", ident.value));
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

/// A value bound to a parameter of whatever type the server inferred.
#[derive(Debug)]
pub(crate) struct Param<'a>(pub(crate) &'a SqlValue);

impl ToSql for Param<'_> {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut bytes::BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        let bad = || -> Box<dyn std::error::Error + Sync + Send> {
            format!("a {} cannot be passed as {ty}", kind(self.0)).into()
        };
        match (self.0, ty) {
            (SqlValue::Null, _) => Ok(IsNull::Yes),
            (SqlValue::Integer(n), &Type::INT8) => n.to_sql(ty, out),
            (SqlValue::Integer(n), &Type::INT4) => {
                i32::try_from(*n).map_err(|_| bad())?.to_sql(ty, out)
            }
            (SqlValue::Integer(n), &Type::INT2) => {
                i16::try_from(*n).map_err(|_| bad())?.to_sql(ty, out)
            }
            (SqlValue::Integer(n), &Type::BOOL) => (*n != 0).to_sql(ty, out),
            #[allow(clippy::cast_precision_loss)]
            (SqlValue::Integer(n), &Type::FLOAT8) => (*n as f64).to_sql(ty, out),
            (SqlValue::Real(x), &Type::FLOAT8) => x.to_sql(ty, out),
            #[allow(clippy::cast_possible_truncation)]
            (SqlValue::Real(x), &Type::FLOAT4) => (*x as f32).to_sql(ty, out),
            (SqlValue::Text(t), ty) if is_text(ty) => t.as_str().to_sql(ty, out),
            (SqlValue::Blob(b), &Type::BYTEA) => b.as_slice().to_sql(ty, out),
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

fn kind(v: &SqlValue) -> &'static str {
    match v {
        SqlValue::Null => "null",
        SqlValue::Integer(_) => "integer",
        SqlValue::Real(_) => "real",
        SqlValue::Text(_) => "text",
        SqlValue::Blob(_) => "blob",
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

/// The bytes a plugin keeps on PostgreSQL: its schema's tables (with their
/// TOAST data) and indexes, and its keys and values.
const SIZE: &str =
    "SELECT (SELECT COALESCE(SUM(CASE WHEN c.relkind = 'i' THEN pg_relation_size(c.oid)
                                       ELSE pg_table_size(c.oid) END), 0)
                     FROM pg_class AS c JOIN pg_namespace AS n ON n.oid = c.relnamespace
                     WHERE n.nspname = $1 AND c.relkind IN ('r', 'm', 'i'))::bigint
                  + (SELECT COALESCE(SUM(octet_length(key) + octet_length(value)), 0)
                     FROM plugin_keyvalue WHERE plugin = $2)::bigint";

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

/// Runs one checked statement as the plugin's role, in its schema, inside
/// the savepoint `plinth_plugin` (left open: the caller releases it or
/// rolls back to it). Returns the answer and, when `measure`, what the
/// plugin keeps afterwards.
async fn plugin_statement(
    client: &tokio_postgres::Client,
    schema: &str,
    plugin: &str,
    sql: &str,
    each: &[&[SqlValue]],
    want: Want,
    budget: u64,
    measure: bool,
) -> Result<(Answers, Option<u64>), Failed> {
    let setup = format!(
        "SAVEPOINT plinth_plugin; SET LOCAL ROLE \"{schema}\"; SET LOCAL search_path TO \"{schema}\""
    );
    // Pipelined: the statement is prepared after the role and path are
    // set, so that its names resolve in the plugin's schema.
    let (set, prepared) = tokio::join!(client.batch_execute(&setup), client.prepare(sql));
    set?;
    let prepared = prepared?;
    let mut answers = Answers::new(budget);
    if want == Want::Rows {
        // Every run of one statement has the same columns.
        answers.set_columns(
            prepared
                .columns()
                .iter()
                .map(|c| c.name().to_string())
                .collect(),
        )?;
    }
    for params in each {
        run_prepared(client, &prepared, params, want, &mut answers).await?;
    }
    client
        .batch_execute("RESET ROLE; SET LOCAL search_path TO DEFAULT")
        .await?;
    let size = if measure {
        let row = client.query_one(SIZE, &[&schema, &plugin]).await?;
        let bytes: i64 = row.try_get(0)?;
        Some(u64::try_from(bytes).unwrap_or(0))
    } else {
        None
    };
    Ok((answers, size))
}

/// Runs a prepared plugin statement with one parameter list and adds its
/// answer to `out`.
async fn run_prepared(
    client: &tokio_postgres::Client,
    prepared: &tokio_postgres::Statement,
    params: &[SqlValue],
    want: Want,
    out: &mut Answers,
) -> Result<(), Failed> {
    if prepared.params().len() != params.len() {
        return Err(Failed::Sql(SqlError::Syntax(format!(
            "the statement has {} parameters; {} were given",
            prepared.params().len(),
            params.len()
        ))));
    }
    let values: Vec<Param<'_>> = params.iter().map(Param).collect();
    let refs: Vec<&(dyn ToSql + Sync)> = values.iter().map(|v| v as &(dyn ToSql + Sync)).collect();
    match want {
        Want::Rows => {
            // Row by row as the server sends them, so that the budget is
            // held before the rows are (a stream dropped early is drained
            // by the connection, not kept).
            let rows = client.query_raw(prepared, refs.iter().copied()).await?;
            let mut rows = pin!(rows);
            let n = prepared.columns().len();
            out.begin_run();
            while let Some(row) = rows.try_next().await? {
                for i in 0..n {
                    out.push_value(value(&row, i)?)?;
                }
                out.end_row()?;
            }
            Ok(())
        }
        Want::Outcome => {
            let n = client.execute(prepared, &refs).await?;
            out.outcomes.push(SqlOutcome {
                rows_affected: n,
                last_insert_id: None,
            });
            Ok(())
        }
    }
}

impl Postgres {
    /// Creates the plugin's role and schema, once per backend (and once
    /// across hosts: under an advisory lock, in a transaction of its own).
    fn ensure_plugin_schema(&self, schema: &str) -> crate::Result<()> {
        let mut ensured = self
            .inner
            .ensured
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if ensured.contains(schema) {
            return Ok(());
        }
        let setup = format!(
            "BEGIN;
             SELECT pg_advisory_xact_lock({PLUGIN_SCHEMA_LOCK_CLASS}, hashtext('{schema}'));
             DO $plinth$ BEGIN
                 IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{schema}') THEN
                     CREATE ROLE \"{schema}\" NOLOGIN;
                 END IF;
             END $plinth$;
             CREATE SCHEMA IF NOT EXISTS \"{schema}\" AUTHORIZATION \"{schema}\";
             GRANT \"{schema}\" TO CURRENT_USER;
             COMMIT;"
        );
        self.run(async {
            let client = self.connection().await?;
            let done = client.batch_execute(&setup).await;
            if done.is_err() {
                let _ = client.batch_execute("ROLLBACK").await;
            }
            done.map_err(super::classify)
        })?;
        ensured.insert(schema.to_string());
        Ok(())
    }
}

/// The advisory lock class of creating a plugin's schema.
const PLUGIN_SCHEMA_LOCK_CLASS: i32 = 0x706c_7363;

impl PgTx {
    /// Runs a plugin's statement (or, with `many`, a migration's
    /// statements) in this unit, each measured against the quota.
    pub(crate) fn run_plugin_sql(
        &mut self,
        ns: &Namespace,
        sql: &str,
        each: &[&[SqlValue]],
        want: Want,
        many: bool,
    ) -> Result<Answers, SqlError> {
        let schema = schema_of(ns)?;
        let statements = checked(sql, many)?;
        if ns.read_only() && statements.iter().any(|(_, writes)| *writes) {
            return Err(SqlError::AccessDenied(
                "the plugin may only read its tables (a read grant)".into(),
            ));
        }
        let internal = |e: crate::Error| match e {
            crate::Error::Busy => SqlError::Busy,
            other => SqlError::Internal(other.to_string()),
        };
        self.pg.ensure_plugin_schema(&schema).map_err(internal)?;
        // The unit's transaction, opened if it is not (a lock that takes
        // nothing): the role and path are set for the transaction only.
        if !self.writing {
            self.rows("SELECT 1", &[], Access::Lock).map_err(internal)?;
        }
        let mut last = Answers::new(ns.result_budget());
        for (text, writes) in &statements {
            let measure = *writes && ns.quota().is_some();
            last = self.one_plugin_statement(ns, &schema, text, each, want, measure)?;
        }
        Ok(last)
    }

    fn one_plugin_statement(
        &mut self,
        ns: &Namespace,
        schema: &str,
        sql: &str,
        each: &[&[SqlValue]],
        want: Want,
        measure: bool,
    ) -> Result<Answers, SqlError> {
        if self.broken {
            return Err(SqlError::Internal(
                "the unit's connection was lost; its writes were rolled back".into(),
            ));
        }
        let budget = match self.deadline {
            Some(_) => {
                let budget = crate::backend::wait_budget(self.deadline, Duration::MAX);
                if budget.is_zero() {
                    return Err(SqlError::TimedOut);
                }
                Some(budget)
            }
            None => None,
        };
        let pg = self.pg.clone();
        let Some(client) = self.client.as_ref() else {
            return Err(SqlError::Internal("no connection".into()));
        };
        let plugin = ns.plugin();
        let outcome: Result<Ran, ()> = pg.run(async {
            let work = plugin_statement(
                client,
                schema,
                plugin,
                sql,
                each,
                want,
                ns.result_budget(),
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
        let undo = "ROLLBACK TO SAVEPOINT plinth_plugin; RELEASE SAVEPOINT plinth_plugin";
        let result = match outcome {
            Err(()) => {
                self.broken = true;
                return Err(SqlError::TimedOut);
            }
            Ok(Ok((answer, size))) => match (size, ns.quota()) {
                (Some(size), Some(quota)) if size > quota => {
                    self.batch(undo)?;
                    return Err(SqlError::TooLarge(format!(
                        "the plugin's data would take {size} bytes; its quota is {quota}"
                    )));
                }
                _ => {
                    self.batch("RELEASE SAVEPOINT plinth_plugin")?;
                    Ok(answer)
                }
            },
            Ok(Err(failed)) => {
                let error = match &failed {
                    Failed::Server(e) if e.is_closed() => {
                        self.broken = true;
                        return Err(SqlError::Internal(e.to_string()));
                    }
                    Failed::Server(e) => classify(e),
                    Failed::Sql(e) => e.clone(),
                };
                // Back to the savepoint: the statement's writes, the role
                // and the path go with it.
                self.batch(undo)?;
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

    /// Runs host statements in the unit's transaction; a failure leaves the
    /// connection in a state not known: the unit is over.
    fn batch(&mut self, sql: &str) -> Result<(), SqlError> {
        let Some(client) = self.client.as_ref() else {
            return Err(SqlError::Internal("no connection".into()));
        };
        match self.pg.run(client.batch_execute(sql)) {
            Ok(()) => Ok(()),
            Err(e) => {
                self.broken = true;
                Err(SqlError::Internal(e.to_string()))
            }
        }
    }
}
