//! The agent runs under its own seccomp profile, recorded by syscensus: the
//! profile the DaemonSet gives the agent (agent/profiles/syscensus-agent.json)
//! is tested here by running the agent under it, through everything it does
//! in a cluster (real containerd Pods; the simulated API server of
//! `syscensus_tests::apiserver`).
//!
//! `SYSCENSUS_UPDATE_AGENT_PROFILE=1` (`cargo xtask gen-agent-profile`)
//! records the agent doing the same instead and writes the profile.
#![allow(clippy::unwrap_used, reason = "tests")]
#![allow(
    unused_crate_dependencies,
    reason = "an integration test uses some of its package's dependencies"
)]

use std::{
    collections::BTreeSet,
    time::{Duration, Instant},
};

use serde_json::{Value, json};
use syscensus::{
    census::Census,
    profile::{BaseSet, BuildOptions, Profile},
};
use syscensus_api::{ContainerProfile, ProfileRecording};
use syscensus_tests::{
    agent::Agent,
    apiserver::{FakeApiServer, Gvr},
    containers::{BUSYBOX_IMAGE, ContainerSpec, Containerd, PodSpec},
    require_root, workspace_root,
};

const WAIT: Duration = Duration::from_secs(40);

/// The runtimes the DaemonSet may run under, with `allowPrivilegeEscalation:
/// false` (no_new_privs), and `syscensus run`.
const BASE_SETS: [&str; 1] = ["any-nnp"];

/// Syscalls the agent may make on paths a test cannot force, allowed on top
/// of the recording: the C library's allocator returns memory with
/// `madvise` and grows large blocks in place with `mremap` (which a
/// recording of the release build did not see, and one of the debug build
/// did), and lock contention and back-off sleep with `sched_yield`,
/// `nanosleep` and `clock_nanosleep`.
const HEADROOM: [&str; 5] = [
    "madvise",
    "mremap",
    "sched_yield",
    "nanosleep",
    "clock_nanosleep",
];

fn profile_path() -> std::path::PathBuf {
    workspace_root().join("agent/profiles/syscensus-agent.json")
}

