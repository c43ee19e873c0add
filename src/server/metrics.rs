//! The server's Prometheus metrics: calls by service, method and status code with their
//! durations, calls open now (watchers among them), reports stored, leadership, and the
//! database connections' load; encoded as Prometheus text for `--metrics-listen`.

use std::collections::HashMap;
use std::sync::atomic::AtomicI64;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::store::DatabaseLoad;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MethodLabels {
    pub service: String,
    pub method: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CallLabels {
    pub service: String,
    pub method: String,
    pub code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct UpstreamLabels {
    pub service: String,
    pub url: String,
}

type Seconds = Family<MethodLabels, Histogram, fn() -> Histogram>;

/// Every metric the server keeps. Cheap to update from any task.
pub struct Metrics {
    registry: Registry,
    calls: Family<CallLabels, Counter>,
    call_seconds: Seconds,
    open: Family<MethodLabels, Gauge>,
    reports: Counter,
    leading: Gauge,
    term: Gauge,
    db_connections: Gauge,
    db_reads: Gauge,
    db_writes_queued: Gauge,
    upstreams: Family<UpstreamLabels, Gauge>,
    /// Each gRPC path's series, found once: a call then only touches atomics.
    paths: RwLock<HashMap<String, Arc<MethodSeries>>>,
}

/// One method's series: its open calls, its durations, and its count per code (a call's
/// code is one of a handful, so a short list).
pub struct MethodSeries {
    labels: MethodLabels,
    open: Gauge,
    seconds: Histogram,
    by_code: RwLock<Vec<(&'static str, Counter)>>,
}

/// 0.25 ms to about 8 s, doubling.
fn call_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.000_25, 2.0, 16))
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("singularity");
        let calls = Family::<CallLabels, Counter>::default();
        registry.register(
            "grpc_calls",
            "gRPC calls finished, by service, method and status code",
            calls.clone(),
        );
        let call_seconds: Seconds = Family::new_with_constructor(call_histogram);
        registry.register(
            "grpc_call_seconds",
            "How long gRPC calls took, to the end of the reply (a stream: while it stayed open)",
            call_seconds.clone(),
        );
        let open = Family::<MethodLabels, Gauge>::default();
        registry.register(
            "grpc_calls_open",
            "gRPC calls open now, by method (Faults/Watch: the open watchers)",
            open.clone(),
        );
        let reports = Counter::default();
        registry.register(
            "reports_stored",
            "Telecell reports stored (the ingest rate is its rate)",
            reports.clone(),
        );
        let leading = Gauge::default();
        registry.register(
            "leader",
            "1 while this server leads (judges reports, settles energy), else 0",
            leading.clone(),
        );
        let term = Gauge::default();
        registry.register(
            "leader_term",
            "The term this server last led in",
            term.clone(),
        );
        let db_connections = Gauge::default();
        registry.register(
            "database_connections",
            "Connections this server holds to its database",
            db_connections.clone(),
        );
        let db_reads = Gauge::default();
        registry.register(
            "database_reads_running",
            "Reads running on the database connections now",
            db_reads.clone(),
        );
        let db_writes_queued = Gauge::default();
        registry.register(
            "database_writes_queued",
            "Writes queued for the one writer connection, or running on it",
            db_writes_queued.clone(),
        );
        let upstreams = Family::<UpstreamLabels, Gauge>::default();
        registry.register(
            "upstream_healthy",
            "Gateway: 1 while an instance of a service says it serves, else 0",
            upstreams.clone(),
        );
        Self {
            registry,
            calls,
            call_seconds,
            open,
            reports,
            leading,
            term,
            db_connections,
            db_reads,
            db_writes_queued,
            upstreams,
            paths: RwLock::default(),
        }
    }
}

