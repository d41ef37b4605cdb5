//! The typed face of the bench plugin, used by the benchmarks to isolate
//! one cost at a time.

use std::time::{Duration, Instant};

use plinth_host::Result;

use crate::bindings::bench::BenchPre;

plinth_host::typed_plugin!(
    /// A plugin known to export the `plinth:test/bench` world.
    BenchPlugin, BenchPre<plinth_host::CallState>, "plinth:test/bench", None
);

impl BenchPlugin {
    /// A fresh instance and one call of an empty export.
    ///
    /// # Errors
    /// The call errors of [`Error`](plinth_host::Error).
    pub fn noop(&self) -> Result<()> {
        self.call_export::<(), ()>("noop", ())
    }

    /// Argon2id (19456 KiB, t=2, p=1) inside the guest, by the guests' SIMD128
    /// implementation; the first 8 bytes of the tag.
    ///
    /// # Errors
    /// The call errors of [`Error`](plinth_host::Error).
    pub fn argon2_hash(&self, password: &str) -> Result<u64> {
        self.call_one("argon2-hash", (password,))
    }

    /// The same as [`BenchPlugin::argon2_hash`], by the `argon2` crate
    /// compiled to scalar wasm.
    ///
    /// # Errors
    /// The call errors of [`Error`](plinth_host::Error).
    pub fn argon2_crate_hash(&self, password: &str) -> Result<u64> {
        self.call_one("argon2-crate-hash", (password,))
    }

    /// Argon2id (version 0x13) with any parameters inside the guest, by the
    /// guests' SIMD128 implementation: the raw tag, or the guest's reason.
    ///
    /// # Errors
    /// The call errors of [`Error`](plinth_host::Error).
    pub fn argon2id(
        &self,
        password: &[u8],
        salt: &[u8],
        (m_cost, t_cost, p_cost): (u32, u32, u32),
        out_len: u32,
    ) -> Result<Result<Vec<u8>, String>> {
        self.call_one(
            "argon2id",
            (password, salt, m_cost, t_cost, p_cost, out_len),
        )
    }

    /// `times` lookups by email inside one call; how many found the user.
    ///
    /// # Errors
    /// The call errors of [`Error`](plinth_host::Error); the guest's own error as the inner result.
    pub fn lookup_by_email(&self, email: &str, times: u32) -> Result<Result<u32, String>> {
        self.call_one("lookup-by-email", (email, times))
    }

    /// Makes the guest panic with `message`.
    ///
    /// # Errors
    /// [`Error::Trap`](plinth_host::Error::Trap), naming the plugin and the function.
    pub fn panic_with(&self, message: &str) -> Result<()> {
        self.call_export("panic-with", (message,))
    }

    /// Runs the guests' heap checks in a fresh instance: the memory's size in
    /// wasm pages at the end, or the first check that failed.
    ///
    /// # Errors
    /// The call errors of [`Error`](plinth_host::Error).
    pub fn heap_check(&self) -> Result<Result<u32, String>> {
        self.call_one("heap-check", ())
    }

    /// Instantiates once, then calls the empty export `calls` times on that
    /// live instance; returns the time the calls took (not the instantiation).
    ///
    /// # Errors
    /// The call errors of [`Error`](plinth_host::Error).
    pub fn time_live_calls(&self, calls: u32) -> Result<Duration> {
        self.plugin.call_with_store("noop", |store| {
            let instance = self.plugin.instantiate(store)?;
            let noop = instance.get_typed_func::<(), ()>(&mut *store, "noop")?;
            let started = Instant::now();
            for _ in 0..calls {
                noop.call(&mut *store, ())?;
            }
            Ok(started.elapsed())
        })
    }
}
