//! `plinth outbox`: the queued and delivered mail, as text or JSON.

use std::process::ExitCode;

use crate::context::{Ctx, Result};

/// `plinth outbox`'s arguments.
#[derive(clap::Args)]
pub struct OutboxArgs {
    /// Prints JSON.
    #[arg(long)]
    json: bool,
    /// Only mail to this address.
    #[arg(long)]
    to: Option<String>,
    /// At most this many (the newest).
    #[arg(long, default_value_t = 50)]
    limit: u32,
}

/// Prints the outbox, oldest first.
pub fn run(ctx: &Ctx, args: OutboxArgs) -> Result<ExitCode> {
    let messages = ctx.db()?.outbox(args.to.as_deref(), args.limit)?;
    if args.json {
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
