//! Faults the agent meets on a node, each with a clear behaviour: a full
//! kernel map is counted, named and shown; syscall numbers out of range are
//! flagged; a full state directory delays results without losing them; a
//! read-only one stops the agent with one line; a cgroup gone before the
//! agent looks at it is still recorded; a container runtime that never
//! answers delays names, not results; API errors and conflicts are
//! retried. The API server is simulated (`syscensus_tests::apiserver`).
#![allow(clippy::unwrap_used, reason = "tests")]
#![allow(
    unused_crate_dependencies,
    reason = "an integration test uses some of its package's dependencies"
)]

use std::{
    io::{Read as _, Write as _},
    path::Path,
    process::Command,
    time::{Duration, Instant},
};

use serde_json::json;
use syscensus_api::{ContainerProfile, ProfileRecording};
use syscensus_tests::{
    agent::Agent,
    apiserver::{FakeApiServer, Gvr},
    containers::{
        BUSYBOX_IMAGE, Bundle, ContainerSpec, Containerd, Detached, PodSpec, Rootfs, Runtime, Spec,
        container_id, pod_uid, run,
    },
    program, require_root, syscensus_bin,
};

const WAIT: Duration = Duration::from_secs(30);

/// A free TCP port on the loopback.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A metric's value from the agent's /metrics.
fn metric(port: u16, name: &str) -> u64 {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("syscensus_{name} ")))
        .unwrap_or_else(|| panic!("no {name} in\n{text}"))
        .trim()
        .parse()
        .unwrap()
}

fn wait_until(what: &str, agent: &Agent, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !done() {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}\n{}",
            agent.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_full_kernel_map_is_counted_named_and_shown() {
    require_root();
    let port = free_port();
    // Room for a few rows only: each new container also makes QoS and Pod
    // cgroups, which take a row until the agent sees what they are.
    let agent = Agent::start(&[
        "--no-kube",
        "--max-cgroups",
        "3",
        "--listen",
        &format!("127.0.0.1:{port}"),
    ]);
    let rootfs = Rootfs::busybox();
    let bundles: Vec<Bundle> = (0..4)
        .map(|_| Bundle::new(rootfs.path(), Spec::new(&["sleep", "1000"])))
        .collect();
    let containers: Vec<Detached> = bundles
        .iter()
        .map(|b| Detached::run(Runtime::Runc, b))
        .collect();
    wait_until("the loss to be counted", &agent, || {
        metric(port, "row_map_full_total") > 0
    });
    wait_until("a container to be named as lost", &agent, || {
        metric(port, "containers_lost_total") > 0
    });
    assert!(
        agent.log().contains("the kernel map is full"),
        "{}",
        agent.log()
    );
    drop(containers);
}

#[test]
fn syscall_numbers_out_of_range_are_flagged() {
    require_root();
    let out_of_range = program("out_of_range", &[]).display().to_string();
    let dir = tempfile::tempdir().unwrap();
    let profile = dir.path().join("p.json");
    let output = Command::new(syscensus_bin())
        .arg("record")
        .arg("-o")
        .arg(&profile)
        .args(["--", &out_of_range])
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("outside the recorded range"), "{stderr}");
    assert!(profile.exists());
}

/// A small tmpfs, unmounted on drop.
struct Tmpfs(tempfile::TempDir);

impl Tmpfs {
    fn mount(options: &str) -> Tmpfs {
        let dir = tempfile::tempdir().unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", options, "tmpfs"])
            .arg(dir.path())
            .status()
            .unwrap();
        assert!(status.success());
        Tmpfs(dir)
    }

    fn path(&self) -> &Path {
        self.0.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.0.path()).status();
    }
}

