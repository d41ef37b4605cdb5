//! The built-in capabilities, one module per host interface, and the
//! registry that lists them.
//!
//! Each module owns its interface's [`Interface`] description (WIT name,
//! gate, which functions write), its `impl Host` (a thin adapter: check the
//! grant, convert the arguments, call the store inside the call's unit of
//! work, convert the result) and its `CAPABILITY`, which adds it to a linker.
//! Expected failures become the WIT `error` variant; only host faults and
//! limit breaches trap.
//!
//! Adding an interface is one module here plus one line in [`BUILTIN`].

pub mod attempts;
pub mod clock;
pub mod credentials;
pub mod email_verification;
pub mod http;
pub mod keyvalue;
pub mod mailer;
pub mod password_reset;
pub mod sessions;
pub mod sql;
mod tokens;
pub mod types;
pub mod users;
pub mod wasi;

use std::sync::Arc;
use std::time::Instant;

use plinth_store::{Db, Unit};
use wasmtime::component::HasData;

use crate::capability::{Capability, Interface};
use crate::grants::{Access, Grants};
use crate::state::CallState;
use clock::ClockCtx;

/// Every capability the runtime offers without being asked: the registry
/// the linker, the import check, the manifest parser and `plinth plugin
/// inspect` read. One line per capability.
pub const BUILTIN: &[Capability] = &[
    wasi::CAPABILITY,
    http::CAPABILITY,
    types::CAPABILITY,
    clock::CAPABILITY,
    users::CAPABILITY,
    credentials::CAPABILITY,
    sessions::CAPABILITY,
    email_verification::CAPABILITY,
    password_reset::CAPABILITY,
    mailer::CAPABILITY,
    attempts::CAPABILITY,
    sql::CAPABILITY,
    keyvalue::CAPABILITY,
];

/// The error a database host function returns before it reaches the guest.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HostError {
    /// The store answered with an error; expected ones reach the guest as the
    /// matching WIT case, faults as `internal`.
    #[error(transparent)]
    Store(#[from] plinth_store::Error),
    /// The plugin is not granted this access to the interface.
    #[error("access to {interface} ({access}) is not granted")]
    AccessDenied {
        /// The interface's WIT name.
        interface: &'static str,
        /// The access that was asked for.
        access: Access,
    },
    /// Abort the guest: a host fault or a breached limit.
    #[error("trap: {0}")]
    Trap(wasmtime::Error),
}

/// Who is calling: what the runtime knows of a loaded plugin, shared by all
/// its calls and seen by every capability's view (to check a grant, to name
/// the plugin in a log, to size what the host holds for it).
#[derive(Debug)]
pub(crate) struct PluginMeta {
    pub(crate) name: String,
    pub(crate) grants: Grants,
    /// Most rows one call may write.
    pub(crate) row_limit: u64,
    /// Most bytes its own data may take.
    pub(crate) data_bytes: u64,
    /// Most bytes of its instance's memory: also what the host holds for
    /// one of its queries' rows.
    pub(crate) memory_bytes: usize,
    /// The name again, shared by the output streams of every call.
    pub(crate) log_name: Arc<str>,
    /// The public base URL of the service, for `plinth:auth/mailer`'s
    /// `link` ([`RuntimeOptions::public_url`](crate::RuntimeOptions::public_url)).
    pub(crate) public_url: Option<Arc<str>>,
}

impl PluginMeta {
    /// Checks that the plugin may use `interface` with `access`.
    pub(crate) fn check(
        &self,
        interface: &'static Interface,
        access: Access,
    ) -> Result<(), HostError> {
        if self.grants.allows(interface, access) {
            return Ok(());
        }
        tracing::debug!(plugin = %self.name, interface = interface.name, %access, "access denied");
        Err(HostError::AccessDenied {
            interface: interface.name,
            access,
        })
    }

    /// The row limit, when a unit that wrote `written` rows is over it.
    fn rows_over_limit(&self, written: u64) -> Option<u64> {
        (written > self.row_limit).then_some(self.row_limit)
    }
}

/// The database side of one call: the database and the call's unit of work
/// (a pooled connection, started on first use and committed only when the
/// call returns normally). Every database capability works through a
/// [`DbView`] of it, which brings the caller, the deadline and the clock.
pub struct DatabaseCtx {
    db: Db,
    unit: Option<Unit>,
}

impl DatabaseCtx {
    pub(crate) fn new(db: Db) -> Self {
        Self { db, unit: None }
    }

