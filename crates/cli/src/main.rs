//! `plinth`: run the demo, call any plugin export, inspect plugins, and
//! manage the database from the shell.
//!
//! Exit codes: 0 success, 1 a runtime failure (a plugin trapped, the
//! database cannot be opened…), 2 a usage error (unknown plugin or function,
//! malformed arguments). Errors are one line on stderr.

mod demo;
mod mail;
mod new;
mod plugins;
mod serve;
mod values;
mod wit;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use plinth_auth::AuthPlugin;
use plinth_host::{Runtime, RuntimeOptions};
use plinth_store::Db;

/// plinth: a WebAssembly component plugin runtime over an embedded SQLite
/// database, or a PostgreSQL server shared by several hosts.
#[derive(Parser)]
#[command(name = "plinth", version, about)]
struct Cli {
    /// The database: an SQLite file, created and migrated on first use, or a
    /// PostgreSQL server as postgres://user[:password]@host:port/dbname
    /// (migrated on first use; set it in PLINTH_DB to keep a password off
    /// the command line).
    /// [default: plinth.db in the data directory: $PLINTH_DATA_DIR, else
    /// $XDG_DATA_HOME/plinth, else ~/.local/share/plinth]
    #[arg(
        long,
        global = true,
        value_name = "PATH|URL",
        env = "PLINTH_DB",
        hide_env_values = true
    )]
    db: Option<String>,
    /// Where installed plugins (`name.wasm` + `name.toml`) live.
    /// [default: plugins/ in the data directory]
    #[arg(long, global = true, value_name = "DIR")]
    plugins: Option<PathBuf>,
    /// Where compiled plugins are cached (writable by this user only).
    /// [default: cache/ in the data directory]
    #[arg(long, global = true, value_name = "DIR")]
    cache_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Walks the auth plugin through sign-up, verification, sessions and a
    /// password reset, printing each step.
    Demo,
    /// Calls an export: `plinth call auth 'sign-in("a@example.com", "pw")'`.
    /// Arguments and result are WAVE values.
    Call {
        /// A built-in or installed plugin's name, or a path to a `.wasm`.
        plugin: String,
        /// `function(arg, …)` in WAVE; `interface#function(…)` when ambiguous.
        call: String,
        /// Prints the result as JSON instead of WAVE.
        #[arg(long)]
        json: bool,
        /// For a plugin named by its path: grant what its manifest requests,
        /// for this call only (otherwise it needs an approval from `plugin
        /// install`). Not when a plugin of its name is installed: it then
        /// runs with that approval, and only if it is the approved build.
        #[arg(long)]
        approve: bool,
    },
    /// Writes a new plugin into DIR (default: ./NAME): its source, a world
    /// that imports what the source calls, the WIT it builds against, a
    /// manifest and a README with the build and call commands.
    New {
        /// The plugin's name: lowercase words joined by hyphens.
        name: String,
        /// The language it is written in.
        #[arg(long, value_enum, default_value_t = new::Lang::Rust)]
        lang: new::Lang,
        /// Where to write it.
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Lists and inspects plugins.
    #[command(subcommand)]
    Plugin(PluginCommand),
    /// Lists, prunes or clears the cache of compiled plugins.
    #[command(subcommand)]
    Cache(CacheCommand),
    /// Manages the database.
    #[command(subcommand)]
    Db(DbCommand),
    /// Writes the WIT packages a plugin author builds against into DIR/deps/
    /// (and a starter world into DIR when it has none), from the copy in
    /// this binary: point wit-bindgen, componentize-py or jco at DIR.
    Wit {
        /// The plugin's WIT folder, e.g. `wit`.
        dir: PathBuf,
    },
    /// Delivers the mail that is due: over SMTP when PLINTH_SMTP is set
    /// (smtp://host:port, smtp+starttls://user@host:587, smtps://user@host;
    /// the password in PLINTH_SMTP_PASSWORD, the sender in
    /// PLINTH_MAIL_FROM), otherwise into mail/ in the data directory.
    /// `call` and `demo` deliver what they queued before they exit.
    SendMail,
    /// Runs plinth as a service: plugins' approved exports over HTTP
    /// (POST /plugins/NAME/EXPORT, described by GET /openapi.json),
    /// `wasi:http` plugins on their approved prefixes, /healthz, /readyz and
    /// /metrics; delivers mail, removes expired sessions and reloads
    /// replaced plugins on its own; stops on SIGTERM/SIGINT after the calls
    /// in flight.
    Serve(serve::ServeArgs),
    /// Shows the outbox, oldest first: each message's delivery state, and
    /// its body while it is queued (bodies are removed once delivered).
    Outbox {
        /// Prints JSON.
        #[arg(long)]
        json: bool,
        /// Only mail to this address.
        #[arg(long)]
        to: Option<String>,
        /// At most this many (the newest).
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
}

#[derive(Subcommand)]
enum PluginCommand {
    /// Lists built-in and installed plugins.
    List,
    /// Shows a plugin's imports, exports, grants and limits.
    Inspect {
        /// A name or a path to a `.wasm`.
        plugin: String,
    },
    /// Lists the interfaces this runtime offers: who must grant each, and
    /// which of its functions write.
    Interfaces,
    /// Brings a plugin's own schema to the version it ships (what loading
    /// it does anyway), and prints the versions before and after.
    Migrate {
        /// A name or a path to a `.wasm`.
        plugin: String,
    },
    /// Installs a plugin (`name.wasm` with the `name.toml` beside it):
    /// shows what it asks for and, once approved, copies it into the plugins
    /// directory with the approval. It then runs with what was approved; an
    /// update that asks for more needs a new install.
    Install {
        /// The `.wasm`.
        path: PathBuf,
        /// Approve without asking (needed when not at a terminal).
        #[arg(long)]
        yes: bool,
    },
}

#[derive(Subcommand)]
enum CacheCommand {
    /// Lists the cached entries: size, age, and the plugin each belongs to.
    List,
    /// Deletes every entry that no built-in or installed plugin uses (an
    /// earlier build, a file loaded once by its path, another engine's).
    Prune,
    /// Deletes every entry.
    Clear,
}

#[derive(Subcommand)]
enum DbCommand {
    /// Prints the path, the schema version and row counts.
    Status,
    /// Applies pending migrations.
    Migrate,
    /// Deletes expired sessions and tokens; prints how many.
    Cleanup,
}

/// A failure and its exit code.
pub struct Failure {
    code: u8,
    pub(crate) error: anyhow::Error,
}

impl Failure {
    /// A mistake in the command (exit 2).
    pub fn usage(msg: impl std::fmt::Display) -> Self {
        Self {
            code: 2,
            error: anyhow::anyhow!("{msg}"),
        }
    }

    /// Something failed while doing what was asked (exit 1).
    pub fn runtime(e: impl Into<anyhow::Error>) -> Self {
        Self {
            code: 1,
            error: e.into(),
        }
    }
}

impl<E: Into<anyhow::Error>> From<E> for Failure {
    fn from(e: E) -> Self {
        Failure::runtime(e)
    }
}

type Result<T, E = Failure> = std::result::Result<T, E>;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => {
            // --help and --version.
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            let text = e.to_string();
            let first = text.lines().next().unwrap_or("invalid arguments");
            eprintln!(
                "plinth: {} (see plinth --help)",
                plinth_host::escape_controls(first.trim_start_matches("error: "))
            );
            return ExitCode::from(2);
        }
    };
    use std::io::IsTerminal;
    // A service logs its requests; a command says only what failed.
    let default_level = if matches!(cli.command, Command::Serve(_)) {
        "info"
    } else {
        "error"
    };
    let filter = log_filter(std::env::var("PLINTH_LOG").ok().as_deref(), default_level);
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_new(&filter)
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("error")),
        )
        // Colour only for a person at a terminal, not in a file or a pipe.
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();
    match run(cli) {
        Ok(code) => code,
        Err(f) => {
            // One line: the error and its causes.
            // Control characters (from a plugin's names, output or the
            // arguments typed) are escaped, so the line cannot rewrite the
            // terminal.
            let line = format!("{:#}", f.error).replace('\n', " ");
            eprintln!("plinth: {}", plinth_host::escape_controls(&line));
            ExitCode::from(f.code)
        }
    }
}

