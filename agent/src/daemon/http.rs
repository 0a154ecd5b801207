//! The agent's HTTP endpoints: `/metrics` (Prometheus text), `/healthz`
//! (the agent's loop is alive), `/readyz` (the kernel program is loaded and,
//! in Kubernetes mode, the first lists arrived). They take GET only and show
//! counts, never profile content.
use std::{
    convert::Infallible,
    fmt::Write as _,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use http_body_util::Full;
use hyper::{
    Method, Request, Response, StatusCode, body::Bytes, server::conn::http1, service::service_fn,
};
use hyper_util::rt::TokioIo;
use tracing::{debug, warn};

/// What the metrics show; the agent's loop updates it.
#[derive(Clone, Debug, Default)]
pub struct Metrics {
    /// ProfileRecordings that are recording (Kubernetes mode).
    pub recordings_active: u64,
    /// Containers being recorded now.
    pub containers_tracked: u64,
    /// Container results written since start.
    pub results_written: u64,
    /// Distinct syscalls across the workload containers recorded.
    pub syscalls_recorded: u64,
    /// Rows in use and the rows map's capacity.
    pub rows_used: u64,
    pub rows_capacity: u64,
    /// Kernel memory the maps hold, bytes.
    pub map_bytes: u64,
    /// Whether `sys_enter` is attached.
    pub sys_enter_attached: bool,
    /// Kernel program counters.
    pub out_of_range: u64,
    pub row_map_full: u64,
    pub containers_lost: u64,
    pub events_lost: u64,
    pub outsider_syscalls: u64,
    pub members_full: u64,
    /// API requests that failed, and results not yet written.
    pub api_errors: u64,
    pub results_pending: u64,
    /// Containers whose refusals are watched.
    pub containers_watched: u64,
    /// Refusals per (namespace, workload, container, syscall).
    pub refusals: Vec<super::machine::RefusalSeries>,
    /// Refusals the kernel could not count (map full), and first-refusal
    /// events lost (buffer full).
    pub refusals_uncounted: u64,
    pub refusal_events_lost: u64,
    /// Readiness.
    pub ready: bool,
    /// When the loop last ran.
    pub last_tick: Option<Instant>,
}

/// Shared between the loop and the server.
pub type Shared = Arc<Mutex<Metrics>>;

/// The Prometheus text of `m`.
pub fn render(m: &Metrics) -> String {
    let mut out = String::new();
    let mut metric = |name: &str, kind: &str, help: &str, value: u64| {
        let _ = writeln!(out, "# HELP syscensus_{name} {help}");
        let _ = writeln!(out, "# TYPE syscensus_{name} {kind}");
        let _ = writeln!(out, "syscensus_{name} {value}");
    };
    metric(
        "recordings_active",
        "gauge",
        "ProfileRecordings recording on this node.",
        m.recordings_active,
    );
    metric(
        "containers_tracked",
        "gauge",
        "Containers being recorded.",
        m.containers_tracked,
    );
    metric(
        "results_written_total",
        "counter",
        "Container results written to the state directory.",
        m.results_written,
    );
    metric(
        "syscalls_recorded",
        "gauge",
        "Distinct syscalls across recorded workload containers.",
        m.syscalls_recorded,
    );
    metric(
        "map_rows_used",
        "gauge",
        "Rows in use in the kernel rows map.",
        m.rows_used,
    );
    metric(
        "map_rows_capacity",
        "gauge",
        "Capacity of the kernel rows map.",
        m.rows_capacity,
    );
    metric(
        "map_bytes",
        "gauge",
        "Kernel memory held by the maps, bytes.",
        m.map_bytes,
    );
    metric(
        "sys_enter_attached",
        "gauge",
        "1 while the sys_enter program is attached.",
        u64::from(m.sys_enter_attached),
    );
    metric(
        "out_of_range_total",
        "counter",
        "Syscalls with numbers outside the recorded range.",
        m.out_of_range,
    );
    metric(
        "row_map_full_total",
        "counter",
        "Rows that could not be created: the map was full.",
        m.row_map_full,
    );
    metric(
        "containers_lost_total",
        "counter",
        "Containers that could not be recorded: the kernel map was full.",
        m.containers_lost,
    );
    metric(
        "events_lost_total",
        "counter",
        "cgroup events lost: the ring buffer was full.",
        m.events_lost,
    );
    metric(
        "outsider_syscalls_total",
        "counter",
        "Syscalls in recorded containers by processes outside the workload (exec sessions), left out.",
        m.outsider_syscalls,
    );
    metric(
        "members_full_total",
        "counter",
        "Workload processes that could not be tracked: the kernel map was full.",
        m.members_full,
    );
    metric(
        "api_errors_total",
        "counter",
        "Kubernetes API requests that failed.",
        m.api_errors,
    );
    metric(
        "results_pending",
        "gauge",
        "Results not yet written to the cluster.",
        m.results_pending,
    );
    metric(
        "containers_watched",
        "gauge",
        "Containers whose seccomp profile's refusals are watched.",
        m.containers_watched,
    );
    metric(
        "refusals_uncounted_total",
        "counter",
        "Refusals in watched containers that could not be counted: the kernel map was full.",
        m.refusals_uncounted,
    );
    metric(
        "refusal_events_lost_total",
        "counter",
        "First-refusal events lost: the ring buffer was full (counted, not named).",
        m.refusal_events_lost,
    );
    let _ = writeln!(
        out,
        "# HELP syscensus_refusals_total Syscalls the seccomp profile a watched container runs under refused it."
    );
    let _ = writeln!(out, "# TYPE syscensus_refusals_total counter");
    for s in &m.refusals {
        let _ = writeln!(
            out,
            "syscensus_refusals_total{{namespace=\"{}\",workload=\"{}\",container=\"{}\",syscall=\"{}\"}} {}",
            label(&s.namespace),
            label(&s.workload),
            label(&s.container),
            label(&s.syscall),
            s.count
        );
    }
    out
}

/// A label value in Prometheus's text format: backslash, quote and newline
/// escaped.
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn response(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response
}

fn handle(metrics: &Shared, request: &Request<hyper::body::Incoming>) -> Response<Full<Bytes>> {
    if request.method() != Method::GET {
        return response(StatusCode::METHOD_NOT_ALLOWED, "GET only\n".into());
    }
    let m = metrics.lock().map(|m| m.clone()).unwrap_or_default();
    match request.uri().path() {
        "/metrics" => response(StatusCode::OK, render(&m)),
        "/healthz" => match m.last_tick {
            Some(t) if t.elapsed() < Duration::from_secs(30) => {
                response(StatusCode::OK, "ok\n".into())
            }
            _ => response(
                StatusCode::SERVICE_UNAVAILABLE,
                "the agent's loop is stuck\n".into(),
            ),
        },
        "/readyz" if m.ready => response(StatusCode::OK, "ok\n".into()),
        "/readyz" => response(StatusCode::SERVICE_UNAVAILABLE, "not ready\n".into()),
        _ => response(StatusCode::NOT_FOUND, "not found\n".into()),
    }
}

/// Serves the endpoints on `addr` until the runtime stops.
pub async fn serve(addr: SocketAddr, metrics: Shared) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tokio::spawn(async move {
        loop {
            let (stream, _) = match listener.accept().await {
                Ok(conn) => conn,
                Err(error) => {
                    warn!(%error, "accepting an HTTP connection");
                    continue;
                }
            };
            let metrics = metrics.clone();
            tokio::spawn(async move {
                let service = service_fn(move |request| {
                    let metrics = metrics.clone();
                    async move { Ok::<_, Infallible>(handle(&metrics, &request)) }
                });
                if let Err(error) = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await
                {
                    debug!(%error, "HTTP connection");
                }
            });
        }
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    #[test]
    fn renders_prometheus_text() {
        let text = render(&Metrics {
            containers_tracked: 3,
            sys_enter_attached: true,
            ..Metrics::default()
        });
        assert!(text.contains(
            "# TYPE syscensus_containers_tracked gauge\nsyscensus_containers_tracked 3\n"
        ));
        assert!(text.contains("syscensus_sys_enter_attached 1\n"));
        // Every sample line is `name value`.
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let parts: Vec<_> = line.split(' ').collect();
            assert_eq!(parts.len(), 2, "{line}");
            assert!(parts[1].parse::<u64>().is_ok(), "{line}");
        }
    }

    #[test]
    fn refusals_are_labelled_and_escaped() {
        let text = render(&Metrics {
            refusals: vec![super::super::machine::RefusalSeries {
                namespace: "shop".into(),
                workload: "Deployment/web".into(),
                container: "a\"b".into(),
                syscall: "mkdir".into(),
                count: 3,
            }],
            ..Metrics::default()
        });
        assert!(
            text.contains(
                "syscensus_refusals_total{namespace=\"shop\",workload=\"Deployment/web\",container=\"a\\\"b\",syscall=\"mkdir\"} 3\n"
            ),
            "{text}"
        );
    }
}
