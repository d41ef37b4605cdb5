//! Plugin SQL on SQLite: the statement put into the plugin's namespace,
//! prepared under an authorizer that allows nothing else, run under lowered
//! limits and the unit's deadline.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::ops::ControlFlow;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use rusqlite::hooks::{AuthAction, AuthContext, Authorization};
use rusqlite::limits::Limit;
use rusqlite::types::ValueRef;
use rusqlite::{Connection, ErrorCode};
use sqlparser::ast::{
    AlterTableOperation, Expr, Ident, ObjectName, ObjectNamePart, Query, RenameTableNameKind,
    Statement, Visit, VisitMut, Visitor, VisitorMut,
};
use sqlparser::dialect::SQLiteDialect;
use sqlparser::parser::Parser;

use super::SqliteTx;
use crate::quota::Usage;
use crate::sql::{Answers, Namespace, SqlError, SqlOutcome, SqlValue, Want, from_store};

/// The functions a plugin's SQL may call: SQLite's core scalar, aggregate,
/// date and JSON functions and FTS5's; not `load_extension`, not the ones
/// that tell the build (`sqlite_version`, `sqlite_compileoption_*`,
/// `sqlite_source_id`), not `sqlite_offset`.
const FUNCTIONS: &[&str] = &[
    "abs",
    "avg",
    "bm25",
    "char",
    "coalesce",
    "concat",
    "concat_ws",
    "count",
    "date",
    "datetime",
    "format",
    "glob",
    "group_concat",
    "hex",
    "highlight",
    "ifnull",
    "iif",
    "instr",
    "json",
    "json_array",
    "json_array_length",
    "json_extract",
    "json_group_array",
    "json_group_object",
    "json_object",
    "json_quote",
    "json_type",
    "json_valid",
    "julianday",
    "length",
    "like",
    "likelihood",
    "likely",
    "lower",
    "ltrim",
    "match",
    "max",
    "min",
    "nullif",
    "octet_length",
    "printf",
    "quote",
    "random",
    "randomblob",
    "replace",
    "round",
    "rtrim",
    "sign",
    "snippet",
    "string_agg",
    "strftime",
    "substr",
    "substring",
    "sum",
    "time",
    "total",
    "trim",
    "typeof",
    "unhex",
    "unicode",
    "unixepoch",
    "unlikely",
    "upper",
    "zeroblob",
];

/// Limits while a plugin statement is prepared and run (SQLite's "Defense
/// Against the Dark Arts"), and the default each returns to after.
const LIMITS: &[(Limit, i32)] = &[
    (Limit::SQLITE_LIMIT_LENGTH, 1_000_000),
    (Limit::SQLITE_LIMIT_SQL_LENGTH, 100_000),
    (Limit::SQLITE_LIMIT_COLUMN, 100),
    (Limit::SQLITE_LIMIT_EXPR_DEPTH, 100),
    (Limit::SQLITE_LIMIT_COMPOUND_SELECT, 8),
    (Limit::SQLITE_LIMIT_VDBE_OP, 25_000),
    (Limit::SQLITE_LIMIT_FUNCTION_ARG, 16),
    (Limit::SQLITE_LIMIT_ATTACHED, 0),
    (Limit::SQLITE_LIMIT_LIKE_PATTERN_LENGTH, 100),
    (Limit::SQLITE_LIMIT_VARIABLE_NUMBER, 100),
    (Limit::SQLITE_LIMIT_TRIGGER_DEPTH, 4),
];

/// SQLite's own tables, which it reads and writes inside a plugin's `CREATE`
/// and `DROP`.
const SCHEMA_TABLES: &[&str] = &["sqlite_master", "sqlite_schema"];

/// Marks every plugin statement's text: a statement with no name in it
/// (`SELECT 1`) then never shares a cached preparation with a host
/// statement of the same text, which was prepared without the authorizer.
const MARK: &str = " /* plugin */";

/// The most rewritten statements kept per database.
const MAX_REWRITES: usize = 1024;

/// A plugin statement put into its namespace.
#[derive(Debug, Clone)]
pub(crate) struct Rewritten {
    /// The text to prepare (marked: see [`MARK`]).
    sql: Arc<str>,
    /// Whether it changes the schema.
    ddl: bool,
    /// Whether it may write (anything but a query).
    writes: bool,
}

