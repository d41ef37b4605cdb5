//! Test support for plinth: capabilities that only tests may use, and the
//! typed faces of the test guests.
//!
//! The runtime library holds none of this. A test capability is reachable
//! only when the embedder's code asks for it twice — registered on the
//! runtime, granted to one plugin — and a manifest file that names it is
//! refused:
//!
//! ```no_run
//! use plinth_host::{Access, Manifest, Runtime, RuntimeOptions};
//! use plinth_testing::{DbTestPlugin, TEST_CLOCK, TEST_CAPABILITY};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let db = plinth_store::Db::open("test.db")?;
//! let runtime = Runtime::with_options(
//!     db,
//!     RuntimeOptions::default().capability(TEST_CAPABILITY),
//! )?;
//! let manifest = Manifest::from_file("db-test.toml".as_ref())?.grant(TEST_CLOCK, Access::Write);
//! let db_test = DbTestPlugin::new(runtime.load_file("db_test.wasm".as_ref(), manifest)?)?;
//! for check in db_test.run()? {
//!     println!("{} {}", if check.passed { "ok  " } else { "FAIL" }, check.name);
//! }
//! # Ok(())
//! # }
//! ```

mod bench;
mod clock;
mod db_test;

pub use bench::BenchPlugin;
pub use clock::{TEST_CAPABILITY, TEST_CLOCK, TEST_REPORT};
pub use db_test::{Check, DbTestPlugin};

/// The generated bindings of the test worlds: their exports and the
/// `plinth:test` imports; the database imports are the runtime's.
#[allow(missing_docs, clippy::too_many_arguments)]
mod bindings {
    pub mod db_test {
        wasmtime::component::bindgen!({
            path: "../../wit/test",
            world: "plinth:test/db-test",
            imports: { default: trappable | tracing },
            additional_derives: [PartialEq, Eq],
            with: {
                "plinth:database": plinth_host::bindings::plinth::database,
            },
        });
    }

    pub mod bench {
        wasmtime::component::bindgen!({
            path: "../../wit/test",
            world: "plinth:test/bench",
            additional_derives: [PartialEq, Eq],
            with: {
                "plinth:database": plinth_host::bindings::plinth::database,
            },
        });
    }
}
