//! The agent under its own seccomp profile (agent/profiles/syscensus-agent.json)
//! through the faults it meets on a node, each run in the DaemonSet's Pod
//! (`kubectl kustomize deploy/base`, the image of `cargo xtask image`) by a
//! real containerd, which installs the profile's filter as it does for the
//! kubelet: an API server outage and its end, a CRI socket that never
//! answers, a full state directory, a SIGKILL and the next agent restoring
//! from the pins and the state directory; and under crun, an agent killed
//! during an outage and its result written by the next.
//!
//! In each the agent must do its job (the workload's ContainerProfile holds
//! what the workload did) and its profile must refuse it nothing. A refused
//! syscall the agent copes with (a fallback, a retry, an error it logs
//! at debug level) leaves no mark an outside test can rely on, so the test
//! installs the profile with the one change that makes every refusal
//! fatal and reported: the shipped file's rules (all `SCMP_ACT_ALLOW`)
//! unchanged, with `SCMP_ACT_KILL_PROCESS` for the default action instead of
//! `SCMP_ACT_ERRNO` (EPERM). A syscall the shipped profile would refuse
//! kills the agent with SIGSYS (exit 159) and the kernel logs it as an
//! audit record (type=1326, `syscall=` its number), which the test looks
//! for. (The kernel would log `SCMP_ACT_ERRNO` refusals too, with
//! `SECCOMP_FILTER_FLAG_LOG`, but runc 1.1 refuses seccomp flags.)
//!
//! Host paths as in tests/tests/pod.rs: the kubelet's seccomp directory,
//! the state directory and /sys/fs/bpf are the test's own.
#![allow(clippy::unwrap_used, reason = "tests")]
#![allow(
    unused_crate_dependencies,
    reason = "an integration test uses some of its package's dependencies"
)]

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use k8s_cri::v1::ContainerState;
use k8s_openapi::api::core::v1::ServiceAccount;
use serde_json::{Value, json};
use syscensus_api::{ContainerProfile, ProfileRecording};
use syscensus_tests::{
    apiserver::{FakeApiServer, Gvr},
    containers::{
        BUSYBOX_IMAGE, Containerd, CrunCgroups, Runtime,
        cri::kubelet::{self, ApiServer, KubeletPod, Probe},
        random_hex,
    },
    manifests::{Mount, image_archive, mem_total, render},
    require_root, workspace_root,
};

const WAIT: Duration = Duration::from_secs(60);
const NODE: &str = "node-a";
const NS: &str = "shop";
/// The workload's ContainerProfile: recording `rec`, Deployment `web`,
/// container `app`.
const PROFILE: &str = "rec.deployment.web.app";

/// A CRI socket that takes connections and never answers, as a hung
/// containerd does. The listener thread ends with the test process.
fn hung_socket(path: &Path) {
    let listener = std::os::unix::net::UnixListener::bind(path).unwrap();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().flatten() {
            held.push(stream);
        }
    });
}

/// The kernel log's timestamp of its last line (seconds since boot), or 0.
fn kernel_log_now() -> f64 {
    kernel_log().last().map_or(0.0, |(time, _)| *time)
}

/// The kernel log's lines with their timestamps.
fn kernel_log() -> Vec<(f64, String)> {
    let output = Command::new("dmesg").output().unwrap();
    assert!(output.status.success(), "dmesg: {output:?}");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| {
            let rest = line.strip_prefix('[')?;
            let (time, message) = rest.split_once(']')?;
            Some((time.trim().parse().ok()?, message.trim().to_owned()))
        })
        .collect()
}

/// What a test chooses of its node.
struct Options {
    runtime: Runtime,
    /// The host path standing in for /var/lib/syscensus; a directory of the
    /// test's own when `None`.
    state: Option<PathBuf>,
    /// The CRI socket the agent's Pod mounts; containerd's when `None`.
    agent_cri: Option<PathBuf>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            runtime: Runtime::Runc,
            state: None,
            agent_cri: None,
        }
    }
}

/// A node: the API server (over TLS, with syscensus's CRDs, the
/// Deployment's ReplicaSet and a recording of its Pods), containerd with
/// the agent's image, the kubelet's directories, and the agent's Pod
/// template as deploy/base renders it.
struct Node {
    server: FakeApiServer,
    containerd: Containerd,
    node: kubelet::Node,
    template: Value,
    accounts: Vec<ServiceAccount>,
    state: PathBuf,
    trigger: PathBuf,
    /// Kernel log lines up to this timestamp are older than the test.
    since: f64,
    _bpffs: Mount,
    _dir: tempfile::TempDir,
}