/// The crates whose logs `PLINTH_LOG=<level>` turns up: plinth's own, and
/// the guests' output (`plinth::guest`).
const PLINTH_TARGETS: &[&str] = &[
    "plinth",
    "plinth_host",
    "plinth_store",
    "plinth_auth",
    "plinth_testing",
];

/// The tracing filter for `PLINTH_LOG`. A bare level (`trace`, `debug`…)
/// applies to plinth's own targets only; everything else (the compiler and
/// runtime underneath, whose TRACE output runs to hundreds of megabytes for
/// one compile) stays at `warn`. A full filter (`wasmtime=debug,info`) is
/// taken as written, for whoever asks for more.
fn log_filter(setting: Option<&str>, default_level: &str) -> String {
    let setting = match setting.map(str::trim).filter(|s| !s.is_empty()) {
        Some(s) => s,
        // Errors only, from anything.
        None if default_level == "error" => return "error".into(),
        None => default_level,
    };
    if setting.contains('=') || setting.contains(',') {
        return setting.into();
    }
    let mut filter = String::from("warn");
    for target in PLINTH_TARGETS {
        filter.push_str(&format!(",{target}={setting}"));
    }
    filter
}

/// The data directory: `$PLINTH_DATA_DIR`, else `$XDG_DATA_HOME/plinth`,
/// else `~/.local/share/plinth`. None when none of them is set: plinth then
/// keeps no files of its own (no cache, no default database) rather than
/// writing into whatever directory it was started in.
fn data_dir() -> Option<PathBuf> {
    let set = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
    if let Some(d) = set("PLINTH_DATA_DIR") {
        Some(PathBuf::from(d))
    } else if let Some(d) = set("XDG_DATA_HOME") {
        Some(PathBuf::from(d).join("plinth"))
    } else {
        set("HOME").map(|home| PathBuf::from(home).join(".local/share/plinth"))
    }
}

