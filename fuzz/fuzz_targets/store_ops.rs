//! Bytes as a sequence of store operations, checked against a model. One
//! database file for the whole run (a fresh one per input would measure
//! file creation): the model reads back what is there.
#![no_main]

use std::sync::OnceLock;

static DB: OnceLock<plinth_store::Db> = OnceLock::new();

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let db = DB.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("plinth-fuzz-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a temp dir");
        // Commits synced at checkpoints only: the invariants do not depend on
        // fsync, and a synced commit per operation is most of a run's time.
        let options = plinth_store::Options {
            durability: plinth_store::Durability::Normal,
            ..plinth_store::Options::default()
        };
        plinth_store::Db::open_with(dir.join("fuzz.db"), options).expect("a database")
    });
    plinth_fuzzing::store_ops(db, data);
});
