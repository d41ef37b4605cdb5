//! Links auth with a 512 KiB initial memory: its stack and data take about
//! 360 KiB, and the rest is where its heap starts (see `plinth-guest-rt`), so
//! that a call that allocates little, like `validate-session`, never grows
//! its memory. Larger would cost every call: the runtime scans a memory's
//! page tables, all of it, to find the pages to reset.

fn main() {
    println!("cargo:rustc-link-arg-cdylib=--initial-memory=524288");
}
