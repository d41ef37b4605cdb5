//! The typed face of the db-test plugin.

use plinth_host::Result;

use crate::bindings::db_test::DbTestPre;

pub use crate::bindings::db_test::plinth::test::report::Check;

plinth_host::typed_plugin!(
    /// A plugin known to export the `plinth:test/db-test` world.
    DbTestPlugin, DbTestPre<plinth_host::CallState>, "plinth:test/db-test", None
);

impl DbTestPlugin {
    /// Runs every check; one entry per check.
    ///
    /// # Errors
    /// The call errors of [`Error`](plinth_host::Error): trap, time or memory limit, commit.
    pub fn run(&self) -> Result<Vec<Check>> {
        self.call_one("run", ())
    }

    /// What the guest can see of its sandbox, one line per thing seen.
    ///
    /// # Errors
    /// As [`DbTestPlugin::run`].
    pub fn probe_sandbox(&self) -> Result<Vec<String>> {
        self.call_one("probe-sandbox", ())
    }

    /// [`run`](Self::run) from async code, on tokio's blocking pool.
    ///
    /// # Errors
    /// As [`DbTestPlugin::run`], and [`Error::Join`](plinth_host::Error::Join).
    pub async fn run_async(&self) -> Result<Vec<Check>> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || this.run()).await?
    }
}
