//! What the CLI logs, to stderr: `PLINTH_LOG` or a level per command.

use std::io::IsTerminal;

/// The crates whose logs `PLINTH_LOG=<level>` turns up: plinth's own, and
/// the guests' output (`plinth::guest`).
const PLINTH_TARGETS: &[&str] = &[
    "plinth",
    "plinth_host",
    "plinth_store",
    "plinth_auth",
    "plinth_testing",
];

/// Logs to stderr as `PLINTH_LOG` says, else at `default_level`.
pub fn init(default_level: &str) {
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
}

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
