//! What a plugin may reach: deny by default.

use std::collections::BTreeMap;
use std::fmt;

/// An interface the host offers that needs a grant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Interface {
    /// `plinth:database/users`: profiles (no secrets).
    Users,
    /// `plinth:database/credentials`: password hashes.
    Credentials,
    /// `plinth:database/sessions`.
    Sessions,
    /// `plinth:database/email-verification`.
    EmailVerification,
    /// `plinth:database/password-reset`.
    PasswordReset,
    /// `plinth:auth/mailer`: sends (records) mail.
    Mailer,
    /// `plinth:auth/attempts`: failure counters.
    Attempts,
    /// `plinth:test/clock`: moves the runtime's clock. For tests only.
    TestClock,
}

impl Interface {
    /// Every interface that needs a grant.
    pub const ALL: [Interface; 8] = [
        Interface::Users,
        Interface::Credentials,
        Interface::Sessions,
        Interface::EmailVerification,
        Interface::PasswordReset,
        Interface::Mailer,
        Interface::Attempts,
        Interface::TestClock,
    ];

    /// The WIT name, without a version.
    pub fn wit_name(self) -> &'static str {
        match self {
            Interface::Users => "plinth:database/users",
            Interface::Credentials => "plinth:database/credentials",
            Interface::Sessions => "plinth:database/sessions",
            Interface::EmailVerification => "plinth:database/email-verification",
            Interface::PasswordReset => "plinth:database/password-reset",
            Interface::Mailer => "plinth:auth/mailer",
            Interface::Attempts => "plinth:auth/attempts",
            Interface::TestClock => "plinth:test/clock",
        }
    }

    /// The interface a WIT name (with or without `@version`) refers to.
    pub fn from_wit_name(name: &str) -> Option<Self> {
        let bare = name.split_once('@').map_or(name, |(bare, _)| bare);
        Self::ALL.into_iter().find(|i| i.wit_name() == bare)
    }

    /// Interfaces every plugin may import without a grant: types only, or
    /// harmless reads (the host's clock).
    fn is_ungated(name: &str) -> bool {
        let bare = name.split_once('@').map_or(name, |(bare, _)| bare);
        matches!(
            bare,
            "plinth:database/types" | "plinth:database/clock" | "plinth:test/report"
        )
    }
}

impl fmt::Display for Interface {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.wit_name())
    }
}

/// How much of an interface a plugin may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
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
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Grants {
    map: BTreeMap<Interface, Access>,
}

impl Grants {
    /// No grants at all.
    pub fn none() -> Self {
        Self::default()
    }

    /// Adds (or widens) a grant.
    #[must_use]
    pub fn with(mut self, interface: Interface, access: Access) -> Self {
        let entry = self.map.entry(interface).or_insert(access);
        *entry = (*entry).max(access);
        self
    }

    /// Read-write access to every database interface.
    pub fn all_database() -> Self {
        [
            Interface::Users,
            Interface::Credentials,
            Interface::Sessions,
            Interface::EmailVerification,
            Interface::PasswordReset,
        ]
        .into_iter()
        .fold(Self::none(), |g, i| g.with(i, Access::Write))
    }

    /// Whether `access` to `interface` is granted.
    pub fn allows(&self, interface: Interface, access: Access) -> bool {
        self.map
            .get(&interface)
            .is_some_and(|granted| *granted >= access)
    }

    /// The grant for `interface`, if any.
    pub fn get(&self, interface: Interface) -> Option<Access> {
        self.map.get(&interface).copied()
    }

    /// Every grant, in a stable order.
    pub fn iter(&self) -> impl Iterator<Item = (Interface, Access)> + '_ {
        self.map.iter().map(|(i, a)| (*i, *a))
    }
}

/// What a component import needs from the runtime.
pub(crate) enum ImportNeed {
    /// A WASI interface: linked, with a context that grants no files,
    /// environment, arguments or network.
    Wasi,
    /// A plinth interface every plugin may import.
    Types,
    /// A plinth interface that must be granted.
    Granted(Interface),
    /// Nothing the runtime offers.
    Unknown,
}

pub(crate) fn classify_import(name: &str) -> ImportNeed {
    if name.starts_with("wasi:") {
        ImportNeed::Wasi
    } else if Interface::is_ungated(name) {
        ImportNeed::Types
    } else if let Some(i) = Interface::from_wit_name(name) {
        ImportNeed::Granted(i)
    } else {
        ImportNeed::Unknown
    }
}
