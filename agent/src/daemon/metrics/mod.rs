//! What `/metrics` shows, encoded by prometheus-client: the agent's own
//! numbers (taken by the daemon's loop at each tick), its build, and the
//! standard process metrics (read at each scrape).
//!
//! Two formats, by the scraper's `Accept` header: the Prometheus text format
//! 0.0.4 by default, OpenMetrics 1.0 when it is preferred (Prometheus asks
//! for it first). Either way the response says which in its
//! `Content-Type`: Prometheus 3 refuses a scrape without one.
//!
//! Labels stay bounded: a family's label values come from a closed set
//! (the Event reasons here). Families keyed by something that grows with
//! the cluster (namespace, workload, container, syscall) must cap their
//! series and sum the rest under one series of their own, so that a node's
//! scrape stays the same size however many workloads it runs.
//! `syscensus_refusals_total` (a series per watched container and refused
//! syscall) is not capped yet.
use std::{
    collections::BTreeMap,
    fmt::Write as _,
    sync::{Arc, Mutex},
    time::Instant,
};

use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeMetric as _},
    metrics::{MetricType, counter::ConstCounter, gauge::ConstGauge},
    registry::Registry,
};

pub mod process;

/// What the agent's metrics show; the agent's loop updates it.
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
    /// Exec sessions and OCI hooks started, hooks among them, and cgroups
    /// below recorded containers that could not be tracked.
    pub sessions: u64,
    pub hooks: u64,
    pub alias_full: u64,
    /// API requests that failed, and results not yet written.
    pub api_errors: u64,
    pub results_pending: u64,
    /// Kubernetes Events decided, by reason, and those dropped by the
    /// node's bound.
    pub kube_events: BTreeMap<&'static str, u64>,
    pub kube_events_dropped: u64,
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

/// A text format of the exposition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// The Prometheus text format, version 0.0.4.
    Prometheus,
    /// OpenMetrics text, version 1.0.0.
    OpenMetrics,
}

impl Format {
    /// The `Content-Type` of a response in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Prometheus => prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
        }
    }

    /// The format an `Accept` header prefers: OpenMetrics (version 1.0.0,
    /// or no version) when it weighs more than the Prometheus text format
    /// (`text/plain`, or anything by `*/*`), else the Prometheus text format.
    pub fn negotiate(accept: Option<&str>) -> Format {
        let (mut openmetrics, mut text) = (0.0_f64, 0.0_f64);
        for range in accept.unwrap_or_default().split(',') {
            let mut parts = range.split(';').map(str::trim);
            let media = parts.next().unwrap_or_default().to_ascii_lowercase();
            let (mut q, mut version) = (1.0, None);
            for param in parts {
                match param.split_once('=') {
                    Some((k, v)) if k.trim().eq_ignore_ascii_case("q") => {
                        q = v.trim().parse().unwrap_or(0.0);
                    }
                    Some((k, v)) if k.trim().eq_ignore_ascii_case("version") => {
                        version = Some(v.trim().to_owned());
                    }
                    _ => {}
                }
            }
            match media.as_str() {
                "application/openmetrics-text"
                    if version.as_deref().is_none_or(|v| v == "1.0.0") =>
                {
                    openmetrics = openmetrics.max(q);
                }
                "text/plain" | "text/*" | "*/*" => text = text.max(q),
                _ => {}
            }
        }
        if openmetrics > text {
            Format::OpenMetrics
        } else {
            Format::Prometheus
        }
    }
}

/// What the build information says: the version, the commit, and the
/// kernel program this binary loads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Build {
    pub version: &'static str,
    pub revision: &'static str,
    /// `sha256:` and the first 12 hex digits of the embedded BPF object.
    pub kernel_program: String,
    /// The layout of the pinned maps (`bpf::PIN_LAYOUT`): agents of the
    /// same layout carry on from each other's maps.
    pub map_layout: &'static str,
}

impl Build {
    /// This binary's.
    pub fn current() -> Build {
        use sha2::Digest as _;
        let digest = sha2::Sha256::digest(crate::bpf::OBJECT);
        let hex: String = digest[..6].iter().map(|b| format!("{b:02x}")).collect();
        Build {
            version: env!("CARGO_PKG_VERSION"),
            revision: env!("SYSCENSUS_REVISION"),
            kernel_program: format!("sha256:{hex}"),
            map_layout: crate::bpf::PIN_LAYOUT,
        }
    }
}

/// Every metric the agent serves.
#[derive(Debug)]
pub struct Exposition {
    registry: Registry,
}

