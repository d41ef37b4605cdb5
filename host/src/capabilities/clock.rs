//! `plinth:database/clock`: the host's clock, which stamps every row.

use super::{Database, DbView};
use crate::bindings::plinth::database::clock;
use crate::capability::{Capability, Function, Gate, Interface};

/// `plinth:database/clock`: a harmless read, open to every plugin.
pub const CLOCK: Interface = Interface {
    name: "plinth:database/clock",
    version: "0.1.0",
    summary: "the host's clock (Unix seconds), the one that stamps every row",
    gate: Gate::Open,
    functions: &[Function::read("now")],
};

/// The capability: links `plinth:database/clock`.
pub const CAPABILITY: Capability = Capability {
    interfaces: &[CLOCK],
    add_to_linker: |linker| {
        clock::add_to_linker::<_, Database>(linker, |s| s.database.view(&CLOCK))
    },
};

impl clock::Host for DbView<'_> {
    fn now(&mut self) -> wasmtime::Result<i64> {
        Ok(self.ctx().now())
    }
}
