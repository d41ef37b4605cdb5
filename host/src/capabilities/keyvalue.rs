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

use std::collections::HashMap;

use plinth_store::plugin::KvError;
use plinth_store::sql::Namespace;
use wasmtime::component::Resource;

use super::{Database, DbView, HostError};
use crate::bindings::keyvalue_world::wasi::keyvalue::{atomics, batch, store};
use crate::capability::{Capability, Function, Gate, Interface};
use crate::grants::Access;
use atomics::Cas;
use store::Bucket;

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
        store::add_to_linker::<_, Database>(linker, |s| s.database.view(&STORE))?;
        atomics::add_to_linker::<_, Database>(linker, |s| s.database.view(&ATOMICS))?;
        batch::add_to_linker::<_, Database>(linker, |s| s.database.view(&BATCH))
    },
};

/// Most buckets and CAS handles one instance may hold open.
pub const MAX_HANDLES: usize = 1000;

#[derive(Debug)]
enum Handle {
    Bucket(String),
    Cas {
        bucket: String,
        key: String,
        seen: Option<Vec<u8>>,
    },
}

/// The buckets and CAS handles of one instance, by representation.
#[derive(Debug, Default)]
pub struct Handles {
    next: u32,
    open: HashMap<u32, Handle>,
}

impl Handles {
    fn insert(&mut self, handle: Handle) -> Result<u32, HostError> {
        if self.open.len() >= MAX_HANDLES {
            return Err(HostError::Trap(wasmtime::Error::msg(format!(
                "more than {MAX_HANDLES} key-value handles open"
            ))));
        }
        self.next = self.next.wrapping_add(1);
        while self.open.contains_key(&self.next) {
            self.next = self.next.wrapping_add(1);
        }
        self.open.insert(self.next, handle);
        Ok(self.next)
    }

    fn bucket(&self, rep: u32) -> wasmtime::Result<String> {
        match self.open.get(&rep) {
            Some(Handle::Bucket(name)) => Ok(name.clone()),
            _ => Err(wasmtime::Error::msg("not an open bucket")),
        }
    }
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

impl DbView<'_> {
    fn kv_namespace(&self) -> Result<Namespace, KvHostError> {
        self.ctx_ref()
            .namespace(false)
            .map_err(|e| KvHostError::AccessDenied(e.to_string()))
    }

    /// The unit and namespace for a function needing `access`.
    fn kv(&mut self, access: Access) -> Result<(Namespace, &mut plinth_store::Unit), KvHostError> {
        let ns = self.kv_namespace()?;
        Ok((ns, self.unit(access)?))
    }
}

impl store::Host for DbView<'_> {
    fn open(&mut self, identifier: String) -> Result<Resource<Bucket>, KvHostError> {
        self.check(STORE.access("open"))?;
        if identifier.len() > plinth_store::plugin::MAX_BUCKET_BYTES {
            return Err(KvError::TooLarge(format!(
                "a bucket name of {} bytes; at most {}",
                identifier.len(),
                plinth_store::plugin::MAX_BUCKET_BYTES
            ))
            .into());
        }
        let rep = self.ctx().kv_handles.insert(Handle::Bucket(identifier))?;
        Ok(Resource::new_own(rep))
    }

    fn convert_error(&mut self, err: KvHostError) -> wasmtime::Result<store::Error> {
        Ok(match err {
            KvHostError::Kv(KvError::Store(plinth_store::Error::Busy)) => {
                store::Error::Other("busy: the database is held by other writers".into())
            }
            KvHostError::Kv(KvError::Store(e)) => {
                tracing::error!(plugin = %self.ctx().plugin_name(), error = %e, "key-value fault");
                store::Error::Other("database error; see the host's log".into())
            }
            KvHostError::Kv(e) => store::Error::Other(e.to_string()),
            KvHostError::AccessDenied(_) => store::Error::AccessDenied,
            KvHostError::Trap(e) => return Err(e),
        })
    }
}

