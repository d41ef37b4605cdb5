//! `plinth:auth/attempts`: failure counters kept in the database, for a
//! plugin's throttling.

use super::{Database, DbView, HostError};
use crate::bindings::plinth::auth::attempts::{self, Failures};
use crate::capability::{Capability, Function, Gate, Interface};
use crate::grants::Access;

/// `plinth:auth/attempts`.
pub const ATTEMPTS: Interface = Interface {
    name: "plinth:auth/attempts",
    version: "0.1.0",
    summary: "consecutive-failure counters under a key, for throttling",
    gate: Gate::Manifest,
    functions: &[
        Function::read("get-failures"),
        Function::write("record-failure"),
        Function::write("reserve-failure"),
        Function::write("clear-failures"),
    ],
};

/// The capability: links `plinth:auth/attempts`.
pub const CAPABILITY: Capability = Capability {
    interfaces: &[ATTEMPTS],
    add_to_linker: |linker| {
        attempts::add_to_linker::<_, Database>(linker, |s| DbView::of(s, &ATTEMPTS))
    },
};

const GET: Access = ATTEMPTS.access("get-failures");
const RECORD: Access = ATTEMPTS.access("record-failure");
const RESERVE: Access = ATTEMPTS.access("reserve-failure");
const CLEAR: Access = ATTEMPTS.access("clear-failures");

fn wit(f: plinth_store::Failures) -> Failures {
    Failures {
        count: f.count,
        last_at: f.last_at,
    }
}

impl attempts::Host for DbView<'_> {
    fn get_failures(&mut self, key: String) -> Result<Failures, HostError> {
        Ok(wit(self.unit(GET)?.get_failures(&key)?))
    }

    fn record_failure(&mut self, key: String) -> Result<Failures, HostError> {
        Ok(wit(self.unit(RECORD)?.record_failure(&key)?))
    }

    fn reserve_failure(
        &mut self,
        key: String,
        expected: u32,
    ) -> Result<Option<Failures>, HostError> {
        let reserved = self.unit(RESERVE)?.reserve_failure(&key, expected)?;
        Ok(reserved.map(wit))
    }

    fn clear_failures(&mut self, key: String) -> Result<(), HostError> {
        Ok(self.unit(CLEAR)?.clear_failures(&key)?)
    }
}
