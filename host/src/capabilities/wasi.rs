//! WASI 0.2, linked for every plugin with nothing in it: no preopened
//! directories, no environment, no arguments, no network; stdout and stderr
//! go to `tracing` under the plugin's name. Guests built for wasm32-wasip2
//! import parts of it even when they never use them.
//!
//! One part is plinth's own: `wasi:io/poll` and the blocking functions of
//! `wasi:io/streams`. With nothing granted, a poll (`std::thread::sleep`, a
//! subscription to a clock) and a blocking write to a response body that
//! nobody reads yet (`wasi:http`, [`crate::capabilities::http`]) are the ways
//! a guest can make the host wait, and the epoch deadline only stops wasm
//! that runs. plinth's poll and streams wait at most until the call's
//! deadline; a wait cut short fails the call as timed out.
//!
//! And `wasi:random` is linked without tracing: wasmtime-wasi's bindings log
//! every host call's result at TRACE, and a plugin's tokens are made of
//! those random values. No log level may carry a secret.

use std::sync::Arc;
use std::time::Instant;

use wasmtime::component::{HasData, Resource, ResourceTable};
use wasmtime_wasi::p2::bindings::sync::io::{poll, streams};
use wasmtime_wasi::p2::{DynInputStream, DynOutputStream, DynPollable, StreamError, StreamResult};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_io::bindings::wasi::io::poll as async_poll;
use wasmtime_wasi_io::bindings::wasi::io::streams::{
    HostInputStream as AsyncInputStream, HostOutputStream as AsyncOutputStream,
};

use crate::capability::{Capability, Gate, Interface};
use crate::state::CallState;

/// A WASI 0.2 package: every interface in it, open to every plugin.
const fn package(name: &'static str, summary: &'static str) -> Interface {
    Interface {
        name,
        version: "0.2",
        summary,
        gate: Gate::Open,
        functions: &[],
    }
}

/// The WASI 0.2 packages linked (wasmtime-wasi's, at 0.2.12), each with
/// nothing granted. `wasi:http` is a capability of its own
/// ([`super::http`]), whose outgoing requests are refused: a plugin has no
/// network.
pub const PACKAGES: &[Interface] = &[
    package(
        "wasi:cli/*",
        "WASI 0.2 command line: no environment or arguments; output goes to the host's log",
    ),
    package("wasi:clocks/*", "WASI 0.2 clocks"),
    package(
        "wasi:filesystem/*",
        "WASI 0.2 files: nothing preopened, so no file can be reached",
    ),
    package(
        "wasi:io/*",
        "WASI 0.2 streams and polls (a wait ends at the call's deadline)",
    ),
    package("wasi:random/*", "WASI 0.2 random numbers"),
    package(
        "wasi:sockets/*",
        "WASI 0.2 sockets: no network is granted, so none can be opened",
    ),
];

/// The capability: links WASI 0.2 (synchronous).
pub const CAPABILITY: Capability = Capability {
    interfaces: PACKAGES,
    add_to_linker: |linker| {
        wasmtime_wasi::p2::add_to_linker_sync(linker)?;
        // wasmtime-wasi's poll and blocking stream functions wait as long
        // as the guest asks; these replace them, with the same resource
        // types.
        linker.allow_shadowing(true);
        let linked = poll::add_to_linker::<CallState, BoundedPoll>(linker, PollView::of)
            .and_then(|()| streams::add_to_linker::<CallState, BoundedPoll>(linker, PollView::of))
            .and_then(|()| untraced::link_random(linker));
        linker.allow_shadowing(false);
        linked
    },
};

/// `wasi:random` with the same generators as wasmtime-wasi's (the call's
/// WASI context), through bindings that trace nothing. The package version
/// must be wasmtime-wasi's own (0.2.12 in wasmtime 48), so that these
/// definitions replace its, for every 0.2 version a guest imports; the
/// no-secrets-in-logs test fails if they do not.
mod untraced {
    use wasmtime::component::{HasData, Linker};
    use wasmtime_wasi::p2::bindings::random as traced;
    use wasmtime_wasi::random::{WasiRandomCtx, WasiRandomView};

    use crate::state::CallState;

    wasmtime::component::bindgen!({
        inline: "
            package wasi:random@0.2.12;

            interface random {
                get-random-bytes: func(len: u64) -> list<u8>;
                get-random-u64: func() -> u64;
            }

            interface insecure {
                get-insecure-random-bytes: func(len: u64) -> list<u8>;
                get-insecure-random-u64: func() -> u64;
            }

            interface insecure-seed {
                insecure-seed: func() -> tuple<u64, u64>;
            }

            world imports {
                import random;
                import insecure;
                import insecure-seed;
            }
        ",
        // No `tracing`: the values are secrets.
        imports: { default: trappable },
    });

    use wasi::random::{insecure, insecure_seed, random};

    struct Untraced;

    impl HasData for Untraced {
        type Data<'a> = &'a mut WasiRandomCtx;
    }

