//! A loaded plugin, and how one call of it runs.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use plinth_store::pool::Pool;
use wasmtime::component::{Component, ComponentNamedList, Instance, InstancePre, Lift, Lower};
use wasmtime::{Store, Trap};
use wasmtime_wasi_http::p2::bindings::sync::ProxyIndices;

use crate::capabilities::PluginMeta;
use crate::error::boxed;
use crate::manifest::{Limits, Manifest, Reuse};
use crate::runtime::{EPOCH_TICK, Runtime};
use crate::state::CallState;
use crate::{Error, Result};

/// Declares the typed face of a plugin world, the way an embedder writes one
/// for their own plugin: a struct holding the [`Plugin`], `new` (which checks
/// the world's exports once), `plugin`, and private `call_export` /
/// `call_one` that call one export by name with typed parameters and
/// results (in a fresh instance, or an idle one when the manifest allows
/// [`Reuse`]).
///
/// The arguments: the struct's docs and name, the `…Pre` type that
/// `wasmtime::component::bindgen!` generates for the world, the world's WIT
/// name, and the exported interface holding the functions (`None` for a
/// world whose functions are exported at the top level).
///
/// ```no_run
/// mod bindings {
///     wasmtime::component::bindgen!({
///         inline: "
///             package acme:greeter;
///             world greeter { export greet: func(name: string) -> string; }
///         ",
///     });
/// }
///
/// plinth_host::typed_plugin!(
///     /// The acme greeter.
///     Greeter, bindings::GreeterPre<plinth_host::CallState>, "acme:greeter/greeter", None
/// );
///
/// impl Greeter {
///     /// `greet`.
///     pub fn greet(&self, name: &str) -> plinth_host::Result<String> {
///         self.call_one("greet", (name,))
///     }
/// }
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let runtime = plinth_host::Runtime::new(plinth_store::Db::open("app.db")?)?;
/// let plugin = runtime.load_file("greeter.wasm".as_ref(), plinth_host::Manifest::new("greeter"))?;
/// let greeter = Greeter::new(plugin)?;
/// println!("{}", greeter.greet("ada")?);
/// # Ok(())
/// # }
/// ```
#[macro_export]
macro_rules! typed_plugin {
    ($(#[$doc:meta])* $name:ident, $pre:ty, $wit:literal, $interface:expr) => {
        $(#[$doc])*
        #[derive(Clone)]
        pub struct $name {
            plugin: $crate::Plugin,
        }

        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_tuple(stringify!($name)).field(&self.plugin).finish()
            }
        }

        #[allow(dead_code)]
        impl $name {
            #[doc = concat!("Checks that `plugin` exports the `", $wit, "` world.")]
            ///
            /// # Errors
            /// [`Error::WrongExports`]($crate::Error::WrongExports) when it does not.
            pub fn new(plugin: $crate::Plugin) -> $crate::Result<Self> {
                // Building the world's pre-instance type-checks every export
                // once, here; calls then bind only the export they call.
                plugin.typed($wit, <$pre>::new)?;
                Ok(Self { plugin })
            }

            /// The underlying plugin.
            pub fn plugin(&self) -> &$crate::Plugin {
                &self.plugin
            }

            /// Calls one export of the world, binding only that one.
            fn call_export<P, R>(&self, function: &str, params: P) -> $crate::Result<R>
            where
                P: $crate::wasmtime::component::ComponentNamedList + $crate::wasmtime::component::Lower + Send + Sync,
                R: $crate::wasmtime::component::ComponentNamedList + $crate::wasmtime::component::Lift + Send + Sync + 'static,
            {
                self.plugin.call_export($wit, $interface, function, params)
            }

            /// [`call_export`](Self::call_export) for an export with one result.
            fn call_one<P, R>(&self, function: &str, params: P) -> $crate::Result<R>
            where
                P: $crate::wasmtime::component::ComponentNamedList + $crate::wasmtime::component::Lower + Send + Sync,
                R: $crate::wasmtime::component::ComponentType + $crate::wasmtime::component::Lift + Send + Sync + 'static,
            {
                self.call_export::<P, (R,)>(function, params).map(|(r,)| r)
            }
        }
    };
}

