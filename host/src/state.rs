//! What one call's `Store` holds.

use std::sync::Arc;

use plinth_store::{Db, Unit};
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::grants::Grants;

/// What the runtime knows of a loaded plugin, shared by all its calls.
#[derive(Debug)]
pub(crate) struct PluginMeta {
    pub(crate) name: String,
    pub(crate) grants: Grants,
    /// The name again, shared by the output streams of every call.
    pub(crate) log_name: Arc<str>,
}

/// The data of an instance's `Store` (one call's, or several calls' in turn
/// for a plugin that reuses instances): the plugin's identity and grants, the
/// current call's unit of work (a pooled connection, opened on first use), a WASI
/// context that grants nothing (built on first use: most calls never touch
/// WASI, and building one seeds two random generators), and the memory
/// limiter.
pub struct CallState {
    pub(crate) plugin: Arc<PluginMeta>,
    pub(crate) db: Db,
    unit: Option<Unit>,
    wasi: Option<WasiCtx>,
    table: ResourceTable,
    pub(crate) limiter: MemoryLimiter,
}

impl CallState {
    pub(crate) fn new(plugin: Arc<PluginMeta>, db: Db, memory_limit: usize) -> Self {
        Self {
            plugin,
            db,
            unit: None,
            wasi: None,
            table: ResourceTable::new(),
            limiter: MemoryLimiter::new(memory_limit),
        }
    }

    /// The call's WASI context: no preopened directories, no environment, no
    /// arguments, no network; stdout and stderr go to `tracing`.
    fn wasi_ctx(plugin: &PluginMeta) -> WasiCtx {
        WasiCtx::builder()
            .stdout(crate::stdio::GuestOutput::new(
                plugin.log_name.clone(),
                "stdout",
            ))
            .stderr(crate::stdio::GuestOutput::new(
                plugin.log_name.clone(),
                "stderr",
            ))
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build()
    }

    /// The call's unit of work, started on first use.
    pub(crate) fn unit(&mut self) -> plinth_store::Result<&mut Unit> {
        match &mut self.unit {
            Some(unit) => Ok(unit),
            slot => Ok(slot.insert(self.db.unit()?)),
        }
    }

    /// Commits what the call wrote, ending its unit of work: the next call
    /// on the same instance (when the plugin reuses instances) starts its own.
    pub(crate) fn commit(&mut self) -> plinth_store::Result<()> {
        match self.unit.take() {
            Some(unit) => unit.commit(),
            None => Ok(()),
        }
    }
}

impl WasiView for CallState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        let plugin = &self.plugin;
        WasiCtxView {
            ctx: self.wasi.get_or_insert_with(|| Self::wasi_ctx(plugin)),
            table: &mut self.table,
        }
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
