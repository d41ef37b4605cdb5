//! `wasi:keyvalue` 0.2.0-draft2 (`store`, `atomics`, `batch`), the standard
//! WIT vendored unchanged: a component written for another runtime's
//! key-value store runs here as it is.
//!
//! A bucket belongs to the plugin that opened it: `open("prefs")` in two
//! plugins opens two buckets. Every operation runs in the call's unit of
//! work (a trap after a `set` keeps nothing, and the `set` commits with the
//! call's SQL and `plinth:database` writes), and writes count against the
//! plugin's data quota. What the standard leaves open:
//!
//! * any identifier of at most 256 bytes opens a bucket (created on first
//!   write); none is `no-such-store`;
//! * `list-keys` returns keys in byte order, at most 1000 a page; the
//!   cursor is the last key of the page;
//! * `increment` keeps its counter as 8 little-endian bytes (a value of any
//!   other length is `other`, as is an overflow);
//! * a `cas` handle remembers the value `new` read; `swap` writes only if
//!   the key still holds it (absent counts as a value), else answers
//!   `cas-failed` with a fresh handle;
//! * `get-many`, `set-many` and `delete-many` are in the call's unit like
//!   every operation; `set-many` checks every key and value against its
//!   size limit before it writes any.
//!
//! Grants: `read` allows `open`, `get`, `exists`, `list-keys`, `get-many`
//! and `cas.new`/`current`; writing needs `read-write`.
//!
//! Buckets and CAS handles are entries of a resource table of the
//! instance's own ([`KeyValueCtx`]): at most [`MAX_HANDLES`] open at once
//! (one more traps), and a handle the table does not hold traps.

use plinth_store::plugin::KvError;
use plinth_store::sql::Namespace;
use wasmtime::component::{HasData, Resource, ResourceTable, ResourceTableError};

use super::{DbView, HostError};
use crate::bindings::keyvalue_world::wasi::keyvalue::{atomics, batch, store};
use crate::capability::{Capability, Function, Gate, Interface};
use crate::grants::Access;
use crate::state::CallState;

/// The WIT package's version.
const VERSION: &str = "0.2.0-draft2";

/// `wasi:keyvalue/store`.
pub const STORE: Interface = Interface {
    name: "wasi:keyvalue/store",
    version: VERSION,
    summary: "the plugin's own key-value buckets, in the call's unit of work",
    gate: Gate::Manifest,
    functions: &[
        Function::read("open"),
        Function::read("[method]bucket.get"),
        Function::write("[method]bucket.set"),
        Function::write("[method]bucket.delete"),
        Function::read("[method]bucket.exists"),
        Function::read("[method]bucket.list-keys"),
    ],
};

/// `wasi:keyvalue/atomics`.
pub const ATOMICS: Interface = Interface {
    name: "wasi:keyvalue/atomics",
    version: VERSION,
    summary: "increment and compare-and-swap on the plugin's buckets",
    gate: Gate::Manifest,
    functions: &[
        Function::read("[static]cas.new"),
        Function::read("[method]cas.current"),
        Function::write("increment"),
        Function::write("swap"),
    ],
};

/// `wasi:keyvalue/batch`.
pub const BATCH: Interface = Interface {
    name: "wasi:keyvalue/batch",
    version: VERSION,
    summary: "many keys of the plugin's buckets at once",
    gate: Gate::Manifest,
    functions: &[
        Function::read("get-many"),
        Function::write("set-many"),
        Function::write("delete-many"),
    ],
};

/// The capability: links the three interfaces.
pub const CAPABILITY: Capability = Capability {
    interfaces: &[STORE, ATOMICS, BATCH],
    add_to_linker: |linker| {
        store::add_to_linker::<_, KeyValue>(linker, |s| KvView::of(s, &STORE))?;
        atomics::add_to_linker::<_, KeyValue>(linker, |s| KvView::of(s, &ATOMICS))?;
        batch::add_to_linker::<_, KeyValue>(linker, |s| KvView::of(s, &BATCH))
    },
};

/// Most buckets and CAS handles one instance may hold open.
pub const MAX_HANDLES: usize = 1000;

/// An open bucket: a `bucket` resource's entry in the table.
#[derive(Debug)]
pub struct BucketHandle {
    name: String,
}

/// A compare-and-swap handle: a `cas` resource's entry in the table, with
/// the value the key held when it was made.
#[derive(Debug)]
pub struct CasHandle {
    bucket: String,
    key: String,
    seen: Option<Vec<u8>>,
}

