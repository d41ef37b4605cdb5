//! What a `#![no_std]` plinth guest needs that `std` would give it: a global
//! allocator, the canonical ABI's `cabi_realloc`, a panic handler, and the
//! two byte comparisons the compiler calls.
//!
//! A `std` guest on wasm32-wasip2 imports fourteen WASI interfaces (stdio,
//! terminals, environment, exit) for its panic message alone, and every one
//! of them is linked again for each fresh instance. A guest built on this
//! crate imports only what its own code calls. The price: a panic traps
//! without printing its message (the host still reports a trap naming the
//! plugin and the function).
#![no_std]

extern crate alloc;

// The heap and its state assume one thread (see `heap.rs`).
#[cfg(target_feature = "atomics")]
compile_error!("plinth-guest-rt assumes a single-threaded guest (no `atomics`)");

mod heap;

#[global_allocator]
static ALLOCATOR: heap::Heap = heap::Heap::new();

#[panic_handler]
fn panic(_info: &core::panic::PanicInfo<'_>) -> ! {
    core::arch::wasm32::unreachable()
}

/// The canonical ABI's allocation entry point, which `std` guests get from
/// wasi-libc: the host calls it to place strings and lists in guest memory.
///
/// # Safety
/// Called by the host per the component model's canonical ABI: `old_ptr` and
/// `old_len` are 0 or describe an allocation this function made with `align`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cabi_realloc(
    old_ptr: *mut u8,
    old_len: usize,
    align: usize,
    new_len: usize,
) -> *mut u8 {
    use alloc::alloc::{Layout, alloc, handle_alloc_error, realloc};
    if new_len == 0 {
        return align as *mut u8;
    }
    let Ok(layout) = Layout::from_size_align(if old_len == 0 { new_len } else { old_len }, align)
    else {
        core::arch::wasm32::unreachable()
    };
    // SAFETY: the layout is non-zero in size; a reallocation is of a block
    // this function returned with the same alignment (the caller's contract).
    let ptr = unsafe {
        if old_len == 0 {
            alloc(layout)
        } else {
            realloc(old_ptr, layout, new_len)
        }
    };
    if ptr.is_null() {
        handle_alloc_error(layout);
    }
    ptr
}

/// Compares `n` bytes; what `std` guests get from wasi-libc, and what the
/// compiler calls for slice and string comparisons (`memory.copy` and
/// `memory.fill` cover copying and filling).
///
/// # Safety
/// `a` and `b` are valid for reads of `n` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    let mut i = 0;
    while i < n {
        // SAFETY: `i < n`, and both are valid for `n` bytes.
        let (x, y) = unsafe { (*a.add(i), *b.add(i)) };
        if x != y {
            return i32::from(x) - i32::from(y);
        }
        i += 1;
    }
    0
}

/// Equality of `n` bytes: zero when equal.
///
/// # Safety
/// As [`memcmp`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn bcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    // SAFETY: the same contract.
    unsafe { memcmp(a, b, n) }
}
