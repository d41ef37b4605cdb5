//! Bytes as `function(args…)` for a real plugin (the template guest, built
//! by a stable `cargo test` or `cargo build -p plinth-guests` first; or the
//! component named by PLINTH_FUZZ_COMPONENT, with its manifest beside it).
#![no_main]

use std::sync::OnceLock;

static PLUGIN: OnceLock<plinth_host::Plugin> = OnceLock::new();

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let plugin = PLUGIN.get_or_init(|| {
        let wasm = std::env::var("PLINTH_FUZZ_COMPONENT").unwrap_or_else(|_| {
            "target/wasm-guests/wasm32-wasip2/release/template.wasm".into()
        });
        let wasm = std::path::PathBuf::from(wasm);
        let dir = std::env::temp_dir().join(format!("plinth-fuzz-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a temp dir");
        let db = plinth_store::Db::open(dir.join("fuzz.db")).expect("a database");
        let runtime = plinth_host::Runtime::new(db).expect("a runtime");
        let manifest = plinth_host::Manifest::from_file(&wasm.with_extension("toml"))
            .expect("the component's manifest");
        runtime.load_file(&wasm, manifest).expect("the component")
    });
    plinth_fuzzing::wave_call(plugin, data);
});
