//! Production: Pods running under a Localhost profile syscensus installed,
//! with no ProfileRecording. The agent (Kubernetes mode, test API server,
//! real containerd through CRI, real kernel) watches those containers for
//! what the installed profile refuses them, without attaching `sys_enter`,
//! and reports a refused syscall in the LocalhostProfile's RefusalReport
//! and as an Event on the Pod within 2 s, leaving the LocalhostProfile
//! (which every node watches) untouched; nothing for a container that stays inside
//! its profile, nor for another container on the node under a profile
//! syscensus did not install.
#![allow(clippy::unwrap_used, reason = "tests")]
#![allow(
    unused_crate_dependencies,
    reason = "an integration test uses some of its package's dependencies"
)]

use std::{
    path::Path,
    time::{Duration, Instant},
};

use serde_json::{Value, json};
use syscensus_api::{LocalhostProfile, RefusalReport};
use syscensus_tests::{
    agent::Agent,
    apiserver::{FakeApiServer, Gvr},
    containers::{BUSYBOX_IMAGE, ContainerSpec, Containerd, CriContainer, Pod, PodSpec, Seccomp},
    require_root, syscensus,
};

const NS: &str = "shop";
const NODE: &str = "node-a";
const INSTALLED: &str = "syscensus/shop/deployment-web/app.json";
/// How long a refusal may take to be reported.
const REPORTED_WITHIN: Duration = Duration::from_secs(2);
/// How long the agent may take to install, watch or unwatch.
const BOUND: Duration = Duration::from_secs(20);

/// The workload: waits for /tmp/go (written by the test once the agent
/// watches), then makes one mkdir, which the profile refuses.
const SCRIPT: &str =
    "until [ -e /tmp/go ]; do sleep 0.05; done; mkdir /tmp/a || echo refused; echo done; sleep 600";
/// A workload that stays inside its profile.
const CALM: &str = "echo calm; sleep 600";

fn pods() -> Gvr {
    Gvr::new("", "v1", "pods")
}

fn events() -> Gvr {
    Gvr::new("events.k8s.io", "v1", "events")
}

/// A profile that allows everything but mkdir (EPERM).
fn no_mkdir() -> String {
    json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [
            {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}
        ]
    })
    .to_string()
}

