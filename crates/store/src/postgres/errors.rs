//! The server's answers as the store's errors.

use tokio_postgres::error::SqlState;

use crate::{EngineError, Error, UniqueField};

/// Classifies the server's answer: a unique violation becomes
/// [`Error::Conflict`] by the constraint's name (never by its message), a
/// foreign key violation [`Error::NotFound`], lock and cancel outcomes
/// [`Error::Busy`], a lost connection [`Error::Unavailable`].
pub(crate) fn classify(e: tokio_postgres::Error) -> Error {
    let Some(db) = e.as_db_error() else {
        return if e.is_closed() {
            lost(e)
        } else {
            Error::Engine(EngineError::new(e))
        };
    };
    let code = db.code();
    if *code == SqlState::UNIQUE_VIOLATION {
        if let Some(field) = db.constraint().and_then(unique_field) {
            return Error::Conflict(field);
        }
    } else if *code == SqlState::FOREIGN_KEY_VIOLATION {
        return Error::NotFound;
    } else if [
        SqlState::LOCK_NOT_AVAILABLE,
        SqlState::T_R_DEADLOCK_DETECTED,
        SqlState::T_R_SERIALIZATION_FAILURE,
        SqlState::QUERY_CANCELED,
    ]
    .contains(code)
    {
        return Error::Busy;
    } else if [
        SqlState::ADMIN_SHUTDOWN,
        SqlState::CRASH_SHUTDOWN,
        SqlState::CANNOT_CONNECT_NOW,
    ]
    .contains(code)
    {
        return lost(e);
    }
    // tokio-postgres's own text is "db error"; the server's message and
    // code say what happened.
    let message = format!("{} ({})", db.message(), code.code());
    Error::Engine(EngineError::described(message, e))
}

/// The unique field behind a constraint of the PostgreSQL schema.
fn unique_field(constraint: &str) -> Option<UniqueField> {
    Some(match constraint {
        "users_uuid_unique" => UniqueField::Uuid,
        "users_name_unique" | "users_name_key_unique" => UniqueField::Name,
        "users_email_unique" => UniqueField::Email,
        "sessions_pkey" => UniqueField::SessionId,
        "email_verification_tokens_pkey" | "password_reset_tokens_pkey" => UniqueField::Token,
        _ => return None,
    })
}

pub(crate) fn lost(e: tokio_postgres::Error) -> Error {
    Error::Unavailable(EngineError::new(e))
}
