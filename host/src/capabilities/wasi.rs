//! WASI 0.2, linked for every plugin with nothing in it: no preopened
//! directories, no environment, no arguments, no network; stdout and stderr
//! go to `tracing` under the plugin's name. Guests built for wasm32-wasip2
//! import parts of it even when they never use them.

use std::sync::Arc;

use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::capability::{Capability, Gate, Interface};
use crate::state::CallState;

/// Every `wasi:` interface.
pub const WASI: Interface = Interface {
    name: "wasi:*",
    summary: "WASI 0.2, nothing granted (no files, environment, arguments or network)",
    gate: Gate::Open,
    functions: &[],
};

/// The capability: links WASI 0.2 (synchronous).
pub const CAPABILITY: Capability = Capability {
    interfaces: &[WASI],
    add_to_linker: |linker| wasmtime_wasi::p2::add_to_linker_sync(linker),
};

/// A call's WASI context, built on first use: most calls never touch WASI,
/// and building one seeds two random generators.
#[derive(Default)]
pub struct WasiSlot {
    ctx: Option<WasiCtx>,
    table: ResourceTable,
}

impl WasiSlot {
    /// The context, built now if this call has none yet.
    fn view(&mut self, plugin: &Arc<str>) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: self.ctx.get_or_insert_with(|| empty_ctx(plugin)),
            table: &mut self.table,
        }
    }
}

/// A WASI context that grants nothing; stdout and stderr go to `tracing`.
fn empty_ctx(plugin: &Arc<str>) -> WasiCtx {
    WasiCtx::builder()
        .stdout(crate::stdio::GuestOutput::new(plugin.clone(), "stdout"))
        .stderr(crate::stdio::GuestOutput::new(plugin.clone(), "stderr"))
        .allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false)
        .build()
}

impl WasiView for CallState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        self.wasi.view(&self.database.plugin.log_name)
    }
}