impl Metrics {
    /// The series of the method at a gRPC path, made on its first call.
    pub fn method(&self, path: &str) -> Arc<MethodSeries> {
        if let Some(series) = self
            .paths
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(path)
        {
            return series.clone();
        }
        let labels = method_of(path);
        let series = Arc::new(MethodSeries {
            open: self.open.get_or_create(&labels).clone(),
            seconds: self.call_seconds.get_or_create(&labels).clone(),
            by_code: RwLock::default(),
            labels,
        });
        self.paths
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(path.to_owned())
            .or_insert(series)
            .clone()
    }

    /// A call began: counted open until `finished`.
    pub fn started(&self, method: &MethodSeries) {
        method.open.inc();
    }

    /// A call ended with `code` (a gRPC code's name) after `seconds`.
    pub fn finished(&self, method: &MethodSeries, code: &'static str, seconds: f64) {
        method.open.dec();
        method.seconds.observe(seconds);
        let known = method
            .by_code
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .find(|(c, _)| *c == code)
            .map(|(_, counter)| counter.clone());
        let counter = known.unwrap_or_else(|| {
            let counter = self
                .calls
                .get_or_create(&CallLabels {
                    service: method.labels.service.clone(),
                    method: method.labels.method.clone(),
                    code: code.to_owned(),
                })
                .clone();
            method
                .by_code
                .write()
                .unwrap_or_else(PoisonError::into_inner)
                .push((code, counter.clone()));
            counter
        });
        counter.inc();
    }

    pub fn reports_stored(&self, stored: u64) {
        self.reports.inc_by(stored);
    }

    pub fn leadership(&self, leading: bool, term: Option<i64>) {
        self.leading.set(i64::from(leading));
        if let Some(term) = term {
            self.term.set(term);
        }
    }

    pub fn database(&self, load: DatabaseLoad) {
        let gauge =
            |g: &Gauge<i64, AtomicI64>, v: usize| g.set(i64::try_from(v).unwrap_or(i64::MAX));
        gauge(&self.db_connections, load.connections);
        gauge(&self.db_reads, load.reads_running);
        gauge(&self.db_writes_queued, load.writes_queued);
    }

    /// Whether an instance behind the gateway serves.
    pub fn upstream(&self, service: &str, url: &str, healthy: bool) {
        self.upstreams
            .get_or_create(&UpstreamLabels {
                service: service.to_owned(),
                url: url.to_owned(),
            })
            .set(i64::from(healthy));
    }

    /// The Prometheus text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }
}

/// The service and method of a gRPC path: "/singularity.v1.Lamps/Get" -> ("Lamps", "Get").
pub fn method_of(path: &str) -> MethodLabels {
    let mut parts = path.trim_start_matches('/').splitn(2, '/');
    let service = parts.next().unwrap_or_default();
    let service = service.rsplit('.').next().unwrap_or(service);
    MethodLabels {
        service: service.to_owned(),
        method: parts.next().unwrap_or_default().to_owned(),
    }
}

/// The metrics a server keeps, shared with whatever serves them (`--metrics-listen`).
#[derive(Clone, Default)]
pub struct SharedMetrics(pub Arc<Metrics>);

impl std::fmt::Debug for SharedMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SharedMetrics")
    }
}