impl store::HostBucket for DbView<'_> {
    fn get(&mut self, this: Resource<Bucket>, key: String) -> Result<Option<Vec<u8>>, KvHostError> {
        let bucket = self.ctx().kv_handles.bucket(this.rep())?;
        let (ns, unit) = self.kv(STORE.access("[method]bucket.get"))?;
        Ok(unit.kv_get(&ns, &bucket, &key)?)
    }

    fn set(
        &mut self,
        this: Resource<Bucket>,
        key: String,
        value: Vec<u8>,
    ) -> Result<(), KvHostError> {
        let bucket = self.ctx().kv_handles.bucket(this.rep())?;
        let (ns, unit) = self.kv(STORE.access("[method]bucket.set"))?;
        Ok(unit.kv_set(&ns, &bucket, &key, &value)?)
    }

    fn delete(&mut self, this: Resource<Bucket>, key: String) -> Result<(), KvHostError> {
        let bucket = self.ctx().kv_handles.bucket(this.rep())?;
        let (ns, unit) = self.kv(STORE.access("[method]bucket.delete"))?;
        Ok(unit.kv_delete(&ns, &bucket, &key)?)
    }

    fn exists(&mut self, this: Resource<Bucket>, key: String) -> Result<bool, KvHostError> {
        let bucket = self.ctx().kv_handles.bucket(this.rep())?;
        let (ns, unit) = self.kv(STORE.access("[method]bucket.exists"))?;
        Ok(unit.kv_get(&ns, &bucket, &key)?.is_some())
    }

    fn list_keys(
        &mut self,
        this: Resource<Bucket>,
        cursor: Option<String>,
    ) -> Result<store::KeyResponse, KvHostError> {
        let bucket = self.ctx().kv_handles.bucket(this.rep())?;
        let (ns, unit) = self.kv(STORE.access("[method]bucket.list-keys"))?;
        let (keys, cursor) = unit.kv_keys(&ns, &bucket, cursor.as_deref())?;
        Ok(store::KeyResponse { keys, cursor })
    }

    fn drop(&mut self, rep: Resource<Bucket>) -> wasmtime::Result<()> {
        self.ctx().kv_handles.open.remove(&rep.rep());
        Ok(())
    }
}

impl atomics::Host for DbView<'_> {
    fn increment(
        &mut self,
        bucket: Resource<Bucket>,
        key: String,
        delta: i64,
    ) -> Result<i64, KvHostError> {
        let bucket = self.ctx().kv_handles.bucket(bucket.rep())?;
        let (ns, unit) = self.kv(ATOMICS.access("increment"))?;
        Ok(unit.kv_increment(&ns, &bucket, &key, delta)?)
    }

    fn swap(
        &mut self,
        cas: Resource<Cas>,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<(), atomics::CasError>> {
        let Some(Handle::Cas { bucket, key, seen }) = self.ctx().kv_handles.open.remove(&cas.rep())
        else {
            return Err(wasmtime::Error::msg("not a CAS handle"));
        };
        let outcome = self.kv(ATOMICS.access("swap")).and_then(|(ns, unit)| {
            Ok(unit.kv_swap(&ns, &bucket, &key, seen.as_deref(), &value)?)
        });
        match outcome {
            Ok(None) => Ok(Ok(())),
            Ok(Some(now)) => {
                let rep = self
                    .ctx()
                    .kv_handles
                    .insert(Handle::Cas {
                        bucket,
                        key,
                        seen: now,
                    })
                    .map_err(|e| wasmtime::Error::msg(e.to_string()))?;
                Ok(Err(atomics::CasError::CasFailed(Resource::new_own(rep))))
            }
            Err(e) => Ok(Err(atomics::CasError::StoreError(
                store::Host::convert_error(self, e)?,
            ))),
        }
    }
}

impl atomics::HostCas for DbView<'_> {
    fn new(&mut self, bucket: Resource<Bucket>, key: String) -> Result<Resource<Cas>, KvHostError> {
        let bucket = self.ctx().kv_handles.bucket(bucket.rep())?;
        let (ns, unit) = self.kv(ATOMICS.access("[static]cas.new"))?;
        let seen = unit.kv_get(&ns, &bucket, &key)?;
        let rep = self
            .ctx()
            .kv_handles
            .insert(Handle::Cas { bucket, key, seen })?;
        Ok(Resource::new_own(rep))
    }

    fn current(&mut self, this: Resource<Cas>) -> Result<Option<Vec<u8>>, KvHostError> {
        self.check(ATOMICS.access("[method]cas.current"))?;
        match self.ctx().kv_handles.open.get(&this.rep()) {
            Some(Handle::Cas { seen, .. }) => Ok(seen.clone()),
            _ => Err(KvHostError::Trap(wasmtime::Error::msg("not a CAS handle"))),
        }
    }

    fn drop(&mut self, rep: Resource<Cas>) -> wasmtime::Result<()> {
        self.ctx().kv_handles.open.remove(&rep.rep());
        Ok(())
    }
}

impl batch::Host for DbView<'_> {
    fn get_many(
        &mut self,
        bucket: Resource<Bucket>,
        keys: Vec<String>,
    ) -> Result<Vec<Option<(String, Vec<u8>)>>, KvHostError> {
        let bucket = self.ctx().kv_handles.bucket(bucket.rep())?;
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
        bucket: Resource<Bucket>,
        key_values: Vec<(String, Vec<u8>)>,
    ) -> Result<(), KvHostError> {
        let bucket = self.ctx().kv_handles.bucket(bucket.rep())?;
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
        bucket: Resource<Bucket>,
        keys: Vec<String>,
    ) -> Result<(), KvHostError> {
        let bucket = self.ctx().kv_handles.bucket(bucket.rep())?;
        let (ns, unit) = self.kv(BATCH.access("delete-many"))?;
        for key in keys {
            unit.kv_delete(&ns, &bucket, &key)?;
        }
        Ok(())
    }
}
