//! `plinth send-mail`: delivers the outbox's mail that is due.

use std::process::ExitCode;

use crate::context::{Ctx, Result};

/// Delivers what is due where mail goes, and says how it went.
pub fn run(ctx: &Ctx) -> Result<ExitCode> {
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
