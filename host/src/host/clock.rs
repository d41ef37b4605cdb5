//! `plinth:test/clock`: lets a granted test plugin move the runtime's clock.

use crate::bindings::db_test::plinth::test::clock::Host;
use crate::grants::{Access, Interface};
use crate::state::CallState;

impl Host for CallState {
    fn now(&mut self) -> wasmtime::Result<i64> {
        Ok(self.db.clock().now())
    }

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
