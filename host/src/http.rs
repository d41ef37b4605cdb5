//! Plugins that serve HTTP: a component that exports
//! `wasi:http/incoming-handler` 0.2 — what `wasmtime serve` and Spin run —
//! is handed one request per call and answers with one response
//! ([`Plugin::handle_http`]).
//!
//! The request goes in whole (its body is bytes the caller already holds);
//! the response comes out whole: its body is read while the handler writes
//! it, up to the caller's limit, and handed back only when the handler has
//! returned. A handler's imports are what any plugin's are: `wasi:http/types`
//! beside plinth's interfaces, under its grants, and an outgoing handler
//! that refuses every request ([`crate::capabilities::http`]).

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::sync::oneshot;
use wasmtime_wasi::runtime::AbortOnDropJoinHandle;
use wasmtime_wasi_http::WasiHttpView;
use wasmtime_wasi_http::p2::bindings::http::types::{ErrorCode, Scheme};
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

use crate::capabilities::wasi::until_deadline;
use crate::{Error, Plugin, Result};

/// The world whose export [`Plugin::handle_http`] calls.
pub(crate) const WORLD: &str = "wasi:http/proxy";

/// The export [`Plugin::handle_http`] calls, as errors and logs name it.
pub const HTTP_HANDLER: &str = "wasi:http/incoming-handler#handle";

/// A limit for a response body that a caller of [`Plugin::handle_http`]
/// may pass when it has none of its own: 16 MiB.
pub const DEFAULT_HTTP_RESPONSE_BYTES: usize = 16 << 20;

impl Plugin {
    /// Handles one HTTP request with the plugin's
    /// `wasi:http/incoming-handler` export, as one call: a fresh instance (or
    /// an idle one, when the manifest allows [`Reuse`](crate::Reuse)), the
    /// plugin's time and memory limits, its unit of work committed only when
    /// the handler returned normally having set a response whose body it
    /// finished within `max_body_bytes`, and rolled back otherwise.
    ///
    /// **Paths are the plugin's own.** The request's URI is what the
    /// plugin's `incoming-request` reports: its `path-with-query` is the
    /// URI's path and query as given, which a server passes *below the
    /// prefix the plugin is mounted at*: `plinth serve`, with a plugin
    /// approved at `/apps/notes`, strips that prefix, so a request for
    /// `/apps/notes/notes/3?full=1` reaches the plugin as `/notes/3?full=1`
    /// and one for `/apps/notes` as `/`. A plugin therefore answers the same
    /// wherever it is mounted (links it writes in a response are relative,
    /// or the server's to rewrite). The path must start with `/`. The scheme
    /// and authority are the URI's when it has them; otherwise `http`, and
    /// the `Host` header, or `localhost` without one. Headers go in as given
    /// but for those `wasi:http` forbids a guest to see (`host`,
    /// `connection`, …).
    ///
    /// The response's status and headers are the plugin's; its body is read
    /// as the handler writes it and is refused past `max_body_bytes` (see
    /// [`DEFAULT_HTTP_RESPONSE_BYTES`]): the handler's next write fails and
    /// the call fails, never buffering more than the limit. Trailers are not
    /// passed on.
    ///
    /// Outgoing requests (`wasi:http/outgoing-handler`) answer
    /// `HTTP-request-denied`: a plugin has no network.
    ///
    /// ```no_run
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let runtime = plinth_host::Runtime::new(plinth_store::Db::open("app.db")?)?;
    /// let plugin = runtime.load_file(
    ///     "http-notes.wasm".as_ref(),
    ///     plinth_host::Manifest::from_file("http-notes.toml".as_ref())?,
    /// )?;
    /// assert!(plugin.handles_http());
    /// let request = http::Request::get("/notes").body(bytes::Bytes::new())?;
    /// let response = plugin.handle_http(request, plinth_host::DEFAULT_HTTP_RESPONSE_BYTES)?;
    /// println!("{} {:?}", response.status(), response.body());
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// [`Error::WrongExports`] when the plugin has no such export
    /// ([`handles_http`](Self::handles_http) is false);
    /// [`Error::BadArguments`] for a path that does not start with `/`;
    /// [`Error::HttpResponse`] when the handler returned without a complete
    /// response; [`Error::HttpResponseTooLarge`]; and the call errors:
    /// [`Error::Trap`], [`Error::TimedOut`], [`Error::MemoryLimit`],
    /// [`Error::RowLimit`], [`Error::Commit`]. After any of them nothing the
    /// call wrote was kept.
    pub fn handle_http(
        &self,
        request: http::Request<Bytes>,
        max_body_bytes: usize,
    ) -> Result<http::Response<Bytes>> {
        let handler = self.http_handler()?;
        let (scheme, request) = incoming(request).map_err(|message| Error::BadArguments {
            plugin: self.name().to_string(),
            function: HTTP_HANDLER.to_string(),
            message,
        })?;
        let outcome = Arc::new(Outcome::new(max_body_bytes));
        self.call_instance(HTTP_HANDLER, |store, instance| {
            let proxy = handler.load(&mut *store, &instance)?;
            let mut http = store.data_mut().http();
            let request = http.new_incoming_request(scheme, request)?;
            let reply = outcome.clone();
            let out = http.new_response_outparam_from_callback(move |set| reply.set(set))?;
            let called = proxy
                .wasi_http_incoming_handler()
                .call_handle(&mut *store, request, out);
            outcome.finish(called, store.data().deadline())
        })
    }

