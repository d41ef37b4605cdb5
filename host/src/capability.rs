//! What a capability is: a unit the runtime registers.
//!
//! A [`Capability`] is one host interface (or a family of them, like WASI):
//! the WIT names it implements, whether a plugin needs a grant to import each,
//! which of their functions write, and the function that adds its host
//! implementation to a linker. The runtime knows capabilities only through
//! these values: the import check at load, the linker, the manifest parser,
//! `plinth plugin inspect` and the docs all read the same registry
//! ([`crate::capabilities::BUILTIN`] plus what an embedder adds through
//! [`RuntimeOptions::capabilities`](crate::RuntimeOptions::capabilities)).
//!
//! An embedder writes its own the way the built-in ones are written
//! (`host/src/capabilities/clock.rs` is the smallest): bindings for its WIT,
//! the state its host functions keep, a view of the call for them and an
//! `add_to_linker`. Its state lives in the call's [`CallState`], by type;
//! [`CallState::view`] hands its host functions a [`View`] of it — the state
//! and the caller, whose grant they check — and [`HasView`] is the
//! `HasData` that `bindgen!`'s `add_to_linker` is given:
//!
//! ```no_run
//! use plinth_host::capability::{Capability, Function, Gate, HasView, Interface, View};
//! use plinth_host::{Access, CallState, Manifest, Runtime, RuntimeOptions};
//!
//! wasmtime::component::bindgen!({
//!     inline: "
//!         package acme:tally@1.0.0;
//!         interface counter { bump: func(by: u32) -> u64; }
//!         world host { import counter; }
//!     ",
//!     imports: { default: trappable },
//! });
//! use acme::tally::counter;
//!
//! /// `acme:tally/counter`: a plugin may bump the call's counter.
//! pub const COUNTER: Interface = Interface {
//!     name: "acme:tally/counter",
//!     version: "1.0.0",
//!     summary: "a counter the host keeps for each call",
//!     gate: Gate::Code,
//!     functions: &[Function::write("bump")],
//! };
//!
//! /// The capability's state in a call, made by `Default` on first use.
//! #[derive(Default)]
//! pub struct Tally {
//!     pub total: u64,
//! }
//!
//! pub const TALLY: Capability = Capability {
//!     interfaces: &[COUNTER],
//!     add_to_linker: |linker| {
//!         counter::add_to_linker::<CallState, HasView<Tally>>(linker, |s| s.view(&COUNTER))
//!     },
//! };
//!
//! impl counter::Host for View<'_, Tally> {
//!     fn bump(&mut self, by: u32) -> wasmtime::Result<u64> {
//!         self.check(COUNTER.access("bump"))?;
//!         self.state.total += u64::from(by);
//!         Ok(self.state.total)
//!     }
//! }
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let db = plinth_store::Db::open("app.db")?;
//! let runtime = Runtime::with_options(db, RuntimeOptions::default().capability(TALLY))?;
//! // A `Gate::Code` interface is granted in code only; a manifest file that
//! // names it is refused.
//! let manifest = Manifest::new("tallier").grant(COUNTER, Access::Write);
//! # let _ = (runtime, manifest);
//! # Ok(())
//! # }
//! ```
//!
//! The whole of it — the WIT, the bindings, a component that imports it, the
//! grant given in code and the state read after a call — is the example
//! `host/examples/custom_capability.rs`, which `cargo test` runs.

use std::fmt;
use std::marker::PhantomData;

use wasmtime::component::{HasData, Linker};

use crate::capabilities::{HostError, PluginMeta};
use crate::grants::Access;
use crate::state::CallState;

/// One unit of host functionality: its interfaces and how to link them.
#[derive(Clone, Copy)]
pub struct Capability {
    /// The WIT interfaces it implements.
    pub interfaces: &'static [Interface],
    /// Adds its host functions to a linker. Called once per runtime.
    pub add_to_linker: fn(&mut Linker<CallState>) -> wasmtime::Result<()>,
}

impl fmt::Debug for Capability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.interfaces.iter().map(|i| i.name))
            .finish()
    }
}

/// What the host functions of one capability see of a call: its state
/// (`T`: an embedder's own, or a built-in context such as the clock's) and
/// who is calling, to check the grant of the interface they implement. Made
/// by [`CallState::view`] (and [`CallState::clock_view`]).
pub struct View<'a, T> {
    /// The capability's state in this call.
    pub state: &'a mut T,
    plugin: &'a PluginMeta,
    interface: &'static Interface,
}

