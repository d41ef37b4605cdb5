//! A reproduction outside plinth (wasmtime and Cranelift only, no plinth
//! code) of how Cranelift's lowering of two SIMD128 operations Argon2's
//! compression runs on its critical path changes with the CPU's AVX-512
//! features:
//!
//! * `i64x2.extmul_low_i32x4_u` becomes two `vpmovzxdq` and a `vpmullq`
//!   when the CPU has AVX-512 VL and DQ (the `vpmullq` rule outranks the
//!   `pmuludq` special case for widening multiplies); `vpmullq` is 3 µops
//!   with ~15 cycles' latency on Intel, `pmuludq` one µop;
//! * an `i8x16.shuffle` of a vector with itself (a byte rotation) becomes
//!   `vpermi2b` with its index reloaded from memory each time (it
//!   overwrites it) when the CPU has AVX-512 VBMI, instead of `pshufb`.
//!
//! The module below runs a dependency chain of `extmul_low`, `add` and a
//! byte rotation; it is compiled with the host's CPU features as detected,
//! without `has_avx512dq`, and without both, timed side by side, and each
//! compiled body's multiplies and shuffles listed from `objdump` when it is
//! installed.
//!
//! `cargo run --release -p plinth-research --example extmul`

use std::time::Instant;

use plinth_research::objdump;
use wasm_encoder::{
    CodeSection, ExportKind, ExportSection, Function, FunctionSection, Module, TypeSection, ValType,
};
use wasmtime::{Config, Engine, Instance, Module as WasmModule, Store};

/// `(func (param $n i32) (result i64))`: `v = rotr24(v + extmul_low(v, v))`,
/// `$n` times.
fn module() -> Vec<u8> {
    let mut types = TypeSection::new();
    types.ty().function([ValType::I32], [ValType::I64]);
    let mut functions = FunctionSection::new();
    functions.function(0);
    let mut exports = ExportSection::new();
    exports.export("run", ExportKind::Func, 0);
    let mut body = Function::new([(1, ValType::V128)]);
    body.instructions()
        .v128_const(0x0000_0003_0000_0005_0000_0007_0000_0009)
        .local_set(1)
        .loop_(wasm_encoder::BlockType::Empty)
        .local_get(1)
        .local_get(1)
        .i64x2_extmul_low_i32x4_u()
        .local_get(1)
        .i64x2_add()
        .local_tee(1)
        .local_get(1)
        .i8x16_shuffle([3, 4, 5, 6, 7, 0, 1, 2, 11, 12, 13, 14, 15, 8, 9, 10])
        .local_set(1)
        .local_get(0)
        .i32_const(1)
        .i32_sub()
        .local_tee(0)
        .br_if(0)
        .end()
        .local_get(1)
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

fn engine(off: &[&str]) -> wasmtime::Result<Engine> {
    let mut config = Config::new();
    for flag in off {
        // SAFETY: turning a CPU feature off only narrows what Cranelift
        // may emit; the code still runs on this CPU.
        #[allow(unsafe_code)]
        unsafe {
            config.cranelift_flag_set(flag, "false");
        }
    }
    Engine::new(&config)
}

/// Mnemonics of the multiplies in the compiled code, via objdump.
fn multiplies(engine: &Engine, wasm: &[u8]) -> wasmtime::Result<String> {
    let Ok(text) = objdump::disassemble(&engine.precompile_module(wasm)?, &[]) else {
        return Ok("(objdump not found)".into());
    };
    let mut seen: Vec<&str> = text
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1))
        .filter(|m| {
            m.contains("mul") || m.contains("pmovzx") || m.contains("perm") || m.contains("shuf")
        })
        .collect();
    seen.sort_unstable();
    seen.dedup();
    Ok(seen.join(" "))
}

fn main() -> wasmtime::Result<()> {
    let wasm = module();
    let n = 50_000_000;
    let configs: [&[&str]; 3] = [&[], &["has_avx512dq"], &["has_avx512dq", "has_avx512vbmi"]];
    let name = |off: &[&str]| {
        if off.is_empty() {
            "as detected".to_string()
        } else {
            format!("without {}", off.join(", "))
        }
    };
    let mut rows = Vec::new();
    for round in 0..3 {
        for off in configs {
            let engine = engine(off)?;
            let module = WasmModule::new(&engine, &wasm)?;
            let mut store = Store::new(&engine, ());
            let instance = Instance::new(&mut store, &module, &[])?;
            let run = instance.get_typed_func::<i32, i64>(&mut store, "run")?;
            let t = Instant::now();
            let v = run.call(&mut store, n)?;
            let ns = t.elapsed().as_secs_f64() * 1e9 / f64::from(n);
            rows.push((round, name(off), ns, v));
            if round == 0 {
                println!("{:<40} emits: {}", name(off), multiplies(&engine, &wasm)?);
            }
        }
    }
    for (round, name, ns, v) in &rows {
        println!("round {round}, {name:<40} {ns:.2} ns per step (result {v})");
    }
    Ok(())
}
