//! Per-client limits on the requests that cost (a password hashed, mail
//! sent): sign-in, sign-up and password-reset requests, whether they come
//! from the pages or from the JSON API, counted per client address and per
//! account, on top of the auth plugin's own throttling.
//!
//! The counts are kept in the database's `attempts` table under keys of
//! their own (`plinth-serve:limit:…`), so hosts sharing PostgreSQL count
//! together. Each request is counted before it is judged, in one atomic
//! increment, so a burst of concurrent requests cannot all see a count
//! under the limit; a refused request counts too. A window starts with a
//! client's first request and ends `window` seconds after its last one.

use std::net::IpAddr;

/// How many requests of one kind a client address, and an account, may
/// make per window.
#[derive(Debug, Clone, Copy)]
pub struct ClientLimits {
    /// Requests per window.
    pub per_window: u32,
    /// The window, in seconds.
    pub window: i64,
}

/// Counts one request of `action` by `peer` for `account`: `Ok(None)`
/// when within the limits, `Ok(Some(seconds))` to wait when over one,
/// `Err(())` when the database did not answer (logged).
pub async fn count(
    db: &plinth_store::Db,
    limits: ClientLimits,
    peer: Option<IpAddr>,
    action: &str,
    account: Option<&str>,
) -> Result<Option<i64>, ()> {
    let mut keys = Vec::new();
    if let Some(ip) = peer {
        keys.push(format!("plinth-serve:limit:{action}:ip:{ip}"));
    }
    if let Some(account) = account.map(str::trim).filter(|a| !a.is_empty()) {
        let account: String = account.to_lowercase().chars().take(320).collect();
        keys.push(format!("plinth-serve:limit:{action}:account:{account}"));
    }
    let db = db.clone();
    let verdict = tokio::task::spawn_blocking(move || {
        db.with_unit(|u| {
            let now = u.now();
            let mut wait = None;
            for key in &keys {
                let before = u.get_failures(key)?;
                if before.count > 0 && now - before.last_at >= limits.window {
                    u.clear_failures(key)?;
                }
                // The increment is the check: its count is exact however
                // many requests race on the key.
                if u.record_failure(key)?.count > limits.per_window {
                    wait = Some(limits.window);
                }
            }
            Ok(wait)
        })
    })
    .await;
    match verdict {
        Ok(Ok(wait)) => Ok(wait),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "cannot count a request against the client limits");
            Err(())
        }
        Err(_) => Err(()),
    }
}
