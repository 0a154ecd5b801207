//! The loop from staging to production through git, with two clusters (two
//! simulated API servers): the ContainerProfiles of "staging" are exported
//! to a review branch of a git repository and pushed with git; the merged
//! export is rendered with the real `kubectl kustomize` and its objects are
//! created in "production", where two install-only agents (one per node,
//! each with its own kubelet directory) install the profiles with the
//! exported bytes and report them; `syscensus apply` refuses until both
//! nodes have them, then succeeds.
//!
//! The agents of the first test only install: they load no kernel program
//! and touch no cgroup, runtime or bpffs, so it needs no root. The second
//! records in staging with the real agent and containerd, and enforces in
//! production with containerd.
#![allow(clippy::unwrap_used, reason = "tests")]
#![allow(
    unused_crate_dependencies,
    reason = "an integration test uses some of its package's dependencies"
)]

use std::{
    path::{Path, PathBuf},
    process::{Command, Output},
    time::{Duration, Instant},
};

use serde::Deserialize as _;
use serde_json::{Value, json};
use syscensus_api::{ContainerProfile, LocalhostProfile, NodeProfileStatus};
use syscensus_tests::{
    agent::Agent,
    apiserver::{FakeApiServer, Gvr},
    containers::{BUSYBOX_IMAGE, ContainerSpec, Containerd, PodSpec, Seccomp},
    syscensus_bin,
};

const NS: &str = "shop";

fn deployments() -> Gvr {
    Gvr::new("apps", "v1", "deployments")
}

/// The Deployment as its manifest in git says, and as it runs.
fn deployment() -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": NS},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "app", "image": "registry.example/web:1"}]}
            }
        }
    })
}

fn syscensus(args: &[&str]) -> Output {
    Command::new(syscensus_bin()).args(args).output().unwrap()
}

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "git {args:?}: {out:?}");
    String::from_utf8(out.stdout).unwrap()
}

fn kubeconfig(server: &FakeApiServer, path: PathBuf) -> PathBuf {
    server.write_kubeconfig(&path).unwrap();
    path
}

