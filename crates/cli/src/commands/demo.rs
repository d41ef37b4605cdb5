//! `plinth demo`: the auth plugin's whole journey, step by step.

use anyhow::{Result, anyhow, bail};
use std::path::Path;
use std::process::ExitCode;

use plinth_auth::{AuthError, AuthPlugin, AuthResult};
use plinth_host::Runtime;
use plinth_mail::{RecordingTransport, Retry, Sender};

use crate::context::{self, Ctx, Failure};
use crate::mail;

/// Runs the journey over the database, reading the mail back from the
/// recording folder (a scratch one when mail is held); exit 1 when a step
/// misbehaved.
pub fn run(ctx: &Ctx) -> context::Result<ExitCode> {
    let runtime = ctx.runtime()?;
    println!("database: {}", runtime.db().location());
    let source = ctx.find_plugin("auth")?;
    let auth = AuthPlugin::new(ctx.load_plugin(&runtime, &source, false)?)?;
    let scratch;
    let inbox = match &ctx.delivery {
        mail::Delivery::Record(dir) => dir.clone(),
        mail::Delivery::Hold => {
            scratch = tempfile::tempdir()?;
            scratch.path().to_path_buf()
        }
        mail::Delivery::Smtp(_) => {
            return Err(Failure::usage(
                "the demo reads its mail from the recording folder: run it without PLINTH_SMTP",
            ));
        }
    };
    Ok(if journey(&runtime, &auth, &inbox)? {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

struct Steps {
    n: usize,
    failed: usize,
}

impl Steps {
    /// Runs a step whose plugin answer must be `Ok`; prints it.
    fn ok<T>(
        &mut self,
        what: &str,
        r: AuthResult<T>,
        show: impl Fn(&T) -> String,
    ) -> Result<Option<T>> {
        self.n += 1;
        match r? {
            Ok(v) => {
                println!("{:>2}. {what:<52} ok: {}", self.n, show(&v));
                Ok(Some(v))
            }
            Err(e) => {
                self.failed += 1;
                println!("{:>2}. {what:<52} UNEXPECTED {e:?}", self.n);
                Ok(None)
            }
        }
    }

    /// Runs a step that must be refused with `expected`.
    fn refused<T: std::fmt::Debug>(
        &mut self,
        what: &str,
        r: AuthResult<T>,
        expected: AuthError,
    ) -> Result<()> {
        self.n += 1;
        match r? {
            Err(e) if e == expected => {
                println!("{:>2}. {what:<52} refused as it should be: {e:?}", self.n)
            }
            other => {
                self.failed += 1;
                println!(
                    "{:>2}. {what:<52} UNEXPECTED {other:?} (expected {expected:?})",
                    self.n
                );
            }
        }
        Ok(())
    }
}

/// Delivers the queued mail into the demo's inbox (a recording transport)
/// and reads the token from the newest message to `to`, as its recipient
/// would.
fn mailed_token(runtime: &Runtime, inbox: &Path, to: &str, subject: &str) -> Result<String> {
    let mut sender = Sender::new(
        runtime.db().clone(),
        RecordingTransport::new(inbox),
        Retry::default(),
    );
    sender.deliver_due()?;
    let text = mail::newest_recorded(inbox, to)?
        .ok_or_else(|| anyhow!("no mail to {to} in {}", inbox.display()))?;
    if !text.lines().any(|l| l == format!("Subject: {subject}")) {
        bail!("the newest mail to {to} is not {subject:?}");
    }
    let token = text
        .lines()
        .find_map(|l| l.strip_prefix("token: "))
        .ok_or_else(|| anyhow!("no token in the mail"))?;
    println!(
        "    mail to {to}: {subject:?} (token {}…)",
        &token[..6.min(token.len())]
    );
    Ok(token.to_string())
}

/// Walks `auth` through the journey; returns whether every step behaved.
fn journey(runtime: &Runtime, auth: &AuthPlugin, inbox: &Path) -> Result<bool> {
    let tag = {
        use std::hash::{BuildHasher, Hasher};
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_i64(runtime.db().clock().now());
        format!("{:06x}", h.finish() & 0xff_ffff)
    };
    let name = format!("demo-{tag}");
    let email = format!("{name}@example.com");
    let (pw, new_pw) = ("correct horse battery staple", "a brand new passphrase");
    let mut s = Steps { n: 0, failed: 0 };
    println!("auth demo as {name} <{email}>\n");

    s.ok("sign-up", auth.sign_up(&name, &email, pw), |u| {
        format!("user {} (verified: {})", u.uuid, u.email_verified)
    })?;
    let token = mailed_token(runtime, inbox, &email, "Verify your email address")?;
    s.ok(
        "verify-email with the mailed token",
        auth.verify_email(&token),
        |u| format!("verified: {}", u.email_verified),
    )?;
    let session = s.ok("sign-in", auth.sign_in(&email, pw), |x| {
        format!(
            "session token {}…, expires at {}",
            &x.token[..6],
            x.expires_at
        )
    })?;
    let Some(session) = session else {
        return Ok(false);
    };
    s.ok(
        "validate-session",
        auth.validate_session(&session.token),
        |i| format!("{} is signed in", i.user.name),
    )?;
    s.ok(
        "request-password-reset",
        auth.request_password_reset(&email),
        |_| "mailed (the answer is the same for unknown emails)".into(),
    )?;
    let token = mailed_token(runtime, inbox, &email, "Reset your password")?;
    s.ok(
        "reset-password with the mailed token",
        auth.reset_password(&token, new_pw),
        |_| "password changed, every session revoked".into(),
    )?;
    s.refused(
        "validate-session with the old session",
        auth.validate_session(&session.token),
        AuthError::SessionExpired,
    )?;
    s.refused(
        "sign-in with the old password",
        auth.sign_in(&email, pw),
        AuthError::InvalidCredentials,
    )?;
    let fresh = s.ok(
        "sign-in with the new password",
        auth.sign_in(&email, new_pw),
        |x| format!("session token {}…", &x.token[..6]),
    )?;
    if let Some(fresh) = fresh {
        s.ok("sign-out", auth.sign_out(&fresh.token), |_| {
            "signed out".into()
        })?;
        s.refused(
            "validate-session after sign-out",
            auth.validate_session(&fresh.token),
            AuthError::SessionExpired,
        )?;
    }
    println!(
        "\n{} steps, {} behaved, {} misbehaved",
        s.n,
        s.n - s.failed,
        s.failed
    );
    Ok(s.failed == 0)
}
