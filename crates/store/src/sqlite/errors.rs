//! SQLite's answers as the store's errors.

use crate::{EngineError, Error, UniqueField};

impl From<rusqlite::Error> for EngineError {
    fn from(e: rusqlite::Error) -> Self {
        Self::new(e)
    }
}

impl From<rusqlite::Error> for Error {
    /// Classifies SQLite's answer: busy and locked become [`Error::Busy`], a
    /// unique constraint becomes [`Error::Conflict`] naming the column, a
    /// foreign key failure becomes [`Error::NotFound`] (the referenced user is
    /// missing), and no rows becomes [`Error::NotFound`].
    fn from(err: rusqlite::Error) -> Self {
        use rusqlite::ErrorCode;
        match &err {
            rusqlite::Error::QueryReturnedNoRows => Error::NotFound,
            rusqlite::Error::SqliteFailure(e, msg) => match e.code {
                ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked => Error::Busy,
                ErrorCode::ConstraintViolation => {
                    let msg = msg.as_deref().unwrap_or("");
                    if msg.starts_with("FOREIGN KEY") {
                        Error::NotFound
                    } else if let Some(field) = UniqueField::from_constraint_message(msg) {
                        Error::Conflict(field)
                    } else {
                        Error::Engine(EngineError::new(err))
                    }
                }
                _ => Error::Engine(EngineError::new(err)),
            },
            _ => Error::Engine(EngineError::new(err)),
        }
    }
}