    pub(super) fn link_random(linker: &mut Linker<CallState>) -> wasmtime::Result<()> {
        random::add_to_linker::<CallState, Untraced>(linker, |s| s.random())?;
        insecure::add_to_linker::<CallState, Untraced>(linker, |s| s.random())?;
        insecure_seed::add_to_linker::<CallState, Untraced>(linker, |s| s.random())
    }

    impl random::Host for WasiRandomCtx {
        fn get_random_bytes(&mut self, len: u64) -> wasmtime::Result<Vec<u8>> {
            traced::random::Host::get_random_bytes(self, len)
        }

        fn get_random_u64(&mut self) -> wasmtime::Result<u64> {
            traced::random::Host::get_random_u64(self)
        }
    }

    impl insecure::Host for WasiRandomCtx {
        fn get_insecure_random_bytes(&mut self, len: u64) -> wasmtime::Result<Vec<u8>> {
            traced::insecure::Host::get_insecure_random_bytes(self, len)
        }

        fn get_insecure_random_u64(&mut self) -> wasmtime::Result<u64> {
            traced::insecure::Host::get_insecure_random_u64(self)
        }
    }

    impl insecure_seed::Host for WasiRandomCtx {
        fn insecure_seed(&mut self) -> wasmtime::Result<(u64, u64)> {
            traced::insecure_seed::Host::insecure_seed(self)
        }
    }
}

/// A guest's wait in `wasi:io` (a poll, a blocking read or write) reached
/// the call's deadline: the call is stopped as timed out (and rolled back),
/// as the epoch deadline stops running wasm.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the call's time limit ended a wait in wasi:io")]
pub struct DeadlineReached;

/// The [`HasData`] of plinth's `wasi:io/poll` and `wasi:io/streams`.
struct BoundedPoll;

impl HasData for BoundedPoll {
    type Data<'a> = PollView<'a>;
}

/// What the poll and stream functions see: the call's WASI resources and
/// its deadline.
struct PollView<'a> {
    table: &'a mut ResourceTable,
    deadline: Option<Instant>,
}

/// Runs `wait` on the ambient tokio runtime (as wasmtime-wasi's own
/// synchronous bindings do) until it ends or `deadline` comes: then it fails
/// with [`DeadlineReached`].
pub(crate) fn until_deadline<T>(
    deadline: Option<Instant>,
    wait: impl Future<Output = wasmtime::Result<T>>,
) -> wasmtime::Result<T> {
    wasmtime_wasi::runtime::in_tokio(async move {
        match deadline {
            None => wait.await,
            Some(d) => match tokio::time::timeout_at(d.into(), wait).await {
                Ok(done) => done,
                Err(_) => Err(DeadlineReached.into()),
            },
        }
    })
}

impl PollView<'_> {
    fn of(state: &mut CallState) -> PollView<'_> {
        PollView {
            table: &mut state.wasi.table,
            deadline: state.deadline,
        }
    }

    /// [`until_deadline`] for a stream operation: a wait cut short is a
    /// trap, which fails the call as timed out.
    fn stream_until_deadline<T>(
        deadline: Option<Instant>,
        wait: impl Future<Output = StreamResult<T>>,
    ) -> StreamResult<T> {
        until_deadline(deadline, async { Ok(wait.await) })
            .unwrap_or_else(|e| Err(StreamError::Trap(e)))
    }
}

impl poll::Host for PollView<'_> {
    fn poll(&mut self, pollables: Vec<Resource<DynPollable>>) -> wasmtime::Result<Vec<u32>> {
        until_deadline(self.deadline, async_poll::Host::poll(self.table, pollables))
    }
}

impl poll::HostPollable for PollView<'_> {
    fn ready(&mut self, pollable: Resource<DynPollable>) -> wasmtime::Result<bool> {
        // Never waits: it polls the readiness once.
        until_deadline(None, async_poll::HostPollable::ready(self.table, pollable))
    }

    fn block(&mut self, pollable: Resource<DynPollable>) -> wasmtime::Result<()> {
        until_deadline(
            self.deadline,
            async_poll::HostPollable::block(self.table, pollable),
        )
    }

    fn drop(&mut self, pollable: Resource<DynPollable>) -> wasmtime::Result<()> {
        async_poll::HostPollable::drop(self.table, pollable)
    }
}

// The streams: what never waits is wasmtime-wasi's own (its synchronous
// implementation on the table); what may wait is the async one, bounded.

impl streams::Host for PollView<'_> {
    fn convert_stream_error(&mut self, err: StreamError) -> wasmtime::Result<streams::StreamError> {
        streams::Host::convert_stream_error(self.table, err)
    }
}