impl PartialEq for SharedMetrics {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

/// Longest request head read from a scraper.
const MAX_REQUEST_HEAD: usize = 8 * 1024;
/// A scraper that sends nothing for this long is let go.
const SCRAPE_READ_TIMEOUT: Duration = Duration::from_secs(5);

/// Serves `GET /metrics` (Prometheus text) over plain HTTP/1.1 on `listener` until
/// `shutdown`, one short connection per scrape. Only this one path: a metrics port is an
/// operations port, kept off the public network.
pub async fn serve(listener: TcpListener, metrics: Arc<Metrics>, shutdown: CancellationToken) {
    loop {
        let accepted = tokio::select! {
            () = shutdown.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, _)) => {
                let metrics = metrics.clone();
                tokio::spawn(async move {
                    if let Err(e) = answer(stream, &metrics).await {
                        tracing::debug!(error = %e, "metrics scrape ended early");
                    }
                });
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot accept a metrics scrape");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

async fn answer(mut stream: TcpStream, metrics: &Metrics) -> std::io::Result<()> {
    let mut head = Vec::with_capacity(512);
    let mut chunk = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        if head.len() > MAX_REQUEST_HEAD {
            return respond(&mut stream, "431 Request Header Fields Too Large", "").await;
        }
        let read = tokio::time::timeout(SCRAPE_READ_TIMEOUT, stream.read(&mut chunk))
            .await
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??;
        if read == 0 {
            return Ok(());
        }
        head.extend_from_slice(&chunk[..read]);
    }
    let line = head.split(|b| *b == b'\r').next().unwrap_or_default();
    let mut words = line.split(|b| *b == b' ');
    let (method, path) = (
        words.next().unwrap_or_default(),
        words.next().unwrap_or_default(),
    );
    let path = path.split(|b| *b == b'?').next().unwrap_or_default();
    match (method, path) {
        (b"GET", b"/metrics") => respond(&mut stream, "200 OK", &metrics.encode()).await,
        (b"GET", _) => respond(&mut stream, "404 Not Found", "metrics are at /metrics\n").await,
        _ => respond(&mut stream, "405 Method Not Allowed", "GET /metrics\n").await,
    }
}

async fn respond(stream: &mut TcpStream, status: &str, body: &str) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body.as_bytes()).await?;
    stream.shutdown().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_are_counted_by_code_and_open_calls_come_and_go() {
        let metrics = Metrics::default();
        let labels = method_of("/singularity.v1.Faults/Watch");
        assert_eq!(
            (labels.service.as_str(), labels.method.as_str()),
            ("Faults", "Watch")
        );
        let watch = metrics.method("/singularity.v1.Faults/Watch");
        assert!(Arc::ptr_eq(
            &watch,
            &metrics.method("/singularity.v1.Faults/Watch")
        ));
        metrics.started(&watch);
        metrics.started(&watch);
        metrics.started(&watch);
        metrics.finished(&watch, "Ok", 0.002);
        metrics.finished(&metrics.method("/singularity.v1.Faults/Watch"), "Ok", 0.001);
        metrics.reports_stored(2_000);
        let text = metrics.encode();
        assert!(
            text.contains(r#"singularity_grpc_calls_open{service="Faults",method="Watch"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(
                r#"singularity_grpc_calls_total{service="Faults",method="Watch",code="Ok"} 2"#
            ),
            "{text}"
        );
        assert!(
            text.contains("singularity_reports_stored_total 2000"),
            "{text}"
        );
        assert!(
            text.contains("singularity_grpc_call_seconds_bucket"),
            "{text}"
        );
    }

    async fn scrape(address: std::net::SocketAddr, request: &str) -> String {
        let mut stream = TcpStream::connect(address).await.unwrap();
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut reply = String::new();
        stream.read_to_string(&mut reply).await.unwrap();
        reply
    }

    #[tokio::test]
    async fn a_scrape_gets_the_text_and_anything_else_is_refused() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let metrics = Arc::new(Metrics::default());
        metrics.leadership(true, Some(4));
        let stop = CancellationToken::new();
        tokio::spawn(serve(listener, metrics, stop.clone()));
        let reply = scrape(address, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").await;
        assert!(reply.starts_with("HTTP/1.1 200 OK\r\n"), "{reply}");
        assert!(reply.contains("singularity_leader 1\n"), "{reply}");
        assert!(reply.contains("singularity_leader_term 4\n"), "{reply}");
        let reply = scrape(address, "GET /other HTTP/1.1\r\n\r\n").await;
        assert!(reply.starts_with("HTTP/1.1 404"), "{reply}");
        let reply = scrape(address, "POST /metrics HTTP/1.1\r\n\r\n").await;
        assert!(reply.starts_with("HTTP/1.1 405"), "{reply}");
        stop.cancel();
    }
}
