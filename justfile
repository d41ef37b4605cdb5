# plinth's everyday recipes. Each only wraps cargo; `just ci` runs exactly
# what .ci/run runs.

# List the recipes.
default:
    @just --list

# --- build ---

# Build the guest components (wasm32-wasip2, release) into target/wasm-guests.
guests:
    cargo build -p plinth-guests

# Build everything.
build:
    cargo build --workspace

# --- run ---

# Run the demo on the default embedded database.
demo:
    cargo run --bin plinth -- demo

# Run the benchmarks (release build with LTO; the numbers go in docs/BENCHMARKS.md).
bench:
    cargo bench -p plinth-tests --bench plinth

# --- check ---

# Run every test (builds the guests first).
test:
    cargo test

# Format the host workspace and the guests.
fmt:
    cargo fmt --all
    cargo fmt --all --manifest-path guests/Cargo.toml

# Fuzz one target (manifest, wave_call, store_ops) on the nightly toolchain;
# new corpus entries land in fuzz/corpus/<target>, which `cargo test` replays.
fuzz target seconds="60":
    cargo build -p plinth-guests
    cargo +nightly fuzz run {{target}} fuzz/corpus/{{target}} -- -max_total_time={{seconds}}

# Check formatting and lints, host and guests, with warnings as errors.
lint:
    cargo fmt --all --check
    cargo fmt --all --check --manifest-path guests/Cargo.toml
    cargo clippy --workspace --all-targets -- -D warnings
    # From guests/, so that guests/.cargo/config.toml (SIMD128, stack size) applies.
    cd guests && cargo clippy --target wasm32-wasip2 --release -- -D warnings

# Exactly what CI runs.
ci:
    bash .ci/run