/// The key-value side of an instance: its open buckets and CAS handles, in
/// a resource table of their own that holds at most [`MAX_HANDLES`]. The
/// data they reach is in the call's unit of work (the [`DbView`] beside it).
pub struct KeyValueCtx {
    table: ResourceTable,
}

impl Default for KeyValueCtx {
    fn default() -> Self {
        let mut table = ResourceTable::new();
        // A freed entry is reused before the table grows, so this caps the
        // handles open at once.
        table.set_max_capacity(MAX_HANDLES);
        Self { table }
    }
}

impl KeyValueCtx {
    /// Adds a handle; a trap when the instance already holds
    /// [`MAX_HANDLES`].
    fn push<T: Send + 'static>(&mut self, handle: T) -> Result<Resource<T>, KvHostError> {
        self.table.push(handle).map_err(|e| match e {
            ResourceTableError::Full => KvHostError::Trap(wasmtime::Error::msg(format!(
                "more than {MAX_HANDLES} key-value handles open"
            ))),
            other => other.into(),
        })
    }

    /// The name of an open bucket.
    fn bucket(&self, bucket: &Resource<BucketHandle>) -> Result<String, ResourceTableError> {
        Ok(self.table.get(bucket)?.name.clone())
    }
}

/// What the key-value host functions see: the database's view for their
/// interface (the grant, the unit of work, the plugin's namespace) and the
/// instance's handles.
pub struct KvView<'a> {
    db: DbView<'a>,
    handles: &'a mut KeyValueCtx,
}

impl<'a> KvView<'a> {
    fn of(state: &'a mut CallState, interface: &'static Interface) -> Self {
        KvView {
            db: DbView::new(
                &state.plugin,
                &mut state.database,
                state.deadline,
                &state.clock,
                interface,
            ),
            handles: &mut state.keyvalue,
        }
    }
}

/// The [`HasData`] of `wasi:keyvalue`: its host functions run on a
/// [`KvView`].
pub struct KeyValue;

impl HasData for KeyValue {
    type Data<'a> = KvView<'a>;
}

/// Why a key-value host function failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KvHostError {
    /// The store refused, typed.
    #[error(transparent)]
    Kv(#[from] KvError),
    /// The plugin is not granted this function.
    #[error("{0} is not granted")]
    AccessDenied(String),
    /// Abort the guest.
    #[error("trap: {0}")]
    Trap(wasmtime::Error),
}

impl From<HostError> for KvHostError {
    fn from(e: HostError) -> Self {
        match e {
            HostError::Store(e) => KvHostError::Kv(KvError::Store(e)),
            HostError::AccessDenied { interface, access } => {
                KvHostError::AccessDenied(format!("{interface} ({access})"))
            }
            HostError::Trap(e) => KvHostError::Trap(e),
        }
    }
}

impl From<wasmtime::Error> for KvHostError {
    fn from(e: wasmtime::Error) -> Self {
        KvHostError::Trap(e)
    }
}

impl From<ResourceTableError> for KvHostError {
    /// A handle the instance does not hold (dropped, or of the other
    /// type): a host fault, as the component model checks the guest's.
    fn from(e: ResourceTableError) -> Self {
        KvHostError::Trap(wasmtime::Error::new(e).context("a key-value handle"))
    }
}

impl KvView<'_> {
    /// The unit and namespace for a function needing `access`.
    fn kv(&mut self, access: Access) -> Result<(Namespace, &mut plinth_store::Unit), KvHostError> {
        let ns = self
            .db
            .namespace(false)
            .map_err(|e| KvHostError::AccessDenied(e.to_string()))?;
        Ok((ns, self.db.unit(access)?))
    }
}

impl store::Host for KvView<'_> {
    fn open(&mut self, identifier: String) -> Result<Resource<BucketHandle>, KvHostError> {
        self.db.check(STORE.access("open"))?;
        if identifier.len() > plinth_store::plugin::MAX_BUCKET_BYTES {
            return Err(KvError::TooLarge(format!(
                "a bucket name of {} bytes; at most {}",
                identifier.len(),
                plinth_store::plugin::MAX_BUCKET_BYTES
            ))
            .into());
        }
        self.handles.push(BucketHandle { name: identifier })
    }

    fn convert_error(&mut self, err: KvHostError) -> wasmtime::Result<store::Error> {
        Ok(match err {
            KvHostError::Kv(KvError::Store(plinth_store::Error::Busy)) => {
                store::Error::Other("busy: the database is held by other writers".into())
            }
            KvHostError::Kv(KvError::Store(e)) => {
                tracing::error!(plugin = %self.db.plugin_name(), error = %e, "key-value fault");
                store::Error::Other("database error; see the host's log".into())
            }
            KvHostError::Kv(e) => store::Error::Other(e.to_string()),
            KvHostError::AccessDenied(_) => store::Error::AccessDenied,
            KvHostError::Trap(e) => return Err(e),
        })
    }
}