/// A loaded plugin: compiled, checked against its grants, linked and
/// type-checked once. Cheap to clone. By default every call gets a fresh
/// instance in a fresh `Store`, so calls share nothing but the database; a
/// plugin whose manifest opts into [`Reuse`] serves calls from live
/// instances, each call still its own unit of work.
#[derive(Clone)]
pub struct Plugin {
    inner: Arc<PluginInner>,
}

struct PluginInner {
    runtime: Runtime,
    meta: Arc<PluginMeta>,
    limits: Limits,
    reuse: Option<Reuse>,
    from_cache: bool,
    /// The cache entry still to write (with `defer_cache_writes`).
    unsaved: std::sync::Mutex<Option<crate::cache::Entry>>,
    component: Component,
    pre: InstancePre<CallState>,
    /// Where its `wasi:http/incoming-handler` export is, when it has one of
    /// the right type.
    http: Option<ProxyIndices>,
    /// Live instances waiting for a call (only with `reuse`), each thread
    /// preferring the one it used last.
    idle: Pool<Live>,
    /// Instances made so far, for tests and monitoring.
    instantiations: AtomicU64,
}

/// An instance kept between calls, in its own `Store`.
struct Live {
    store: Store<CallState>,
    instance: Instance,
    /// Calls it has served.
    calls: u32,
}

impl std::fmt::Debug for Plugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plugin")
            .field("name", &self.inner.meta.name)
            .field("grants", &self.inner.meta.grants)
            .field("limits", &self.inner.limits)
            .finish_non_exhaustive()
    }
}

impl Plugin {
    pub(crate) fn load(
        runtime: Runtime,
        bytes: &[u8],
        manifest: Manifest,
        source: Option<(&std::path::Path, &std::fs::Metadata)>,
    ) -> Result<Self> {
        let name = manifest.name.clone();
        // An approval is for one build: these bytes and these migrations.
        if let Some(approved) = &manifest.identity {
            let found = crate::Identity::of(bytes, &manifest.migrations);
            let changed = approved.changes(&found);
            if !changed.is_empty() {
                return Err(Error::NotTheApprovedBuild {
                    plugin: name,
                    changed,
                });
            }
        }
        // By names and versions, before the compile: a refusal is immediate
        // however large the component.
        let imports =
            crate::imports::component_imports(bytes).map_err(|e| Error::InvalidComponent {
                plugin: name.clone(),
                source: e.into(),
            })?;
        crate::imports::check(runtime.registry(), &manifest, &imports)?;
        let (component, compiled) = compile(&runtime, &name, bytes, source)?;
        let (from_cache, unsaved) = match compiled {
            Compiled::FromCache => (true, None),
            Compiled::Fresh(entry) => (false, entry),
        };
        let link_err = |e: wasmtime::Error| Error::Link {
            plugin: name.clone(),
            source: boxed(e),
        };
        let linker = &runtime.inner.linker;
        let pre = linker.instantiate_pre(&component).map_err(link_err)?;
        let http = ProxyIndices::new(&pre).ok();
        migrate(runtime.db(), &manifest)?;
        tracing::info!(plugin = %name, from_cache, "loaded");
        let public_url = runtime.inner.options.public_url.as_deref().map(Arc::from);
        Ok(Self {
            inner: Arc::new(PluginInner {
                runtime,
                meta: Arc::new(PluginMeta {
                    row_limit: manifest.limits.rows,
                    data_bytes: manifest.limits.data_bytes,
                    memory_bytes: manifest.limits.memory_bytes,
                    log_name: manifest.name.as_str().into(),
                    public_url,
                    name: manifest.name,
                    grants: manifest.grants,
                }),
                limits: manifest.limits,
                reuse: manifest.reuse,
                from_cache,
                unsaved: std::sync::Mutex::new(unsaved),
                component,
                pre,
                http,
                idle: Pool::new(manifest.reuse.map_or(0, |r| r.idle)),
                instantiations: AtomicU64::new(0),
            }),
        })
    }

    /// The plugin's name, from its manifest.
    pub fn name(&self) -> &str {
        &self.inner.meta.name
    }

