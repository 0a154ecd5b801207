//! The agent installs LocalhostProfiles (what `syscensus approve` makes of
//! ContainerProfiles, or what an export brings from git) into the kubelet's
//! seccomp directory, reports them in its node's NodeProfileStatus, and keeps
//! a file while anything uses it. The API server is simulated (see `syscensus_tests::apiserver`);
//! the containers at the end are real, run through containerd's CRI with the
//! installed file as their Localhost profile.
#![allow(clippy::unwrap_used, reason = "tests")]
#![allow(
    unused_crate_dependencies,
    reason = "an integration test uses some of its package's dependencies"
)]

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use serde_json::{Value, json};
use syscensus_api::{ContainerProfile, LocalhostProfile, NodeProfileStatus, ProfileRecording};
use syscensus_tests::{
    agent::Agent,
    apiserver::{FakeApiServer, Gvr},
    containers::{BUSYBOX_IMAGE, ContainerSpec, Containerd, PodSpec, Seccomp},
    require_root, syscensus_bin,
};

const NS: &str = "shop";
const WAIT: Duration = Duration::from_secs(30);

fn profiles() -> Gvr {
    Gvr::of::<ContainerProfile>()
}

fn objects() -> Gvr {
    Gvr::of::<LocalhostProfile>()
}

fn statuses() -> Gvr {
    Gvr::of::<NodeProfileStatus>()
}

struct Cluster {
    server: FakeApiServer,
    dir: tempfile::TempDir,
}

impl Cluster {
    fn new() -> Cluster {
        let server = FakeApiServer::start_with_syscensus(NS);
        let dir = tempfile::tempdir().unwrap();
        server
            .write_kubeconfig(&dir.path().join("kubeconfig"))
            .unwrap();
        std::fs::create_dir(dir.path().join("kubelet")).unwrap();
        Cluster { server, dir }
    }

    fn kubeconfig(&self) -> PathBuf {
        self.dir.path().join("kubeconfig")
    }

    fn kubelet_root(&self) -> PathBuf {
        self.dir.path().join("kubelet")
    }

    fn installed(&self, relative: &str) -> PathBuf {
        self.kubelet_root().join("seccomp/syscensus").join(relative)
    }

    fn agent(&self, node: &str, extra: &[&str]) -> Agent {
        let root = self.kubelet_root().display().to_string();
        let mut args = vec![
            "--kubelet-root",
            root.as_str(),
            "--flush-interval",
            "1",
            "--poll-interval",
            "1",
        ];
        args.extend_from_slice(extra);
        Agent::start_with_env(
            &args,
            &[
                ("NODE_NAME", node),
                ("KUBECONFIG", self.kubeconfig().to_str().unwrap()),
            ],
        )
    }

    /// `syscensus approve ARGS -n shop` against this cluster.
    fn approve(&self, args: &[&str]) -> std::process::Output {
        Command::new(syscensus_bin())
            .arg("approve")
            .args(args)
            .args(["-n", NS, "--kubeconfig"])
            .arg(self.kubeconfig())
            .output()
            .unwrap()
    }

    /// The node's NodeProfileStatus spec, once it has one.
    fn status(&self, node: &str) -> Option<Value> {
        self.server
            .get(&statuses(), None, node)
            .ok()
            .map(|s| s["spec"].clone())
    }
}

/// A ContainerProfile as the agents write them.
fn container_profile(workload: &str, container: &str, syscalls: &[&str]) -> Value {
    let labels = json!({"syscensus.io/recording": "rec"});
    json!({
        "apiVersion": "syscensus.io/v1alpha1", "kind": "ContainerProfile",
        "metadata": {"name": format!("rec.deployment.{}.{}", workload.replace('/', "-"), container.replace('/', "-")), "namespace": NS, "labels": labels},
        "spec": {
            "recording": "rec",
            "workload": {"kind": "Deployment", "name": workload},
            "container": container,
            "syscalls": {"SCMP_ARCH_X86_64": syscalls},
            "syscallCount": syscalls.len(),
            "runtimeBaseSet": {"name": "runc-1.1", "syscalls": ["execve", "write"]},
            "firstSeen": "2026-11-27T00:00:00Z",
            "lastSeen": "2026-11-27T00:00:00Z"
        }
    })
}

fn wait_until<T>(what: &str, agent: &Agent, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}\n{}",
            agent.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// What `syscensus export` writes for a ContainerProfile: the reference the