impl store::HostBucket for KvView<'_> {
    fn get(
        &mut self,
        this: Resource<BucketHandle>,
        key: String,
    ) -> Result<Option<Vec<u8>>, KvHostError> {
        let bucket = self.handles.bucket(&this)?;
        let (ns, unit) = self.kv(STORE.access("[method]bucket.get"))?;
        Ok(unit.kv_get(&ns, &bucket, &key)?)
    }

    fn set(
        &mut self,
        this: Resource<BucketHandle>,
        key: String,
        value: Vec<u8>,
    ) -> Result<(), KvHostError> {
        let bucket = self.handles.bucket(&this)?;
        let (ns, unit) = self.kv(STORE.access("[method]bucket.set"))?;
        Ok(unit.kv_set(&ns, &bucket, &key, &value)?)
    }

    fn delete(&mut self, this: Resource<BucketHandle>, key: String) -> Result<(), KvHostError> {
        let bucket = self.handles.bucket(&this)?;
        let (ns, unit) = self.kv(STORE.access("[method]bucket.delete"))?;
        Ok(unit.kv_delete(&ns, &bucket, &key)?)
    }

    fn exists(&mut self, this: Resource<BucketHandle>, key: String) -> Result<bool, KvHostError> {
        let bucket = self.handles.bucket(&this)?;
        let (ns, unit) = self.kv(STORE.access("[method]bucket.exists"))?;
        Ok(unit.kv_get(&ns, &bucket, &key)?.is_some())
    }

    fn list_keys(
        &mut self,
        this: Resource<BucketHandle>,
        cursor: Option<String>,
    ) -> Result<store::KeyResponse, KvHostError> {
        let bucket = self.handles.bucket(&this)?;
        let (ns, unit) = self.kv(STORE.access("[method]bucket.list-keys"))?;
        let (keys, cursor) = unit.kv_keys(&ns, &bucket, cursor.as_deref())?;
        Ok(store::KeyResponse { keys, cursor })
    }

    fn drop(&mut self, bucket: Resource<BucketHandle>) -> wasmtime::Result<()> {
        self.handles.table.delete(bucket)?;
        Ok(())
    }
}

impl atomics::Host for KvView<'_> {
    fn increment(
        &mut self,
        bucket: Resource<BucketHandle>,
        key: String,
        delta: i64,
    ) -> Result<i64, KvHostError> {
        let bucket = self.handles.bucket(&bucket)?;
        let (ns, unit) = self.kv(ATOMICS.access("increment"))?;
        Ok(unit.kv_increment(&ns, &bucket, &key, delta)?)
    }

    fn swap(
        &mut self,
        cas: Resource<CasHandle>,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<(), atomics::CasError>> {
        let CasHandle { bucket, key, seen } = self.handles.table.delete(cas)?;
        let outcome = self.kv(ATOMICS.access("swap")).and_then(|(ns, unit)| {
            Ok(unit.kv_swap(&ns, &bucket, &key, seen.as_deref(), &value)?)
        });
        match outcome {
            Ok(None) => Ok(Ok(())),
            Ok(Some(now)) => {
                // The table has room: the old handle's entry was just freed.
                let fresh = self
                    .handles
                    .push(CasHandle {
                        bucket,
                        key,
                        seen: now,
                    })
                    .map_err(|e| wasmtime::Error::msg(e.to_string()))?;
                Ok(Err(atomics::CasError::CasFailed(fresh)))
            }
            Err(e) => Ok(Err(atomics::CasError::StoreError(
                store::Host::convert_error(self, e)?,
            ))),
        }
    }
}

impl atomics::HostCas for KvView<'_> {
    fn new(
        &mut self,
        bucket: Resource<BucketHandle>,
        key: String,
    ) -> Result<Resource<CasHandle>, KvHostError> {
        let bucket = self.handles.bucket(&bucket)?;
        let (ns, unit) = self.kv(ATOMICS.access("[static]cas.new"))?;
        let seen = unit.kv_get(&ns, &bucket, &key)?;
        self.handles.push(CasHandle { bucket, key, seen })
    }

    fn current(&mut self, this: Resource<CasHandle>) -> Result<Option<Vec<u8>>, KvHostError> {
        self.db.check(ATOMICS.access("[method]cas.current"))?;
        Ok(self.handles.table.get(&this)?.seen.clone())
    }

    fn drop(&mut self, cas: Resource<CasHandle>) -> wasmtime::Result<()> {
        self.handles.table.delete(cas)?;
        Ok(())
    }
}

