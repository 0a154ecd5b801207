//! What a cluster operator sees of a running agent: `/metrics` as
//! Prometheus reads it (read back with Prometheus's own Python client's
//! parsers, in both formats), the Kubernetes Events it posts to the
//! (simulated) API server, and its logs as a log collector reads them.
//! The containers are real, started through containerd's CRI.
#![allow(clippy::unwrap_used, reason = "tests")]
#![allow(
    unused_crate_dependencies,
    reason = "an integration test uses some of its package's dependencies"
)]

use std::{
    collections::BTreeMap,
    io::{Read as _, Write as _},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::{Value, json};
use syscensus_api::{ContainerProfile, ProfileRecording};
use syscensus_tests::{
    agent::Agent,
    apiserver::{FakeApiServer, Gvr},
    containers::{BUSYBOX_IMAGE, ContainerSpec, Containerd, PodSpec},
    free_port, require_root, workspace_root,
};

const NS: &str = "shop";
const WAIT: Duration = Duration::from_secs(40);
/// Prometheus 3's `Accept` header with its default scrape protocols.
const PROMETHEUS_ACCEPT: &str = "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.6,application/openmetrics-text;version=0.0.1;q=0.5,text/plain;version=1.0.0;escaping=allow-utf-8;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2";

fn events() -> Gvr {
    Gvr::new("events.k8s.io", "v1", "events")
}

fn wait_for<T>(what: &str, agent: &Agent, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}\n{}",
            agent.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `GET /metrics` with `accept`: the Content-Type and the body.
fn scrape(port: u16, accept: Option<&str>) -> (String, String) {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    let accept = accept
        .map(|a| format!("Accept: {a}\r\n"))
        .unwrap_or_default();
    write!(
        stream,
        "GET /metrics HTTP/1.1\r\nHost: localhost\r\n{accept}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let content_type = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-type")
                .then(|| value.trim().to_owned())
        })
        .unwrap_or_default();
    (content_type, body.to_owned())
}

/// The samples of an exposition as Prometheus's Python client parses it
/// (`openmetrics`: its strict OpenMetrics parser): `name{labels}` →
/// (family type, value).
fn parse(text: &str, openmetrics: bool) -> BTreeMap<String, (String, f64)> {
    let script = "import json, sys\n\
                  from prometheus_client.parser import text_string_to_metric_families as prom\n\
                  from prometheus_client.openmetrics.parser import text_string_to_metric_families as om\n\
                  parse = om if sys.argv[1] == 'openmetrics' else prom\n\
                  for f in parse(sys.stdin.read()):\n\
                  \x20   for s in f.samples:\n\
                  \x20       labels = ','.join(f'{k}=\"{v}\"' for k, v in sorted(s.labels.items()))\n\
                  \x20       print(json.dumps([s.name + ('{' + labels + '}' if labels else ''), f.type, s.value]))\n";
    let mut child = Command::new("python3")
        .args([
            "-c",
            script,
            if openmetrics {
                "openmetrics"
            } else {
                "prometheus"
            },
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "Prometheus's parser (python3 prometheus_client, installed by scripts/setup) refused the exposition: {}\n{text}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            (
                v[0].as_str().unwrap().to_owned(),
                (v[1].as_str().unwrap().to_owned(), v[2].as_f64().unwrap()),
            )
        })
        .collect()
}

