//! Compiler experiments behind plinth's engine settings, kept apart from the
//! runtime: each is an example that uses wasmtime and Cranelift alone (no
//! plinth code), so what it shows is about the compiler, not about plinth.
//!
//! - `lowering` — what Cranelift emits for one guest function under several
//!   x86-64 feature sets, compiled ahead of time and disassembled;
//! - `extmul` — the widening multiply and byte rotation of Argon2's
//!   compression, timed with and without Cranelift's AVX-512 flags;
//! - `blamka` — Argon2's multiply in wasm SIMD128 against native SSE2.
//!
//! ```text
//! cargo run --release -p plinth-research --example extmul
//! ```
//!
//! Their results, and the decision they support (plinth turns Cranelift's
//! AVX-512 flags off), are in `docs/BENCHMARKS.md` and `docs/DECISIONS.md`.
//! This library is what the examples share:
//!
//! ```
//! use plinth_research::objdump::AVX512;
//! assert!(AVX512.contains(&"has_avx512dq"));
//! ```

pub mod objdump;
