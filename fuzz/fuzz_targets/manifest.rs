//! Bytes as a manifest file.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| plinth_fuzzing::manifest(data));
