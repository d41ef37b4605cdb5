//! `plinth plugin install PATH`: a plugin's request shown, approved by the
//! operator, and the plugin copied into the plugins directory with its
//! approval.

use std::io::IsTerminal;
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use plinth_store::Db;

use super::{describe_limits, dialect_of};
use crate::context::{Ctx, Failure, Result};
use crate::plugins;

/// `plinth plugin install PATH`: shows the request, takes the operator's
/// approval, and installs the plugin with it.
pub fn run(ctx: &Ctx, path: &Path, yes: bool) -> Result<ExitCode> {
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
    println!("  limits: {}", describe_limits(&request.limits));
    if let Some(t) = request.limits.migration_time {
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
