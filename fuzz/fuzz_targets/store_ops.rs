//! Bytes as a sequence of store operations, checked against a model. One
//! database file for the whole run (a fresh one per input would measure
//! file creation): the model reads back what is there.
#![no_main]

use std::sync::OnceLock;

static DB: OnceLock<(tempfile_dir::Dir, plinth_store::Db)> = OnceLock::new();

mod tempfile_dir {
    /// A directory removed when the process ends normally.
    pub struct Dir(pub std::path::PathBuf);
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let (_, db) = DB.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("plinth-fuzz-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a temp dir");
        let db = plinth_store::Db::open(dir.join("fuzz.db")).expect("a database");
        (tempfile_dir::Dir(dir), db)
    });
    plinth_fuzzing::store_ops(db, data);
});
