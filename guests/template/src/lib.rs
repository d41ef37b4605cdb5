//! A plinth plugin in Rust: `plinth new NAME --lang rust` writes this file
//! (it is also the repository's template guest). Build it with
//! `cargo build --target wasm32-wasip2 --release`; the README beside it has
//! the call.
//!
//! It uses `std`, the easy start. A `std` guest imports WASI's stdio,
//! terminal, environment and exit interfaces for its panic message; the
//! shipped plugins (auth, bench) are `#![no_std]` on `guests/lib/rt` instead,
//! which makes each fresh instance ~3 µs cheaper (docs/DECISIONS.md, "Guests").

mod bindings {
    wit_bindgen::generate!({
        // This plugin's own WIT package; the plinth packages it uses are in
        // wit/deps/ (`plinth wit wit` writes them there).
        path: "wit",
        world: "local:plugin/plugin",
        generate_all,
    });
}

use bindings::plinth::database::types::{Error, User};
use bindings::plinth::database::users;

struct Plugin;

impl bindings::Guest for Plugin {
    fn greet(email: String) -> String {
        match users::get_user_by_email(&email) {
            Ok(user) => format!("hello, {}!", user.name),
            Err(Error::NotFound) => format!("nobody is registered as {email}"),
            Err(e) => format!("the database said {e:?}"),
        }
    }

    fn profile(email: String) -> Result<User, Error> {
        users::get_user_by_email(&email)
    }
}

bindings::export!(Plugin with_types_in bindings);