impl Node {
    fn start(options: Options) -> Self {
        let since = kernel_log_now();
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
        let mut template = daemonset["spec"]["template"].clone();
        template["metadata"]["namespace"] = daemonset["metadata"]["namespace"].clone();
        // The test installs the profile itself (below), refusals made
        // fatal: the init container would install the image's copy as is.
        template["spec"]
            .as_object_mut()
            .unwrap()
            .remove("initContainers");
        if options.runtime == Runtime::Crun {
            // As deploy/overlays/crio sets it for nodes that run crun.
            for env in template["spec"]["containers"][0]["env"]
                .as_array_mut()
                .unwrap()
            {
                if env["name"] == "SYSCENSUS_RUNTIME" {
                    env["value"] = json!("crun");
                }
            }
        }
        let image_name = template["spec"]["containers"][0]["image"]
            .as_str()
            .unwrap()
            .to_owned();

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

        let dir = tempfile::tempdir().unwrap();
        let bpffs = Mount::new("bpf", "rw", &dir.path().join("bpffs"));
        let kubelet_root = dir.path().join("kubelet");
        let state = options.state.unwrap_or_else(|| dir.path().join("state"));
        let trigger = dir.path().join("trigger");
        std::fs::create_dir(&trigger).unwrap();
        // The agent's profile where the DaemonSet's Localhost profile points.
        let mut profile: Value = serde_json::from_slice(
            &std::fs::read(workspace_root().join("agent/profiles/syscensus-agent.json")).unwrap(),
        )
        .unwrap();
        assert_eq!(profile["defaultAction"], "SCMP_ACT_ERRNO");
        for rule in profile["syscalls"].as_array().unwrap() {
            assert_eq!(rule["action"], "SCMP_ACT_ALLOW", "{rule}");
        }
        profile["defaultAction"] = json!("SCMP_ACT_KILL_PROCESS");
        profile.as_object_mut().unwrap().remove("defaultErrnoRet");
        let installed = kubelet_root.join(format!(
            "seccomp/{}",
            template["spec"]["containers"][0]["securityContext"]["seccompProfile"]
                ["localhostProfile"]
                .as_str()
                .unwrap()
        ));
        std::fs::create_dir_all(installed.parent().unwrap()).unwrap();
        std::fs::write(&installed, serde_json::to_vec(&profile).unwrap()).unwrap();

        let containerd = Containerd::start_with(options.runtime);
        containerd.import_test_images(&[]);
        containerd.import_archive(&image, &image_name);
        let agent_cri = options.agent_cri.unwrap_or_else(|| containerd.socket());
        let node = kubelet::Node {
            name: NODE.to_owned(),
            ip: "127.0.0.1".to_owned(),
            kubelet_root: kubelet_root.clone(),
            host_paths: BTreeMap::from([
                ("/sys/fs/cgroup".to_owned(), PathBuf::from("/sys/fs/cgroup")),
                ("/sys/fs/bpf".to_owned(), bpffs.path().to_path_buf()),
                ("/var/lib/syscensus".to_owned(), state.clone()),
                ("/run/containerd/containerd.sock".to_owned(), agent_cri),
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
                token: format!("test-token-{}", random_hex(16)),
            }),
            memory_bytes: mem_total(),
        };
        Self {
            server,
            containerd,
            node,
            template,
            accounts,
            state,
            trigger,
            since,
            _bpffs: bpffs,
            _dir: dir,
        }
    }

