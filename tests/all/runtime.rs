//! The runtime, one area a file: grants and approvals, files and bytes that
//! are not components, the import check, the compile cache, concurrency,
//! reused instances, guest output in `tracing`, and profiling.

mod cache;
mod components;
mod concurrency;
mod grants;
mod imports;
mod observability;
#[cfg(target_os = "linux")]
mod profiling;
mod reuse;
