//! The plugin components of `guests/`, built for wasm32-wasip2 (release) by
//! this crate's build script, which also copies each guest's manifest beside
//! its `.wasm`.
//!
//! ```
//! let db_test = plinth_guests::DB_TEST;
//! assert_eq!(db_test.name, "db-test");
//! assert!(std::path::Path::new(db_test.wasm).exists());
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

impl Guest {
    /// The guest called `name`, if there is one.
    pub fn by_name(name: &str) -> Option<Guest> {
        ALL.iter().copied().find(|g| g.name == name)
    }
}

include!(concat!(env!("OUT_DIR"), "/guests.rs"));
