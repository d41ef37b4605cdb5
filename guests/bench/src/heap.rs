//! Checks of the guests' heap, run inside a guest by the integration tests.

use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use core::arch::wasm32;
use core::hint::black_box;

/// Fails with `what` unless `ok`.
fn ensure(ok: bool, what: &str) -> Result<(), String> {
    if ok { Ok(()) } else { Err(what.into()) }
}

fn pages() -> usize {
    wasm32::memory_size(0)
}

pub fn check() -> Result<u32, String> {
    // Small blocks live in the initial memory's free part or in grown pages;
    // keep some alive across everything below.
    let small: Vec<Vec<u8>> = (0..200u8).map(|i| vec![i; 1 + usize::from(i)]).collect();

    // A large zeroed block comes from fresh pages.
    let mut big = vec![0u8; 1 << 20];
    ensure(
        big.iter().all(|&b| b == 0),
        "a fresh large block is not zero",
    )?;
    big.iter_mut().enumerate().for_each(|(i, b)| *b = i as u8);
    // Addresses go through `black_box`: the optimiser may otherwise assume
    // two allocations never share an address, freed or not.
    let big_at = black_box(big.as_ptr() as usize);
    let grown = pages();
    drop(big);

    // A smaller large block reuses the freed one, zeroed again, and the
    // memory does not grow.
    let again = vec![0u8; 512 << 10];
    ensure(
        black_box(again.as_ptr() as usize) == big_at,
        "a freed large block is not reused",
    )?;
    ensure(
        again.iter().all(|&b| b == 0),
        "a reused large block is not zeroed",
    )?;
    ensure(pages() == grown, "reusing a large block grew the memory")?;

    // The rest of the freed block serves the next large request.
    let rest = vec![7u8; 256 << 10];
    ensure(
        black_box(rest.as_ptr() as usize) == big_at + (512 << 10),
        "the rest of a split large block is not reused",
    )?;
    ensure(
        pages() == grown,
        "reusing the rest of a large block grew the memory",
    )?;

    // Growing a small block past the large threshold keeps its bytes, and so
    // does shrinking it back.
    let mut v: Vec<u32> = Vec::new();
    for i in 0..200_000u32 {
        v.push(i);
    }
    ensure(
        v.iter().enumerate().all(|(i, &x)| x as usize == i),
        "a reallocation lost bytes",
    )?;
    v.truncate(100);
    v.shrink_to_fit();
    ensure(
        v.iter().enumerate().all(|(i, &x)| x as usize == i),
        "shrinking a large block to a small one lost bytes",
    )?;

    // The small blocks are intact.
    for (i, s) in small.iter().enumerate() {
        ensure(
            s.len() == 1 + i && s.iter().all(|&b| usize::from(b) == i),
            &format!("small block {i} was overwritten"),
        )?;
    }
    ensure(
        again.iter().all(|&b| b == 0) && rest.iter().all(|&b| b == 7),
        "large blocks were overwritten",
    )?;
    u32::try_from(pages()).map_err(|_| "memory size".into())
}
