//! `plinth call PLUGIN 'function(args…)'`: any export, arguments and result
//! in WAVE.

use std::process::ExitCode;

use crate::context::{Ctx, Failure, Result};
use crate::values;

/// `plinth call`'s arguments.
#[derive(clap::Args)]
pub struct CallArgs {
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
}

/// `plinth call`: everything the user typed is checked — the call's syntax,
/// the plugin, the function, the arguments' number and types — before
/// anything is written: the database is opened (created, migrated) and the
/// compiled component cached only once the call is known to be valid.
pub fn run(ctx: &Ctx, args: CallArgs) -> Result<ExitCode> {
    let (name, parsed) = values::parse_call(&args.call).map_err(Failure::usage)?;
    let source = ctx.find_plugin(&args.plugin)?;
    let db = ctx.deferred_db()?;
    let runtime = ctx.runtime_over(db.clone(), true)?;
    let plugin = ctx.load_plugin(&runtime, &source, args.approve)?;
    let func = plugin.function(&name).map_err(Failure::usage)?;
    let param_types: Vec<_> = func.ty.params().map(|(_, t)| t).collect();
    let params = parsed
        .to_wasm_params::<plinth_host::Val>(param_types.iter())
        .map_err(|e| Failure::usage(format!("arguments of {}: {e}", func.qualified_name())))?;
    if params.len() != param_types.len() {
        return Err(Failure::usage(format!(
            "{} takes {} arguments, not {}",
            func.qualified_name(),
            param_types.len(),
            params.len()
        )));
    }
    plugin.write_cache();
    ctx.open_now(&db)?;
    let results = plugin.call_dynamic(&func.qualified_name(), &params)?;
    for r in &results {
        if args.json {
            println!(
                "{}",
                serde_json::to_string_pretty(&plinth_host::json::to_json(r))?
            );
        } else {
            println!("{}", values::wave(r));
        }
    }
    ctx.deliver_after(runtime.db());
    Ok(ExitCode::SUCCESS)
}
