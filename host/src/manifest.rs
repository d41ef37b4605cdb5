//! A plugin's manifest: its name, grants and limits.
//!
//! On disk it is TOML beside the `.wasm` (`auth.wasm` → `auth.toml`):
//!
//! ```toml
//! name = "db-test"
//!
//! [grants]
//! "plinth:database/users" = "read-write"
//! "plinth:database/sessions" = "read"
//!
//! [limits]
//! memory-mib = 64
//! time-ms = 5000
//! # Bytes its own tables and key-value buckets may take (default 256).
//! data-mib = 16
//!
//! # How long its migrations may run when it loads (default: time-ms).
//! migration-ms = 20000
//!
//! # Optional: what `plinth serve` offers over HTTP (see `Http`).
//! [http]
//! exports = ["add", "list"]
//! prefix = "/apps/notes"
//!
//! # Optional: serve several calls from one instance (see `Reuse`).
//! [reuse]
//! calls = 1000
//! memory-kib = 1024
//! idle = 8
//! ```
//!
//! An embedder can build the same in code with [`Manifest::new`].

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use crate::capability::Interface;
use crate::grants::{Access, Grants};
use crate::schema::Migrations;
use crate::{Error, Result};

/// Memory a call may use when the manifest does not say: 64 MiB.
pub const DEFAULT_MEMORY_BYTES: usize = 64 << 20;
/// Time a call may run when the manifest does not say: 10 s.
pub const DEFAULT_TIME_LIMIT: Duration = Duration::from_secs(10);
/// The largest memory limit a manifest may ask for: 4 GiB, all a wasm32
/// memory can address.
pub const MAX_MEMORY_BYTES: usize = 4 << 30;
/// The longest time limit a manifest may ask for: 10 minutes.
pub const MAX_TIME_LIMIT: Duration = Duration::from_secs(600);

/// Rows a call may write to the database when the manifest does not say.
pub const DEFAULT_ROW_LIMIT: u64 = 10_000;
/// The most rows a manifest may let one call write.
pub const MAX_ROW_LIMIT: u64 = 10_000_000;

/// Bytes of its own data (its tables and key-value buckets) a plugin may
/// keep when the manifest does not say: 256 MiB.
pub const DEFAULT_DATA_BYTES: u64 = 256 << 20;
/// The most a manifest may let a plugin keep: 1 TiB.
pub const MAX_DATA_BYTES: u64 = 1 << 40;

/// Per-call limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Most bytes of linear memory the call's instance may hold (all its
    /// memories together).
    pub memory_bytes: usize,
    /// Longest a call may run before it is stopped.
    pub time: Duration,
    /// Most rows the call may insert, update or delete in the database; a
    /// call that writes more fails and keeps nothing.
    pub rows: u64,
    /// Most bytes the plugin's own data may take — its tables' pages and
    /// its key-value buckets, all calls together: a write past it answers
    /// `too-large` and keeps nothing.
    pub data_bytes: u64,
    /// Longest the plugin's migrations may run when it loads (`None`: as
    /// long as a call, [`Limits::time`]); past it they are stopped and
    /// nothing of them is kept. Manifest key `migration-ms`.
    pub migration_time: Option<Duration>,
}

impl Limits {
    /// How long the plugin's migrations may run when it loads.
    pub fn migration_time(&self) -> Duration {
        self.migration_time.unwrap_or(self.time)
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            memory_bytes: DEFAULT_MEMORY_BYTES,
            time: DEFAULT_TIME_LIMIT,
            rows: DEFAULT_ROW_LIMIT,
            data_bytes: DEFAULT_DATA_BYTES,
            migration_time: None,
        }
    }
}

/// The largest manifest file read: 64 KiB (a manifest is a few lines).
pub const MAX_MANIFEST_BYTES: u64 = 64 << 10;

/// The longest plugin name a manifest may give, in bytes.
pub const MAX_NAME_BYTES: usize = 64;

/// Most calls one reused instance may serve.
pub const MAX_REUSE_CALLS: u32 = 1_000_000;
/// Most idle instances a plugin may keep.
pub const MAX_IDLE_INSTANCES: usize = 64;

