//! The guest heap, shaped by how the runtime recycles a linear memory.
//!
//! Between instances the pooling allocator resets a memory by zeroing (or
//! re-copying from the data image) the pages it finds written, up to a
//! budget, and returns the rest to the kernel. It cannot tell a page written
//! by this instance from one written by an earlier instance in the same slot:
//! a page written once stays resident and is reset after every later
//! instance, touched or not. And a slot whose memory grew is shrunk back (an
//! `mprotect`) before its next instance, and grown again (another) when that
//! instance grows. So:
//!
//! * Small allocations come from dlmalloc, fed first with the part of the
//!   initial memory the linker left free (`__heap_base..__heap_end`; a guest
//!   can link with an initial memory larger than its stack and data, as auth
//!   does). A call whose small allocations fit there never grows its memory.
//! * Large ones (Argon2's 19 MiB of blocks) come straight from `memory.grow`,
//!   above the initial memory, already zero: they do not sprawl over the
//!   small heap's pages (dlmalloc would extend its first region into them and
//!   zero it all, leaving the whole initial heap to be reset after every
//!   later call), and `alloc_zeroed` costs no `memset`. Freed large blocks
//!   are kept for reuse within the instance (a wasm memory cannot shrink; the
//!   instance, and its memory, end with the call).
//! * Tiny ones (at most 128 bytes, aligned to at most 8) are the strings the
//!   host places in guest memory through `cabi_realloc` and the guest drops
//!   soon after: a user record returned by a lookup is three of them. Freed
//!   tiny blocks go on a free list per 16-byte size class and are handed out
//!   again by a pop, with no search of dlmalloc's bins. A list keeps at most
//!   [`KEPT_TINY`] blocks; beyond that they go back to dlmalloc, so at most
//!   288 KiB sits on the lists.

use core::alloc::{GlobalAlloc, Layout};
use core::arch::wasm32;
use core::cell::UnsafeCell;
use core::ptr;

/// A wasm page.
const PAGE: usize = 64 * 1024;
/// The unit of dlmalloc's requests for more memory (a wasm page is 16 of
/// them; `memory.grow` rounds up).
const GRANULARITY: usize = 4096;
/// Allocations of at least this many bytes are large.
const LARGE: usize = 256 * 1024;
/// Freed large blocks remembered for reuse; beyond this they are leaked
/// until the instance ends.
const KEPT_LARGE: usize = 8;
/// The size classes of tiny blocks: 16, 32, .., 128 bytes.
const TINY_STEP: usize = 16;
const TINY_CLASSES: usize = 8;
/// Tiny blocks are aligned to this (dlmalloc's own alignment on wasm32).
const TINY_ALIGN: usize = 8;
/// Freed tiny blocks kept on each class's list.
const KEPT_TINY: u32 = 512;

/// Pages fresh from `memory.grow` (zero), or null.
fn grow(bytes: usize) -> (*mut u8, usize) {
    let pages = bytes.div_ceil(PAGE);
    let previous = wasm32::memory_grow(0, pages);
    if previous == usize::MAX {
        return (ptr::null_mut(), 0);
    }
    ((previous * PAGE) as *mut u8, pages * PAGE)
}

unsafe extern "C" {
    /// Where the linker put the end of the stack and data: the start of the
    /// free part of the initial memory.
    static __heap_base: u8;
    /// The end of the initial memory.
    static __heap_end: u8;
}

/// Where dlmalloc gets memory from.
struct Source {
    /// Whether the free part of the initial memory was handed out.
    arena_used: UnsafeCell<bool>,
}

// SAFETY: wasm32 guests are single-threaded (no `atomics` target feature).
unsafe impl Send for Source {}

impl Source {
    /// The free part of the initial memory, once.
    fn arena(&self, size: usize) -> Option<(*mut u8, usize)> {
        // SAFETY: single-threaded; no other reference to the flag exists.
        let used = unsafe { &mut *self.arena_used.get() };
        if *used {
            return None;
        }
        let base = ptr::addr_of!(__heap_base) as usize;
        let end = ptr::addr_of!(__heap_end) as usize;
        if end <= base || end - base < size {
            return None;
        }
        *used = true;
        Some((base as *mut u8, end - base))
    }
}

// SAFETY: every region returned is unused memory of this instance, either
// the arena (handed out once) or pages fresh from `memory.grow`.
unsafe impl dlmalloc::Allocator for Source {
    fn alloc(&self, size: usize) -> (*mut u8, usize, u32) {
        if let Some((base, len)) = self.arena(size) {
            return (base, len, 0);
        }
        let (base, len) = grow(size);
        (base, len, 0)
    }