    /// The database (its clock, its pool) outside the unit of work.
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// The call's unit of work, started on first use, waiting for the write
    /// lock only until shortly before `deadline`, its clock `clock_offset`
    /// seconds ahead of the database's.
    fn unit(
        &mut self,
        deadline: Option<Instant>,
        clock_offset: i64,
    ) -> plinth_store::Result<&mut Unit> {
        let unit = match &mut self.unit {
            Some(unit) => unit,
            slot => {
                let mut unit = self.db.unit()?;
                if let Some(deadline) = deadline {
                    unit.set_deadline(deadline);
                }
                slot.insert(unit)
            }
        };
        // The test clock may have moved since the last operation.
        unit.set_clock_offset(clock_offset);
        Ok(unit)
    }

    /// Rows the call's unit has written.
    fn rows_written(&self) -> u64 {
        self.unit.as_ref().map_or(0, Unit::rows_written)
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

impl CallState {
    /// The plugin's row limit, when the call's unit has written more rows
    /// than it.
    pub(crate) fn rows_over_limit(&self) -> Option<u64> {
        self.plugin.rows_over_limit(self.database.rows_written())
    }
}

/// What a database capability's host functions see: the caller, the call's
/// [`DatabaseCtx`], its deadline and clock, and the interface they
/// implement, whose grant they check.
pub struct DbView<'a> {
    plugin: &'a PluginMeta,
    database: &'a mut DatabaseCtx,
    interface: &'static Interface,
    deadline: Option<Instant>,
    clock_offset: i64,
}

impl<'a> DbView<'a> {
    /// The view of `state` for the host functions of `interface`.
    pub(crate) fn of(state: &'a mut CallState, interface: &'static Interface) -> Self {
        Self::new(
            &state.plugin,
            &mut state.database,
            state.deadline,
            &state.clock,
            interface,
        )
    }

    /// The view made of a call's parts, for a capability whose own view
    /// holds more of the call beside it.
    fn new(
        plugin: &'a PluginMeta,
        database: &'a mut DatabaseCtx,
        deadline: Option<Instant>,
        clock: &ClockCtx,
        interface: &'static Interface,
    ) -> Self {
        DbView {
            plugin,
            database,
            interface,
            deadline,
            clock_offset: clock.offset(),
        }
    }
}

impl DbView<'_> {
    /// The call's unit of work, for a function needing `access` to this
    /// view's interface.
    ///
    /// # Errors
    /// [`HostError::AccessDenied`] when the plugin is not granted that much;
    /// the store's error when no connection can be had.
    pub fn unit(&mut self, access: Access) -> Result<&mut Unit, HostError> {
        self.check(access)?;
        // Only a write can take the count further: reads skip the check
        // (the call's end checks again before committing).
        if access == Access::Write
            && let Some(limit) = self.plugin.rows_over_limit(self.database.rows_written())
        {
            // The call already wrote more than it may: stop it here; it
            // fails as `RowLimit` and keeps nothing.
            return Err(HostError::Trap(RowLimitExceeded { limit }.into()));
        }
        self.open_unit().map_err(HostError::Store)
    }

    /// The call's unit of work, with no check: for a function that checked
    /// its grant and answers its own error.
    fn open_unit(&mut self) -> plinth_store::Result<&mut Unit> {
        self.database.unit(self.deadline, self.clock_offset)
    }

    /// Checks that the plugin may use this view's interface with `access`.
    ///
    /// # Errors
    /// [`HostError::AccessDenied`].
    pub fn check(&self, access: Access) -> Result<(), HostError> {
        self.plugin.check(self.interface, access)
    }

    /// The calling plugin's name.
    pub fn plugin_name(&self) -> &str {
        &self.plugin.name
    }

    /// The database (its clock, its pool) outside the unit of work.
    pub fn db(&self) -> &Db {
        self.database.db()
    }

    /// The calling plugin's own data — its tables and buckets — under its
    /// quota, the rows a statement brings into the host held to its memory
    /// limit (and [`MAX_RESULT_BYTES`](plinth_store::sql::MAX_RESULT_BYTES)):
    /// rows the guest could not take are not built; `read_only` refuses
    /// writes.
    ///
    /// # Errors
    /// [`SqlError::AccessDenied`](plinth_store::sql::SqlError::AccessDenied)
    /// for a plugin name that cannot own data.
    pub fn namespace(
        &self,
        read_only: bool,
    ) -> Result<plinth_store::sql::Namespace, plinth_store::sql::SqlError> {
        let plugin = self.plugin;
        Ok(plinth_store::sql::Namespace::new(&plugin.name, read_only)?
            .with_quota(Some(plugin.data_bytes))
            .with_result_budget(plugin.memory_bytes as u64))
    }
}