/// Everything the agent does in a cluster, with the agent run through
/// `wrapper`, and `syscensus snapshot` (which runs in the agent's container,
/// under its profile: `kubectl exec`) through `snapshot_wrapper`; returns
/// the agent's log and the /proc status of the process started.
fn scenario(wrapper: &[&str], snapshot_wrapper: &[&str]) -> (String, String) {
    let ns = "shop";
    let server = FakeApiServer::start_with_syscensus(ns);
    server
        .create(
            &Gvr::new("apps", "v1", "replicasets"),
            Some(ns),
            json!({"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "web-1a", "namespace": ns, "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "uid": "d", "controller": true}]}, "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "app", "image": "x"}]}}}}),
        )
        .unwrap();
    server
        .create(
            &Gvr::of::<ProfileRecording>(),
            Some(ns),
            json!({"apiVersion": "syscensus.io/v1alpha1", "kind": "ProfileRecording", "metadata": {"name": "rec", "namespace": ns}, "spec": {"podSelector": {"matchLabels": {"app": "web"}}}}),
        )
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    server.write_kubeconfig(&kubeconfig).unwrap();
    let state = dir.path().join("state");
    std::fs::create_dir(&state).unwrap();
    // Declared before the agent, so removed after it stops, however the
    // test ends.
    let pins = Pins(format!(
        "/sys/fs/bpf/syscensus-own-{}",
        syscensus_tests::containers::random_hex(8)
    ));
    let containerd = Containerd::start();
    containerd.import_test_images(&[]);
    let cri = containerd.cri();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let root = dir.path().join("kubelet");
    let agent = Agent::start_wrapped(
        wrapper,
        &state,
        &[
            "--cri-socket",
            &containerd.socket().display().to_string(),
            "--kubelet-root",
            &root.display().to_string(),
            "--pin-dir",
            &pins.0,
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
        ],
    );
    // The agent watches the kubelet's cgroups once it knows a recording
    // selects something; containers started before that are not recorded.
    agent.wait_watching();
    let created = server
        .create(
            &Gvr::new("", "v1", "pods"),
            Some(ns),
            json!({"apiVersion": "v1", "kind": "Pod",
                   "metadata": {"name": "web-1a-x", "namespace": ns, "labels": {"app": "web", "pod-template-hash": "1a"},
                                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-1a", "uid": "r", "controller": true}]},
                   "spec": {"nodeName": "node-a", "containers": [{"name": "app", "image": "busybox"}]}}),
        )
        .unwrap();
    let mut spec = PodSpec::new("web-1a-x").namespace(ns).label("app", "web");
    spec.uid = created["metadata"]["uid"].as_str().unwrap().to_owned();
    let pod = cri.run_pod(spec);
    let app = pod.run_container(&ContainerSpec::new(
        "app",
        BUSYBOX_IMAGE,
        &["sh", "-c", "uname; sleep 1; echo done"],
    ));
    assert_eq!(app.wait_exited(WAIT), 0);
    let profiles = Gvr::of::<ContainerProfile>();
    let name = "rec.deployment.web.app";
    let deadline = Instant::now() + WAIT;
    let until = |what: &str, done: &dyn Fn() -> bool| {
        while !done() {
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}\nContainerProfiles: {:?}\nrequests: {:?}\n{}",
                server.list(&profiles, Some(ns)),
                server
                    .requests()
                    .iter()
                    .map(|r| format!("{} {}", r.method, r.path))
                    .collect::<Vec<_>>(),
                agent.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    until("the result", &|| {
        server.get(&profiles, Some(ns), name).is_ok()
    });
    // Approved: its LocalhostProfile, as an export brings it.
    let (object, _) = syscensus_tests::exported_localhost_profile(
        &server.get(&profiles, Some(ns), name).unwrap(),
    );
    let objects = Gvr::of::<syscensus_api::LocalhostProfile>();
    server.create(&objects, Some(ns), object).unwrap();
    until("the installation", &|| {
        root.join("seccomp/syscensus/shop/deployment-web/app.json")
            .exists()
    });
    until("the status", &|| {
        server
            .get(&Gvr::of::<ProfileRecording>(), Some(ns), "rec")
            .unwrap()["status"]["phase"]
            == "Recording"
    });
    until("the node's report", &|| {
        server
            .get(
                &Gvr::of::<syscensus_api::NodeProfileStatus>(),
                None,
                "node-a",
            )
            .is_ok_and(|s| s["spec"]["installedCount"] == 1)
    });
    // Approval taken back: no Pod or template uses it, so the profile and
    // its directories go.
    server
        .delete(&objects, Some(ns), "deployment-web.app")
        .unwrap();
    until("the removal", &|| {
        !root.join("seccomp/syscensus/shop").exists()
    });
    // The endpoints and a snapshot.
    for path in ["/metrics", "/healthz", "/readyz"] {
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        use std::io::{Read as _, Write as _};
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut text = String::new();
        stream.read_to_string(&mut text).unwrap();
        assert!(text.starts_with("HTTP/1.1 200"), "{path}: {text}");
    }
    let mut snapshot = std::process::Command::new(snapshot_wrapper[0]);
    snapshot
        .args(&snapshot_wrapper[1..])
        .arg(syscensus_tests::syscensus_bin())
        .args(["snapshot", "--state-dir"])
        .arg(agent.state_dir());
    let output = snapshot.output().unwrap();
    assert!(
        output.status.success(),
        "syscensus snapshot: {output:?}\n{}",
        agent.log()
    );
    let status = std::fs::read_to_string(format!("/proc/{}/status", agent.pid())).unwrap();
    let log = agent.stop();
    (log, status)
}

/// A pin directory in bpffs, removed when dropped.
struct Pins(String);

impl Drop for Pins {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The syscall names a syscensus profile recorded for x86_64.
fn recorded(profile: &Value) -> BTreeSet<&'static str> {
    profile["syscalls"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["comment"] == "recorded: SCMP_ARCH_X86_64")
        .flat_map(|r| r["names"].as_array().unwrap())
        .map(|n| {
            syscensus::syscalls::Arch::X86_64
                .name(
                    syscensus::syscalls::Arch::X86_64
                        .number(n.as_str().unwrap())
                        .unwrap(),
                )
                .unwrap()
        })
        .collect()
}

#[test]
fn the_agent_runs_under_its_own_profile() {
    require_root();
    let path = profile_path();
    if std::env::var_os("SYSCENSUS_UPDATE_AGENT_PROFILE").is_some() {
        let dir = tempfile::tempdir().unwrap();
        let raw = dir.path().join("agent.json");
        let raw_arg = raw.display().to_string();
        let raw_snapshot = dir.path().join("snapshot.json");
        let raw_snapshot_arg = raw_snapshot.display().to_string();
        let bin = syscensus_tests::syscensus_bin().display().to_string();
        let _ = scenario(
            &[&bin, "record", "--base-set", "none", "-o", &raw_arg, "--"],
            &[
                &bin,
                "record",
                "--base-set",
                "none",
                "-o",
                &raw_snapshot_arg,
                "--",
            ],
        );
        let mut names = BTreeSet::new();
        for raw in [&raw, &raw_snapshot] {
            let recorded_profile: Value =
                serde_json::from_str(&std::fs::read_to_string(raw).unwrap()).unwrap();
            names.extend(recorded(&recorded_profile));
        }
        let mut census = Census::default();
        census.extend(syscensus::syscalls::Arch::X86_64, names);
        let mut syscalls = BTreeSet::new();
        for name in BASE_SETS {
            syscalls.extend(syscensus::basesets::find(name).unwrap().unwrap().syscalls);
        }
        syscalls.extend(HEADROOM.map(String::from));
        let base = BaseSet {
            name: format!("{}+headroom", BASE_SETS.join("+")),
            syscalls,
        };
        let profile = Profile::from_census(&census, Some(&base), &BuildOptions::default());
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, profile.to_oci_json()).unwrap();
        return;
    }
    assert!(
        path.exists(),
        "{} is missing: run `cargo xtask gen-agent-profile`",
        path.display()
    );
    let profile_arg = path.display().to_string();
    // As the DaemonSet runs it: user root with CAP_BPF and CAP_PERFMON
    // alone, no_new_privs, and the profile.
    let bin = syscensus_tests::syscensus_bin().display().to_string();
    let confined = [
        "setpriv",
        "--inh-caps=-all,+bpf,+perfmon",
        "--ambient-caps=-all,+bpf,+perfmon",
        "--bounding-set=-all,+bpf,+perfmon",
        "--no-new-privs",
        "--",
        &bin,
        "run",
        "--profile",
        &profile_arg,
        "--",
    ];
    let (log, status) = scenario(&confined, &confined);
    // setpriv and `syscensus run` exec: the agent has the process they had.
    for line in ["CapEff:\t000000c000000000", "NoNewPrivs:\t1", "Seccomp:\t2"] {
        assert!(
            status.lines().any(|l| l == line),
            "{line} not in the agent's status:\n{status}"
        );
    }
    for refused in ["Operation not permitted", "EPERM"] {
        assert!(
            !log.contains(refused),
            "the agent met a refused syscall under its profile:\n{log}"
        );
    }
}
