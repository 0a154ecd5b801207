//! The DaemonSet's Pod, run as the kubelet runs it: `kubectl kustomize
//! deploy/base` as is, the agent's image (`cargo xtask image`) imported into
//! a real containerd, and the Pod template run through CRI by
//! `syscensus_tests::containers::cri::kubelet` (see there for what it maps
//! as the kubelet does, and where it cannot). The init container installs
//! the agent's own seccomp profile in the kubelet's seccomp directory;
//! containerd loads it from there for the agent container, which runs as
//! root with only BPF and PERFMON, no_new_privs, a read-only root, the
//! hostPath volumes, the downward API and the service account's token and
//! CA, with which it reaches the API server (over TLS) in-cluster.
//!
//! Host paths that would disturb this machine have stand-ins:
//! /var/lib/kubelet/seccomp and /var/lib/syscensus are temporary
//! directories, /run/containerd/containerd.sock is the test's containerd,
//! /sys/fs/bpf is a bpffs instance mounted for the test (its pins go with
//! it). /sys/fs/cgroup is the real one.
#![allow(clippy::unwrap_used, reason = "tests")]
#![allow(
    unused_crate_dependencies,
    reason = "an integration test uses some of its package's dependencies"
)]

use std::{
    collections::BTreeMap,
    path::PathBuf,
    time::{Duration, Instant},
};

use k8s_openapi::api::core::v1::{Pod as PodObject, ServiceAccount};
use serde_json::{Value, json};
use syscensus_api::{ContainerProfile, ProfileRecording};
use syscensus_tests::{
    apiserver::{FakeApiServer, Gvr},
    containers::{
        BUSYBOX_IMAGE, Containerd,
        cri::kubelet::{self, ApiServer, Node, Probe},
        random_hex,
    },
    manifests::{Mount, image_archive, mem_total, render},
    require_root, workspace_root,
};

const WAIT: Duration = Duration::from_secs(60);
const NODE: &str = "node-a";
const NS: &str = "shop";

