//! Generated bindings for every interface the host implements, all in one
//! place: one `bindgen!` over a world that imports them all.
//!
//! Every import is `trappable`: host functions return `Result<T, E>`, where
//! `E` ([`HostError`](crate::capabilities::HostError),
//! [`MailError`](crate::capabilities::mailer::MailError)) is either an
//! expected failure, mapped to the WIT error variant the guest branches on, or
//! a trap (a host bug or a limit breach).
//!
//! Typed faces of plugins (in other crates) generate their worlds' exports
//! with `with: { "plinth:database": plinth_host::bindings::plinth::database, … }`,
//! so that every crate shares these types.

#![allow(missing_docs)]

wasmtime::component::bindgen!({
    path: "../wit/auth",
    inline: "
        package plinth:host;

        /// Every interface the runtime implements.
        world imports {
            include plinth:database/database@0.1.0;
            import plinth:auth/mailer@0.1.0;
            import plinth:auth/attempts@0.1.0;
        }
    ",
    world: "plinth:host/imports",
    imports: {
        // Host calls are traced (a span per call, its arguments and result
        // at TRACE level), except those whose values are secrets: password
        // hashes, and mail bodies, which carry tokens.
        "plinth:database/credentials": trappable,
        "plinth:auth/mailer": trappable,
        default: trappable | tracing,
    },
    additional_derives: [PartialEq, Eq],
    trappable_error_type: {
        "plinth:database/types.error" => crate::capabilities::HostError,
        "plinth:auth/mailer.mail-error" => crate::capabilities::mailer::MailError,
    },
});

pub use plinth::database::types::{
    Error as WitError, FieldChange, NewUser, ProfileChanges, Session, Token, UniqueField, User,
};

/// `plinth:sql`, bound on its own: its values carry floats, which cannot
/// derive `Eq` as the database records do.
pub mod sql_world {
    wasmtime::component::bindgen!({
        path: "../wit/sql",
        inline: "
            package plinth:host-sql;

            world imports {
                import plinth:sql/sql@0.1.0;
            }
        ",
        world: "plinth:host-sql/imports",
        imports: { default: trappable | tracing },
        additional_derives: [PartialEq],
        trappable_error_type: {
            "plinth:sql/types.error" => crate::capabilities::sql::SqlHostError,
        },
    });
}

/// `wasi:keyvalue` 0.2.0-draft2, from the vendored WIT. Its buckets and CAS
/// handles are entries of the instance's key-value resource table
/// (`capabilities::keyvalue`).
pub mod keyvalue_world {
    wasmtime::component::bindgen!({
        path: "../wit/keyvalue",
        world: "wasi:keyvalue/imports",
        imports: { default: trappable | tracing },
        with: {
            "wasi:keyvalue/store.bucket": crate::capabilities::keyvalue::BucketHandle,
            "wasi:keyvalue/atomics.cas": crate::capabilities::keyvalue::CasHandle,
        },
        trappable_error_type: {
            "wasi:keyvalue/store@0.2.0-draft2.error" => crate::capabilities::keyvalue::KvHostError,
        },
    });
}
