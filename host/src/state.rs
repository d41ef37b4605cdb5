//! What one call's `Store` holds.

use std::sync::Arc;
use std::time::Instant;

use plinth_store::Db;

use crate::capabilities::http::HttpSlot;
use crate::capabilities::wasi::WasiSlot;
use crate::capabilities::{DatabaseCtx, PluginMeta};

/// The data of an instance's `Store` (one call's, or several calls' in turn
/// for a plugin that reuses instances): one context per kind of capability
/// — the database side (the plugin's identity and grants, the current call's
/// unit of work), a WASI context that grants nothing, a `wasi:http` one that
/// sends nothing — and the memory
/// limiter. A capability's host functions see only the part they need,
/// through its view.
pub struct CallState {
    /// The database side of the call.
    pub database: DatabaseCtx,
    pub(crate) wasi: WasiSlot,
    /// `wasi:http`'s context (its resources are in `wasi`'s table).
    pub(crate) http: HttpSlot,
    pub(crate) limiter: MemoryLimiter,
    /// When the current call must end: what bounds the host's waits (WASI
    /// polls, the database's write lock) as the epoch deadline bounds wasm.
    pub(crate) deadline: Option<Instant>,
}

impl CallState {
    pub(crate) fn new(plugin: Arc<PluginMeta>, db: Db, memory_limit: usize) -> Self {
        Self {
            database: DatabaseCtx::new(plugin, db),
            wasi: WasiSlot::default(),
            http: HttpSlot::default(),
            limiter: MemoryLimiter::new(memory_limit),
            deadline: None,
        }
    }

    /// Starts a call that must end by `deadline`.
    pub(crate) fn start_call(&mut self, deadline: Instant) {
        self.deadline = Some(deadline);
        self.database.start_call(deadline);
    }

    /// When the current call must end, if a call is running.
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }
}

/// Caps the linear memory of a call's instance and remembers whether the
/// guest tried to go past it.
#[derive(Debug)]
pub(crate) struct MemoryLimiter {
    limit: usize,
    /// Bytes held by all the instance's memories together.
    pub(crate) used: usize,
    pub(crate) exceeded: bool,
}

impl MemoryLimiter {
    fn new(limit: usize) -> Self {
        Self {
            limit,
            used: 0,
            exceeded: false,
        }
    }
}

impl wasmtime::ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let total = self.used.saturating_sub(current).saturating_add(desired);
        if total > self.limit {
            self.exceeded = true;
            wasmtime::bail!(
                "memory limit of {} bytes exceeded (the instance asked for {total})",
                self.limit
            );
        }
        self.used = total;
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 100_000)
    }
}
