//! plinth's integration tests: the guests built from source, loaded through
//! the host, against real SQLite files in temp dirs.

mod argon2;
mod auth;
mod bench;
mod db_test;
mod hosts;
mod mail;
mod misbehave;
mod runtime;
mod sandbox;
mod template;
mod util;

/// Every guest in `guests/` must have a module of tests here, named after it.
macro_rules! assert_every_guest_is_tested {
    ($($guest:ident)*) => {
        $( #[allow(unused_imports)] use crate::$guest as _; )*
    };
}
plinth_guests::foreach_guest!(assert_every_guest_is_tested);
