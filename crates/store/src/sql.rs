//! A plugin's own SQL: statements a plugin runs on its own tables, inside
//! the call's unit of work, confined to its namespace.
//!
//! On SQLite a plugin's objects live in the database file beside the core
//! tables, named `"<plugin>:<name>"`. The plugin writes plain names
//! (`items`); [`Unit::plugin_query`] and [`Unit::plugin_execute`] parse the
//! statement and put every name it creates or reads into the plugin's
//! namespace. That rewriting is for the plugin's convenience; the boundary
//! is SQLite's authorizer, which while a plugin statement is prepared allows
//! only the plugin's own objects, a list of functions, and no pragmas,
//! attachments, transaction control, temporary objects or triggers. While
//! the statement runs, SQLite's limits are lowered and a progress handler
//! stops it at the unit's deadline.
//!
//! On PostgreSQL a plugin's objects live in a schema of its own, and its
//! statements run in a session logged in as a role of its own that can
//! reach nothing else (`postgres/sandbox.rs`); the statement is checked by
//! a parse first, as on SQLite.

use crate::Unit;

/// One value of a row or a parameter.
#[derive(Debug, Clone, PartialEq)]
pub enum SqlValue {
    /// SQL `NULL`.
    Null,
    /// A 64-bit integer.
    Integer(i64),
    /// A double.
    Real(f64),
    /// UTF-8 text.
    Text(String),
    /// Bytes.
    Blob(Vec<u8>),
}

/// The rows a query returned.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SqlRows {
    /// The columns' names, in order.
    pub columns: Vec<String>,
    /// Each row's values, in the columns' order.
    pub rows: Vec<Vec<SqlValue>>,
}

/// The rows of one query run once per parameter list, flat: one vector of
/// values for every row of every run (as `plinth:sql`'s `batch-rows` carries
/// them), because a vector per row or per run costs an allocation and a
/// copy for each.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SqlBatchRows {
    /// The columns' names, in order.
    pub columns: Vec<String>,
    /// For each parameter list, in order, how many rows it returned.
    pub counts: Vec<u32>,
    /// Every row's values, row after row and run after run; each row has
    /// one value per column.
    pub values: Vec<SqlValue>,
}

impl SqlBatchRows {
    /// The rows of each run, in order, each row a slice of
    /// [`SqlBatchRows::values`].
    pub fn runs(&self) -> Vec<Vec<&[SqlValue]>> {
        let width = self.columns.len();
        let mut at = 0;
        self.counts
            .iter()
            .map(|&count| {
                (0..count)
                    .map(|_| {
                        let row = self.values.get(at..at + width).unwrap_or(&[]);
                        at += width;
                        row
                    })
                    .collect()
            })
            .collect()
    }
}

impl SqlValue {
    /// The bytes the value holds beyond its slot.
    fn payload_bytes(&self) -> u64 {
        match self {
            SqlValue::Text(t) => t.len() as u64,
            SqlValue::Blob(b) => b.len() as u64,
            _ => 0,
        }
    }
}

/// What a plugin statement run once per parameter list answered, gathered
/// under a byte budget: rows are counted as they are read, so that a query
/// whose rows would not fit answers [`SqlError::TooLarge`] while the host
/// holds at most the budget (and one row) of them.
#[derive(Debug, Default)]
pub(crate) struct Answers {
    /// For a query ([`Want::Rows`]): the rows of every run.
    pub(crate) rows: SqlBatchRows,
    /// For a statement that writes ([`Want::Outcome`]): what each run did.
    pub(crate) outcomes: Vec<SqlOutcome>,
    /// Most bytes the rows may take.
    budget: u64,
    /// Bytes they take so far.
    taken: u64,
}

impl Answers {
    /// Answers to gather under a budget of `budget` bytes of rows.
    pub(crate) fn new(budget: u64) -> Self {
        Self {
            budget,
            ..Self::default()
        }
    }