/// Whether and how a plugin's instances serve more than one call.
///
/// By default (no `Reuse`) every call gets a fresh instance in a fresh
/// `Store`: nothing a call leaves in the guest's memory can reach the next
/// one. A plugin that opts in trades some of that for speed — a call on a
/// live instance skips instantiating and tearing down (for auth ~25 µs of a
/// ~40 µs `validate-session`). What a call still gets on its own either way:
/// its unit of work (a transaction, committed only if the call returns),
/// its time limit, and a fresh instance after anything went wrong:
///
/// * an instance goes back to the plugin's idle list only after a call that
///   returned normally and committed; one that trapped, timed out, ran out
///   of memory or failed to commit is dropped;
/// * an instance whose linear memory grew past `max_memory_bytes` is dropped
///   after its call (for auth: every call that ran Argon2, so its 19 MiB of
///   blocks, derived from a password, do not outlive the call), which also
///   leaves each later call most of its memory limit;
/// * an instance serves at most `max_calls` calls, which bounds what a guest
///   can accumulate in its heap or its resource table;
/// * at most `idle` instances wait between calls; the rest are dropped.
///
/// What is shared: the guest's memory and globals — its heap, its statics,
/// the bytes of the previous calls' arguments — are as the previous call left
/// them. Opt in only for a plugin whose code is trusted to keep one caller's
/// data from the next (as any server process serving many users does), not
/// for code that is itself the untrusted party between callers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reuse {
    /// Most calls one instance serves before it is dropped.
    pub max_calls: u32,
    /// An instance whose linear memory is larger than this after a call is
    /// dropped rather than kept.
    pub max_memory_bytes: usize,
    /// Most instances kept idle between calls.
    pub idle: usize,
}

impl Default for Reuse {
    fn default() -> Self {
        Self {
            max_calls: 1000,
            max_memory_bytes: 1 << 20,
            idle: 8,
        }
    }
}

/// The longest export name an `[http]` section may list, in bytes.
pub const MAX_HTTP_EXPORT_BYTES: usize = 256;
/// The most exports an `[http]` section may list.
pub const MAX_HTTP_EXPORTS: usize = 256;
/// The longest path prefix an `[http]` section may ask for, in bytes.
pub const MAX_HTTP_PREFIX_BYTES: usize = 128;

/// What a plugin offers over HTTP when `plinth serve` runs it. Nothing by
/// default: an export is reachable over HTTP only when the manifest asks for
/// it and the operator approved it, like an interface.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Http {
    /// Exports callable as `POST /plugins/NAME/EXPORT`, named as `plinth
    /// call` names them: `function`, or `interface#function` when the name
    /// is ambiguous. Manifest key `exports`.
    pub exports: BTreeSet<String>,
    /// For a component that exports `wasi:http/incoming-handler`: the path
    /// prefix it serves (`/apps/notes`: lowercase segments of letters,
    /// digits, `-`, `_` and `.`). Manifest key `prefix`.
    pub prefix: Option<String>,
}

impl Http {
    /// Whether nothing is offered.
    pub fn is_empty(&self) -> bool {
        self.exports.is_empty() && self.prefix.is_none()
    }

    /// Checks a path prefix's form: `/` then one or more segments of
    /// lowercase letters, digits, `-`, `_` and `.`, joined by `/`, none of
    /// them `.` or `..`, at most [`MAX_HTTP_PREFIX_BYTES`].
    ///
    /// # Errors
    /// Why it is not a prefix.
    pub fn check_prefix(prefix: &str) -> std::result::Result<(), String> {
        let ok_segment = |s: &str| {
            !s.is_empty()
                && s != "."
                && s != ".."
                && s.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'_' | b'.')
                })
        };
        match prefix.strip_prefix('/') {
            Some(rest)
                if prefix.len() <= MAX_HTTP_PREFIX_BYTES && rest.split('/').all(ok_segment) =>
            {
                Ok(())
            }
            _ => Err(format!(
                "http.prefix {:?} is not a path prefix: `/` then segments of lowercase letters, digits, -, _ and . (at most {MAX_HTTP_PREFIX_BYTES} bytes)",
                crate::escape_controls(prefix)
            )),
        }
    }
}

