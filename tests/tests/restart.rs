//! Restarts without loss: with its maps and links pinned, the agent can be
//! killed with SIGKILL at any moment, stay away for a while, and come back;
//! the container's recording is the same as an uninterrupted one. A graceful
//! stop leaves the programs attached for the next agent, unless told to
//! detach; `syscensus uninstall` unpins everything.
#![allow(clippy::unwrap_used, reason = "tests")]
#![allow(
    unused_crate_dependencies,
    reason = "an integration test uses some of its package's dependencies"
)]

use std::{
    collections::BTreeSet,
    time::{Duration, Instant},
};

use syscensus_tests::{
    agent::{Agent, PinDir, recorded},
    containers::{Bundle, Detached, Rootfs, Runtime, Spec},
    require_root,
};

/// A workload that makes different syscalls over eight seconds, so that
/// every gap misses something unless nothing is lost.
const WORKLOAD: [&str; 3] = [
    "sh",
    "-c",
    "for step in 1 2 3 4 5 6 7 8; do case $step in \
     1) uname ;; 2) cat /etc/passwd ;; 3) ls / ;; 4) df / ;; 5) id ;; 6) hostname ;; 7) date ;; 8) stat / ;; \
     esac >/dev/null; sleep 1; done",
];

fn run_workload(agent_for: impl FnOnce(&Bundle) -> BTreeSet<String>) -> BTreeSet<String> {
    let rootfs = Rootfs::busybox();
    let bundle = Bundle::new(rootfs.path(), Spec::new(&WORKLOAD));
    agent_for(&bundle)
}

#[test]
fn sigkill_at_any_moment_loses_nothing() {
    require_root();
    // Uninterrupted: the reference.
    let reference = run_workload(|bundle| {
        let agent = Agent::start(&["--no-kube"]);
        let container = Detached::run(Runtime::Runc, bundle);
        container.wait_stopped(Duration::from_secs(30));
        let recording = agent.wait_for_recording(bundle.id(), "Exited", Duration::from_secs(20));
        recorded(&recording, "SCMP_ARCH_X86_64")
    });
    assert!(
        reference.contains("uname") && reference.contains("statfs"),
        "{reference:?}"
    );

    // Killed again and again while the workload runs, sometimes staying
    // away for a while.
    let pins = PinDir::default();
    let pin_arg = pins.arg().to_owned();
    let state = tempfile::tempdir().unwrap();
    let args = ["--no-kube", "--pin-dir", pin_arg.as_str()];
    let interrupted = run_workload(|bundle| {
        let mut agent = Agent::start_in(state.path(), &args, &[]);
        let container = Detached::run(Runtime::Runc, bundle);
        let started = Instant::now();
        let mut round = 0u64;
        while container.status() == "running" && started.elapsed() < Duration::from_secs(30) {
            // A different moment each round; every third round, a gap with
            // no agent at all.
            std::thread::sleep(Duration::from_millis(100 + (round * 137) % 300));
            agent.kill();
            if round % 3 == 2 {
                std::thread::sleep(Duration::from_millis(700));
            }
            agent = Agent::start_in(state.path(), &args, &[]);
            round += 1;
        }
        assert!(round >= 3, "the agent was killed only {round} times");
        container.wait_stopped(Duration::from_secs(30));
        let recording = agent.wait_for_recording(bundle.id(), "Exited", Duration::from_secs(20));
        drop(agent);
        recorded(&recording, "SCMP_ARCH_X86_64")
    });
    let missing: Vec<_> = reference.difference(&interrupted).collect();
    let extra: Vec<_> = interrupted.difference(&reference).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "missing {missing:?}, extra {extra:?}"
    );
}

fn pinned(dir: &std::path::Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// A DaemonSet's rolling update: SIGTERM, a gap with no agent, a new agent.
/// The programs stay attached and pinned in between, so what the container
/// does meanwhile (a fork, a syscall it had not made) is in its recording;
/// `syscensus uninstall` then leaves nothing pinned.
#[test]
fn a_rolling_update_loses_nothing_and_uninstall_unpins_everything() {
    require_root();
    let pins = PinDir::default();
    let pin_arg = pins.arg().to_owned();
    let state = tempfile::tempdir().unwrap();
    let args = ["--no-kube", "--pin-dir", pin_arg.as_str()];
    let agent = Agent::start_in(state.path(), &args, &[]);
    agent.wait_watching();
    let rootfs = Rootfs::busybox();
    let bundle = Bundle::new(
        rootfs.path(),
        Spec::new(&[
            "sh",
            "-c",
            "uname >/dev/null; while [ ! -e /tmp/go ]; do sleep 0.1; done; df / >/dev/null",
        ]),
    );
    let container = Detached::run(Runtime::Runc, &bundle);
    let pid = container.pid();
    let links = pins.path().join(syscensus::bpf::PIN_LAYOUT).join("links");
    let log = agent.stop();
    assert!(
        pinned(&links).contains(&"sys_enter".to_owned()),
        "sys_enter unpinned by SIGTERM: {:?}\n{log}",
        pinned(&links)
    );

    // No agent: the container forks df, which makes statfs.
    std::fs::write(format!("/proc/{pid}/root/tmp/go"), b"").unwrap();
    container.wait_stopped(Duration::from_secs(30));

    let agent = Agent::start_in(state.path(), &args, &[]);
    let recording = agent.wait_for_recording(bundle.id(), "Exited", Duration::from_secs(20));
    let syscalls = recorded(&recording, "SCMP_ARCH_X86_64");
    assert!(
        syscalls.contains("statfs") && syscalls.contains("uname"),
        "{recording}\n{log}"
    );
    drop(agent.stop());

    // Uninstall: nothing pinned, nothing attached.
    let out = syscensus_tests::syscensus(&[
        "uninstall",
        "--pin-dir",
        &pin_arg,
        "--state-dir",
        state.path().to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{out:?}");
    assert!(!pins.path().exists(), "{:?}", pinned(pins.path()));
}

#[test]
fn a_stop_told_to_detach_detaches_every_program_and_keeps_the_maps() {
    require_root();
    let pins = PinDir::default();
    let pin_arg = pins.arg().to_owned();
    let agent = Agent::start(&["--no-kube", "--pin-dir", &pin_arg, "--detach-on-stop"]);
    let layout = pins.path().join(syscensus::bpf::PIN_LAYOUT);
    let links = layout.join("links");
    assert!(
        pinned(&links).contains(&"sys_enter".to_owned()),
        "{:?}",
        pinned(&links)
    );
    let log = agent.stop();
    assert!(
        pinned(&links).is_empty(),
        "links left pinned after SIGTERM with --detach-on-stop: {:?}\n{log}",
        pinned(&links)
    );
    assert!(
        pinned(&layout).contains(&"ROWS".to_owned()),
        "the maps should stay pinned"
    );
}
