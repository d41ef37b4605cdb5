//! A reproduction outside plinth (wasmtime and Cranelift only, no plinth
//! code) of what WebAssembly's SIMD128 instruction set costs Argon2's
//! multiply at the same 128-bit width as native code.
//!
//! BlaMka, Argon2's change to BLAKE2b's addition, is `a + b + 2·lo(a)·lo(b)`
//! in each 64-bit lane, where `lo` is the lane's low 32 bits. x86's
//! `pmuludq` is exactly `lo(a)·lo(b)` per 64-bit lane; wasm has no such
//! operation. Its widening multiplies (`i64x2.extmul_{low,high}_i32x4_u`)
//! take 32-bit lanes 0–1 or 2–3, so a guest first gathers the low halves of
//! two vectors into one (`i8x16.shuffle`), and Cranelift then spreads them
//! out again (`pshufd`) before its `pmuludq`.
//!
//! The same dependency chain — two BlaMka additions on a pair of vectors,
//! then the XOR and 32-bit rotation that follow in BLAKE2b's G — is run
//! `n` times as a wasm module compiled by Cranelift, and as native Rust with
//! SSE2 intrinsics (`_mm_mul_epu32` on the lanes themselves) compiled by
//! LLVM, timed side by side; both must compute the same value.
//!
//! `cargo run --release -p plinth-research --example blamka`

use std::time::Instant;

use plinth_research::objdump;
use wasm_encoder::{
    BlockType, CodeSection, ExportKind, ExportSection, Function, FunctionSection, Module,
    TypeSection, ValType,
};
use wasmtime::{Engine, Instance, Module as WasmModule, Store};

/// Initial lanes of `a0, a1, b0, b1`.
const START: [(u64, u64); 4] = [
    (0x0123_4567_89ab_cdef, 0x0fed_cba9_8765_4321),
    (0x1111_2222_3333_4444, 0x5555_6666_7777_8888),
    (0x9999_aaaa_bbbb_cccc, 0xdddd_eeee_ffff_0001),
    (0x0246_8ace_1357_9bdf, 0xfdb9_7531_eca8_6420),
];

/// Bytes `0..4` and `8..12` of each operand: the low halves of both lanes
/// of the first vector, then of the second (`i32x4.shuffle 0 2 4 6`).
const GATHER_LOW: [u8; 16] = [0, 1, 2, 3, 8, 9, 10, 11, 16, 17, 18, 19, 24, 25, 26, 27];
/// Each 64-bit lane's halves swapped: a rotation by 32.
const ROTR32: [u8; 16] = [4, 5, 6, 7, 0, 1, 2, 3, 12, 13, 14, 15, 8, 9, 10, 11];

fn v128(lanes: (u64, u64)) -> i128 {
    ((u128::from(lanes.1) << 64) | u128::from(lanes.0)) as i128
}

/// `(func (param $n i32) (result i64))`: `$n` times
/// `la, lb = gather(a0, a1), gather(b0, b1)`,
/// `a0 = (a0 + b0) + 2·extmul_low(la, lb)`,
/// `a1 = (a1 + b1) + 2·extmul_high(la, lb)`,
/// `b0 = rotr32(b0 ^ a0)`, `b1 = rotr32(b1 ^ a1)`; then lane 0 of
/// `a0 ^ a1 ^ b0 ^ b1`.
fn module() -> Vec<u8> {
    let (a0, a1, b0, b1, la, lb, p) = (1, 2, 3, 4, 5, 6, 7);
    let mut types = TypeSection::new();
    types.ty().function([ValType::I32], [ValType::I64]);
    let mut functions = FunctionSection::new();
    functions.function(0);
    let mut exports = ExportSection::new();
    exports.export("run", ExportKind::Func, 0);
    let mut body = Function::new([(7, ValType::V128)]);
    let mut f = body.instructions();
    for (local, lanes) in [a0, a1, b0, b1].into_iter().zip(START) {
        f.v128_const(v128(lanes)).local_set(local);
    }
    f.loop_(BlockType::Empty);
    for (out, x, y) in [(la, a0, a1), (lb, b0, b1)] {
        f.local_get(x)
            .local_get(y)
            .i8x16_shuffle(GATHER_LOW)
            .local_set(out);
    }
    for (a, b, high) in [(a0, b0, false), (a1, b1, true)] {
        f.local_get(la).local_get(lb);
        if high {
            f.i64x2_extmul_high_i32x4_u();
        } else {
            f.i64x2_extmul_low_i32x4_u();
        }
        f.local_set(p)
            .local_get(a)
            .local_get(b)
            .i64x2_add()
            .local_get(p)
            .local_get(p)
            .i64x2_add()
            .i64x2_add()
            .local_set(a);
    }
    for (a, b) in [(a0, b0), (a1, b1)] {
        f.local_get(b)
            .local_get(a)
            .v128_xor()
            .local_tee(b)
            .local_get(b)
            .i8x16_shuffle(ROTR32)
            .local_set(b);
    }
    f.local_get(0)
        .i32_const(1)
        .i32_sub()
        .local_tee(0)
        .br_if(0)
        .end()
        .local_get(a0)
        .local_get(a1)
        .v128_xor()
        .local_get(b0)
        .v128_xor()
        .local_get(b1)
        .v128_xor()
        .i64x2_extract_lane(0)
        .end();
    let mut code = CodeSection::new();
    code.function(&body);
    let mut module = Module::new();
    module
        .section(&types)
        .section(&functions)
        .section(&exports)
        .section(&code);
    module.finish()
}