/// A plugin's name, grants and limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// The plugin's name, used in errors, logs and the CLI.
    pub name: String,
    /// What it may reach.
    pub grants: Grants,
    /// What each call may use.
    pub limits: Limits,
    /// Whether its instances serve more than one call (`None`: a fresh
    /// instance for every call).
    pub reuse: Option<Reuse>,
    /// The schema of its own tables, applied when it loads (read from the
    /// `<name>.migrations` directory beside a manifest file).
    pub migrations: Migrations,
    /// The build this manifest is for, when it is an approval: a plugin
    /// loaded with it must be these bytes ([`Identity`]).
    pub identity: Option<Identity>,
    /// What it offers over HTTP under `plinth serve`.
    pub http: Http,
}

/// The build an approval is for: the SHA-256 of the component's bytes and
/// of its migrations ([`Migrations::digest`]). A plugin's identity is these
/// bytes, not the name its manifest claims: loaded with a manifest that has
/// an identity, a component or migrations that differ are refused
/// ([`Error::NotTheApprovedBuild`]), so that a file calling itself `beta`
/// never runs with beta's approval or reaches beta's data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The component's SHA-256, in hex.
    pub component_sha256: String,
    /// The migrations' SHA-256, in hex.
    pub migrations_sha256: String,
}

impl Identity {
    /// The identity of a component's bytes and its migrations.
    pub fn of(component: &[u8], migrations: &Migrations) -> Self {
        Self {
            component_sha256: crate::schema::sha256_hex(component),
            migrations_sha256: migrations.digest(),
        }
    }

    /// What differs between this (what was approved) and `found`, one
    /// line each; empty when they are the same build.
    pub fn changes(&self, found: &Identity) -> Vec<String> {
        let mut changed = Vec::new();
        if self.component_sha256 != found.component_sha256 {
            changed.push(format!(
                "component sha256 {} (approved: {})",
                found.component_sha256, self.component_sha256
            ));
        }
        if self.migrations_sha256 != found.migrations_sha256 {
            changed.push(format!(
                "migrations sha256 {} (approved: {})",
                found.migrations_sha256, self.migrations_sha256
            ));
        }
        changed
    }
}

