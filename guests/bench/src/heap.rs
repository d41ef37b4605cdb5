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

    tiny()?;

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

/// Tiny blocks (at most 128 bytes): freed ones are handed out again, zeroed
/// when asked, and resized within their class in place.
fn tiny() -> Result<(), String> {
    // A freed block serves the next request of its size class.
    let a = vec![1u8; 20];
    let a_at = black_box(a.as_ptr() as usize);
    drop(a);
    let b = vec![2u8; 30];
    ensure(
        black_box(b.as_ptr() as usize) == a_at,
        "a freed tiny block is not reused",
    )?;
    drop(b);
    // Zeroed on request, although its last owner wrote to it.
    let z = vec![0u8; 32];
    ensure(
        black_box(z.as_ptr() as usize) == a_at,
        "a freed tiny block is not reused for a zeroed request",
    )?;
    ensure(
        z.iter().all(|&x| x == 0),
        "a reused tiny block is not zeroed",
    )?;
    drop(z);

    // Growing within the class stays in place; past it, the bytes move.
    let mut s = String::with_capacity(17);
    s.push_str("0123456789abcdef0");
    let s_at = black_box(s.as_ptr() as usize);
    s.reserve_exact(15);
    ensure(
        black_box(s.as_ptr() as usize) == s_at,
        "growing a tiny block within its class moved it",
    )?;
    s.push_str("123456789abcdef");
    s.reserve_exact(100);
    s.push_str("tail");
    ensure(
        s == "0123456789abcdef0123456789abcdeftail",
        "growing a tiny block past its class lost bytes",
    )?;
    s.shrink_to_fit();
    ensure(
        s == "0123456789abcdef0123456789abcdeftail",
        "shrinking a tiny block lost bytes",
    )?;

    // More freed blocks than a class keeps: the rest go back to dlmalloc, and
    // a second round fits in what the first freed.
    let round = |fill: u8| -> Vec<Vec<u8>> { (0..2000).map(|_| vec![fill; 24]).collect() };
    let first = round(3);
    let grown = pages();
    drop(first);
    let second = round(4);
    ensure(
        pages() == grown,
        "a second round of tiny blocks grew the memory",
    )?;
    ensure(
        second
            .iter()
            .all(|v| v.len() == 24 && v.iter().all(|&x| x == 4)),
        "tiny blocks overlap",
    )?;
    let mut starts: Vec<usize> = second.iter().map(|v| v.as_ptr() as usize).collect();
    starts.sort_unstable();
    ensure(
        starts.windows(2).all(|w| w[1] - w[0] >= 24),
        "two tiny blocks overlap",
    )?;
    Ok(())
}