    /// Its grants.
    pub fn grants(&self) -> &crate::Grants {
        &self.inner.meta.grants
    }

    /// Its per-call limits.
    pub fn limits(&self) -> Limits {
        self.inner.limits
    }

    /// Whether and how its instances serve more than one call.
    pub fn reuse(&self) -> Option<Reuse> {
        self.inner.reuse
    }

    /// How many instances this plugin has made: one per call by default;
    /// with [`Reuse`], one per call that found no idle instance.
    pub fn instantiations(&self) -> u64 {
        self.inner.instantiations.load(Ordering::Relaxed)
    }

    /// How many live instances wait for a call (always 0 without [`Reuse`]).
    pub fn idle_instances(&self) -> usize {
        self.inner.idle.len()
    }

    /// Whether the compiled code came from the disk cache.
    pub fn loaded_from_cache(&self) -> bool {
        self.inner.from_cache
    }

    /// Writes the compiled code to the runtime's cache, when it was compiled
    /// by this load and the runtime defers cache writes
    /// ([`RuntimeOptions::defer_cache_writes`](crate::RuntimeOptions::defer_cache_writes)):
    /// a tool calls it once what it was asked to do is known to be valid.
    /// Otherwise (and the second time) it does nothing.
    pub fn write_cache(&self) {
        let pending = self
            .inner
            .unsaved
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(entry) = pending {
            crate::cache::store(&self.inner.component, &entry);
        }
    }

    pub(crate) fn engine(&self) -> &wasmtime::Engine {
        self.inner.runtime.engine()
    }

    /// A fresh instance of the plugin in `store`, for a body given to
    /// [`call_with_store`](Self::call_with_store).
    ///
    /// # Errors
    /// wasmtime's, when instantiating fails (out of instance slots, a trap
    /// in the component's start).
    pub fn instantiate(&self, store: &mut Store<CallState>) -> wasmtime::Result<Instance> {
        self.inner.instantiations.fetch_add(1, Ordering::Relaxed);
        self.inner.pre.instantiate(store)
    }

    /// Whether it exports `wasi:http/incoming-handler` 0.2 (of the type the
    /// standard gives it), which [`handle_http`](Self::handle_http) calls.
    pub fn handles_http(&self) -> bool {
        self.inner.http.is_some()
    }

    /// Where its `wasi:http/incoming-handler` export is, or why it has none
    /// that can be called.
    pub(crate) fn http_handler(&self) -> Result<&ProxyIndices> {
        self.inner.http.as_ref().ok_or_else(|| Error::WrongExports {
            plugin: self.name().to_string(),
            world: crate::http::WORLD,
            source: match ProxyIndices::new(&self.inner.pre) {
                Err(e) => boxed(e),
                Ok(_) => "its wasi:http/incoming-handler was not found at load".into(),
            },
        })
    }

    /// The compiled component.
    pub fn component(&self) -> &Component {
        &self.inner.component
    }

    /// The names of the component's imports (interfaces, with versions).
    pub fn imports(&self) -> Vec<String> {
        let engine = self.inner.runtime.engine();
        let ty = self.inner.component.component_type();
        ty.imports(engine)
            .filter(|(_, item)| {
                !matches!(item.ty, wasmtime::component::types::ComponentItem::Type(_))
            })
            .map(|(name, _)| name.to_string())
            .collect()
    }

    /// The names of the component's exports.
    pub fn exports(&self) -> Vec<String> {
        let engine = self.inner.runtime.engine();
        let ty = self.inner.component.component_type();
        ty.exports(engine)
            .map(|(name, _)| name.to_string())
            .collect()
    }

    /// Builds a world's typed pre-instance from this plugin (`make` is the
    /// `…Pre::new` that `bindgen!` generates), or says which world's exports
    /// are missing. [`typed_plugin!`](crate::typed_plugin) calls it once, in
    /// a face's `new`.
    ///
    /// # Errors
    /// [`Error::WrongExports`] naming `world`.
    pub fn typed<P>(
        &self,
        world: &'static str,
        make: impl FnOnce(InstancePre<CallState>) -> wasmtime::Result<P>,
    ) -> Result<P> {
        make(self.inner.pre.clone()).map_err(|e| Error::WrongExports {
            plugin: self.name().to_string(),
            world,
            source: boxed(e),
        })
    }

