//! `plinth serve --web`: the pages, their cookies and their CSRF checks,
//! driven over HTTP (a browser's own test drives them in a real Chromium).

use std::time::Duration;

use anyhow::{Context, Result, ensure};

use super::PW;
use super::server::{Start, eventually};

/// A client that keeps cookies by hand (to see their attributes) and does
/// not follow redirects.
struct Browser {
    base: String,
    client: reqwest::blocking::Client,
    cookies: Vec<(String, String)>,
    /// Every Set-Cookie seen, whole.
    set: Vec<String>,
}

struct Page {
    status: u16,
    headers: reqwest::header::HeaderMap,
    text: String,
}

impl Browser {
    fn new(base: &str) -> Result<Self> {
        Ok(Self {
            base: base.to_string(),
            client: reqwest::blocking::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .danger_accept_invalid_certs(true)
                .timeout(Duration::from_secs(60))
                .build()?,
            cookies: Vec::new(),
            set: Vec::new(),
        })
    }

    fn cookie(&self, name: &str) -> Option<&str> {
        self.cookies
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn keep(&mut self, r: reqwest::blocking::Response) -> Result<Page> {
        for v in r.headers().get_all("set-cookie") {
            let v = v.to_str()?.to_string();
            let first = v.split(';').next().unwrap_or("");
            if let Some((k, val)) = first.split_once('=') {
                self.cookies.retain(|(name, _)| name != k);
                if !val.is_empty() {
                    self.cookies.push((k.to_string(), val.to_string()));
                }
            }
            self.set.push(v);
        }
        Ok(Page {
            status: r.status().as_u16(),
            headers: r.headers().clone(),
            text: r.text()?,
        })
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn get(&mut self, path: &str) -> Result<Page> {
        let r = self
            .client
            .get(format!("{}{path}", self.base))
            .header("cookie", self.cookie_header())
            .send()?;
        self.keep(r)
    }

    /// Posts a form the way the page's own form would (same origin), with
    /// the CSRF token the page carried.
    fn post(
        &mut self,
        path: &str,
        fields: &[(&str, &str)],
        extra: &[(&str, &str)],
    ) -> Result<Page> {
        let body: String = fields
            .iter()
            .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
            .collect::<Vec<_>>()
            .join("&");
        let mut req = self
            .client
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("cookie", self.cookie_header());
        if !extra.iter().any(|(k, _)| *k == "sec-fetch-site") {
            req = req.header("sec-fetch-site", "same-origin");
        }
        for (k, v) in extra {
            req = req.header(*k, *v);
        }
        let r = req.body(body).send()?;
        self.keep(r)
    }
}

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            b' ' => "+".to_string(),
            b => format!("%{b:02X}"),
        })
        .collect()
}

/// The CSRF token a page's form carries.
fn csrf(page: &Page) -> Result<String> {
    let at = page
        .text
        .find("name=\"csrf\" value=\"")
        .context("no CSRF field")?;
    let rest = &page.text[at + 19..];
    Ok(rest[..rest.find('"').context("unterminated")?].to_string())
}

/// The text of the newest mail in `dir` about `subject` that carries a
/// token, once one has been delivered.
pub fn newest_mail(dir: &std::path::Path, subject: &str) -> Result<String> {
    eventually(Duration::from_secs(10), || {
        let mut newest: Option<(std::time::SystemTime, String)> = None;
        if let Ok(entries) = std::fs::read_dir(dir) {
            for e in entries.flatten() {
                let text = std::fs::read_to_string(e.path())?;
                if !text.contains(subject) || !text.contains("token: ") {
                    continue;
                }
                let at = e.metadata()?.modified()?;
                if newest.as_ref().is_none_or(|(t, _)| at > *t) {
                    newest = Some((at, text));
                }
            }
        }
        Ok(newest.map(|(_, text)| text))
    })
}

