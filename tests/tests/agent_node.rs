//! `syscensus agent --no-kube` against real runtimes: every container runc,
//! crun or containerd starts below the kubelet's cgroup roots is recorded
//! from its entrypoint's exec; the profile it writes runs the same workload
//! under the same runtime, 20 times in a row, and blocks what the workload
//! never did.
#![allow(clippy::unwrap_used, reason = "tests")]
#![allow(
    unused_crate_dependencies,
    reason = "an integration test uses some of its package's dependencies"
)]

use std::time::{Duration, Instant};

use serde_json::Value;
use syscensus_tests::{
    agent::{Agent, recorded},
    containers::{
        BUSYBOX_IMAGE, Bundle, CgroupStyle, ContainerSpec, Containerd, CrunCgroups, Detached,
        PodSpec, Qos, Rootfs, Runtime, Seccomp, Spec, run,
    },
    require_root,
};

const X86_64: &str = "SCMP_ARCH_X86_64";
const WAIT: Duration = Duration::from_secs(20);

/// The workload: a shell that lists, reads and prints, as a small service
/// would at start.
const WORKLOAD: [&str; 3] = [
    "sh",
    "-c",
    "echo ready; ls / >/dev/null; cat /etc/passwd >/dev/null; uname -a",
];

/// What the runtime does to set a container up: never the workload's.
const RUNTIME_SETUP: [&str; 6] = [
    "mount",
    "pivot_root",
    "umount2",
    "sethostname",
    "mknodat",
    "setns",
];

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Records WORKLOAD under `runtime` with the given cgroup style and
/// no_new_privs, then proves the profile: the workload passes 20 times, mkdir
/// fails with EPERM.
fn record_and_enforce(
    agent: &Agent,
    runtime: Runtime,
    style: CgroupStyle,
    no_new_privileges: bool,
) {
    let rootfs = Rootfs::busybox();
    let spec = Spec::new(&WORKLOAD)
        .cgroup(style, Qos::BestEffort)
        .no_new_privileges(no_new_privileges);
    let bundle = Bundle::new(rootfs.path(), spec);
    let output = run(runtime, &bundle);
    assert!(output.status.success(), "{runtime:?}: {output:?}");
    let recording = agent.wait_for_recording(bundle.id(), "Exited", WAIT);
    let what = format!("{runtime:?} {style:?} no_new_privileges={no_new_privileges}");

    let syscalls = recorded(&recording, X86_64);
    for expected in ["write", "getdents64", "uname", "openat", "exit_group"] {
        assert!(
            syscalls.contains(expected),
            "{what}: {expected} missing: {syscalls:?}"
        );
    }
    for setup in RUNTIME_SETUP {
        assert!(
            !syscalls.contains(setup),
            "{what}: runtime set-up {setup} recorded: {syscalls:?}"
        );
    }
    let expected_base = match (runtime, no_new_privileges) {
        // The agent is told the runtime, not its version: the runtime's
        // covering set, which holds what every version needs.
        (Runtime::Crun, true) => "crun-nnp",
        (Runtime::Crun, false) => "crun",
        (Runtime::Runc, true) => "runc-nnp",
        (Runtime::Runc, false) => "runc",
    };
    assert_eq!(recording["runtimeBaseSet"], expected_base, "{what}");
    assert_eq!(recording["start"], "Exec", "{what}");
    let profile: Value = recording["profile"].clone();

    for attempt in 1..=20 {
        let spec = Spec::new(&WORKLOAD)
            .cgroup(style, Qos::BestEffort)
            .no_new_privileges(no_new_privileges)
            .seccomp(profile.clone());
        let output = run(runtime, &Bundle::new(rootfs.path(), spec));
        assert!(
            output.status.success() && text(&output.stdout).starts_with("ready\n"),
            "{what}: attempt {attempt} under the recorded profile failed: {output:?}\nprofile: {profile}"
        );
    }
    let spec = Spec::new(&["mkdir", "/tmp/made"])
        .cgroup(style, Qos::BestEffort)
        .no_new_privileges(no_new_privileges)
        .seccomp(profile);
    let output = run(runtime, &Bundle::new(rootfs.path(), spec));
    assert!(
        !output.status.success(),
        "{what}: mkdir was allowed: {output:?}"
    );
    assert!(
        text(&output.stderr).contains("Operation not permitted"),
        "{what}: mkdir did not fail with EPERM: {output:?}"
    );
}

