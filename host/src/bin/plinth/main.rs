//! `plinth`: run the demo, call plugins and manage the database from the shell.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use plinth_host::{DbTestPlugin, Manifest, Runtime};
use plinth_store::Db;

/// plinth: a WebAssembly component plugin runtime over an embedded SQLite database.
#[derive(Parser)]
#[command(name = "plinth", version)]
struct Cli {
    /// The database file (created and migrated on first use). Default: plinth.db
    /// in $PLINTH_DATA_DIR, else $XDG_DATA_HOME/plinth, else ~/.local/share/plinth.
    #[arg(long, global = true, value_name = "PATH")]
    db: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs the shipped plugins against the database and prints what they did.
    Demo,
    /// Manages the database.
    #[command(subcommand)]
    Db(DbCommand),
}

#[derive(Subcommand)]
enum DbCommand {
    /// Prints the path, the schema version and row counts.
    Status,
    /// Applies pending migrations.
    Migrate,
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("PLINTH_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("plinth: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode> {
    let db_path = match cli.db {
        Some(p) => p,
        None => default_db_path()?,
    };
    match cli.command {
        Command::Demo => demo(&db_path),
        Command::Db(DbCommand::Status) => {
            let db = open_db(&db_path)?;
            println!("database: {}", db.path().display());
            println!("schema version: {}", db.schema_version()?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Db(DbCommand::Migrate) => {
            let db = open_db(&db_path)?;
            println!(
                "migrated {} to version {}",
                db.path().display(),
                db.schema_version()?
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn default_db_path() -> Result<PathBuf> {
    let dir = if let Some(d) = std::env::var_os("PLINTH_DATA_DIR") {
        PathBuf::from(d)
    } else if let Some(d) = std::env::var_os("XDG_DATA_HOME") {
        PathBuf::from(d).join("plinth")
    } else if let Some(home) = std::env::var_os("HOME") {
        PathBuf::from(home).join(".local/share/plinth")
    } else {
        PathBuf::from(".plinth")
    };
    Ok(dir.join("plinth.db"))
}

fn open_db(path: &Path) -> Result<Db> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    Ok(Db::open(path)?)
}

fn demo(db_path: &Path) -> Result<ExitCode> {
    let db = open_db(db_path)?;
    println!("database: {}", db.path().display());
    let runtime = Runtime::new(db)?;
    let guest = plinth_guests::DB_TEST;
    let manifest = Manifest::from_file(guest.manifest.as_ref())?;
    let plugin = DbTestPlugin::new(runtime.load_file(guest.wasm.as_ref(), manifest)?)?;
    let checks = plugin.run()?;
    let mut failed = 0;
    for c in &checks {
        let mark = if c.passed { "ok  " } else { "FAIL" };
        println!("{mark} {:<56} {}", c.operation, c.name);
        if !c.passed {
            failed += 1;
            println!("     {}", c.detail);
        }
    }
    println!(
        "db-test: {} checks, {} passed, {failed} failed",
        checks.len(),
        checks.len() - failed
    );
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