/// installed file must equal.
fn exported(profile: &Value, relative: &str) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("profile.json");
    std::fs::write(&input, profile.to_string()).unwrap();
    let out = dir.path().join("out");
    let output = Command::new(syscensus_bin())
        .args(["export", "--to"])
        .arg(&out)
        .arg("--from")
        .arg(&input)
        .output()
        .unwrap();
    assert!(output.status.success(), "export failed: {output:?}");
    std::fs::read(out.join(relative)).unwrap()
}

/// A LocalhostProfile of Deployment `workload` container `container`
/// holding `profile`, as export writes them (nothing checked here: the
/// nodes check).
fn localhost_profile(workload: &str, container: &str, profile: &[u8]) -> Value {
    json!({
        "apiVersion": "syscensus.io/v1alpha1", "kind": "LocalhostProfile",
        "metadata": {"name": format!("deployment-{workload}.{container}"), "namespace": NS},
        "spec": {
            "workload": {"kind": "Deployment", "name": workload},
            "container": container,
            "localhostProfile": format!("syscensus/{NS}/deployment-{workload}/{container}.json"),
            "sha256": sha256(profile),
            "profile": String::from_utf8(profile.to_vec()).unwrap(),
        }
    })
}

/// The node's report of `localhost_profile`: its sha256 and keptFor.
fn reported(status: &Value, localhost_profile: &str) -> Option<(String, Option<String>)> {
    status["installed"].as_array()?.iter().find_map(|e| {
        (e["localhostProfile"] == localhost_profile).then(|| {
            (
                e["sha256"].as_str().unwrap().to_owned(),
                e["keptFor"].as_str().map(str::to_owned),
            )
        })
    })
}

