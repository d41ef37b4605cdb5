//! Bytes as a component, through the import check that runs before the
//! compile.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| plinth_fuzzing::component_imports(data));