    /// Sets the columns' names (every run of one statement has the same),
    /// counted before they are copied.
    pub(crate) fn set_columns<'a>(
        &mut self,
        columns: impl Iterator<Item = &'a str> + Clone,
    ) -> Result<(), SqlError> {
        let bytes = columns
            .clone()
            .map(|c| (std::mem::size_of::<String>() + c.len()) as u64)
            .sum();
        self.take(bytes)?;
        self.rows.columns = columns.map(str::to_string).collect();
        Ok(())
    }

    /// Starts the rows of the next run.
    pub(crate) fn begin_run(&mut self) {
        self.rows.counts.push(0);
    }

    /// Adds one value of the current row.
    ///
    /// # Errors
    /// [`SqlError::TooLarge`] when the rows so far are over the budget.
    pub(crate) fn push_value(&mut self, value: SqlValue) -> Result<(), SqlError> {
        let values = &self.rows.values;
        if values.len() == values.capacity() {
            // The push will move the values to a block about twice as
            // large: counted before it is taken.
            let grown = (values.capacity() * 2).max(4);
            let slots = (grown - values.capacity()) * std::mem::size_of::<SqlValue>();
            self.take(slots as u64)?;
        }
        self.take(value.payload_bytes())?;
        self.rows.values.push(value);
        Ok(())
    }

    /// Ends the current row of the current run.
    ///
    /// # Errors
    /// [`SqlError::TooLarge`] past `u32::MAX` rows in one run, or when a
    /// row's own vector (what one query's answer is built into) takes the
    /// rows past the budget.
    pub(crate) fn end_row(&mut self) -> Result<(), SqlError> {
        self.take(std::mem::size_of::<Vec<SqlValue>>() as u64)?;
        if let Some(count) = self.rows.counts.last_mut() {
            *count = count.checked_add(1).ok_or_else(|| {
                SqlError::TooLarge("more than 4294967295 rows from one run".into())
            })?;
        }
        Ok(())
    }

    /// Adds the rows of `run`, one run's rows read on their own under the
    /// same budget (their bytes counted again here, against the whole).
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    pub(crate) fn append_run(&mut self, run: Answers) -> Result<(), SqlError> {
        self.take(run.taken)?;
        self.rows.values.extend(run.rows.values);
        self.rows.counts.extend(run.rows.counts);
        Ok(())
    }

    fn take(&mut self, bytes: u64) -> Result<(), SqlError> {
        self.taken = self.taken.saturating_add(bytes);
        if self.taken > self.budget {
            return Err(SqlError::TooLarge(format!(
                "the rows take more than {} bytes, all the host holds for one call's \
                 statement (from the plugin's memory limit); ask for fewer or smaller rows",
                self.budget
            )));
        }
        Ok(())
    }
}

/// What a statement that changes rows did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SqlOutcome {
    /// Rows inserted, updated or deleted by the statement.
    pub rows_affected: u64,
    /// The row id of the last row the statement inserted, if it did.
    pub last_insert_id: Option<i64>,
}

/// Why a plugin's statement failed. Nothing it would have written is kept;
/// the unit goes on (except after [`SqlError::TimedOut`], when its call is
/// over).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SqlError {
    /// The statement does not parse, or names what does not exist.
    #[error("{0}")]
    Syntax(String),
    /// A constraint refused the write.
    #[error("constraint: {0}")]
    Constraint(String),
    /// The statement reaches outside the plugin's namespace or does what
    /// plugins may not.
    #[error("access denied: {0}")]
    AccessDenied(String),
    /// A value or the statement is over its limit.
    #[error("too large: {0}")]
    TooLarge(String),
    /// The statement ran to the unit's deadline and was stopped.
    #[error("the statement ran out of time")]
    TimedOut,
    /// Other writers held the database past the wait allowed.
    #[error("the database is busy")]
    Busy,
    /// A fault of the host or the database.
    #[error("internal: {0}")]
    Internal(String),
}

