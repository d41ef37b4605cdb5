//! `plinth:database/types`: how host errors reach the guest.

use plinth_store::Error as StoreError;

use super::HostError;
use crate::bindings::database::plinth::database::types::Host;
use crate::bindings::{UniqueField, WitError};
use crate::state::CallState;

impl Host for CallState {
    fn convert_error(&mut self, err: HostError) -> wasmtime::Result<WitError> {
        Ok(match err {
            HostError::Store(e) => match e {
                StoreError::NotFound => WitError::NotFound,
                StoreError::Conflict(field) => WitError::Conflict(unique_field(field)),
                StoreError::InvalidInput(why) => WitError::InvalidInput(why),
                StoreError::Busy => WitError::Busy,
                other => {
                    tracing::error!(plugin = %self.plugin.name, error = %other, "database fault");
                    WitError::Internal("database error; see the host's log".into())
                }
            },
            HostError::AccessDenied { interface, access } => {
                WitError::AccessDenied(format!("{interface} ({access})"))
            }
            HostError::Trap(e) => return Err(e),
        })
    }
}

fn unique_field(field: plinth_store::UniqueField) -> UniqueField {
    use plinth_store::UniqueField as S;
    match field {
        S::Uuid => UniqueField::Uuid,
        S::Name => UniqueField::Name,
        S::Email => UniqueField::Email,
        S::SessionId => UniqueField::SessionId,
        S::Token => UniqueField::Token,
    }
}
