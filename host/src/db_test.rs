//! The typed face of the db-test plugin.

use crate::Result;
use crate::bindings::db_test::{DbTest, DbTestPre};
use crate::plugin::Plugin;
use crate::state::CallState;

pub use crate::bindings::db_test::plinth::test::report::Check;

/// A plugin known to export the `plinth:test/db-test` world.
#[derive(Clone)]
pub struct DbTestPlugin {
    plugin: Plugin,
    pre: DbTestPre<CallState>,
}

impl DbTestPlugin {
    /// Checks that `plugin` exports the db-test world.
    ///
    /// # Errors
    /// [`Error::WrongExports`](crate::Error::WrongExports) when it does not.
    pub fn new(plugin: Plugin) -> Result<Self> {
        let pre = plugin.typed("plinth:test/db-test", DbTestPre::new)?;
        Ok(Self { plugin, pre })
    }

    /// The underlying plugin.
    pub fn plugin(&self) -> &Plugin {
        &self.plugin
    }

    fn call<R>(
        &self,
        function: &str,
        f: impl FnOnce(&DbTest, &mut wasmtime::Store<CallState>) -> wasmtime::Result<R>,
    ) -> Result<R> {
        self.plugin.call(function, |store| {
            let instance = self.pre.instantiate(&mut *store)?;
            f(&instance, store)
        })
    }

    /// Runs every check; one entry per check.
    ///
    /// # Errors
    /// The call errors of [`Error`](crate::Error): trap, time or memory limit, commit.
    pub fn run(&self) -> Result<Vec<Check>> {
        self.call("run", |i, s| i.call_run(s))
    }

    /// What the guest can see of its sandbox, one line per thing seen.
    ///
    /// # Errors
    /// As [`DbTestPlugin::run`].
    pub fn probe_sandbox(&self) -> Result<Vec<String>> {
        self.call("probe-sandbox", |i, s| i.call_probe_sandbox(s))
    }

    /// [`run`](Self::run) from async code, on tokio's blocking pool.
    ///
    /// # Errors
    /// As [`DbTestPlugin::run`], and [`Error::Join`](crate::Error::Join).
    pub async fn run_async(&self) -> Result<Vec<Check>> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || this.run()).await?
    }
}