    /// The DaemonSet controller's next Pod on this node, run; returns once
    /// it is ready and watches the kubelet's cgroups.
    fn agent(&self) -> KubeletPod<'_> {
        let mut pod = self.template.clone();
        pod["metadata"]["name"] = json!(format!("syscensus-agent-{}", &random_hex(3)[..5]));
        let pod = kubelet::run_pod(
            self.containerd.cri(),
            &self.node,
            &serde_json::from_value(pod).unwrap(),
            &self.accounts,
        );
        let agent = pod.container("agent");
        // The filter is the one the runtime installed, from the profile the
        // test wrote.
        let seccomp = &agent.info()["runtimeSpec"]["linux"]["seccomp"];
        assert_eq!(
            seccomp["defaultAction"], "SCMP_ACT_KILL_PROCESS",
            "{seccomp}"
        );
        let status = std::fs::read_to_string(format!("/proc/{}/status", agent.pid())).unwrap();
        assert!(
            status.lines().any(|l| l == "Seccomp:\t2"),
            "the agent runs without a filter:\n{status}"
        );
        // Ready, as the kubelet would mark it; an agent killed by its
        // profile on the way is shown with the kernel's record of why.
        let deadline = Instant::now() + WAIT;
        while pod.probe("agent", Probe::Readiness).is_err() {
            assert!(
                agent.state() != ContainerState::ContainerExited,
                "the agent exited {} before it was ready\nrefused: {:?}\nagent log:\n{}",
                agent.status().exit_code,
                self.audit(),
                agent.logs().stderr
            );
            assert!(
                Instant::now() < deadline,
                "the agent was not ready in {WAIT:?}:\n{}",
                agent.logs().stderr
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        let watching = self.state.join("watching");
        self.until("the agent to watch", &pod, || watching.exists());
        pod
    }

    /// A Pod of the Deployment `web` on this node, created in the API
    /// server as the ReplicaSet controller and scheduler would, and run:
    /// container `app` runs `command` with the test's trigger directory at
    /// /trigger.
    fn workload(&self, name: &str, command: &str) -> KubeletPod<'_> {
        let created = self
            .server
            .create(
                &Gvr::new("", "v1", "pods"),
                Some(NS),
                json!({"apiVersion": "v1", "kind": "Pod",
                       "metadata": {"name": name, "namespace": NS, "labels": {"app": "web", "pod-template-hash": "1a"},
                                    "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-1a", "uid": "r", "controller": true}]},
                       "spec": {"nodeName": NODE, "restartPolicy": "Never",
                                "containers": [{"name": "app", "image": BUSYBOX_IMAGE, "command": ["sh", "-c", command],
                                                "volumeMounts": [{"name": "trigger", "mountPath": "/trigger", "readOnly": true}]}],
                                "volumes": [{"name": "trigger", "hostPath": {"path": "/syscensus-test/trigger", "type": "Directory"}}]}}),
            )
            .unwrap();
        kubelet::run_pod(
            self.containerd.cri(),
            &self.node,
            &serde_json::from_value(created).unwrap(),
            &[],
        )
    }

    /// The Pod's status as the kubelet reports it: container `app` running,
    /// by its runtime id.
    fn report_running(&self, name: &str, id: &str) {
        self.server
            .apply_status(
                &Gvr::new("", "v1", "pods"),
                Some(NS),
                name,
                json!({"phase": "Running", "containerStatuses": [
                    {"name": "app", "containerID": format!("containerd://{id}"), "image": "busybox",
                     "imageID": "", "ready": true, "restartCount": 0, "state": {"running": {}}}]}),
            )
            .unwrap();
    }

    /// Makes /trigger/`name` for the workloads.
    fn trigger(&self, name: &str) {
        std::fs::write(self.trigger.join(name), b"").unwrap();
    }

    /// The syscalls (x86_64) of the workload's ContainerProfile, once it
    /// is written.
    fn profile(&self) -> Option<Vec<String>> {
        let profile = self
            .server
            .get(&Gvr::of::<ContainerProfile>(), Some(NS), PROFILE)
            .ok()?;
        Some(
            profile["spec"]["syscalls"]["SCMP_ARCH_X86_64"]
                .as_array()?
                .iter()
                .map(|n| n.as_str().unwrap().to_owned())
                .collect(),
        )
    }

    /// Waits until the workload's ContainerProfile holds all of `names`.
    fn wait_profile_with(&self, what: &str, agent: &KubeletPod<'_>, names: &[&str]) {
        self.until(what, agent, || {
            self.profile()
                .is_some_and(|have| names.iter().all(|n| have.iter().any(|h| h == n)))
        });
    }

    /// Polls `done` every 100 ms for up to [`WAIT`], failing with `what`,
    /// the agent's log and what the API server holds.
    fn until(&self, what: &str, agent: &KubeletPod<'_>, mut done: impl FnMut() -> bool) {
        let deadline = Instant::now() + WAIT;
        while !done() {
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}\nagent log:\n{}\nrefused: {:?}\nContainerProfiles: {:?}",
                agent.container("agent").logs().stderr,
                self.audit(),
                self.server
                    .list(&Gvr::of::<ContainerProfile>(), Some(NS))
                    .map(|list| list
                        .iter()
                        .map(|p| format!("{} {}", p["metadata"]["name"], p["spec"]["syscalls"]))
                        .collect::<Vec<_>>())
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The kernel's audit records, since the test started, of syscalls a
    /// seccomp filter refused.
    fn audit(&self) -> Vec<String> {
        kernel_log()
            .into_iter()
            .filter(|(time, line)| *time > self.since && line.contains("type=1326"))
            .map(|(_, line)| line)
            .collect()
    }

    /// Those of process `pid` (an agent).
    fn refused(&self, pid: u32) -> Vec<String> {
        let pid = format!(" pid={pid} ");
        self.audit()
            .into_iter()
            .filter(|line| line.contains(&pid))
            .collect()
    }

    /// Asserts that the agent (process `pid`, which logged `log`) met no
    /// refused syscall: none in its log, none in the kernel's.
    fn assert_nothing_refused(&self, pid: u32, log: &str) {
        for refused in ["Operation not permitted", "EPERM"] {
            assert!(
                !log.contains(refused),
                "the agent met a refused syscall under its profile:\n{log}"
            );
        }
        let refused = self.refused(pid);
        assert!(
            refused.is_empty(),
            "the agent's profile refused it syscalls (audit records; `syscall=` is the \
             x86_64 number):\n{}\nagent log:\n{log}",
            refused.join("\n")
        );
    }

    /// SIGTERM to the agent, as the kubelet stops it: it must exit 0, and
    /// have met no refused syscall in its life. Removes its Pod.
    fn stop_agent(&self, pod: KubeletPod<'_>) {
        let agent = pod.container("agent");
        let pid = agent.pid();
        let grace = self.template["spec"]["terminationGracePeriodSeconds"]
            .as_i64()
            .unwrap();
        agent.stop(grace);
        let code = agent.wait_exited(WAIT);
        let log = agent.logs().stderr;
        assert_eq!(code, 0, "the agent exited {code}:\n{log}");
        self.assert_nothing_refused(pid, &log);
        pod.stop();
    }
}