/// Whose statements these are, and what they may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Namespace {
    plugin: String,
    read_only: bool,
    quota: Option<u64>,
    result_bytes: u64,
}

impl Namespace {
    /// The namespace of plugin `plugin` (lowercase letters, digits, `-` and
    /// `_`). With `read_only`, statements that write are refused.
    ///
    /// # Errors
    /// [`SqlError::AccessDenied`] for a name with other characters: a name
    /// with `:` could reach into another plugin's namespace, and one with
    /// capitals would share it with another name (SQLite and PostgreSQL's
    /// folding match names whatever their case: `ALPHA:t` is `alpha:t`).
    pub fn new(plugin: &str, read_only: bool) -> Result<Self, SqlError> {
        let ok = !plugin.is_empty()
            && plugin.len() <= 64
            && plugin
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
        if !ok {
            return Err(SqlError::AccessDenied(format!(
                "{plugin:?} cannot own tables: a plugin that keeps data is named in lowercase letters, digits, - and _"
            )));
        }
        Ok(Self {
            plugin: plugin.to_string(),
            read_only,
            quota: None,
            result_bytes: MAX_RESULT_BYTES,
        })
    }

    /// The same namespace, holding at most `bytes` of the plugin's data
    /// (its tables' pages and its keys and values): a write that would take
    /// it past that answers [`SqlError::TooLarge`] and keeps nothing.
    #[must_use]
    pub fn with_quota(mut self, bytes: Option<u64>) -> Self {
        self.quota = bytes;
        self
    }

    /// The same namespace, its statements' rows held in the host to at most
    /// `bytes` (and never more than [`MAX_RESULT_BYTES`]): a query, or a
    /// batch of queries, whose rows take more answers
    /// [`SqlError::TooLarge`] as soon as the rows read pass it.
    #[must_use]
    pub fn with_result_budget(mut self, bytes: u64) -> Self {
        self.result_bytes = bytes.min(MAX_RESULT_BYTES);
        self
    }

    /// Most bytes of rows one statement (or batch) may bring into the host.
    pub fn result_budget(&self) -> u64 {
        self.result_bytes
    }

    /// Most bytes of data the plugin may keep, if bounded.
    pub fn quota(&self) -> Option<u64> {
        self.quota
    }

    /// The plugin.
    pub fn plugin(&self) -> &str {
        &self.plugin
    }

    /// Whether writes are refused.
    pub fn read_only(&self) -> bool {
        self.read_only
    }

    /// What the plugin's object names begin with in an SQLite file.
    pub fn prefix(&self) -> String {
        format!("{}:", self.plugin)
    }
}

/// What a plugin statement is run for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Want {
    Rows,
    Outcome,
}

/// The most bytes of SQL a plugin statement may have.
pub const MAX_STATEMENT_BYTES: usize = 100_000;

/// The most bytes of rows one plugin statement, or one batch, may bring
/// into the host's memory, whatever the plugin's memory limit: 64 MiB. Each
/// value counts its bytes, the vector that holds the values counts its
/// capacity before it grows, and each row the vector it is moved into.
pub const MAX_RESULT_BYTES: u64 = 64 << 20;

impl Unit {
    /// Runs one statement of `ns`'s plugin that returns rows.
    ///
    /// # Errors
    /// [`SqlError`], typed; the statement changed nothing.
    pub fn plugin_query(
        &mut self,
        ns: &Namespace,
        statement: &str,
        params: &[SqlValue],
    ) -> Result<SqlRows, SqlError> {
        // Its rows are read flat, then moved into a vector per row: both
        // are held for a moment, so each gets half the budget.
        let half = ns.clone().with_result_budget(ns.result_budget() / 2);
        let batch = self.plugin_query_batch(&half, statement, &[params])?;
        let width = batch.columns.len();
        let count = batch.counts.first().copied().unwrap_or(0);
        // The values are moved into their rows, not copied.
        let mut values = batch.values.into_iter();
        let rows = (0..count)
            .map(|_| values.by_ref().take(width).collect())
            .collect();
        Ok(SqlRows {
            columns: batch.columns,
            rows,
        })
    }

