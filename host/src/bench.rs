//! The typed face of the bench plugin, used by the benchmarks to isolate
//! one cost at a time.

use std::time::{Duration, Instant};

use crate::Result;
use crate::bindings::bench::{Bench, BenchPre};

crate::plugin::typed_plugin!(
    /// A plugin known to export the `plinth:test/bench` world.
    BenchPlugin, BenchPre, Bench, "plinth:test/bench"
);

impl BenchPlugin {
    /// A fresh instance and one call of an empty export.
    ///
    /// # Errors
    /// The call errors of [`Error`](crate::Error).
    pub fn noop(&self) -> Result<()> {
        self.call("noop", |i, s| i.call_noop(s))
    }

    /// Argon2id (19456 KiB, t=2, p=1) inside the guest.
    ///
    /// # Errors
    /// The call errors of [`Error`](crate::Error).
    pub fn argon2_hash(&self, password: &str) -> Result<u64> {
        self.call("argon2-hash", |i, s| i.call_argon2_hash(s, password))
    }

    /// `times` lookups by email inside one call; how many found the user.
    ///
    /// # Errors
    /// The call errors of [`Error`](crate::Error); the guest's own error as the inner result.
    pub fn lookup_by_email(&self, email: &str, times: u32) -> Result<Result<u32, String>> {
        self.call("lookup-by-email", |i, s| {
            i.call_lookup_by_email(s, email, times)
        })
    }

    /// Instantiates once, then calls the empty export `calls` times on that
    /// live instance; returns the time the calls took (not the instantiation).
    ///
    /// # Errors
    /// The call errors of [`Error`](crate::Error).
    pub fn time_live_calls(&self, calls: u32) -> Result<Duration> {
        self.call("noop", |i, s| {
            let started = Instant::now();
            for _ in 0..calls {
                i.call_noop(&mut *s)?;
            }
            Ok(started.elapsed())
        })
    }
}