#[test]
fn staging_to_git_review_to_production() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();

    // Staging: the agents recorded the Deployment's container.
    let staging = FakeApiServer::start_with_syscensus(NS);
    staging
        .create(&deployments(), Some(NS), deployment())
        .unwrap();
    staging
        .create(
            &Gvr::of::<ContainerProfile>(),
            Some(NS),
            json!({
                "apiVersion": "syscensus.io/v1alpha1", "kind": "ContainerProfile",
                "metadata": {"name": "rec.deployment.web.app", "namespace": NS,
                             "labels": {"syscensus.io/recording": "rec"}},
                "spec": {
                    "recording": "rec",
                    "workload": {"kind": "Deployment", "name": "web"},
                    "container": "app",
                    "syscalls": {"SCMP_ARCH_X86_64": ["accept4", "epoll_wait", "read", "write"]},
                    "syscallCount": 4,
                    "runtimeBaseSet": {"name": "runc-1.1", "syscalls": ["capset", "execve"]},
                    "firstSeen": "2026-11-27T00:00:00Z",
                    "lastSeen": "2026-11-27T00:00:00Z"
                }
            }),
        )
        .unwrap();
    let staging_config = kubeconfig(&staging, root.join("staging"));

    // Git: a shared repository, and an operator's clone with the manifests.
    let remote = root.join("remote.git");
    git(
        root,
        &["init", "--quiet", "--bare", remote.to_str().unwrap()],
    );
    let repo = root.join("ops");
    git(root, &["clone", "--quiet", remote.to_str().unwrap(), "ops"]);
    for (key, value) in [("user.name", "Operator"), ("user.email", "op@example.com")] {
        git(&repo, &["config", key, value]);
    }
    std::fs::create_dir_all(repo.join("base")).unwrap();
    std::fs::write(
        repo.join("base/web.yaml"),
        serde_norway::to_string(&deployment()).unwrap(),
    )
    .unwrap();
    std::fs::write(
        repo.join("base/kustomization.yaml"),
        "resources: [web.yaml]\n",
    )
    .unwrap();
    std::fs::create_dir_all(repo.join("prod")).unwrap();
    std::fs::write(
        repo.join("prod/kustomization.yaml"),
        "resources: [../base]\ncomponents: [../seccomp]\n",
    )
    .unwrap();
    git(&repo, &["add", "."]);
    git(&repo, &["commit", "--quiet", "-m", "workloads"]);
    git(&repo, &["push", "--quiet", "origin", "HEAD"]);
    let main = git(&repo, &["rev-parse", "--abbrev-ref", "HEAD"])
        .trim()
        .to_owned();

    // Exported from staging onto a review branch, pushed with git.
    let seccomp = repo.join("seccomp");
    let out = syscensus(&[
        "export",
        "--kubeconfig",
        staging_config.to_str().unwrap(),
        "--to",
        seccomp.to_str().unwrap(),
        "--git",
        "--branch",
        "seccomp-review",
        "--push",
        "origin",
        "-o",
        "json",
    ]);
    assert!(out.status.success(), "{out:?}");
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["schema"], "syscensus.io/export/v1");
    assert_eq!(report["pushed"]["branch"], "seccomp-review");
    let commit = report["commit"]["id"].as_str().unwrap().to_owned();
    // HEAD is where it was; the remote has the review branch, by the operator.
    assert_eq!(
        git(&repo, &["rev-parse", "--abbrev-ref", "HEAD"]).trim(),
        main
    );
    let pushed = git(&remote, &["log", "-1", "--format=%H %an", "seccomp-review"]);
    assert_eq!(pushed.trim(), format!("{commit} Operator"));

    // The work tree is left as it was: the export is on the review branch
    // only.
    assert_eq!(git(&repo, &["status", "--porcelain"]), "");
    assert_eq!(std::fs::read_dir(&seccomp).unwrap().count(), 0);

    // Reviewed and merged; the operator's clone pulls it.
    git(&remote, &["branch", "-f", &main, "seccomp-review"]);
    git(&repo, &["pull", "--quiet", "--ff-only", "origin", &main]);
    let exported = std::fs::read(seccomp.join("shop/deployment-web/app.json")).unwrap();

    // Production: the install-only agents of two nodes, and the rendered
    // overlay's objects created (as kubectl apply -k or a GitOps
    // controller would).
    let production = FakeApiServer::start_with_syscensus(NS);
    for node in ["node-a", "node-b"] {
        production
            .create(
                &Gvr::new("", "v1", "nodes"),
                None,
                json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": node}}),
            )
            .unwrap();
    }
    production
        .create(&deployments(), Some(NS), deployment())
        .unwrap();
    let production_config = kubeconfig(&production, root.join("production"));
    let rendered = Command::new("kubectl")
        .args(["kustomize", repo.join("prod").to_str().unwrap()])
        .output()
        .unwrap();
    assert!(rendered.status.success(), "{rendered:?}");
    let objects: Vec<Value> = serde_norway::Deserializer::from_slice(&rendered.stdout)
        .map(|d| Value::deserialize(d).unwrap())
        .collect();
    let localhost_profiles: Vec<&Value> = objects
        .iter()
        .filter(|o| o["kind"] == "LocalhostProfile")
        .collect();
    assert_eq!(localhost_profiles.len(), 1, "{objects:?}");
    for object in &localhost_profiles {
        production
            .create(&Gvr::of::<LocalhostProfile>(), Some(NS), (*object).clone())
            .unwrap();
    }

    // Not installed anywhere yet: apply refuses and patches nothing.
    let apply = |extra: &[&str]| {
        let mut args = vec![
            "apply",
            seccomp.to_str().unwrap(),
            "--kubeconfig",
            production_config.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        syscensus(&args)
    };
    let refused = apply(&[]);
    assert_eq!(refused.status.code(), Some(75), "{refused:?}");

    let kubelets = [root.join("kubelet-a"), root.join("kubelet-b")];
    let agents: Vec<Agent> = ["node-a", "node-b"]
        .iter()
        .zip(&kubelets)
        .map(|(node, kubelet)| {
            Agent::start_install_only(
                &[
                    "--kubelet-root",
                    kubelet.to_str().unwrap(),
                    "--kubeconfig",
                    production_config.to_str().unwrap(),
                ],
                &[("NODE_NAME", node)],
            )
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(30);
    for (kubelet, agent) in kubelets.iter().zip(&agents) {
        let path = kubelet.join("seccomp/syscensus/shop/deployment-web/app.json");
        while std::fs::read(&path).ok().as_deref() != Some(exported.as_slice()) {
            assert!(
                Instant::now() < deadline,
                "not installed with the exported bytes:\n{}",
                agent.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    for node in ["node-a", "node-b"] {
        while production
            .get(&Gvr::of::<NodeProfileStatus>(), None, node)
            .map(|s| s["spec"]["installedCount"].clone())
            .unwrap_or_default()
            != 1
        {
            assert!(Instant::now() < deadline, "{node} did not report");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    let applied = apply(&["-o", "json"]);
    assert!(applied.status.success(), "{applied:?}");
    let report: Value = serde_json::from_slice(&applied.stdout).unwrap();
    assert_eq!(report["schema"], "syscensus.io/apply/v1");
    assert_eq!(report["applied"], true);
    assert_eq!(report["changed"], 1);
    let live = production.get(&deployments(), Some(NS), "web").unwrap();
    assert_eq!(
        live["spec"]["template"]["spec"]["containers"][0]["securityContext"]["seccompProfile"],
        json!({"type": "Localhost", "localhostProfile": "syscensus/shop/deployment-web/app.json"})
    );
}

/// The whole loop with the real pieces: the recording agent and containerd
/// in staging, git, kustomize, the install-only agent in production, and
/// containerd enforcing the installed profile 20 times out of 20, refusing
/// what the workload never did.
#[test]
fn recorded_in_staging_enforced_in_production() {
    syscensus_tests::require_root();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let pods = Gvr::new("", "v1", "pods");

    // Staging: a Deployment's Pod, recorded by the agent.
    let staging = FakeApiServer::start_with_syscensus(NS);
    staging
        .create(&deployments(), Some(NS), deployment())
        .unwrap();
    staging
        .create(
            &Gvr::new("apps", "v1", "replicasets"),
            Some(NS),
            json!({"apiVersion": "apps/v1", "kind": "ReplicaSet",
                   "metadata": {"name": "web-1a", "namespace": NS, "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "uid": "d", "controller": true}]},
                   "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": deployment()["spec"]["template"].clone()}}),
        )
        .unwrap();
    staging
        .create(
            &Gvr::of::<syscensus_api::ProfileRecording>(),
            Some(NS),
            json!({"apiVersion": "syscensus.io/v1alpha1", "kind": "ProfileRecording",
                   "metadata": {"name": "rec", "namespace": NS},
                   "spec": {"podSelector": {"matchLabels": {"app": "web"}}}}),
        )
        .unwrap();
    let staging_config = kubeconfig(&staging, root.join("staging"));
    let containerd = Containerd::start();
    containerd.import_test_images(&[]);
    let cri = containerd.cri();
    let socket = containerd.socket().display().to_string();
    let staging_kubelet = root.join("staging-kubelet");
    let recorder = Agent::start_with_env(
        &[
            "--cri-socket",
            &socket,
            "--kubelet-root",
            staging_kubelet.to_str().unwrap(),
            "--flush-interval",
            "1",
            "--poll-interval",
            "1",
        ],
        &[
            ("NODE_NAME", "node-a"),
            ("KUBECONFIG", staging_config.to_str().unwrap()),
        ],
    );
    recorder.wait_watching();
    let created = staging
        .create(
            &pods,
            Some(NS),
            json!({"apiVersion": "v1", "kind": "Pod",
                   "metadata": {"name": "web-1a-x", "namespace": NS, "labels": {"app": "web"},
                                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-1a", "uid": "r", "controller": true}]},
                   "spec": {"nodeName": "node-a", "containers": [{"name": "app", "image": "busybox"}]}}),
        )
        .unwrap();
    let mut spec = PodSpec::new("web-1a-x").namespace(NS).label("app", "web");
    spec.uid = created["metadata"]["uid"].as_str().unwrap().to_owned();
    let pod = cri.run_pod(spec);
    let workload = ["sh", "-c", "cat /etc/passwd >/dev/null; uname; echo done"];
    let first = pod.run_container(&ContainerSpec::new("app", BUSYBOX_IMAGE, &workload));
    staging
        .apply_status(
            &pods,
            Some(NS),
            "web-1a-x",
            json!({"phase": "Running", "containerStatuses": [{"name": "app", "containerID": format!("containerd://{}", first.id()), "image": "busybox", "imageID": "", "ready": false, "restartCount": 0, "state": {"running": {}}}]}),
        )
        .unwrap();
    assert_eq!(first.wait_exited(Duration::from_secs(30)), 0);
    let deadline = Instant::now() + Duration::from_secs(60);
    while staging
        .get(
            &Gvr::of::<ContainerProfile>(),
            Some(NS),
            "rec.deployment.web.app",
        )
        .is_err()
    {
        assert!(
            Instant::now() < deadline,
            "not recorded:\n{}",
            recorder.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(recorder);

    // Git: exported and committed in the operator's repository.
    let repo = root.join("ops");
    std::fs::create_dir_all(repo.join("base")).unwrap();
    git(&repo, &["init", "--quiet"]);
    std::fs::write(
        repo.join("base/web.yaml"),
        serde_norway::to_string(&deployment()).unwrap(),
    )
    .unwrap();
    std::fs::write(
        repo.join("base/kustomization.yaml"),
        "resources: [web.yaml]\n",
    )
    .unwrap();
    std::fs::create_dir_all(repo.join("prod")).unwrap();
    std::fs::write(
        repo.join("prod/kustomization.yaml"),
        "resources: [../base]\ncomponents: [../seccomp]\n",
    )
    .unwrap();
    let seccomp = repo.join("seccomp");
    let out = syscensus(&[
        "export",
        "--kubeconfig",
        staging_config.to_str().unwrap(),
        "--to",
        seccomp.to_str().unwrap(),
        "--git",
    ]);
    assert!(out.status.success(), "{out:?}");
    let exported = std::fs::read(seccomp.join("shop/deployment-web/app.json")).unwrap();

    // Production: the rendered overlay, the install-only agent, apply.
    let production = FakeApiServer::start_with_syscensus(NS);
    production
        .create(
            &Gvr::new("", "v1", "nodes"),
            None,
            json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "node-a"}}),
        )
        .unwrap();
    production
        .create(&deployments(), Some(NS), deployment())
        .unwrap();
    let production_config = kubeconfig(&production, root.join("production"));
    let rendered = Command::new("kubectl")
        .args(["kustomize", repo.join("prod").to_str().unwrap()])
        .output()
        .unwrap();
    assert!(rendered.status.success(), "{rendered:?}");
    for object in serde_norway::Deserializer::from_slice(&rendered.stdout)
        .map(|d| Value::deserialize(d).unwrap())
        .filter(|o| o["kind"] == "LocalhostProfile")
    {
        production
            .create(&Gvr::of::<LocalhostProfile>(), Some(NS), object)
            .unwrap();
    }
    let kubelet = root.join("production-kubelet");
    let installer = Agent::start_install_only(
        &[
            "--kubelet-root",
            kubelet.to_str().unwrap(),
            "--kubeconfig",
            production_config.to_str().unwrap(),
        ],
        &[("NODE_NAME", "node-a")],
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut applied;
    loop {
        applied = syscensus(&[
            "apply",
            seccomp.to_str().unwrap(),
            "--kubeconfig",
            production_config.to_str().unwrap(),
        ]);
        if applied.status.success() {
            break;
        }
        assert_eq!(applied.status.code(), Some(75), "{applied:?}");
        assert!(
            Instant::now() < deadline,
            "{applied:?}\n{}",
            installer.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let live = production.get(&deployments(), Some(NS), "web").unwrap();
    let localhost = live["spec"]["template"]["spec"]["containers"][0]["securityContext"]
        ["seccompProfile"]["localhostProfile"]
        .as_str()
        .unwrap()
        .to_owned();
    let installed = kubelet.join("seccomp").join(&localhost);
    assert_eq!(std::fs::read(&installed).unwrap(), exported);

    // The production Pod runs under it, as the kubelet would start it.
    let production_pod = cri.run_pod(PodSpec::new("web-1b-y").namespace(NS).label("app", "web"));
    for run in 0..20 {
        let container = production_pod.run_container(
            &ContainerSpec::new(&format!("app-{run}"), BUSYBOX_IMAGE, &workload)
                .seccomp(Seccomp::Localhost(installed.clone())),
        );
        assert_eq!(
            container.wait_exited(Duration::from_secs(30)),
            0,
            "run {run}: {:?}",
            container.logs()
        );
        assert!(container.logs().stdout.ends_with("done\n"), "run {run}");
    }
    let refused = production_pod.run_container(
        &ContainerSpec::new("refused", BUSYBOX_IMAGE, &["mkdir", "/tmp/never-made"])
            .seccomp(Seccomp::Localhost(installed)),
    );
    assert_eq!(
        refused.wait_exited(Duration::from_secs(30)),
        1,
        "{:?}",
        refused.logs()
    );
    assert!(refused.logs().stderr.contains("Operation not permitted"));
    drop(installer);
}