/// The token in the newest mail in `dir` about `subject`.
pub fn mailed_token(dir: &std::path::Path, subject: &str) -> Result<String> {
    newest_mail(dir, subject)?
        .lines()
        .find_map(|l| l.strip_prefix("token: "))
        .map(|t| t.trim().to_string())
        .context("no token in the mail")
}

#[test]
fn the_account_journey_through_the_pages() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let s = Start::new(dir.path())
        .arg("--web")
        .arg("--mail-interval-ms")
        .arg("100")
        .spawn()?;
    let mail = dir.path().join("mail");
    let mut b = Browser::new(&s.base)?;
    // The status page: connected, the schema version, auth with its grants.
    let status = b.get("/")?;
    ensure!(
        status.status == 200 && status.text.contains("id=\"connection\">connected<"),
        "{}",
        status.text
    );
    ensure!(
        status.text.contains("id=\"schema-version\">6<")
            && status.text.contains("plinth:database/users")
    );
    // Sign up.
    let form = b.get("/web/sign-up")?;
    let token = csrf(&form)?;
    ensure!(b.cookie("plinth_csrf") == Some(token.as_str()));
    let up = b.post(
        "/web/sign-up",
        &[
            ("csrf", &token),
            ("name", "ada"),
            ("email", "ada@example.com"),
            ("password", PW),
        ],
        &[],
    )?;
    ensure!(
        up.status == 200 && up.text.contains("Check your mail"),
        "{}",
        up.text
    );
    // The link's page consumes nothing; its form does, once.
    let verify = mailed_token(&mail, "Verify")?;
    let page = b.get(&format!("/web/verify?token={verify}"))?;
    ensure!(page.status == 200 && page.text.contains(&verify));
    let done = b.post("/web/verify", &[("csrf", &token), ("token", &verify)], &[])?;
    ensure!(
        done.status == 200 && done.text.contains("is verified"),
        "{}",
        done.text
    );
    let again = b.post("/web/verify", &[("csrf", &token), ("token", &verify)], &[])?;
    ensure!(
        again.status == 422,
        "the token was consumed twice: {}",
        again.text
    );
    // Sign in: a session cookie, HttpOnly, SameSite=Lax, not Secure over plain HTTP.
    b.get("/web/sign-in")?;
    let signed = b.post(
        "/web/sign-in",
        &[
            ("csrf", &token),
            ("email", "ada@example.com"),
            ("password", PW),
        ],
        &[],
    )?;
    ensure!(
        signed.status == 303
            && signed
                .headers
                .get("location")
                .is_some_and(|l| l == "/web/me")
    );
    let set = b
        .set
        .iter()
        .rev()
        .find(|c| c.starts_with("plinth_session="))
        .context("no session cookie")?;
    ensure!(
        set.contains("HttpOnly")
            && set.contains("SameSite=Lax")
            && set.contains("Path=/")
            && !set.contains("Secure"),
        "{set}"
    );
    let first = b
        .cookie("plinth_session")
        .context("no session")?
        .to_string();
    let me = b.get("/web/me")?;
    ensure!(
        me.status == 200 && me.text.contains("id=\"who\">ada<") && me.text.contains("verified"),
        "{}",
        me.text
    );
    // Signing in again rotates the session: a new id, the old one ended.
    let _ = b.post(
        "/web/sign-in",
        &[
            ("csrf", &token),
            ("email", "ada@example.com"),
            ("password", PW),
        ],
        &[],
    )?;
    let second = b
        .cookie("plinth_session")
        .context("no session")?
        .to_string();
    ensure!(second != first, "the session was not rotated");
    let mut stale = Browser::new(&s.base)?;
    stale.cookies.push(("plinth_session".into(), first));
    ensure!(
        stale.get("/web/me")?.status == 303,
        "the old session still works"
    );
    // Reset the password through the mailed link: every session ends.
    b.get("/web/reset")?;
    let asked = b.post(
        "/web/reset",
        &[("csrf", &token), ("email", "ada@example.com")],
        &[],
    )?;
    ensure!(asked.status == 200 && asked.text.contains("on its way"));
    let reset = mailed_token(&mail, "Reset")?;
    let page = b.get(&format!("/web/reset/confirm?token={reset}"))?;
    ensure!(
        page.headers
            .get("referrer-policy")
            .is_some_and(|v| v == "same-origin")
    );
    let changed = b.post(
        "/web/reset/confirm",
        &[
            ("csrf", &token),
            ("token", &reset),
            ("new", "an entirely new passphrase"),
        ],
        &[],
    )?;
    ensure!(
        changed.status == 200 && changed.text.contains("Password changed"),
        "{}",
        changed.text
    );
    let mut old = Browser::new(&s.base)?;
    old.cookies.push(("plinth_session".into(), second));
    ensure!(
        old.get("/web/me")?.status == 303,
        "a session outlived the reset"
    );
    // Sign in with the new password, change it (a new session), sign out.
    let _ = b.post(
        "/web/sign-in",
        &[
            ("csrf", &token),
            ("email", "ada@example.com"),
            ("password", "an entirely new passphrase"),
        ],
        &[],
    )?;
    let third = b
        .cookie("plinth_session")
        .context("no session")?
        .to_string();
    let changed = b.post(
        "/web/change-password",
        &[
            ("csrf", &token),
            ("current", "an entirely new passphrase"),
            ("new", "yet another long passphrase"),
        ],
        &[],
    )?;
    ensure!(changed.status == 303);
    let fourth = b
        .cookie("plinth_session")
        .context("no session")?
        .to_string();
    ensure!(fourth != third, "the session was not rotated by the change");
    let out = b.post("/web/sign-out", &[("csrf", &token)], &[])?;
    ensure!(out.status == 303 && b.set.last().is_some_and(|c| c.contains("Max-Age=0")));
    let mut after = Browser::new(&s.base)?;
    after.cookies.push(("plinth_session".into(), fourth));
    ensure!(
        after.get("/web/me")?.status == 303,
        "the session outlived sign-out"
    );
    Ok(())
}

