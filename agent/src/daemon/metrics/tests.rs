//! The exposition: formats, names, HELP and TYPE, the build information.
#![allow(clippy::unwrap_used, reason = "tests")]

use super::*;

/// Every metric the agent served before prometheus-client, by the name of
/// its sample and its type: dashboards and alerts use these.
const SERVED: [(&str, &str); 22] = [
    ("syscensus_recordings_active", "gauge"),
    ("syscensus_containers_tracked", "gauge"),
    ("syscensus_results_written_total", "counter"),
    ("syscensus_syscalls_recorded", "gauge"),
    ("syscensus_map_rows_used", "gauge"),
    ("syscensus_map_rows_capacity", "gauge"),
    ("syscensus_map_bytes", "gauge"),
    ("syscensus_sys_enter_attached", "gauge"),
    ("syscensus_out_of_range_total", "counter"),
    ("syscensus_row_map_full_total", "counter"),
    ("syscensus_containers_lost_total", "counter"),
    ("syscensus_events_lost_total", "counter"),
    ("syscensus_outsider_syscalls_total", "counter"),
    ("syscensus_members_full_total", "counter"),
    ("syscensus_sessions_total", "counter"),
    ("syscensus_hooks_total", "counter"),
    ("syscensus_alias_full_total", "counter"),
    ("syscensus_api_errors_total", "counter"),
    ("syscensus_results_pending", "gauge"),
    ("syscensus_containers_watched", "gauge"),
    ("syscensus_refusals_uncounted_total", "counter"),
    ("syscensus_refusal_events_lost_total", "counter"),
];

const PROCESS: [&str; 7] = [
    "process_cpu_seconds_total",
    "process_resident_memory_bytes",
    "process_virtual_memory_bytes",
    "process_start_time_seconds",
    "process_threads",
    "process_open_fds",
    "process_max_fds",
];

fn build() -> Build {
    Build {
        version: "1.2.3",
        revision: "0123abcd",
        kernel_program: "sha256:00112233aabb".into(),
        map_layout: "v1",
    }
}

fn exposition(metrics: Metrics) -> Exposition {
    Exposition::new(Arc::new(Mutex::new(metrics)), build())
}

fn sample() -> Metrics {
    Metrics {
        containers_tracked: 3,
        sys_enter_attached: true,
        results_written: 7,
        api_errors: 2,
        kube_events: [("ProfileInstalled", 1), ("RecordingStarted", 4)].into(),
        kube_events_dropped: 5,
        ..Metrics::default()
    }
}

/// The value of the sample `series` (name and labels as written).
fn value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .map(|v| v.parse().unwrap())
}

#[test]
fn prometheus_text_keeps_every_name_and_meaning() {
    let text = exposition(sample()).render(Format::Prometheus);
    for (name, kind) in SERVED {
        assert!(
            text.contains(&format!("# HELP {name} ")),
            "no HELP for {name}:\n{text}"
        );
        let typed = format!("# TYPE {name} {kind}\n{name} ");
        assert!(text.contains(&typed), "{name} is not a {kind}:\n{text}");
    }
    assert_eq!(value(&text, "syscensus_containers_tracked"), Some(3.0));
    assert_eq!(value(&text, "syscensus_sys_enter_attached"), Some(1.0));
    assert_eq!(value(&text, "syscensus_results_written_total"), Some(7.0));
    assert_eq!(value(&text, "syscensus_api_errors_total"), Some(2.0));
    assert_eq!(
        value(
            &text,
            "syscensus_kubernetes_events_total{reason=\"RecordingStarted\"}"
        ),
        Some(4.0)
    );
    assert_eq!(
        value(&text, "syscensus_kubernetes_events_dropped_total"),
        Some(5.0)
    );
    assert!(!text.contains("# EOF"), "{text}");
}

#[test]
fn every_family_says_help_and_type_before_its_samples() {
    for format in [Format::Prometheus, Format::OpenMetrics] {
        let text = exposition(sample()).render(format);
        let mut described: Vec<String> = Vec::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                described.push(rest.split(' ').next().unwrap().to_owned());
                continue;
            }
            if line.starts_with('#') {
                continue;
            }
            let name = line.split(['{', ' ']).next().unwrap();
            let family = described.last().unwrap_or_else(|| panic!("{line}"));
            assert!(
                name.starts_with(family.as_str()),
                "{format:?}: {name} outside its family {family}:\n{text}"
            );
            let value = line.rsplit(' ').next().unwrap();
            assert!(value.parse::<f64>().is_ok(), "{format:?}: {line}");
        }
        assert!(described.len() >= SERVED.len() + PROCESS.len() + 4);
    }
}