/// Polls `done` every 100 ms for up to [`WAIT`], failing with `what` and
/// `context()`.
fn until(what: &str, context: &dyn Fn() -> String, done: &mut dyn FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !done() {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}\n{}",
            context()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A Pod of the Deployment `web` (ReplicaSet `web-1a`) on this node, created
/// in the API server as the ReplicaSet controller and scheduler would.
fn workload(server: &FakeApiServer, name: &str, container: Value) -> PodObject {
    let created = server
        .create(
            &Gvr::new("", "v1", "pods"),
            Some(NS),
            json!({"apiVersion": "v1", "kind": "Pod",
                   "metadata": {"name": name, "namespace": NS, "labels": {"app": "web", "pod-template-hash": "1a"},
                                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-1a", "uid": "r", "controller": true}]},
                   "spec": {"nodeName": NODE, "restartPolicy": "Never", "containers": [container],
                            "volumes": [{"name": "trigger", "hostPath": {"path": "/syscensus-test/trigger", "type": "Directory"}}]}}),
        )
        .unwrap();
    serde_json::from_value(created).unwrap()
}

/// The workload's container: it runs until the test makes /trigger/stop.
fn app(seccomp: Option<Value>, command: &str) -> Value {
    let mut container = json!({
        "name": "app", "image": BUSYBOX_IMAGE,
        "command": ["sh", "-c", command],
        "volumeMounts": [{"name": "trigger", "mountPath": "/trigger", "readOnly": true}],
    });
    if let Some(profile) = seccomp {
        container["securityContext"] = json!({"seccompProfile": profile});
    }
    container
}

const WORKLOAD: &str = "uname; while [ ! -e /trigger/stop ]; do sleep 0.1; done; echo done";

#[test]
fn the_daemonset_pod_runs_as_the_kubelet_runs_it() {
    require_root();
    let image = image_archive();
    let docs = render("deploy/base");
    let daemonset = docs
        .iter()
        .find(|d| d["kind"] == "DaemonSet")
        .expect("deploy/base renders a DaemonSet");
    let accounts: Vec<ServiceAccount> = docs
        .iter()
        .filter(|d| d["kind"] == "ServiceAccount")
        .map(|d| serde_json::from_value(d.clone()).unwrap())
        .collect();
    let image_name = daemonset["spec"]["template"]["spec"]["containers"][0]["image"]
        .as_str()
        .unwrap()
        .to_owned();

    // The cluster: HTTPS only, syscensus's CRDs, a Deployment's ReplicaSet
    // and a recording of its Pods.
    let server = FakeApiServer::start_tls().with_syscensus(NS);
    server
        .create(
            &Gvr::new("apps", "v1", "replicasets"),
            Some(NS),
            json!({"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "web-1a", "namespace": NS, "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "uid": "d", "controller": true}]}, "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "app", "image": "x"}]}}}}),
        )
        .unwrap();
    server
        .create(
            &Gvr::of::<ProfileRecording>(),
            Some(NS),
            json!({"apiVersion": "syscensus.io/v1alpha1", "kind": "ProfileRecording", "metadata": {"name": "rec", "namespace": NS}, "spec": {"podSelector": {"matchLabels": {"app": "web"}}}}),
        )
        .unwrap();

    // The node.
    let dir = tempfile::tempdir().unwrap();
    let bpffs = Mount::new("bpf", "rw", &dir.path().join("bpffs"));
    let kubelet_root = dir.path().join("kubelet");
    let state = dir.path().join("state");
    let trigger = dir.path().join("trigger");
    std::fs::create_dir(&trigger).unwrap();
    let containerd = Containerd::start();
    containerd.import_test_images(&[]);
    containerd.import_archive(&image, &image_name);
    let cri = containerd.cri();
    let token = format!("test-token-{}", random_hex(16));
    let node = Node {
        name: NODE.to_owned(),
        ip: "127.0.0.1".to_owned(),
        kubelet_root: kubelet_root.clone(),
        host_paths: BTreeMap::from([
            ("/sys/fs/cgroup".to_owned(), PathBuf::from("/sys/fs/cgroup")),
            ("/sys/fs/bpf".to_owned(), bpffs.path().to_path_buf()),
            ("/var/lib/syscensus".to_owned(), state.clone()),
            (
                "/run/containerd/containerd.sock".to_owned(),
                containerd.socket(),
            ),
            (
                "/var/lib/kubelet/seccomp".to_owned(),
                kubelet_root.join("seccomp"),
            ),
            ("/syscensus-test/trigger".to_owned(), trigger.clone()),
        ]),
        api_server: Some(ApiServer {
            host: "127.0.0.1".to_owned(),
            port: server.port(),
            ca_pem: server.ca_pem().unwrap().to_owned(),
            token: token.clone(),
        }),
        memory_bytes: mem_total(),
    };

    // The DaemonSet controller's Pod: the template as rendered, named.
    let mut pod = daemonset["spec"]["template"].clone();
    pod["metadata"]["name"] = json!(format!("syscensus-agent-{}", &random_hex(3)[..5]));
    pod["metadata"]["namespace"] = daemonset["metadata"]["namespace"].clone();
    let agent_pod = kubelet::run_pod(cri, &node, &serde_json::from_value(pod).unwrap(), &accounts);
    let agent = agent_pod.container("agent");
    let context = || {
        format!(
            "agent log:\n{}\nContainerProfiles: {:?}",
            agent.logs().stderr,
            server.list(&Gvr::of::<ContainerProfile>(), Some(NS))
        )
    };

    // The init container put the agent's profile where the kubelet looks.
    assert_eq!(
        std::fs::read(kubelet_root.join("seccomp/syscensus/syscensus-agent.json")).unwrap(),
        std::fs::read(workspace_root().join("agent/profiles/syscensus-agent.json")).unwrap(),
        "the profile the init container installed is not agent/profiles/syscensus-agent.json"
    );
    agent_pod.wait_ready(WAIT);
    agent_pod
        .probe("agent", Probe::Liveness)
        .unwrap_or_else(|e| panic!("liveness: {e}\n{}", context()));

    // The agent as containerd started it: root, BPF and PERFMON only,
    // no_new_privs, the seccomp filter, a read-only root.
    let pid = agent.pid();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    for line in [
        "CapEff:\t000000c000000000",
        "CapBnd:\t000000c000000000",
        "NoNewPrivs:\t1",
        "Seccomp:\t2",
    ] {
        assert!(
            status.lines().any(|l| l == line),
            "{line} not in the agent's status:\n{status}"
        );
    }
    assert!(
        status.lines().any(|l| l.starts_with("Uid:\t0\t")),
        "{status}"
    );
    let mountinfo = std::fs::read_to_string(format!("/proc/{pid}/mountinfo")).unwrap();
    let root = mountinfo
        .lines()
        .find(|l| l.split(' ').nth(4) == Some("/"))
        .unwrap();
    assert!(
        root.split(' ')
            .nth(5)
            .unwrap()
            .split(',')
            .any(|o| o == "ro"),
        "the agent's root is not read-only: {root}"
    );

    // The recording selects a Pod here: the agent watches the kubelet's
    // cgroups (and says so in its state directory).
    until("the agent to watch", &context, &mut || {
        state.join("watching").exists()
    });

    // A Pod of the workload, recorded by the agent in the Pod.
    let web = workload(&server, "web-1a-x", app(None, WORKLOAD));
    let web_pod = kubelet::run_pod(cri, &node, &web, &[]);
    let web_app = web_pod.container("app");
    // `syscensus snapshot` from inside the agent's Pod, as `kubectl exec`
    // runs it (under the agent's profile too).
    let recording = state.join(format!("containers/{}.json", web_app.id()));
    until("a snapshot of the running workload", &context, &mut || {
        let (code, out, err) = agent_pod.exec("agent", &["syscensus", "snapshot"], WAIT);
        assert_eq!(
            code,
            0,
            "syscensus snapshot in the Pod: {out}{err}\n{}",
            context()
        );
        std::fs::read_to_string(&recording)
            .is_ok_and(|text| serde_json::from_str::<Value>(&text).unwrap()["state"] == "Running")
    });
    std::fs::write(trigger.join("stop"), b"").unwrap();
    assert_eq!(web_app.wait_exited(WAIT), 0, "{:?}", web_app.logs());

    // Its ContainerProfile, approved (its LocalhostProfile, as an export
    // brings it), is installed by the agent.
    let profiles = Gvr::of::<ContainerProfile>();
    let name = "rec.deployment.web.app";
    until("the ContainerProfile", &context, &mut || {
        server.get(&profiles, Some(NS), name).is_ok_and(|p| {
            p["spec"]["syscalls"]["SCMP_ARCH_X86_64"]
                .as_array()
                .is_some_and(|names| names.iter().any(|n| n == "uname"))
        })
    });
    let (object, _) = syscensus_tests::exported_localhost_profile(
        &server.get(&profiles, Some(NS), name).unwrap(),
    );
    server
        .create(
            &Gvr::of::<syscensus_api::LocalhostProfile>(),
            Some(NS),
            object,
        )
        .unwrap();
    let mut installed = String::new();
    until("the installation", &context, &mut || {
        let Ok(status) = server.get(&Gvr::of::<syscensus_api::NodeProfileStatus>(), None, NODE)
        else {
            return false;
        };
        match status["spec"]["installed"]
            .as_array()
            .and_then(|i| i.first())
        {
            Some(entry) => {
                installed = entry["localhostProfile"].as_str().unwrap().to_owned();
                true
            }
            None => false,
        }
    });
    assert!(
        kubelet_root.join("seccomp").join(&installed).is_file(),
        "{installed} is not in the kubelet's seccomp directory"
    );
    drop(web_pod);

    // Enforced by containerd: the workload runs under it, again and again;
    // what it never did is refused.
    let localhost = json!({"type": "Localhost", "localhostProfile": installed});
    for run in 0..5 {
        let pod = workload(
            &server,
            &format!("web-1a-e{run}"),
            app(Some(localhost.clone()), WORKLOAD),
        );
        let pod = kubelet::run_pod(cri, &node, &pod, &[]);
        let app = pod.container("app");
        assert_eq!(
            app.wait_exited(WAIT),
            0,
            "run {run} under its profile: {:?}",
            app.logs()
        );
        assert_eq!(
            app.info()["runtimeSpec"]["linux"]["seccomp"]["defaultAction"],
            "SCMP_ACT_ERRNO"
        );
    }
    let pod = workload(
        &server,
        "web-1a-mkdir",
        app(Some(localhost), "mkdir /tmp/x"),
    );
    let pod = kubelet::run_pod(cri, &node, &pod, &[]);
    let refused = pod.container("app");
    assert_ne!(refused.wait_exited(WAIT), 0);
    assert!(
        refused.logs().stderr.contains("Operation not permitted"),
        "{:?}",
        refused.logs()
    );
    drop(pod);

    // /metrics through the Pod's port.
    let port = daemonset["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"]
        .as_u64()
        .unwrap();
    let (code, metrics) =
        kubelet::http_get_body("127.0.0.1", u16::try_from(port).unwrap(), "/metrics")
            .unwrap_or_else(|e| panic!("/metrics: {e}"));
    assert_eq!(code, 200, "{metrics}");
    assert!(
        metrics.contains("syscensus_recordings_active 1\n"),
        "{metrics}"
    );

    // In-cluster: every request the agent made carried the service
    // account's token (and came over TLS: the server speaks nothing else).
    let requests = server.requests();
    let agent_requests: Vec<_> = requests
        .iter()
        .filter(|r| r.authorization.is_some())
        .collect();
    assert!(!agent_requests.is_empty(), "no request carried a token");
    for request in &agent_requests {
        assert_eq!(
            request.authorization.as_deref(),
            Some(format!("Bearer {token}").as_str()),
            "{} {}",
            request.method,
            request.path
        );
    }

    // Nothing was refused under the agent's profile, and SIGTERM (the
    // kubelet's stop, with the Pod's grace period) ends it cleanly.
    let grace = daemonset["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
        .as_i64()
        .unwrap();
    agent.stop(grace);
    let code = agent.wait_exited(WAIT);
    let log = agent.logs().stderr;
    assert_eq!(code, 0, "the agent exited {code}:\n{log}");
    for refused in ["Operation not permitted", "EPERM"] {
        assert!(
            !log.contains(refused),
            "the agent met a refused syscall under its profile:\n{log}"
        );
    }
    agent_pod.stop();
    drop(bpffs);
}