#[test]
fn cross_site_and_tokenless_form_posts_are_refused() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let s = Start::new(dir.path()).arg("--web").spawn()?;
    let mut b = Browser::new(&s.base)?;
    let token = csrf(&b.get("/web/sign-up")?)?;
    let fields = [
        ("csrf", token.as_str()),
        ("name", "eve"),
        ("email", "eve@example.com"),
        ("password", PW),
    ];
    // A form on another site posting here.
    let cross = b.post("/web/sign-up", &fields, &[("sec-fetch-site", "cross-site")])?;
    ensure!(cross.status == 403, "{}", cross.text);
    let origin = b.post(
        "/web/sign-up",
        &fields,
        &[("origin", "http://evil.example")],
    )?;
    ensure!(origin.status == 403);
    // Without the token, or with another one.
    let none = b.post("/web/sign-up", &fields[1..], &[])?;
    ensure!(none.status == 403);
    let wrong = b.post(
        "/web/sign-up",
        &[
            ("csrf", "0123456789abcdef0123456789abcdef"),
            ("name", "eve"),
            ("email", "eve@example.com"),
            ("password", PW),
        ],
        &[],
    )?;
    ensure!(wrong.status == 403);
    // A browser with no CSRF cookie (another site's form cannot set ours).
    let mut fresh = Browser::new(&s.base)?;
    let bare = fresh.post("/web/sign-up", &fields, &[])?;
    ensure!(bare.status == 403);
    ensure!(
        super::rows(&dir.path().join("plinth.db"), "users")? == 0,
        "a refused form wrote"
    );
    // Every page carries the security headers.
    let page = b.get("/web/sign-in")?;
    let csp = page
        .headers
        .get("content-security-policy")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    ensure!(
        csp.contains("frame-ancestors 'none'")
            && !csp.contains("unsafe-inline")
            && !csp.contains("script-src"),
        "{csp}"
    );
    ensure!(
        page.headers
            .get("x-frame-options")
            .is_some_and(|v| v == "DENY")
    );
    ensure!(
        page.headers
            .get("referrer-policy")
            .is_some_and(|v| v == "same-origin")
    );
    ensure!(
        page.headers
            .get("x-content-type-options")
            .is_some_and(|v| v == "nosniff")
    );
    // Without --web there are no pages.
    let plain = Start::new(dir.path()).spawn()?;
    ensure!(Browser::new(&plain.base)?.get("/web/sign-in")?.status == 404);
    Ok(())
}