impl<'a, T> View<'a, T> {
    pub(crate) fn new(
        plugin: &'a PluginMeta,
        interface: &'static Interface,
        state: &'a mut T,
    ) -> Self {
        Self {
            state,
            plugin,
            interface,
        }
    }

    /// Checks that the calling plugin may use this view's interface with
    /// `access` (the import check at load already refused a plugin that
    /// imports it ungranted; this is the per-function rule).
    ///
    /// # Errors
    /// [`HostError::AccessDenied`].
    pub fn check(&self, access: Access) -> Result<(), HostError> {
        self.plugin.check(self.interface, access)
    }

    /// The calling plugin's name.
    pub fn plugin_name(&self) -> &str {
        &self.plugin.name
    }
}

/// The [`HasData`] of a capability whose host functions run on a
/// [`View<T>`](View): what `bindgen!`'s `add_to_linker` is given beside
/// [`CallState::view`].
pub struct HasView<T>(PhantomData<fn() -> T>);

impl<T: 'static> HasData for HasView<T> {
    type Data<'a> = View<'a, T>;
}

/// Whether, and by whom, an interface must be granted before a plugin may
/// import it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Gate {
    /// Any plugin may import it: types, or harmless reads (the host's
    /// clock), or WASI linked with nothing granted.
    Open,
    /// A plugin needs a grant, which its manifest may request.
    Manifest,
    /// A plugin needs a grant that only the embedder's code can give (test
    /// capabilities, the embedder's own): a manifest that names it is
    /// refused.
    Code,
}

/// A function of an interface and the access it needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Function {
    /// Its WIT name (`create-user`).
    pub name: &'static str,
    /// [`Access::Read`] for a function that only reads, [`Access::Write`]
    /// for one that changes anything.
    pub access: Access,
}

impl Function {
    /// A function that only reads.
    pub const fn read(name: &'static str) -> Self {
        Self {
            name,
            access: Access::Read,
        }
    }

    /// A function that writes.
    pub const fn write(name: &'static str) -> Self {
        Self {
            name,
            access: Access::Write,
        }
    }
}

/// A WIT interface the host implements, as the registry describes it.
///
/// Two values with the same `name` are the same interface.
#[derive(Debug, Clone, Copy)]
pub struct Interface {
    /// Its WIT name without a version (`plinth:database/users`). A name that
    /// ends in `*` covers every interface it prefixes (`wasi:io/*`).
    pub name: &'static str,
    /// The version of its WIT package that the host implements (`0.1.0`);
    /// for a family, the release track (`0.2` for WASI 0.2.x). A component
    /// built against a compatible version links (wasmtime's rule: the same
    /// major version, or for `0.x` the same `0.x`); another is refused
    /// before it is compiled, naming both versions.
    pub version: &'static str,
    /// One line for `plinth plugin inspect` and the docs.
    pub summary: &'static str,
    /// Who must grant it.
    pub gate: Gate,
    /// Its functions and the access each needs (empty for a family such as
    /// a WASI package, whose rules are its own).
    pub functions: &'static [Function],
}

impl Interface {
    /// The access function `name` needs. Evaluated at compile time where the
    /// host functions use it (`const CREATE: Access = USERS.access("create-user")`),
    /// so a name missing from the registry is a build error, not a function
    /// that escapes its check.
    ///
    /// # Panics
    /// When the interface has no function `name` (at compile time in a
    /// `const`).
    pub const fn access(&self, name: &str) -> Access {
        let mut i = 0;
        while i < self.functions.len() {
            if str_eq(self.functions[i].name, name) {
                return self.functions[i].access;
            }
            i += 1;
        }
        panic!("the interface has no function of that name")
    }

    /// Whether this interface is the one a component import names
    /// (`plinth:database/users@0.1.0`, with or without the version).
    pub fn matches(&self, import: &str) -> bool {
        let bare = bare_name(import);
        match self.name.strip_suffix('*') {
            Some(prefix) => bare.starts_with(prefix),
            None => bare == self.name,
        }
    }

