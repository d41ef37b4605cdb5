//! A real `plinth serve` process for the tests: started with a data
//! directory of its own, driven over HTTP, stopped with a signal.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use serde_json::{Value, json};

/// A running `plinth serve`.
pub struct Server {
    child: Option<Child>,
    /// `http://127.0.0.1:PORT` (or https).
    pub base: String,
    /// The admin address, when it has one of its own.
    pub admin: Option<String>,
    /// Its log (stderr).
    pub log: PathBuf,
    /// Lines it printed after the address.
    lines: std::sync::Mutex<mpsc::Receiver<String>>,
    client: reqwest::blocking::Client,
}

/// How to start one.
pub struct Start<'a> {
    pub data: &'a Path,
    pub db: Option<&'a str>,
    pub args: Vec<String>,
    pub env: Vec<(&'a str, String)>,
    pub admin: bool,
}

impl<'a> Start<'a> {
    pub fn new(data: &'a Path) -> Self {
        Self {
            data,
            db: None,
            args: Vec::new(),
            env: Vec::new(),
            admin: false,
        }
    }

    pub fn db(mut self, url: &'a str) -> Self {
        self.db = Some(url);
        self
    }

    pub fn arg(mut self, a: impl Into<String>) -> Self {
        self.args.push(a.into());
        self
    }

    pub fn admin(mut self) -> Self {
        self.admin = true;
        self
    }

    pub fn spawn(self) -> Result<Server> {
        let exe = assert_cmd::cargo::cargo_bin("plinth");
        let log = self.data.join(format!(
            "serve-{}.log",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)?
                .as_nanos()
        ));
        std::fs::create_dir_all(self.data)?;
        let mut cmd = Command::new(exe);
        cmd.env("PLINTH_DATA_DIR", self.data)
            .env_remove("PLINTH_LOG")
            .env_remove("PLINTH_SMTP")
            .env_remove("PLINTH_DB");
        if let Some(url) = self.db {
            cmd.env("PLINTH_DB", url);
        }
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd.args(["serve", "--listen", "127.0.0.1:0"]);
        if self.admin {
            cmd.args(["--admin-listen", "127.0.0.1:0"]);
        }
        cmd.args(&self.args)
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log)?);
        let mut child = cmd.spawn().context("cannot start plinth serve")?;
        let stdout = child.stdout.take().context("no stdout")?;
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(120);
        let (mut base, mut admin) = (None, None);
        while base.is_none() {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    if let Some(a) = line.strip_prefix("plinth serve: listening on ") {
                        base = Some(a.trim().to_string());
                    } else if let Some(a) = line.strip_prefix("plinth serve: admin on ") {
                        admin = Some(a.trim().to_string());
                    }
                }
                Err(_) => {
                    let _ = child.kill();
                    bail!(
                        "plinth serve did not start: {}",
                        std::fs::read_to_string(&log).unwrap_or_default()
                    );
                }
            }
        }
        let client = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(60))
            .danger_accept_invalid_certs(true)
            .build()?;
        Ok(Server {
            child: Some(child),
            base: base.context("no address")?,
            admin,
            log,
            lines: std::sync::Mutex::new(rx),
            client,
        })
    }
}

/// An answer: status, headers, body as JSON (or text in `text`).
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub text: String,
}

impl Answer {
    pub fn json(&self) -> Result<Value> {
        serde_json::from_str(&self.text).with_context(|| format!("not JSON: {}", self.text))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

impl Server {
    pub fn client(&self) -> &reqwest::blocking::Client {
        &self.client
    }

    /// `POST /plugins/PLUGIN/EXPORT` with `args`.
    pub fn call(&self, plugin: &str, export: &str, args: Value) -> Result<Answer> {
        self.post_raw(
            &format!("/plugins/{plugin}/{export}"),
            "application/json",
            args.to_string().into_bytes(),
        )
    }

    pub fn post_raw(&self, path: &str, content_type: &str, body: Vec<u8>) -> Result<Answer> {
        let r = self
            .client
            .post(format!("{}{path}", self.base))
            .header("content-type", content_type)
            .body(body)
            .send()?;
        answer(r)
    }

    pub fn get(&self, path: &str) -> Result<Answer> {
        answer(self.client.get(format!("{}{path}", self.base)).send()?)
    }

    pub fn admin_get(&self, path: &str) -> Result<Answer> {
        let base = self.admin.as_deref().unwrap_or(&self.base);
        answer(self.client.get(format!("{base}{path}")).send()?)
    }

    /// The `ok` of an auth call, or an error with the answer.
    pub fn ok(&self, plugin: &str, export: &str, args: Value) -> Result<Value> {
        let a = self.call(plugin, export, args)?;
        ensure!(
            a.status == 200,
            "{plugin}.{export}: {} {}",
            a.status,
            a.text
        );
        Ok(a.json()?["ok"].clone())
    }

    /// The host:port.
    pub fn addr(&self) -> &str {
        self.base
            .trim_start_matches("http://")
            .trim_start_matches("https://")
    }

    /// The process id.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Sends `signal` (`TERM`, `KILL`).
    pub fn signal(&self, signal: &str) -> Result<()> {
        let pid = self.pid().context("not running")?;
        let status = Command::new("kill")
            .args([format!("-{signal}"), pid.to_string()])
            .status()?;
        ensure!(status.success(), "kill -{signal} {pid} failed");
        Ok(())
    }

    /// Waits for the process to exit; its exit code.
    pub fn wait(&mut self, within: Duration) -> Result<Option<i32>> {
        let mut child = self.child.take().context("not running")?;
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = child.try_wait()? {
                return Ok(status.code());
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                bail!("plinth serve did not exit within {within:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Lines printed on stdout since the address.
    pub fn printed(&self) -> Vec<String> {
        match self.lines.lock() {
            Ok(rx) => rx.try_iter().collect(),
            Err(_) => Vec::new(),
        }
    }

    /// Its log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn answer(r: reqwest::blocking::Response) -> Result<Answer> {
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let text = r.text()?;
    Ok(Answer {
        status,
        headers,
        text,
    })
}

/// Sign-up arguments.
pub fn signup(name: &str, email: &str, password: &str) -> Value {
    json!({ "name": name, "email": email, "password": password })
}

/// Polls `f` until it gives `Some`, for up to `within`.
pub fn eventually<T>(within: Duration, mut f: impl FnMut() -> Result<Option<T>>) -> Result<T> {
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = f()? {
            return Ok(v);
        }
        if Instant::now() > deadline {
            bail!("not within {within:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