#[test]
fn over_tls_the_session_cookie_is_secure_and_host_prefixed() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()])?;
    let (c, k) = (dir.path().join("c.pem"), dir.path().join("k.pem"));
    std::fs::write(&c, cert.cert.pem())?;
    std::fs::write(&k, cert.key_pair.serialize_pem())?;
    let s = Start::new(dir.path())
        .arg("--web")
        .arg("--tls-cert")
        .arg(c.to_string_lossy())
        .arg("--tls-key")
        .arg(k.to_string_lossy())
        .spawn()?;
    let mut b = Browser::new(&s.base)?;
    let token = csrf(&b.get("/web/sign-up")?)?;
    ensure!(
        b.set
            .iter()
            .any(|c| c.starts_with("__Host-plinth_csrf=") && c.contains("Secure")),
        "{:?}",
        b.set
    );
    b.post(
        "/web/sign-up",
        &[
            ("csrf", &token),
            ("name", "ada"),
            ("email", "ada@example.com"),
            ("password", PW),
        ],
        &[],
    )?;
    let signed = b.post(
        "/web/sign-in",
        &[
            ("csrf", &token),
            ("email", "ada@example.com"),
            ("password", PW),
        ],
        &[],
    )?;
    ensure!(signed.status == 303, "{}", signed.text);
    let set = b
        .set
        .iter()
        .rev()
        .find(|c| c.starts_with("__Host-plinth_session="))
        .context("no session cookie")?;
    ensure!(
        set.contains("Secure")
            && set.contains("HttpOnly")
            && set.contains("Path=/")
            && !set.contains("Domain"),
        "{set}"
    );
    Ok(())
}

/// Sign-in posts past the limit answer 429 with Retry-After, per client
/// address (another account from the same address too) and per account.
#[test]
fn costly_forms_are_limited_per_client_and_per_account() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let s = Start::new(dir.path())
        .arg("--web")
        .arg("--rate-limit")
        .arg("3")
        .spawn()?;
    let mut b = Browser::new(&s.base)?;
    let token = csrf(&b.get("/web/sign-in")?)?;
    for _ in 0..3 {
        let p = b.post(
            "/web/sign-in",
            &[
                ("csrf", &token),
                ("email", "ada@example.com"),
                ("password", "wrong wrong wrong"),
            ],
            &[],
        )?;
        ensure!(p.status == 422, "{}", p.text);
    }
    let limited = b.post(
        "/web/sign-in",
        &[
            ("csrf", &token),
            ("email", "ada@example.com"),
            ("password", "wrong wrong wrong"),
        ],
        &[],
    )?;
    ensure!(limited.status == 429, "{}", limited.text);
    let secs: u64 = limited
        .headers
        .get("retry-after")
        .context("no Retry-After")?
        .to_str()?
        .parse()?;
    ensure!((1..=600).contains(&secs), "{secs}");
    // The same address, another account: still this client's limit.
    let other = b.post(
        "/web/sign-in",
        &[
            ("csrf", &token),
            ("email", "bob@example.com"),
            ("password", "wrong wrong wrong"),
        ],
        &[],
    )?;
    ensure!(other.status == 429);
    // Sign-up has a count of its own.
    let up = b.post(
        "/web/sign-up",
        &[
            ("csrf", &token),
            ("name", "ada"),
            ("email", "ada@example.com"),
            ("password", PW),
        ],
        &[],
    )?;
    ensure!(up.status == 200, "{}", up.text);
    Ok(())
}