pub(crate) struct Ctx {
    /// Where mail goes.
    pub(crate) delivery: mail::Delivery,
    /// The database, if one was named or a data directory gives the default.
    /// A file path or a PostgreSQL URL.
    db_target: Option<String>,
    pub(crate) plugins_dir: Option<PathBuf>,
    /// The compile cache; none without a data directory.
    cache_dir: Option<PathBuf>,
}

impl Ctx {
    fn db(&self) -> Result<Db> {
        let db = self.deferred_db()?;
        self.open_now(&db)?;
        Ok(db)
    }

    fn runtime(&self) -> Result<Runtime> {
        self.runtime_over(self.db()?, false)
    }

    /// A runtime over the database whose mail links (`plinth:auth/mailer`'s
    /// `link`) point at `public_url`.
    pub(crate) fn runtime_linking(&self, public_url: Option<String>) -> Result<Runtime> {
        let options = RuntimeOptions {
            cache_dir: self.cache_dir.clone(),
            public_url,
            ..RuntimeOptions::default()
        }
        .capability(plinth_testing::TEST_CAPABILITY);
        Ok(Runtime::with_options(self.db()?, options)?)
    }

    /// A runtime over `db`; with `defer`, compiled components are written to
    /// the cache only by `Plugin::write_cache`.
    fn runtime_over(&self, db: Db, defer: bool) -> Result<Runtime> {
        let options = RuntimeOptions {
            cache_dir: self.cache_dir.clone(),
            defer_cache_writes: defer,
            ..RuntimeOptions::default()
        }
        // For the built-in db-test only: `plugins::load` grants it in code.
        .capability(plinth_testing::TEST_CAPABILITY);
        Ok(Runtime::with_options(db, options)?)
    }

    /// The database, not opened yet: nothing touches the file until
    /// `ensure_open` or the first use.
    fn deferred_db(&self) -> Result<Db> {
        let target = self.db_target.as_ref().ok_or_else(|| {
            Failure::usage(
                "no data directory (PLINTH_DATA_DIR, XDG_DATA_HOME and HOME are unset): name the database with --db",
            )
        })?;
        // A superuser as plinth's PostgreSQL user only when the operator
        // says so, by name of the risk.
        let mut pg = plinth_store::PostgresOptions::default();
        pg.allow_superuser = std::env::var("PLINTH_PG_ALLOW_SUPERUSER").is_ok_and(|v| v == "yes");
        match Db::at_with(target, plinth_store::Options::default(), pg) {
            Ok(db) => Ok(db),
            // `--db :memory:`, a URL that does not parse: a mistake in the command.
            Err(e @ plinth_store::Error::InvalidPath { .. }) => Err(Failure::usage(e)),
            Err(e) => Err(Failure::runtime(e)),
        }
    }