    /// [`handle_http`](Self::handle_http) from async code, on tokio's
    /// blocking pool.
    ///
    /// # Errors
    /// As [`Plugin::handle_http`], and [`Error::Join`].
    pub async fn handle_http_async(
        &self,
        request: http::Request<Bytes>,
        max_body_bytes: usize,
    ) -> Result<http::Response<Bytes>> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || this.handle_http(request, max_body_bytes)).await?
    }
}

/// The request as wasmtime-wasi-http takes it: its scheme, and an authority
/// (a `Host` header) when the URI has none.
fn incoming(
    request: http::Request<Bytes>,
) -> std::result::Result<(Scheme, http::Request<OneChunk>), String> {
    let (mut parts, body) = request.into_parts();
    if !parts.uri.path().starts_with('/') {
        return Err(format!(
            "the request's path {:?} does not start with /",
            crate::escape_controls(parts.uri.path())
        ));
    }
    let scheme = match parts.uri.scheme_str() {
        None | Some("http") => Scheme::Http,
        Some("https") => Scheme::Https,
        Some(other) => Scheme::Other(other.to_string()),
    };
    if parts.uri.authority().is_none() && !parts.headers.contains_key(http::header::HOST) {
        parts.headers.insert(
            http::header::HOST,
            http::HeaderValue::from_static("localhost"),
        );
    }
    Ok((
        scheme,
        http::Request::from_parts(parts, OneChunk(Some(body))),
    ))
}

/// A request body that is one chunk of bytes, ready at once.
struct OneChunk(Option<Bytes>);

impl Body for OneChunk {
    type Data = Bytes;
    type Error = wasmtime_wasi_http::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<std::result::Result<Frame<Bytes>, Self::Error>>> {
        let chunk = self.0.take().filter(|b| !b.is_empty());
        Poll::Ready(chunk.map(|b| Ok(Frame::data(b))))
    }

    fn is_end_stream(&self) -> bool {
        self.0.as_ref().is_none_or(Bytes::is_empty)
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.0.as_ref().map_or(0, |b| b.len() as u64))
    }
}

/// Why a handler's call gave no response, as the call's error carries it
/// (the plugin turns it into [`Error::HttpResponse`] or
/// [`Error::HttpResponseTooLarge`]).
#[derive(Debug, thiserror::Error)]
pub(crate) enum Failure {
    #[error("the handler returned without setting a response")]
    NoResponse,
    #[error("the handler set an error instead of a response: {0}")]
    ErrorCode(String),
    #[error("the handler returned without finishing the response body")]
    Unfinished,
    #[error("the response body failed: {0}")]
    Body(String),
    #[error("the response body is over the limit of {0} bytes")]
    TooLarge(usize),
}

impl Failure {
    /// The call's error.
    pub(crate) fn to_error(&self, plugin: String, function: String) -> Error {
        match self {
            Failure::TooLarge(limit) => Error::HttpResponseTooLarge {
                plugin,
                function,
                limit: *limit,
            },
            other => Error::HttpResponse {
                plugin,
                function,
                reason: crate::escape_controls(&other.to_string()).into_owned(),
            },
        }
    }
}

