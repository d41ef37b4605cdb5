//! `plinth:database/clock` (always available) and `plinth:test/clock`
//! (moves the runtime's clock; granted to test plugins only).

use crate::bindings::database::plinth::database::clock;
use crate::bindings::db_test::plinth::test::clock as test_clock;
use crate::grants::{Access, Interface};
use crate::state::CallState;

impl clock::Host for CallState {
    fn now(&mut self) -> wasmtime::Result<i64> {
        Ok(self.db.clock().now())
    }
}

impl test_clock::Host for CallState {
    fn advance(&mut self, seconds: u32) -> wasmtime::Result<()> {
        // The linker only offers this interface to plugins granted it; this is
        // a second check, and a breach is a host bug, so it traps.
        if !self
            .plugin
            .grants
            .allows(Interface::TestClock, Access::Write)
        {
            wasmtime::bail!("plinth:test/clock is not granted to {}", self.plugin.name);
        }
        self.db.clock().advance(seconds);
        Ok(())
    }
}
