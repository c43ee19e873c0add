//! What every call leaves behind: a request id (the caller's `x-request-id`, or a new one),
//! echoed in the reply and carried by every log line of the call, so one call can be
//! followed from the gateway into a service; and its count, status code and duration in
//! the metrics, read from the reply's trailers when its body ends.

use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};
use std::time::Instant;

use http_body::Frame;
use tonic::body::Body;
use tonic::codegen::Bytes;
use tracing::Instrument;

use super::metrics::{MethodSeries, Metrics};

/// The header a request id travels in, both ways.
pub const REQUEST_ID: &str = "x-request-id";
/// Longest request id taken from a caller; a longer or odd one is replaced.
const MAX_REQUEST_ID: usize = 64;

#[derive(Clone)]
pub struct ObserveLayer {
    metrics: Arc<Metrics>,
    /// Gateways whose `x-forwarded-for` names the caller.
    trusted_proxies: Arc<[IpAddr]>,
}

impl ObserveLayer {
    pub fn new(metrics: Arc<Metrics>, trusted_proxies: &[IpAddr]) -> Self {
        Self {
            metrics,
            trusted_proxies: trusted_proxies.into(),
        }
    }
}

impl<S> tower_layer::Layer<S> for ObserveLayer {
    type Service = Observe<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Observe {
            inner,
            metrics: self.metrics.clone(),
            trusted_proxies: self.trusted_proxies.clone(),
        }
    }
}

#[derive(Clone)]
pub struct Observe<S> {
    inner: S,
    metrics: Arc<Metrics>,
    trusted_proxies: Arc<[IpAddr]>,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// The caller's request id if it is a short token of printable characters, else a new one.
pub fn request_id(headers: &http::HeaderMap) -> String {
    headers
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|id| {
            !id.is_empty() && id.len() <= MAX_REQUEST_ID && id.bytes().all(|b| b.is_ascii_graphic())
        })
        .map_or_else(new_request_id, str::to_owned)
}

/// A new request id: 32 hex digits, a random half fixed per process and a counting half,
/// unique across processes without asking the system for randomness on every call.
fn new_request_id() -> String {
    static PROCESS: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let process = PROCESS.get_or_init(rand::random::<u64>);
    let next = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{process:016x}{next:016x}")
}

impl<S> tower_service::Service<http::Request<Body>> for Observe<S>
where
    S: tower_service::Service<http::Request<Body>, Response = http::Response<Body>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<Body>) -> Self::Future {
        let ready = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, ready);
        let metrics = self.metrics.clone();
        let id = request_id(request.headers());
        let id_value = http::HeaderValue::from_str(&id).ok();
        if let Some(value) = &id_value {
            // Handlers that call other servers pass it on.
            request.headers_mut().insert(REQUEST_ID, value.clone());
        }
        if let Some(from) = super::peer::connection(request.extensions()) {
            let client = super::peer::client(from, request.headers(), &self.trusted_proxies);
            request.extensions_mut().insert(client);
        }
        let path = request.uri().path();
        let span = tracing::info_span!("call", request_id = %id, path);
        let method = metrics.method(path);
        let call_span = span.clone();
        Box::pin(
            async move {
                let started = Instant::now();
                metrics.started(&method);
                let ending = Ending {
                    metrics,
                    method,
                    started,
                    span: call_span,
                    done: false,
                };
                let response = inner.call(request).await?;
                let (mut parts, body) = response.into_parts();
                if let Some(value) = id_value {
                    parts.headers.insert(REQUEST_ID, value);
                }
                // A call refused before any reply ("trailers only") has its code here.
                if let Some(code) = parts.headers.get("grpc-status") {
                    let code = code_name(code.as_bytes());
                    ending.end(code);
                    return Ok(http::Response::from_parts(parts, body));
                }
                let body = Body::new(Observed {
                    inner: body,
                    ending: Some(ending),
                });
                Ok(http::Response::from_parts(parts, body))
            }
            .instrument(span),
        )
    }
}