/// The workload of most tests: `uname` at once, `df /` (statfs) once
/// /trigger/go exists, then it ends.
const UNAME_THEN_STATFS: &str =
    "uname; while [ ! -e /trigger/go ]; do sleep 0.1; done; df / >/dev/null; echo done";

#[test]
fn under_its_profile_the_agent_waits_out_an_api_outage_and_writes_after_it() {
    require_root();
    let node = Node::start(Options::default());
    let agent = node.agent();
    let web = node.workload("web-1a-x", UNAME_THEN_STATFS);
    let app = web.container("app");
    // The agent knows the Pod: what the workload did first is written.
    node.wait_profile_with("the workload's first syscalls", &agent, &["uname"]);
    node.server.set_unavailable(true);
    node.trigger("go");
    assert_eq!(app.wait_exited(WAIT), 0, "{:?}", app.logs());
    node.until("the agent to fail to write", &agent, || {
        let log = agent.container("agent").logs().stderr;
        log.matches("cannot write a ContainerProfile").count() >= 1
    });
    node.server.set_unavailable(false);
    node.wait_profile_with("the result after the outage", &agent, &["uname", "statfs"]);
    // Its watches came back: a Pod made after the outage is recorded.
    let after = node.workload("web-1a-y", "cat /etc/passwd >/dev/null; echo read");
    assert_eq!(after.container("app").wait_exited(WAIT), 0);
    node.wait_profile_with("a Pod made after the outage", &agent, &["sendfile"]);
    node.stop_agent(agent);
}

#[test]
fn under_its_profile_the_agent_records_while_the_runtime_never_answers() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("cri.sock");
    hung_socket(&socket);
    let node = Node::start(Options {
        agent_cri: Some(socket),
        ..Options::default()
    });
    let agent = node.agent();
    let web = node.workload("web-1a-x", UNAME_THEN_STATFS);
    let app = web.container("app");
    // The runtime cannot name the container: the Pod's status does.
    node.report_running("web-1a-x", app.id());
    node.trigger("go");
    assert_eq!(app.wait_exited(WAIT), 0, "{:?}", app.logs());
    node.wait_profile_with("the result", &agent, &["uname", "statfs"]);
    let log = agent.container("agent").logs().stderr;
    assert!(
        log.contains("cannot ask the runtime"),
        "the agent never asked the runtime (the hung socket was not met):\n{log}"
    );
    node.stop_agent(agent);
}

