//! The manifests in deploy/: they render with kustomize, validate against
//! the Kubernetes schemas, keep the agent unprivileged, and grant exactly the
//! API calls the agent makes.
//!
//! The last check runs a real agent (real kernel program, real containerd
//! Pods) against the simulated API server of `syscensus_tests::apiserver`
//! through everything it does in a cluster, and compares the requests it made
//! with the ClusterRole.
#![allow(clippy::unwrap_used, reason = "tests")]
#![allow(
    unused_crate_dependencies,
    reason = "an integration test uses some of its package's dependencies"
)]

use std::{
    collections::BTreeSet,
    process::Command,
    time::{Duration, Instant},
};

use serde_json::{Value, json};
use syscensus_api::{ContainerProfile, NodeProfileStatus, ProfileRecording, RefusalReport};
use syscensus_tests::{
    agent::Agent,
    apiserver::{FakeApiServer, Gvr, RequestRecord},
    containers::{BUSYBOX_IMAGE, ContainerSpec, Containerd, PodSpec, Seccomp},
    manifests::{render, render_path},
    require_root, workspace_root,
};

/// deploy/base with the kustomize Component `deploy/components/NAME`, as a
/// user's overlay would use it.
fn render_with_component(name: &str) -> Vec<Value> {
    let overlay = tempfile::tempdir().unwrap();
    // kustomize takes only relative paths to other kustomizations.
    let up = "../".repeat(overlay.path().components().count() - 1);
    let root = workspace_root().display().to_string();
    let root = root.trim_start_matches('/');
    std::fs::write(
        overlay.path().join("kustomization.yaml"),
        format!(
            "resources: [{up}{root}/deploy/base]\ncomponents: [{up}{root}/deploy/components/{name}]\n"
        ),
    )
    .unwrap();
    render_path(overlay.path(), &format!("deploy/components/{name}"))
}

fn find<'a>(docs: &'a [Value], kind: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind} rendered"))
}

/// The components for distributions with other paths, with the CRI socket
/// and the kubelet's root each sets (`None`: /var/lib/kubelet).
const COMPONENTS: [(&str, &str, Option<&str>); 3] = [
    ("k3s", "/run/k3s/containerd/containerd.sock", None),
    ("rke2", "/run/k3s/containerd/containerd.sock", None),
    (
        "microk8s",
        "/var/snap/microk8s/common/run/containerd.sock",
        Some("/var/snap/microk8s/common/var/lib/kubelet"),
    ),
];

/// Every rendering users apply: the base, the overlays, the base with each
/// component.
fn renderings() -> Vec<(String, Vec<Value>)> {
    let mut all: Vec<(String, Vec<Value>)> = [
        "deploy/base",
        "deploy/overlays/crio",
        "deploy/overlays/install-only",
    ]
    .into_iter()
    .map(|dir| (dir.to_owned(), render(dir)))
    .collect();
    for (name, _, _) in COMPONENTS {
        all.push((
            format!("deploy/components/{name}"),
            render_with_component(name),
        ));
    }
    all
}

/// The oldest Kubernetes the manifests are for: `appArmorProfile` in a
/// securityContext is 1.30's.
const OLDEST_KUBERNETES: &str = "1.30.0";

