//! `plinth:database/types`: the shared records and the `error` variant, and
//! how a host error reaches the guest as one of its cases.

use plinth_store::Error as StoreError;

use super::{Database, DbView, HostError};
use crate::bindings::plinth::database::types;
use crate::bindings::{UniqueField, WitError};
use crate::capability::{Capability, Gate, Interface};

/// `plinth:database/types`: types only, open to every plugin.
pub const TYPES: Interface = Interface {
    name: "plinth:database/types",
    version: "0.1.0",
    summary: "the records and the error variant the database interfaces share",
    gate: Gate::Open,
    functions: &[],
};

/// The capability: links `plinth:database/types`.
pub const CAPABILITY: Capability = Capability {
    interfaces: &[TYPES],
    add_to_linker: |linker| types::add_to_linker::<_, Database>(linker, |s| DbView::of(s, &TYPES)),
};

impl types::Host for DbView<'_> {
    fn convert_error(&mut self, err: HostError) -> wasmtime::Result<WitError> {
        Ok(match err {
            HostError::Store(e) => match e {
                StoreError::NotFound => WitError::NotFound,
                StoreError::Conflict(field) => WitError::Conflict(unique_field(field)),
                StoreError::InvalidInput(why) => WitError::InvalidInput(why),
                StoreError::Busy => WitError::Busy,
                other => {
                    tracing::error!(plugin = %self.plugin_name(), error = %other, "database fault");
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
