//! The runtime: one engine, one database, an epoch ticker.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use plinth_store::Db;
use wasmtime::component::Linker;
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use crate::capability::{Capability, Registry};
use crate::error::boxed;
use crate::manifest::Manifest;
use crate::plugin::Plugin;
use crate::state::CallState;
use crate::{Error, Result};

/// How often the epoch ticks; a call's time limit is counted in ticks, so it
/// is enforced to within one tick.
pub const EPOCH_TICK: Duration = Duration::from_millis(5);

/// The largest component file [`Runtime::load_file`] reads: 256 MiB (a
/// Python or JavaScript component with its interpreter is 10–40 MiB).
pub const MAX_COMPONENT_BYTES: u64 = 256 << 20;

/// Most instances alive at once across all calls (the pooling allocator's
/// slots). A call beyond this fails to instantiate rather than waiting.
pub const MAX_CONCURRENT_INSTANCES: u32 = 256;

/// Bytes at the start of a linear memory reset by zeroing (kept resident)
/// between instances; pages beyond are returned to the kernel.
pub const LINEAR_MEMORY_KEEP_RESIDENT: usize = 512 << 10;
/// Bytes of a table reset by zeroing between instances.
pub const TABLE_KEEP_RESIDENT: usize = 64 << 10;

/// The plinth runtime. Cheap to clone; clones share the engine, the
/// database and the ticker.
#[derive(Clone)]
pub struct Runtime {
    pub(crate) inner: Arc<RuntimeInner>,
}

/// How to build a [`Runtime`].
#[derive(Debug, Clone, Default)]
pub struct RuntimeOptions {
    /// Where compiled components are cached (none: compile on every load).
    /// It must be writable by this user only (it is created so when
    /// missing): cached code runs as native code.
    pub cache_dir: Option<std::path::PathBuf>,
    /// Name the plugins' compiled functions for Linux `perf`: wasmtime writes
    /// each function's address range and name to `/tmp/perf-<pid>.map`,
    /// which `perf report` reads, so that a profile shows
    /// `auth::session_of` (from the guest's name section; without one,
    /// `wasm[0]::function[54]`) rather than an unknown address. Compiled
    /// code keeps frame pointers, so `perf record -g` walks through guest
    /// frames. Off by default: the file grows with every plugin loaded.
    pub perf_map: bool,
    /// Whether a component compiled by a load waits for
    /// [`Plugin::write_cache`] before it is written to the cache (a tool that
    /// must write nothing until its input is known to be valid). Off by
    /// default: loads write the cache.
    pub defer_cache_writes: bool,
    /// Capabilities beyond the built-in ones ([`crate::capabilities::BUILTIN`]):
    /// the embedder's own host interfaces, or test capabilities such as a
    /// movable clock. A plugin reaches one only when the embedder's code
    /// grants it ([`Manifest::grant`]); a manifest file cannot name them.
    pub capabilities: Vec<Capability>,
    /// The base URL people reach this host's pages at
    /// (`https://accounts.example.com`): what `plinth:auth/mailer`'s `link`
    /// joins a path to, so that mail carries links. None: no links.
    pub public_url: Option<String>,
}

impl RuntimeOptions {
    /// Adds a capability to the built-in ones.
    #[must_use]
    pub fn capability(mut self, capability: Capability) -> Self {
        self.capabilities.push(capability);
        self
    }
}

pub(crate) struct RuntimeInner {
    pub(crate) engine: Engine,
    /// Every capability this runtime offers.
    pub(crate) registry: Registry,
    /// Every capability's host functions, linked once; each plugin's
    /// `InstancePre` is made from it.
    pub(crate) linker: Linker<CallState>,
    pub(crate) db: Db,
    pub(crate) options: RuntimeOptions,
    _ticker: Ticker,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("db", &self.inner.db.path())
            .finish_non_exhaustive()
    }
}