#[test]
fn manifests_render_and_validate() {
    for (dir, docs) in renderings() {
        let dir = dir.as_str();
        let kinds: BTreeSet<&str> = docs.iter().map(|d| d["kind"].as_str().unwrap()).collect();
        for kind in [
            "Namespace",
            "CustomResourceDefinition",
            "ServiceAccount",
            "ClusterRole",
            "ClusterRoleBinding",
            "DaemonSet",
        ] {
            assert!(kinds.contains(kind), "{dir}: no {kind}");
        }
        // kubernetes-validate (PyPI) checks every object against the
        // Kubernetes JSON schemas, CRDs included.
        let rendered = tempfile::NamedTempFile::new().unwrap();
        let yaml: String = docs
            .iter()
            .map(|d| format!("---\n{}", serde_norway::to_string(d).unwrap()))
            .collect();
        std::fs::write(rendered.path(), yaml).unwrap();
        // The newest schemas the validator has, and the oldest release
        // the manifests are for.
        for version in [None, Some(OLDEST_KUBERNETES)] {
            let mut validate = Command::new("python3");
            validate.args(["-m", "kubernetes_validate", "--strict"]);
            if let Some(version) = version {
                validate.args(["--kubernetes-version", version]);
            }
            let validate = validate.arg(rendered.path()).output().unwrap();
            assert!(
                validate.status.success(),
                "{dir} does not validate against Kubernetes {}: {}{}",
                version.unwrap_or("(newest)"),
                String::from_utf8_lossy(&validate.stdout),
                String::from_utf8_lossy(&validate.stderr)
            );
        }
    }
    // Each component sets its distribution's paths, and nothing else.
    let base = render("deploy/base");
    let volumes =
        |docs: &[Value]| find(docs, "DaemonSet")["spec"]["template"]["spec"]["volumes"].clone();
    let volume = |volumes: &Value, name: &str| {
        volumes
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["name"] == name)
            .unwrap()["hostPath"]
            .clone()
    };
    for (name, socket, kubelet) in COMPONENTS {
        let docs = render_with_component(name);
        let with = volumes(&docs);
        assert_eq!(
            volume(&with, "cri"),
            json!({"path": socket, "type": "Socket"}),
            "{name}"
        );
        assert_eq!(
            volume(&with, "seccomp")["path"],
            format!("{}/seccomp", kubelet.unwrap_or("/var/lib/kubelet")),
            "{name}"
        );
        let mut expected = base.clone();
        let mut got = docs.clone();
        for docs in [&mut expected, &mut got] {
            for doc in docs.iter_mut().filter(|d| d["kind"] == "DaemonSet") {
                doc["spec"]["template"]["spec"]["volumes"] = json!(null);
            }
        }
        assert_eq!(expected, got, "{name} changes more than the volumes");
    }
    let crio = render("deploy/overlays/crio");
    let env = &find(&crio, "DaemonSet")["spec"]["template"]["spec"]["containers"][0]["env"];
    let runtime = env
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "SYSCENSUS_RUNTIME")
        .unwrap();
    assert_eq!(runtime["value"], "crun");
}

