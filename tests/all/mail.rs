//! Mail: queued in the call's unit of work, delivered by a sender (to a
//! recording directory, or over SMTP to a real server on loopback), retried
//! with backoff, and scrubbed, so that no usable token stays in the database.

use std::io::Write;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Result, ensure};
use plinth_mail::{RecordingTransport, Retry, Sender, Smtp, SmtpConfig, Tls};
use plinth_store::MailStatus;

use crate::util::{Fixture, ok};

const PW: &str = "correct horse battery staple";

/// The database file and its write-ahead log, as bytes: what anyone who can
/// read the files (a backup, a copy) has. On PostgreSQL: a dump of the
/// database's data, what a backup has.
fn file_bytes(f: &Fixture) -> Result<Vec<u8>> {
    if let Some((cluster, name)) = &f.pg {
        return Ok(cluster.dump(name)?.into_bytes());
    }
    let mut bytes = std::fs::read(f.db_path())?;
    let wal = PathBuf::from(format!("{}-wal", f.db_path().display()));
    if wal.exists() {
        bytes.extend(std::fs::read(wal)?);
    }
    Ok(bytes)
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

/// The token in a delivered message's text.
fn token_in(text: &str) -> Option<String> {
    text.lines()
        .find_map(|l| l.trim_end_matches('\r').strip_prefix("token: "))
        .map(str::to_string)
}

fn delivered(dir: &Path) -> Result<Vec<String>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "eml"))
        .collect();
    files.sort();
    Ok(files
        .iter()
        .map(std::fs::read_to_string)
        .collect::<Result<_, _>>()?)
}

#[test]
fn delivered_mail_leaves_no_token_in_the_database_files() -> Result<()> {
    let f = Fixture::new()?;
    let auth = f.auth()?;
    ok(auth.sign_up("ada", "ada@example.com", PW))?;
    ok(auth.request_password_reset("ada@example.com"))?;
    // Queued: the bodies (and their tokens) wait in the outbox.
    let queued = f.runtime.db().outbox(None, 10)?;
    ensure!(queued.len() == 2 && queued.iter().all(|m| m.status == MailStatus::Queued));
    let tokens: Vec<String> = queued.iter().filter_map(|m| token_in(&m.body)).collect();
    ensure!(tokens.len() == 2);
    ensure!(
        contains(&file_bytes(&f)?, &tokens[0]),
        "the test cannot see a queued token"
    );

    let inbox = f.dir.path().join("inbox");
    let mut sender = Sender::new(
        f.runtime.db().clone(),
        RecordingTransport::new(&inbox),
        Retry::default(),
    );
    let report = sender.deliver_due()?;
    ensure!(report.sent == 2 && report.failed == 0, "{report:?}");
    // Delivered: the inbox has the tokens; the database has none.
    let mail = delivered(&inbox)?;
    ensure!(mail.len() == 2);
    let received: Vec<String> = mail.iter().filter_map(|m| token_in(m)).collect();
    ensure!(received == tokens, "{received:?} vs {tokens:?}");
    let after = f.runtime.db().outbox(None, 10)?;
    ensure!(
        after
            .iter()
            .all(|m| m.status == MailStatus::Sent && m.body.is_empty() && m.sent_at.is_some()),
        "{after:?}"
    );
    let bytes = file_bytes(&f)?;
    for token in &tokens {
        ensure!(
            !contains(&bytes, token),
            "a delivered token is still in the database files"
        );
    }
    // The mailed tokens still work: the user has them.
    ok(auth.reset_password(&tokens[1], "a different long passphrase"))?;
    // The reset queued a notice; after it, nothing is due.
    ensure!(sender.deliver_due()?.sent == 1);
    ensure!(sender.deliver_due()? == plinth_mail::Report::default());
    Ok(())
}

/// An SMTP server for the test, on loopback: aiosmtpd from PyPI, started
/// by the test, accepting (writing each message into a directory) or
/// refusing every recipient.
struct SmtpServer {
    child: Child,
    port: u16,
}

const SERVER: &str = r#"
import os, sys
from aiosmtpd.controller import Controller

mode, port, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]

class Handler:
    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if mode == "refuse":
            return "550 5.1.1 no such mailbox here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        n = len(os.listdir(out))
        with open(os.path.join(out, f"{n}.eml"), "wb") as f:
            f.write(envelope.content)
        return "250 Message accepted for delivery"

controller = Controller(Handler(), hostname="127.0.0.1", port=port)
controller.start()
sys.stdin.read()
controller.stop()
"#;

