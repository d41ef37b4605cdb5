//! The smallest useful plinth plugin. Copy `guests/template`, rename it,
//! edit `wit/world.wit`, build with
//! `cargo build --target wasm32-wasip2 --release`, put `template.toml`
//! beside the `.wasm`, and call it with `plinth call path/to/x.wasm 'greet("…")'`.
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
        world: "plinth:template/template",
        generate_all,
    });
}

use bindings::plinth::database::types::{Error, User};
use bindings::plinth::database::users;

struct Template;

impl bindings::Guest for Template {
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

bindings::export!(Template with_types_in bindings);