fn sha256(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The tracepoints the agent's process holds links to (a link's
/// `tp_name` in /proc/<pid>/fdinfo).
fn attached_by(agent: &Agent) -> Vec<String> {
    let dir = format!("/proc/{}/fdinfo", agent.pid());
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read {dir}: {e}"))
        .filter_map(|entry| std::fs::read_to_string(entry.ok()?.path()).ok())
        .filter_map(|info| {
            info.lines()
                .find_map(|l| l.strip_prefix("tp_name:"))
                .map(|name| name.trim().to_owned())
        })
        .collect();
    names.sort();
    names
}

/// Whether the agent holds a link to `tracepoint`; its exec hook, which it
/// always holds, proves the links are where this looks.
fn attached(agent: &Agent, tracepoint: &str) -> bool {
    let links = attached_by(agent);
    assert!(
        links.iter().any(|l| l == "sched_process_exec"),
        "the agent holds no link to sched_process_exec: {links:?}"
    );
    links.iter().any(|l| l == tracepoint)
}

fn wait_for<T>(
    agent: &Agent,
    bound: Duration,
    what: &str,
    mut check: impl FnMut() -> Option<T>,
) -> T {
    let deadline = Instant::now() + bound;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "not within {bound:?}: {what}\n{}",
            agent.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Posts Pod `name` on this node, its container `app` under
/// `localhost_profile`; returns its UID.
fn post_pod(server: &FakeApiServer, name: &str, localhost_profile: &str) -> String {
    let created = server
        .create(
            &pods(),
            Some(NS),
            json!({
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": name, "namespace": NS, "labels": {"app": "web"}},
                "spec": {
                    "nodeName": NODE,
                    "containers": [{
                        "name": "app", "image": "busybox",
                        "securityContext": {"seccompProfile": {"type": "Localhost", "localhostProfile": localhost_profile}},
                    }],
                },
            }),
        )
        .unwrap();
    created["metadata"]["uid"].as_str().unwrap().to_owned()
}

/// The Pod's status, as the kubelet reports it: `app` running as `id`.
fn report_running(server: &FakeApiServer, name: &str, id: &str) {
    server
        .apply_status(
            &pods(),
            Some(NS),
            name,
            json!({"phase": "Running", "containerStatuses": [{
                "name": "app", "containerID": format!("containerd://{id}"), "image": "busybox",
                "imageID": "", "ready": true, "restartCount": 0, "state": {"running": {}}
            }]}),
        )
        .unwrap();
}

/// The SyscallRefused Events about `kind` `name`.
fn refused_events(server: &FakeApiServer, kind: &str, name: &str) -> Vec<Value> {
    server
        .list(&events(), Some(NS))
        .unwrap()
        .into_iter()
        .filter(|e| e["reason"] == "SyscallRefused")
        .filter(|e| e["regarding"]["kind"] == kind && e["regarding"]["name"] == name)
        .collect()
}

/// The LocalhostProfile.
fn localhost_profile(server: &FakeApiServer) -> Value {
    server
        .get(
            &Gvr::of::<LocalhostProfile>(),
            Some(NS),
            "deployment-web.app",
        )
        .unwrap()
}

/// The LocalhostProfile's RefusalReport, if there is one.
fn refusal_report(server: &FakeApiServer) -> Option<Value> {
    server
        .get(&Gvr::of::<RefusalReport>(), Some(NS), "deployment-web.app")
        .ok()
}

/// The RefusalReport's `spec.refused`.
fn report_refused(server: &FakeApiServer) -> Vec<Value> {
    refusal_report(server)
        .and_then(|r| r["spec"]["refused"].as_array().cloned())
        .unwrap_or_default()
}

/// Runs `script` in container `app` of `pod` under the profile `file`.
fn run<'p>(pod: &'p Pod<'p>, file: &Path, script: &str) -> CriContainer<'p> {
    pod.run_container(
        &ContainerSpec::new("app", BUSYBOX_IMAGE, &["sh", "-c", script])
            .seccomp(Seccomp::Localhost(file.to_path_buf())),
    )
}

/// Lets the workload of `container` go on (/tmp/go in its root).
fn go(container: &CriContainer<'_>) {
    let path = format!("/proc/{}/root/tmp/go", container.pid());
    std::fs::write(&path, b"").unwrap_or_else(|e| panic!("cannot write {path}: {e}"));
}

#[test]
fn an_installed_profile_refusing_a_production_pod_is_reported_in_its_report_and_an_event() {
    require_root();
    let server = FakeApiServer::start_with_syscensus(NS);
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    server.write_kubeconfig(&kubeconfig).unwrap();
    let kubelet_root = dir.path().join("kubelet");
    // The reviewed profile, as export and apply bring it: installed by the
    // agent, and no ProfileRecording anywhere.
    let profile = no_mkdir();
    server
        .create(
            &Gvr::of::<LocalhostProfile>(),
            Some(NS),
            json!({
                "apiVersion": "syscensus.io/v1alpha1", "kind": "LocalhostProfile",
                "metadata": {"name": "deployment-web.app", "namespace": NS},
                "spec": {
                    "workload": {"kind": "Deployment", "name": "web"},
                    "container": "app",
                    "localhostProfile": INSTALLED,
                    "sha256": sha256(profile.as_bytes()),
                    "profile": profile,
                }
            }),
        )
        .unwrap();
    let containerd = Containerd::start();
    containerd.import_test_images(&[]);
    let socket = containerd.socket().display().to_string();
    let root = kubelet_root.display().to_string();
    let agent = Agent::start_with_env(
        &[
            "--cri-socket",
            &socket,
            "--kubelet-root",
            &root,
            "--flush-interval",
            "1",
            "--poll-interval",
            "1",
        ],
        &[
            ("NODE_NAME", NODE),
            ("KUBECONFIG", kubeconfig.to_str().unwrap()),
        ],
    );
    let installed = kubelet_root.join("seccomp").join(INSTALLED);
    wait_for(&agent, BOUND, "the profile to be installed", || {
        installed.exists().then_some(())
    });
    assert!(
        !attached(&agent, "sys_enter"),
        "sys_enter attached while idle"
    );
    assert!(
        !attached(&agent, "sys_exit"),
        "sys_exit attached while nothing is watched"
    );

    // Three Pods on the node, as a kubelet runs them: web-a under the
    // installed profile makes one mkdir once told; web-b under it stays
    // inside; other-x, under a profile of its own that refuses mkdir too,
    // makes the same mkdir.
    let own = dir.path().join("other-no-mkdir.json");
    std::fs::write(&own, no_mkdir()).unwrap();
    let cri = containerd.cri();
    let start = |name: &str, localhost_profile: &str, file: &Path, script: &str| {
        let uid = post_pod(&server, name, localhost_profile);
        let mut spec = PodSpec::new(name).namespace(NS);
        spec.uid = uid;
        let pod = cri.run_pod(spec);
        (pod, file.to_path_buf(), script.to_owned(), name.to_owned())
    };
    let (web_a, file_a, script_a, name_a) = start("web-a", INSTALLED, &installed, SCRIPT);
    let (web_b, file_b, script_b, name_b) = start("web-b", INSTALLED, &installed, CALM);
    let (other, file_o, script_o, name_o) = start("other-x", "other/no-mkdir.json", &own, SCRIPT);
    let app_a = run(&web_a, &file_a, &script_a);
    let app_b = run(&web_b, &file_b, &script_b);
    let app_o = run(&other, &file_o, &script_o);
    report_running(&server, &name_a, app_a.id());
    report_running(&server, &name_b, app_b.id());
    report_running(&server, &name_o, app_o.id());

    // Watched, from the Pods' specs and statuses: the two under the
    // installed profile, not the other one.
    let watching = |id: &str| {
        agent
            .log()
            .lines()
            .any(|l| l.contains("watching what its installed profile refuses") && l.contains(id))
    };
    wait_for(&agent, BOUND, "the agent to watch web-a and web-b", || {
        (watching(app_a.id()) && watching(app_b.id())).then_some(())
    });
    assert!(
        attached(&agent, "sys_exit"),
        "sys_exit not attached while watching"
    );
    assert!(
        !attached(&agent, "sys_enter"),
        "sys_enter attached without a recording"
    );

    // One refused mkdir each in web-a and other-x.
    let profile_before = localhost_profile(&server);
    assert!(refusal_report(&server).is_none());
    go(&app_a);
    go(&app_o);
    let done = wait_for(&agent, BOUND, "web-a's mkdir", || {
        app_a.logs().stdout.contains("done\n").then(Instant::now)
    });
    assert!(
        app_a.logs().stdout.contains("refused\n"),
        "mkdir was not refused"
    );
    wait_for(&agent, BOUND, "other-x's mkdir", || {
        app_o
            .logs()
            .stdout
            .contains("refused\ndone\n")
            .then_some(())
    });
    let refused = wait_for(
        &agent,
        REPORTED_WITHIN,
        "the refusal in the RefusalReport and an Event on the Pod",
        || {
            let refused = report_refused(&server);
            (!refused.is_empty() && !refused_events(&server, "Pod", "web-a").is_empty())
                .then_some(refused)
        },
    );
    assert!(done.elapsed() < REPORTED_WITHIN, "reported late");
    assert_eq!(refused.len(), 1, "{refused:?}");
    let mkdir = &refused[0];
    assert!(
        matches!(mkdir["syscall"].as_str(), Some("mkdir" | "mkdirat")),
        "{mkdir}"
    );
    assert_eq!(mkdir["architecture"], "SCMP_ARCH_X86_64");
    assert_eq!(mkdir["count"], 1, "{mkdir}");
    assert_eq!(mkdir["how"], "errno");
    assert_eq!(
        mkdir["reportedBy"],
        json!([{"node": NODE, "pod": "web-a", "container": "app"}])
    );
    let event = &refused_events(&server, "Pod", "web-a")[0];
    assert_eq!(event["type"], "Warning");
    assert_eq!(event["regarding"]["apiVersion"], "v1");
    assert!(
        event["note"].as_str().unwrap().contains(INSTALLED),
        "{event}"
    );
    // And on the LocalhostProfile (within the same bound).
    wait_for(
        &agent,
        REPORTED_WITHIN,
        "an Event on the LocalhostProfile",
        || {
            (!refused_events(&server, "LocalhostProfile", "deployment-web.app").is_empty())
                .then_some(())
        },
    );

    // `syscensus denials` reads it from the cluster.
    let output = syscensus(&[
        "denials",
        "--kubeconfig",
        kubeconfig.to_str().unwrap(),
        "-n",
        NS,
        "-o",
        "json",
    ]);
    assert!(output.status.success(), "syscensus denials: {output:?}");
    let listed: Vec<Value> = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["name"], "deployment-web.app");
    assert_eq!(listed[0]["localhostProfile"], INSTALLED);
    assert_eq!(listed[0]["refused"][0]["syscall"], mkdir["syscall"]);

    // Nothing for the container inside its profile (watched, its report
    // empty), nor for the other one (not watched: its mkdir, done before,
    // is counted nowhere).
    let state_dir = agent.state_dir().display().to_string();
    let output = syscensus(&["denials", "--state-dir", &state_dir, "-o", "json"]);
    assert!(output.status.success(), "syscensus denials: {output:?}");
    let reports: Vec<Value> = serde_json::from_slice(&output.stdout).unwrap();
    let report = |id: &str| reports.iter().find(|r| r["containerId"] == id);
    assert_eq!(report(app_b.id()).unwrap()["syscalls"], json!([]));
    assert_eq!(report(app_a.id()).unwrap()["workload"]["name"], "web");
    assert!(report(app_o.id()).is_none(), "{reports:?}");
    assert_eq!(report_refused(&server), refused);
    // The report is owned by the LocalhostProfile (deleted with it), and
    // the LocalhostProfile, which every node's agent watches, did not
    // change: no node was sent anything for this refusal.
    let made = refusal_report(&server).unwrap();
    assert_eq!(made["spec"]["localhostProfile"], INSTALLED);
    assert_eq!(
        made["metadata"]["ownerReferences"],
        json!([{"apiVersion": "syscensus.io/v1alpha1", "kind": "LocalhostProfile",
                "name": "deployment-web.app", "uid": profile_before["metadata"]["uid"]}])
    );
    assert_eq!(
        localhost_profile(&server)["metadata"]["resourceVersion"],
        profile_before["metadata"]["resourceVersion"],
        "the refusal was written into the LocalhostProfile"
    );
    assert!(refused_events(&server, "Pod", "web-b").is_empty());
    assert!(refused_events(&server, "Pod", "other-x").is_empty());
    assert!(
        !watching(app_o.id()),
        "a profile syscensus did not install is watched"
    );
    assert!(
        !attached(&agent, "sys_enter"),
        "sys_enter attached without a recording"
    );

    // The Pods go: the watch's hooks with them.
    drop(app_a);
    drop(app_b);
    drop(app_o);
    web_a.remove();
    web_b.remove();
    other.remove();
    wait_for(&agent, BOUND, "sys_exit to be detached", || {
        (!attached(&agent, "sys_exit")).then_some(())
    });
    assert!(!attached(&agent, "sys_enter"));
    let log = agent.stop();
    assert!(
        log.contains("its installed profile refused a syscall"),
        "{log}"
    );
}
