//! `plinth db …`: the database's state, its migrations, its cleanup.

use std::process::ExitCode;

use clap::Subcommand;

use crate::context::{Ctx, Result};

#[derive(Subcommand)]
pub enum DbCommand {
    /// Prints the path, the schema version and row counts.
    Status,
    /// Applies pending migrations.
    Migrate,
    /// Deletes expired sessions and tokens; prints how many.
    Cleanup,
}

/// Opens (creates, migrates) the database and runs `cmd` on it.
pub fn run(ctx: &Ctx, cmd: DbCommand) -> Result<ExitCode> {
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