impl Exposition {
    /// The agent's metrics from `shared`, its build, and the process.
    pub fn new(shared: Shared, build: Build) -> Exposition {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(AgentCollector(shared)));
        registry.register_collector(Box::new(BuildCollector(build)));
        registry.register_collector(Box::new(ProcessCollector));
        Exposition { registry }
    }

    /// The exposition text in `format`.
    pub fn render(&self, format: Format) -> String {
        let mut out = String::new();
        let encoded = match format {
            Format::Prometheus => {
                prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry)
            }
            Format::OpenMetrics => {
                prometheus_client::encoding::text::encode(&mut out, &self.registry)
            }
        };
        if encoded.is_err() {
            // Writing to a String does not fail; say so if it ever does.
            out.clear();
            let _ = writeln!(out, "# the metrics could not be encoded");
        }
        out
    }
}

/// Writes metric families into an encoder.
struct Families<'a>(DescriptorEncoder<'a>);

impl Families<'_> {
    fn gauge(&mut self, name: &str, help: &str, value: u64) -> std::fmt::Result {
        let encoder = self
            .0
            .encode_descriptor(name, help, None, MetricType::Gauge)?;
        ConstGauge::new(value).encode(encoder)
    }

    fn gauge_f64(&mut self, name: &str, help: &str, value: f64) -> std::fmt::Result {
        let encoder = self
            .0
            .encode_descriptor(name, help, None, MetricType::Gauge)?;
        ConstGauge::new(value).encode(encoder)
    }

    /// A counter; `name` without `_total`, which the encoding adds.
    fn counter(&mut self, name: &str, help: &str, value: u64) -> std::fmt::Result {
        let encoder = self
            .0
            .encode_descriptor(name, help, None, MetricType::Counter)?;
        ConstCounter::new(value).encode(encoder)
    }

    fn counter_f64(&mut self, name: &str, help: &str, value: f64) -> std::fmt::Result {
        let encoder = self
            .0
            .encode_descriptor(name, help, None, MetricType::Counter)?;
        ConstCounter::new(value).encode(encoder)
    }

    /// A counter with one label, a series per value.
    fn counter_family(
        &mut self,
        name: &str,
        help: &str,
        label: &str,
        series: &[(&str, u64)],
    ) -> std::fmt::Result {
        let mut encoder = self
            .0
            .encode_descriptor(name, help, None, MetricType::Counter)?;
        for (value, count) in series {
            let labels = [(label, *value)];
            ConstCounter::new(*count).encode(encoder.encode_family(&labels)?)?;
        }
        Ok(())
    }
}

/// The agent's numbers, as the loop last set them.
#[derive(Debug)]
struct AgentCollector(Shared);