/// Records a call's end once: from its trailers, or as cancelled if its reply is dropped
/// first (the caller went away).
struct Ending {
    metrics: Arc<Metrics>,
    method: Arc<MethodSeries>,
    started: Instant,
    /// The call's span: its end is logged in it (at debug), wherever the reply's last frame
    /// is polled, so each process on a call's way logs one line with its request id.
    span: tracing::Span,
    done: bool,
}

impl Ending {
    fn end(mut self, code: &'static str) {
        self.record(code);
    }

    fn record(&mut self, code: &'static str) {
        if !self.done {
            self.done = true;
            let seconds = self.started.elapsed().as_secs_f64();
            self.metrics.finished(&self.method, code, seconds);
            // Entering the span costs even when the line is off; ask first.
            if tracing::enabled!(tracing::Level::DEBUG) {
                let _in_call = self.span.enter();
                tracing::debug!(code, ms = seconds * 1_000.0, "call ended");
            }
        }
    }
}

impl Drop for Ending {
    fn drop(&mut self) {
        self.record("Cancelled");
    }
}

/// A reply body that notes the call's code when its trailers pass.
struct Observed {
    inner: Body,
    ending: Option<Ending>,
}

impl http_body::Body for Observed {
    type Data = Bytes;
    type Error = tonic::Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(trailers) = frame.trailers_ref() {
                    let code = trailers
                        .get("grpc-status")
                        .map_or("Ok", |c| code_name(c.as_bytes()));
                    if let Some(ending) = self.ending.take() {
                        ending.end(code);
                    }
                }
            }
            Poll::Ready(Some(Err(_))) => {
                if let Some(ending) = self.ending.take() {
                    ending.end("Unknown");
                }
            }
            Poll::Ready(None) => {
                if let Some(ending) = self.ending.take() {
                    ending.end("Ok");
                }
            }
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// The name of a `grpc-status` value ("0" -> "Ok", "5" -> "NotFound").
fn code_name(value: &[u8]) -> &'static str {
    let number = std::str::from_utf8(value)
        .ok()
        .and_then(|v| v.parse::<i32>().ok())
        .unwrap_or(2);
    match tonic::Code::from_i32(number) {
        tonic::Code::Ok => "Ok",
        tonic::Code::Cancelled => "Cancelled",
        tonic::Code::Unknown => "Unknown",
        tonic::Code::InvalidArgument => "InvalidArgument",
        tonic::Code::DeadlineExceeded => "DeadlineExceeded",
        tonic::Code::NotFound => "NotFound",
        tonic::Code::AlreadyExists => "AlreadyExists",
        tonic::Code::PermissionDenied => "PermissionDenied",
        tonic::Code::ResourceExhausted => "ResourceExhausted",
        tonic::Code::FailedPrecondition => "FailedPrecondition",
        tonic::Code::Aborted => "Aborted",
        tonic::Code::OutOfRange => "OutOfRange",
        tonic::Code::Unimplemented => "Unimplemented",
        tonic::Code::Internal => "Internal",
        tonic::Code::Unavailable => "Unavailable",
        tonic::Code::DataLoss => "DataLoss",
        tonic::Code::Unauthenticated => "Unauthenticated",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_callers_request_id_is_kept_and_an_odd_one_replaced() {
        let mut headers = http::HeaderMap::new();
        headers.insert(REQUEST_ID, http::HeaderValue::from_static("gw-7f3a"));
        assert_eq!(request_id(&headers), "gw-7f3a");
        headers.insert(REQUEST_ID, http::HeaderValue::from_static("has space"));
        let fresh = request_id(&headers);
        assert_eq!(fresh.len(), 32);
        assert_ne!(fresh, request_id(&http::HeaderMap::new()));
        assert_eq!(code_name(b"5"), "NotFound");
        assert_eq!(code_name(b"x"), "Unknown");
    }
}