#[test]
fn the_agent_runs_unprivileged_with_two_capabilities() {
    let docs = render("deploy/base");
    let pod = &find(&docs, "DaemonSet")["spec"]["template"]["spec"];
    assert_ne!(pod["hostPID"], true);
    assert_ne!(pod["hostNetwork"], true);
    let agent = &pod["containers"][0];
    let security = &agent["securityContext"];
    assert_eq!(security["privileged"], false);
    assert_eq!(security["allowPrivilegeEscalation"], false);
    assert_eq!(security["readOnlyRootFilesystem"], true);
    assert_eq!(security["capabilities"]["drop"], json!(["ALL"]));
    assert_eq!(security["capabilities"]["add"], json!(["BPF", "PERFMON"]));
    for probe in ["livenessProbe", "readinessProbe"] {
        assert!(agent[probe]["httpGet"]["path"].is_string(), "{probe}");
    }
    for kind in ["requests", "limits"] {
        assert!(agent["resources"][kind]["memory"].is_string(), "{kind}");
    }
    let env: Vec<&str> = agent["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert!(env.contains(&"NODE_NAME"));
    // Every flag the manifest sets exists: the agent accepts its environment.
    let help = Command::new(syscensus_tests::syscensus_bin())
        .args(["agent", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    for name in env
        .iter()
        .filter(|n| n.starts_with("SYSCENSUS_") && **n != "SYSCENSUS_LOG")
    {
        assert!(help.contains(name), "{name} is not an agent setting");
    }
    // The agent runs under its own profile, which the init container puts
    // where the kubelet finds it (tests/tests/own_profile.rs runs the agent
    // under it).
    assert_eq!(
        security["seccompProfile"],
        json!({"type": "Localhost", "localhostProfile": "syscensus/syscensus-agent.json"})
    );
    let init = &pod["initContainers"][0];
    let args: Vec<&str> = init["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(args[0], "install-agent-profile");
    let kubelet = tempfile::tempdir().unwrap();
    let status = Command::new(syscensus_tests::syscensus_bin())
        .args(["install-agent-profile", "--kubelet-root"])
        .arg(kubelet.path())
        .status()
        .unwrap();
    assert!(status.success());
    assert_eq!(
        std::fs::read(
            kubelet
                .path()
                .join("seccomp/syscensus/syscensus-agent.json")
        )
        .unwrap(),
        std::fs::read(workspace_root().join("agent/profiles/syscensus-agent.json")).unwrap()
    );
    let init_mount = &init["volumeMounts"][0];
    assert_eq!(
        init_mount["mountPath"],
        format!("{}/seccomp", args[args.len() - 1])
    );
    // Host paths: read-only where the agent only reads.
    let mounts = agent["volumeMounts"].as_array().unwrap();
    let cgroup = mounts.iter().find(|m| m["name"] == "cgroup").unwrap();
    assert_eq!(cgroup["readOnly"], true);
}

/// What real nodes need beyond this one: Linux nodes of the image's
/// architectures, AppArmor and SELinux settings for pinning under
/// /sys/fs/bpf and the runtime's socket, the quota some managed clusters
/// ask for system-node-critical Pods, and the image `cargo xtask image`
/// builds.
#[test]
fn the_daemonset_fits_real_nodes() {
    let docs = render("deploy/base");
    let daemonset = find(&docs, "DaemonSet");
    let pod = &daemonset["spec"]["template"]["spec"];
    assert_eq!(pod["nodeSelector"], json!({"kubernetes.io/os": "linux"}));
    let terms = &pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
        ["nodeSelectorTerms"];
    assert_eq!(
        terms,
        &json!([{"matchExpressions": [{"key": "kubernetes.io/arch", "operator": "In", "values": ["amd64", "arm64"]}]}])
    );
    let agent = &pod["containers"][0]["securityContext"];
    assert_eq!(agent["appArmorProfile"], json!({"type": "Unconfined"}));
    for container in [&pod["initContainers"][0], &pod["containers"][0]] {
        assert_eq!(
            container["securityContext"]["seLinuxOptions"],
            json!({"type": "spc_t", "level": "s0"}),
            "{}",
            container["name"]
        );
        assert_eq!(
            container["image"],
            format!("ghcr.io/syscensus/syscensus:{}", env!("CARGO_PKG_VERSION")),
            "the image cargo xtask image builds"
        );
    }
    let class = pod["priorityClassName"].as_str().unwrap();
    let quota = find(&docs, "ResourceQuota");
    assert_eq!(
        quota["metadata"]["namespace"],
        daemonset["metadata"]["namespace"]
    );
    assert_eq!(
        quota["spec"]["scopeSelector"]["matchExpressions"],
        json!([{"scopeName": "PriorityClass", "operator": "In", "values": [class]}])
    );
}

/// (API group, resource, verb) of a request, as RBAC names it.
fn rbac_of(request: &RequestRecord) -> Option<(String, String, String)> {
    let parts: Vec<&str> = request.path.trim_start_matches('/').split('/').collect();
    let (group, rest) = match parts.as_slice() {
        ["api", "v1", rest @ ..] => (String::new(), rest),
        ["apis", group, _version, rest @ ..] => ((*group).to_owned(), rest),
        _ => return None,
    };
    let rest: Vec<&str> = match rest {
        ["namespaces", _ns, more @ ..] if !more.is_empty() => more.to_vec(),
        other => other.to_vec(),
    };
    let (resource, named) = match rest.as_slice() {
        [resource] => ((*resource).to_owned(), false),
        [resource, _name] => ((*resource).to_owned(), true),
        [resource, _name, sub] => (format!("{resource}/{sub}"), true),
        _ => return None,
    };
    let verb = match (request.method.as_str(), named) {
        ("GET", true) => "get",
        ("GET", false) if request.is_watch() => "watch",
        ("GET", false) => "list",
        ("POST", _) => "create",
        ("PUT", _) => "update",
        ("PATCH", _) => "patch",
        ("DELETE", true) => "delete",
        ("DELETE", false) => "deletecollection",
        _ => return None,
    };
    Some((group, resource, verb.to_owned()))
}

#[test]
fn the_cluster_role_grants_exactly_what_the_agent_calls() {
    require_root();
    let docs = render("deploy/base");
    let role = find(&docs, "ClusterRole");
    let mut granted = grants(role);
    // The node's Lease, in the agent's own namespace only.
    let namespaced = find(&docs, "Role");
    assert_eq!(namespaced["metadata"]["namespace"], "syscensus");
    granted.extend(grants(namespaced));
    assert!(
        !granted.iter().any(|(_, r, _)| r == "secrets" || r == "*"),
        "{granted:?}"
    );

    // Everything the agent does in a cluster: Pods of a Deployment and of a
    // CronJob recorded, results written, status reported, an approved
    // profile installed.
    let ns = "shop";
    let server = FakeApiServer::start_with_syscensus(ns);
    for (gvr, object) in [
        (
            Gvr::new("apps", "v1", "replicasets"),
            json!({"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "web-1a", "namespace": ns, "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "uid": "d", "controller": true}]}, "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "app", "image": "x"}]}}}}),
        ),
        (
            Gvr::new("batch", "v1", "jobs"),
            json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "backup-1", "namespace": ns, "ownerReferences": [{"apiVersion": "batch/v1", "kind": "CronJob", "name": "backup", "uid": "c", "controller": true}]}, "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "app", "image": "x"}]}}}}),
        ),
        (
            Gvr::of::<ProfileRecording>(),
            json!({"apiVersion": "syscensus.io/v1alpha1", "kind": "ProfileRecording", "metadata": {"name": "rec", "namespace": ns}, "spec": {"podSelector": {}}}),
        ),
    ] {
        server.create(&gvr, Some(ns), object).unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    server.write_kubeconfig(&kubeconfig).unwrap();
    let containerd = Containerd::start();
    containerd.import_test_images(&[]);
    let cri = containerd.cri();
    let root = dir.path().join("kubelet");
    let agent = Agent::start_with_env(
        &[
            "--cri-socket",
            &containerd.socket().display().to_string(),
            "--kubelet-root",
            &root.display().to_string(),
            "--flush-interval",
            "1",
            "--poll-interval",
            "1",
        ],
        &[
            ("NODE_NAME", "node-a"),
            ("KUBECONFIG", kubeconfig.to_str().unwrap()),
        ],
    );
    agent.wait_watching();
    let run = |name: &str, owner_kind: &str, owner: &str, command: &[&str]| {
        let created = server
            .create(
                &Gvr::new("", "v1", "pods"),
                Some(ns),
                json!({"apiVersion": "v1", "kind": "Pod",
                       "metadata": {"name": name, "namespace": ns, "labels": {"app": name},
                                    "ownerReferences": [{"apiVersion": "v1", "kind": owner_kind, "name": owner, "uid": "o", "controller": true}]},
                       "spec": {"nodeName": "node-a", "containers": [{"name": "app", "image": "busybox"}]}}),
            )
            .unwrap();
        let mut spec = PodSpec::new(name).namespace(ns);
        spec.uid = created["metadata"]["uid"].as_str().unwrap().to_owned();
        let pod = cri.run_pod(spec);
        let container = pod.run_container(&ContainerSpec::new("app", BUSYBOX_IMAGE, command));
        assert_eq!(container.wait_exited(Duration::from_secs(20)), 0);
    };
    run("web-1a-x", "ReplicaSet", "web-1a", &["sh", "-c", "echo hi"]);
    run("backup-1-x", "Job", "backup-1", &["sh", "-c", "echo hi"]);
    let profiles = Gvr::of::<ContainerProfile>();
    let deadline = Instant::now() + Duration::from_secs(30);
    let name = "rec.deployment.web.app";
    while server.get(&profiles, Some(ns), name).is_err()
        || server
            .get(&profiles, Some(ns), "rec.cronjob.backup.app")
            .is_err()
    {
        assert!(Instant::now() < deadline, "no results:\n{}", agent.log());
        std::thread::sleep(Duration::from_millis(100));
    }
    // A second replica that does more: its syscalls are merged in (what
    // the production replica below runs, but mkdir).
    run(
        "web-1a-y",
        "ReplicaSet",
        "web-1a",
        &[
            "sh",
            "-c",
            "until [ -e /tmp ]; do sleep 0.05; done; sleep 0.01; uname; echo hi",
        ],
    );
    while !server.get(&profiles, Some(ns), name).unwrap()["spec"]["syscalls"]["SCMP_ARCH_X86_64"]
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s == "uname")
    {
        assert!(
            Instant::now() < deadline,
            "not merged:
{}",
            agent.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // A reviewer approves it, with an identity and a kubeconfig context of
    // their own (their requests are not the agent's).
    let reviewer = dir.path().join("reviewer-kubeconfig");
    std::fs::write(
        &reviewer,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: {}\n- name: elsewhere\n  cluster:\n    server: http://127.0.0.1:1\ncontexts:\n- name: elsewhere\n  context: {{cluster: elsewhere, user: reviewer}}\n- name: review\n  context: {{cluster: fake, user: reviewer}}\ncurrent-context: elsewhere\nusers:\n- name: reviewer\n  user: {{token: reviewer}}\n",
            server.url()
        ),
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let approve = |args: &[&str]| {
        let output = Command::new(syscensus_tests::syscensus_bin())
            .arg("approve")
            .args(args)
            .args(["-n", ns, "--context", "review", "--kubeconfig"])
            .arg(&reviewer)
            .output()
            .unwrap();
        assert!(output.status.success(), "{output:?}");
    };
    approve(&[name]);
    let status = |server: &FakeApiServer| {
        server
            .get(&Gvr::of::<NodeProfileStatus>(), None, "node-a")
            .map(|s| s["spec"]["installedCount"].clone())
            .unwrap_or_default()
    };
    while status(&server) != 1 {
        assert!(Instant::now() < deadline, "not installed:\n{}", agent.log());
        std::thread::sleep(Duration::from_millis(100));
    }
    let installed = root.join("seccomp/syscensus/shop/deployment-web/app.json");
    // Another replica does more after the approval: the agent marks the
    // profile changed, and the node keeps what was approved.
    let approved_bytes = std::fs::read(&installed).unwrap();
    run(
        "web-1a-z",
        "ReplicaSet",
        "web-1a",
        &["sh", "-c", "uname; mkdir /tmp/d; echo hi"],
    );
    while server.get(&profiles, Some(ns), name).unwrap()["metadata"]["labels"]["syscensus.io/approval"]
        != "changed"
    {
        assert!(
            Instant::now() < deadline,
            "not marked changed:\n{}",
            agent.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(std::fs::read(&installed).unwrap(), approved_bytes);
    // No recording any more (a container a recording records has its
    // refusals in the state directory only).
    server
        .delete(&Gvr::of::<ProfileRecording>(), Some(ns), "rec")
        .unwrap();
    // A production replica under the installed profile makes a syscall
    // outside it, twice: the agent reads the LocalhostProfile, creates its
    // RefusalReport, then adds the second refusal to it (and posts
    // Events).
    let localhost = "syscensus/shop/deployment-web/app.json";
    let created = server
        .create(
            &Gvr::new("", "v1", "pods"),
            Some(ns),
            json!({"apiVersion": "v1", "kind": "Pod",
                   "metadata": {"name": "web-1a-p", "namespace": ns, "labels": {"app": "web"}},
                   "spec": {"nodeName": "node-a", "containers": [{"name": "app", "image": "busybox",
                            "securityContext": {"seccompProfile": {"type": "Localhost", "localhostProfile": localhost}}}]}}),
        )
        .unwrap();
    let mut spec = PodSpec::new("web-1a-p").namespace(ns);
    spec.uid = created["metadata"]["uid"].as_str().unwrap().to_owned();
    let production = cri.run_pod(spec);
    let app = production.run_container(
        &ContainerSpec::new(
            "app",
            BUSYBOX_IMAGE,
            &[
                "sh",
                "-c",
                "until [ -e /tmp/go ]; do sleep 0.05; done; mkdir /tmp/d; \
                 until [ -e /tmp/again ]; do sleep 0.05; done; mkdir /tmp/d; sleep 600",
            ],
        )
        .seccomp(Seccomp::Localhost(installed.clone())),
    );
    server
        .apply_status(
            &Gvr::new("", "v1", "pods"),
            Some(ns),
            "web-1a-p",
            json!({"phase": "Running", "containerStatuses": [{"name": "app", "containerID": format!("containerd://{}", app.id()), "image": "busybox", "imageID": "", "ready": true, "restartCount": 0, "state": {"running": {}}}]}),
        )
        .unwrap();
    while !agent
        .log()
        .lines()
        .any(|l| l.contains("watching what its installed profile refuses") && l.contains(app.id()))
    {
        assert!(Instant::now() < deadline, "not watched:\n{}", agent.log());
        std::thread::sleep(Duration::from_millis(100));
    }
    let refused = |server: &FakeApiServer| {
        server
            .get(&Gvr::of::<RefusalReport>(), Some(ns), "deployment-web.app")
            .map(|p| p["spec"]["refused"].clone())
            .unwrap_or_default()
    };
    let mkdirs = |server: &FakeApiServer| {
        refused(server).as_array().map_or(0, |r| {
            r.iter()
                .filter(|s| s["syscall"] == "mkdir" || s["syscall"] == "mkdirat")
                .map(|s| s["count"].as_i64().unwrap_or(0))
                .sum::<i64>()
        })
    };
    for (file, count) in [("go", 1), ("again", 2)] {
        std::fs::write(format!("/proc/{}/root/tmp/{file}", app.pid()), b"").unwrap();
        while mkdirs(&server) < count {
            assert!(
                Instant::now() < deadline,
                "not {count} refusals in the RefusalReport: {}\n{}",
                refused(&server),
                agent.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    drop(app);
    production.remove();
    server
        .delete(&Gvr::new("", "v1", "pods"), Some(ns), "web-1a-p")
        .unwrap();
    // Revoked: no Pod uses it, the Deployment's template is read, and the
    // file goes.
    approve(&["--revoke", name]);
    while installed.exists() {
        assert!(Instant::now() < deadline, "not removed:\n{}", agent.log());
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(agent);

    let used: BTreeSet<(String, String, String)> = server
        .requests()
        .iter()
        .filter(|r| r.authorization.as_deref() != Some("Bearer reviewer"))
        .filter_map(rbac_of)
        .collect();
    // Read only before a profile of such a workload is removed; the
    // Deployment's read is the one exercised here.
    for kind in ["statefulsets", "daemonsets"] {
        granted.remove(&("apps".to_owned(), kind.to_owned(), "get".to_owned()));
    }
    granted.remove(&("batch".to_owned(), "cronjobs".to_owned(), "get".to_owned()));
    let missing: Vec<_> = used.difference(&granted).collect();
    assert!(
        missing.is_empty(),
        "the agent called what the ClusterRole does not grant: {missing:?}"
    );
    let unused: Vec<_> = granted.difference(&used).collect();
    assert!(
        unused.is_empty(),
        "the ClusterRole grants what the agent never called: {unused:?}"
    );
}

/// The (API group, resource, verb) triples a ClusterRole grants.
fn grants(role: &Value) -> BTreeSet<(String, String, String)> {
    let mut granted = BTreeSet::new();
    for rule in role["rules"].as_array().unwrap() {
        for group in rule["apiGroups"].as_array().unwrap() {
            for resource in rule["resources"].as_array().unwrap() {
                for verb in rule["verbs"].as_array().unwrap() {
                    granted.insert((
                        group.as_str().unwrap().to_owned(),
                        resource.as_str().unwrap().to_owned(),
                        verb.as_str().unwrap().to_owned(),
                    ));
                }
            }
        }
    }
    granted
}

/// The install-only overlay records nothing: no kernel program, so no BPF
/// or PERFMON capability, no bpffs, cgroup, runtime socket or state
/// directory, no recording CRDs; and its ClusterRole grants exactly what
/// `agent --install-only` calls while it installs a profile, keeps it for a
/// Pod that uses it, and removes it. The agent loads nothing into the
/// kernel and writes only a temporary kubelet directory.
#[test]
fn the_install_only_agent_records_nothing_and_is_granted_exactly_what_it_calls() {
    let docs = render("deploy/overlays/install-only");
    let daemonset = find(&docs, "DaemonSet");
    let pod = &daemonset["spec"]["template"]["spec"];
    let agent = &pod["containers"][0];
    assert_eq!(agent["args"], json!(["agent", "--install-only"]));
    assert_eq!(
        agent["securityContext"]["capabilities"],
        json!({"drop": ["ALL"]})
    );
    let volumes: BTreeSet<&str> = pod["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    assert_eq!(volumes, BTreeSet::from(["seccomp"]));
    let crds: BTreeSet<&str> = docs
        .iter()
        .filter(|d| d["kind"] == "CustomResourceDefinition")
        .map(|d| d["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        crds,
        BTreeSet::from([
            "localhostprofiles.syscensus.io",
            "nodeprofilestatuses.syscensus.io"
        ])
    );
    let mut granted = grants(find(&docs, "ClusterRole"));

    let ns = "shop";
    let server = FakeApiServer::start_with_syscensus(ns);
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    server.write_kubeconfig(&kubeconfig).unwrap();
    let root = dir.path().join("kubelet");
    let agent = Agent::start_install_only(
        &[
            "--kubelet-root",
            root.to_str().unwrap(),
            "--kubeconfig",
            kubeconfig.to_str().unwrap(),
        ],
        &[("NODE_NAME", "node-a")],
    );
    let profile = r#"{"defaultAction":"SCMP_ACT_ERRNO","architectures":["SCMP_ARCH_X86_64"],"syscalls":[{"names":["read"],"action":"SCMP_ACT_ALLOW"}]}"#;
    let sha256 = {
        let out = Command::new("sh")
            .args(["-c", "printf %s \"$0\" | sha256sum", profile])
            .output()
            .unwrap();
        String::from_utf8(out.stdout).unwrap()[..64].to_owned()
    };
    let localhost = "syscensus/shop/deployment-web/app.json";
    server
        .create(
            &Gvr::new("syscensus.io", "v1alpha1", "localhostprofiles"),
            Some(ns),
            json!({"apiVersion": "syscensus.io/v1alpha1", "kind": "LocalhostProfile",
                   "metadata": {"name": "deployment-web.app", "namespace": ns},
                   "spec": {"workload": {"kind": "Deployment", "name": "web"}, "container": "app",
                            "localhostProfile": localhost, "sha256": sha256, "profile": profile}}),
        )
        .unwrap();
    let installed = root.join("seccomp").join(localhost);
    let deadline = Instant::now() + Duration::from_secs(30);
    let wait = |what: &str, check: &dyn Fn() -> bool| {
        while !check() {
            assert!(Instant::now() < deadline, "{what}:\n{}", agent.log());
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    wait("not installed", &|| {
        std::fs::read_to_string(&installed).ok().as_deref() == Some(profile)
    });
    let report = |server: &FakeApiServer| {
        server
            .get(&Gvr::of::<NodeProfileStatus>(), None, "node-a")
            .map(|s| s["spec"]["installed"].clone())
            .unwrap_or_default()
    };
    wait("not reported", &|| {
        report(&server)[0]["sha256"] == json!(sha256)
    });
    // A Pod on the node uses it: deleting the object keeps the file.
    let pods = Gvr::new("", "v1", "pods");
    server
        .create(
            &pods,
            Some(ns),
            json!({"apiVersion": "v1", "kind": "Pod",
                   "metadata": {"name": "web-1", "namespace": ns},
                   "spec": {"nodeName": "node-a", "containers": [{"name": "app", "image": "x",
                       "securityContext": {"seccompProfile": {"type": "Localhost", "localhostProfile": localhost}}}]}}),
        )
        .unwrap();
    server
        .delete(
            &Gvr::new("syscensus.io", "v1alpha1", "localhostprofiles"),
            Some(ns),
            "deployment-web.app",
        )
        .unwrap();
    wait("not kept for the Pod", &|| {
        report(&server)[0]["keptFor"]
            .as_str()
            .is_some_and(|k| k.contains("shop/web-1"))
    });
    assert!(installed.exists());
    server.delete(&pods, Some(ns), "web-1").unwrap();
    wait("not removed", &|| !installed.exists());
    drop(agent);

    let used: BTreeSet<(String, String, String)> =
        server.requests().iter().filter_map(rbac_of).collect();
    let missing: Vec<_> = used.difference(&granted).collect();
    assert!(
        missing.is_empty(),
        "the installing agent called what its ClusterRole does not grant: {missing:?}"
    );
    // Read only before a profile of such a workload is removed; the
    // Deployment's read is the one exercised here.
    for kind in ["statefulsets", "daemonsets", "replicasets"] {
        granted.remove(&("apps".to_owned(), kind.to_owned(), "get".to_owned()));
    }
    for kind in ["cronjobs", "jobs"] {
        granted.remove(&("batch".to_owned(), kind.to_owned(), "get".to_owned()));
    }
    let unused: Vec<_> = granted.difference(&used).collect();
    assert!(
        unused.is_empty(),
        "the installing ClusterRole grants what the agent never called: {unused:?}"
    );
}
