//! `plinth:auth/attempts`: failure counters kept in the database.

use super::HostError;
use crate::bindings::auth::plinth::auth::attempts::{Failures, Host};
use crate::grants::{Access, Interface};
use crate::state::CallState;

const I: Interface = Interface::Attempts;

fn wit(f: plinth_store::Failures) -> Failures {
    Failures {
        count: f.count,
        last_at: f.last_at,
    }
}

impl Host for CallState {
    fn get_failures(&mut self, key: String) -> Result<Failures, HostError> {
        Ok(wit(self.unit_for(I, Access::Read)?.get_failures(&key)?))
    }

    fn record_failure(&mut self, key: String) -> Result<Failures, HostError> {
        Ok(wit(self
            .unit_for(I, Access::Write)?
            .record_failure(&key)?))
    }

    fn clear_failures(&mut self, key: String) -> Result<(), HostError> {
        Ok(self.unit_for(I, Access::Write)?.clear_failures(&key)?)
    }
}
