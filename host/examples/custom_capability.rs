//! A host interface of the embedder's own, end to end: `acme:tally/counter`,
//! a counter the host keeps for each call, written as a [`Capability`] whose
//! state lives in the call's [`CallState`]; and a component that imports it,
//! made from WAT text, loaded with a grant given in code and called.
//!
//! ```text
//! cargo run -p plinth-host --example custom_capability
//! ```
//!
//! `cargo test -p plinth-host` runs the tests at the bottom (the example is
//! built as a test target: `test = true` in `host/Cargo.toml`).

use plinth_host::capability::{Capability, Function, Gate, HasView, Interface, View};
use plinth_host::{Access, CallState, Manifest, Plugin, Runtime, RuntimeOptions};
use plinth_store::Db;

/// The bindings of the interface, generated from its WIT.
mod bindings {
    wasmtime::component::bindgen!({
        inline: "
            package acme:tally@1.0.0;

            /// A counter the host keeps for each call.
            interface counter {
                /// Adds `by` to the call's count and answers the new total.
                bump: func(by: u32) -> u64;
            }

            world host {
                import counter;
            }
        ",
        world: "host",
        // Host functions return `wasmtime::Result`: a refused grant traps.
        imports: { default: trappable },
    });
}

use bindings::acme::tally::counter;

/// `acme:tally/counter` as the registry describes it: granted in code only.
pub const COUNTER: Interface = Interface {
    name: "acme:tally/counter",
    version: "1.0.0",
    summary: "a counter the host keeps for each call",
    gate: Gate::Code,
    functions: &[Function::write("bump")],
};

const BUMP: Access = COUNTER.access("bump");

/// The capability's state in one call's `Store`: made by `Default` when the
/// call first reaches it, or seeded by the embedder before the call.
#[derive(Debug, Default)]
pub struct Tally {
    /// The sum of every `bump` of the call.
    pub total: u64,
}

/// The capability: its interface, and its host functions linked over a
/// [`View`] of its [`Tally`].
pub const TALLY: Capability = Capability {
    interfaces: &[COUNTER],
    add_to_linker: |linker| {
        counter::add_to_linker::<CallState, HasView<Tally>>(linker, |s| s.view(&COUNTER))
    },
};

impl counter::Host for View<'_, Tally> {
    fn bump(&mut self, by: u32) -> wasmtime::Result<u64> {
        self.check(BUMP)?;
        self.state.total = self.state.total.saturating_add(u64::from(by));
        Ok(self.state.total)
    }
}

/// A component importing `acme:tally/counter`, whose export `run` bumps
/// the counter by 2, then by 3, and answers the total.
pub const TALLIER_WAT: &str = r#"
(component
  (import "acme:tally/counter@1.0.0" (instance $counter
    (export "bump" (func (param "by" u32) (result u64)))))
  (core func $bump (canon lower (func $counter "bump")))
  (core module $m
    (import "acme" "bump" (func $bump (param i32) (result i64)))
    (func (export "run") (result i64)
      (drop (call $bump (i32.const 2)))
      (call $bump (i32.const 3))))
  (core instance $acme (export "bump" (func $bump)))
  (core instance $i (instantiate $m (with "acme" (instance $acme))))
  (func (export "run") (result u64) (canon lift (core func $i "run"))))
"#;

/// A runtime over `db` that offers the capability, and the component loaded
/// with `access` to it.
///
/// # Errors
/// The runtime's, and [`plinth_host::Error`]s of the load (a refused import).
pub fn load(db: Db, access: Option<Access>) -> anyhow::Result<Plugin> {
    let runtime = Runtime::with_options(db, RuntimeOptions::default().capability(TALLY))?;
    let mut manifest = Manifest::new("tallier");
    if let Some(access) = access {
        // A `Gate::Code` interface is granted in code; a manifest file that
        // names it is refused.
        manifest = manifest.grant(COUNTER, access);
    }
    Ok(runtime.load_bytes(&wat::parse_str(TALLIER_WAT)?, manifest)?)
}

/// What one call of `run` answered, and the [`Tally`] the host kept.
#[derive(Debug, PartialEq, Eq)]
pub struct Outcome {
    /// The export's answer.
    pub answered: u64,
    /// The call's state after it.
    pub kept: u64,
}

/// Calls `run` once, the call's [`Tally`] seeded with `start` (none: made
/// by `Default` on the first `bump`), and reads the state after the call.
///
/// # Errors
/// The call's ([`plinth_host::Error::Trap`] when the grant is too small).
pub fn call(plugin: &Plugin, start: Option<u64>) -> plinth_host::Result<Outcome> {
    plugin.call_with_store("run", |store| {
        if let Some(total) = start {
            store.data_mut().insert_state(Tally { total });
        }
        let instance = plugin.instantiate(store)?;
        let run = instance.get_typed_func::<(), (u64,)>(&mut *store, "run")?;
        let (answered,) = run.call(&mut *store, ())?;
        let kept = store.data().state::<Tally>().map_or(0, |t| t.total);
        Ok(Outcome { answered, kept })
    })
}

fn main() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let plugin = load(Db::open(dir.path().join("app.db"))?, Some(Access::Write))?;
    let fresh = call(&plugin, None)?;
    println!(
        "a fresh call: run answered {}, the host kept {}",
        fresh.answered, fresh.kept
    );
    let seeded = call(&plugin, Some(10))?;
    println!(
        "seeded with 10: run answered {}, the host kept {}",
        seeded.answered, seeded.kept
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db(dir: &tempfile::TempDir) -> anyhow::Result<Db> {
        Ok(Db::open(dir.path().join("app.db"))?)
    }

    #[test]
    fn each_call_bumps_a_counter_of_its_own_that_the_embedder_seeds_and_reads() -> anyhow::Result<()>
    {
        let dir = tempfile::tempdir()?;
        let plugin = load(db(&dir)?, Some(Access::Write))?;
        assert_eq!(
            call(&plugin, None)?,
            Outcome {
                answered: 5,
                kept: 5
            }
        );
        // The next call starts from its own state, not the last call's.
        assert_eq!(
            call(&plugin, None)?,
            Outcome {
                answered: 5,
                kept: 5
            }
        );
        assert_eq!(
            call(&plugin, Some(10))?,
            Outcome {
                answered: 15,
                kept: 15
            }
        );
        Ok(())
    }

    #[test]
    fn a_read_grant_cannot_bump() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let plugin = load(db(&dir)?, Some(Access::Read))?;
        let err = call(&plugin, None).err();
        assert!(
            matches!(&err, Some(plinth_host::Error::Trap { message, .. })
                if message.contains("acme:tally/counter (read-write) is not granted")),
            "{err:?}"
        );
        Ok(())
    }

    #[test]
    fn a_component_importing_it_ungranted_is_refused_at_load() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let err = load(db(&dir)?, None).err().map(|e| format!("{e:#}"));
        assert!(
            err.as_deref().is_some_and(
                |e| e.contains("acme:tally/counter@1.0.0, which its manifest does not grant")
            ),
            "{err:?}"
        );
        Ok(())
    }
}
