//! `plinth:database/clock`: the host's clock, which stamps every row, and
//! the call's own offset from it.

use std::sync::Arc;

use plinth_store::Clock;
use wasmtime::component::HasSelf;

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
    add_to_linker: |linker| clock::add_to_linker::<_, HasSelf<ClockCtx>>(linker, |s| &mut s.clock),
};

/// The clock of one call: the database's, and how many seconds the call
/// runs ahead of it. The offset is the call's own (a test capability moves
/// it with [`advance`](Self::advance); calls beside it keep theirs), and
/// every call starts at 0. The call's unit of work stamps rows and checks
/// expiries at the same time `now` answers.
pub struct ClockCtx {
    clock: Arc<Clock>,
    offset: i64,
}

impl ClockCtx {
    pub(crate) fn new(clock: Arc<Clock>) -> Self {
        Self { clock, offset: 0 }
    }

    /// Now, for the current call: the database's clock plus the call's
    /// offset.
    pub fn now(&self) -> i64 {
        self.clock.now().saturating_add(self.offset)
    }

    /// Seconds the current call's clock runs ahead of the database's.
    pub fn offset(&self) -> i64 {
        self.offset
    }

    /// Moves the current call's clock `seconds` forward — its reads of
    /// `clock.now`, the rows it stamps and the expiries it checks — and no
    /// other call's. For test capabilities.
    pub fn advance(&mut self, seconds: u32) {
        self.offset = self.offset.saturating_add(i64::from(seconds));
    }

    /// Starts a call: its clock back at the database's.
    pub(crate) fn start_call(&mut self) {
        self.offset = 0;
    }
}

impl clock::Host for ClockCtx {
    fn now(&mut self) -> wasmtime::Result<i64> {
        Ok(ClockCtx::now(self))
    }
}
