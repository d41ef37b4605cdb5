//! `plinth`: run the demo, call any plugin export, inspect plugins, and
//! manage the database from the shell.
//!
//! Exit codes: 0 success, 1 a runtime failure (a plugin trapped, the
//! database cannot be opened…), 2 a usage error (unknown plugin or function,
//! malformed arguments). Errors are one line on stderr.
//!
//! Each subcommand is a module of [`commands`] holding its arguments and its
//! `run`; what they share is in [`context`].

mod commands;
mod context;
mod logging;
mod mail;
mod plugins;
mod values;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use commands::{cache, call, db, demo, new, outbox, plugin, send_mail, serve, wit};
use context::{Ctx, Result};

/// plinth: a WebAssembly component plugin runtime over an embedded SQLite
/// database, or a PostgreSQL server shared by several hosts.
#[derive(Parser)]
#[command(name = "plinth", version, about)]
struct Cli {
    #[command(flatten)]
    options: context::Options,
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
    Call(call::CallArgs),
    /// Writes a new plugin into DIR (default: ./NAME): its source, a world
    /// that imports what the source calls, the WIT it builds against, a
    /// manifest and a README with the build and call commands.
    New(new::NewArgs),
    /// Lists and inspects plugins.
    #[command(subcommand)]
    Plugin(plugin::PluginCommand),
    /// Lists, prunes or clears the cache of compiled plugins.
    #[command(subcommand)]
    Cache(cache::CacheCommand),
    /// Manages the database.
    #[command(subcommand)]
    Db(db::DbCommand),
    /// Writes the WIT packages a plugin author builds against into DIR/deps/
    /// (and a starter world into DIR when it has none), from the copy in
    /// this binary: point wit-bindgen, componentize-py or jco at DIR.
    Wit(wit::WitArgs),
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
    Outbox(outbox::OutboxArgs),
}

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
    // A service logs its requests; a command says only what failed.
    logging::init(if matches!(cli.command, Command::Serve(_)) {
        "info"
    } else {
        "error"
    });
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

fn run(cli: Cli) -> Result<ExitCode> {
    let ctx = Ctx::new(cli.options)?;
    match cli.command {
        Command::Demo => demo::run(&ctx),
        Command::Call(args) => call::run(&ctx, args),
        Command::New(args) => new::run(args),
        Command::Plugin(cmd) => plugin::run(&ctx, cmd),
        Command::Cache(cmd) => cache::run(&ctx, cmd),
        Command::Db(cmd) => db::run(&ctx, cmd),
        Command::Wit(args) => wit::run(args),
        Command::SendMail => send_mail::run(&ctx),
        Command::Serve(args) => serve::run(&ctx, args),
        Command::Outbox(args) => outbox::run(&ctx, args),
    }
}