/// Plugin statements already put into their namespace, by plugin prefix
/// and text. Parsing and rewriting cost more than running a small
/// statement; a plugin runs the same few statements over and over.
#[derive(Debug, Default)]
pub(crate) struct Rewrites {
    done: Mutex<HashMap<String, HashMap<String, Rewritten>>>,
    /// Plugin objects whose stored definition (`name`, NUL, `sql`) was
    /// checked already ([`check_schema`]): a schema change re-checks only
    /// what is new, not every object the plugin has.
    checked: Mutex<HashSet<String>>,
}

/// The most checked definitions remembered per database.
const MAX_CHECKED: usize = 10_000;

impl Rewrites {
    /// `sql` of `ns`'s plugin, rewritten (once) into its namespace.
    fn get(&self, sql: &str, ns: &Namespace) -> Result<Rewritten, SqlError> {
        let prefix = ns.prefix();
        if let Some(hit) = self.lock().get(&prefix).and_then(|m| m.get(sql)) {
            return Ok(hit.clone());
        }
        let mut statements = parse(sql)?;
        let [statement] = statements.as_mut_slice() else {
            return Err(SqlError::Syntax(format!(
                "one statement per call, not {}",
                statements.len()
            )));
        };
        let rewritten = rewrite(statement, ns)?;
        let mut done = self.lock();
        if done.values().map(HashMap::len).sum::<usize>() >= MAX_REWRITES {
            done.clear();
        }
        done.entry(prefix)
            .or_default()
            .insert(sql.to_string(), rewritten.clone());
        Ok(rewritten)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, HashMap<String, Rewritten>>> {
        self.done.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// One parsed statement of a plugin, put into its namespace and marked.
fn rewrite(statement: &mut Statement, ns: &Namespace) -> Result<Rewritten, SqlError> {
    let writes = !matches!(statement, Statement::Query(_));
    let (text, ddl) = namespace_statement(statement, ns)?;
    Ok(Rewritten {
        sql: format!("{text}{MARK}").into(),
        ddl,
        writes,
    })
}

fn parse(sql: &str) -> Result<Vec<Statement>, SqlError> {
    Parser::parse_sql(&SQLiteDialect {}, sql).map_err(|e| SqlError::Syntax(e.to_string()))
}

/// Puts one parsed statement of a plugin into its namespace; refuses what
/// plugins may not run. Returns the SQL to prepare and whether it is DDL.
///
/// # Errors
/// [`SqlError::AccessDenied`] for a statement kind or a name plugins may not
/// use.
fn namespace_statement(
    statement: &mut Statement,
    ns: &Namespace,
) -> Result<(String, bool), SqlError> {
    let ddl = allowed(statement)?;
    let mut namer = Namer::new(ns.prefix(), statement);
    if let ControlFlow::Break(e) = statement.visit(&mut namer) {
        return Err(e);
    }
    let prefix = ns.prefix();
    // Names the visitor does not see as relations.
    match statement {
        Statement::CreateIndex(index) => {
            if let Some(name) = &mut index.name {
                rename(name, &prefix)?;
            }
        }
        Statement::CreateView { name, .. } => rename(name, &prefix)?,
        Statement::Drop { names, .. } => {
            for name in names {
                rename(name, &prefix)?;
            }
        }
        Statement::AlterTable { operations, .. } => {
            for operation in operations {
                if let AlterTableOperation::RenameTable {
                    table_name: RenameTableNameKind::As(name) | RenameTableNameKind::To(name),
                } = operation
                {
                    rename(name, &prefix)?;
                }
            }
        }
        _ => {}
    }
    for table in crate::sql::foreign_tables(statement) {
        rename(table, &prefix)?;
    }
    Ok((statement.to_string(), ddl))
}

/// Whether plugins may run this kind of statement; `Ok(true)` for DDL.
fn allowed(statement: &Statement) -> Result<bool, SqlError> {
    Ok(crate::sql::kind(statement)? == crate::sql::Kind::Schema)
}

/// Puts a one-part name into the namespace; refuses qualified names and
/// SQLite's own tables. Names of common table expressions are put there
/// too (their definitions are renamed alike), so that a name means the same
/// wherever SQLite resolves it: a CTE called `users` is the plugin's, in
/// and out of its scope.
fn rename(name: &mut ObjectName, prefix: &str) -> Result<(), SqlError> {
    let ident = crate::sql::plain_name(name, |n| n.starts_with("sqlite_"), "SQLite's own")?;
    let renamed = Ident::with_quote('"', format!("{prefix}{}", ident.value));
    *name = ObjectName(vec![ObjectNamePart::Identifier(renamed)]);
    Ok(())
}

/// The names of the tables a statement reads or writes (first pass) and its
/// common table expressions.
#[derive(Default)]
struct Names {
    relations: HashSet<String>,
    ctes: HashSet<String>,
}

impl Visitor for Names {
    type Break = ();

    fn pre_visit_query(&mut self, query: &Query) -> ControlFlow<()> {
        if let Some(with) = &query.with {
            for cte in &with.cte_tables {
                self.ctes.insert(cte.alias.name.value.to_lowercase());
            }
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_relation(&mut self, relation: &ObjectName) -> ControlFlow<()> {
        if let [ObjectNamePart::Identifier(ident)] = relation.0.as_slice() {
            self.relations.insert(ident.value.to_lowercase());
        }
        ControlFlow::Continue(())
    }
}

/// The second pass: renames relations, and the table part of qualified
/// column names (`items.title`).
struct Namer {
    prefix: String,
    names: Names,
}

impl Namer {
    fn new(prefix: String, statement: &Statement) -> Self {
        let mut names = Names::default();
        let _ = statement.visit(&mut names);
        let ctes = std::mem::take(&mut names.ctes);
        names.relations.extend(ctes);
        Self { prefix, names }
    }
}

impl VisitorMut for Namer {
    type Break = SqlError;

    fn pre_visit_query(&mut self, query: &mut Query) -> ControlFlow<SqlError> {
        if let Some(with) = &mut query.with {
            for cte in &mut with.cte_tables {
                let name = &mut cte.alias.name;
                *name = Ident::with_quote('"', format!("{}{}", self.prefix, name.value));
            }
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_relation(&mut self, relation: &mut ObjectName) -> ControlFlow<SqlError> {
        match rename(relation, &self.prefix) {
            Ok(()) => ControlFlow::Continue(()),
            Err(e) => ControlFlow::Break(e),
        }
    }

    fn pre_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<SqlError> {
        if let Expr::CompoundIdentifier(parts) = expr {
            match parts.as_mut_slice() {
                [table, _column] => {
                    if self.names.relations.contains(&table.value.to_lowercase()) {
                        *table = Ident::with_quote('"', format!("{}{}", self.prefix, table.value));
                    }
                }
                _ => {
                    return ControlFlow::Break(SqlError::AccessDenied(format!(
                        "{expr}: a plugin names its tables without a schema"
                    )));
                }
            }
        }
        ControlFlow::Continue(())
    }
}

/// The second layer after a statement (or a migration's statement) that
/// changed a plugin's schema: the schema that resulted, as SQLite stored it,
/// checked against the namespace and the function list. The authorizer sees
/// what a statement does when it is prepared; it does not see what a schema
/// keeps for later — a foreign key's target is resolved when a row of the
/// *other* table changes, a default or a generated column runs inside some
/// later insert, a view inside some later query.
///
/// Every object of the plugin (by its name or its table's) must be the
/// plugin's; every foreign key, as SQLite itself lists it
/// (`pragma_foreign_key_list`), must point at a table of the plugin; and the
/// stored SQL of every table, index, view and trigger must parse, name no
/// relation outside the namespace and call only listed functions (defaults,
/// generated columns, checks, index expressions, view bodies). What cannot
/// be checked is refused.
///
/// # Errors
/// [`SqlError::AccessDenied`] naming the object and what points outside.
fn check_schema(
    conn: &Connection,
    prefix: &str,
    checked: &Mutex<HashSet<String>>,
    deadline: Option<Instant>,
) -> Result<(), SqlError> {
    let hi = format!("{};", prefix.trim_end_matches(':'));
    let mut stmt = conn
        .prepare_cached(
            "SELECT type, name, tbl_name, sql FROM sqlite_schema
             WHERE (name >= ?1 AND name < ?2) OR (tbl_name >= ?1 AND tbl_name < ?2)",
        )
        .map_err(internal)?;
    let objects = stmt
        .query_map((prefix, &hi), |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, Option<String>>(3)?,
            ))
        })
        .map_err(internal)?
        .collect::<rusqlite::Result<Vec<_>>>()
        .map_err(internal)?;
    let own = |name: &str| {
        name.get(..prefix.len())
            .is_some_and(|p| p.eq_ignore_ascii_case(prefix))
    };
    let refuse = |object: &str, why: String| {
        Err(SqlError::AccessDenied(format!(
            "{}: {why}; the change was undone",
            object.strip_prefix(prefix).unwrap_or(object)
        )))
    };
    for (kind, name, table, sql) in objects {
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return Err(SqlError::TimedOut);
        }
        let autoindex = name
            .strip_prefix("sqlite_autoindex_")
            .is_some_and(|rest| rest.starts_with(&table));
        if !own(&table) || !(own(&name) || autoindex) {
            return refuse(&name, format!("a {kind} of {table}, not of the plugin"));
        }
        if kind == "view" {
            // A view whose tables are gone makes SQLite refuse every later
            // ALTER … RENAME or DROP COLUMN in the file, the host's too:
            // every view must still resolve.
            let quoted = name.replace('"', "\"\"");
            if let Err(e) = conn.prepare(&format!("SELECT * FROM \"{quoted}\"")) {
                return refuse(&name, format!("the view no longer resolves ({e})"));
            }
        }
        let key = format!("{name}\0{}", sql.as_deref().unwrap_or(""));
        if checked
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(&key)
        {
            continue;
        }
        if kind == "table" {
            let mut fks = conn
                .prepare_cached(r#"SELECT "table" FROM pragma_foreign_key_list(?1)"#)
                .map_err(internal)?;
            let targets = fks
                .query_map([&name], |r| r.get::<_, String>(0))
                .map_err(internal)?
                .collect::<rusqlite::Result<Vec<_>>>()
                .map_err(internal)?;
            if let Some(target) = targets.iter().find(|t| !own(t)) {
                return refuse(&name, format!("a foreign key points at {target}"));
            }
        }
        let Some(sql) = sql else { continue };
        let statements = match parse(&sql) {
            Ok(statements) => statements,
            Err(_) => return refuse(&name, "its stored definition cannot be checked".into()),
        };
        let mut stored = Stored {
            own: &own,
            found: None,
        };
        for statement in &statements {
            let _ = statement.visit(&mut stored);
            if let Statement::CreateVirtualTable { module_args, .. } = statement {
                // FTS5's options name tables too (`content=…`).
                for arg in module_args {
                    let text = arg.value.replace(' ', "");
                    if let Some((key, value)) = text.split_once('=')
                        && key.eq_ignore_ascii_case("content")
                    {
                        let value = value.trim_matches(['\'', '"']);
                        if !value.is_empty() && !own(value) {
                            stored.found = Some(format!("its content table is {value}"));
                        }
                    }
                }
            }
        }
        if let Some(why) = stored.found {
            return refuse(&name, why);
        }
        let mut known = checked.lock().unwrap_or_else(PoisonError::into_inner);
        if known.len() >= MAX_CHECKED {
            known.clear();
        }
        known.insert(key);
    }
    Ok(())
}

/// Walks an object's stored SQL for relations outside the namespace and
/// functions not listed.
struct Stored<'a> {
    own: &'a dyn Fn(&str) -> bool,
    found: Option<String>,
}

impl Visitor for Stored<'_> {
    type Break = ();

    fn pre_visit_relation(&mut self, relation: &ObjectName) -> ControlFlow<()> {
        let name = match relation.0.as_slice() {
            [ObjectNamePart::Identifier(ident)] => ident.value.as_str(),
            _ => "",
        };
        if !(self.own)(name) {
            self.found = Some(format!("it refers to {relation}"));
            return ControlFlow::Break(());
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<()> {
        if let Expr::Function(f) = expr {
            let listed = match f.name.0.as_slice() {
                [ObjectNamePart::Identifier(ident)] => {
                    FUNCTIONS.contains(&ident.value.to_lowercase().as_str())
                }
                _ => false,
            };
            if !listed {
                self.found = Some(format!("it calls {}", f.name));
                return ControlFlow::Break(());
            }
        }
        ControlFlow::Continue(())
    }
}

/// Why the authorizer refused, for the error the plugin gets.
type Refusal = Arc<Mutex<Option<String>>>;

/// The authorizer of a plugin statement: its own objects, listed
/// functions, SQLite's schema table only inside its own DDL.
///
/// It is installed once per connection and never changed
/// ([`install_authorizer`]): SQLite expires every prepared statement of a
/// connection whose authorizer is set, so one set per plugin statement
/// would make each statement, the host's included, be prepared again.
/// Which plugin's statement is being prepared is this thread's [`Scope`];
/// with none (the host's own statements) everything is allowed.
fn judge(scope: &Scope, ctx: AuthContext<'_>) -> Authorization {
    let Scope {
        prefix,
        ddl,
        refusal,
    } = scope;
    let ddl = *ddl;
    {
        let own = |name: &str| name.starts_with(prefix.as_str());
        let schema = |name: &str| SCHEMA_TABLES.contains(&name);
        if ctx.database_name.is_some_and(|d| d != "main") {
            return refuse(refusal, "a database other than the plugin's");
        }
        let verdict: Result<(), String> = match ctx.action {
            AuthAction::Select | AuthAction::Recursive => Ok(()),
            AuthAction::Read { table_name, .. } if own(table_name) => Ok(()),
            AuthAction::Read { table_name, .. } if ddl && schema(table_name) => Ok(()),
            AuthAction::Insert { table_name }
            | AuthAction::Update { table_name, .. }
            | AuthAction::Delete { table_name }
                if own(table_name) || (ddl && schema(table_name)) =>
            {
                Ok(())
            }
            AuthAction::CreateTable { table_name }
            | AuthAction::DropTable { table_name }
            | AuthAction::CreateVtable { table_name, .. }
            | AuthAction::DropVtable { table_name, .. }
            | AuthAction::AlterTable { table_name, .. }
                if own(table_name) =>
            {
                Ok(())
            }
            AuthAction::CreateIndex {
                index_name,
                table_name,
            }
            | AuthAction::DropIndex {
                index_name,
                table_name,
            } if own(table_name)
                && (own(index_name)
                    || index_name
                        .strip_prefix("sqlite_autoindex_")
                        .is_some_and(|rest| rest.starts_with(table_name))) =>
            {
                Ok(())
            }
            // SQLite asks for this while it builds a plugin's new index.
            AuthAction::Reindex { index_name } if own(index_name) => Ok(()),
            AuthAction::CreateView { view_name } | AuthAction::DropView { view_name }
                if own(view_name) =>
            {
                Ok(())
            }
            AuthAction::Function { function_name }
                if FUNCTIONS.contains(&function_name.to_lowercase().as_str()) =>
            {
                Ok(())
            }
            AuthAction::Function { function_name } => Err(format!("the function {function_name}")),
            AuthAction::Read { table_name, .. }
            | AuthAction::Insert { table_name }
            | AuthAction::Update { table_name, .. }
            | AuthAction::Delete { table_name } => Err(format!("{table_name}: not the plugin's")),
            // FTS5 reads it to learn whether its table changed.
            AuthAction::Pragma {
                pragma_name: "data_version",
                pragma_value: None,
            } => Ok(()),
            AuthAction::Pragma { pragma_name, .. } => Err(format!("PRAGMA {pragma_name}")),
            other => Err(format!("{other:?}")),
        };
        match verdict {
            Ok(()) => Authorization::Allow,
            Err(why) => refuse(refusal, &why),
        }
    }
}

/// The plugin statement this thread is preparing or running.
struct Scope {
    prefix: String,
    ddl: bool,
    refusal: Refusal,
}

thread_local! {
    static SCOPE: RefCell<Option<Scope>> = const { RefCell::new(None) };
}

/// Installs the authorizer plugin statements are prepared under, once, on a
/// new connection (see [`judge`]).
pub(crate) fn install_authorizer(conn: &Connection) {
    conn.authorizer(Some(|ctx: AuthContext<'_>| {
        SCOPE.with(|scope| match &*scope.borrow() {
            Some(scope) => judge(scope, ctx),
            None => Authorization::Allow,
        })
    }));
}

fn refuse(refusal: &Refusal, why: &str) -> Authorization {
    let mut slot = refusal.lock().unwrap_or_else(PoisonError::into_inner);
    if slot.is_none() {
        *slot = Some(why.to_string());
    }
    Authorization::Deny
}

/// Installs the sandbox on a connection for one statement, and takes it
/// down again when dropped: the same connection serves the host's own
/// statements in the same unit.
struct Sandbox<'c> {
    conn: &'c Connection,
    limits: Vec<(Limit, i32)>,
}

impl<'c> Sandbox<'c> {
    fn install(
        conn: &'c Connection,
        prefix: String,
        ddl: bool,
        refusal: Refusal,
        deadline: Option<Instant>,
    ) -> Result<Self, SqlError> {
        let mut limits = Vec::with_capacity(LIMITS.len());
        for &(limit, value) in LIMITS {
            let old = conn.set_limit(limit, value).map_err(internal)?;
            limits.push((limit, old));
        }
        let sandbox = Self { conn, limits };
        SCOPE.with(|scope| {
            *scope.borrow_mut() = Some(Scope {
                prefix,
                ddl,
                refusal,
            });
        });
        if let Some(deadline) = deadline {
            conn.progress_handler(1000, Some(move || Instant::now() >= deadline));
        }
        Ok(sandbox)
    }
}

impl Drop for Sandbox<'_> {
    fn drop(&mut self) {
        SCOPE.with(|scope| scope.borrow_mut().take());
        self.conn.progress_handler(0, None::<fn() -> bool>);
        for &(limit, old) in &self.limits {
            let _ = self.conn.set_limit(limit, old);
        }
    }
}

fn internal(e: rusqlite::Error) -> SqlError {
    SqlError::Internal(e.to_string())
}

/// Classifies SQLite's answer to a plugin statement.
fn classify(e: rusqlite::Error, refusal: &Refusal) -> SqlError {
    let why = refusal
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .take();
    match &e {
        // The authorizer refused something the statement needs (a function
        // surfaces as a plain error, not as SQLITE_AUTH): say what.
        rusqlite::Error::SqliteFailure(..) | rusqlite::Error::SqlInputError { .. }
            if why.is_some() =>
        {
            SqlError::AccessDenied(why.unwrap_or_default())
        }
        rusqlite::Error::SqliteFailure(f, msg) => {
            let msg = msg.clone().unwrap_or_else(|| f.to_string());
            match f.code {
                ErrorCode::AuthorizationForStatementDenied => {
                    SqlError::AccessDenied(why.unwrap_or(msg))
                }
                ErrorCode::ConstraintViolation => SqlError::Constraint(msg),
                ErrorCode::TooBig => SqlError::TooLarge(msg),
                ErrorCode::OperationInterrupted => SqlError::TimedOut,
                ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked => SqlError::Busy,
                ErrorCode::Unknown | ErrorCode::ApiMisuse => SqlError::Syntax(msg),
                _ => SqlError::Internal(msg),
            }
        }
        rusqlite::Error::SqlInputError { msg, .. } => SqlError::Syntax(msg.clone()),
        rusqlite::Error::InvalidParameterCount(..) | rusqlite::Error::InvalidParameterName(_) => {
            SqlError::Syntax(e.to_string())
        }
        _ => SqlError::Internal(e.to_string()),
    }
}

fn value(v: ValueRef<'_>) -> SqlValue {
    match v {
        ValueRef::Null => SqlValue::Null,
        ValueRef::Integer(n) => SqlValue::Integer(n),
        ValueRef::Real(x) => SqlValue::Real(x),
        // SQLite keeps whatever bytes were bound as text; the rare invalid
        // UTF-8 is replaced, valid text copied once.
        ValueRef::Text(t) => SqlValue::Text(match std::str::from_utf8(t) {
            Ok(t) => t.to_owned(),
            Err(_) => String::from_utf8_lossy(t).into_owned(),
        }),
        ValueRef::Blob(b) => SqlValue::Blob(b.to_vec()),
    }
}

impl rusqlite::ToSql for SqlValue {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        Ok(super::tx::bound(crate::engine::Arg::from(self)))
    }
}