#[test]
fn build_info_names_version_revision_and_kernel_program() {
    let text = exposition(Metrics::default()).render(Format::Prometheus);
    assert!(
        text.contains(
            "# TYPE syscensus_build_info gauge\n\
             syscensus_build_info{version=\"1.2.3\",revision=\"0123abcd\",kernel_program=\"sha256:00112233aabb\",map_layout=\"v1\"} 1\n"
        ),
        "{text}"
    );
    let open = exposition(Metrics::default()).render(Format::OpenMetrics);
    assert!(open.contains("# TYPE syscensus_build info\n"), "{open}");
    assert!(
        open.contains("syscensus_build_info{version=\"1.2.3\","),
        "{open}"
    );
    // This binary's: its own version, and the object it embeds.
    let current = Build::current();
    assert_eq!(current.version, env!("CARGO_PKG_VERSION"));
    assert!(!current.revision.is_empty());
    assert_eq!(current.kernel_program.len(), "sha256:".len() + 12);
    assert_eq!(current.map_layout, crate::bpf::PIN_LAYOUT);
}

#[test]
fn process_metrics_are_served() {
    let text = exposition(Metrics::default()).render(Format::Prometheus);
    for name in PROCESS {
        assert!(text.contains(&format!("# HELP {name} ")), "{name}:\n{text}");
    }
    assert!(text.contains("# TYPE process_cpu_seconds_total counter\n"));
    assert!(value(&text, "process_resident_memory_bytes").unwrap() > 0.0);
    assert!(value(&text, "process_open_fds").unwrap() >= 3.0);
}

#[test]
fn openmetrics_text_ends_with_eof() {
    let text = exposition(sample()).render(Format::OpenMetrics);
    assert!(text.ends_with("# EOF\n"), "{text}");
    // A counter's family has no suffix; its sample has _total.
    assert!(text.contains("# TYPE syscensus_results_written counter\n"));
    assert_eq!(value(&text, "syscensus_results_written_total"), Some(7.0));
}

#[test]
fn the_accept_header_picks_the_format() {
    // Prometheus 3's default scrape protocols, then Prometheus 2's.
    let prometheus3 = "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.6,\
                       application/openmetrics-text;version=0.0.1;q=0.5,\
                       text/plain;version=1.0.0;escaping=allow-utf-8;q=0.4,\
                       text/plain;version=0.0.4;q=0.3,*/*;q=0.2";
    let prometheus2 = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
    for accept in [prometheus3, prometheus2] {
        assert_eq!(
            Format::negotiate(Some(accept)),
            Format::OpenMetrics,
            "{accept}"
        );
    }
    for accept in [
        None,
        Some("*/*"),
        Some("text/plain;version=0.0.4"),
        Some("application/openmetrics-text;version=0.0.1"),
        Some("application/openmetrics-text;q=0.2,text/plain;q=0.5"),
        Some("application/json"),
    ] {
        assert_eq!(Format::negotiate(accept), Format::Prometheus, "{accept:?}");
    }
    assert_eq!(
        Format::Prometheus.content_type(),
        "text/plain; version=0.0.4; charset=utf-8"
    );
    assert_eq!(
        Format::OpenMetrics.content_type(),
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
}

#[test]
fn refusals_are_labelled_and_escaped() {
    let text = exposition(Metrics {
        refusals: vec![crate::daemon::machine::RefusalSeries {
            namespace: "shop".into(),
            workload: "Deployment/web".into(),
            container: "a\"b".into(),
            syscall: "mkdir".into(),
            count: 3,
        }],
        containers_watched: 2,
        ..Metrics::default()
    })
    .render(Format::Prometheus);
    assert!(
        text.contains(
            "syscensus_refusals_total{namespace=\"shop\",workload=\"Deployment/web\",container=\"a\\\"b\",syscall=\"mkdir\"} 3\n"
        ),
        "{text}"
    );
    assert_eq!(value(&text, "syscensus_containers_watched"), Some(2.0));
    assert!(
        text.contains("# TYPE syscensus_refusals_uncounted_total counter\n"),
        "{text}"
    );
}
