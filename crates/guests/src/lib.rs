//! The plugin components of `guests/`, built for wasm32-wasip2 (release) by
//! this crate's build script, which also copies each guest's manifest (and
//! its `<name>.migrations` directory) beside its `.wasm`.
//!
//! ```
//! let db_test = plinth_guests::DB_TEST;
//! assert_eq!(db_test.name, "db-test");
//! assert!(std::path::Path::new(db_test.wasm).exists());
//! // The same, as bytes in the binary (what the `plinth` CLI ships).
//! let embedded = plinth_guests::EMBEDDED.iter().find(|g| g.name == "db-test").unwrap();
//! assert!(embedded.wasm.starts_with(b"\0asm"));
//! ```

/// A built guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Guest {
    /// The plugin's name (its directory under `guests/`).
    pub name: &'static str,
    /// Absolute path of the built component.
    pub wasm: &'static str,
    /// Absolute path of its manifest, copied beside the component.
    pub manifest: &'static str,
}

/// A built guest carried as bytes ([`EMBEDDED`]): what a binary embeds so
/// that it runs after the build directory is gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Embedded {
    /// The plugin's name (its directory under `guests/`).
    pub name: &'static str,
    /// The component.
    pub wasm: &'static [u8],
    /// Its manifest (TOML), when the guest ships one.
    pub manifest: Option<&'static str>,
    /// Its migrations: `(dialect, file name, SQL)`, from the
    /// `<name>.migrations` directory beside its manifest.
    pub migrations: &'static [(&'static str, &'static str, &'static str)],
}

impl Guest {
    /// The guest called `name`, if there is one.
    pub fn by_name(name: &str) -> Option<Guest> {
        ALL.iter().copied().find(|g| g.name == name)
    }
}

include!(concat!(env!("OUT_DIR"), "/guests.rs"));