impl Runtime {
    /// A runtime serving `db` to its plugins.
    ///
    /// # Errors
    /// [`Error::Engine`] when wasmtime cannot be configured on this machine.
    pub fn new(db: Db) -> Result<Self> {
        Self::with_options(db, RuntimeOptions::default())
    }

    /// A runtime serving `db`, configured by `options`.
    ///
    /// # Errors
    /// As [`Runtime::new`]; [`Error::Capability`] when two capabilities
    /// implement the same interface or one fails to link;
    /// [`Error::CacheDir`] for a cache directory that other users can write
    /// to or that cannot be created.
    pub fn with_options(db: Db, options: RuntimeOptions) -> Result<Self> {
        if let Some(dir) = &options.cache_dir {
            crate::cache::check_dir(dir).map_err(|reason| Error::CacheDir {
                path: dir.clone(),
                reason,
            })?;
        }
        let mut config = engine_config();
        if options.perf_map {
            config.profiler(wasmtime::ProfilingStrategy::PerfMap);
        }
        let engine = Engine::new(&config).map_err(|e| Error::Engine(boxed(e)))?;
        let registry = Registry::new(&options.capabilities).map_err(Error::Capability)?;
        let mut linker = Linker::new(&engine);
        for capability in registry.capabilities() {
            (capability.add_to_linker)(&mut linker)
                .map_err(|e| Error::Capability(format!("linking {capability:?}: {e:#}")))?;
        }
        let ticker = Ticker::start(engine.clone()).map_err(|source| Error::Io {
            path: "<epoch ticker thread>".into(),
            source,
        })?;
        Ok(Self {
            inner: Arc::new(RuntimeInner {
                engine,
                registry,
                linker,
                db,
                options,
                _ticker: ticker,
            }),
        })
    }

    /// The database the plugins reach.
    pub fn db(&self) -> &Db {
        &self.inner.db
    }

    /// The wasmtime engine (shared by every plugin).
    pub fn engine(&self) -> &Engine {
        &self.inner.engine
    }

    /// The capabilities this runtime offers: the built-in ones and the
    /// embedder's.
    pub fn registry(&self) -> &Registry {
        &self.inner.registry
    }

    /// Loads the component at `wasm` with `manifest`. Only a regular file
    /// (a symbolic link to one is followed) of at most
    /// [`MAX_COMPONENT_BYTES`] is read: not a device, a FIFO or a directory.
    ///
    /// # Errors
    /// [`Error::Io`] when unreadable, not a regular file or over the size
    /// limit, and the errors of [`Runtime::load_bytes`].
    pub fn load_file(&self, wasm: &Path, manifest: Manifest) -> Result<Plugin> {
        // Its metadata is read before its bytes: the compile cache may skip
        // hashing a file whose identity is unchanged since it was hashed.
        let (bytes, meta) =
            crate::files::read_regular_file_and_metadata(wasm, MAX_COMPONENT_BYTES)?;
        // The cache entry is labelled with the file, so that a rebuild's
        // entry replaces the one before.
        let source = std::fs::canonicalize(wasm).unwrap_or_else(|_| wasm.to_path_buf());
        Plugin::load(self.clone(), &bytes, manifest, Some((&source, &meta)))
    }

    /// Loads a component from its bytes: compiles it, checks every import
    /// against the manifest's grants, links and type-checks it once.
    ///
    /// # Errors
    /// [`Error::InvalidComponent`] for bytes that are not a component;
    /// [`Error::NotGranted`] naming the first import the manifest does not
    /// grant; [`Error::UnknownImport`]; [`Error::Link`].
    pub fn load_bytes(&self, bytes: &[u8], manifest: Manifest) -> Result<Plugin> {
        Plugin::load(self.clone(), bytes, manifest, None)
    }

    /// The file the compiled form of `wasm` is (or would be) cached in, when
    /// this runtime has a cache: what `plinth cache prune` keeps.
    pub fn cache_entry(&self, wasm: &[u8]) -> Option<std::path::PathBuf> {
        let dir = self.inner.options.cache_dir.as_deref()?;
        Some(crate::cache::entry_path(dir, self.engine(), wasm))
    }
}