impl Manifest {
    /// A manifest with no grants and default limits.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            grants: Grants::none(),
            limits: Limits::default(),
            reuse: None,
            migrations: Migrations::default(),
            identity: None,
            http: Http::default(),
        }
    }

    /// Replaces the migrations.
    #[must_use]
    pub fn migrations(mut self, migrations: Migrations) -> Self {
        self.migrations = migrations;
        self
    }

    /// Adds a grant. In code any registered interface may be granted,
    /// including those a manifest file may not name
    /// ([`Gate::Code`](crate::capability::Gate::Code)).
    #[must_use]
    pub fn grant(mut self, interface: Interface, access: Access) -> Self {
        self.grants = self.grants.with(interface, access);
        self
    }

    /// Replaces the limits.
    #[must_use]
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Sets whether instances serve more than one call.
    #[must_use]
    pub fn reuse(mut self, reuse: Option<Reuse>) -> Self {
        self.reuse = reuse;
        self
    }

    /// This manifest, as the request of a plugin, held against what an
    /// operator approved (a manifest too, written when the plugin was
    /// installed): the request, when the approval covers all of it — every
    /// interface at no more access, every limit no higher, reuse only if
    /// approved and no looser — bound to the approval's [`Identity`], so
    /// that loading it checks the bytes are the approved build. A request
    /// that grew since (an update that asks for more) is refused until it is
    /// approved again.
    ///
    /// # Errors
    /// [`Error::NotApproved`] naming everything asked for beyond the
    /// approval.
    pub fn within(&self, approved: &Manifest) -> Result<Manifest> {
        let mut beyond = Vec::new();
        for (interface, access) in self.grants.iter() {
            match approved.grants.get(&interface) {
                Some(granted) if granted >= access => {}
                Some(granted) => beyond.push(format!("{interface} {access} (approved: {granted})")),
                None => beyond.push(format!("{interface} {access} (not approved)")),
            }
        }
        let (l, a) = (self.limits, approved.limits);
        if l.memory_bytes > a.memory_bytes {
            beyond.push(format!(
                "memory {} MiB (approved: {} MiB)",
                l.memory_bytes >> 20,
                a.memory_bytes >> 20
            ));
        }
        if l.time > a.time {
            beyond.push(format!("time {:?} (approved: {:?})", l.time, a.time));
        }
        if l.rows > a.rows {
            beyond.push(format!("rows {} (approved: {})", l.rows, a.rows));
        }
        // (A migration time that only follows the time limit is named
        // once, as the time.)
        if l.migration_time() > a.migration_time()
            && (l.migration_time.is_some() || l.time <= a.time)
        {
            beyond.push(format!(
                "migration time {:?} (approved: {:?})",
                l.migration_time(),
                a.migration_time()
            ));
        }
        if l.data_bytes > a.data_bytes {
            beyond.push(format!(
                "data {} MiB (approved: {} MiB)",
                l.data_bytes >> 20,
                a.data_bytes >> 20
            ));
        }
        match (self.reuse, approved.reuse) {
            (None, _) => {}
            (Some(_), None) => beyond.push("reuse of live instances (not approved)".into()),
            (Some(r), Some(ok)) => {
                if r.max_calls > ok.max_calls
                    || r.max_memory_bytes > ok.max_memory_bytes
                    || r.idle > ok.idle
                {
                    beyond.push("looser reuse of live instances than approved".into());
                }
            }
        }
        for export in self.http.exports.difference(&approved.http.exports) {
            beyond.push(format!("export {export} over HTTP (not approved)"));
        }
        if let Some(prefix) = &self.http.prefix
            && approved.http.prefix.as_ref() != Some(prefix)
        {
            beyond.push(format!(
                "serving HTTP at {prefix} (approved: {})",
                approved.http.prefix.as_deref().unwrap_or("none")
            ));
        }
        if beyond.is_empty() {
            // The approval's build is the one that may run with it.
            let mut ok = self.clone();
            ok.identity = approved.identity.clone();
            Ok(ok)
        } else {
            Err(Error::NotApproved {
                plugin: self.name.clone(),
                beyond,
            })
        }
    }

    /// The manifest as TOML, in the form [`Manifest::from_toml`] reads.
    pub fn to_toml(&self) -> String {
        let mut out = format!("name = {}\n\n[grants]\n", toml_string(&self.name));
        for (interface, access) in self.grants.iter() {
            out.push_str(&format!(
                "{} = {}\n",
                toml_string(interface.name),
                toml_string(&access.to_string())
            ));
        }
        out.push_str(&format!(
            "\n[limits]\nmemory-mib = {}\ntime-ms = {}\nrows = {}\ndata-mib = {}\n",
            self.limits.memory_bytes.div_ceil(1 << 20),
            self.limits.time.as_millis(),
            self.limits.rows,
            self.limits.data_bytes.div_ceil(1 << 20)
        ));
        if let Some(t) = self.limits.migration_time {
            out.push_str(&format!("migration-ms = {}\n", t.as_millis()));
        }
        if let Some(r) = self.reuse {
            out.push_str(&format!(
                "\n[reuse]\ncalls = {}\nmemory-kib = {}\nidle = {}\n",
                r.max_calls,
                r.max_memory_bytes.div_ceil(1 << 10),
                r.idle
            ));
        }
        if !self.http.is_empty() {
            out.push_str("\n[http]\n");
            if !self.http.exports.is_empty() {
                let list: Vec<String> = self.http.exports.iter().map(|e| toml_string(e)).collect();
                out.push_str(&format!("exports = [{}]\n", list.join(", ")));
            }
            if let Some(prefix) = &self.http.prefix {
                out.push_str(&format!("prefix = {}\n", toml_string(prefix)));
            }
        }
        if let Some(id) = &self.identity {
            out.push_str(&format!(
                "\n[identity]\ncomponent-sha256 = {}\nmigrations-sha256 = {}\n",
                toml_string(&id.component_sha256),
                toml_string(&id.migrations_sha256)
            ));
        }
        out
    }

    /// Reads a manifest file: a regular file (not a device or a FIFO) of at
    /// most [`MAX_MANIFEST_BYTES`], and the migrations in the
    /// `<name>.migrations` directory beside it, if there is one.
    ///
    /// # Errors
    /// [`Error::Io`] when unreadable, not a regular file or too large;
    /// [`Error::Manifest`] when malformed (the manifest or a migration).
    pub fn from_file(path: &Path) -> Result<Self> {
        let bytes = crate::files::read_regular_file(path, MAX_MANIFEST_BYTES)?;
        let text = String::from_utf8(bytes).map_err(|_| Error::Manifest {
            path: path.display().to_string(),
            reason: "not UTF-8 text".into(),
        })?;
        let manifest = Self::from_toml(&text, &path.display().to_string())?;
        let migrations = Migrations::read_dir(&Migrations::dir_for(path))?;
        Ok(manifest.migrations(migrations))
    }

    /// Parses manifest TOML; `origin` names it in errors.
    ///
    /// # Errors
    /// [`Error::Manifest`] for malformed TOML, an unknown interface or access
    /// level, an interface only code may grant (test and embedder
    /// capabilities) or one that needs no grant, an empty name, or a limit or reuse setting of zero or over its
    /// maximum.
    pub fn from_toml(text: &str, origin: &str) -> Result<Self> {
        let bad = |reason: String| Error::Manifest {
            path: origin.to_string(),
            reason,
        };
        let raw: RawManifest = toml::from_str(text).map_err(|e| bad(e.message().to_string()))?;
        if raw.name.trim().is_empty() {
            return Err(bad("name must not be empty".into()));
        }
        if raw.name.chars().any(char::is_control) || raw.name.len() > MAX_NAME_BYTES {
            return Err(bad(format!(
                "name {:?} must be at most {MAX_NAME_BYTES} bytes with no control characters",
                crate::escape_controls(&raw.name)
            )));
        }
        let mut grants = Grants::none();
        for (name, access) in raw.grants {
            let interface = crate::capability::manifest_interface(&name).map_err(&bad)?;
            let access = match access.as_str() {
                "read" => Access::Read,
                "read-write" => Access::Write,
                other => {
                    return Err(bad(format!(
                        "access for {name} is {other:?}; expected \"read\" or \"read-write\""
                    )));
                }
            };
            grants = grants.with(interface, access);
        }
        let mut limits = Limits::default();
        if let Some(mib) = raw.limits.memory_mib {
            let bytes = usize::try_from(mib)
                .ok()
                .and_then(|m| m.checked_mul(1 << 20));
            limits.memory_bytes = match bytes {
                Some(b) if b > 0 && b <= MAX_MEMORY_BYTES => b,
                _ => {
                    return Err(bad(format!(
                        "limits.memory-mib = {mib} is outside 1..=4096"
                    )));
                }
            };
        }
        if let Some(ms) = raw.limits.time_ms {
            let time = Duration::from_millis(ms);
            if ms == 0 || time > MAX_TIME_LIMIT {
                return Err(bad(format!("limits.time-ms = {ms} is outside 1..=600000")));
            }
            limits.time = time;
        }
        if let Some(rows) = raw.limits.rows {
            if rows == 0 || rows > MAX_ROW_LIMIT {
                return Err(bad(format!(
                    "limits.rows = {rows} is outside 1..={MAX_ROW_LIMIT}"
                )));
            }
            limits.rows = rows;
        }
        if let Some(mib) = raw.limits.data_mib {
            let bytes = mib.checked_mul(1 << 20);
            limits.data_bytes = match bytes {
                Some(b) if b > 0 && b <= MAX_DATA_BYTES => b,
                _ => {
                    return Err(bad(format!(
                        "limits.data-mib = {mib} is outside 1..={}",
                        MAX_DATA_BYTES >> 20
                    )));
                }
            };
        }
        if let Some(ms) = raw.limits.migration_ms {
            let time = Duration::from_millis(ms);
            if ms == 0 || time > MAX_TIME_LIMIT {
                return Err(bad(format!(
                    "limits.migration-ms = {ms} is outside 1..=600000"
                )));
            }
            limits.migration_time = Some(time);
        }
        let reuse = raw.reuse.map(|r| r.check()).transpose().map_err(bad)?;
        let identity = match raw.identity {
            Some(id) => {
                let hex = |what: &str, v: String| {
                    if v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit()) {
                        Ok(v.to_ascii_lowercase())
                    } else {
                        Err(bad(format!("identity.{what} is not a SHA-256 in hex")))
                    }
                };
                Some(Identity {
                    component_sha256: hex("component-sha256", id.component_sha256)?,
                    migrations_sha256: hex("migrations-sha256", id.migrations_sha256)?,
                })
            }
            None => None,
        };
        let mut http = Http::default();
        if let Some(raw_http) = raw.http {
            if raw_http.exports.len() > MAX_HTTP_EXPORTS {
                return Err(bad(format!(
                    "http.exports lists {} exports; at most {MAX_HTTP_EXPORTS}",
                    raw_http.exports.len()
                )));
            }
            for export in raw_http.exports {
                if export.is_empty()
                    || export.len() > MAX_HTTP_EXPORT_BYTES
                    || export
                        .chars()
                        .any(|c| c.is_control() || c.is_whitespace() || c == '/')
                {
                    return Err(bad(format!(
                        "http.exports: {:?} is not an export name",
                        crate::escape_controls(&export)
                    )));
                }
                http.exports.insert(export);
            }
            if let Some(prefix) = raw_http.prefix {
                Http::check_prefix(&prefix).map_err(&bad)?;
                http.prefix = Some(prefix);
            }
        }
        Ok(Self {
            name: raw.name,
            grants,
            limits,
            reuse,
            migrations: Migrations::default(),
            identity,
            http,
        })
    }
}