impl Collector for AgentCollector {
    fn encode(&self, encoder: DescriptorEncoder) -> std::fmt::Result {
        let m = self.0.lock().map(|m| m.clone()).unwrap_or_default();
        let mut f = Families(encoder);
        f.gauge(
            "syscensus_recordings_active",
            "ProfileRecordings recording on this node.",
            m.recordings_active,
        )?;
        f.gauge(
            "syscensus_containers_tracked",
            "Containers being recorded.",
            m.containers_tracked,
        )?;
        f.counter(
            "syscensus_results_written",
            "Container results written to the state directory.",
            m.results_written,
        )?;
        f.gauge(
            "syscensus_syscalls_recorded",
            "Distinct syscalls across recorded workload containers.",
            m.syscalls_recorded,
        )?;
        f.gauge(
            "syscensus_map_rows_used",
            "Rows in use in the kernel rows map.",
            m.rows_used,
        )?;
        f.gauge(
            "syscensus_map_rows_capacity",
            "Capacity of the kernel rows map.",
            m.rows_capacity,
        )?;
        f.gauge(
            "syscensus_map_bytes",
            "Kernel memory held by the maps, bytes.",
            m.map_bytes,
        )?;
        f.gauge(
            "syscensus_sys_enter_attached",
            "1 while the sys_enter program is attached.",
            u64::from(m.sys_enter_attached),
        )?;
        f.counter(
            "syscensus_out_of_range",
            "Syscalls with numbers outside the recorded range.",
            m.out_of_range,
        )?;
        f.counter(
            "syscensus_row_map_full",
            "Rows that could not be created: the map was full.",
            m.row_map_full,
        )?;
        f.counter(
            "syscensus_containers_lost",
            "Containers that could not be recorded: the kernel map was full.",
            m.containers_lost,
        )?;
        f.counter(
            "syscensus_events_lost",
            "cgroup events lost: the ring buffer was full.",
            m.events_lost,
        )?;
        f.counter(
            "syscensus_outsider_syscalls",
            "Syscalls in recorded containers by processes outside the workload (exec sessions), left out.",
            m.outsider_syscalls,
        )?;
        f.counter(
            "syscensus_members_full",
            "Workload or session processes that could not be tracked: the kernel map was full.",
            m.members_full,
        )?;
        f.counter(
            "syscensus_sessions",
            "Exec sessions and OCI hooks started in recorded containers.",
            m.sessions,
        )?;
        f.counter(
            "syscensus_hooks",
            "OCI hooks started in recorded containers (among syscensus_sessions_total).",
            m.hooks,
        )?;
        f.counter(
            "syscensus_alias_full",
            "cgroups made below recorded containers that could not be tracked: the kernel map was full.",
            m.alias_full,
        )?;
        f.counter(
            "syscensus_api_errors",
            "Kubernetes API requests that failed.",
            m.api_errors,
        )?;
        f.gauge(
            "syscensus_results_pending",
            "Results not yet written to the cluster.",
            m.results_pending,
        )?;
        let reasons: Vec<(&str, u64)> = m.kube_events.iter().map(|(r, n)| (*r, *n)).collect();
        f.counter_family(
            "syscensus_kubernetes_events",
            "Kubernetes Events this node decided to post, by reason (a repeat counts again).",
            "reason",
            &reasons,
        )?;
        f.counter(
            "syscensus_kubernetes_events_dropped",
            "Kubernetes Events not posted: more than this node's bound asked for at once.",
            m.kube_events_dropped,
        )?;
        f.gauge(
            "syscensus_containers_watched",
            "Containers whose seccomp profile's refusals are watched.",
            m.containers_watched,
        )?;
        f.counter(
            "syscensus_refusals_uncounted",
            "Refusals in watched containers that could not be counted: the kernel map was full.",
            m.refusals_uncounted,
        )?;
        f.counter(
            "syscensus_refusal_events_lost",
            "First-refusal events lost: the ring buffer was full (counted, not named).",
            m.refusal_events_lost,
        )?;
        let mut encoder = f.0.encode_descriptor(
            "syscensus_refusals",
            "Syscalls the seccomp profile a watched container runs under refused it.",
            None,
            MetricType::Counter,
        )?;
        for r in &m.refusals {
            let labels = [
                ("namespace", r.namespace.as_str()),
                ("workload", r.workload.as_str()),
                ("container", r.container.as_str()),
                ("syscall", r.syscall.as_str()),
            ];
            ConstCounter::new(r.count).encode(encoder.encode_family(&labels)?)?;
        }
        Ok(())
    }
}

/// `syscensus_build_info`.
#[derive(Debug)]
struct BuildCollector(Build);

impl Collector for BuildCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> std::fmt::Result {
        let b = &self.0;
        let labels = [
            ("version", b.version),
            ("revision", b.revision),
            ("kernel_program", b.kernel_program.as_str()),
            ("map_layout", b.map_layout),
        ];
        encoder
            .encode_descriptor(
                "syscensus_build",
                "The agent's version, the commit it was built from, the kernel program it loads and the layout of its pinned maps.",
                None,
                MetricType::Info,
            )?
            .encode_info(&labels)
    }
}

/// The process metrics, read at each scrape.
#[derive(Debug)]
struct ProcessCollector;

impl Collector for ProcessCollector {
    fn encode(&self, encoder: DescriptorEncoder) -> std::fmt::Result {
        let Some(p) = process::current() else {
            return Ok(());
        };
        let mut f = Families(encoder);
        f.counter_f64(
            "process_cpu_seconds",
            "Total user and system CPU time spent in seconds.",
            p.cpu_seconds,
        )?;
        f.gauge(
            "process_resident_memory_bytes",
            "Resident memory size in bytes.",
            p.resident_memory_bytes,
        )?;
        f.gauge(
            "process_virtual_memory_bytes",
            "Virtual memory size in bytes.",
            p.virtual_memory_bytes,
        )?;
        f.gauge_f64(
            "process_start_time_seconds",
            "Start time of the process since unix epoch in seconds.",
            p.start_time_seconds,
        )?;
        f.gauge(
            "process_threads",
            "Number of OS threads in the process.",
            p.threads,
        )?;
        f.gauge(
            "process_open_fds",
            "Number of open file descriptors.",
            p.open_fds,
        )?;
        match p.max_fds {
            Some(max) => f.gauge(
                "process_max_fds",
                "Maximum number of open file descriptors.",
                max,
            ),
            None => f.gauge_f64(
                "process_max_fds",
                "Maximum number of open file descriptors.",
                f64::INFINITY,
            ),
        }
    }
}

#[cfg(test)]
mod tests;
