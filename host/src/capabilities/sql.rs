//! `plinth:sql`: a plugin's own tables, in its namespace, in the call's unit
//! of work (the store does the sandboxing: `plinth_store::sql`).

use plinth_store::sql::{Namespace, SqlError, SqlValue};

use super::{Database, DbView};
use crate::bindings::sql_world::plinth::sql::{sql, types};
use crate::capability::{Capability, Function, Gate, Interface};
use crate::grants::Access;

/// `plinth:sql/types`: types only, open to every plugin.
pub const TYPES: Interface = Interface {
    name: "plinth:sql/types",
    version: "0.1.0",
    summary: "the values, rows and error variant of a plugin's own SQL",
    gate: Gate::Open,
    functions: &[],
};

/// `plinth:sql/sql`.
pub const SQL: Interface = Interface {
    name: "plinth:sql/sql",
    version: "0.1.0",
    summary: "the plugin's own SQL tables, in its namespace (read: queries only)",
    gate: Gate::Manifest,
    functions: &[
        Function::read("current-dialect"),
        Function::write("execute"),
        Function::write("execute-batch"),
        Function::read("query"),
        Function::read("query-batch"),
    ],
};

/// The capability: links `plinth:sql/types` and `plinth:sql/sql`.
pub const CAPABILITY: Capability = Capability {
    interfaces: &[TYPES, SQL],
    add_to_linker: |linker| {
        types::add_to_linker::<_, Database>(linker, |s| DbView::of(s, &TYPES))?;
        sql::add_to_linker::<_, Database>(linker, |s| DbView::of(s, &SQL))
    },
};

const DIALECT: Access = SQL.access("current-dialect");
const EXECUTE: Access = SQL.access("execute");
const QUERY: Access = SQL.access("query");
const EXECUTE_BATCH: Access = SQL.access("execute-batch");
const QUERY_BATCH: Access = SQL.access("query-batch");

/// Why a `plinth:sql` host function failed before it reached the guest.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SqlHostError {
    /// The statement failed, typed.
    #[error(transparent)]
    Sql(#[from] SqlError),
    /// No unit of work could be had.
    #[error(transparent)]
    Store(#[from] plinth_store::Error),
    /// The plugin is not granted this function.
    #[error("{0} is not granted")]
    AccessDenied(String),
    /// Abort the guest.
    #[error("trap: {0}")]
    Trap(wasmtime::Error),
}

impl From<super::HostError> for SqlHostError {
    fn from(e: super::HostError) -> Self {
        match e {
            super::HostError::Store(e) => SqlHostError::Store(e),
            super::HostError::AccessDenied { interface, access } => {
                SqlHostError::AccessDenied(format!("{interface} ({access})"))
            }
            super::HostError::Trap(e) => SqlHostError::Trap(e),
        }
    }
}

fn to_store(v: types::Value) -> SqlValue {
    match v {
        types::Value::Null => SqlValue::Null,
        types::Value::Integer(n) => SqlValue::Integer(n),
        types::Value::Real(x) => SqlValue::Real(x),
        types::Value::Text(t) => SqlValue::Text(t),
        types::Value::Blob(b) => SqlValue::Blob(b),
    }
}

fn to_wit(v: SqlValue) -> types::Value {
    match v {
        SqlValue::Null => types::Value::Null,
        SqlValue::Integer(n) => types::Value::Integer(n),
        SqlValue::Real(x) => types::Value::Real(x),
        SqlValue::Text(t) => types::Value::Text(t),
        SqlValue::Blob(b) => types::Value::Blob(b),
    }
}

/// The most runs of one `execute-batch` or `query-batch`: a statement with
/// no parameters costs the guest nothing per run, so the count is bounded
/// here, not by the guest's memory.
pub const MAX_BATCH_RUNS: u32 = 65_536;

/// A batch's flat parameters, `runs` runs of the same width, as the store
/// takes them (slices of one vector: no list per run).
fn runs_of(runs: u32, params: &[SqlValue]) -> Result<Vec<&[SqlValue]>, SqlError> {
    if runs > MAX_BATCH_RUNS {
        return Err(SqlError::TooLarge(format!(
            "{runs} runs in one batch; at most {MAX_BATCH_RUNS}"
        )));
    }
    let runs = runs as usize;
    if runs == 0 {
        return if params.is_empty() {
            Ok(Vec::new())
        } else {
            Err(SqlError::Syntax(format!(
                "{} parameters for no runs",
                params.len()
            )))
        };
    }
    if !params.len().is_multiple_of(runs) {
        return Err(SqlError::Syntax(format!(
            "{} parameters do not split into {runs} runs of the same number",
            params.len()
        )));
    }
    let width = params.len() / runs;
    Ok(if width == 0 {
        vec![&[][..]; runs]
    } else {
        params.chunks(width).collect()
    })
}

fn rows_to_wit(rows: plinth_store::sql::SqlRows) -> types::Rows {
    types::Rows {
        columns: rows.columns,
        rows: rows
            .rows
            .into_iter()
            .map(|r| r.into_iter().map(to_wit).collect())
            .collect(),
    }
}

impl DbView<'_> {
    /// The plugin's namespace: read-only unless it was granted writes.
    fn sql_namespace(&self) -> Result<Namespace, SqlHostError> {
        let read_only = self.plugin.grants.get(&SQL) != Some(Access::Write);
        Ok(self.namespace(read_only)?)
    }
}

