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
        plinth_store::Db::open(dir.join("fuzz.db")).expect("a database")
    });
    plinth_fuzzing::store_ops(db, data);
});