impl batch::Host for KvView<'_> {
    fn get_many(
        &mut self,
        bucket: Resource<BucketHandle>,
        keys: Vec<String>,
    ) -> Result<Vec<Option<(String, Vec<u8>)>>, KvHostError> {
        let bucket = self.handles.bucket(&bucket)?;
        let (ns, unit) = self.kv(BATCH.access("get-many"))?;
        // The values are held to the budget a query's rows are.
        let budget = ns.result_budget();
        let mut taken: u64 = 0;
        let mut out = Vec::with_capacity(keys.len());
        for key in keys {
            let value = unit.kv_get(&ns, &bucket, &key)?;
            taken = taken.saturating_add(value.as_ref().map_or(0, |v| v.len() + key.len()) as u64);
            if taken > budget {
                return Err(KvError::TooLarge(format!(
                    "the values take more than {budget} bytes, all the host holds for one call's \
                     batch (from the plugin's memory limit); ask for fewer keys"
                ))
                .into());
            }
            out.push(value.map(|v| (key, v)));
        }
        Ok(out)
    }

    fn set_many(
        &mut self,
        bucket: Resource<BucketHandle>,
        key_values: Vec<(String, Vec<u8>)>,
    ) -> Result<(), KvHostError> {
        let bucket = self.handles.bucket(&bucket)?;
        let (ns, unit) = self.kv(BATCH.access("set-many"))?;
        if let Some((key, value)) = key_values.iter().find(|(k, v)| {
            k.len() > plinth_store::plugin::MAX_KEY_BYTES
                || v.len() > plinth_store::plugin::MAX_VALUE_BYTES
        }) {
            return Err(KvError::TooLarge(format!(
                "a key of {} bytes or a value of {} bytes is over its limit; nothing was written",
                key.len(),
                value.len()
            ))
            .into());
        }
        for (key, value) in key_values {
            unit.kv_set(&ns, &bucket, &key, &value)?;
        }
        Ok(())
    }

    fn delete_many(
        &mut self,
        bucket: Resource<BucketHandle>,
        keys: Vec<String>,
    ) -> Result<(), KvHostError> {
        let bucket = self.handles.bucket(&bucket)?;
        let (ns, unit) = self.kv(BATCH.access("delete-many"))?;
        for key in keys {
            unit.kv_delete(&ns, &bucket, &key)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bucket(name: &str) -> BucketHandle {
        BucketHandle { name: name.into() }
    }

    #[test]
    fn an_instance_holds_at_most_max_handles_and_a_dropped_one_makes_room() -> anyhow::Result<()> {
        let mut handles = KeyValueCtx::default();
        let mut open = Vec::new();
        for i in 0..MAX_HANDLES {
            open.push(handles.push(bucket(&i.to_string()))?);
        }
        let over = handles.push(bucket("one too many"));
        assert!(
            matches!(&over, Err(KvHostError::Trap(e))
                if e.to_string() == format!("more than {MAX_HANDLES} key-value handles open")),
            "{over:?}"
        );
        let first = open.swap_remove(0);
        handles.table.delete(first)?;
        let again = handles.push(CasHandle {
            bucket: "b".into(),
            key: "k".into(),
            seen: None,
        });
        assert!(again.is_ok());
        Ok(())
    }

    #[test]
    fn a_dropped_handle_or_one_of_the_other_type_is_refused() -> anyhow::Result<()> {
        let mut handles = KeyValueCtx::default();
        let prefs = handles.push(bucket("prefs"))?;
        assert_eq!(handles.bucket(&prefs)?, "prefs");
        let stale = Resource::<BucketHandle>::new_own(prefs.rep());
        handles.table.delete(prefs)?;
        assert!(matches!(
            handles.bucket(&stale),
            Err(ResourceTableError::NotPresent)
        ));
        let cas = handles.push(CasHandle {
            bucket: "prefs".into(),
            key: "theme".into(),
            seen: None,
        })?;
        let as_bucket = Resource::<BucketHandle>::new_own(cas.rep());
        assert!(matches!(
            handles.bucket(&as_bucket),
            Err(ResourceTableError::WrongType)
        ));
        Ok(())
    }
}