#[test]
fn runc_containers_are_recorded_and_their_profiles_run() {
    require_root();
    let agent = Agent::start(&["--no-kube"]);
    for style in [CgroupStyle::Cgroupfs, CgroupStyle::Systemd] {
        for no_new_privileges in [true, false] {
            record_and_enforce(&agent, Runtime::Runc, style, no_new_privileges);
        }
    }
}

#[test]
fn crun_containers_are_recorded_and_their_profiles_run() {
    require_root();
    let _crun = CrunCgroups::acquire();
    let agent = Agent::start(&["--no-kube", "--runtime", "crun"]);
    for style in [CgroupStyle::Cgroupfs, CgroupStyle::Systemd] {
        for no_new_privileges in [true, false] {
            record_and_enforce(&agent, Runtime::Crun, style, no_new_privileges);
        }
    }
}

#[test]
fn exec_sessions_are_left_out_and_running_containers_can_be_snapshotted() {
    require_root();
    let agent = Agent::start(&["--no-kube", "--exclude-exec-sessions"]);
    agent.wait_watching();
    let rootfs = Rootfs::busybox();
    let bundle = Bundle::new(
        rootfs.path(),
        Spec::new(&["sh", "-c", "echo up; while true; do sleep 0.1; done"]),
    );
    let container = Detached::run(Runtime::Runc, &bundle);
    // The workload is recorded, in its loop, before anything is exec'd.
    let deadline = Instant::now() + WAIT;
    loop {
        agent.snapshot();
        if let Some(running) = agent.recording(bundle.id())
            && running["state"] == "Running"
            && recorded(&running, X86_64)
                .iter()
                .any(|s| s == "clock_nanosleep" || s == "nanosleep")
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the workload's loop was not recorded:\n{}",
            agent.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // kubectl exec: runc exec runs its own helper inside the container's
    // cgroup, then the command. Neither is the workload; the command is an
    // exec session, left out of the profile as asked.
    let exec = container.exec(&["mkdir", "/tmp/from-exec"]);
    assert!(exec.status.success(), "{exec:?}");
    let exec = container.exec(&["sh", "-c", "ls /tmp; df / >/dev/null"]);
    assert!(exec.status.success(), "{exec:?}");

    agent.snapshot();
    let running = agent.wait_for_recording(bundle.id(), "Running", WAIT);
    let syscalls = recorded(&running, X86_64);
    assert!(
        syscalls.contains("clock_nanosleep") || syscalls.contains("nanosleep"),
        "{syscalls:?}"
    );
    for from_exec in [
        "mkdir",
        "mkdirat",
        "statfs",
        "getdents64",
        "epoll_pwait",
        "futex",
    ] {
        assert!(
            !syscalls.contains(from_exec),
            "exec session's {from_exec} recorded: {syscalls:?}"
        );
    }
    assert_eq!(running["execSessionsExcluded"], true, "{running}");
    // Left out of the profile, but listed.
    let listed: Vec<&Value> = running["sessions"].as_array().unwrap().iter().collect();
    assert!(
        listed
            .iter()
            .any(|s| s["command"][0] == "mkdir" && s["included"] == false),
        "{running}"
    );

    container.kill("KILL");
    container.wait_stopped(WAIT);
    container.delete();
    let exited = agent.wait_for_recording(bundle.id(), "Exited", WAIT);
    assert!(!recorded(&exited, X86_64).contains("mkdir"));
}

/// containerd with the test images, and an agent that asks it who each
/// container is.
fn containerd_and_agent() -> (Containerd, Agent) {
    let containerd = Containerd::start();
    containerd.import_test_images(&[]);
    let socket = containerd.socket().display().to_string();
    let agent = Agent::start(&["--no-kube", "--cri-socket", &socket]);
    (containerd, agent)
}

#[test]
fn containerd_pods_are_recorded_per_container_with_their_labels() {
    require_root();
    let (containerd, agent) = containerd_and_agent();
    let cri = containerd.cri();

    let pod = cri.run_pod(PodSpec::new("two").namespace("shop").label("app", "shop"));
    // Two containers doing different things: one reads a file (cat uses
    // sendfile), the other sleeps.
    let reader = pod.run_container(&ContainerSpec::new(
        "reader",
        BUSYBOX_IMAGE,
        &["sh", "-c", "cat /etc/passwd; echo read"],
    ));
    let sleeper = pod.run_container(&ContainerSpec::new(
        "sleeper",
        BUSYBOX_IMAGE,
        &["sh", "-c", "sleep 0.2; echo slept"],
    ));
    assert_eq!(reader.wait_exited(WAIT), 0, "{:?}", reader.logs());
    assert_eq!(sleeper.wait_exited(WAIT), 0, "{:?}", sleeper.logs());

    let read = agent.wait_for_recording(reader.id(), "Exited", WAIT);
    let slept = agent.wait_for_recording(sleeper.id(), "Exited", WAIT);
    for (recording, name) in [(&read, "reader"), (&slept, "sleeper")] {
        assert_eq!(recording["containerName"], name, "{recording}");
        assert_eq!(recording["pod"]["name"], "two");
        assert_eq!(recording["pod"]["namespace"], "shop");
        assert_eq!(recording["pod"]["uid"], pod.uid());
        assert_eq!(recording["labels"]["io.kubernetes.container.name"], name);
        assert_eq!(recording["runtimeBaseSet"], "runc");
    }
    let (read_calls, slept_calls) = (recorded(&read, X86_64), recorded(&slept, X86_64));
    assert!(
        read_calls.contains("sendfile") && !slept_calls.contains("sendfile"),
        "{read_calls:?} {slept_calls:?}"
    );
    assert!(
        slept_calls.contains("clock_nanosleep") && !read_calls.contains("clock_nanosleep"),
        "{read_calls:?} {slept_calls:?}"
    );

    // The reader's profile, as a Localhost profile through CRI: the
    // workload runs, 20 times in a row; mkdir does not.
    let profiles = tempfile::tempdir().unwrap();
    let path = profiles.path().join("reader.json");
    std::fs::write(&path, read["profile"].to_string()).unwrap();
    for attempt in 1..=20 {
        let again = pod.run_container(
            &ContainerSpec::new(
                &format!("reader-again-{attempt}"),
                BUSYBOX_IMAGE,
                &["sh", "-c", "cat /etc/passwd; echo read"],
            )
            .seccomp(Seccomp::Localhost(path.clone())),
        );
        assert_eq!(
            again.wait_exited(WAIT),
            0,
            "run {attempt} under the profile: {:?}",
            again.logs()
        );
        assert!(again.logs().stdout.ends_with("read\n"), "run {attempt}");
    }
    let blocked = pod.run_container(
        &ContainerSpec::new("blocked", BUSYBOX_IMAGE, &["mkdir", "/tmp/x"])
            .seccomp(Seccomp::Localhost(path)),
    );
    assert_eq!(blocked.wait_exited(WAIT), 1, "{:?}", blocked.logs());
    assert!(
        blocked.logs().stderr.contains("Operation not permitted"),
        "{:?}",
        blocked.logs()
    );

    // The Pod's sandbox (pause) container is not a workload. Recordings
    // are written when a container ends: end the sandbox, then wait for a
    // witness container that ends after it, so that the agent has looked
    // at the sandbox's end before its absence is checked.
    let sandbox = pod.id().to_owned();
    drop((reader, sleeper, blocked));
    pod.remove();
    let witness_pod = cri.run_pod(PodSpec::new("witness").namespace("shop"));
    let witness =
        witness_pod.run_container(&ContainerSpec::new("witness", BUSYBOX_IMAGE, &["true"]));
    assert_eq!(witness.wait_exited(WAIT), 0, "{:?}", witness.logs());
    agent.wait_for_recording(witness.id(), "Exited", WAIT);
    assert!(
        agent.recording(&sandbox).is_none(),
        "the sandbox was recorded"
    );
}

#[test]
fn a_container_removed_with_its_pod_as_it_ends_keeps_its_name() {
    require_root();
    let (containerd, agent) = containerd_and_agent();
    let cri = containerd.cri();

    // The runtime forgets a container when its Pod is removed, which can
    // be long before the agent's next look at it (a Job's Pod with
    // ttlSecondsAfterFinished: 0, a deleted Pod): its name must have been
    // asked for when its cgroup was made.
    for round in 0..5 {
        let pod = cri.run_pod(PodSpec::new(&format!("brief-{round}")).namespace("shop"));
        let container = pod.run_container(&ContainerSpec::new(
            "brief",
            BUSYBOX_IMAGE,
            &["sh", "-c", "echo hi"],
        ));
        let id = container.id().to_owned();
        assert_eq!(container.wait_exited(WAIT), 0, "{:?}", container.logs());
        drop(container);
        pod.remove();
        let recording = agent.wait_for_recording(&id, "Exited", WAIT);
        assert_eq!(recording["containerName"], "brief", "{recording}");
        assert_eq!(recording["pod"]["name"], format!("brief-{round}"));
        assert_eq!(recording["pod"]["namespace"], "shop");
    }
}

/// `--include-running`: a container already running when the agent starts
/// is recorded from then on, marked `Late`; and SIGTERM writes what a
/// running container did (no snapshot was asked for).
#[test]
fn a_running_container_is_included_when_asked_and_written_at_sigterm() {
    require_root();
    let rootfs = Rootfs::busybox();
    let bundle = Bundle::new(
        rootfs.path(),
        Spec::new(&[
            "sh",
            "-c",
            "while [ ! -e /tmp/go ]; do sleep 0.1; done; df / >/dev/null; echo done >/tmp/done; \
             while :; do sleep 0.1; done",
        ]),
    );
    let container = Detached::run(Runtime::Runc, &bundle);
    let state = tempfile::tempdir().unwrap();
    let agent = Agent::start_in(state.path(), &["--no-kube", "--include-running"], &[]);
    agent.wait_watching();
    let deadline = Instant::now() + WAIT;
    // Taken on: the container is in the agent's checkpoint.
    while !std::fs::read_to_string(agent.state_dir().join("checkpoint.json"))
        .unwrap_or_default()
        .contains(bundle.id())
    {
        assert!(
            Instant::now() < deadline,
            "the running container was not taken on:\n{}",
            agent.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let root = format!("/proc/{}/root", container.pid());
    std::fs::write(format!("{root}/tmp/go"), b"").unwrap();
    while !std::path::Path::new(&format!("{root}/tmp/done")).exists() {
        assert!(Instant::now() < deadline, "the workload did not go on");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        agent.recording(bundle.id()).is_none(),
        "written before SIGTERM"
    );
    let log = agent.stop();
    let text = std::fs::read_to_string(
        state
            .path()
            .join("containers")
            .join(format!("{}.json", bundle.id())),
    )
    .unwrap_or_else(|e| {
        panic!("SIGTERM wrote no recording of the running container ({e}):\n{log}")
    });
    let recording: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(recording["state"], "Running", "{recording}");
    assert_eq!(recording["start"], "Late", "{recording}");
    let syscalls = recorded(&recording, X86_64);
    assert!(syscalls.contains("statfs"), "{syscalls:?}");
    drop(container);
}

/// crun through CRI: containerd's runc shim driving crun, as nodes that run
/// crun configure it. The agent (told the runtime is crun) records a Pod's
/// container; its profile, as a Localhost profile through CRI, runs the
/// workload under crun 20 times in a row and blocks mkdir with EPERM.
#[test]
fn crun_through_cri_is_recorded_and_its_profile_runs() {
    require_root();
    let _crun = CrunCgroups::acquire();
    let containerd = Containerd::start_with(Runtime::Crun);
    containerd.import_test_images(&[]);
    let socket = containerd.socket().display().to_string();
    let agent = Agent::start(&["--no-kube", "--cri-socket", &socket, "--runtime", "crun"]);
    agent.wait_watching();
    let cri = containerd.cri();
    let pod = cri.run_pod(PodSpec::new("crun").namespace("shop"));
    // crun runs the Pod: its sandbox is in crun's list.
    let list = std::process::Command::new(Runtime::Crun.binary())
        .arg("--root")
        .arg(containerd.runtime_root())
        .arg("list")
        .output()
        .unwrap();
    assert!(
        text(&list.stdout).contains(pod.id()),
        "crun does not run the sandbox: {list:?}"
    );
    let workload = ["sh", "-c", "cat /etc/passwd; echo read"];
    let reader = pod.run_container(&ContainerSpec::new("reader", BUSYBOX_IMAGE, &workload));
    assert_eq!(reader.wait_exited(WAIT), 0, "{:?}", reader.logs());
    let read = agent.wait_for_recording(reader.id(), "Exited", WAIT);
    assert_eq!(read["containerName"], "reader", "{read}");
    assert_eq!(read["runtimeBaseSet"], "crun", "{read}");
    let syscalls = recorded(&read, X86_64);
    assert!(syscalls.contains("sendfile"), "{syscalls:?}");
    for setup in RUNTIME_SETUP {
        assert!(
            !syscalls.contains(setup),
            "runtime set-up {setup} recorded: {syscalls:?}"
        );
    }

    let profiles = tempfile::tempdir().unwrap();
    let path = profiles.path().join("reader.json");
    std::fs::write(&path, read["profile"].to_string()).unwrap();
    for attempt in 1..=20 {
        let again = pod.run_container(
            &ContainerSpec::new(&format!("reader-again-{attempt}"), BUSYBOX_IMAGE, &workload)
                .seccomp(Seccomp::Localhost(path.clone())),
        );
        assert_eq!(
            again.wait_exited(WAIT),
            0,
            "run {attempt} under the profile: {:?}",
            again.logs()
        );
        assert!(again.logs().stdout.ends_with("read\n"), "run {attempt}");
    }
    let blocked = pod.run_container(
        &ContainerSpec::new("blocked", BUSYBOX_IMAGE, &["mkdir", "/tmp/x"])
            .seccomp(Seccomp::Localhost(path)),
    );
    assert_eq!(blocked.wait_exited(WAIT), 1, "{:?}", blocked.logs());
    assert!(
        blocked.logs().stderr.contains("Operation not permitted"),
        "{:?}",
        blocked.logs()
    );
}

/// A watched root made after the agent started, as on a fresh node before
/// the kubelet's first Pod: the systemd driver's `/kubepods.slice` is made
/// by the runtime for the container, and the container is recorded from
/// its entrypoint's exec.
#[test]
fn a_container_below_a_root_made_after_the_agent_started_is_recorded() {
    require_root();
    let slice = syscensus_tests::containers::cgroup::unified_root().join("kubepods.slice");
    // Empty cgroups left by earlier runs go; a populated one is a leak.
    fn remove_empty(dir: &std::path::Path) {
        if let Ok(entries) = std::fs::read_dir(dir) {
            for entry in entries.flatten() {
                if entry.file_type().is_ok_and(|t| t.is_dir()) {
                    remove_empty(&entry.path());
                }
            }
        }
        let _ = std::fs::remove_dir(dir);
    }
    remove_empty(&slice);
    assert!(
        !slice.exists(),
        "{} holds processes; the root must not exist yet",
        slice.display()
    );
    let agent = Agent::start(&["--no-kube"]);
    agent.wait_watching();
    assert!(
        agent.log().contains("not there yet"),
        "the agent found the root:\n{}",
        agent.log()
    );

    let rootfs = Rootfs::busybox();
    let spec = Spec::new(&WORKLOAD).cgroup(CgroupStyle::Systemd, Qos::BestEffort);
    let bundle = Bundle::new(rootfs.path(), spec);
    let output = run(Runtime::Runc, &bundle);
    assert!(output.status.success(), "{output:?}");
    let recording = agent.wait_for_recording(bundle.id(), "Exited", WAIT);
    assert_eq!(recording["start"], "Exec", "{recording}");
    let syscalls = recorded(&recording, X86_64);
    for expected in ["getdents64", "uname", "exit_group"] {
        assert!(
            syscalls.contains(expected),
            "{expected} missing: {syscalls:?}"
        );
    }
}
