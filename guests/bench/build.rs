//! Links the bench guest with a 128 KiB initial memory: its stack and data
//! take about 72 KiB, and the rest is where its heap starts (see
//! `plinth-guest-rt`), so that a call of `lookup-by-email` never grows its
//! memory. Growing costs the runtime two `mprotect`s (growing now, shrinking
//! before the next instance in the slot), each of which interrupts every
//! other core to flush its TLB.

fn main() {
    println!("cargo:rustc-link-arg-cdylib=--initial-memory=131072");
}
