//! What one call's `Store` holds.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use plinth_store::Db;

use crate::capabilities::clock::ClockCtx;
use crate::capabilities::http::HttpSlot;
use crate::capabilities::keyvalue::KeyValueCtx;
use crate::capabilities::wasi::WasiSlot;
use crate::capabilities::{DatabaseCtx, PluginMeta};
use crate::capability::{Interface, View};

/// The data of an instance's `Store` (one call's, or several calls' in turn
/// for a plugin that reuses instances), composed as wasmtime's `WasiCtx` is
/// of per-interface contexts: who is calling (the plugin's identity, grants
/// and limits) and the current call's deadline, which every capability's
/// view reads; then one context per capability — the database side (the
/// unit of work), the clock (the call's offset), `wasi:keyvalue`'s handles
/// (a resource table of their own), a WASI context that grants nothing, a
/// `wasi:http` one that sends nothing, and the embedder's capabilities'
/// state — and the memory limiter. A capability's host functions see only
/// the part they need, through its view.
///
/// An embedder's capability keeps its state here by type: [`view`](Self::view)
/// makes the view its `add_to_linker` hands to its host functions, and the
/// embedder reads or seeds the state around a call with
/// [`state`](Self::state) and [`insert_state`](Self::insert_state) (through
/// [`Plugin::call_with_store`](crate::Plugin::call_with_store)).
/// Like the instance, the state outlives a call only when the plugin
/// reuses instances. `host/examples/custom_capability.rs` is a capability
/// written so.
///
/// The slot is a map from a type to its one value, not a type parameter of
/// `CallState`: a runtime serves any number of capabilities, each written
/// without knowing the others, and `Runtime`, `Plugin`, `Capability` and
/// every typed face keep naming one `CallState`. A capability's state is
/// its own type (a newtype if need be), so the type is the key.
pub struct CallState {
    /// Who is calling.
    pub(crate) plugin: Arc<PluginMeta>,
    /// When the current call must end: what bounds the host's waits (WASI
    /// polls, the database's write lock) as the epoch deadline bounds wasm.
    pub(crate) deadline: Option<Instant>,
    /// The database side of the call.
    pub(crate) database: DatabaseCtx,
    /// The call's clock.
    pub(crate) clock: ClockCtx,
    /// The instance's open `wasi:keyvalue` buckets and CAS handles.
    pub(crate) keyvalue: KeyValueCtx,
    pub(crate) wasi: WasiSlot,
    /// `wasi:http`'s context (its resources are in `wasi`'s table).
    pub(crate) http: HttpSlot,
    /// The embedder's capabilities' state, by type.
    embedder: HashMap<TypeId, Box<dyn Any + Send>>,
    pub(crate) limiter: MemoryLimiter,
}

impl CallState {
    pub(crate) fn new(plugin: Arc<PluginMeta>, db: Db, memory_limit: usize) -> Self {
        Self {
            plugin,
            deadline: None,
            clock: ClockCtx::new(db.clock().clone()),
            database: DatabaseCtx::new(db),
            keyvalue: KeyValueCtx::default(),
            wasi: WasiSlot::default(),
            http: HttpSlot::default(),
            embedder: HashMap::new(),
            limiter: MemoryLimiter::new(memory_limit),
        }
    }

    /// Starts a call that must end by `deadline`, its clock back at the
    /// database's.
    pub(crate) fn start_call(&mut self, deadline: Instant) {
        self.deadline = Some(deadline);
        self.clock.start_call();
    }

    /// When the current call must end, if a call is running.
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// What the host functions of an embedder's `interface` see: the caller
    /// (to check its grant) and the state of type `T`, made with
    /// `T::default()` the first time a call of this instance reaches it.
    /// A capability's `add_to_linker` passes it as the bindings' getter,
    /// with [`HasView<T>`](crate::capability::HasView) as their `HasData`.
    pub fn view<T: Default + Send + 'static>(
        &mut self,
        interface: &'static Interface,
    ) -> View<'_, T> {
        let state = self
            .embedder
            .entry(TypeId::of::<T>())
            .or_insert_with(|| Box::new(T::default()));
        View::new(&self.plugin, interface, downcast_mut(state))
    }

    /// What a test capability's `interface` sees of the call's clock: the
    /// caller and the [`ClockCtx`], to move it.
    pub fn clock_view(&mut self, interface: &'static Interface) -> View<'_, ClockCtx> {
        View::new(&self.plugin, interface, &mut self.clock)
    }

    /// The embedder state of type `T`, if a host function or
    /// [`insert_state`](Self::insert_state) made it.
    pub fn state<T: 'static>(&self) -> Option<&T> {
        self.embedder
            .get(&TypeId::of::<T>())
            .and_then(|s| s.downcast_ref())
    }

    /// Sets the embedder state of type `T` (before a call, to seed what its
    /// host functions see), returning the value it replaces.
    pub fn insert_state<T: Send + 'static>(&mut self, value: T) -> Option<T> {
        self.embedder
            .insert(TypeId::of::<T>(), Box::new(value))
            .and_then(|old| old.downcast().ok())
            .map(|old| *old)
    }
}

/// The value of an entry that was made for its key's type.
fn downcast_mut<T: 'static>(state: &mut Box<dyn Any + Send>) -> &mut T {
    match state.downcast_mut() {
        Some(state) => state,
        // Every entry is inserted under its own type's id.
        None => unreachable!("embedder state stored under another type's id"),
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