/// A call wrote more rows than its plugin's limit allows: it is stopped,
/// and fails as [`Error::RowLimit`](crate::Error::RowLimit), keeping nothing.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the call wrote more than {limit} rows to the database")]
pub struct RowLimitExceeded {
    /// The limit.
    pub limit: u64,
}

/// The [`HasData`] of every database capability: its host functions run on
/// a [`DbView`].
pub struct Database;

impl HasData for Database {
    type Data<'a> = DbView<'a>;
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::capability::Gate;

    fn resolve() -> anyhow::Result<wit_parser::Resolve> {
        let mut resolve = wit_parser::Resolve::default();
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../wit");
        resolve.push_dir(root.join("auth"))?;
        resolve.push_dir(root.join("keyvalue"))?;
        Ok(resolve)
    }

    /// The registry is what enforces read and write: every function of every
    /// plinth interface the host implements must be in it, with nothing
    /// extra, or a function would have no access rule.
    #[test]
    fn the_registry_lists_exactly_the_functions_of_each_wit_interface() -> anyhow::Result<()> {
        let resolve = resolve()?;
        let mut seen = BTreeSet::new();
        for (_, iface) in resolve.interfaces.iter() {
            let (Some(name), Some(package)) = (&iface.name, iface.package) else {
                continue;
            };
            let package = &resolve.packages[package].name;
            let full = format!("{}:{}/{name}", package.namespace, package.name);
            let entry = BUILTIN
                .iter()
                .flat_map(|c| c.interfaces.iter())
                .find(|i| i.name == full);
            let Some(entry) = entry else {
                // The auth plugin's export is the plugin's, not the host's.
                // `watcher` is exported by a watching component, not
                // imported from the host.
                assert!(
                    ["plinth:auth/auth", "wasi:keyvalue/watcher"].contains(&full.as_str()),
                    "the host implements {full} unregistered"
                );
                continue;
            };
            let in_wit: BTreeSet<&str> = iface.functions.keys().map(String::as_str).collect();
            let in_registry: BTreeSet<&str> = entry.functions.iter().map(|f| f.name).collect();
            assert_eq!(in_wit, in_registry, "{full}");
            seen.insert(full);
        }
        for i in BUILTIN.iter().flat_map(|c| c.interfaces.iter()) {
            // `wasi:http`'s interfaces are wasmtime-wasi-http's WIT (and
            // plinth's refusing handler): like the WASI families, linked
            // whole, no function of them needing a grant of its own.
            let wasi_http = [http::TYPES.name, http::OUTGOING_HANDLER.name].contains(&i.name);
            assert!(
                i.name.ends_with('*') || wasi_http || seen.contains(i.name),
                "{} is registered but not in the WIT",
                i.name
            );
        }
        Ok(())
    }

    /// Reads are reads: every function the registry calls a read has a name
    /// that says so, and every `get-` is a read. (`plinth:sql`'s `query`
    /// may only read: the store refuses a statement that writes under a
    /// read grant, and `execute` needs the write grant.)
    #[test]
    fn functions_named_get_are_reads_and_everything_else_that_changes_is_a_write() {
        for i in BUILTIN.iter().flat_map(|c| c.interfaces.iter()) {
            for f in i.functions {
                let reads = f.name.starts_with("get-")
                    || [
                        "now",
                        "query",
                        "query-batch",
                        "current-dialect",
                        "link",
                        "open",
                        "[method]bucket.get",
                        "[method]bucket.exists",
                        "[method]bucket.list-keys",
                        "[static]cas.new",
                        "[method]cas.current",
                    ]
                    .contains(&f.name);
                assert_eq!(f.access == Access::Read, reads, "{}.{}", i.name, f.name);
            }
        }
    }

    #[test]
    fn only_types_and_the_clock_are_open_among_the_plinth_interfaces() {
        // Types only: `plinth:sql/types` has no functions.
        let open: Vec<&str> = BUILTIN
            .iter()
            .flat_map(|c| c.interfaces.iter())
            .filter(|i| i.gate == Gate::Open && i.name.starts_with("plinth:"))
            .map(|i| i.name)
            .collect();
        assert_eq!(
            open,
            [
                "plinth:database/types",
                "plinth:database/clock",
                "plinth:sql/types"
            ]
        );
    }
}
