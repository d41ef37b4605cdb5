//! The integration suite once more, on PostgreSQL: `all/util.rs` gives each
//! test a database of its own on a throwaway cluster when the crate is
//! `all_postgres`. The suite's modules are re-exported at the root, where
//! its `crate::` paths look for them.

#[path = "all/main.rs"]
mod suite;

#[allow(unused_imports)]
pub(crate) use suite::*;
