//! What Cranelift emits for one guest function under different x86-64 CPU
//! feature sets, compiled ahead of time (nothing runs, so a feature set this
//! CPU lacks can be looked at too). Wasmtime and Cranelift only, no plinth
//! code: the component is compiled for the `x86_64-unknown-linux-gnu`
//! target with the features named below, the result disassembled with
//! `objdump`, and the function whose symbol contains the given name
//! summarised: its instruction count, its memory operands, and the
//! mnemonics that differ from the first feature set's.
//!
//! ```text
//! cargo run --release -p plinth-research --example lowering -- \
//!     target/wasm-guests/wasm32-wasip2/release/auth.wasm compress_into
//! ```
//!
//! The feature sets: an AVX2 CPU (AMD Zen 3, Intel before Skylake-X), an
//! AVX-512 CPU as Cranelift detects it (AMD Zen 4, Intel Ice Lake and later:
//! F, VL, DQ, BW, VBMI, BITALG), the same without DQ, and the same without
//! any AVX-512 feature.

use std::collections::BTreeMap;

use plinth_research::objdump::{self, AVX512};
use wasmtime::{Config, Engine};

/// Features every set has: an x86-64 CPU with AVX2 (Haswell, Zen).
const AVX2: &[&str] = &[
    "has_sse3",
    "has_ssse3",
    "has_cmpxchg16b",
    "has_sse41",
    "has_sse42",
    "has_popcnt",
    "has_avx",
    "has_avx2",
    "has_fma",
    "has_bmi1",
    "has_bmi2",
    "has_lzcnt",
];

fn engine(on: &[&str]) -> wasmtime::Result<Engine> {
    let mut config = Config::new();
    config.target("x86_64-unknown-linux-gnu")?;
    for flag in on {
        // SAFETY: the code is only compiled and disassembled, never run.
        #[allow(unsafe_code)]
        unsafe {
            config.cranelift_flag_enable(flag);
        }
    }
    Engine::new(&config)
}

/// The instructions of the first function whose symbol contains `name`.
fn disassemble(engine: &Engine, wasm: &[u8], name: &str) -> wasmtime::Result<Vec<String>> {
    let elf = engine.precompile_component(wasm)?;
    let text = objdump::disassemble(&elf, &["--no-addresses", "-M", "intel"])
        .map_err(|e| wasmtime::Error::msg(format!("objdump: {e}")))?;
    let mut inside = false;
    let mut body = Vec::new();
    for line in text.lines() {
        if line.ends_with(">:") {
            if inside {
                break;
            }
            inside = line.contains(name);
            continue;
        }
        if inside && !line.trim().is_empty() {
            body.push(line.trim().to_string());
        }
    }
    if body.is_empty() {
        return Err(wasmtime::Error::msg(format!(
            "no function named like {name:?}"
        )));
    }
    Ok(body)
}

fn mnemonics(body: &[String]) -> BTreeMap<String, usize> {
    let mut count = BTreeMap::new();
    for line in body {
        if let Some(m) = line.split_whitespace().next() {
            *count.entry(m.to_string()).or_insert(0) += 1;
        }
    }
    count
}

fn main() -> wasmtime::Result<()> {
    let mut args = std::env::args().skip(1);
    let path = args
        .next()
        .unwrap_or_else(|| "target/wasm-guests/wasm32-wasip2/release/auth.wasm".into());
    let name = args.next().unwrap_or_else(|| "compress_into".into());
    let wasm = std::fs::read(&path)?;
    let with = |extra: &[&str], without: &[&str]| -> Vec<&'static str> {
        AVX2.iter()
            .chain(AVX512.iter())
            .copied()
            .filter(|f| AVX2.contains(f) || (extra.contains(f) && !without.contains(f)))
            .collect()
    };
    let sets: [(&str, Vec<&str>); 4] = [
        ("AVX2 (Zen 3)", with(&[], &[])),
        ("AVX-512 as detected (Zen 4, Ice Lake)", with(AVX512, &[])),
        ("AVX-512 without DQ", with(AVX512, &["has_avx512dq"])),
        ("AVX-512 with every AVX-512 flag off", with(AVX512, AVX512)),
    ];
    println!("{path}: the function named like {name:?}");
    let mut first: Option<(Vec<String>, BTreeMap<String, usize>)> = None;
    for (label, flags) in &sets {
        let body = disassemble(&engine(flags)?, &wasm, &name)?;
        let counts = mnemonics(&body);
        let memory = body.iter().filter(|l| l.contains("PTR")).count();
        let zmm_or_evex = body
            .iter()
            .filter(|l| l.contains("{") || l.contains("perm") || l.contains("vpmullq"))
            .count();
        print!(
            "{label:<40} {:>5} instructions, {memory:>4} with a memory operand, {zmm_or_evex:>3} EVEX-only",
            body.len()
        );
        match &first {
            None => {
                println!();
                first = Some((body, counts));
            }
            Some((first_body, _)) if *first_body == body => {
                println!("; identical to the first");
            }
            Some((_, first_counts)) => {
                let diff: Vec<String> = counts
                    .keys()
                    .chain(first_counts.keys())
                    .collect::<std::collections::BTreeSet<_>>()
                    .into_iter()
                    .filter_map(|m| {
                        let (a, b) = (
                            first_counts.get(m).copied().unwrap_or(0),
                            counts.get(m).copied().unwrap_or(0),
                        );
                        (a != b).then(|| format!("{m} {a}→{b}"))
                    })
                    .collect();
                println!("; differs: {}", diff.join(", "));
            }
        }
    }
    Ok(())
}