#[test]
fn a_full_state_directory_delays_results_without_losing_them() {
    require_root();
    let tmpfs = Tmpfs::mount("size=1m");
    let agent = Agent::start_in(tmpfs.path(), &["--no-kube"], &[]);
    // Fill it up.
    let filler = tmpfs.path().join("filler");
    let _ = Command::new("dd")
        .args(["if=/dev/zero", "bs=4k"])
        .arg(format!("of={}", filler.display()))
        .stderr(std::process::Stdio::null())
        .status();
    let rootfs = Rootfs::busybox();
    let bundle = Bundle::new(rootfs.path(), Spec::new(&["sh", "-c", "uname; echo done"]));
    assert!(run(Runtime::Runc, &bundle).status.success());
    // The agent tried to write the result, and failed: only then is its
    // absence worth checking.
    wait_until("a write that fails for want of space", &agent, || {
        agent.log().contains("No space left on device")
    });
    assert!(
        agent.recording(bundle.id()).is_none(),
        "written into a full directory?"
    );
    // Room again: the result, kept meanwhile, is written.
    std::fs::remove_file(&filler).unwrap();
    let recording = agent.wait_for_recording(bundle.id(), "Exited", WAIT);
    assert!(
        recording["syscalls"]["SCMP_ARCH_X86_64"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s == "uname")
    );
    drop(agent);
}

#[test]
fn a_read_only_state_directory_stops_the_agent_with_one_line() {
    require_root();
    let tmpfs = Tmpfs::mount("ro,size=1m");
    let output = Command::new(syscensus_bin())
        .args(["agent", "--no-kube", "--no-pin", "--state-dir"])
        .arg(tmpfs.path().join("state"))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(73), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("syscensus:"))
        .collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(
        lines[0].contains("Read-only file system") && lines[0].contains("--state-dir"),
        "{}",
        lines[0]
    );
}

#[test]
fn a_missing_btf_stops_the_agent_with_one_line() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(syscensus_bin())
        .env("SYSCENSUS_KERNEL_BTF", "/nonexistent/vmlinux")
        .args(["agent", "--no-kube", "--no-pin", "--state-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(69), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("BTF") && stderr.contains("/nonexistent/vmlinux"),
        "{stderr}"
    );
}

/// A container's life in a few milliseconds, without a runtime: its cgroup
/// is made below `/kubepods`, a process moves in, execs `uname` in a mount
/// namespace of its own (as an entrypoint does) and exits, and the cgroup is
/// removed at once, long before the agent's next look. Returns the
/// container id and the Pod's cgroup path.
fn brief_container() -> (String, String) {
    let id = container_id();
    let pod = format!("/kubepods/besteffort/pod{}", pod_uid());
    let dir = format!("/sys/fs/cgroup/unified{pod}/{id}");
    std::fs::create_dir_all(&dir).unwrap();
    let status = Command::new("unshare")
        .args(["-m", "sh", "-c"])
        .arg(format!(
            "echo $$ > {dir}/cgroup.procs && exec /bin/busybox uname -a"
        ))
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    std::fs::remove_dir(&dir).unwrap();
    let _ = std::fs::remove_dir(format!("/sys/fs/cgroup/unified{pod}"));
    (id, pod)
}

#[test]
fn a_cgroup_gone_before_the_agent_looks_is_still_recorded() {
    require_root();
    let agent = Agent::start(&["--no-kube"]);
    let (id, pod) = brief_container();
    let recording = agent.wait_for_recording(&id, "Exited", WAIT);
    let syscalls = recording["syscalls"]["SCMP_ARCH_X86_64"]
        .as_array()
        .unwrap();
    assert!(syscalls.iter().any(|s| s == "uname"), "{recording}");
    assert_eq!(recording["cgroup"], format!("{pod}/{id}"));
}