    fn remap(&self, _ptr: *mut u8, _old: usize, _new: usize, _can_move: bool) -> *mut u8 {
        ptr::null_mut()
    }

    fn free_part(&self, _ptr: *mut u8, _old: usize, _new: usize) -> bool {
        false
    }

    fn free(&self, _ptr: *mut u8, _size: usize) -> bool {
        false
    }

    fn can_release_part(&self, _flags: u32) -> bool {
        false
    }

    fn allocates_zeros(&self) -> bool {
        // Fresh pages are zero, and so is the arena: an instance starts from
        // its data image, which ends before `__heap_base`.
        true
    }

    fn page_size(&self) -> usize {
        PAGE
    }
}

/// Large blocks freed and not yet reused: `(start, bytes)`, bytes 0 when
/// the slot is empty.
struct FreeLarge([(usize, usize); KEPT_LARGE]);

impl FreeLarge {
    /// A kept block of at least `bytes`, the smallest that fits.
    fn take(&mut self, bytes: usize) -> Option<(*mut u8, usize)> {
        let best = self
            .0
            .iter_mut()
            .filter(|(_, len)| *len >= bytes)
            .min_by_key(|(_, len)| *len)?;
        let (start, len) = core::mem::take(best);
        Some((start as *mut u8, len))
    }

    fn keep(&mut self, start: *mut u8, bytes: usize) {
        if let Some(slot) = self.0.iter_mut().find(|(_, len)| *len == 0) {
            *slot = (start as usize, bytes);
        }
    }
}

/// The size class of a tiny block, or `None` for a larger or more aligned one.
fn tiny_class(layout: Layout) -> Option<usize> {
    let size = layout.size();
    (size <= TINY_STEP * TINY_CLASSES && layout.align() <= TINY_ALIGN)
        .then(|| size.saturating_sub(1) / TINY_STEP)
}

/// The bytes a tiny block of `class` holds.
fn tiny_size(class: usize) -> usize {
    (class + 1) * TINY_STEP
}

/// Freed tiny blocks, a singly linked list per size class: each free block's
/// first word holds the address of the next (0 ends the list).
struct FreeTiny {
    heads: [usize; TINY_CLASSES],
    counts: [u32; TINY_CLASSES],
}

impl FreeTiny {
    fn pop(&mut self, class: usize) -> Option<*mut u8> {
        let head = self.heads[class];
        if head == 0 {
            return None;
        }
        let block = head as *mut usize;
        // SAFETY: `head` is a free tiny block of this class (at least 16
        // bytes, aligned to 8) whose first word `push` wrote.
        self.heads[class] = unsafe { block.read() };
        self.counts[class] -= 1;
        Some(block.cast())
    }

    /// Keeps `block`; `false` when the class's list is full.
    fn push(&mut self, class: usize, block: *mut u8) -> bool {
        if self.counts[class] >= KEPT_TINY {
            return false;
        }
        // SAFETY: `block` is a tiny block of this class the caller no longer
        // uses: at least 16 bytes, aligned to 8.
        unsafe { block.cast::<usize>().write(self.heads[class]) };
        self.heads[class] = block as usize;
        self.counts[class] += 1;
        true
    }
}

/// A large block's size as allocated: whole wasm pages.
fn large_size(layout: Layout) -> usize {
    layout.size().div_ceil(PAGE) * PAGE
}

fn is_large(layout: Layout) -> bool {
    layout.size() >= LARGE && layout.align() <= PAGE
}

/// The global allocator.
pub struct Heap {
    small: UnsafeCell<dlmalloc::Dlmalloc<Source>>,
    free_large: UnsafeCell<FreeLarge>,
    free_tiny: UnsafeCell<FreeTiny>,
}

// SAFETY: wasm32 guests are single-threaded (no `atomics` target feature).
unsafe impl Sync for Heap {}

impl Heap {
    pub const fn new() -> Self {
        let mut small = dlmalloc::Dlmalloc::new_with_allocator(Source {
            arena_used: UnsafeCell::new(false),
        });
        // dlmalloc asks for memory in multiples of this; at a wasm page it
        // would pass over an initial-memory arena smaller than 64 KiB.
        small.set_granularity(GRANULARITY);
        Self {
            small: UnsafeCell::new(small),
            free_large: UnsafeCell::new(FreeLarge([(0, 0); KEPT_LARGE])),
            free_tiny: UnsafeCell::new(FreeTiny {
                heads: [0; TINY_CLASSES],
                counts: [0; TINY_CLASSES],
            }),
        }
    }