/// Wrong-password sign-in posts of one account, alternating between the
/// servers at `bases`: each answer's status.
pub fn sign_in_statuses(bases: &[&str], n: usize) -> Result<Vec<u16>> {
    let mut browsers = bases
        .iter()
        .map(|b| Browser::new(b))
        .collect::<Result<Vec<_>>>()?;
    let mut tokens = Vec::new();
    for b in &mut browsers {
        tokens.push(csrf(&b.get("/web/sign-in")?)?);
    }
    let mut statuses = Vec::new();
    for i in 0..n {
        let k = i % browsers.len();
        let token = tokens[k].clone();
        let p = browsers[k].post(
            "/web/sign-in",
            &[
                ("csrf", &token),
                ("email", "ada@example.com"),
                ("password", "wrong wrong wrong"),
            ],
            &[],
        )?;
        statuses.push(p.status);
    }
    Ok(statuses)
}

/// A burst of concurrent requests is counted one by one: no more than the
/// limit get through, and the JSON API counts with the pages.
#[test]
fn a_burst_of_requests_and_the_json_api_do_not_get_past_the_limits() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let s = Start::new(dir.path())
        .arg("--web")
        .arg("--rate-limit")
        .arg("3")
        .spawn()?;
    let mut b = Browser::new(&s.base)?;
    let token = csrf(&b.get("/web/reset")?)?;
    let cookie = b.cookie_header();
    let statuses: Vec<u16> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..12)
            .map(|i| {
                let (base, token, cookie) = (&s.base, &token, &cookie);
                scope.spawn(move || -> Result<u16> {
                    let r = reqwest::blocking::Client::new()
                        .post(format!("{base}/web/reset"))
                        .header("content-type", "application/x-www-form-urlencoded")
                        .header("cookie", cookie.as_str())
                        .header("sec-fetch-site", "same-origin")
                        .body(format!("csrf={token}&email=user{i}%40example.com"))
                        .send()?;
                    Ok(r.status().as_u16())
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().map_err(|_| anyhow::anyhow!("panicked"))?)
            .collect::<Result<Vec<u16>>>()
    })?;
    let through = statuses.iter().filter(|s| **s == 200).count();
    ensure!(
        through == 3 && statuses.iter().all(|s| [200, 429].contains(s)),
        "{statuses:?}"
    );
    // The same request through the JSON API, from the same client: refused too.
    let api = s.call(
        "auth",
        "request-password-reset",
        serde_json::json!({"email": "other@example.com"}),
    )?;
    ensure!(
        api.status == 429 && api.header("retry-after").is_some(),
        "{api:?}"
    );
    Ok(())
}

#[test]
fn opaque_or_other_scheme_origins_are_refused_and_errors_carry_the_headers() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let s = Start::new(dir.path()).arg("--web").spawn()?;
    let mut b = Browser::new(&s.base)?;
    let token = csrf(&b.get("/web/sign-up")?)?;
    let fields = [
        ("csrf", token.as_str()),
        ("name", "eve"),
        ("email", "eve@example.com"),
        ("password", PW),
    ];
    let null = b.post("/web/sign-up", &fields, &[("origin", "null")])?;
    ensure!(null.status == 403, "{}", null.text);
    let https = format!("https://{}", s.addr());
    let other_scheme = b.post("/web/sign-up", &fields, &[("origin", https.as_str())])?;
    ensure!(other_scheme.status == 403, "{}", other_scheme.text);
    let own = format!("http://{}", s.addr());
    let ok = b.post("/web/sign-up", &fields, &[("origin", own.as_str())])?;
    ensure!(ok.status == 200, "{}", ok.text);
    for (path, status) in [("/web/nowhere", 404), ("/web/sign-out", 405)] {
        let p = b.get(path)?;
        ensure!(p.status == status, "{path}: {}", p.status);
        ensure!(
            p.headers.get("content-security-policy").is_some()
                && p.headers.get("x-frame-options").is_some(),
            "{path}"
        );
    }
    // The pages' requests are logged with an id.
    ensure!(b.get("/web/sign-in")?.headers.get("x-request-id").is_some());
    Ok(())
}
