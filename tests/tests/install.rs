//! The agent installs approved profiles into the kubelet's seccomp
//! directory. The API server is simulated (see `syscensus_tests::apiserver`);
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
use syscensus_api::{ContainerProfile, ProfileRecording};
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
}

/// A ContainerProfile as the agents write them.
fn container_profile(workload: &str, container: &str, syscalls: &[&str], approved: bool) -> Value {
    let mut labels = json!({"syscensus.io/recording": "rec"});
    if approved {
        labels["syscensus.io/approved"] = json!("true");
    }
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
            "nodes": [],
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
fn approved_profiles_are_installed_byte_identical_and_reported() {
    require_root();
    let cluster = Cluster::new();
    let agent = cluster.agent("node-a", &[]);
    let server = &cluster.server;
    let approved = server
        .create(
            &profiles(),
            Some(NS),
            container_profile("web", "app", &["read", "write", "uname"], true),
        )
        .unwrap();
    server
        .create(
            &profiles(),
            Some(NS),
            container_profile("web", "sidecar", &["read"], false),
        )
        .unwrap();

    let relative = "shop/deployment-web/app.json";
    let path = cluster.installed(relative);
    let bytes = wait_until("the approved profile on disk", &agent, || {
        std::fs::read(&path).ok()
    });
    assert_eq!(
        bytes,
        exported(&approved, relative),
        "installed bytes differ from the export"
    );
    assert!(
        !cluster
            .installed("shop/deployment-web/sidecar.json")
            .exists(),
        "an unapproved profile was installed"
    );

    let status = wait_until("the node's entry in the status", &agent, || {
        let p = server
            .get(&profiles(), Some(NS), "rec.deployment.web.app")
            .ok()?;
        p["status"]["installed"]
            .as_array()
            .filter(|a| !a.is_empty())
            .cloned()
    });
    assert_eq!(status[0]["node"], "node-a");
    assert_eq!(status[0]["path"], format!("syscensus/{relative}"));
    assert_eq!(status[0]["sha256"], sha256(&bytes));

    // Approval taken back: the file goes, and the node's entry with it.
    let mut unapproved = server
        .get(&profiles(), Some(NS), "rec.deployment.web.app")
        .unwrap();
    unapproved["metadata"]["labels"]
        .as_object_mut()
        .unwrap()
        .remove("syscensus.io/approved");
    server.update(&profiles(), Some(NS), unapproved).unwrap();
    // The file goes first, then the directories it leaves empty: wait for
    // both, so a poll between the two removals does not fail the test.
    wait_until(
        "the profile and the directories it leaves empty to be removed",
        &agent,
        || (!path.exists() && !cluster.installed("shop").exists()).then_some(()),
    );
    wait_until("the status entry to go", &agent, || {
        let p = server
            .get(&profiles(), Some(NS), "rec.deployment.web.app")
            .ok()?;
        p["status"]["installed"]
            .as_array()
            .is_none_or(Vec::is_empty)
            .then_some(())
    });
}

#[test]
fn crafted_names_never_write_outside_the_directory() {
    require_root();
    let cluster = Cluster::new();
    let agent = cluster.agent("node-a", &[]);
    for (workload, container) in [
        ("../../../../tmp/escape", "x"),
        ("web", "../../escape"),
        ("web/..", "x"),
        ("Web", "x"),
    ] {
        let mut profile = container_profile(workload, container, &["read"], true);
        profile["metadata"]["name"] = json!(format!(
            "crafted-{}",
            profile["metadata"]["name"].as_str().unwrap().len()
        ));
        cluster
            .server
            .create(&profiles(), Some(NS), profile)
            .unwrap();
    }
    cluster
        .server
        .create(
            &profiles(),
            Some(NS),
            container_profile("web", "app", &["read"], true),
        )
        .unwrap();
    wait_until("the valid profile", &agent, || {
        cluster
            .installed("shop/deployment-web/app.json")
            .exists()
            .then_some(())
    });
    wait_until("the refusals in the log", &agent, || {
        (agent
            .log()
            .matches("refusing to install ContainerProfile")
            .count()
            >= 4)
            .then_some(())
    });
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
fn a_profile_no_runtime_could_load_is_refused_on_its_status_until_fixed() {
    require_root();
    let cluster = Cluster::new();
    let agents = [cluster.agent("node-a", &[]), cluster.agent("node-b", &[])];
    let server = &cluster.server;
    let name = "rec.deployment.web.app";
    server
        .create(
            &profiles(),
            Some(NS),
            container_profile("web", "app", &["read", "not_a_syscall"], true),
        )
        .unwrap();
    // Each node says why, in its own entry, and installs nothing.
    let refused = wait_until("both refusals on the status", &agents[0], || {
        let profile = server.get(&profiles(), Some(NS), name).ok()?;
        let refused = profile["status"]["refused"].as_array()?.clone();
        (refused.len() == 2).then_some(refused)
    });
    let mut nodes: Vec<&str> = refused
        .iter()
        .map(|r| r["node"].as_str().unwrap())
        .collect();
    nodes.sort_unstable();
    assert_eq!(nodes, ["node-a", "node-b"]);
    for entry in &refused {
        let reason = entry["reason"].as_str().unwrap();
        assert!(reason.contains("not_a_syscall"), "{reason}");
        assert!(!reason.contains('\n'), "{reason}");
    }
    assert!(!cluster.installed("shop/deployment-web/app.json").exists());
    let profile = server.get(&profiles(), Some(NS), name).unwrap();
    assert!(
        profile["status"]["installed"]
            .as_array()
            .is_none_or(Vec::is_empty)
    );

    // Fixed: installed, reported, and the refusals are gone.
    let mut fixed = profile;
    fixed["spec"]["syscalls"]["SCMP_ARCH_X86_64"] = json!(["read", "write"]);
    fixed["spec"]["syscallCount"] = json!(2);
    server.update(&profiles(), Some(NS), fixed).unwrap();
    wait_until("the fixed profile installed by both", &agents[1], || {
        let profile = server.get(&profiles(), Some(NS), name).ok()?;
        let installed = profile["status"]["installed"].as_array()?.len();
        let refused = profile["status"]["refused"].as_array().map_or(0, Vec::len);
        (installed == 2 && refused == 0).then_some(())
    });
    assert!(cluster.installed("shop/deployment-web/app.json").exists());
    // Both agents report on one file, and say it once each.
    for agent in &agents {
        assert_eq!(
            agent
                .log()
                .matches("refusing to install ContainerProfile")
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
        let profile = cluster
            .server
            .create(
                &profiles(),
                Some(NS),
                container_profile(&format!("web{i}"), "app", names, true),
            )
            .unwrap();
        let relative = format!("shop/deployment-web{i}/app.json");
        expected.push((cluster.installed(&relative), exported(&profile, &relative)));
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
    let mut approved = server.get(&profiles(), Some(NS), name).unwrap();
    approved["metadata"]["labels"]["syscensus.io/approved"] = json!("true");
    server.update(&profiles(), Some(NS), approved).unwrap();
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
