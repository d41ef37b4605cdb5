//! What a plugin may reach: deny by default.

use std::fmt;

use crate::capability::Interface;

/// How much of an interface a plugin may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum Access {
    /// Only the functions that read. Writes answer `access-denied`.
    Read,
    /// Every function.
    Write,
}

impl fmt::Display for Access {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Access::Read => "read",
            Access::Write => "read-write",
        })
    }
}

/// A plugin's grants. An interface not listed is denied.
///
/// Few entries (one per interface a plugin uses), looked up on every host
/// call: a short list, searched by the interface's address first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Grants {
    list: Vec<(Interface, Access)>,
}

impl Grants {
    /// No grants at all.
    pub fn none() -> Self {
        Self::default()
    }

    /// Adds (or widens) a grant.
    #[must_use]
    pub fn with(mut self, interface: Interface, access: Access) -> Self {
        match self.list.iter_mut().find(|(i, _)| *i == interface) {
            Some((_, a)) => *a = (*a).max(access),
            None => {
                self.list.push((interface, access));
                self.list.sort_by_key(|(i, _)| i.name);
            }
        }
        self
    }

    /// Read-write access to every interface of the `plinth:database`
    /// package that needs a grant.
    pub fn all_database() -> Self {
        crate::capabilities::BUILTIN
            .iter()
            .flat_map(|c| c.interfaces.iter())
            .filter(|i| {
                i.name.starts_with("plinth:database/")
                    && i.gate == crate::capability::Gate::Manifest
            })
            .fold(Self::none(), |g, i| g.with(*i, Access::Write))
    }

    /// Whether `access` to `interface` is granted.
    pub fn allows(&self, interface: &Interface, access: Access) -> bool {
        self.get(interface).is_some_and(|granted| granted >= access)
    }

    /// The grant for `interface`, if any.
    pub fn get(&self, interface: &Interface) -> Option<Access> {
        self.list
            .iter()
            .find(|(i, _)| std::ptr::eq(i.name, interface.name) || i.name == interface.name)
            .map(|(_, a)| *a)
    }

    /// Every grant, in name order.
    pub fn iter(&self) -> impl Iterator<Item = (Interface, Access)> + '_ {
        self.list.iter().copied()
    }
}
