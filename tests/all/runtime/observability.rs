//! Guest output and host calls in `tracing`, under the plugin's name, and
//! no secret (nor what a token is made of) in the log.

use std::sync::{Arc, Mutex};

use anyhow::{Result, ensure};
use plinth_guests::MISBEHAVE;
use plinth_host::Val;

use crate::util::Fixture;

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .map_err(|_| std::io::Error::other("poisoned"))?
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Runs `f` with a subscriber at `level` that writes into a buffer;
/// returns what `f` returned and what was logged.
fn capture<R>(level: tracing::Level, f: impl FnOnce() -> R) -> Result<(R, String)> {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let out = tracing::subscriber::with_default(subscriber, f);
    let log = captured
        .0
        .lock()
        .map_err(|_| anyhow::anyhow!("poisoned"))?
        .clone();
    Ok((out, String::from_utf8(log)?))
}

/// The log of one call in which misbehave prints `text`.
fn printed(p: &plinth_host::Plugin, text: &str) -> Result<String> {
    let (result, log) = capture(tracing::Level::DEBUG, || {
        let print = Val::Variant("print".into(), Some(Box::new(Val::String(text.into()))));
        p.call_dynamic("write-then", &[Val::String(String::new()), print])
    })?;
    result?;
    Ok(log)
}

#[test]
fn guest_output_and_calls_show_up_in_tracing_under_the_plugin_name() -> Result<()> {
    let f = Fixture::new()?;
    let p = f.load(MISBEHAVE)?;
    let log = printed(&p, "hello from the guest")?;
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("hello from the guest"))
        .collect();
    ensure!(lines.len() == 2, "{log}");
    ensure!(
        lines.iter().all(|l| l.contains("plugin_call")
            && l.contains("plugin=misbehave")
            && l.contains("function=\"write-then\"")),
        "{log}"
    );
    ensure!(
        lines.iter().any(|l| l.contains("stream=\"stdout\""))
            && lines.iter().any(|l| l.contains("stream=\"stderr\"")),
        "{log}"
    );
    ensure!(log.contains("micros="), "no call duration: {log}");
    // What a guest prints cannot rewrite the log or the terminal it is
    // read on: control characters arrive escaped.
    let log = printed(&p, "\x1b[2Jcleared\rover\x07")?;
    ensure!(
        !log.chars().any(|c| c.is_control() && c != '\n'),
        "raw control characters in the log: {log:?}"
    );
    ensure!(log.contains("\\u{1b}[2Jcleared\\u{d}over\\u{7}"), "{log}");
    Ok(())
}

#[test]
fn host_calls_are_traced_but_secrets_never_reach_the_log() -> Result<()> {
    let f = Fixture::new()?;
    let auth = f.auth()?;
    let password = "correct horse battery staple";
    let (session, log) = capture(tracing::Level::TRACE, || -> Result<_> {
        crate::util::ok(auth.sign_up("ada", "ada@example.com", password))?;
        crate::util::ok(auth.request_password_reset("ada@example.com"))?;
        crate::util::ok(auth.sign_in("ada@example.com", password))
    })?;
    let session = session?;
    // Each database call has its own span, named after the interface and function.
    ensure!(
        log.contains("get-user-by-email") && log.contains("create-session"),
        "{log}"
    );
    let hash = f.sql("SELECT password_hash FROM users", &[])?;
    let reset_token = f.mailed_token("ada@example.com")?;
    for secret in [
        password,
        hash.as_str(),
        reset_token.as_str(),
        session.token.as_str(),
    ] {
        ensure!(!log.contains(secret), "a secret reached the log: {secret}");
    }
    // Nor may what a token is made of: the plugin draws each token's
    // 20 bytes from wasi:random (as 64-bit numbers). Rebuild every token
    // the logged numbers and byte lists could have made, and look for
    // ours among them.
    let tokens = [reset_token.as_str(), session.token.as_str()];
    for candidate in token_candidates(&log) {
        ensure!(
            !tokens.contains(&candidate.as_str()),
            "a token can be rebuilt from the log: {candidate}"
        );
    }
    if let Some(line) = log.lines().find(|l| l.contains("get-random")) {
        anyhow::bail!("randomness is traced: {line}");
    }
    Ok(())
}

/// Every token (base32 of 20 bytes) that the numbers in `log` could have
/// made: each run of three consecutive 64-bit values, and each logged
/// byte list, taken as the random bytes of a token.
fn token_candidates(log: &str) -> Vec<String> {
    // Traced results read `result=Ok(14856407602807488810)`.
    let numbers: Vec<u64> = log
        .split("result=Ok(")
        .skip(1)
        .filter_map(|rest| {
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            digits.parse().ok()
        })
        .collect();
    let mut out = Vec::new();
    for run in numbers.windows(3) {
        let bytes: Vec<u8> = run.iter().flat_map(|n| n.to_le_bytes()).collect();
        out.push(base32(&bytes[..20]));
        let bytes: Vec<u8> = run.iter().flat_map(|n| n.to_be_bytes()).collect();
        out.push(base32(&bytes[..20]));
    }
    for list in log.split('[').skip(1).filter_map(|l| l.split_once(']')) {
        let bytes: Vec<u8> = list
            .0
            .split(',')
            .filter_map(|b| b.trim().parse().ok())
            .collect();
        if bytes.len() >= 20 {
            out.push(base32(&bytes[..20]));
        }
    }
    out
}

/// RFC 4648 base32, lowercase, as the auth plugin writes tokens.
fn base32(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
    let mut out = String::new();
    for chunk in bytes.chunks(5) {
        let n = chunk.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
        for i in (0..8).rev() {
            out.push(char::from(ALPHABET[((n >> (i * 5)) & 31) as usize]));
        }
    }
    out
}