/// The cluster: syscensus's CRDs, the Deployment → ReplicaSet chain of
/// `web`, a recording of `app=web` Pods, the ContainerProfile of web/app
/// as an earlier recording left it two hours ago (only `read`), and a
/// LocalhostProfile no runtime could load.
fn cluster() -> FakeApiServer {
    let server = FakeApiServer::start_with_syscensus(NS);
    let hours_ago = |h: i64| {
        jiff::Timestamp::now()
            .checked_sub(jiff::SignedDuration::from_hours(h))
            .unwrap()
            .strftime("%Y-%m-%dT%H:%M:%SZ")
            .to_string()
    };
    let profile = |name: &str, workload: &str, syscalls: &[&str]| {
        let labels = json!({});
        json!({
            "apiVersion": "syscensus.io/v1alpha1", "kind": "ContainerProfile",
            "metadata": {"name": name, "namespace": NS, "labels": labels},
            "spec": {
                "recording": "rec", "workload": {"kind": "Deployment", "name": workload},
                "container": "app", "syscalls": {"SCMP_ARCH_X86_64": syscalls},
                "syscallCount": syscalls.len(),
                "contributors": {"nodes": 1, "pods": 1, "containers": 1, "sample": [
                    {"node": "node-z", "pods": ["old"], "containers": 1,
                     "firstSeen": hours_ago(3), "lastSeen": hours_ago(2), "lastNewSyscall": hours_ago(2)}]},
                "firstSeen": hours_ago(3), "lastSeen": hours_ago(2), "lastNewSyscall": hours_ago(2)
            }
        })
    };
    for (gvr, object) in [
        (
            Gvr::new("apps", "v1", "replicasets"),
            json!({"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "web-5d4f", "namespace": NS, "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "uid": "d", "controller": true}]}, "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "app", "image": "x"}]}}}}),
        ),
        (
            Gvr::of::<ProfileRecording>(),
            json!({"apiVersion": "syscensus.io/v1alpha1", "kind": "ProfileRecording", "metadata": {"name": "rec", "namespace": NS}, "spec": {"podSelector": {"matchLabels": {"app": "web"}}}}),
        ),
        (
            Gvr::of::<ContainerProfile>(),
            profile("rec.deployment.web.app", "web", &["read"]),
        ),
        (Gvr::of::<syscensus_api::LocalhostProfile>(), {
            use sha2::Digest as _;
            let text = r#"{"defaultAction":"SCMP_ACT_ERRNO","architectures":["SCMP_ARCH_X86_64"],"syscalls":[{"names":["read","frobnicate"],"action":"SCMP_ACT_ALLOW"}]}"#;
            let sha256: String = sha2::Sha256::digest(text.as_bytes())
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            json!({"apiVersion": "syscensus.io/v1alpha1", "kind": "LocalhostProfile",
                       "metadata": {"name": "deployment-bad.app", "namespace": NS},
                       "spec": {"workload": {"kind": "Deployment", "name": "bad"}, "container": "app",
                                "localhostProfile": "syscensus/shop/deployment-bad/app.json",
                                "sha256": sha256, "profile": text}})
        }),
    ] {
        server.create(&gvr, Some(NS), object).unwrap();
    }
    server
}

/// The Events about `name` with `reason`.
fn events_of(server: &FakeApiServer, name: &str, reason: &str) -> Vec<Value> {
    server
        .list(&events(), Some(NS))
        .unwrap()
        .into_iter()
        .filter(|e| e["regarding"]["name"] == name && e["reason"] == reason)
        .collect()
}