    /// Runs one statement of `ns`'s plugin that changes rows or schema.
    ///
    /// # Errors
    /// [`SqlError`], typed; the statement changed nothing.
    pub fn plugin_execute(
        &mut self,
        ns: &Namespace,
        statement: &str,
        params: &[SqlValue],
    ) -> Result<SqlOutcome, SqlError> {
        let answers = self.plugin_sql(ns, statement, &[params], Want::Outcome)?;
        Ok(answers.outcomes.first().copied().unwrap_or_default())
    }

    /// Runs one statement of `ns`'s plugin once per parameter list of
    /// `each`, prepared once: many rows in one go. Returns the rows changed
    /// in all.
    ///
    /// # Errors
    /// [`SqlError`], typed, for the first that fails; then nothing of the
    /// batch is kept.
    pub fn plugin_execute_batch(
        &mut self,
        ns: &Namespace,
        statement: &str,
        each: &[&[SqlValue]],
    ) -> Result<u64, SqlError> {
        Ok(self
            .plugin_sql(ns, statement, each, Want::Outcome)?
            .outcomes
            .iter()
            .map(|o| o.rows_affected)
            .sum())
    }

    /// Runs one query of `ns`'s plugin once per parameter list of `each`,
    /// prepared once; the rows of each, in order.
    ///
    /// # Errors
    /// [`SqlError`], typed, for the first that fails.
    pub fn plugin_query_batch(
        &mut self,
        ns: &Namespace,
        statement: &str,
        each: &[&[SqlValue]],
    ) -> Result<SqlBatchRows, SqlError> {
        Ok(self.plugin_sql(ns, statement, each, Want::Rows)?.rows)
    }

    fn plugin_sql(
        &mut self,
        ns: &Namespace,
        statement: &str,
        each: &[&[SqlValue]],
        want: Want,
    ) -> Result<Answers, SqlError> {
        if statement.len() > MAX_STATEMENT_BYTES {
            return Err(SqlError::TooLarge(format!(
                "the statement is {} bytes; at most {MAX_STATEMENT_BYTES}",
                statement.len()
            )));
        }
        if each.is_empty() {
            return Ok(Answers::default());
        }
        let used = self.usage.entry(ns.plugin().to_string()).or_default();
        self.tx.plugin_sql(ns, statement, each, want, used)
    }
}

/// What a plugin statement is, as far as both dialects' sandboxes agree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A query (which may still write: `WITH … INSERT`, a row lock).
    Query,
    /// An insert, update or delete.
    Write,
    /// A change to the plugin's schema.
    Schema,
}