#[test]
fn under_its_profile_the_agent_keeps_results_through_a_full_state_directory() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let tmpfs = Mount::new("tmpfs", "size=1m", &dir.path().join("state"));
    let node = Node::start(Options {
        state: Some(tmpfs.path().to_path_buf()),
        ..Options::default()
    });
    let agent = node.agent();
    let web = node.workload("web-1a-x", UNAME_THEN_STATFS);
    let app = web.container("app");
    // Chosen while it runs; then the directory fills up, and it ends.
    node.wait_profile_with("the workload's first syscalls", &agent, &["uname"]);
    let filler = tmpfs.path().join("filler");
    let _ = Command::new("dd")
        .args(["if=/dev/zero", "bs=4k"])
        .arg(format!("of={}", filler.display()))
        .stderr(std::process::Stdio::null())
        .status();
    node.trigger("go");
    assert_eq!(app.wait_exited(WAIT), 0, "{:?}", app.logs());
    let failed = format!("{}.json: No space left on device", app.id());
    node.until(
        "the result's write to fail for want of space",
        &agent,
        || agent.container("agent").logs().stderr.contains(&failed),
    );
    // Room again: the result, kept meanwhile, reaches the state directory
    // and the cluster.
    std::fs::remove_file(&filler).unwrap();
    let recording = tmpfs.path().join(format!("containers/{}.json", app.id()));
    node.until("the result on disk", &agent, || {
        std::fs::read(&recording).is_ok_and(|text| {
            serde_json::from_slice::<Value>(&text).is_ok_and(|r| {
                r["state"] == "Exited"
                    && r["syscalls"]["SCMP_ARCH_X86_64"]
                        .as_array()
                        .is_some_and(|names| names.iter().any(|n| n == "statfs"))
            })
        })
    });
    node.wait_profile_with("the result", &agent, &["uname", "statfs"]);
    node.stop_agent(agent);
    drop(web);
    drop(node);
    drop(tmpfs);
}

#[test]
fn under_its_profile_the_agent_killed_with_sigkill_is_restored_by_the_next() {
    require_root();
    let node = Node::start(Options::default());
    let first = node.agent();
    let web = node.workload("web-1a-x", UNAME_THEN_STATFS);
    let app = web.container("app");
    // The first agent has chosen the container (and written what it did so
    // far) before it dies.
    node.wait_profile_with("the workload's first syscalls", &first, &["uname"]);
    let agent = first.container("agent");
    let pid = agent.pid();
    // SAFETY: kill(2) with a pid the runtime reported, of a running
    // container's process.
    assert_eq!(unsafe { libc::kill(pid as i32, libc::SIGKILL) }, 0);
    assert_eq!(agent.wait_exited(WAIT), 137);
    let log = agent.logs().stderr;
    node.assert_nothing_refused(pid, &log);
    first.stop();
    // While no agent runs, the workload does what it had not done, and
    // ends; the kernel program, pinned, keeps recording.
    node.trigger("go");
    assert_eq!(app.wait_exited(WAIT), 0, "{:?}", app.logs());
    let second = node.agent();
    node.wait_profile_with(
        "what the workload did while no agent ran",
        &second,
        &["uname", "statfs"],
    );
    node.stop_agent(second);
}

#[test]
fn under_its_profile_and_crun_the_agent_killed_in_an_outage_is_restored_by_the_next() {
    require_root();
    let _crun = CrunCgroups::acquire();
    let node = Node::start(Options {
        runtime: Runtime::Crun,
        ..Options::default()
    });
    let first = node.agent();
    // crun runs the agent's Pod, and so installed its filter.
    let list = Command::new(Runtime::Crun.binary())
        .arg("--root")
        .arg(node.containerd.runtime_root())
        .arg("list")
        .output()
        .unwrap();
    let id = first.container("agent").id().to_owned();
    assert!(
        String::from_utf8_lossy(&list.stdout).contains(&id),
        "crun does not run the agent: {list:?}"
    );
    let web = node.workload("web-1a-x", UNAME_THEN_STATFS);
    let app = web.container("app");
    node.wait_profile_with("the workload's first syscalls", &first, &["uname"]);
    // The API server goes away; the workload does something new and ends;
    // the agent cannot write it to the cluster, and is killed.
    node.server.set_unavailable(true);
    node.trigger("go");
    assert_eq!(app.wait_exited(WAIT), 0, "{:?}", app.logs());
    node.until("the agent to fail to write", &first, || {
        first
            .container("agent")
            .logs()
            .stderr
            .contains("cannot write a ContainerProfile")
    });
    let agent = first.container("agent");
    let pid = agent.pid();
    // SAFETY: kill(2) with a pid the runtime reported, of a running
    // container's process.
    assert_eq!(unsafe { libc::kill(pid as i32, libc::SIGKILL) }, 0);
    assert_eq!(agent.wait_exited(WAIT), 137);
    node.assert_nothing_refused(pid, &agent.logs().stderr);
    first.stop();
    // The next agent, once the server is back, writes what the first one
    // could not.
    node.server.set_unavailable(false);
    let second = node.agent();
    node.wait_profile_with(
        "what the killed agent could not write",
        &second,
        &["uname", "statfs"],
    );
    node.stop_agent(second);
}