    /// Opens a deferred database now (creating a file's folder when needed).
    fn open_now(&self, db: &Db) -> Result<()> {
        if let Some(parent) = db
            .path()
            .and_then(Path::parent)
            .filter(|p| !p.as_os_str().is_empty())
        {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        match db.ensure_open() {
            Ok(()) => Ok(()),
            Err(e @ plinth_store::Error::InvalidPath { .. }) => Err(Failure::usage(e)),
            Err(e) => Err(Failure::runtime(e)),
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode> {
    let data = data_dir();
    let ctx = Ctx {
        db_target: cli.db.or_else(|| {
            data.as_ref()
                .map(|d| d.join("plinth.db").to_string_lossy().into_owned())
        }),
        plugins_dir: cli
            .plugins
            .or_else(|| data.as_ref().map(|d| d.join("plugins"))),
        cache_dir: cli
            .cache_dir
            .or_else(|| data.as_ref().map(|d| d.join("cache"))),
        delivery: mail::Delivery::from_env(data.as_deref()).map_err(Failure::usage)?,
    };
    match cli.command {
        Command::Demo => {
            let runtime = ctx.runtime()?;
            println!("database: {}", runtime.db().location());
            let source = plugins::find(ctx.plugins_dir.as_deref(), "auth")?;
            let auth = AuthPlugin::new(plugins::load(
                &runtime,
                ctx.plugins_dir.as_deref(),
                &source,
                false,
            )?)?;
            let scratch;
            let inbox = match &ctx.delivery {
                mail::Delivery::Record(dir) => dir.clone(),
                mail::Delivery::Hold => {
                    scratch = tempfile::tempdir()?;
                    scratch.path().to_path_buf()
                }
                mail::Delivery::Smtp(_) => {
                    return Err(Failure::usage(
                        "the demo reads its mail from the recording folder: run it without PLINTH_SMTP",
                    ));
                }
            };
            Ok(if demo::run(&runtime, &auth, &inbox)? {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        Command::Call {
            plugin,
            call,
            json,
            approve,
        } => call_export(&ctx, &plugin, &call, json, approve),
        Command::New { name, lang, dir } => {
            new::check_name(&name).map_err(Failure::usage)?;
            let dir = dir.unwrap_or_else(|| PathBuf::from(&name));
            let written = new::create(&dir, &name, lang).map_err(Failure::usage)?;
            for path in &written {
                println!("wrote {}", path.display());
            }
            println!(
                "\nnext, in {}:\n  the tool:  {}\n  build it:  {}\n  call it:   plinth call ./{name}.wasm 'greet(\"ada@example.com\")' --approve",
                dir.display(),
                new::setup(lang),
                new::build_command(&name, lang)
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Cache(cmd) => cache_command(&ctx, cmd),
        Command::Plugin(PluginCommand::Install { path, yes }) => install(&ctx, &path, yes),
        Command::Plugin(PluginCommand::List) => {
            for s in plugins::list(ctx.plugins_dir.as_deref()) {
                println!("{:<12} {:<10} {s}", s.name, s.kind());
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Plugin(PluginCommand::Inspect { plugin }) => inspect(&ctx, &plugin),
        Command::Plugin(PluginCommand::Migrate { plugin }) => migrate_plugin(&ctx, &plugin),
        Command::Plugin(PluginCommand::Interfaces) => {
            interfaces()?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Db(cmd) => db_command(&ctx, cmd),
        Command::Wit { dir } => {
            for line in wit::write(&dir)? {
                println!("{line}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::SendMail => {
            let db = ctx.db()?;
            println!("mail is {}", ctx.delivery.describe());
            match ctx.delivery.deliver_due(&db)? {
                Some(r) => println!(
                    "{} sent, {} to retry later, {} given up on",
                    r.sent, r.retrying, r.failed
                ),
                None => println!("nothing delivered"),
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Serve(args) => {
            serve::run(&ctx, args)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Outbox { json, to, limit } => {
            let messages = ctx.db()?.outbox(to.as_deref(), limit)?;
            if json {
                let list: Vec<_> = messages
                    .iter()
                    .map(|m| {
                        serde_json::json!({
                            "id": m.id, "to": m.to, "subject": m.subject, "body": m.body,
                            "created_at": m.created_at, "status": m.status.as_str(),
                            "attempts": m.attempts, "sent_at": m.sent_at, "last_error": m.last_error,
                        })
                    })
                    .collect();
                println!("{}", serde_json::to_string_pretty(&list)?);
            } else if messages.is_empty() {
                println!("the outbox is empty");
            } else {
                for m in &messages {
                    let state = match (m.status, m.sent_at) {
                        (plinth_store::MailStatus::Sent, Some(at)) => format!("sent at {at}"),
                        (status, _) => status.as_str().to_string(),
                    };
                    println!(
                        "#{} at {} to {}: {state} ({} attempts{})\nsubject: {}",
                        m.id,
                        m.created_at,
                        m.to,
                        m.attempts,
                        m.last_error
                            .as_deref()
                            .map(|e| format!("; last error: {}", plinth_host::escape_controls(e)))
                            .unwrap_or_default(),
                        m.subject,
                    );
                    if m.body.is_empty() {
                        println!("(body removed once delivered or given up on)\n");
                    } else {
                        println!("\n{}\n", m.body.trim_end());
                    }
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `plinth call`: everything the user typed is checked — the call's syntax,
/// the plugin, the function, the arguments' number and types — before
/// anything is written: the database is opened (created, migrated) and the
/// compiled component cached only once the call is known to be valid.
fn call_export(
    ctx: &Ctx,
    plugin: &str,
    call: &str,
    as_json: bool,
    approve: bool,
) -> Result<ExitCode> {
    let (name, parsed) = values::parse_call(call).map_err(Failure::usage)?;
    let source = plugins::find(ctx.plugins_dir.as_deref(), plugin)?;
    let db = ctx.deferred_db()?;
    let runtime = ctx.runtime_over(db.clone(), true)?;
    let plugin = plugins::load(&runtime, ctx.plugins_dir.as_deref(), &source, approve)?;
    let func = plugin.function(&name).map_err(Failure::usage)?;
    let param_types: Vec<_> = func.ty.params().map(|(_, t)| t).collect();
    let args = parsed
        .to_wasm_params::<plinth_host::Val>(param_types.iter())
        .map_err(|e| Failure::usage(format!("arguments of {}: {e}", func.qualified_name())))?;
    if args.len() != param_types.len() {
        return Err(Failure::usage(format!(
            "{} takes {} arguments, not {}",
            func.qualified_name(),
            param_types.len(),
            args.len()
        )));
    }
    plugin.write_cache();
    ctx.open_now(&db)?;
    let results = plugin.call_dynamic(&func.qualified_name(), &args)?;
    for r in &results {
        if as_json {
            println!(
                "{}",
                serde_json::to_string_pretty(&plinth_host::json::to_json(r))?
            );
        } else {
            println!("{}", values::wave(r));
        }
    }
    deliver_after(ctx, runtime.db());
    Ok(ExitCode::SUCCESS)
}

/// Delivers what a command queued before the CLI exits. A delivery that
/// fails is recorded in the outbox and retried by the next `send-mail`; it
/// does not fail the command that queued it.
fn deliver_after(ctx: &Ctx, db: &Db) {
    if let Err(e) = ctx.delivery.deliver_due(db) {
        eprintln!(
            "plinth: note: mail not delivered now ({}); `plinth send-mail` retries",
            plinth_host::escape_controls(&format!("{e:#}"))
        );
    }
}

/// A plugin's own schema: what it ships, what the database records, what
/// it keeps.
fn print_schema(runtime: &Runtime, name: &str, shipped: &plinth_host::Migrations) -> Result<()> {
    let db = runtime.db();
    let shipped_here = shipped.for_dialect(db.dialect());
    if shipped.is_empty() {
        println!("schema:   none (it keeps no tables of its own)");
    } else {
        println!(
            "schema:   {} shipped; this database ({}) records version {}",
            shipped
                .dialects()
                .iter()
                .map(|d| format!(
                    "version {} for {d}",
                    shipped.for_dialect(dialect_of(d)).len()
                ))
                .collect::<Vec<_>>()
                .join(", "),
            db.dialect(),
            db.plugin_migrations(name)?.last().map_or(0, |m| m.version)
        );
        for m in shipped_here {
            println!("  {:>4} {}", m.version, m.name);
        }
    }
    if let Some(data) = db.plugin_data()?.into_iter().find(|d| d.plugin == name) {
        println!(
            "data:     {} KiB: {} tables and indexes, {} keys",
            data.bytes().div_ceil(1024),
            data.tables.len(),
            data.keys
        );
    }
    Ok(())
}

fn dialect_of(name: &str) -> plinth_store::Dialect {
    if name == "postgresql" {
        plinth_store::Dialect::Postgres
    } else {
        plinth_store::Dialect::Sqlite
    }
}

/// `plinth plugin migrate NAME`.
fn migrate_plugin(ctx: &Ctx, plugin: &str) -> Result<ExitCode> {
    let source = plugins::find(ctx.plugins_dir.as_deref(), plugin)?;
    let runtime = ctx.runtime()?;
    let name = source.name.clone();
    let before = runtime.db().plugin_migrations(&name)?.len();
    let p = plugins::load(&runtime, ctx.plugins_dir.as_deref(), &source, false)?;
    let after = runtime.db().plugin_migrations(p.name())?;
    println!(
        "{}: schema version {before} -> {}",
        p.name(),
        after.last().map_or(0, |m| m.version)
    );
    for m in after.iter().skip(before) {
        println!("  applied {:>4} {}", m.version, m.name);
    }
    Ok(ExitCode::SUCCESS)
}

fn inspect(ctx: &Ctx, plugin: &str) -> Result<ExitCode> {
    let source = plugins::find(ctx.plugins_dir.as_deref(), plugin)?;
    let runtime = ctx.runtime()?;
    let p = plugins::load(&runtime, ctx.plugins_dir.as_deref(), &source, true)?;
    println!("plugin:   {} ({})", p.name(), source.kind());
    println!("file:     {source} ({} KiB)", source.size() / 1024);
    println!(
        "manifest: {}",
        match (&source.origin, source.manifest_path()) {
            (plugins::Origin::BuiltIn(_), _) => "built in".to_string(),
            (_, Some(m)) => m.display().to_string(),
            (_, None) => "none (nothing granted)".to_string(),
        }
    );
    let limits = p.limits();
    println!(
        "limits:   memory {} MiB, time {} ms, {} rows per call; {} MiB of its own data",
        limits.memory_bytes >> 20,
        limits.time.as_millis(),
        limits.rows,
        limits.data_bytes >> 20
    );
    print_schema(&runtime, p.name(), &plugins::request_migrations(&source)?)?;
    match p.reuse() {
        None => println!("reuse:    none (a fresh instance for every call)"),
        Some(r) => println!(
            "reuse:    up to {} calls per instance, kept while its memory is at most {} KiB, {} idle at most",
            r.max_calls,
            r.max_memory_bytes >> 10,
            r.idle
        ),
    }
    println!("\ngrants:");
    let mut any = false;
    for (interface, access) in p.grants().iter() {
        println!("  {interface} ({access})");
        any = true;
    }
    if !any {
        println!("  none");
    }
    println!("\nimports:");
    for i in p.imports() {
        // What the runtime's registry says of it: the same list the import
        // check at load read.
        match runtime.registry().find(&i) {
            Some(interface) => println!("  {i:<44} {}", interface.summary),
            None => println!("  {i:<44} (not offered by this runtime)"),
        }
    }
    println!("\nexports:");
    for f in p.functions() {
        let params: Vec<String> =
            f.ty.params()
                .map(|(n, t)| format!("{n}: {}", values::type_name(&t, 0)))
                .collect();
        let results: Vec<String> = f.ty.results().map(|t| values::type_name(&t, 0)).collect();
        let arrow = if results.is_empty() {
            String::new()
        } else {
            format!(" -> {}", results.join(", "))
        };
        println!(
            "  {}: func({}){arrow}",
            f.qualified_name(),
            params.join(", ")
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// The registry of the runtime this binary builds, as a table.
fn interfaces() -> Result<()> {
    use plinth_host::capability::{Gate, Registry};
    let registry = Registry::new(&[plinth_testing::TEST_CAPABILITY]).map_err(Failure::usage)?;
    for i in registry.interfaces() {
        let gate = match i.gate {
            Gate::Open => "open to every plugin",
            Gate::Manifest => "granted by the manifest",
            Gate::Code => "granted in code only (never by a manifest)",
            _ => "granted otherwise",
        };
        println!(
            "{}\n  {}\n  version {} · {gate}",
            i.name, i.summary, i.version
        );
        let writes: Vec<&str> = i.writes().collect();
        let reads: Vec<&str> = i
            .functions
            .iter()
            .map(|f| f.name)
            .filter(|f| !writes.contains(f))
            .collect();
        if !reads.is_empty() {
            println!("  reads:  {}", reads.join(", "));
        }
        if !writes.is_empty() {
            println!("  writes: {}", writes.join(", "));
        }
    }
    Ok(())
}

/// `plinth plugin install PATH`: shows the request, takes the operator's
/// approval, and installs the plugin with it.
fn install(ctx: &Ctx, path: &Path, yes: bool) -> Result<ExitCode> {
    use std::io::IsTerminal;
    let dir = ctx.plugins_dir.clone().ok_or_else(|| {
        Failure::usage("no plugins directory: pass --plugins or set PLINTH_DATA_DIR")
    })?;
    let source = plugins::find(Some(&dir), &path.to_string_lossy())?;
    let plugins::Origin::File { wasm } = &source.origin else {
        return Err(Failure::usage("give the path of a .wasm to install"));
    };
    let request = plugins::request(&source)?;
    // The bytes approved are the bytes read once here: shown, checked,
    // recorded and copied.
    let bytes = std::fs::read(wasm).with_context(|| format!("cannot read {}", wasm.display()))?;
    let identity = plinth_host::Identity::of(&bytes, &request.migrations);
    let name = request.name.clone();
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'))
        || name.starts_with('-')
    {
        return Err(Failure::usage(format!(
            "plugin name {:?}: an installed plugin's name is letters, digits, - and _",
            plinth_host::escape_controls(&name)
        )));
    }
    if plugins::is_built_in(&name) {
        return Err(Failure::usage(format!(
            "plugin name {name:?} is a built-in plugin's; give yours another name"
        )));
    }
    // Load it once as requested, so that a broken component, one that
    // imports more than it requests, or a migration that fails is refused
    // now, not at its first call (on an empty database of its own).
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let check = dir.join(".install-check.db");
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", check.display()));
    }
    let runtime = ctx.runtime_over(
        Db::deferred(&check, plinth_store::Options::default())?,
        true,
    )?;
    let checked = runtime
        .load_bytes(&bytes, request.clone())
        .with_context(|| format!("cannot load {}", wasm.display()))?;
    // What it offers over HTTP must be what it exports.
    for export in &request.http.exports {
        checked
            .function(export)
            .map_err(|e| Failure::usage(format!("its manifest offers {export} over HTTP: {e}")))?;
    }
    let previous = plugins::approval_path(&dir, &name);
    if let Ok(previous) = plinth_host::Manifest::from_file(&previous) {
        println!("plugin {name} is installed; this build replaces it:");
        match &previous.identity {
            Some(old) => {
                let changed = old.changes(&identity);
                if changed.is_empty() {
                    println!("  the same build as approved");
                }
                for line in changed {
                    println!("  {line}");
                }
            }
            None => println!("  (the installed approval names no build)"),
        }
        if let Err(plinth_host::Error::NotApproved { beyond, .. }) = request.within(&previous) {
            for line in beyond {
                println!("  asks for more: {line}");
            }
        }
    }
    println!("plugin {name} asks for:");
    let mut any = false;
    for (interface, access) in request.grants.iter() {
        println!("  {interface} ({access}): {}", interface.summary);
        any = true;
    }
    if !any {
        println!("  no interfaces");
    }
    let l = request.limits;
    println!(
        "  limits: memory {} MiB, time {} ms, {} rows per call; {} MiB of its own data",
        l.memory_bytes >> 20,
        l.time.as_millis(),
        l.rows,
        l.data_bytes >> 20
    );
    if let Some(t) = l.migration_time {
        println!("  its migrations may run for {} ms at load", t.as_millis());
    }
    for dialect in request.migrations.dialects() {
        let list = request.migrations.for_dialect(dialect_of(dialect));
        println!("  its own tables: {} migrations for {dialect}", list.len());
    }
    println!("  build: component sha256 {}", identity.component_sha256);
    println!("         migrations sha256 {}", identity.migrations_sha256);
    if request.reuse.is_some() {
        println!("  reuse of live instances between calls");
    }
    for export in &request.http.exports {
        println!("  over HTTP (plinth serve): POST /plugins/{name}/{export}");
    }
    if let Some(prefix) = &request.http.prefix {
        println!("  over HTTP (plinth serve): its wasi:http handler at {prefix}");
    }
    if !yes {
        if !std::io::stdin().is_terminal() {
            return Err(Failure::usage("not at a terminal: pass --yes to approve"));
        }
        print!("approve? [y/N] ");
        std::io::Write::flush(&mut std::io::stdout())?;
        let mut answer = String::new();
        std::io::stdin().read_line(&mut answer)?;
        if !matches!(answer.trim(), "y" | "Y" | "yes") {
            println!("not installed");
            return Ok(ExitCode::from(1));
        }
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    // Each file is written beside its place and renamed into it, the
    // approval last: a running `plinth serve` that looks in between sees the
    // old approval (and refuses the new bytes until it is written) or the
    // new one, never half a file.
    write_replacing(&dir.join(format!("{name}.wasm")), &bytes)?;
    write_replacing(
        &dir.join(format!("{name}.toml")),
        request.to_toml().as_bytes(),
    )?;
    let migrations = plinth_host::Migrations::dir_for(&dir.join(format!("{name}.toml")));
    if migrations.exists() {
        std::fs::remove_dir_all(&migrations)?;
    }
    for dialect in request.migrations.dialects() {
        let into = migrations.join(dialect);
        std::fs::create_dir_all(&into)?;
        for m in request.migrations.for_dialect(dialect_of(dialect)) {
            std::fs::write(
                into.join(format!("{:04}-{}.sql", m.version, m.name)),
                &m.sql,
            )?;
        }
    }
    let mut approved = request.clone();
    approved.identity = Some(identity);
    let approval = format!(
        "# What the operator approved for {name} (plinth plugin install), and the build it is for.\n# The plugin runs with at most this, and only as these bytes; anything else is refused.\n{}",
        approved.to_toml()
    );
    write_replacing(&plugins::approval_path(&dir, &name), approval.as_bytes())?;
    println!("installed {name} into {}", dir.display());
    Ok(ExitCode::SUCCESS)
}

/// Writes `bytes` to a temporary file beside `path` and renames it over
/// `path`: a reader sees the old file or the new one, whole.
fn write_replacing(path: &Path, bytes: &[u8]) -> Result<()> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temp = path.with_file_name(format!(".{name}.{}.new", std::process::id()));
    std::fs::write(&temp, bytes).with_context(|| format!("cannot write {}", temp.display()))?;
    std::fs::rename(&temp, path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

/// `plinth cache …`.
fn cache_command(ctx: &Ctx, cmd: CacheCommand) -> Result<ExitCode> {
    let dir = ctx.cache_dir.clone().ok_or_else(|| {
        Failure::usage("no cache directory: pass --cache-dir or set PLINTH_DATA_DIR")
    })?;
    let entries =
        plinth_host::cache::list(&dir).with_context(|| format!("cannot read {}", dir.display()))?;
    match cmd {
        CacheCommand::List => {
            println!("cache: {}", dir.display());
            let mut total = 0;
            for e in &entries {
                total += e.bytes;
                let age = e
                    .modified
                    .and_then(|m| m.elapsed().ok())
                    .map_or("?".to_string(), |a| human_age(a.as_secs()));
                let whose = if !e.well_formed {
                    "(not a cache entry)".to_string()
                } else {
                    match &e.source {
                        Some(s) => format!("{} from {}", e.plugin, s.display()),
                        None => e.plugin.clone(),
                    }
                };
                // The first 16 characters (an entry's name is its key in
                // hex); a stray file's name may be anything.
                let name: String = e
                    .path
                    .file_name()
                    .map(|n| n.to_string_lossy().chars().take(16).collect())
                    .unwrap_or_else(|| "?".into());
                println!(
                    "  {:<20} {:>8} KiB {:>6} old  {}",
                    plinth_host::escape_controls(&name),
                    e.bytes / 1024,
                    age,
                    plinth_host::escape_controls(&whose)
                );
            }
            println!("{} entries, {} KiB", entries.len(), total / 1024);
        }
        CacheCommand::Prune => {
            let keep = used_entries(ctx)?;
            let (mut n, mut bytes) = (0, 0);
            for e in entries.iter().filter(|e| !keep.contains(&e.path)) {
                remove_files(e)?;
                n += 1;
                bytes += e.bytes;
            }
            plinth_host::cache::remove_orphans(&dir);
            println!(
                "removed {n} entries ({} KiB); kept {}",
                bytes / 1024,
                entries.len() - n
            );
        }
        CacheCommand::Clear => {
            let bytes: u64 = entries.iter().map(|e| e.bytes).sum();
            for e in &entries {
                remove_files(e)?;
            }
            plinth_host::cache::remove_orphans(&dir);
            println!("removed {} entries ({} KiB)", entries.len(), bytes / 1024);
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn remove_files(e: &plinth_host::cache::CachedEntry) -> Result<()> {
    for file in e.files() {
        match std::fs::remove_file(&file) {
            Err(err) if err.kind() != std::io::ErrorKind::NotFound => {
                return Err(Failure::runtime(
                    anyhow::Error::new(err).context(format!("cannot remove {}", file.display())),
                ));
            }
            _ => {}
        }
    }
    Ok(())
}

/// The cache files of every built-in and installed plugin, on this build's
/// engine.
fn used_entries(ctx: &Ctx) -> Result<Vec<PathBuf>> {
    let runtime = ctx.runtime_over(ctx.deferred_db()?, true)?;
    let mut keep = Vec::new();
    for source in plugins::list(ctx.plugins_dir.as_deref()) {
        let bytes = match &source.origin {
            plugins::Origin::BuiltIn(e) => std::borrow::Cow::Borrowed(e.wasm),
            plugins::Origin::Installed { wasm } | plugins::Origin::File { wasm } => {
                match std::fs::read(wasm) {
                    Ok(b) => std::borrow::Cow::Owned(b),
                    Err(_) => continue,
                }
            }
        };
        keep.extend(runtime.cache_entry(&bytes));
    }
    Ok(keep)
}

fn human_age(secs: u64) -> String {
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86400),
    }
}

fn db_command(ctx: &Ctx, cmd: DbCommand) -> Result<ExitCode> {
    let db = ctx.db()?;
    match cmd {
        DbCommand::Status => {
            println!("database: {} ({})", db.location(), db.dialect());
            println!(
                "schema version: {} (this build: {})",
                db.schema_version()?,
                plinth_store::migrations::latest_version()
            );
            for c in db.table_counts()? {
                println!("  {:<28} {:>8} rows", c.table, c.rows);
            }
            let plugins = db.plugin_data()?;
            if !plugins.is_empty() {
                println!("plugins' own data:");
            }
            for d in plugins {
                println!(
                    "  {:<28} schema version {}, {} KiB, {} keys",
                    d.plugin,
                    d.version,
                    d.bytes().div_ceil(1024),
                    d.keys
                );
                for t in &d.tables {
                    println!("    {:<26} {:>8} KiB", t.name, t.bytes.div_ceil(1024));
                }
            }
        }
        DbCommand::Migrate => println!(
            "{} is at schema version {}",
            db.location(),
            db.schema_version()?
        ),
        DbCommand::Cleanup => {
            for (table, n) in db.cleanup_expired()? {
                println!("{table}: {n} expired rows removed");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
