//! The `plinth:test` capability: `plinth:test/clock` moves the clock of the
//! call that asks, so that expiry can be tested without waiting (time travel
//! is still not for plugins, which is why only code may grant it), and
//! `plinth:test/report` holds the record test guests report checks in.

use plinth_host::capabilities::clock::ClockCtx;
use plinth_host::capability::{Capability, Function, Gate, HasView, Interface, View};
use plinth_host::{Access, CallState};

use crate::bindings::db_test::plinth::test::{clock, report};

/// `plinth:test/report`: types only, open to any plugin on a runtime that
/// registers the test capability.
pub const TEST_REPORT: Interface = Interface {
    name: "plinth:test/report",
    version: "0.1.0",
    summary: "the record test guests report their checks in (tests only)",
    gate: Gate::Open,
    functions: &[],
};

/// `plinth:test/clock`: granted in code only ([`Gate::Code`]).
pub const TEST_CLOCK: Interface = Interface {
    name: "plinth:test/clock",
    version: "0.1.0",
    summary: "moves its call's clock forward (tests only)",
    gate: Gate::Code,
    functions: &[Function::write("advance")],
};

/// The test capability (`plinth:test/clock` and `plinth:test/report`), for
/// [`RuntimeOptions::capability`](plinth_host::RuntimeOptions::capability).
/// Its host function sees the call's clock ([`ClockCtx`]) and nothing else.
pub const TEST_CAPABILITY: Capability = Capability {
    interfaces: &[TEST_CLOCK, TEST_REPORT],
    add_to_linker: |linker| {
        clock::add_to_linker::<CallState, HasView<ClockCtx>>(linker, |s| {
            s.clock_view(&TEST_CLOCK)
        })?;
        report::add_to_linker::<CallState, HasView<ClockCtx>>(linker, |s| {
            s.clock_view(&TEST_REPORT)
        })
    },
};

const ADVANCE: Access = TEST_CLOCK.access("advance");

impl report::Host for View<'_, ClockCtx> {}

impl clock::Host for View<'_, ClockCtx> {
    fn advance(&mut self, seconds: u32) -> wasmtime::Result<()> {
        // The import check refuses a plugin that imports this interface
        // without a grant; this is a second check, and a breach is a host
        // bug, so it traps.
        self.check(ADVANCE)?;
        // This call's clock only: calls running beside it (other threads,
        // other hosts on PostgreSQL) keep theirs.
        self.state.advance(seconds);
        Ok(())
    }
}