#[test]
fn a_runtime_that_never_answers_delays_names_not_results() {
    require_root();
    // A CRI socket that takes connections and never answers, as a hung
    // containerd does: each call ends at the client's 5 s timeout.
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("cri.sock");
    let listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().flatten() {
            held.push(stream);
        }
    });
    let agent = Agent::start(&["--no-kube", "--cri-socket", socket.to_str().unwrap()]);
    let started = Instant::now();
    // Six containers that live a few milliseconds each. Asked about one by
    // one, they would hold the agent for 30 s before the first result.
    // The agent is held while the first one runs, as on a loaded node: on
    // waking, its tick may be the one to take that container's event and
    // wait on the runtime while the other five come and go, and must not
    // then take their rows for lost events.
    // SAFETY: kill(2) on the agent, our own child.
    unsafe { libc::kill(agent.pid() as i32, libc::SIGSTOP) };
    let mut ids = vec![brief_container().0];
    std::thread::sleep(Duration::from_millis(400));
    // SAFETY: as above.
    unsafe { libc::kill(agent.pid() as i32, libc::SIGCONT) };
    std::thread::sleep(Duration::from_millis(100));
    ids.extend((0..5).map(|_| brief_container().0));
    for id in &ids {
        let left = WAIT.saturating_sub(started.elapsed());
        let recording = agent.wait_for_recording(id, "Exited", left);
        let syscalls = recording["syscalls"]["SCMP_ARCH_X86_64"]
            .as_array()
            .unwrap();
        assert!(syscalls.iter().any(|s| s == "uname"), "{recording}");
        assert!(recording["containerName"].is_null(), "{recording}");
    }
    // The runtime is left alone for 5 s after a failed call, not asked
    // again for every container.
    let asked = agent.log().matches("cannot ask the runtime").count();
    let periods = started.elapsed().as_secs() / 5 + 1;
    assert!(
        (1..=periods as usize).contains(&asked),
        "asked {asked} times in {periods} quiet periods:\n{}",
        agent.log()
    );
}

#[test]
fn api_errors_and_conflicts_are_retried() {
    require_root();
    let ns = "shop";
    let server = FakeApiServer::start_with_syscensus(ns);
    server
        .create(
            &Gvr::of::<ProfileRecording>(),
            Some(ns),
            json!({"apiVersion": "syscensus.io/v1alpha1", "kind": "ProfileRecording",
                   "metadata": {"name": "rec", "namespace": ns}, "spec": {"podSelector": {}}}),
        )
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    server.write_kubeconfig(&kubeconfig).unwrap();
    let containerd = Containerd::start();
    containerd.import_test_images(&[]);
    let cri = containerd.cri();
    let port = free_port();
    let agent = Agent::start_with_env(
        &[
            "--cri-socket",
            &containerd.socket().display().to_string(),
            "--no-install",
            "--flush-interval",
            "1",
            "--listen",
            &format!("127.0.0.1:{port}"),
        ],
        &[
            ("NODE_NAME", "node-a"),
            ("KUBECONFIG", kubeconfig.to_str().unwrap()),
        ],
    );
    agent.wait_watching();
    let created = server
        .create(
            &Gvr::new("", "v1", "pods"),
            Some(ns),
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "solo", "namespace": ns},
                   "spec": {"nodeName": "node-a", "containers": [{"name": "app", "image": "busybox"}]}}),
        )
        .unwrap();
    let mut spec = PodSpec::new("solo").namespace(ns);
    spec.uid = created["metadata"]["uid"].as_str().unwrap().to_owned();
    let pod = cri.run_pod(spec);
    // Errors as the result is written: server errors, then, once they
    // were met, a conflict (as when another node wrote meanwhile).
    server.fail_next_writes(3, 500);
    let app = pod.run_container(&ContainerSpec::new(
        "app",
        BUSYBOX_IMAGE,
        &["sh", "-c", "uname"],
    ));
    assert_eq!(app.wait_exited(WAIT), 0);
    wait_until("the three server errors met and counted", &agent, || {
        metric(port, "api_errors_total") >= 3
    });
    server.fail_next_writes(1, 409);
    let profiles = Gvr::of::<ContainerProfile>();
    wait_until("the result despite the errors", &agent, || {
        server.get(&profiles, Some(ns), "rec.pod.solo.app").is_ok()
    });
    assert!(
        metric(port, "api_errors_total") > 0,
        "the errors were not counted"
    );
    assert_eq!(metric(port, "results_pending"), 0);
}