impl SqliteTx {
    /// Runs one plugin statement in this unit, once per parameter list.
    pub(crate) fn run_plugin_sql(
        &mut self,
        ns: &Namespace,
        sql: &str,
        each: &[&[SqlValue]],
        want: Want,
        used: &mut Option<Usage>,
    ) -> Result<Answers, SqlError> {
        let rewritten = self.db().rewrites().get(sql, ns)?;
        self.run_namespaced(ns, &rewritten, each, want, used)
    }

    /// Runs a migration script of `ns`'s plugin: each statement through the
    /// sandbox, in this unit, under the namespace's quota as its calls are.
    pub(crate) fn run_plugin_script(
        &mut self,
        ns: &Namespace,
        script: &str,
        used: &mut Option<Usage>,
    ) -> Result<(), SqlError> {
        let mut statements = parse(script)?;
        if statements.is_empty() {
            return Err(SqlError::Syntax("the migration has no statements".into()));
        }
        for statement in &mut statements {
            let rewritten = rewrite(statement, ns)?;
            self.run_namespaced(ns, &rewritten, &[&[]], Want::Outcome, used)?;
        }
        Ok(())
    }

    /// Runs a rewritten statement once per parameter list `each` (prepared
    /// once, under the sandbox once); a failure of any leaves nothing of
    /// the others.
    ///
    /// A statement that writes runs in a savepoint; when it changes the
    /// schema, the schema that resulted is checked ([`check_schema`]), and
    /// under a quota the pages it added are counted; a failure of any undoes
    /// it.
    fn run_namespaced(
        &mut self,
        ns: &Namespace,
        rw: &Rewritten,
        each: &[&[SqlValue]],
        want: Want,
        used: &mut Option<Usage>,
    ) -> Result<Answers, SqlError> {
        let refusal: Refusal = Arc::default();
        let deadline = self.deadline();
        let budget = ns.result_budget();
        let (sql, ddl) = (&*rw.sql, rw.ddl);
        if !rw.writes {
            // A query: in the unit's read snapshot (or its write
            // transaction, once it writes). One that SQLite says writes
            // (`WITH … INSERT` parses as a query) takes the write path.
            let conn = self.read().map_err(from_store)?;
            let _sandbox = Sandbox::install(conn, ns.prefix(), ddl, refusal.clone(), deadline)?;
            let mut stmt = conn
                .prepare_cached(sql)
                .map_err(|e| classify(e, &refusal))?;
            if stmt.readonly() {
                return answers(conn, &mut stmt, each, want, budget, &refusal);
            }
        }
        if ns.read_only() {
            return Err(SqlError::AccessDenied(
                "the plugin may only read its tables (a read grant)".into(),
            ));
        }
        // Under a quota: what the plugin keeps before, and the pages in use.
        let quota = match ns.quota() {
            Some(quota) => {
                self.write().map_err(from_store)?;
                let before = match *used {
                    Some(u) => u.now,
                    None => {
                        let bytes = (self as &mut dyn crate::engine::Tx)
                            .plugin_bytes(ns.plugin())
                            .map_err(from_store)?;
                        *used = Some(Usage::recorded(bytes));
                        bytes
                    }
                };
                Some((quota, before, self.bytes_in_use(true)?))
            }
            None => None,
        };
        let sqlite = self.db().clone();
        let conn = self.write().map_err(from_store)?;
        // Always in a savepoint: a statement that fails part way (`INSERT
        // OR FAIL` of several rows) keeps nothing of what it did.
        run_cached(conn, "SAVEPOINT plinth_statement").map_err(internal)?;
        let ran = {
            let _sandbox = Sandbox::install(conn, ns.prefix(), ddl, refusal.clone(), deadline)?;
            conn.prepare_cached(sql)
                .map_err(|e| classify(e, &refusal))
                .and_then(|mut stmt| answers(conn, &mut stmt, each, want, budget, &refusal))
        };
        if ran.is_err() && conn.is_autocommit() {
            // SQLite rolled back the whole unit (see `SqliteTx::is_lost`).
            return ran;
        }
        // The second layer after a change of schema: what resulted.
        let ran = match ran {
            Ok(answer) if ddl => {
                check_schema(conn, &ns.prefix(), &sqlite.rewrites().checked, deadline)
                    .map(|()| answer)
            }
            other => other,
        };
        let after = match (&ran, quota) {
            (Ok(_), Some((quota, before, pages_before))) => match self.bytes_in_use(false) {
                Ok(pages_after) => {
                    let after = before.saturating_add_signed(pages_after - pages_before);
                    crate::quota::check(after, quota)
                        .map(|()| Some(after))
                        .map_err(SqlError::TooLarge)
                }
                Err(e) => Err(e),
            },
            _ => Ok(None),
        };
        // Still in the write transaction (a lost one returned above).
        let conn = self.read().map_err(from_store)?;
        match (ran, after) {
            (Ok(answer), Ok(after)) => {
                run_cached(conn, "RELEASE plinth_statement").map_err(internal)?;
                if let (Some(after), Some(u)) = (after, used.as_mut()) {
                    u.now = after;
                }
                Ok(answer)
            }
            (ran, after) => {
                run_cached(conn, "ROLLBACK TO plinth_statement").map_err(internal)?;
                // The count after the statement is not the count now.
                self.pages_counted.set(None);
                run_cached(conn, "RELEASE plinth_statement").map_err(internal)?;
                ran?;
                after?;
                Err(SqlError::Internal(
                    "a statement undone for no reason".into(),
                ))
            }
        }
    }