impl SmtpServer {
    /// Starts one on `port` (or a free one), or says why it cannot: under
    /// `CI=true` a missing aiosmtpd is a failure, elsewhere a loud skip.
    fn start(mode: &str, port: Option<u16>, out: &Path) -> Result<Option<Self>> {
        let have = Command::new("python3")
            .args(["-c", "import aiosmtpd"])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !have {
            ensure!(
                std::env::var_os("CI").is_none(),
                "aiosmtpd is not installed (python3 -m pip install aiosmtpd)"
            );
            eprintln!(
                "SKIPPED: aiosmtpd is not installed; the SMTP tests need it (python3 -m pip install aiosmtpd)"
            );
            return Ok(None);
        }
        std::fs::create_dir_all(out)?;
        let port = match port {
            Some(p) => p,
            None => free_port()?,
        };
        let child = Command::new("python3")
            .arg("-c")
            .arg(SERVER)
            .arg(mode)
            .arg(port.to_string())
            .arg(out)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        let server = SmtpServer { child, port };
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            ensure!(
                started.elapsed() < Duration::from_secs(15),
                "the SMTP server did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(Some(server))
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        if let Some(stdin) = self.child.stdin.as_mut() {
            let _ = stdin.write_all(b"");
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn smtp(port: u16) -> Result<Smtp> {
    Ok(Smtp::new(&SmtpConfig {
        host: "127.0.0.1".into(),
        port,
        tls: Tls::None,
        credentials: None,
        from: "plinth@example.com".into(),
        timeout: Duration::from_secs(5),
    })?)
}

#[test]
fn smtp_delivers_to_a_real_server_and_scrubs() -> Result<()> {
    let f = Fixture::new()?;
    let received = f.dir.path().join("received");
    let Some(server) = SmtpServer::start("accept", None, &received)? else {
        return Ok(());
    };
    let auth = f.auth()?;
    ok(auth.sign_up("ada", "ada@example.com", PW))?;
    let token = f.mailed_token("ada@example.com")?;
    let mut sender = Sender::new(f.runtime.db().clone(), smtp(server.port)?, Retry::default());
    let report = sender.deliver_due()?;
    ensure!(report.sent == 1, "{report:?}");
    let mail = delivered(&received)?;
    ensure!(mail.len() == 1 && mail[0].contains("Subject: Verify your email address"));
    ensure!(
        token_in(&mail[0]).as_deref() == Some(token.as_str()),
        "{}",
        mail[0]
    );
    ensure!(!contains(&file_bytes(&f)?, &token));
    ok(auth.verify_email(&token))?;
    Ok(())
}

#[test]
fn a_refusing_server_fails_the_message_for_good_and_scrubs_it() -> Result<()> {
    let f = Fixture::new()?;
    let Some(server) = SmtpServer::start("refuse", None, &f.dir.path().join("none"))? else {
        return Ok(());
    };
    let auth = f.auth()?;
    ok(auth.sign_up("ada", "ada@example.com", PW))?;
    let token = f.mailed_token("ada@example.com")?;
    let mut sender = Sender::new(f.runtime.db().clone(), smtp(server.port)?, Retry::default());
    let report = sender.deliver_due()?;
    ensure!(report.failed == 1 && report.sent == 0, "{report:?}");
    let m = &f.runtime.db().outbox(None, 1)?[0];
    ensure!(m.status == MailStatus::Failed && m.body.is_empty(), "{m:?}");
    ensure!(
        m.last_error.as_deref().is_some_and(|e| e.contains("550")),
        "{m:?}"
    );
    ensure!(!contains(&file_bytes(&f)?, &token));
    Ok(())
}

/// A fixture in which ada has signed up (her verification mail queued),
/// the token in that mail, and a port nothing listens on yet.
fn signed_up_with_no_server() -> Result<(Fixture, String, u16)> {
    let f = Fixture::new()?;
    let port = free_port()?;
    ok(f.auth()?.sign_up("ada", "ada@example.com", PW))?;
    let token = f.mailed_token("ada@example.com")?;
    Ok((f, token, port))
}

#[test]
fn a_server_that_is_down_is_retried_with_backoff_until_it_is_up() -> Result<()> {
    let (f, token, port) = signed_up_with_no_server()?;
    let retry = Retry {
        max_attempts: 4,
        first_delay: 30,
        max_delay: 3600,
    };
    let mut sender = Sender::new(f.runtime.db().clone(), smtp(port)?, retry);
    ensure!(sender.deliver_due()?.retrying == 1);
    let m = &f.runtime.db().outbox(None, 1)?[0];
    ensure!(
        m.status == MailStatus::Queued && m.attempts == 1 && !m.body.is_empty(),
        "{m:?}"
    );
    // Not due again before its delay.
    ensure!(sender.deliver_due()? == plinth_mail::Report::default());
    f.clock.advance(30);
    ensure!(sender.deliver_due()?.retrying == 1); // attempt 2; the next waits 60 s
    f.clock.advance(59);
    ensure!(sender.deliver_due()? == plinth_mail::Report::default());
    // The server comes up; the next due attempt delivers.
    let received = f.dir.path().join("received");
    let Some(_server) = SmtpServer::start("accept", Some(port), &received)? else {
        return Ok(());
    };
    f.clock.advance(1);
    ensure!(sender.deliver_due()?.sent == 1);
    ensure!(token_in(&delivered(&received)?[0]).as_deref() == Some(token.as_str()));
    let m = &f.runtime.db().outbox(None, 1)?[0];
    ensure!(
        m.status == MailStatus::Sent && m.attempts == 3 && m.body.is_empty(),
        "{m:?}"
    );
    Ok(())
}

#[test]
fn a_server_down_for_every_attempt_fails_the_message_and_scrubs_it() -> Result<()> {
    let (f, token, port) = signed_up_with_no_server()?;
    let retry = Retry {
        max_attempts: 3,
        first_delay: 10,
        max_delay: 10,
    };
    let mut sender = Sender::new(f.runtime.db().clone(), smtp(port)?, retry);
    ensure!(sender.deliver_due()?.retrying == 1);
    f.clock.advance(10);
    ensure!(sender.deliver_due()?.retrying == 1);
    f.clock.advance(10);
    ensure!(sender.deliver_due()?.failed == 1);
    let m = &f.runtime.db().outbox(None, 1)?[0];
    ensure!(
        m.status == MailStatus::Failed && m.attempts == 3 && m.body.is_empty(),
        "{m:?}"
    );
    ensure!(!contains(&file_bytes(&f)?, &token));
    Ok(())
}

/// Senders on several hosts read the same due list: each message is taken
/// by one of them (`claim_mail`) and delivered once.
#[test]
fn senders_racing_on_one_outbox_deliver_each_message_once() -> Result<()> {
    let f = Fixture::new()?;
    let auth = f.auth()?;
    for i in 0..6 {
        ok(auth.sign_up(&format!("user{i}"), &format!("user{i}@example.com"), PW))?;
    }
    ensure!(f.runtime.db().mail_queued()? == 6);
    let inboxes: Vec<PathBuf> = (0..4)
        .map(|i| f.dir.path().join(format!("inbox-{i}")))
        .collect();
    let barrier = std::sync::Barrier::new(inboxes.len());
    std::thread::scope(|s| -> Result<()> {
        let handles: Vec<_> = inboxes
            .iter()
            .map(|inbox| {
                let (db, barrier) = (f.runtime.db().clone(), &barrier);
                s.spawn(move || {
                    let mut sender =
                        Sender::new(db, RecordingTransport::new(inbox), Retry::default());
                    barrier.wait();
                    sender.deliver_due()
                })
            })
            .collect();
        let mut sent = 0;
        for h in handles {
            sent += h
                .join()
                .map_err(|_| anyhow::anyhow!("a sender panicked"))??
                .sent;
        }
        ensure!(sent == 6, "{sent} reported sent");
        Ok(())
    })?;
    let mut tokens = Vec::new();
    for inbox in &inboxes {
        if inbox.exists() {
            tokens.extend(delivered(inbox)?.iter().filter_map(|m| token_in(m)));
        }
    }
    tokens.sort();
    let before = tokens.len();
    tokens.dedup();
    ensure!(
        before == 6 && tokens.len() == 6,
        "{before} delivered, {} distinct",
        tokens.len()
    );
    ensure!(f.runtime.db().mail_queued()? == 0);
    // A message taken by one sender is not taken again within its lease.
    ok(auth.request_password_reset("user0@example.com"))?;
    let due = f.runtime.db().due_mail(10)?;
    ensure!(due.len() == 1);
    ensure!(f.runtime.db().claim_mail(due[0].id, 300)?);
    ensure!(!f.runtime.db().claim_mail(due[0].id, 300)?);
    ensure!(f.runtime.db().due_mail(10)?.is_empty());
    Ok(())
}
