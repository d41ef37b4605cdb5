//! The account journey in a real browser: Debian's Chromium, headless,
//! driven over WebDriver (chromedriver; the protocol is JSON over HTTP, so
//! the test speaks it with the same HTTP client as the others). Screenshots
//! of each page go to `target/screenshots/`. Without Chromium and its driver
//! the test says so and skips; under `CI=true` it fails.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use serde_json::{Value, json};

use super::PW;
use super::server::Start;
use super::web::{mailed_token, newest_mail};

/// The element key of the WebDriver protocol.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

struct Driver {
    child: Child,
    base: String,
    session: String,
    http: reqwest::blocking::Client,
    shots: PathBuf,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self
            .http
            .delete(format!("{}/session/{}", self.base, self.session))
            .send();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn find(names: &[&str]) -> Option<PathBuf> {
    names.iter().find_map(|n| {
        std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
            .map(|d| d.join(n))
            .find(|p| p.exists())
    })
}

impl Driver {
    /// chromedriver and a headless Chromium session, or `None` (skip).
    fn start(shots: &Path) -> Result<Option<Self>> {
        let (Some(driver), Some(chromium)) = (
            find(&["chromedriver", "chromium-driver"]),
            find(&["chromium", "chromium-browser", "google-chrome"]),
        ) else {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                bail!(
                    "chromium and chromium-driver are needed under CI (apt-get install chromium chromium-driver)"
                );
            }
            super::tools::say(
                "\n!!! SKIPPED: no chromium/chromedriver; the browser test did not run !!!\n",
            );
            return Ok(None);
        };
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let child = Command::new(driver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        let base = format!("http://127.0.0.1:{port}");
        let http = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()?;
        let deadline = Instant::now() + Duration::from_secs(30);
        while http.get(format!("{base}/status")).send().is_err() {
            ensure!(Instant::now() < deadline, "chromedriver did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        let created: Value = http
            .post(format!("{base}/session"))
            .json(&json!({"capabilities": {"alwaysMatch": {
                "browserName": "chrome",
                "goog:chromeOptions": {
                    "binary": chromium,
                    "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                             "--disable-dev-shm-usage", "--window-size=1000,900"]
                }
            }}}))
            .send()?
            .json()?;
        let session = created["value"]["sessionId"]
            .as_str()
            .with_context(|| format!("no session: {created}"))?
            .to_string();
        std::fs::create_dir_all(shots)?;
        let mut d = Self {
            child,
            base,
            session,
            http,
            shots: shots.to_path_buf(),
        };
        d.cmd("POST", "timeouts", json!({"implicit": 2000}))?;
        Ok(Some(d))
    }

    fn cmd(&mut self, method: &str, path: &str, body: Value) -> Result<Value> {
        let url = format!("{}/session/{}/{path}", self.base, self.session);
        let r = match method {
            "GET" => self.http.get(url).send()?,
            _ => self.http.post(url).json(&body).send()?,
        };
        let v: Value = r.json()?;
        if v["value"]["error"].is_string() {
            bail!("WebDriver {path}: {}", v["value"]);
        }
        Ok(v["value"].clone())
    }

    fn go(&mut self, url: &str) -> Result<()> {
        self.cmd("POST", "url", json!({"url": url}))?;
        Ok(())
    }

    fn element(&mut self, css: &str) -> Result<String> {
        let v = self.cmd(
            "POST",
            "element",
            json!({"using": "css selector", "value": css}),
        )?;
        Ok(v[ELEMENT]
            .as_str()
            .with_context(|| format!("no {css}"))?
            .to_string())
    }

    fn type_into(&mut self, css: &str, text: &str) -> Result<()> {
        let e = self.element(css)?;
        self.cmd("POST", &format!("element/{e}/value"), json!({"text": text}))?;
        Ok(())
    }

    /// Clicks a form's button and waits for the next page: the old
    /// document is marked first, and the wait ends when a document without
    /// the mark has loaded.
    fn click(&mut self, css: &str) -> Result<()> {
        let e = self.element(css)?;
        self.script("window.plinthOldPage = true; return 1")?;
        self.cmd("POST", &format!("element/{e}/click"), json!({}))?;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let moved = self
                .script("return window.plinthOldPage === undefined && document.readyState === 'complete'")
                .ok()
                .and_then(|v| v.as_bool())
                .unwrap_or(false);
            if moved {
                return Ok(());
            }
            ensure!(Instant::now() < deadline, "the click on {css} led nowhere");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The page's HTML once it has loaded (a click on a form's button
    /// returns while the next page may still be loading).
    fn source(&mut self) -> Result<String> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let ready = self
                .script("return document.readyState === 'complete' ? document.documentElement.outerHTML : ''")
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default();
            if !ready.is_empty() {
                return Ok(ready);
            }
            ensure!(Instant::now() < deadline, "the page did not load");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn url(&mut self) -> Result<String> {
        self.source()?;
        Ok(self
            .cmd("GET", "url", Value::Null)?
            .as_str()
            .unwrap_or_default()
            .to_string())
    }

    fn script(&mut self, code: &str) -> Result<Value> {
        self.cmd("POST", "execute/sync", json!({"script": code, "args": []}))
    }

    /// Saves a screenshot of the page as `name.png`.
    fn shot(&mut self, name: &str) -> Result<()> {
        let png = self.cmd("GET", "screenshot", Value::Null)?;
        let bytes = decode_base64(png.as_str().context("no screenshot")?)?;
        ensure!(bytes.starts_with(b"\x89PNG"), "not a PNG");
        std::fs::write(self.shots.join(format!("{name}.png")), bytes)?;
        Ok(())
    }

    /// The browser's cookies for the current page: (name, value, httpOnly).
    fn cookies(&mut self) -> Result<Vec<(String, String, bool)>> {
        let v = self.cmd("GET", "cookie", Value::Null)?;
        Ok(v.as_array()
            .map(|a| {
                a.iter()
                    .map(|c| {
                        (
                            c["name"].as_str().unwrap_or_default().to_string(),
                            c["value"].as_str().unwrap_or_default().to_string(),
                            c["httpOnly"].as_bool().unwrap_or(false),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default())
    }
}

fn decode_base64(text: &str) -> Result<Vec<u8>> {
    let value = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0);
    for c in text
        .bytes()
        .filter(|c| !c.is_ascii_whitespace() && *c != b'=')
    {
        acc = (acc << 6) | value(c).context("not base64")?;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Ok(out)
}

/// The link in the newest mail in `dir` about `subject` (the line after
/// "or open this link:").
fn mailed_link(dir: &Path, subject: &str) -> Result<String> {
    let text = newest_mail(dir, subject)?;
    let mut lines = text
        .lines()
        .skip_while(|l| !l.starts_with("or open this link:"));
    lines.next();
    Ok(lines
        .next()
        .context("no link in the mail")?
        .trim()
        .to_string())
}

/// A server on another origin that records the headers of the first
/// request it gets.
fn third_party() -> Result<(u16, std::sync::mpsc::Receiver<String>)> {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        if let Ok((mut c, _)) = listener.accept() {
            let mut buf = vec![0u8; 8192];
            let n = c.read(&mut buf).unwrap_or(0);
            let _ = tx.send(String::from_utf8_lossy(&buf[..n]).into_owned());
            let _ = c.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok");
        }
    });
    Ok((port, rx))
}

#[test]
fn the_account_journey_in_a_real_browser() -> Result<()> {
    let shots = super::tools::target_dir().join("screenshots");
    let Some(mut b) = Driver::start(&shots)? else {
        return Ok(());
    };
    let dir = tempfile::tempdir()?;
    let s = Start::new(dir.path())
        .arg("--web")
        .arg("--mail-interval-ms")
        .arg("100")
        .spawn()?;
    let base = s.base.clone();
    let mail = dir.path().join("mail");
    // Sign up.
    b.go(&format!("{base}/web/sign-up"))?;
    b.type_into("#name", "ada")?;
    b.type_into("#email", "ada@example.com")?;
    b.type_into("#password", PW)?;
    b.shot("1-sign-up")?;
    b.click("button[type=submit]")?;
    let after = b.source()?;
    ensure!(after.contains("Check your mail"), "{after}");
    // The verification link from the recorded mail.
    let link = mailed_link(&mail, "Verify")?;
    ensure!(
        link.starts_with(&format!("{base}/web/verify?token=")),
        "{link}"
    );
    b.go(&link)?;
    b.shot("2-verify")?;
    b.click("button[type=submit]")?;
    ensure!(b.source()?.contains("is verified"), "{}", b.source()?);
    // Sign in: the session is a cookie JavaScript cannot read.
    b.go(&format!("{base}/web/sign-in"))?;
    b.type_into("#email", "ada@example.com")?;
    b.type_into("#password", PW)?;
    b.click("button[type=submit]")?;
    ensure!(b.url()?.ends_with("/web/me"), "{}", b.url()?);
    ensure!(b.source()?.contains("id=\"who\">ada<"));
    b.shot("3-account")?;
    let session = b
        .cookies()?
        .into_iter()
        .find(|(n, _, _)| n == "plinth_session")
        .context("no session cookie")?;
    ensure!(session.2, "the session cookie is not HttpOnly");
    let visible = b.script("return document.cookie")?;
    ensure!(
        !visible.as_str().unwrap_or_default().contains(&session.1),
        "JavaScript reads the session: {visible}"
    );
    // The status page.
    b.go(&format!("{base}/"))?;
    let status = b.source()?;
    ensure!(
        status.contains("id=\"connection\">connected<")
            && status.contains("id=\"schema-version\">6<"),
        "{status}"
    );
    b.shot("4-status")?;
    // Reset the password through the mailed link; the session ends.
    b.go(&format!("{base}/web/reset"))?;
    b.type_into("#email", "ada@example.com")?;
    b.click("button[type=submit]")?;
    let link = mailed_link(&mail, "Reset")?;
    let reset = mailed_token(&mail, "Reset")?;
    b.go(&link)?;
    // Leaving the page for another site takes no Referer with the token.
    let (port, seen) = third_party()?;
    b.script(&format!(
        "window.location.href = 'http://localhost:{port}/elsewhere'; return 1"
    ))?;
    let request = seen.recv_timeout(Duration::from_secs(10))?;
    ensure!(
        !request.contains(&reset) && !request.to_ascii_lowercase().contains("referer"),
        "{request}"
    );
    b.go(&link)?;
    b.type_into("#new", "an entirely new passphrase")?;
    b.shot("5-reset")?;
    b.click("button[type=submit]")?;
    ensure!(b.source()?.contains("Password changed"));
    b.go(&format!("{base}/web/me"))?;
    ensure!(
        b.url()?.ends_with("/web/sign-in"),
        "the old session survived the reset"
    );
    // Sign in with the new password, then sign out.
    b.type_into("#email", "ada@example.com")?;
    b.type_into("#password", "an entirely new passphrase")?;
    b.click("button[type=submit]")?;
    ensure!(b.url()?.ends_with("/web/me"));
    b.click("form[action='/web/sign-out'] button")?;
    ensure!(b.url()?.ends_with("/web/sign-in"));
    b.shot("6-signed-out")?;
    ensure!(
        !b.cookies()?.iter().any(|(n, _, _)| n == "plinth_session"),
        "the session cookie outlived sign-out"
    );
    Ok(())
}