    /// Calls export `function` (of the exported instance `interface`, or a
    /// top-level function), binding and type-checking only that function:
    /// binding every export of a world costs a type check per export on
    /// every call (~5 µs for auth's eleven). The call is a unit of work; see
    /// [`Plugin`].
    ///
    /// # Errors
    /// [`Error::WrongExports`] when there is no such export or its type is
    /// not `P -> R`; the call errors: [`Error::Trap`], [`Error::TimedOut`],
    /// [`Error::MemoryLimit`], [`Error::Commit`].
    pub fn call_export<P, R>(
        &self,
        world: &'static str,
        interface: Option<&str>,
        function: &str,
        params: P,
    ) -> Result<R>
    where
        P: ComponentNamedList + Lower + Send + Sync,
        R: ComponentNamedList + Lift + Send + Sync + 'static,
    {
        let component = &self.inner.component;
        let index = match interface {
            Some(name) => component
                .get_export_index(None, name)
                .and_then(|parent| component.get_export_index(Some(&parent), function)),
            None => component.get_export_index(None, function),
        };
        let Some(index) = index else {
            return Err(Error::WrongExports {
                plugin: self.name().to_string(),
                world,
                source: format!(
                    "no export `{function}`{}",
                    interface.map(|i| format!(" in `{i}`")).unwrap_or_default()
                )
                .into(),
            });
        };
        self.call_instance(function, |store, instance| {
            let func = instance.get_typed_func::<P, R>(&mut *store, &index)?;
            func.call(&mut *store, params)
        })
    }

    /// Runs one call of export `function`: `body` calls it on an instance of
    /// the plugin, a fresh one or, when the manifest allows [`Reuse`], an
    /// idle one. The call is a unit of work, limited, committed or rolled
    /// back as every call is.
    ///
    /// # Errors
    /// The call errors: [`Error::Trap`] (whatever `body` returns as an error
    /// is reported as the call's trap), [`Error::TimedOut`],
    /// [`Error::MemoryLimit`], [`Error::Commit`].
    pub fn call_instance<R>(
        &self,
        function: &str,
        body: impl FnOnce(&mut Store<CallState>, Instance) -> wasmtime::Result<R>,
    ) -> Result<R> {
        match self.inner.reuse {
            None => self.call_with_store(function, |store| {
                let instance = self.instantiate(store)?;
                body(store, instance)
            }),
            Some(reuse) => self.call_reusing(reuse, function, body),
        }
    }

    /// Runs one call of export `function` in a fresh `Store` with the
    /// plugin's memory and time limits: `body` instantiates (with
    /// [`instantiate`](Self::instantiate)) and calls, as often as it likes
    /// (a benchmark times calls on one live instance this way); the call's
    /// writes are committed when it returned normally, rolled back
    /// otherwise.
    ///
    /// # Errors
    /// As [`call_instance`](Self::call_instance).
    pub fn call_with_store<R>(
        &self,
        function: &str,
        body: impl FnOnce(&mut Store<CallState>) -> wasmtime::Result<R>,
    ) -> Result<R> {
        self.traced(function, || {
            let mut store = self.new_store();
            self.run(function, &mut store, body)
        })
    }

    /// [`call`](Self::call) on an idle instance when there is one, a fresh
    /// one otherwise; the instance goes back to the idle list when the call
    /// succeeded and [`Reuse`] allows.
    fn call_reusing<R>(
        &self,
        reuse: Reuse,
        function: &str,
        body: impl FnOnce(&mut Store<CallState>, Instance) -> wasmtime::Result<R>,
    ) -> Result<R> {
        self.traced(function, || {
            let live = self.inner.idle.take();
            let (mut store, mut instance, calls) = match live {
                Some(live) => (live.store, Some(live.instance), live.calls),
                None => (self.new_store(), None, 0),
            };
            let result = self.run(function, &mut store, |store| {
                let instance = match instance {
                    Some(i) => i,
                    None => *instance.insert(self.instantiate(store)?),
                };
                body(store, instance)
            });
            let calls = calls.saturating_add(1);
            if let (Ok(_), Some(instance)) = (&result, instance)
                && calls < reuse.max_calls
                && store.data().limiter.used <= reuse.max_memory_bytes
            {
                // A surplus instance comes back, to be torn down here,
                // outside the pool's lock.
                drop(self.inner.idle.put(Live {
                    store,
                    instance,
                    calls,
                }));
            }
            result
        })
    }

