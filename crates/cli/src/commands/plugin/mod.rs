//! `plinth plugin …`: the plugins this binary and the plugins directory
//! hold, what each asks for and offers, and installing one.

mod install;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;
use plinth_host::Runtime;

use crate::context::{Ctx, Failure, Result};
use crate::{plugins, values};

#[derive(Subcommand)]
pub enum PluginCommand {
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

/// `plinth plugin …`.
pub fn run(ctx: &Ctx, cmd: PluginCommand) -> Result<ExitCode> {
    match cmd {
        PluginCommand::Install { path, yes } => install::run(ctx, &path, yes),
        PluginCommand::List => {
            for s in plugins::list(ctx.plugins_dir.as_deref()) {
                println!("{:<12} {:<10} {s}", s.name, s.kind());
            }
            Ok(ExitCode::SUCCESS)
        }
        PluginCommand::Inspect { plugin } => inspect(ctx, &plugin),
        PluginCommand::Migrate { plugin } => migrate(ctx, &plugin),
        PluginCommand::Interfaces => {
            interfaces()?;
            Ok(ExitCode::SUCCESS)
        }
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

/// Limits as `inspect` and `install` show them.
fn describe_limits(l: &plinth_host::Limits) -> String {
    format!(
        "memory {} MiB, time {} ms, {} rows per call; {} MiB of its own data",
        l.memory_bytes >> 20,
        l.time.as_millis(),
        l.rows,
        l.data_bytes >> 20
    )
}

fn dialect_of(name: &str) -> plinth_store::Dialect {
    if name == "postgresql" {
        plinth_store::Dialect::Postgres
    } else {
        plinth_store::Dialect::Sqlite
    }
}

/// `plinth plugin migrate NAME`.
fn migrate(ctx: &Ctx, plugin: &str) -> Result<ExitCode> {
    let source = ctx.find_plugin(plugin)?;
    let runtime = ctx.runtime()?;
    let name = source.name.clone();
    let before = runtime.db().plugin_migrations(&name)?.len();
    let p = ctx.load_plugin(&runtime, &source, false)?;
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
    let source = ctx.find_plugin(plugin)?;
    let runtime = ctx.runtime()?;
    let p = ctx.load_plugin(&runtime, &source, true)?;
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
    println!("limits:   {}", describe_limits(&p.limits()));
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
