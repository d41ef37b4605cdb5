//! `wasi:http` 0.2, for plugins that serve HTTP (components that export
//! `wasi:http/incoming-handler`, as `wasmtime serve` and Spin run them):
//! `wasi:http/types` is wasmtime-wasi-http's, and
//! `wasi:http/outgoing-handler` is plinth's, whose `handle` answers
//! `HTTP-request-denied` without sending anything: a plugin has no network.
//!
//! Both are open to every plugin: the types reach nothing by themselves (a
//! request, a response, headers and bodies that only the host hands out and
//! reads), and the outgoing handler reaches nothing at all. The request a
//! plugin is given and the response it sets are made and read by
//! [`Plugin::handle_http`](crate::Plugin::handle_http).

use wasmtime::StoreContextMut;
use wasmtime::component::{Linker, Resource};
use wasmtime_wasi_http::p2::bindings::http::types;
use wasmtime_wasi_http::p2::types::{HostFutureIncomingResponse, HostOutgoingRequest};
use wasmtime_wasi_http::{
    RequestOptions, WasiBody, WasiHttp, WasiHttpCtx, WasiHttpCtxView, WasiHttpHooks, WasiHttpView,
};

use crate::capability::{Capability, Gate, Interface};
use crate::state::CallState;

/// `wasi:http/types`: open to every plugin.
pub const TYPES: Interface = Interface {
    name: "wasi:http/types",
    version: "0.2",
    summary: "WASI 0.2 HTTP requests, responses, headers and bodies: what a plugin's \
              incoming handler is given and answers with",
    gate: Gate::Open,
    functions: &[],
};

/// `wasi:http/outgoing-handler`: open to every plugin, and every request it
/// is given answers `HTTP-request-denied`.
pub const OUTGOING_HANDLER: Interface = Interface {
    name: "wasi:http/outgoing-handler",
    version: "0.2",
    summary: "WASI 0.2 outgoing HTTP: every request answers HTTP-request-denied \
              (plugins have no network)",
    gate: Gate::Open,
    functions: &[],
};

/// The capability: links `wasi:http/types` (synchronous) and the outgoing
/// handler that refuses.
pub const CAPABILITY: Capability = Capability {
    interfaces: &[TYPES, OUTGOING_HANDLER],
    add_to_linker: |linker| {
        let options = wasmtime_wasi_http::p2::bindings::LinkOptions::default();
        types::add_to_linker::<CallState, WasiHttp>(linker, &options.into(), |s| s.http())?;
        link_refusing_handler(linker)
    },
};

/// The version of `wasi:http` that wasmtime-wasi-http implements (and that
/// `types` is linked at); a guest built against any 0.2 links with it.
const WASI_HTTP_VERSION: &str = "0.2.12";

/// `wasi:http/outgoing-handler.handle`, answering `HTTP-request-denied`
/// before anything is built or sent. Linked by hand rather than through
/// wasmtime-wasi-http's bindings, whose handler would build the request and
/// ask the hooks to send it, answering only through the future it returns.
fn link_refusing_handler(linker: &mut Linker<CallState>) -> wasmtime::Result<()> {
    type Answer = Result<Resource<HostFutureIncomingResponse>, types::ErrorCode>;
    let mut handler =
        linker.instance(&format!("wasi:http/outgoing-handler@{WASI_HTTP_VERSION}"))?;
    handler.func_wrap(
        "handle",
        |mut store: StoreContextMut<'_, CallState>,
         (request, options): (
            Resource<HostOutgoingRequest>,
            Option<Resource<RequestOptions>>,
        )|
         -> wasmtime::Result<(Answer,)> {
            // The guest gave both away: dropped here, and nothing is sent.
            let table = &mut store.data_mut().wasi.table;
            let request = table.delete(request)?;
            if let Some(options) = options {
                table.delete(options)?;
            }
            tracing::debug!(
                authority = request.authority.as_deref().unwrap_or(""),
                "outgoing HTTP request denied"
            );
            Ok((Err(types::ErrorCode::HttpRequestDenied),))
        },
    )
}

/// A call's `wasi:http` context: wasmtime-wasi-http's (the size limit of a
/// header map) and hooks that send nothing. Its resources live in the
/// call's WASI resource table, beside the streams of their bodies.
#[derive(Default)]
pub(crate) struct HttpSlot {
    ctx: WasiHttpCtx,
    hooks: NoNetwork,
}

impl WasiHttpView for CallState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http.ctx,
            table: &mut self.wasi.table,
            hooks: &mut self.http.hooks,
        }
    }
}

/// No network: the hooks wasmtime-wasi-http would send a request through
/// refuse it (the outgoing handler never calls them: it refuses first).
#[derive(Default)]
struct NoNetwork;

impl WasiHttpHooks for NoNetwork {
    fn send_request(
        &mut self,
        _request: http::Request<WasiBody>,
        _options: Option<RequestOptions>,
        _fut: Box<dyn Future<Output = Result<(), wasmtime_wasi_http::Error>> + Send>,
    ) -> Box<
        dyn Future<
                Output = Result<
                    (
                        http::Response<WasiBody>,
                        Box<dyn Future<Output = Result<(), wasmtime_wasi_http::Error>> + Send>,
                    ),
                    wasmtime_wasi_http::Error,
                >,
            > + Send,
    > {
        Box::new(async { Err(wasmtime_wasi_http::Error::HttpRequestDenied) })
    }
}