impl sql::Host for DbView<'_> {
    fn current_dialect(&mut self) -> wasmtime::Result<types::Dialect> {
        self.check(DIALECT)
            .map_err(|e| wasmtime::Error::msg(e.to_string()))?;
        Ok(match self.db().dialect() {
            plinth_store::Dialect::Postgres => types::Dialect::Postgresql,
            _ => types::Dialect::Sqlite,
        })
    }

    fn execute(
        &mut self,
        statement: String,
        params: Vec<types::Value>,
    ) -> Result<types::Outcome, SqlHostError> {
        let ns = self.sql_namespace()?;
        let params: Vec<SqlValue> = params.into_iter().map(to_store).collect();
        let outcome = self
            .unit(EXECUTE)?
            .plugin_execute(&ns, &statement, &params)?;
        Ok(types::Outcome {
            rows_affected: outcome.rows_affected,
            last_insert_id: outcome.last_insert_id,
        })
    }

    fn query(
        &mut self,
        statement: String,
        params: Vec<types::Value>,
    ) -> Result<types::Rows, SqlHostError> {
        let ns = self.sql_namespace()?;
        let params: Vec<SqlValue> = params.into_iter().map(to_store).collect();
        let rows = self.unit(QUERY)?.plugin_query(&ns, &statement, &params)?;
        Ok(rows_to_wit(rows))
    }

    fn execute_batch(
        &mut self,
        statement: String,
        runs: u32,
        params: Vec<types::Value>,
    ) -> Result<u64, SqlHostError> {
        let ns = self.sql_namespace()?;
        let params: Vec<SqlValue> = params.into_iter().map(to_store).collect();
        let each = runs_of(runs, &params)?;
        Ok(self
            .unit(EXECUTE_BATCH)?
            .plugin_execute_batch(&ns, &statement, &each)?)
    }

    fn query_batch(
        &mut self,
        statement: String,
        runs: u32,
        params: Vec<types::Value>,
    ) -> Result<types::BatchRows, SqlHostError> {
        let ns = self.sql_namespace()?;
        let params: Vec<SqlValue> = params.into_iter().map(to_store).collect();
        let each = runs_of(runs, &params)?;
        let rows = self
            .unit(QUERY_BATCH)?
            .plugin_query_batch(&ns, &statement, &each)?;
        Ok(types::BatchRows {
            columns: rows.columns,
            counts: rows.counts,
            values: rows.values.into_iter().map(to_wit).collect(),
        })
    }
}

impl types::Host for DbView<'_> {
    fn convert_error(&mut self, err: SqlHostError) -> wasmtime::Result<types::Error> {
        Ok(match err {
            SqlHostError::Sql(e) => match e {
                SqlError::Syntax(m) => types::Error::Syntax(m),
                SqlError::Constraint(m) => types::Error::Constraint(m),
                SqlError::AccessDenied(m) => types::Error::AccessDenied(m),
                SqlError::TooLarge(m) => types::Error::TooLarge(m),
                SqlError::TimedOut => types::Error::TimedOut,
                SqlError::Busy => types::Error::Busy,
                SqlError::Internal(m) => {
                    tracing::error!(plugin = %self.plugin_name(), error = %m, "plugin SQL fault");
                    types::Error::Internal("database error; see the host's log".into())
                }
                other => types::Error::Internal(other.to_string()),
            },
            SqlHostError::Store(plinth_store::Error::Busy) => types::Error::Busy,
            SqlHostError::Store(e) => {
                tracing::error!(plugin = %self.plugin_name(), error = %e, "database fault");
                types::Error::Internal("database error; see the host's log".into())
            }
            SqlHostError::AccessDenied(what) => types::Error::AccessDenied(what),
            SqlHostError::Trap(e) => return Err(e),
        })
    }
}
