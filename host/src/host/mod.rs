//! The host side of every WIT interface, one file per interface.
//!
//! Each method is a thin adapter: check the plugin's grant, convert the
//! arguments, call the store inside the call's unit of work, convert the
//! result. Expected failures become the WIT `error` variant; only host faults
//! and limit breaches trap.

mod attempts;
mod clock;
mod credentials;
mod mailer;
mod sessions;
mod tokens;
mod types;
mod users;

use crate::grants::{Access, Interface};
use crate::state::CallState;
use plinth_store::Unit;

pub use mailer::MailError;
pub use mailer::{MAIL_PER_RECIPIENT, MAIL_WINDOW_SECONDS};

/// The error a database host function returns before it reaches the guest.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    /// The store answered with an error; expected ones reach the guest as the
    /// matching WIT case, faults as `internal`.
    #[error(transparent)]
    Store(#[from] plinth_store::Error),
    /// The plugin is not granted this access to the interface.
    #[error("access to {interface} ({access}) is not granted")]
    AccessDenied {
        /// The interface's WIT name.
        interface: &'static str,
        /// The access that was asked for.
        access: Access,
    },
    /// Abort the guest: a host fault or a breached limit.
    #[error("trap: {0}")]
    Trap(wasmtime::Error),
}

impl CallState {
    /// The call's unit of work, for an operation needing `access` to `interface`.
    pub(crate) fn unit_for(
        &mut self,
        interface: Interface,
        access: Access,
    ) -> Result<&mut Unit, HostError> {
        if !self.plugin.grants.allows(interface, access) {
            tracing::debug!(plugin = %self.plugin.name, interface = interface.wit_name(), %access, "access denied");
            return Err(HostError::AccessDenied {
                interface: interface.wit_name(),
                access,
            });
        }
        self.unit().map_err(HostError::Store)
    }
}