/// The same chain natively: `_mm_mul_epu32` multiplies the low halves of
/// the 64-bit lanes as they are (SSE2, on every x86-64 CPU).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "sse2")]
fn chain(n: u32) -> u64 {
    use std::arch::x86_64::{
        __m128i, _mm_add_epi64, _mm_cvtsi128_si64, _mm_mul_epu32, _mm_set_epi64x,
        _mm_shuffle_epi32, _mm_xor_si128,
    };
    let load = |(lo, hi): (u64, u64)| -> __m128i { _mm_set_epi64x(hi as i64, lo as i64) };
    let [mut a0, mut a1, mut b0, mut b1] = START.map(load);
    for _ in 0..std::hint::black_box(n) {
        let p0 = _mm_mul_epu32(a0, b0);
        a0 = _mm_add_epi64(_mm_add_epi64(a0, b0), _mm_add_epi64(p0, p0));
        let p1 = _mm_mul_epu32(a1, b1);
        a1 = _mm_add_epi64(_mm_add_epi64(a1, b1), _mm_add_epi64(p1, p1));
        b0 = _mm_shuffle_epi32::<0b10_11_00_01>(_mm_xor_si128(b0, a0));
        b1 = _mm_shuffle_epi32::<0b10_11_00_01>(_mm_xor_si128(b1, a1));
    }
    let all = _mm_xor_si128(_mm_xor_si128(a0, a1), _mm_xor_si128(b0, b1));
    _mm_cvtsi128_si64(all) as u64
}

#[cfg(target_arch = "x86_64")]
fn native(n: u32) -> u64 {
    // SAFETY: SSE2 is part of x86-64 itself: every CPU this runs on has it.
    #[allow(unsafe_code)]
    unsafe {
        chain(n)
    }
}

/// The shuffles and multiplies in the compiled module, via objdump.
fn emitted(engine: &Engine, wasm: &[u8]) -> wasmtime::Result<String> {
    let Ok(text) = objdump::disassemble(&engine.precompile_module(wasm)?, &[]) else {
        return Ok("(objdump not found)".into());
    };
    let mut counts = std::collections::BTreeMap::new();
    for m in text.lines().filter_map(|l| l.split_whitespace().nth(1)) {
        if m.contains("mul") || m.contains("shuf") || m.contains("perm") || m.contains("unpck") {
            *counts.entry(m.to_string()).or_insert(0) += 1;
        }
    }
    Ok(counts
        .iter()
        .map(|(m, n)| format!("{n} {m}"))
        .collect::<Vec<_>>()
        .join(", "))
}

#[cfg(target_arch = "x86_64")]
fn main() -> wasmtime::Result<()> {
    let n = 50_000_000;
    let wasm = module();
    // Cranelift as plinth configures it: no AVX-512 lowerings.
    let mut config = wasmtime::Config::new();
    for flag in objdump::AVX512 {
        // SAFETY: turning a CPU feature off only narrows what Cranelift
        // may emit; the code still runs on this CPU.
        #[allow(unsafe_code)]
        unsafe {
            config.cranelift_flag_set(flag, "false");
        }
    }
    let engine = Engine::new(&config)?;
    println!("wasm, per step: {}", emitted(&engine, &wasm)?);
    let module = WasmModule::new(&engine, &wasm)?;
    let mut store = Store::new(&engine, ());
    let instance = Instance::new(&mut store, &module, &[])?;
    let run = instance.get_typed_func::<i32, i64>(&mut store, "run")?;
    for round in 0..3 {
        let t = Instant::now();
        let guest = run.call(&mut store, n)? as u64;
        let wasm_ns = t.elapsed().as_secs_f64() * 1e9 / f64::from(n);
        let t = Instant::now();
        let host = native(n as u32);
        let native_ns = t.elapsed().as_secs_f64() * 1e9 / f64::from(n);
        if guest != host {
            return Err(wasmtime::Error::msg(format!(
                "the chains disagree: wasm {guest:#x}, native {host:#x}"
            )));
        }
        println!(
            "round {round}: wasm {wasm_ns:.2} ns per step, native {native_ns:.2} ns: {:.2}× (both {guest:#x})",
            wasm_ns / native_ns
        );
    }
    Ok(())
}

#[cfg(not(target_arch = "x86_64"))]
fn main() {
    println!("this reproduction is for x86-64");
}