    /// A `Store` with the plugin's memory limit and its epoch interruption.
    fn new_store(&self) -> Store<CallState> {
        let inner = &self.inner;
        let state = CallState::new(
            inner.meta.clone(),
            inner.runtime.db().clone(),
            inner.limits.memory_bytes,
        );
        let mut store = Store::new(inner.runtime.engine(), state);
        store.limiter(|s| &mut s.limiter);
        store.epoch_deadline_trap();
        store
    }

    /// Runs `work` (one call of `function`) in the call's tracing span, and
    /// logs its duration and outcome.
    fn traced<R>(&self, function: &str, work: impl FnOnce() -> Result<R>) -> Result<R> {
        let span = tracing::info_span!("plugin_call", plugin = %self.inner.meta.name, function);
        let _enter = span.enter();
        let started = Instant::now();
        let result = work();
        let micros = started.elapsed().as_micros();
        match &result {
            Ok(_) => tracing::debug!(micros, "ok"),
            Err(e) => tracing::warn!(micros, error = %e, "failed"),
        }
        result
    }

    /// One call in `store`: the time limit starts now, `body` runs, and the
    /// call's unit of work commits if it returned normally. Otherwise the
    /// error is classified, and the unit is rolled back when the store is
    /// dropped (a store that failed is never used again).
    fn run<R>(
        &self,
        function: &str,
        store: &mut Store<CallState>,
        body: impl FnOnce(&mut Store<CallState>) -> wasmtime::Result<R>,
    ) -> Result<R> {
        store.set_epoch_deadline(deadline_ticks(self.inner.limits.time));
        let deadline = Instant::now() + self.inner.limits.time;
        store.data_mut().start_call(deadline);
        match body(store) {
            // Returned past the limit (the epoch is checked at intervals; a
            // guest can catch a statement's `timed-out` and write on before
            // it traps): the same as the epoch's interrupt, nothing committed.
            Ok(_) if Instant::now() >= deadline => {
                Err(self.classify(function, store, Trap::Interrupt.into()))
            }
            // Written past the limit by the call's last operation: no
            // commit; the unit rolls back when the store is dropped.
            Ok(_) if store.data().rows_over_limit().is_some() => Err(Error::RowLimit {
                plugin: self.inner.meta.name.clone(),
                function: function.to_string(),
                limit: self.inner.limits.rows,
            }),
            Ok(value) => store
                .data_mut()
                .database
                .commit()
                .map(|()| value)
                .map_err(|source| Error::Commit {
                    plugin: self.inner.meta.name.clone(),
                    function: function.to_string(),
                    source: Box::new(source),
                }),
            Err(e) => Err(self.classify(function, store, e)),
        }
    }

    fn classify(&self, function: &str, store: &Store<CallState>, e: wasmtime::Error) -> Error {
        let plugin = self.inner.meta.name.clone();
        let function = function.to_string();
        if store.data().limiter.exceeded {
            return Error::MemoryLimit {
                plugin,
                function,
                limit: self.inner.limits.memory_bytes,
            };
        }
        if let Some(over) = e.downcast_ref::<crate::capabilities::RowLimitExceeded>() {
            return Error::RowLimit {
                plugin,
                function,
                limit: over.limit,
            };
        }
        if let Some(failure) = e.downcast_ref::<crate::http::Failure>() {
            return failure.to_error(plugin, function);
        }
        if e.downcast_ref::<Trap>() == Some(&Trap::Interrupt)
            || e.downcast_ref::<crate::capabilities::wasi::DeadlineReached>()
                .is_some()
        {
            return Error::TimedOut {
                plugin,
                function,
                limit: self.inner.limits.time,
            };
        }
        Error::Trap {
            plugin,
            function,
            // The backtrace names the guest's functions, from its own name
            // section: bytes the plugin chose.
            message: crate::escape_controls(&format!("{e:?}")).into_owned(),
        }
    }
}

