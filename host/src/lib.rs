//! The plinth runtime: loads WebAssembly plugin components (wasm32-wasip2)
//! and serves them a database — an SQLite file, or a PostgreSQL server that
//! several hosts share — through typed WIT interfaces: `plinth:database`
//! (users, credentials, sessions, tokens), `plinth:sql` (the plugin's own
//! tables), `wasi:keyvalue` (its buckets), and the auth plugin's
//! `plinth:auth/mailer` and `plinth:auth/attempts`.
//!
//! * [`Runtime`] — one wasmtime engine (pooling allocator, epoch
//!   interruption), one [`plinth_store::Db`], and the [capabilities] it
//!   offers: every host interface is a [`Capability`] in one registry,
//!   which the linker, the grant check and the tools read.
//! * [`Plugin`] — a component loaded with a [`Manifest`]: compiled, its
//!   imports checked against the manifest's [`Grants`] (deny by default),
//!   linked and type-checked once through an `InstancePre`. Call an export by
//!   name with typed parameters ([`Plugin::call_export`]), with dynamic
//!   values ([`Plugin::call_dynamic`]), or through a typed face declared with
//!   [`typed_plugin!`] (the auth plugin's is in the `plinth-auth` crate).
//!   Each call gets a fresh instance in a fresh `Store`, unless the manifest
//!   opts into [`Reuse`] of live instances; either way a call is a unit of
//!   work: it commits when the guest returns and leaves nothing behind when
//!   it traps, runs out of time or memory.
//! * [`json`] — export arguments and results as JSON (type-directed both
//!   ways), and the OpenAPI schemas of that JSON, for HTTP faces and tools.
//! * A plugin that exports `wasi:http/incoming-handler` (as `wasmtime serve`
//!   and Spin run them) is handed HTTP requests with
//!   [`Plugin::handle_http`], one call each, under the same limits.
//!
//! WASI is linked with nothing granted: no preopened directories, no
//! environment, no arguments, no network (`wasi:http`'s outgoing requests
//! are refused).
//!
//! ```no_run
//! use plinth_host::{Manifest, Runtime, Val};
//! use plinth_store::Db;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let runtime = Runtime::new(Db::open("app.db")?)?;
//! let manifest = Manifest::from_file("template.toml".as_ref())?;
//! let plugin = runtime.load_file("template.wasm".as_ref(), manifest)?;
//! // Typed: parameters and results are Rust values.
//! let (greeting,): (String,) = plugin.call_export(
//!     "local:plugin/plugin", None, "greet", ("ada@example.com",))?;
//! // Dynamic: any export, for tools.
//! let results = plugin.call_dynamic("greet", &[Val::String("ada@example.com".into())])?;
//! # let _ = (greeting, results);
//! # Ok(())
//! # }
//! ```
//!
//! From async code, use the `_async` methods: they run the call on tokio's
//! blocking pool, never on a worker thread.

pub mod bindings;
pub mod cache;
pub mod capabilities;
pub mod capability;
mod dynamic;
mod error;
mod files;
pub mod grants;
mod http;
pub mod imports;
pub mod json;
pub mod manifest;
mod plugin;
mod runtime;
pub mod schema;
mod state;
mod stdio;
mod text;
pub mod wit;

pub use self::http::{DEFAULT_HTTP_RESPONSE_BYTES, HTTP_HANDLER};
pub use bindings::{FieldChange, User};
pub use capabilities::HostError;
pub use capabilities::mailer::{MAIL_PER_RECIPIENT, MAIL_WINDOW_SECONDS, MailError};
pub use capability::{Capability, Interface};
pub use dynamic::ExportedFunc;
pub use error::{BoxError, Error, Result};
pub use grants::{Access, Grants};
pub use manifest::{Http, Identity, Limits, Manifest, Reuse};
pub use plugin::Plugin;
pub use runtime::{
    EPOCH_TICK, MAX_COMPONENT_BYTES, MAX_CONCURRENT_INSTANCES, Runtime, RuntimeOptions,
};
pub use schema::Migrations;
pub use state::CallState;
pub use text::escape_controls;
pub use wasmtime::component::Val;

/// The wasmtime this runtime is built on, for typed faces
/// ([`typed_plugin!`]) and capabilities written outside this crate.
pub use wasmtime;