fn sha256(bytes: &[u8]) -> String {
    let out = Command::new("sha256sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write as _;
    let mut child = out;
    child.stdin.take().unwrap().write_all(bytes).unwrap();
    let output = child.wait_with_output().unwrap();
    String::from_utf8(output.stdout)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned()
}

#[test]
fn approved_profiles_are_installed_byte_identical_bound_to_their_content_and_reported() {
    require_root();
    let cluster = Cluster::new();
    let agent = cluster.agent("node-a", &[]);
    let server = &cluster.server;
    let recorded = server
        .create(
            &profiles(),
            Some(NS),
            container_profile("web", "app", &["read", "write", "uname"]),
        )
        .unwrap();
    server
        .create(
            &profiles(),
            Some(NS),
            container_profile("web", "sidecar", &["read"]),
        )
        .unwrap();
    let name = "rec.deployment.web.app";
    let approved = cluster.approve(&[name]);
    assert!(approved.status.success(), "{approved:?}");

    let relative = "shop/deployment-web/app.json";
    let path = cluster.installed(relative);
    let bytes = wait_until("the approved profile on disk", &agent, || {
        std::fs::read(&path).ok()
    });
    assert_eq!(
        bytes,
        exported(&recorded, relative),
        "installed bytes differ from the export"
    );
    assert!(
        !cluster
            .installed("shop/deployment-web/sidecar.json")
            .exists(),
        "an unapproved profile was installed"
    );
    let annotated = server.get(&profiles(), Some(NS), name).unwrap();
    assert_eq!(
        annotated["metadata"]["labels"]["syscensus.io/approval"],
        "approved"
    );
    assert_eq!(
        annotated["metadata"]["annotations"]["syscensus.io/approved-sha256"],
        sha256(&bytes)
    );
    let localhost = format!("syscensus/{relative}");
    let (sha, kept) = wait_until("the node's report", &agent, || {
        reported(&cluster.status("node-a")?, &localhost)
    });
    assert_eq!((sha, kept), (sha256(&bytes), None));

    // Syscalls merged in after the approval are not installed until it is
    // approved again.
    let mut grown = annotated;
    grown["spec"]["syscalls"]["SCMP_ARCH_X86_64"] = json!(["read", "write", "uname", "mkdir"]);
    grown["spec"]["syscallCount"] = json!(4);
    let grown = server.update(&profiles(), Some(NS), grown).unwrap();
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(3) {
        assert_eq!(
            std::fs::read(&path).unwrap(),
            bytes,
            "installed unapproved syscalls"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let again = cluster.approve(&[name]);
    assert!(again.status.success(), "{again:?}");
    assert!(
        String::from_utf8_lossy(&again.stdout).contains("mkdir"),
        "the approval does not say what it adds: {again:?}"
    );
    let new_bytes = exported(&grown, relative);
    wait_until("the new approval on disk", &agent, || {
        (std::fs::read(&path).ok()? == new_bytes).then_some(())
    });

    // Approval taken back while a Pod on the node uses the file: it stays,
    // and the report says why; it goes once the Pod is gone.
    let pods = Gvr::new("", "v1", "pods");
    server
        .create(
            &pods,
            Some(NS),
            json!({"apiVersion": "v1", "kind": "Pod",
                   "metadata": {"name": "web-1", "namespace": NS},
                   "spec": {"nodeName": "node-a", "containers": [{"name": "app", "image": "x",
                       "securityContext": {"seccompProfile": {"type": "Localhost", "localhostProfile": localhost}}}]}}),
        )
        .unwrap();
    let revoked = cluster.approve(&["--revoke", name]);
    assert!(revoked.status.success(), "{revoked:?}");
    assert!(
        server
            .get(&objects(), Some(NS), "deployment-web.app")
            .is_err()
    );
    let kept = wait_until("the file kept for the Pod", &agent, || {
        reported(&cluster.status("node-a")?, &localhost)?.1
    });
    assert!(kept.contains("shop/web-1"), "{kept}");
    assert!(path.exists(), "a profile in use was removed");
    server.delete(&pods, Some(NS), "web-1").unwrap();
    // The file goes first, then the directories it leaves empty: wait for
    // both, so a poll between the two removals does not fail the test.
    wait_until(
        "the profile and the directories it leaves empty to be removed",
        &agent,
        || (!path.exists() && !cluster.installed("shop").exists()).then_some(()),
    );
    wait_until("the report entry to go", &agent, || {
        reported(&cluster.status("node-a")?, &localhost)
            .is_none()
            .then_some(())
    });
}

#[test]
fn crafted_objects_never_write_outside_the_directory() {
    require_root();
    let cluster = Cluster::new();
    let agent = cluster.agent("node-a", &[]);
    let profile = br#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["read"],"action":"SCMP_ACT_ALLOW"}]}"#;
    for (i, (workload, container, path)) in [
        ("../../../../tmp/escape", "x", None),
        ("web", "../../escape", None),
        ("web/..", "x", None),
        ("Web", "x", None),
        ("web", "x", Some("syscensus/../../escape.json")),
        ("web", "x", Some("syscensus/other/deployment-web/x.json")),
    ]
    .into_iter()
    .enumerate()
    {
        let mut object = localhost_profile(workload, container, profile);
        object["metadata"]["name"] = json!(format!("crafted-{i}"));
        if let Some(path) = path {
            object["spec"]["localhostProfile"] = json!(path);
        }
        cluster.server.create(&objects(), Some(NS), object).unwrap();
    }
    cluster
        .server
        .create(
            &objects(),
            Some(NS),
            localhost_profile("web", "app", profile),
        )
        .unwrap();
    wait_until("the valid profile", &agent, || {
        cluster
            .installed("shop/deployment-web/app.json")
            .exists()
            .then_some(())
    });
    let refused = wait_until("the refusals in the report", &agent, || {
        let status = cluster.status("node-a")?;
        (status["refusedCount"] == 6).then_some(status)
    });
    for entry in refused["refused"].as_array().unwrap() {
        assert!(!entry["reason"].as_str().unwrap().contains('\n'), "{entry}");
    }
    // Everything under the kubelet root is the one valid profile.
    let mut files = Vec::new();
    collect(&cluster.kubelet_root(), &mut files);
    let names: Vec<String> = files
        .iter()
        .map(|f| {
            f.strip_prefix(cluster.kubelet_root())
                .unwrap()
                .display()
                .to_string()
        })
        .collect();
    assert_eq!(
        names,
        vec![
            "seccomp/syscensus/.syscensus-installed",
            "seccomp/syscensus/shop/deployment-web/app.json"
        ]
    );
    assert!(!Path::new("/tmp/escape").exists() && !cluster.dir.path().join("escape").exists());
}

#[test]
fn a_profile_no_runtime_could_load_is_refused_in_every_report_until_fixed() {
    require_root();
    let cluster = Cluster::new();
    let agents = [cluster.agent("node-a", &[]), cluster.agent("node-b", &[])];
    let server = &cluster.server;
    let bad = br#"{"defaultAction":"SCMP_ACT_ERRNO","architectures":["SCMP_ARCH_X86_64"],"syscalls":[{"names":["read","not_a_syscall"],"action":"SCMP_ACT_ALLOW"}]}"#;
    server
        .create(&objects(), Some(NS), localhost_profile("web", "app", bad))
        .unwrap();
    // `approve` refuses such a spec outright.
    server
        .create(
            &profiles(),
            Some(NS),
            container_profile("web", "app", &["read", "not_a_syscall"]),
        )
        .unwrap();
    let refused = cluster.approve(&["rec.deployment.web.app"]);
    assert_eq!(refused.status.code(), Some(65), "{refused:?}");
    assert!(String::from_utf8_lossy(&refused.stderr).contains("not_a_syscall"));
    // Each node says why, in its own report, and installs nothing.
    for node in ["node-a", "node-b"] {
        let status = wait_until("the refusal in the report", &agents[0], || {
            let status = cluster.status(node)?;
            (status["refusedCount"] == 1).then_some(status)
        });
        let reason = status["refused"][0]["reason"].as_str().unwrap();
        assert_eq!(status["refused"][0]["profile"], "shop/deployment-web.app");
        assert!(reason.contains("not_a_syscall"), "{reason}");
        assert!(!reason.contains('\n'), "{reason}");
        assert_eq!(status["installedCount"], 0);
    }
    assert!(!cluster.installed("shop/deployment-web/app.json").exists());

    // Fixed: installed, reported, and the refusals are gone.
    let good = br#"{"defaultAction":"SCMP_ACT_ERRNO","architectures":["SCMP_ARCH_X86_64"],"syscalls":[{"names":["read","write"],"action":"SCMP_ACT_ALLOW"}]}"#;
    let mut fixed = server
        .get(&objects(), Some(NS), "deployment-web.app")
        .unwrap();
    fixed["spec"] = localhost_profile("web", "app", good)["spec"].clone();
    server.update(&objects(), Some(NS), fixed).unwrap();
    for node in ["node-a", "node-b"] {
        wait_until("the fixed profile installed", &agents[1], || {
            let status = cluster.status(node)?;
            (status["installedCount"] == 1 && status["refusedCount"] == 0).then_some(())
        });
    }
    assert_eq!(
        std::fs::read(cluster.installed("shop/deployment-web/app.json")).unwrap(),
        good
    );
    // Each agent logs the refusal once.
    for agent in &agents {
        assert_eq!(
            agent
                .log()
                .matches("refusing to install a LocalhostProfile")
                .count(),
            1,
            "{}",
            agent.log()
        );
    }
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect(&path, out);
        } else {
            out.push(path);
        }
    }
    out.sort();
}

#[test]
fn a_crash_mid_write_never_leaves_a_partial_profile() {
    require_root();
    let cluster = Cluster::new();
    // Many profiles, so that writes are under way when the agent dies.
    let mut expected = Vec::new();
    for i in 0..40 {
        // Real names: the agent refuses to install unknown ones.
        let names = &["brk", "close", "futex", "mmap", "openat", "read", "write"][..i % 7 + 1];
        let profile = container_profile(&format!("web{i}"), "app", names);
        let relative = format!("shop/deployment-web{i}/app.json");
        let bytes = exported(&profile, &relative);
        cluster
            .server
            .create(
                &objects(),
                Some(NS),
                localhost_profile(&format!("web{i}"), "app", &bytes),
            )
            .unwrap();
        expected.push((cluster.installed(&relative), bytes));
    }
    for round in 0..8 {
        let agent = cluster.agent("node-a", &[]);
        // Die at a different moment each round.
        std::thread::sleep(Duration::from_millis(150 + 97 * round));
        // SAFETY: kill(2) on the agent's PID.
        unsafe { libc::kill(agent.pid() as i32, libc::SIGKILL) };
        std::thread::sleep(Duration::from_millis(50));
        for (path, bytes) in &expected {
            if let Ok(found) = std::fs::read(path) {
                assert_eq!(
                    &found,
                    bytes,
                    "round {round}: {} is partial or wrong",
                    path.display()
                );
            }
        }
        drop(agent);
    }
    // A clean run finishes the job and clears what the crashes left.
    let agent = cluster.agent("node-a", &[]);
    wait_until("every profile", &agent, || {
        expected.iter().all(|(p, _)| p.exists()).then_some(())
    });
    for (path, bytes) in &expected {
        assert_eq!(&std::fs::read(path).unwrap(), bytes);
    }
    // Stopped, so that no write is under way (the list of installed files
    // is written through a temporary file too).
    drop(agent);
    let mut files = Vec::new();
    collect(&cluster.kubelet_root(), &mut files);
    let leftovers: Vec<_> = files
        .iter()
        .filter(|f| {
            f.file_name()
                .is_some_and(|n| n.to_string_lossy().contains(".tmp"))
        })
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
}

#[test]
fn record_export_install_and_run_under_the_installed_profile() {
    require_root();
    let cluster = Cluster::new();
    let server = &cluster.server;
    server
        .create(
            &Gvr::of::<ProfileRecording>(),
            Some(NS),
            json!({"apiVersion": "syscensus.io/v1alpha1", "kind": "ProfileRecording",
                   "metadata": {"name": "rec", "namespace": NS},
                   "spec": {"podSelector": {"matchLabels": {"app": "solo"}}}}),
        )
        .unwrap();
    let containerd = Containerd::start();
    containerd.import_test_images(&[]);
    let cri = containerd.cri();
    let socket = containerd.socket().display().to_string();
    let agent = cluster.agent("node-a", &["--cri-socket", &socket]);
    agent.wait_watching();

    // A bare Pod (the recording's workload is the Pod itself).
    let created = server
        .create(
            &Gvr::new("", "v1", "pods"),
            Some(NS),
            json!({"apiVersion": "v1", "kind": "Pod",
                   "metadata": {"name": "solo", "namespace": NS, "labels": {"app": "solo"}},
                   "spec": {"nodeName": "node-a", "containers": [{"name": "app", "image": "busybox"}]}}),
        )
        .unwrap();
    let mut spec = PodSpec::new("solo").namespace(NS).label("app", "solo");
    spec.uid = created["metadata"]["uid"].as_str().unwrap().to_owned();
    let pod = cri.run_pod(spec);
    let workload = ["sh", "-c", "cat /etc/passwd >/dev/null; uname; echo done"];
    let first = pod.run_container(&ContainerSpec::new("app", BUSYBOX_IMAGE, &workload));
    // The kubelet reports the container's id in the Pod's status.
    server
        .apply_status(
            &Gvr::new("", "v1", "pods"),
            Some(NS),
            "solo",
            json!({"phase": "Running", "containerStatuses": [{"name": "app", "containerID": format!("containerd://{}", first.id()), "image": "busybox", "imageID": "", "ready": false, "restartCount": 0, "state": {"running": {}}}]}),
        )
        .unwrap();
    assert_eq!(first.wait_exited(WAIT), 0);

    let name = "rec.pod.solo.app";
    let recorded = wait_until("the ContainerProfile", &agent, || {
        server.get(&profiles(), Some(NS), name).ok()
    });

    // Review: export, then approve.
    let relative = "shop/pod-solo/app.json";
    let exported_bytes = exported(&recorded, relative);
    let approved = cluster.approve(&[name]);
    assert!(approved.status.success(), "{approved:?}");
    let installed = cluster.installed(relative);
    wait_until("the installed profile", &agent, || {
        installed.exists().then_some(())
    });
    assert_eq!(std::fs::read(&installed).unwrap(), exported_bytes);

    // The workload runs under it, as a Localhost profile through CRI; mkdir
    // does not.
    let again = pod.run_container(
        &ContainerSpec::new("app-again", BUSYBOX_IMAGE, &workload)
            .seccomp(Seccomp::Localhost(installed.clone())),
    );
    assert_eq!(again.wait_exited(WAIT), 0, "{:?}", again.logs());
    assert!(again.logs().stdout.ends_with("done\n"));
    let blocked = pod.run_container(
        &ContainerSpec::new("blocked", BUSYBOX_IMAGE, &["mkdir", "/tmp/x"])
            .seccomp(Seccomp::Localhost(installed)),
    );
    assert_eq!(blocked.wait_exited(WAIT), 1, "{:?}", blocked.logs());
    assert!(blocked.logs().stderr.contains("Operation not permitted"));
}