    /// Every b-tree whose table is a plugin's (or only `plugin`'s): its
    /// tables, their indexes, full-text indexes' shadow tables, with the
    /// bytes of their pages (SQLite's `dbstat`).
    pub(crate) fn read_plugin_objects(
        &self,
        plugin: Option<&str>,
    ) -> crate::Result<Vec<(String, String, u64)>> {
        let conn = self.read()?;
        // A plugin's tables are named `plugin:table`: its own by prefix.
        let (lo, hi) = match plugin {
            Some(p) => (format!("{p}:"), format!("{p};")),
            None => (String::new(), "\u{10FFFF}".to_string()),
        };
        let objects = conn
            .prepare_cached(
                "SELECT s.name, s.tbl_name, COALESCE(d.pgsize, 0)
                 FROM sqlite_schema AS s
                 LEFT JOIN dbstat AS d ON d.name = s.name AND d.aggregate = 1
                 WHERE s.rootpage > 0 AND instr(s.tbl_name, ':') > 1
                   AND s.tbl_name >= ?1 AND s.tbl_name < ?2
                 ORDER BY s.name",
            )?
            .query_map((&lo, &hi), |r| {
                let name: String = r.get(0)?;
                let table: String = r.get(1)?;
                let owner = table.split_once(':').map_or("", |(o, _)| o).to_string();
                Ok((owner, name, r.get(2)?))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(objects)
    }
}

impl SqliteTx {
    /// Bytes of the database's pages in use (not on the free list), as the
    /// unit's transaction sees them.
    ///
    /// A `PRAGMA` runs only once per preparation (SQLite re-prepares it at
    /// every step), so each count costs two preparations; the page size is
    /// read once per unit, and with `reuse` the last count stands while the
    /// connection has changed no row since (the count after one plugin
    /// statement is the count before the next).
    fn bytes_in_use(&mut self, reuse: bool) -> Result<i64, SqlError> {
        self.write().map_err(from_store)?;
        let conn = self.read().map_err(from_store)?;
        let changes = conn.total_changes();
        if let Some((at, bytes)) = self.pages_counted.get()
            && reuse
            && at == changes
        {
            return Ok(bytes);
        }
        let one = |pragma: &str| -> Result<i64, SqlError> {
            conn.prepare_cached(pragma)
                .and_then(|mut s| s.query_row([], |r| r.get(0)))
                .map_err(internal)
        };
        let page_size = match self.page_size.get() {
            Some(size) => size,
            None => one("PRAGMA page_size")?,
        };
        let bytes = (one("PRAGMA page_count")? - one("PRAGMA freelist_count")?) * page_size;
        self.page_size.set(Some(page_size));
        self.pages_counted.set(Some((changes, bytes)));
        Ok(bytes)
    }
}

/// Runs one of the host's fixed statements through the statement cache.
fn run_cached(conn: &Connection, sql: &str) -> rusqlite::Result<usize> {
    conn.prepare_cached(sql)?.execute([])
}

/// Runs a prepared plugin statement once per parameter list, its rows held
/// to `budget` bytes.
fn answers(
    conn: &Connection,
    stmt: &mut rusqlite::Statement<'_>,
    each: &[&[SqlValue]],
    want: Want,
    budget: u64,
    refusal: &Refusal,
) -> Result<Answers, SqlError> {
    let mut out = Answers::new(budget);
    if want == Want::Rows {
        // Every run of one statement has the same columns.
        out.set_columns(stmt.column_names().into_iter())?;
    }
    for params in each {
        answer(conn, stmt, params, want, refusal, &mut out)?;
    }
    Ok(out)
}

/// Runs a prepared plugin statement and adds its answer to `out`.
fn answer(
    conn: &Connection,
    stmt: &mut rusqlite::Statement<'_>,
    params: &[SqlValue],
    want: Want,
    refusal: &Refusal,
    out: &mut Answers,
) -> Result<(), SqlError> {
    let params = rusqlite::params_from_iter(params.iter());
    match want {
        Want::Rows => {
            let n = stmt.column_count();
            let mut rows = stmt.query(params).map_err(|e| classify(e, refusal))?;
            out.begin_run();
            while let Some(row) = rows.next().map_err(|e| classify(e, refusal))? {
                for i in 0..n {
                    out.push_value(value(row.get_ref(i).map_err(|e| classify(e, refusal))?))?;
                }
                out.end_row()?;
            }
            Ok(())
        }
        Want::Outcome => {
            let before = conn.last_insert_rowid();
            let changed = if stmt.column_count() > 0 {
                // `… RETURNING`: run to its end, its rows not wanted.
                let mut rows = stmt.query(params).map_err(|e| classify(e, refusal))?;
                while rows.next().map_err(|e| classify(e, refusal))?.is_some() {}
                drop(rows);
                usize::try_from(conn.changes()).unwrap_or(usize::MAX)
            } else {
                stmt.execute(params).map_err(|e| classify(e, refusal))?
            };
            let after = conn.last_insert_rowid();
            out.outcomes.push(SqlOutcome {
                rows_affected: changed as u64,
                last_insert_id: (after != before).then_some(after),
            });
            Ok(())
        }
    }
}
