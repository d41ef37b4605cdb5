//! A plugin's quota: its data — its tables, their indexes, its keys and
//! values — may take at most so many bytes. Each engine measures what a
//! statement added its own way (SQLite by pages in use, PostgreSQL by the
//! sizes of the plugin's schema); the rule, and what a unit knows of the
//! plugin's data, are here.

/// What a plugin's data takes, as one unit sees it: as recorded when the
/// unit first needed it, and now. The change is recorded at commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Usage {
    pub(crate) start: u64,
    pub(crate) now: u64,
}

impl Usage {
    /// Starts from what was recorded.
    pub(crate) fn recorded(bytes: u64) -> Self {
        Self {
            start: bytes,
            now: bytes,
        }
    }

    /// What the unit changed, to add to the record at commit.
    pub(crate) fn change(&self) -> Option<i64> {
        (self.now != self.start).then(|| {
            i64::try_from(self.now).unwrap_or(i64::MAX)
                - i64::try_from(self.start).unwrap_or(i64::MAX)
        })
    }
}

/// The rule: data that would take `after` bytes fits a quota of `quota`
/// bytes, or the refusal says by how much it does not.
pub(crate) fn check(after: u64, quota: u64) -> Result<(), String> {
    if after <= quota {
        Ok(())
    } else {
        Err(format!(
            "the plugin's data would take {after} bytes; its quota is {quota}"
        ))
    }
}
