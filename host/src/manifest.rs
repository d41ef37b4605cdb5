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
//! ```
//!
//! An embedder can build the same in code with [`Manifest::new`].

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use crate::grants::{Access, Grants, Interface};
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

/// Per-call limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Most bytes of linear memory the call's instance may hold (all its
    /// memories together).
    pub memory_bytes: usize,
    /// Longest a call may run before it is stopped.
    pub time: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            memory_bytes: DEFAULT_MEMORY_BYTES,
            time: DEFAULT_TIME_LIMIT,
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
}

impl Manifest {
    /// A manifest with no grants and default limits.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            grants: Grants::none(),
            limits: Limits::default(),
        }
    }

    /// Adds a grant.
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

    /// Reads a manifest file.
    ///
    /// # Errors
    /// [`Error::Io`] when unreadable; [`Error::Manifest`] when malformed.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_toml(&text, &path.display().to_string())
    }

    /// Parses manifest TOML; `origin` names it in errors.
    ///
    /// # Errors
    /// [`Error::Manifest`] for malformed TOML, an unknown interface or access
    /// level, an empty name, or a limit of zero or over its maximum.
    pub fn from_toml(text: &str, origin: &str) -> Result<Self> {
        let bad = |reason: String| Error::Manifest {
            path: origin.to_string(),
            reason,
        };
        let raw: RawManifest = toml::from_str(text).map_err(|e| bad(e.message().to_string()))?;
        if raw.name.trim().is_empty() {
            return Err(bad("name must not be empty".into()));
        }
        let mut grants = Grants::none();
        for (name, access) in raw.grants {
            let interface = Interface::from_wit_name(&name)
                .ok_or_else(|| bad(format!("unknown interface {name:?}")))?;
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
        Ok(Self {
            name: raw.name,
            grants,
            limits,
        })
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawManifest {
    name: String,
    #[serde(default)]
    grants: BTreeMap<String, String>,
    #[serde(default)]
    limits: RawLimits,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawLimits {
    memory_mib: Option<u64>,
    time_ms: Option<u64>,
}
