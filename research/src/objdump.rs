//! Shared by the code-generation examples (`extmul`, `lowering`, `blamka`):
//! Cranelift's AVX-512 flags, and what `objdump` makes of compiled code.

/// What an AVX-512 CPU adds, as Cranelift knows it (the flags plinth turns
/// off, in `plinth-host`'s `runtime.rs`).
pub const AVX512: &[&str] = &[
    "has_avx512f",
    "has_avx512vl",
    "has_avx512dq",
    "has_avx512bitalg",
    "has_avx512vbmi",
];

/// `objdump -d --no-show-raw-insn` with `args` of `elf` (a module or
/// component wasmtime compiled ahead of time), through a temporary file.
pub fn disassemble(elf: &[u8], args: &[&str]) -> std::io::Result<String> {
    let path = std::env::temp_dir().join(format!("plinth-research-{}.cwasm", std::process::id()));
    std::fs::write(&path, elf)?;
    let out = std::process::Command::new("objdump")
        .args(["-d", "--no-show-raw-insn"])
        .args(args)
        .arg(&path)
        .output();
    let _ = std::fs::remove_file(&path);
    Ok(String::from_utf8_lossy(&out?.stdout).into_owned())
}