#[test]
fn an_operator_sees_metrics_events_and_logs() {
    require_root();
    let server = cluster();
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    server.write_kubeconfig(&kubeconfig).unwrap();
    let containerd = Containerd::start();
    containerd.import_test_images(&[]);
    let cri = containerd.cri();
    let port = free_port();
    let started = jiff::Timestamp::now();
    let agent = Agent::start_with_env(
        &[
            "--cri-socket",
            &containerd.socket().display().to_string(),
            "--kubelet-root",
            &dir.path().join("kubelet").display().to_string(),
            "--flush-interval",
            "1",
            "--poll-interval",
            "1",
            "--listen",
            &format!("127.0.0.1:{port}"),
        ],
        &[
            ("NODE_NAME", "node-a"),
            ("KUBECONFIG", kubeconfig.to_str().unwrap()),
            ("SYSCENSUS_LOG_FORMAT", "json"),
        ],
    );
    agent.wait_watching();
    let run = |name: &str| {
        let created = server
            .create(
                &Gvr::new("", "v1", "pods"),
                Some(NS),
                json!({"apiVersion": "v1", "kind": "Pod",
                       "metadata": {"name": name, "namespace": NS, "labels": {"app": "web"},
                                    "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-5d4f", "uid": "rs", "controller": true}]},
                       "spec": {"nodeName": "node-a", "containers": [{"name": "app", "image": "busybox"}]}}),
            )
            .unwrap();
        let mut spec = PodSpec::new(name).namespace(NS).label("app", "web");
        spec.uid = created["metadata"]["uid"].as_str().unwrap().to_owned();
        let pod = cri.run_pod(spec);
        let container = pod.run_container(&ContainerSpec::new(
            "app",
            BUSYBOX_IMAGE,
            &["sh", "-c", "echo hi; mkdir -p /tmp/x"],
        ));
        assert_eq!(container.wait_exited(WAIT), 0);
    };
    run("web-5d4f-a");

    // The recording started on this node: one Event on the recording, as
    // the node's agent.
    let recording_uid = server
        .get(&Gvr::of::<ProfileRecording>(), Some(NS), "rec")
        .unwrap()["metadata"]["uid"]
        .clone();
    let started_event = wait_for("RecordingStarted", &agent, || {
        events_of(&server, "rec", "RecordingStarted").pop()
    });
    assert_eq!(started_event["type"], "Normal");
    assert_eq!(started_event["action"], "Record");
    assert_eq!(started_event["reportingController"], "syscensus.io/agent");
    assert_eq!(started_event["reportingInstance"], "node-a");
    assert_eq!(started_event["note"], "recording containers on node node-a");
    assert_eq!(
        started_event["regarding"],
        json!({"apiVersion": "syscensus.io/v1alpha1", "kind": "ProfileRecording", "namespace": NS, "name": "rec", "uid": recording_uid})
    );
    // The profile had not grown for two hours: what it learned now is a
    // Warning on it.
    let profile_uid = server
        .get(
            &Gvr::of::<ContainerProfile>(),
            Some(NS),
            "rec.deployment.web.app",
        )
        .unwrap()["metadata"]["uid"]
        .clone();
    let quiet = wait_for("NewSyscallsAfterQuiet", &agent, || {
        events_of(&server, "rec.deployment.web.app", "NewSyscallsAfterQuiet").pop()
    });
    assert_eq!(quiet["type"], "Warning");
    assert_eq!(quiet["regarding"]["uid"], profile_uid);
    let note = quiet["note"].as_str().unwrap();
    assert!(
        note.contains(
            " new syscall(s) after 2h without any, recorded on node node-a: SCMP_ARCH_X86_64: "
        ) && note.contains("mkdir"),
        "{note}"
    );
    // The approved profile no runtime could load: refused, said once.
    let refused = wait_for("ProfileRefused", &agent, || {
        events_of(&server, "deployment-bad.app", "ProfileRefused").pop()
    });
    assert_eq!(refused["type"], "Warning");
    assert!(
        refused["note"].as_str().unwrap().contains("frobnicate"),
        "{refused}"
    );

    // The recording starts again with the next replica, once the first
    // one's result is in: the same Event, counted in its series.
    wait_for("the first result", &agent, || {
        let (_, text) = scrape(port, None);
        text.contains("\nsyscensus_results_written_total 1\n")
            .then_some(())
    });
    run("web-5d4f-b");
    wait_for("the series of RecordingStarted", &agent, || {
        let all = events_of(&server, "rec", "RecordingStarted");
        assert_eq!(all.len(), 1, "one Event per series: {all:?}");
        (all[0]["series"]["count"] == 2).then_some(())
    });
    // Approved (its LocalhostProfile, as an export brings it): installed
    // on this node.
    let (object, _) = syscensus_tests::exported_localhost_profile(
        &server
            .get(
                &Gvr::of::<ContainerProfile>(),
                Some(NS),
                "rec.deployment.web.app",
            )
            .unwrap(),
    );
    server
        .create(
            &Gvr::of::<syscensus_api::LocalhostProfile>(),
            Some(NS),
            object,
        )
        .unwrap();
    let installed = wait_for("ProfileInstalled", &agent, || {
        events_of(&server, "deployment-web.app", "ProfileInstalled").pop()
    });
    assert_eq!(
        installed["note"],
        "installed on node node-a as syscensus/shop/deployment-web/app.json"
    );
    assert_eq!(
        events_of(&server, "deployment-bad.app", "ProfileRefused").len(),
        1,
        "a refusal is said once"
    );

    // /metrics as Prometheus reads it: the Prometheus text format by
    // default, OpenMetrics when Prometheus asks for it; both parse.
    let (content_type, text) = scrape(port, None);
    assert_eq!(content_type, "text/plain; version=0.0.4; charset=utf-8");
    let samples = parse(&text, false);
    let (openmetrics_type, openmetrics) = scrape(port, Some(PROMETHEUS_ACCEPT));
    assert_eq!(
        openmetrics_type,
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
    assert!(openmetrics.ends_with("# EOF\n"), "{openmetrics}");
    let open_samples = parse(&openmetrics, true);
    let revision = Command::new("git")
        .args(["rev-parse", "HEAD"])
        .current_dir(workspace_root())
        .output()
        .unwrap();
    let revision = String::from_utf8(revision.stdout).unwrap();
    let build = samples
        .iter()
        .find(|(name, _)| name.starts_with("syscensus_build_info{"))
        .unwrap_or_else(|| panic!("no build info:\n{text}"));
    assert_eq!(build.1, &("gauge".to_owned(), 1.0));
    assert!(
        build
            .0
            .contains(&format!("version=\"{}\"", env!("CARGO_PKG_VERSION")))
            && build
                .0
                .contains(&format!("revision=\"{}\"", revision.trim()))
            && build.0.contains("kernel_program=\"sha256:")
            && build
                .0
                .contains(&format!("map_layout=\"{}\"", syscensus::bpf::PIN_LAYOUT)),
        "{}",
        build.0
    );
    assert_eq!(open_samples[build.0].0, "info");
    let value = |name: &str| {
        samples
            .get(name)
            .unwrap_or_else(|| panic!("no {name}:\n{text}"))
            .1
    };
    assert_eq!(
        value("syscensus_kubernetes_events_total{reason=\"RecordingStarted\"}"),
        2.0
    );
    assert_eq!(value("syscensus_kubernetes_events_dropped_total"), 0.0);
    assert!(value("syscensus_results_written_total") >= 2.0);
    assert_eq!(samples["syscensus_results_written_total"].0, "counter");
    assert_eq!(value("syscensus_map_rows_capacity"), 4096.0);
    // The process: started when the agent did, holding memory and files.
    let start = value("process_start_time_seconds");
    let started = started.as_millisecond() as f64 / 1000.0;
    assert!(
        (start - started).abs() < 10.0,
        "process_start_time_seconds {start}, agent started at {started}"
    );
    assert!(value("process_resident_memory_bytes") > 1e6);
    assert!(value("process_open_fds") >= 5.0);
    assert!(value("process_max_fds") >= value("process_open_fds"));
    assert!(value("process_cpu_seconds_total") > 0.0);
    assert_eq!(samples["process_cpu_seconds_total"].0, "counter");
    assert!(value("process_threads") >= 1.0);
    // The same series in both formats.
    for name in samples.keys() {
        assert!(
            open_samples.contains_key(name),
            "{name} only in the Prometheus text"
        );
    }

    // The log: a JSON object per line with the event's fields, no colour.
    let log = agent.log();
    assert!(!log.contains('\u{1b}'), "colour codes in the log");
    let lines: Vec<Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert!(
        lines
            .iter()
            .all(|l| l["timestamp"].is_string() && l["level"].is_string())
    );
    assert!(
        lines.iter().any(|l| l["message"] == "recording written"
            && l["pod"] == "web-5d4f-a"
            && l["syscalls"].as_u64().is_some_and(|n| n > 0)),
        "{log}"
    );
    drop(agent);
}

/// Text logs on a file (not a terminal) carry no colour codes.
#[test]
fn text_logs_to_a_file_have_no_colour_codes() {
    require_root();
    let agent = Agent::start(&["--no-kube"]);
    let log = wait_for("the agent's first lines", &agent, || {
        let log = agent.log();
        log.contains("agent running").then_some(log)
    });
    assert!(!log.contains('\u{1b}'), "colour codes in the log: {log:?}");
    assert!(log.lines().all(|l| !l.starts_with('{')), "not text: {log}");
}