/// The kinds of statement a plugin may run, on either database; everything
/// else is refused, saying what.
///
/// # Errors
/// [`SqlError::AccessDenied`] naming the kind.
pub(crate) fn kind(statement: &sqlparser::ast::Statement) -> Result<Kind, SqlError> {
    use sqlparser::ast::{ObjectType, Statement};
    let refuse = |what: &str| Err(SqlError::AccessDenied(what.to_string()));
    match statement {
        Statement::Query(_) => Ok(Kind::Query),
        Statement::Insert(_) | Statement::Update { .. } | Statement::Delete(_) => Ok(Kind::Write),
        Statement::CreateTable(t) if t.temporary => refuse("temporary tables"),
        // Its rows are written by no statement the row limit counts.
        Statement::CreateTable(t) if t.query.is_some() => {
            refuse("CREATE TABLE … AS: create the table, then fill it with INSERT … SELECT")
        }
        Statement::CreateTable(_) | Statement::CreateIndex(_) | Statement::AlterTable { .. } => {
            Ok(Kind::Schema)
        }
        Statement::CreateView {
            temporary: true, ..
        } => refuse("temporary views"),
        Statement::CreateView { .. } => Ok(Kind::Schema),
        Statement::CreateVirtualTable { module_name, .. } => {
            if module_name.value.eq_ignore_ascii_case("fts5") {
                Ok(Kind::Schema)
            } else {
                refuse("virtual tables other than fts5")
            }
        }
        Statement::Drop { object_type, .. } => match object_type {
            ObjectType::Table | ObjectType::View | ObjectType::Index => Ok(Kind::Schema),
            _ => refuse("dropping that kind of object"),
        },
        Statement::StartTransaction { .. }
        | Statement::Commit { .. }
        | Statement::Rollback { .. }
        | Statement::Savepoint { .. }
        | Statement::ReleaseSavepoint { .. } => refuse(
            "transaction control: the call is the transaction (it commits when the export returns)",
        ),
        Statement::AttachDatabase { .. } => refuse("ATTACH"),
        Statement::Pragma { .. } => refuse("PRAGMA"),
        Statement::CreateTrigger(_) => refuse("triggers"),
        other => {
            let text = other.to_string();
            let word = text.split_whitespace().next().unwrap_or("this statement");
            refuse(&format!("{word} statements"))
        }
    }
}

/// The tables a statement's foreign keys point at (`CREATE TABLE`,
/// `ALTER TABLE … ADD`): names the sandboxes' visitors do not see as
/// relations, and which each sandbox confines as it does those.
pub(crate) fn foreign_tables(
    statement: &mut sqlparser::ast::Statement,
) -> Vec<&mut sqlparser::ast::ObjectName> {
    use sqlparser::ast::{
        AlterTableOperation, ColumnDef, ColumnOption, Statement, TableConstraint,
    };
    let mut constraints: Vec<&mut TableConstraint> = Vec::new();
    let mut columns: Vec<&mut ColumnDef> = Vec::new();
    match statement {
        Statement::CreateTable(table) => {
            constraints.extend(table.constraints.iter_mut());
            columns.extend(table.columns.iter_mut());
        }
        Statement::AlterTable { operations, .. } => {
            for operation in operations {
                match operation {
                    AlterTableOperation::AddColumn { column_def, .. } => columns.push(column_def),
                    AlterTableOperation::AddConstraint { constraint, .. } => {
                        constraints.push(constraint);
                    }
                    _ => {}
                }
            }
        }
        _ => {}
    }
    let mut tables = Vec::new();
    for constraint in constraints {
        if let TableConstraint::ForeignKey { foreign_table, .. } = constraint {
            tables.push(foreign_table);
        }
    }
    for column in columns {
        for option in &mut column.options {
            if let ColumnOption::ForeignKey { foreign_table, .. } = &mut option.option {
                tables.push(foreign_table);
            }
        }
    }
    tables
}

/// The one identifier of a name a plugin uses for a table, refusing a name
/// with a schema and the engine's own names (`own`, given the name in
/// lowercase; `whose` says whose they are).
pub(crate) fn plain_name<'a>(
    name: &'a sqlparser::ast::ObjectName,
    own: fn(&str) -> bool,
    whose: &str,
) -> Result<&'a sqlparser::ast::Ident, SqlError> {
    let [sqlparser::ast::ObjectNamePart::Identifier(ident)] = name.0.as_slice() else {
        return Err(SqlError::AccessDenied(format!(
            "{name}: a plugin names its tables without a schema"
        )));
    };
    if own(&ident.value.to_lowercase()) {
        return Err(SqlError::AccessDenied(format!("{}: {whose}", ident.value)));
    }
    Ok(ident)
}

/// A store error met while running a plugin's SQL: a lock not had in time
/// is [`SqlError::Busy`], anything else the host's fault.
pub(crate) fn from_store(e: crate::Error) -> SqlError {
    match e {
        crate::Error::Busy => SqlError::Busy,
        other => SqlError::Internal(other.to_string()),
    }
}