    #[allow(clippy::mut_from_ref)]
    fn small(&self) -> &mut dlmalloc::Dlmalloc<Source> {
        // SAFETY: single-threaded, and the allocator is not re-entered.
        unsafe { &mut *self.small.get() }
    }

    #[allow(clippy::mut_from_ref)]
    fn free_large(&self) -> &mut FreeLarge {
        // SAFETY: as for `small`.
        unsafe { &mut *self.free_large.get() }
    }

    #[allow(clippy::mut_from_ref)]
    fn free_tiny(&self) -> &mut FreeTiny {
        // SAFETY: as for `small`.
        unsafe { &mut *self.free_tiny.get() }
    }

    /// A tiny block of `class`: a kept one, or a new one from dlmalloc.
    fn alloc_tiny(&self, class: usize) -> *mut u8 {
        match self.free_tiny().pop(class) {
            Some(block) => block,
            // SAFETY: a non-zero size and a power-of-two alignment.
            None => unsafe { self.small().malloc(tiny_size(class), TINY_ALIGN) },
        }
    }

    /// Frees a tiny block of `class`.
    fn dealloc_tiny(&self, class: usize, block: *mut u8) {
        if !self.free_tiny().push(class, block) {
            // SAFETY: dlmalloc allocated the block with this size and
            // alignment (`alloc_tiny`).
            unsafe { self.small().free(block, tiny_size(class), TINY_ALIGN) }
        }
    }

    /// A large block: a kept one (and whether it may hold old bytes), or
    /// fresh zero pages.
    fn alloc_large(&self, layout: Layout) -> (*mut u8, bool) {
        let bytes = large_size(layout);
        match self.free_large().take(bytes) {
            Some((start, len)) => {
                // Give back what is not needed, for a later, smaller block.
                if len > bytes {
                    // SAFETY: `start..start + len` is a kept block.
                    self.free_large()
                        .keep(unsafe { start.add(bytes) }, len - bytes);
                }
                (start, true)
            }
            None => (grow(bytes).0, false),
        }
    }
}

// SAFETY: dlmalloc upholds `GlobalAlloc`'s contract for the layouts given.
unsafe impl GlobalAlloc for Heap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if let Some(class) = tiny_class(layout) {
            return self.alloc_tiny(class);
        }
        if is_large(layout) {
            return self.alloc_large(layout).0;
        }
        unsafe { self.small().malloc(layout.size(), layout.align()) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if let Some(class) = tiny_class(layout) {
            // A kept block holds its last owner's bytes, and so can a new one
            // from dlmalloc's bins.
            let block = self.alloc_tiny(class);
            if !block.is_null() {
                // SAFETY: the block holds at least `layout.size()` bytes.
                unsafe { ptr::write_bytes(block, 0, layout.size()) };
            }
            return block;
        }
        if is_large(layout) {
            let (ptr, used) = self.alloc_large(layout);
            if used && !ptr.is_null() {
                // SAFETY: the block holds at least `layout.size()` bytes.
                unsafe { ptr::write_bytes(ptr, 0, layout.size()) };
            }
            return ptr;
        }
        unsafe { self.small().calloc(layout.size(), layout.align()) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if let Some(class) = tiny_class(layout) {
            self.dealloc_tiny(class, ptr);
            return;
        }
        if is_large(layout) {
            self.free_large().keep(ptr, large_size(layout));
            return;
        }
        unsafe { self.small().free(ptr, layout.size(), layout.align()) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the alignment is unchanged and was valid; `new_size` is
        // non-zero and does not overflow when rounded (`GlobalAlloc`'s
        // contract).
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        let (tiny, new_tiny) = (tiny_class(layout), tiny_class(new_layout));
        if tiny.is_some() && tiny == new_tiny {
            return ptr;
        }
        if tiny.is_none() && new_tiny.is_none() && !is_large(layout) && !is_large(new_layout) {
            return unsafe {
                self.small()
                    .realloc(ptr, layout.size(), layout.align(), new_size)
            };
        }
        if is_large(layout) && is_large(new_layout) && large_size(new_layout) <= large_size(layout)
        {
            return ptr;
        }
        let new = unsafe { self.alloc(new_layout) };
        if !new.is_null() {
            // SAFETY: both blocks hold at least the smaller size, and are
            // distinct.
            unsafe {
                ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
                self.dealloc(ptr, layout);
            }
        }
        new
    }
}