/// How a component was had: from the cache, or compiled (and, when the
/// runtime defers cache writes, the entry still to write).
enum Compiled {
    FromCache,
    Fresh(Option<crate::cache::Entry>),
}

/// Compiles `bytes`, through the runtime's disk cache when it has one.
fn compile(
    runtime: &Runtime,
    name: &str,
    bytes: &[u8],
    source: Option<(&std::path::Path, &std::fs::Metadata)>,
) -> Result<(Component, Compiled)> {
    let engine = runtime.engine();
    let entry = runtime
        .inner
        .options
        .cache_dir
        .as_deref()
        .map(|dir| crate::cache::entry(dir, engine, bytes, name, source));
    if let Some(component) = entry.as_ref().and_then(|e| crate::cache::load(engine, e)) {
        return Ok((component, Compiled::FromCache));
    }
    let component = Component::new(engine, bytes).map_err(|e| Error::InvalidComponent {
        plugin: name.to_string(),
        source: boxed(e),
    })?;
    if runtime.inner.options.defer_cache_writes {
        return Ok((component, Compiled::Fresh(entry)));
    }
    if let Some(entry) = &entry {
        crate::cache::store(&component, entry);
    }
    Ok((component, Compiled::Fresh(None)))
}

/// The epoch deadline for a time limit: whole ticks, rounded up, plus one
/// because the current tick may be almost over.
fn deadline_ticks(limit: std::time::Duration) -> u64 {
    let tick = EPOCH_TICK.as_nanos().max(1);
    let ticks = limit.as_nanos().div_ceil(tick);
    u64::try_from(ticks).unwrap_or(u64::MAX).saturating_add(1)
}

/// Brings the plugin's own schema to the version it ships for the
/// database's dialect (see [`crate::schema`]), under its limits: the
/// migrations need its `plinth:sql` write grant, run within its migration
/// time, its row limit and its data quota, and are undone whole when any is
/// passed. A plugin that ships none is still held to what the database
/// records: migrations applied once must still be shipped.
fn migrate(db: &plinth_store::Db, manifest: &Manifest) -> Result<()> {
    let m = &manifest.migrations;
    let plugin = manifest.name.clone();
    let schema_err = |source| Error::Schema {
        plugin: plugin.clone(),
        source,
    };
    // A name that cannot own data has none to check.
    let Ok(ns) = plinth_store::sql::Namespace::new(&plugin, false) else {
        return Ok(());
    };
    if m.is_empty() {
        let applied = db.recorded_plugin_migrations(&plugin).map_err(schema_err)?;
        if let Some(found) = applied.iter().map(|a| a.version).max() {
            return Err(schema_err(plinth_store::Error::PluginSchemaTooNew {
                plugin: plugin.clone(),
                found,
                shipped: 0,
            }));
        }
        return Ok(());
    }
    let dialect = db.dialect();
    let list = m.for_dialect(dialect);
    if list.is_empty() {
        return Err(Error::DialectUnsupported {
            plugin,
            dialect: dialect.to_string(),
            ships: m.dialects().join(" and "),
        });
    }
    if manifest.grants.get(&crate::capabilities::sql::SQL) != Some(crate::Access::Write) {
        return Err(Error::MigrationsNotGranted {
            plugin,
            count: list.len(),
        });
    }
    let limits = manifest.limits;
    let ns = ns
        .with_quota(Some(limits.data_bytes))
        .with_result_budget(limits.memory_bytes as u64);
    let bounds = plinth_store::plugin::MigrationLimits {
        deadline: Some(Instant::now() + limits.migration_time()),
        rows: Some(limits.rows),
    };
    let done = db.migrate_plugin(&ns, list, bounds).map_err(schema_err)?;
    if done.to != done.from {
        tracing::info!(plugin = %plugin, from = done.from, to = done.to, "migrated its schema");
    }
    Ok(())
}