impl streams::HostOutputStream for PollView<'_> {
    fn drop(&mut self, stream: Resource<DynOutputStream>) -> wasmtime::Result<()> {
        until_deadline(self.deadline, AsyncOutputStream::drop(self.table, stream))
    }

    fn check_write(&mut self, stream: Resource<DynOutputStream>) -> StreamResult<u64> {
        streams::HostOutputStream::check_write(self.table, stream)
    }

    fn write(&mut self, stream: Resource<DynOutputStream>, bytes: Vec<u8>) -> StreamResult<()> {
        streams::HostOutputStream::write(self.table, stream, bytes)
    }

    fn blocking_write_and_flush(
        &mut self,
        stream: Resource<DynOutputStream>,
        bytes: Vec<u8>,
    ) -> StreamResult<()> {
        Self::stream_until_deadline(
            self.deadline,
            AsyncOutputStream::blocking_write_and_flush(self.table, stream, bytes),
        )
    }

    fn blocking_write_zeroes_and_flush(
        &mut self,
        stream: Resource<DynOutputStream>,
        len: u64,
    ) -> StreamResult<()> {
        Self::stream_until_deadline(
            self.deadline,
            AsyncOutputStream::blocking_write_zeroes_and_flush(self.table, stream, len),
        )
    }

    fn subscribe(
        &mut self,
        stream: Resource<DynOutputStream>,
    ) -> wasmtime::Result<Resource<DynPollable>> {
        streams::HostOutputStream::subscribe(self.table, stream)
    }

    fn write_zeroes(&mut self, stream: Resource<DynOutputStream>, len: u64) -> StreamResult<()> {
        streams::HostOutputStream::write_zeroes(self.table, stream, len)
    }

    fn flush(&mut self, stream: Resource<DynOutputStream>) -> StreamResult<()> {
        streams::HostOutputStream::flush(self.table, stream)
    }

    fn blocking_flush(&mut self, stream: Resource<DynOutputStream>) -> StreamResult<()> {
        let borrowed = Resource::new_borrow(stream.rep());
        Self::stream_until_deadline(
            self.deadline,
            AsyncOutputStream::blocking_flush(self.table, borrowed),
        )
    }

    fn splice(
        &mut self,
        dst: Resource<DynOutputStream>,
        src: Resource<DynInputStream>,
        len: u64,
    ) -> StreamResult<u64> {
        streams::HostOutputStream::splice(self.table, dst, src, len)
    }

    fn blocking_splice(
        &mut self,
        dst: Resource<DynOutputStream>,
        src: Resource<DynInputStream>,
        len: u64,
    ) -> StreamResult<u64> {
        Self::stream_until_deadline(
            self.deadline,
            AsyncOutputStream::blocking_splice(self.table, dst, src, len),
        )
    }
}

impl streams::HostInputStream for PollView<'_> {
    fn drop(&mut self, stream: Resource<DynInputStream>) -> wasmtime::Result<()> {
        until_deadline(self.deadline, AsyncInputStream::drop(self.table, stream))
    }

    fn read(&mut self, stream: Resource<DynInputStream>, len: u64) -> StreamResult<Vec<u8>> {
        streams::HostInputStream::read(self.table, stream, len)
    }

    fn blocking_read(
        &mut self,
        stream: Resource<DynInputStream>,
        len: u64,
    ) -> StreamResult<Vec<u8>> {
        Self::stream_until_deadline(
            self.deadline,
            AsyncInputStream::blocking_read(self.table, stream, len),
        )
    }

    fn skip(&mut self, stream: Resource<DynInputStream>, len: u64) -> StreamResult<u64> {
        streams::HostInputStream::skip(self.table, stream, len)
    }

    fn blocking_skip(&mut self, stream: Resource<DynInputStream>, len: u64) -> StreamResult<u64> {
        Self::stream_until_deadline(
            self.deadline,
            AsyncInputStream::blocking_skip(self.table, stream, len),
        )
    }

    fn subscribe(
        &mut self,
        stream: Resource<DynInputStream>,
    ) -> wasmtime::Result<Resource<DynPollable>> {
        streams::HostInputStream::subscribe(self.table, stream)
    }
}

/// A call's WASI context, built on first use: most calls never touch WASI,
/// and building one seeds two random generators.
#[derive(Default)]
pub struct WasiSlot {
    ctx: Option<WasiCtx>,
    pub(crate) table: ResourceTable,
}

impl WasiSlot {
    /// The context, built now if this call has none yet.
    fn view(&mut self, plugin: &Arc<str>) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: self.ctx.get_or_insert_with(|| empty_ctx(plugin)),
            table: &mut self.table,
        }
    }
}

/// A WASI context that grants nothing; stdout and stderr go to `tracing`.
fn empty_ctx(plugin: &Arc<str>) -> WasiCtx {
    WasiCtx::builder()
        .stdout(crate::stdio::GuestOutput::new(plugin.clone(), "stdout"))
        .stderr(crate::stdio::GuestOutput::new(plugin.clone(), "stderr"))
        .allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false)
        .build()
}

impl WasiView for CallState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        self.wasi.view(&self.plugin.log_name)
    }
}