    /// Whether a component built against `version` of this interface's
    /// package links with the host's: the same major version, or for
    /// `0.x.y` the same `0.x` (`0.0.z`: the same `z`), as wasmtime's
    /// linker matches versions. An empty `version` (an import with none)
    /// matches only an interface that has none.
    pub fn version_compatible(&self, version: &str) -> bool {
        fn track(v: &str) -> Option<Vec<&str>> {
            let v = v.split(['-', '+']).next()?;
            let parts: Vec<&str> = v.split('.').collect();
            if parts.iter().any(|p| p.parse::<u64>().is_err()) {
                return None;
            }
            let keep = match parts.as_slice() {
                ["0", "0", ..] => 3,
                ["0", ..] => 2,
                _ => 1,
            };
            Some(parts.into_iter().take(keep).collect())
        }
        if self.version.is_empty() || version.is_empty() {
            return self.version == version;
        }
        match (track(self.version), track(version)) {
            (Some(ours), Some(theirs)) => {
                ours.len() <= theirs.len() && theirs[..ours.len()] == ours[..]
            }
            _ => false,
        }
    }

    /// The functions that need [`Access::Write`].
    pub fn writes(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.functions
            .iter()
            .filter(|f| f.access == Access::Write)
            .map(|f| f.name)
    }
}

impl PartialEq for Interface {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}

impl Eq for Interface {}

impl PartialOrd for Interface {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Interface {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.name.cmp(other.name)
    }
}

impl std::hash::Hash for Interface {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.name.hash(state);
    }
}

impl fmt::Display for Interface {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name)
    }
}

/// An import's name without its `@version`.
pub(crate) fn bare_name(import: &str) -> &str {
    import.split_once('@').map_or(import, |(bare, _)| bare)
}

const fn str_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

/// The capabilities one runtime offers: the built-in ones, then the
/// embedder's.
#[derive(Debug, Clone)]
pub struct Registry {
    capabilities: Vec<Capability>,
}

impl Registry {
    /// The built-in capabilities and `extra`: what a runtime made with
    /// `extra` as [`RuntimeOptions::capabilities`](crate::RuntimeOptions::capabilities)
    /// offers (a runtime builds its own; this is for tools that describe it).
    ///
    /// # Errors
    /// A message naming an interface that two capabilities both claim.
    pub fn new(extra: &[Capability]) -> Result<Self, String> {
        let capabilities: Vec<Capability> = crate::capabilities::BUILTIN
            .iter()
            .chain(extra)
            .copied()
            .collect();
        let mut names: Vec<&str> = capabilities
            .iter()
            .flat_map(|c| c.interfaces.iter().map(|i| i.name))
            .collect();
        names.sort_unstable();
        if let Some(w) = names.windows(2).find(|w| w[0] == w[1]) {
            return Err(format!("two capabilities implement {}", w[0]));
        }
        Ok(Self { capabilities })
    }

    /// Every capability, built-in ones first.
    pub fn capabilities(&self) -> &[Capability] {
        &self.capabilities
    }

    /// Every interface, in registration order.
    pub fn interfaces(&self) -> impl Iterator<Item = &'static Interface> + '_ {
        self.capabilities.iter().flat_map(|c| c.interfaces.iter())
    }

    /// The interface a component import refers to, if this runtime offers it.
    pub fn find(&self, import: &str) -> Option<&'static Interface> {
        self.interfaces().find(|i| i.matches(import))
    }
}

/// The built-in interface a manifest may name, or why it may not.
pub(crate) fn manifest_interface(name: &str) -> Result<Interface, String> {
    let found = crate::capabilities::BUILTIN
        .iter()
        .flat_map(|c| c.interfaces.iter())
        .find(|i| !i.name.ends_with('*') && i.matches(name));
    match found {
        Some(i) if i.gate == Gate::Manifest => Ok(*i),
        Some(i) if i.gate == Gate::Open => {
            Err(format!("{name} needs no grant: every plugin may import it"))
        }
        Some(_) => Err(code_only(name)),
        None if bare_name(name).starts_with("plinth:test/") => Err(code_only(name)),
        None if name.starts_with("wasi:") => Err(format!(
            "{name} needs no grant: WASI is linked for every plugin with nothing in it \
             (no files, environment, arguments or network)"
        )),
        None => Err(format!("unknown interface {name:?}")),
    }
}

fn code_only(name: &str) -> String {
    format!(
        "{name} cannot be granted by a manifest: it is a test or embedder capability, \
         which only the embedder's code grants (RuntimeOptions::capability and Manifest::grant)"
    )
}
