//! The runtime's error type.

use std::path::PathBuf;
use std::time::Duration;

/// A `Result` whose error defaults to the runtime's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A boxed error from wasmtime, kept as the source of ours.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

pub(crate) fn boxed(e: wasmtime::Error) -> BoxError {
    e.into_boxed_dyn_error()
}

/// Why loading or calling a plugin failed.
///
/// Load errors name the plugin; call errors name the plugin and the export.
/// After any of them the runtime keeps serving other calls.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The bytes are not a valid WebAssembly component.
    #[error("plugin {plugin}: not a valid WebAssembly component")]
    InvalidComponent {
        /// The plugin's name.
        plugin: String,
        /// What the compiler said.
        #[source]
        source: BoxError,
    },
    /// The component imports a plinth interface its manifest does not grant.
    #[error("plugin {plugin} imports {interface}, which its manifest does not grant: {hint}")]
    NotGranted {
        /// The plugin's name.
        plugin: String,
        /// The import, as the component names it.
        interface: String,
        /// What to do about it.
        hint: String,
    },
    /// The component imports something the runtime does not provide at all.
    #[error("plugin {plugin} imports {import}, which this runtime does not provide: {hint}")]
    UnknownImport {
        /// The plugin's name.
        plugin: String,
        /// The import, as the component names it.
        import: String,
        /// What to do about it.
        hint: String,
    },
    /// The component was built against a version of an interface that does
    /// not link with the one this runtime implements.
    #[error(
        "plugin {plugin} was built against {import}, but this runtime implements version {offered}: \
         rebuild it against the WIT that `plinth wit DIR` writes"
    )]
    IncompatibleImport {
        /// The plugin's name.
        plugin: String,
        /// The import, as the component names it (with its version).
        import: String,
        /// The version the runtime implements.
        offered: &'static str,
    },
    /// The component's imports do not type-check against the host's.
    #[error("plugin {plugin}: its imports do not match the host's interfaces")]
    Link {
        /// The plugin's name.
        plugin: String,
        /// What the linker said.
        #[source]
        source: BoxError,
    },
    /// The component lacks an export the typed API expects, or has it with
    /// another type.
    #[error("plugin {plugin} does not export {world}'s functions with the expected types")]
    WrongExports {
        /// The plugin's name.
        plugin: String,
        /// The world that was expected.
        world: &'static str,
        /// What the type check said.
        #[source]
        source: BoxError,
    },
    /// The plugin has no export of that name.
    #[error("plugin {plugin} has no function {function} (it exports: {})", available.join(", "))]
    NoSuchExport {
        /// The plugin's name.
        plugin: String,
        /// The name asked for.
        function: String,
        /// What it does export.
        available: Vec<String>,
    },
    /// The arguments do not fit the function.
    #[error("{plugin}.{function}: {message}")]
    BadArguments {
        /// The plugin's name.
        plugin: String,
        /// The function.
        function: String,
        /// What is wrong.
        message: String,
    },
    /// A manifest is malformed or names something unknown.
    #[error("manifest {path}: {reason}")]
    Manifest {
        /// Where the manifest came from.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A plugin asks for more than its operator approved (it was updated, or
    /// never approved); it is not loaded until approved again.
    #[error("plugin {plugin} asks for more than was approved: {}; approve it with `plinth plugin install`", beyond.join(", "))]
    NotApproved {
        /// The plugin's name.
        plugin: String,
        /// What it asks for beyond the approval.
        beyond: Vec<String>,
    },
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The call ran past its plugin's time limit and was stopped. Nothing it
    /// wrote was kept.
    #[error("{plugin}.{function} ran past its time limit of {limit:?} and was stopped")]
    TimedOut {
        /// The plugin's name.
        plugin: String,
        /// The export called.
        function: String,
        /// The limit.
        limit: Duration,
    },
    /// The call tried to grow its memory past its plugin's limit. Nothing it
    /// wrote was kept.
    #[error("{plugin}.{function} exceeded its memory limit of {limit} bytes")]
    MemoryLimit {
        /// The plugin's name.
        plugin: String,
        /// The export called.
        function: String,
        /// The limit in bytes.
        limit: usize,
    },
    /// The call wrote more rows to the database than its plugin's limit
    /// (`[limits] rows`) allows, and was stopped. Nothing it wrote was kept.
    #[error("{plugin}.{function} wrote more than its limit of {limit} rows and was stopped")]
    RowLimit {
        /// The plugin's name.
        plugin: String,
        /// The export called.
        function: String,
        /// The limit.
        limit: u64,
    },
    /// The guest trapped (a panic, an unreachable, a host fault). Nothing it
    /// wrote was kept.
    #[error("{plugin}.{function} trapped: {message}")]
    Trap {
        /// The plugin's name.
        plugin: String,
        /// The export called.
        function: String,
        /// The trap and its backtrace, as wasmtime reports them.
        message: String,
    },
    /// The plugin's HTTP handler gave no complete response: it returned
    /// without setting one, set an error instead, or did not finish the
    /// response body (or aborted it). Nothing it wrote was kept.
    #[error("{plugin}.{function} gave no HTTP response: {reason}")]
    HttpResponse {
        /// The plugin's name.
        plugin: String,
        /// The export called.
        function: String,
        /// What was wrong.
        reason: String,
    },
    /// The plugin's HTTP response body went past the caller's limit: it was
    /// read no further, and nothing the call wrote was kept.
    #[error("{plugin}.{function}: its HTTP response body is over the limit of {limit} bytes")]
    HttpResponseTooLarge {
        /// The plugin's name.
        plugin: String,
        /// The export called.
        function: String,
        /// The limit in bytes.
        limit: usize,
    },
    /// The call returned but its writes could not be committed.
    #[error("{plugin}.{function}: committing its writes failed")]
    Commit {
        /// The plugin's name.
        plugin: String,
        /// The export called.
        function: String,
        /// What the store said.
        #[source]
        source: Box<plinth_store::Error>,
    },
    /// The database failed outside a plugin call.
    #[error(transparent)]
    Store(#[from] plinth_store::Error),
    /// The plugin's own schema could not be brought to the version it
    /// ships; the database keeps the version it had.
    #[error("plugin {plugin}: its schema: {source}")]
    Schema {
        /// The plugin.
        plugin: String,
        /// Why, from the store (a failed or edited migration, a newer
        /// recorded version).
        #[source]
        source: plinth_store::Error,
    },
    /// The plugin's bytes are not the build its approval is for (its
    /// component or its migrations changed): it is not loaded until
    /// installed, and approved, again.
    #[error(
        "plugin {plugin} is not the build that was approved: {}; install it again (`plinth plugin install`) to approve this build",
        changed.join(", ")
    )]
    NotTheApprovedBuild {
        /// The plugin.
        plugin: String,
        /// What differs, one line each.
        changed: Vec<String>,
    },
    /// The plugin ships migrations (tables of its own) but is not granted
    /// `plinth:sql/sql` read-write, which creating tables needs.
    #[error(
        "plugin {plugin} ships {count} migrations but is not granted plinth:sql/sql read-write: a plugin's own tables are part of what is approved"
    )]
    MigrationsNotGranted {
        /// The plugin.
        plugin: String,
        /// How many migrations it ships for the database's dialect.
        count: usize,
    },
    /// The plugin ships migrations, but none for the database's dialect.
    #[error(
        "plugin {plugin} ships migrations for {ships}, not for {dialect}: it cannot keep its tables in this database"
    )]
    DialectUnsupported {
        /// The plugin.
        plugin: String,
        /// The database's dialect.
        dialect: String,
        /// The dialects it ships migrations for.
        ships: String,
    },
    /// The compile cache's directory is not safe to run code from.
    #[error("compile cache {path}: {reason}")]
    CacheDir {
        /// The directory.
        path: PathBuf,
        /// Why it is refused.
        reason: String,
    },
    /// The runtime's capabilities do not fit together (two implement one
    /// interface) or one could not be linked.
    #[error("capabilities: {0}")]
    Capability(String),
    /// The engine could not be configured or a store could not be created.
    #[error("engine: {0}")]
    Engine(#[source] BoxError),
    /// A blocking call run for an async caller panicked or was cancelled.
    #[error("the blocking task running the call failed: {0}")]
    Join(#[from] tokio::task::JoinError),
}
