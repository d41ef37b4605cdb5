//! plinth's integration tests: the guests built from source, loaded through
//! the host, against real databases: SQLite files in temp dirs (`all`), and
//! the same suite on PostgreSQL databases of a throwaway cluster
//! (`all_postgres`, which includes this file).

pub(crate) mod approval;
pub(crate) mod argon2;
pub(crate) mod auth;
pub(crate) mod bench;
pub(crate) mod db_test;
pub(crate) mod hosts;
pub(crate) mod http_notes;
pub(crate) mod http_probe;
pub(crate) mod mail;
pub(crate) mod misbehave;
pub(crate) mod notes;
pub(crate) mod runtime;
pub(crate) mod sandbox;
pub(crate) mod sql_probe;
pub(crate) mod template;
pub(crate) mod util;

/// Every guest in `guests/` must have a module of tests here, named after it.
macro_rules! assert_every_guest_is_tested {
    ($($guest:ident)*) => {
        $( #[allow(unused_imports)] use crate::$guest as _; )*
    };
}
plinth_guests::foreach_guest!(assert_every_guest_is_tested);
