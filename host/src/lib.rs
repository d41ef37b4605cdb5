//! The plinth runtime: loads WebAssembly plugin components (wasm32-wasip2)
//! and serves them a typed SQLite database through the `plinth:database` WIT
//! interfaces.
//!
//! * [`Runtime`] — one wasmtime engine (pooling allocator, epoch
//!   interruption), one [`plinth_store::Db`].
//! * [`Plugin`] — a component loaded with a [`Manifest`]: compiled, its
//!   imports checked against the manifest's [`Grants`] (deny by default),
//!   linked and type-checked once through an `InstancePre`.
//! * Typed faces of the shipped plugins, e.g. [`DbTestPlugin`]. Each call gets
//!   a fresh instance in a fresh `Store`, unless the manifest opts into
//!   [`Reuse`] of live instances (auth does); either way a call is a unit of
//!   work: it commits when the guest returns and leaves nothing behind when
//!   it traps, runs out of time or memory.
//!
//! WASI is linked with nothing granted: no preopened directories, no
//! environment, no arguments, no network.
//!
//! ```no_run
//! use plinth_host::{DbTestPlugin, Manifest, Runtime};
//! use plinth_store::Db;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let runtime = Runtime::new(Db::open("app.db")?)?;
//! let manifest = Manifest::from_file("db_test.toml".as_ref())?;
//! let plugin = runtime.load_file("db_test.wasm".as_ref(), manifest)?;
//! for check in DbTestPlugin::new(plugin)?.run()? {
//!     println!("{} {}", if check.passed { "ok  " } else { "FAIL" }, check.name);
//! }
//! # Ok(())
//! # }
//! ```
//!
//! From async code, use the `_async` methods: they run the call on tokio's
//! blocking pool, never on a worker thread.

mod auth;
mod bench;
pub mod bindings;
mod cache;
mod db_test;
mod dynamic;
mod error;
pub mod grants;
mod host;
pub mod manifest;
mod plugin;
mod runtime;
mod state;
mod stdio;

pub use auth::{AuthError, AuthPlugin, AuthResult, ProfileUpdate, SessionInfo, SignedIn};
pub use bench::BenchPlugin;
pub use bindings::{FieldChange, User};
pub use db_test::{Check, DbTestPlugin};
pub use dynamic::ExportedFunc;
pub use error::{BoxError, Error, Result};
pub use grants::{Access, Grants, Interface};
pub use host::{HostError, MAIL_PER_RECIPIENT, MAIL_WINDOW_SECONDS, MailError};
pub use manifest::{Limits, Manifest, Reuse};
pub use plugin::Plugin;
pub use runtime::{EPOCH_TICK, MAX_CONCURRENT_INSTANCES, Runtime, RuntimeOptions};
pub use state::CallState;
pub use wasmtime::component::Val;
