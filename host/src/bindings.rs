//! Generated bindings for the plinth WIT worlds, all in one place.
//!
//! Every database import is `trappable`: host functions return
//! `Result<T, HostError>`, where a [`HostError`](crate::host::HostError) is
//! either an expected failure (mapped to the WIT `error` variant the guest
//! branches on) or a trap (a host bug or a limit breach).

/// The `plinth:database/database` world: the imports every database plugin
/// links against.
#[allow(missing_docs)]
pub mod database {
    wasmtime::component::bindgen!({
        path: ["../wit/database"],
        world: "plinth:database/database",
        imports: {
            // Host calls are traced (a span per call, its arguments and
            // result at TRACE level), except those whose values are secrets:
            // password hashes (and the new user record that carries one).
            "plinth:database/credentials": trappable,
            "plinth:database/users.create-user": trappable,
            default: trappable | tracing,
        },
        additional_derives: [PartialEq, Eq],
        trappable_error_type: {
            "plinth:database/types.error" => crate::host::HostError,
        },
    });
}

/// The `plinth:test/db-test` world: exercises every database operation.
#[allow(missing_docs)]
pub mod db_test {
    wasmtime::component::bindgen!({
        path: ["../wit/database", "../wit/test"],
        world: "plinth:test/db-test",
        imports: { default: trappable | tracing },
        additional_derives: [PartialEq, Eq],
        with: {
            "plinth:database": super::database::plinth::database,
        },
    });
}

/// The `plinth:auth/auth-plugin` world: accounts and sessions, with the
/// mailer and failure counters it imports.
#[allow(missing_docs)]
pub mod auth {
    wasmtime::component::bindgen!({
        path: ["../wit/database", "../wit/auth"],
        world: "plinth:auth/auth-plugin",
        imports: {
            // Mail bodies carry tokens: not traced.
            "plinth:auth/mailer": trappable,
            default: trappable | tracing,
        },
        additional_derives: [PartialEq, Eq],
        trappable_error_type: {
            "plinth:database/types.error" => crate::host::HostError,
            "plinth:auth/mailer.mail-error" => crate::host::MailError,
        },
        with: {
            "plinth:database": super::database::plinth::database,
        },
    });
}

/// The `plinth:test/bench` world: exports that isolate one cost each.
#[allow(missing_docs, clippy::too_many_arguments)]
pub mod bench {
    wasmtime::component::bindgen!({
        path: ["../wit/database", "../wit/test"],
        world: "plinth:test/bench",
        imports: { default: trappable | tracing },
        additional_derives: [PartialEq, Eq],
        with: {
            "plinth:database": super::database::plinth::database,
        },
    });
}

pub use database::plinth::database::types::{
    Error as WitError, FieldChange, NewUser, ProfileChanges, Session, Token, UniqueField, User,
};
