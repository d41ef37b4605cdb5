//! The typed face of the db-test plugin.

use crate::bindings::db_test::{DbTest, DbTestPre};
use crate::error::boxed;
use crate::plugin::Plugin;
use crate::state::CallState;
use crate::{Error, Result};

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
    /// [`Error::WrongExports`] when it does not.
    pub fn new(plugin: Plugin) -> Result<Self> {
        let pre =
            DbTestPre::new(plugin.instance_pre().clone()).map_err(|e| Error::WrongExports {
                plugin: plugin.name().to_string(),
                world: "plinth:test/db-test",
                source: boxed(e),
            })?;
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
    /// The call errors of [`Error`]: trap, time or memory limit, commit.
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
    /// As [`DbTestPlugin::run`], and [`Error::Join`].
    pub async fn run_async(&self) -> Result<Vec<Check>> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || this.run()).await?
    }
}