/// `text` as a TOML basic string: quotes and backslashes escaped, control
/// characters as `\uXXXX`, everything else as it is. (Rust's `{:?}` is not
/// TOML: it writes `\u{e001}`, which TOML cannot read — the manifest fuzz
/// target found that.)
fn toml_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawManifest {
    name: String,
    #[serde(default)]
    grants: BTreeMap<String, String>,
    #[serde(default)]
    limits: RawLimits,
    reuse: Option<RawReuse>,
    identity: Option<RawIdentity>,
    http: Option<RawHttp>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHttp {
    #[serde(default)]
    exports: Vec<String>,
    prefix: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawIdentity {
    component_sha256: String,
    migrations_sha256: String,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawLimits {
    memory_mib: Option<u64>,
    time_ms: Option<u64>,
    rows: Option<u64>,
    data_mib: Option<u64>,
    migration_ms: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawReuse {
    calls: Option<u64>,
    memory_kib: Option<u64>,
    idle: Option<u64>,
}

impl RawReuse {
    fn check(self) -> std::result::Result<Reuse, String> {
        let mut reuse = Reuse::default();
        if let Some(calls) = self.calls {
            reuse.max_calls = u32::try_from(calls)
                .ok()
                .filter(|c| (1..=MAX_REUSE_CALLS).contains(c))
                .ok_or_else(|| format!("reuse.calls = {calls} is outside 1..={MAX_REUSE_CALLS}"))?;
        }
        if let Some(kib) = self.memory_kib {
            reuse.max_memory_bytes = usize::try_from(kib)
                .ok()
                .and_then(|k| k.checked_mul(1 << 10))
                .filter(|b| (1..=MAX_MEMORY_BYTES).contains(b))
                .ok_or_else(|| format!("reuse.memory-kib = {kib} is outside 1..=4194304"))?;
        }
        if let Some(idle) = self.idle {
            reuse.idle = usize::try_from(idle)
                .ok()
                .filter(|i| (1..=MAX_IDLE_INSTANCES).contains(i))
                .ok_or_else(|| {
                    format!("reuse.idle = {idle} is outside 1..={MAX_IDLE_INSTANCES}")
                })?;
        }
        Ok(reuse)
    }
}
