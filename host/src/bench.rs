//! The typed face of the bench plugin, used by the benchmarks to isolate
//! one cost at a time.

use std::time::{Duration, Instant};

use crate::Result;
use crate::bindings::bench::{Bench, BenchPre};
use crate::plugin::Plugin;
use crate::state::CallState;

/// A plugin known to export the `plinth:test/bench` world.
#[derive(Clone)]
pub struct BenchPlugin {
    plugin: Plugin,
    pre: BenchPre<CallState>,
}

impl BenchPlugin {
    /// Checks that `plugin` exports the bench world.
    ///
    /// # Errors
    /// [`Error::WrongExports`](crate::Error::WrongExports) when it does not.
    pub fn new(plugin: Plugin) -> Result<Self> {
        let pre = plugin.typed("plinth:test/bench", BenchPre::new)?;
        Ok(Self { plugin, pre })
    }

    fn call<R>(
        &self,
        function: &str,
        f: impl FnOnce(&Bench, &mut wasmtime::Store<CallState>) -> wasmtime::Result<R>,
    ) -> Result<R> {
        self.plugin.call(function, |store| {
            let instance = self.pre.instantiate(&mut *store)?;
            f(&instance, store)
        })
    }

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

impl From<BenchPlugin> for Plugin {
    fn from(b: BenchPlugin) -> Plugin {
        b.plugin
    }
}
