//! Shared fixtures: a fresh database file and a runtime on a movable clock.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Result;
use plinth_guests::Guest;
use plinth_host::{Manifest, Plugin, Runtime};
use plinth_store::{Clock, Db, Options};
use tempfile::TempDir;

/// A runtime over a fresh database file in its own temp dir.
pub struct Fixture {
    pub dir: TempDir,
    pub runtime: Runtime,
    pub clock: Arc<Clock>,
}

impl Fixture {
    pub fn new() -> Result<Self> {
        let dir = tempfile::tempdir()?;
        let clock = Arc::new(Clock::system());
        let db = Db::open_with(
            dir.path().join("plinth.db"),
            Options {
                clock: clock.clone(),
                ..Options::default()
            },
        )?;
        let runtime = Runtime::new(db)?;
        Ok(Self {
            dir,
            runtime,
            clock,
        })
    }

    pub fn db_path(&self) -> PathBuf {
        self.runtime.db().path().to_path_buf()
    }

    /// A direct connection to the file, to read back what plugins wrote.
    pub fn sqlite(&self) -> Result<rusqlite::Connection> {
        Ok(rusqlite::Connection::open(self.db_path())?)
    }

    /// Loads a built guest with the manifest shipped beside it.
    pub fn load(&self, guest: Guest) -> Result<Plugin> {
        let manifest = Manifest::from_file(guest.manifest.as_ref())?;
        self.load_with(guest, manifest)
    }

    /// Loads a built guest with the given manifest.
    pub fn load_with(&self, guest: Guest, manifest: Manifest) -> Result<Plugin> {
        Ok(self.runtime.load_file(guest.wasm.as_ref(), manifest)?)
    }
}