/// What a handler set through its `response-outparam`, as the host reads it.
struct Outcome {
    limit: usize,
    /// Set when the body passed `limit`.
    over: Arc<AtomicBool>,
    set: Mutex<Option<Set>>,
}

enum Set {
    Response {
        parts: http::response::Parts,
        /// The body, read as it is written.
        body: AbortOnDropJoinHandle<std::result::Result<Bytes, Failure>>,
        /// Dropped when the handler has returned: what it wrote is then all
        /// there is.
        returned: oneshot::Sender<()>,
    },
    Error(ErrorCode),
}

impl Outcome {
    fn new(limit: usize) -> Self {
        Self {
            limit,
            over: Arc::new(AtomicBool::new(false)),
            set: Mutex::new(None),
        }
    }

    /// The handler set its response (from inside its `response-outparam.set`):
    /// its body is read from now on, while the handler writes it.
    fn set(&self, set: std::result::Result<http::Response<HyperOutgoingBody>, ErrorCode>) {
        let set = match set {
            Ok(response) => {
                let (parts, body) = response.into_parts();
                let (returned, has_returned) = oneshot::channel();
                // Unconstrained: the last read after the handler returned
                // must see every frame queued, never a budget's `Pending`.
                let read = tokio::task::unconstrained(read_body(
                    body,
                    self.limit,
                    self.over.clone(),
                    has_returned,
                ));
                Set::Response {
                    parts,
                    body: wasmtime_wasi::runtime::spawn(read),
                    returned,
                }
            }
            Err(code) => Set::Error(code),
        };
        *self.set.lock().unwrap_or_else(PoisonError::into_inner) = Some(set);
    }

    /// The response, once the handler's call ended with `called`: complete,
    /// or why there is none. A body that passed the limit is the error even
    /// when the handler then trapped (on the write that failed).
    fn finish(
        &self,
        called: wasmtime::Result<()>,
        deadline: Option<Instant>,
    ) -> wasmtime::Result<http::Response<Bytes>> {
        if self.over.load(Ordering::Acquire) {
            return Err(Failure::TooLarge(self.limit).into());
        }
        called?;
        let set = self
            .set
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        match set {
            None => Err(Failure::NoResponse.into()),
            Some(Set::Error(code)) => Err(Failure::ErrorCode(format!("{code:?}")).into()),
            Some(Set::Response {
                parts,
                body,
                returned,
            }) => {
                drop(returned);
                let body = until_deadline(deadline, async { Ok(body.await) })??;
                Ok(http::Response::from_parts(parts, body))
            }
        }
    }
}

/// Reads a response body as the handler writes it, up to `limit` bytes:
/// past it, it stops reading (the handler's next write fails) and sets
/// `over`. Once the handler has returned (`has_returned`), the frames
/// already queued are the rest; a body not finished by then is refused.
async fn read_body(
    mut body: HyperOutgoingBody,
    limit: usize,
    over: Arc<AtomicBool>,
    mut has_returned: oneshot::Receiver<()>,
) -> std::result::Result<Bytes, Failure> {
    let mut bytes = Vec::new();
    let mut writing = true;
    loop {
        let frame = if writing {
            tokio::select! {
                biased;
                frame = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)) => frame,
                _ = &mut has_returned => {
                    writing = false;
                    continue;
                }
            }
        } else {
            match Pin::new(&mut body).poll_frame(&mut Context::from_waker(Waker::noop())) {
                Poll::Ready(frame) => frame,
                Poll::Pending => return Err(Failure::Unfinished),
            }
        };
        match frame {
            None => return Ok(Bytes::from(bytes)),
            Some(Err(e)) => return Err(Failure::Body(e.to_string())),
            Some(Ok(frame)) => {
                // Trailers are not passed on.
                let Ok(data) = frame.into_data() else {
                    continue;
                };
                if data.len() > limit.saturating_sub(bytes.len()) {
                    over.store(true, Ordering::Release);
                    return Err(Failure::TooLarge(limit));
                }
                bytes.extend_from_slice(&data);
            }
        }
    }
}
