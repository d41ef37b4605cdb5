//! `plinth cache …`: the compiled plugins kept on disk.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;

use crate::context::{Ctx, Failure, Result};
use crate::plugins;

#[derive(Subcommand)]
pub enum CacheCommand {
    /// Lists the cached entries: size, age, and the plugin each belongs to.
    List,
    /// Deletes every entry that no built-in or installed plugin uses (an
    /// earlier build, a file loaded once by its path, another engine's).
    Prune,
    /// Deletes every entry.
    Clear,
}

/// `plinth cache …`.
pub fn run(ctx: &Ctx, cmd: CacheCommand) -> Result<ExitCode> {
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
