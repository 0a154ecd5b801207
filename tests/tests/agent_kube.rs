//! The agent in Kubernetes mode. The API server is simulated (a test server
//! speaking real Kubernetes JSON to the real kube client, in this process);
//! the containers are real, started through containerd's CRI like a kubelet
//! does, and the test posts the matching Pod objects (same UIDs, the
//! containers' ids in their status) as the kubelet would.
#![allow(clippy::unwrap_used, reason = "tests")]
#![allow(
    unused_crate_dependencies,
    reason = "an integration test uses some of its package's dependencies"
)]

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use syscensus_api::{ContainerProfile, ProfileRecording};
use syscensus_tests::{
    agent::{Agent, PinDir},
    apiserver::{FakeApiServer, Gvr},
    containers::{BUSYBOX_IMAGE, ContainerSpec, Containerd, CriContainer, Pod, PodSpec, Seccomp},
    require_root,
};

const NS: &str = "shop";
const WAIT: Duration = Duration::from_secs(40);

fn pods() -> Gvr {
    Gvr::new("", "v1", "pods")
}

fn profiles() -> Gvr {
    Gvr::of::<ContainerProfile>()
}

fn recordings() -> Gvr {
    Gvr::of::<ProfileRecording>()
}

/// The fake API server with syscensus's CRDs, a namespace, a ProfileRecording
/// of `app=web` Pods, and the Deployment → ReplicaSet chain the Pods of
/// `web` belong to.
fn cluster() -> (FakeApiServer, tempfile::TempDir) {
    let server = FakeApiServer::start_with_syscensus(NS);
    server
        .create(
            &Gvr::new("apps", "v1", "deployments"),
            Some(NS),
            json!({
                "apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": "web", "namespace": NS, "uid": "dep-uid"},
                "spec": {"selector": {"matchLabels": {"app": "web"}},
                         "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "app", "image": "x"}]}}}
            }),
        )
        .unwrap();
    server
        .create(
            &Gvr::new("apps", "v1", "replicasets"),
            Some(NS),
            json!({
                "apiVersion": "apps/v1", "kind": "ReplicaSet",
                "metadata": {"name": "web-5d4f", "namespace": NS,
                             "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "uid": "dep-uid", "controller": true}]},
                "spec": {"selector": {"matchLabels": {"app": "web"}},
                         "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "app", "image": "x"}]}}}
            }),
        )
        .unwrap();
    server
        .create(
            &recordings(),
            Some(NS),
            json!({
                "apiVersion": "syscensus.io/v1alpha1", "kind": "ProfileRecording",
                "metadata": {"name": "rec", "namespace": NS},
                "spec": {"podSelector": {"matchLabels": {"app": "web"}}, "includeInitContainers": true}
            }),
        )
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    server
        .write_kubeconfig(&dir.path().join("kubeconfig"))
        .unwrap();
    (server, dir)
}

/// A Pod object as a controller would create it (the API server gives it
/// its UID).
fn pod_object(
    name: &str,
    node: &str,
    mut labels: Value,
    owned: bool,
    init: &[&str],
    containers: &[&str],
) -> Value {
    if owned {
        // The Deployment controller's label on its Pods.
        labels["pod-template-hash"] = json!("5d4f");
    }
    let mut metadata = json!({"name": name, "namespace": NS, "labels": labels});
    if owned {
        metadata["ownerReferences"] = json!([{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-5d4f", "uid": "rs-uid", "controller": true}]);
    }
    let spec_containers = |names: &[&str]| -> Vec<Value> {
        names
            .iter()
            .map(|n| json!({"name": n, "image": "busybox"}))
            .collect()
    };
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": metadata,
        "spec": {"nodeName": node, "initContainers": spec_containers(init), "containers": spec_containers(containers)},
    })
}

/// The Pod's status, with its containers' ids, as the kubelet reports it.
fn report_status(
    server: &FakeApiServer,
    name: &str,
    init: &[(&str, &str)],
    containers: &[(&str, &str)],
) {
    let statuses = |list: &[(&str, &str)]| -> Vec<Value> {
        list.iter()
            .map(|(n, id)| json!({"name": n, "containerID": format!("containerd://{id}"), "image": "busybox", "imageID": "", "ready": false, "restartCount": 0, "state": {"running": {}}}))
            .collect()
    };
    server
        .apply_status(&pods(), Some(NS), name, json!({"phase": "Running", "initContainerStatuses": statuses(init), "containerStatuses": statuses(containers)}))
        .unwrap();
}

fn wait_for<T>(what: &str, agents: &[&Agent], mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(value) = check() {
            return value;
        }
        if Instant::now() > deadline {
            let logs: Vec<String> = agents.iter().map(|a| a.log()).collect();
            panic!("timed out waiting for {what}\n{}", logs.join("\n-----\n"));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn names(profile: &Value) -> Vec<String> {
    profile["spec"]["syscalls"]["SCMP_ARCH_X86_64"]
        .as_array()
        .map(|a| a.iter().map(|n| n.as_str().unwrap().to_owned()).collect())
        .unwrap_or_default()
}

fn start_agent(node: &str, kubeconfig: &std::path::Path, socket: &str) -> Agent {
    Agent::start_with_env(
        &[
            "--cri-socket",
            socket,
            "--flush-interval",
            "1",
            "--poll-interval",
            "1",
            "--no-install",
        ],
        &[
            ("NODE_NAME", node),
            ("KUBECONFIG", kubeconfig.to_str().unwrap()),
        ],
    )
}

#[test]
fn two_nodes_record_selected_pods_into_one_profile_per_workload_container() {
    require_root();
    let (server, dir) = cluster();
    let kubeconfig = dir.path().join("kubeconfig");
    let containerd = Containerd::start();
    containerd.import_test_images(&[]);
    let cri = containerd.cri();
    let socket = containerd.socket().display().to_string();
    let node_a = start_agent("node-a", &kubeconfig, &socket);
    let node_b = start_agent("node-b", &kubeconfig, &socket);
    node_a.wait_watching();
    node_b.wait_watching();
    let agents = [&node_a, &node_b];

    // Two replicas of web, one per node, doing different things; and a Pod
    // the recording does not select. The API server names the Pods' UIDs;
    // the kubelet passes them to the runtime.
    let run = |name: &str, node: &str, app: &str, owned: bool, init: &[&str]| {
        let object = pod_object(name, node, json!({"app": app}), owned, init, &["app"]);
        let created = server.create(&pods(), Some(NS), object).unwrap();
        let mut spec = PodSpec::new(name).namespace(NS).label("app", app);
        spec.uid = created["metadata"]["uid"].as_str().unwrap().to_owned();
        cri.run_pod(spec)
    };
    let web_a = run("web-5d4f-a", "node-a", "web", true, &["init"]);
    let web_b = run("web-5d4f-b", "node-b", "web", true, &[]);
    let other = run("other", "node-a", "other", false, &[]);
    let init_a = web_a.run_container(&ContainerSpec::new(
        "init",
        BUSYBOX_IMAGE,
        &["sh", "-c", "cat /etc/passwd >/dev/null"],
    ));
    assert_eq!(init_a.wait_exited(WAIT), 0);
    let app_a = web_a.run_container(&ContainerSpec::new(
        "app",
        BUSYBOX_IMAGE,
        &["sh", "-c", "uname; sleep 0.5"],
    ));
    let app_b = web_b.run_container(&ContainerSpec::new(
        "app",
        BUSYBOX_IMAGE,
        &["sh", "-c", "ls / >/dev/null; sleep 0.5"],
    ));
    let app_other = other.run_container(&ContainerSpec::new(
        "app",
        BUSYBOX_IMAGE,
        &["sh", "-c", "df / >/dev/null; sleep 0.5"],
    ));
    report_status(
        &server,
        "web-5d4f-a",
        &[("init", init_a.id())],
        &[("app", app_a.id())],
    );
    report_status(&server, "web-5d4f-b", &[], &[("app", app_b.id())]);
    report_status(&server, "other", &[], &[("app", app_other.id())]);
    for c in [&app_a, &app_b, &app_other] {
        assert_eq!(c.wait_exited(WAIT), 0);
    }

    // One profile for web's app container, merged from both nodes.
    let app = wait_for("the merged profile of web/app", &agents, || {
        let p = server
            .get(&profiles(), Some(NS), "rec.deployment.web.app")
            .ok()?;
        let n = names(&p);
        let nodes = p["spec"]["nodes"].as_array().map(Vec::len).unwrap_or(0);
        (n.iter().any(|s| s == "uname") && n.iter().any(|s| s == "getdents64") && nodes == 2)
            .then_some(p)
    });
    let spec = &app["spec"];
    assert_eq!(spec["recording"], "rec");
    assert_eq!(
        spec["workload"],
        json!({"kind": "Deployment", "name": "web"})
    );
    assert_eq!(spec["container"], "app");
    assert_eq!(spec["initContainer"], false);
    // (The order of a list map after a merge is the server's business.)
    let node = |name: &str| {
        spec["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["node"] == name)
            .cloned()
    };
    assert_eq!(node("node-a").unwrap()["pods"], json!(["web-5d4f-a"]));
    assert_eq!(node("node-b").unwrap()["pods"], json!(["web-5d4f-b"]));
    assert_eq!(spec["runtimeBaseSet"]["name"], "runc");
    assert!(spec["lastNewSyscall"].is_string(), "{spec}");
    assert_eq!(
        spec["syscallCount"].as_u64().unwrap() as usize,
        names(&app).len()
    );
    // Runtime set-up is not in it; the Pod that was not selected added
    // nothing (df's statfs).
    for absent in ["mount", "pivot_root", "statfs"] {
        assert!(
            !names(&app).iter().any(|s| s == absent),
            "{absent} in {:?}",
            names(&app)
        );
    }
    assert_eq!(
        app["metadata"]["labels"]["syscensus.io/workload-kind"],
        "deployment"
    );
    let managers: Vec<&str> = app["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["manager"].as_str())
        .collect();
    assert!(managers.contains(&"syscensus"), "{managers:?}");

    // The init container has a profile of its own.
    let init = wait_for("the init container's profile", &agents, || {
        server
            .get(&profiles(), Some(NS), "rec.deployment.web.init")
            .ok()
    });
    assert_eq!(init["spec"]["initContainer"], true);
    assert!(
        names(&init).iter().any(|s| s == "sendfile"),
        "{:?}",
        names(&init)
    );

    // Nothing for the Pod the selector does not match.
    let all = server.list(&profiles(), Some(NS)).unwrap();
    let kept: Vec<&str> = all
        .iter()
        .map(|p| p["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(kept.len(), 2, "{kept:?}");

    // Each node wrote its part of the recording's status.
    let status = wait_for("both nodes in the status", &agents, || {
        let r = server.get(&recordings(), Some(NS), "rec").ok()?;
        (r["status"]["nodes"].as_array().map(Vec::len) == Some(2)).then_some(r)
    });
    assert_eq!(status["status"]["phase"], "Recording");
    let entry = status["status"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["node"] == "node-a")
        .unwrap()
        .clone();
    assert!(
        entry["workloads"][0]["containers"]
            .as_array()
            .unwrap()
            .len()
            == 2,
        "{entry}"
    );
}

/// Two nodes write the same ContainerProfile at once: the test API server
/// holds both writes until both have arrived, so both read the same
/// resourceVersion and the second write conflicts every time. The loser
/// must read and merge again: every syscall either node wrote survives.
#[test]
fn two_nodes_writing_one_profile_at_once_lose_neither_nodes_syscalls() {
    require_root();
    let (server, dir) = cluster();
    let kubeconfig = dir.path().join("kubeconfig");
    let containerd = Containerd::start();
    containerd.import_test_images(&[]);
    let cri = containerd.cri();
    let socket = containerd.socket().display().to_string();
    let node_a = start_agent("node-a", &kubeconfig, &socket);
    let node_b = start_agent("node-b", &kubeconfig, &socket);
    node_a.wait_watching();
    node_b.wait_watching();
    let agents = [&node_a, &node_b];

    // One replica per node: uname, then a syscall of its own (statfs on
    // node-a, getdents64 on node-b) once told to, then nothing new (so no
    // later write of either node mends what a lost write dropped).
    let pod = |name: &str, node: &str| {
        let object = pod_object(name, node, json!({"app": "web"}), true, &[], &["app"]);
        let created = server.create(&pods(), Some(NS), object).unwrap();
        let mut spec = PodSpec::new(name).namespace(NS).label("app", "web");
        spec.uid = created["metadata"]["uid"].as_str().unwrap().to_owned();
        cri.run_pod(spec)
    };
    let pod_a = pod("web-5d4f-a", "node-a");
    let pod_b = pod("web-5d4f-b", "node-b");
    fn start<'p>(server: &FakeApiServer, pod: &'p Pod<'p>, then: &str) -> CriContainer<'p> {
        let script = format!(
            "uname >/dev/null; while [ ! -e /tmp/go ]; do sleep 0.1; done; {then}; while :; do sleep 0.1; done"
        );
        let app = pod.run_container(&ContainerSpec::new(
            "app",
            BUSYBOX_IMAGE,
            &["sh", "-c", &script],
        ));
        report_status(server, &pod.spec().name, &[], &[("app", app.id())]);
        app
    }
    let app_a = start(&server, &pod_a, "df / >/dev/null");
    let app_b = start(&server, &pod_b, "ls / >/dev/null");
    let name = "rec.deployment.web.app";
    wait_for("both nodes in the profile", &agents, || {
        let p = server.get(&profiles(), Some(NS), name).ok()?;
        (p["spec"]["nodes"].as_array().map(Vec::len) == Some(2)).then_some(())
    });

    // Both nodes' next writes of the profile meet at the barrier.
    let path = format!("/apis/syscensus.io/v1alpha1/namespaces/{NS}/containerprofiles/{name}");
    server.hold_writes(&path, 2);
    for app in [&app_a, &app_b] {
        std::fs::write(format!("/proc/{}/root/tmp/go", app.pid()), b"").unwrap();
    }
    wait_for("both writes at the barrier", &agents, || {
        (server.held_writes().len() == 2).then_some(())
    });
    let mut written: Vec<String> = vec!["statfs".to_owned(), "getdents64".to_owned()];
    for body in server.held_writes() {
        let body: Value = serde_json::from_str(&body).unwrap();
        written.extend(names(&body));
    }
    written.sort();
    written.dedup();

    let deadline = Instant::now() + WAIT;
    let profile = loop {
        let p = server.get(&profiles(), Some(NS), name).unwrap();
        let kept = names(&p);
        let lost: Vec<&String> = written.iter().filter(|s| !kept.contains(s)).collect();
        if lost.is_empty() {
            break p;
        }
        assert!(
            Instant::now() < deadline,
            "the profile lost syscalls a node wrote when both wrote at once: {lost:?} \
             missing from {kept:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(
        profile["spec"]["nodes"].as_array().map(Vec::len),
        Some(2),
        "{profile}"
    );
    // The writes did collide: the second was refused and written again.
    let refused = server
        .requests()
        .iter()
        .filter(|r| r.method == "PATCH" && r.path == path && r.status == 409)
        .count();
    assert!(refused >= 1, "no write conflicted");
}

#[test]
fn results_wait_out_an_api_server_outage_and_new_pods_are_recorded_after_it() {
    require_root();
    let (server, dir) = cluster();
    let kubeconfig = dir.path().join("kubeconfig");
    let containerd = Containerd::start();
    containerd.import_test_images(&[]);
    let cri = containerd.cri();
    let socket = containerd.socket().display().to_string();
    let agent = start_agent("node-a", &kubeconfig, &socket);
    agent.wait_watching();

    let created = server
        .create(
            &pods(),
            Some(NS),
            pod_object(
                "web-5d4f-x",
                "node-a",
                json!({"app": "web"}),
                true,
                &["init"],
                &["app"],
            ),
        )
        .unwrap();
    let mut spec = PodSpec::new("web-5d4f-x").namespace(NS).label("app", "web");
    spec.uid = created["metadata"]["uid"].as_str().unwrap().to_owned();
    let pod = cri.run_pod(spec);
    // The agent knows the Pod once its init container is recorded into a
    // profile of its own; then the API server goes away.
    let init = pod.run_container(&ContainerSpec::new(
        "init",
        BUSYBOX_IMAGE,
        &["sh", "-c", "cat /etc/passwd >/dev/null"],
    ));
    assert_eq!(init.wait_exited(WAIT), 0);
    wait_for("the init container's profile", &[&agent], || {
        server
            .get(&profiles(), Some(NS), "rec.deployment.web.init")
            .ok()
    });
    server.set_unavailable(true);
    let app = pod.run_container(&ContainerSpec::new(
        "app",
        BUSYBOX_IMAGE,
        &["sh", "-c", "uname; sleep 0.3"],
    ));
    assert_eq!(app.wait_exited(WAIT), 0);
    wait_for("the agent to fail to write the profile", &[&agent], || {
        agent
            .log()
            .contains("cannot write a ContainerProfile")
            .then_some(())
    });
    // The result waits in the agent, and on disk.
    let on_disk = agent.wait_for_recording(app.id(), "Exited", WAIT);
    assert!(
        on_disk["syscalls"]["SCMP_ARCH_X86_64"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s == "uname")
    );
    server.set_unavailable(false);
    let profile = wait_for("the profile after the outage", &[&agent], || {
        server
            .get(&profiles(), Some(NS), "rec.deployment.web.app")
            .ok()
    });
    assert!(
        names(&profile).iter().any(|s| s == "uname"),
        "{:?}",
        names(&profile)
    );

    // A Pod made after the outage is seen and recorded: the agent's
    // watches came back.
    let created = server
        .create(
            &pods(),
            Some(NS),
            pod_object(
                "web-5d4f-y",
                "node-a",
                json!({"app": "web"}),
                true,
                &[],
                &["app"],
            ),
        )
        .unwrap();
    let mut spec = PodSpec::new("web-5d4f-y").namespace(NS).label("app", "web");
    spec.uid = created["metadata"]["uid"].as_str().unwrap().to_owned();
    let pod_y = cri.run_pod(spec);
    let app_y = pod_y.run_container(&ContainerSpec::new(
        "app",
        BUSYBOX_IMAGE,
        &["sh", "-c", "df / >/dev/null; sleep 0.3"],
    ));
    report_status(&server, "web-5d4f-y", &[], &[("app", app_y.id())]);
    assert_eq!(app_y.wait_exited(WAIT), 0);
    wait_for("the new Pod's syscalls after the outage", &[&agent], || {
        let p = server
            .get(&profiles(), Some(NS), "rec.deployment.web.app")
            .ok()?;
        names(&p).iter().any(|s| s == "statfs").then_some(())
    });
}

/// Issue 11, scenario 6: an agent killed with SIGKILL while a selected
/// container runs; the container makes a syscall it had not made, ends, and
/// its Pod is deleted, all while no agent runs. The restarted agent must
/// still know the container was chosen, for which workload, and write what
/// it did (the kernel program kept recording: its maps and links are
/// pinned).
#[test]
fn a_restart_after_sigkill_keeps_a_chosen_container_that_ended_meanwhile() {
    require_root();
    let (server, dir) = cluster();
    let kubeconfig = dir.path().join("kubeconfig");
    let containerd = Containerd::start();
    containerd.import_test_images(&[]);
    let cri = containerd.cri();
    let socket = containerd.socket().display().to_string();
    let pins = PinDir::default();
    let state = tempfile::tempdir().unwrap();
    let args = [
        "--cri-socket",
        &socket,
        "--flush-interval",
        "1",
        "--poll-interval",
        "1",
        "--no-install",
        "--pin-dir",
        pins.arg(),
    ];
    let env = [
        ("NODE_NAME", "node-a"),
        ("KUBECONFIG", kubeconfig.to_str().unwrap()),
    ];
    let agent = Agent::start_in(state.path(), &args, &env);
    agent.wait_watching();

    let name = "web-5d4f-k";
    let created = server
        .create(
            &pods(),
            Some(NS),
            pod_object(name, "node-a", json!({"app": "web"}), true, &[], &["app"]),
        )
        .unwrap();
    let mut spec = PodSpec::new(name).namespace(NS).label("app", "web");
    spec.uid = created["metadata"]["uid"].as_str().unwrap().to_owned();
    let pod = cri.run_pod(spec);
    // uname at once; df (statfs) only once told to, when no agent runs.
    let app = pod.run_container(&ContainerSpec::new(
        "app",
        BUSYBOX_IMAGE,
        &[
            "sh",
            "-c",
            "uname >/dev/null; while [ ! -e /tmp/go ]; do sleep 0.1; done; df / >/dev/null",
        ],
    ));
    report_status(&server, name, &[], &[("app", app.id())]);
    wait_for("the running container in its profile", &[&agent], || {
        let p = server
            .get(&profiles(), Some(NS), "rec.deployment.web.app")
            .ok()?;
        names(&p).iter().any(|s| s == "uname").then_some(())
    });
    wait_for("the choice in the agent's checkpoint", &[&agent], || {
        let text = std::fs::read_to_string(state.path().join("checkpoint.json")).ok()?;
        (text.contains(app.id()) && text.contains("\"chosen\"")).then_some(())
    });
    let log = agent.log();
    agent.kill();

    // While no agent runs: the new syscall, the end, the Pod gone.
    let pid = app.pid();
    std::fs::write(format!("/proc/{pid}/root/tmp/go"), b"").unwrap();
    assert_eq!(app.wait_exited(WAIT), 0, "{:?}", app.logs());
    let id = app.id().to_owned();
    app.remove();
    pod.remove();
    server.delete(&pods(), Some(NS), name).unwrap();

    let agent = Agent::start_in(state.path(), &args, &env);
    let profile = wait_for("the syscall made while no agent ran", &[&agent], || {
        let p = server
            .get(&profiles(), Some(NS), "rec.deployment.web.app")
            .ok()?;
        names(&p).iter().any(|s| s == "statfs").then_some(p)
    });
    assert!(names(&profile).iter().any(|s| s == "uname"), "{profile}");
    let recording = agent.wait_for_recording(&id, "Exited", WAIT);
    assert_eq!(recording["containerName"], "app", "{recording}");
    assert_eq!(recording["pod"]["name"], name, "{recording}\n{log}");
}

/// An exec probe runs through CRI `ExecSync` inside the container, under the
/// container's profile: its syscalls must be in the profile, or the probe
/// fails once the profile is applied and the Pod restarts in a loop. A
/// session that runs no command of the Pod's spec (an interactive `kubectl
/// exec`) is listed and left out. The exported profile, enforced by
/// containerd, runs the probe through ExecSync 20 times of 20; without the
/// sessions' syscalls it fails.
#[test]
fn exec_probes_of_the_pod_spec_are_in_the_profile_and_other_sessions_are_listed() {
    require_root();
    let (server, dir) = cluster();
    let kubeconfig = dir.path().join("kubeconfig");
    let containerd = Containerd::start();
    containerd.import_test_images(&[]);
    let cri = containerd.cri();
    let socket = containerd.socket().display().to_string();
    let agent = start_agent("node-a", &kubeconfig, &socket);
    agent.wait_watching();

    let probe = ["sh", "-c", "mkdir -p /tmp/ready && test -d /tmp/ready"];
    let person = ["sh", "-c", "df / >/dev/null"];
    let name = "web-5d4f-p";
    let mut object = pod_object(name, "node-a", json!({"app": "web"}), true, &[], &["app"]);
    object["spec"]["containers"][0]["livenessProbe"] = json!({"exec": {"command": probe}});
    let created = server.create(&pods(), Some(NS), object).unwrap();
    let mut spec = PodSpec::new(name).namespace(NS).label("app", "web");
    spec.uid = created["metadata"]["uid"].as_str().unwrap().to_owned();
    let pod = cri.run_pod(spec);
    let app = pod.run_container(&ContainerSpec::new(
        "app",
        BUSYBOX_IMAGE,
        &["sh", "-c", "while [ ! -e /tmp/stop ]; do sleep 0.1; done"],
    ));
    report_status(&server, name, &[], &[("app", app.id())]);
    wait_for("the running container chosen", &[&agent], || {
        server
            .get(&profiles(), Some(NS), "rec.deployment.web.app")
            .ok()
    });
    // The kubelet's probe, three times, and a person's session once.
    for _ in 0..3 {
        assert_eq!(app.exec_sync(&probe, WAIT).0, 0);
    }
    assert_eq!(app.exec_sync(&person, WAIT).0, 0);

    let mkdir = |names: &[String]| names.iter().any(|s| s == "mkdir" || s == "mkdirat");
    let session = |spec: &Value, command: &[&str]| -> Option<Value> {
        spec["sessions"]
            .as_array()?
            .iter()
            .find(|s| s["command"] == json!(command))
            .cloned()
    };
    let profile = wait_for(
        "the probe and the session in the profile",
        &[&agent],
        || {
            let p = server
                .get(&profiles(), Some(NS), "rec.deployment.web.app")
                .ok()?;
            (mkdir(&names(&p)) && session(&p["spec"], &person).is_some()).then_some(p)
        },
    );
    let spec = &profile["spec"];
    let probed = session(spec, &probe).unwrap();
    assert_eq!(probed["type"], "Exec", "{probed}");
    assert_eq!(probed["included"], true, "{probed}");
    assert!(
        probed["reason"].as_str().unwrap().contains("livenessProbe"),
        "{probed}"
    );
    let listed = session(spec, &person).unwrap();
    assert_eq!(listed["included"], false, "{listed}");
    assert!(
        listed["syscalls"]["SCMP_ARCH_X86_64"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s == "statfs"),
        "{listed}"
    );
    assert!(
        !names(&profile).iter().any(|s| s == "statfs"),
        "the person's df is not in the profile: {spec}"
    );
    // The reviewer sees what only the probe made.
    let only: Vec<String> = spec["sessionOnlySyscalls"]["SCMP_ARCH_X86_64"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_owned())
        .collect();
    assert!(mkdir(&only), "{spec}");

    // The node's recording lists both, the probe in its profile.
    let pid = app.pid();
    std::fs::write(format!("/proc/{pid}/root/tmp/stop"), b"").unwrap();
    assert_eq!(app.wait_exited(WAIT), 0, "{:?}", app.logs());
    let recording = agent.wait_for_recording(app.id(), "Exited", WAIT);
    let sessions = recording["sessions"].as_array().unwrap();
    let count = |command: &[&str]| {
        sessions
            .iter()
            .find(|s| s["command"] == json!(command))
            .map(|s| (s["count"].clone(), s["included"].clone()))
    };
    assert_eq!(count(&probe), Some((json!(3), json!(true))), "{recording}");
    assert_eq!(
        count(&person),
        Some((json!(1), json!(false))),
        "{recording}"
    );
    assert_eq!(recording["execSessionsExcluded"], true, "{recording}");

    // The profile as the reviewer exports it, enforced by containerd (as a
    // Localhost profile): the kubelet's probe runs in the container through
    // ExecSync, 20 of 20; the person's df is refused.
    let exported = tempfile::tempdir().unwrap();
    let out = syscensus_tests::syscensus(&[
        "export",
        "--kubeconfig",
        kubeconfig.to_str().unwrap(),
        "--to",
        exported.path().to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{out:?}");
    let path = exported.path().join(NS).join("deployment-web/app.json");
    let oci: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let enforced = cri.run_pod(PodSpec::new("enforced").namespace(NS));
    let service = ["sh", "-c", "echo up; while true; do sleep 0.1; done"];
    let under = |name: &str, profile: &std::path::Path| {
        let container = enforced.run_container(
            &ContainerSpec::new(name, BUSYBOX_IMAGE, &service)
                .seccomp(Seccomp::Localhost(profile.to_path_buf())),
        );
        wait_for("the service up under its profile", &[&agent], || {
            container.logs().stdout.starts_with("up").then_some(())
        });
        container
    };
    let app = under("app", &path);
    for attempt in 1..=20 {
        let (code, out, err) = app.exec_sync_output(&probe, WAIT);
        assert_eq!(
            code, 0,
            "probe {attempt} through ExecSync under the exported profile: {out}{err}\n{oci}"
        );
    }
    // The same profile without what only the sessions made: the probe
    // fails, as it would if the sessions had been left out.
    let mut without = oci.clone();
    for rule in without["syscalls"].as_array_mut().unwrap() {
        if let Some(names) = rule["names"].as_array_mut() {
            names.retain(|n| !only.iter().any(|o| n == o.as_str()));
        }
    }
    let without_path = exported.path().join("without-sessions.json");
    std::fs::write(&without_path, without.to_string()).unwrap();
    let bare = under("bare", &without_path);
    let (code, out, err) = bare.exec_sync_output(&probe, WAIT);
    assert!(
        code != 0,
        "the probe ran without the sessions' syscalls ({only:?}): {out}{err}"
    );
}