/// Cranelift's x86-64 AVX-512 flags, all turned off (see `engine_config`).
#[cfg(target_arch = "x86_64")]
const AVX512_FLAGS: [&str; 5] = [
    "has_avx512f",
    "has_avx512vl",
    "has_avx512dq",
    "has_avx512bitalg",
    "has_avx512vbmi",
];

fn engine_config() -> Config {
    let mut config = Config::new();
    config.epoch_interruption(true);
    // Component-model async is not used; without it a call is ~3× cheaper.
    config.concurrency_support(false);
    let mut pool = PoolingAllocationConfig::default();
    pool.total_component_instances(MAX_CONCURRENT_INSTANCES)
        .total_core_instances(MAX_CONCURRENT_INSTANCES * 4)
        .total_memories(MAX_CONCURRENT_INSTANCES * 2)
        .total_tables(MAX_CONCURRENT_INSTANCES * 4)
        // No wasm runs on fibers (the async API runs sync calls on tokio's
        // blocking pool), so no stack pool: it would map 1000 stacks with
        // guard pages at start-up.
        .total_stacks(0)
        .max_memory_size(crate::manifest::MAX_MEMORY_BYTES)
        // Reset the first pages of a used memory (the guests' 64 KiB stack,
        // their data, the start of the heap) by zeroing rather than unmapping,
        // so that the next instance in the slot does not fault them back in.
        .linear_memory_keep_resident(LINEAR_MEMORY_KEEP_RESIDENT)
        .table_keep_resident(TABLE_KEEP_RESIDENT)
        // With Linux's PAGEMAP_SCAN (6.7+) only the pages an instance wrote
        // are reset; without it wasmtime re-copies the whole kept-resident
        // range, data image included, after every call (for auth, 300 KiB).
        .pagemap_scan(wasmtime::Enabled::Auto);
    config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    config.memory_init_cow(true);
    // Cranelift uses AVX-512 (VL, DQ, VBMI, …) for wasm's 128-bit SIMD
    // when the CPU has it, and on the two operations Argon2's compression
    // (and most 64-bit hashes) has on its critical path it is slower there:
    // the widening multiply (`i64x2.extmul_*_i32x4_u`) becomes `vpmovzxdq`
    // + `vpmullq` (3 µops, ~15 cycles on Intel) instead of `pmuludq`, and
    // a byte rotation (`i8x16.shuffle` of a vector with itself) becomes
    // `vpermi2b`, which overwrites its index so the index is reloaded every
    // time, instead of `pshufb`. With the AVX-512 flags off, a guest is
    // compiled the same on an AVX-512 CPU as on an AVX2 one: for the auth
    // plugin's block compression, instruction for instruction
    // (`cargo run --release -p plinth-research --example lowering`, and
    // `--example extmul` times the two; docs/BENCHMARKS.md). What is given
    // up: a few 128-bit operations wasm has and SSE lacks (`i64x2.mul`,
    // `i64x2.abs`, `i64x2.shr_s`, `i8x16.popcnt`, unsigned conversions)
    // take a short sequence instead of one instruction.
    // SAFETY: turning a CPU feature off only narrows what Cranelift may
    // emit; the code still runs on this CPU. (x86-64 flags: other targets
    // do not know them.)
    #[cfg(target_arch = "x86_64")]
    for flag in AVX512_FLAGS {
        #[allow(unsafe_code)]
        unsafe {
            config.cranelift_flag_set(flag, "false");
        }
    }
    config
}

/// Advances the engine's epoch every [`EPOCH_TICK`] until dropped.
struct Ticker {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Ticker {
    fn start(engine: Engine) -> std::io::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("plinth-epoch".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    engine.increment_epoch();
                }
            })?;
        Ok(Self {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
