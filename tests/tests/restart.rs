//! Restarts without loss: with its maps and links pinned, the agent can be
//! killed with SIGKILL at any moment, stay away for a while, and come back;
//! the container's recording is the same as an uninterrupted one. A graceful
//! stop leaves the programs attached for the next agent, unless told to
//! detach; `syscensus uninstall` unpins everything. Agents pin by default
//! when a BPF file system is mounted at /sys/fs/bpf.
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

/// Where agents pin when told nothing else.
const DEFAULT_PINS: &str = "/sys/fs/bpf/syscensus";

/// Removes the default pin directory (as `syscensus uninstall` does) when
/// dropped, so that a failed test leaves nothing attached. Made only once
/// the directory was seen absent: another agent's pins are not this test's.
struct DefaultPins;

impl DefaultPins {
    fn claim() -> DefaultPins {
        assert!(
            !std::path::Path::new(DEFAULT_PINS).exists(),
            "{DEFAULT_PINS} exists: an agent runs on this machine or left its pins (syscensus uninstall removes them)"
        );
        DefaultPins
    }
}

impl Drop for DefaultPins {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(DEFAULT_PINS);
    }
}

/// /sys/fs/bpf's entries, less the pin directories of this binary's other
/// tests (which run at the same time).
fn bpffs_entries() -> BTreeSet<String> {
    pinned(std::path::Path::new("/sys/fs/bpf"))
        .into_iter()
        .filter(|name| !name.starts_with("syscensus-test-"))
        .collect()
}

/// Without a pin option, an agent on a node with bpffs at /sys/fs/bpf pins
/// in /sys/fs/bpf/syscensus: after a SIGKILL, what the container does while
/// no agent runs is in the next agent's recording, and `syscensus
/// uninstall` with no option removes it all. `--no-pin` pins nothing.
#[test]
fn an_agent_pins_by_default_and_not_with_no_pin() {
    require_root();
    let _pins = DefaultPins::claim();
    let state = tempfile::tempdir().unwrap();
    let agent = Agent::start_with_default_pins(&[], state.path(), &["--no-kube"], &[]);
    agent.wait_watching();
    let links = std::path::Path::new(DEFAULT_PINS)
        .join(syscensus::bpf::PIN_LAYOUT)
        .join("links");
    assert!(
        pinned(&links).contains(&"sys_enter".to_owned()),
        "nothing pinned by default in {}: {:?}\n{}",
        links.display(),
        pinned(&links),
        agent.log()
    );
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
    let log = agent.log();
    agent.kill();

    // No agent: the container forks df, which makes statfs.
    std::fs::write(format!("/proc/{pid}/root/tmp/go"), b"").unwrap();
    container.wait_stopped(Duration::from_secs(30));

    let agent = Agent::start_with_default_pins(&[], state.path(), &["--no-kube"], &[]);
    let recording = agent.wait_for_recording(bundle.id(), "Exited", Duration::from_secs(20));
    let syscalls = recorded(&recording, "SCMP_ARCH_X86_64");
    assert!(
        syscalls.contains("statfs") && syscalls.contains("uname"),
        "{recording}\n{log}\n{}",
        agent.log()
    );
    let log = agent.stop();
    assert!(
        pinned(&links).contains(&"sys_enter".to_owned()),
        "sys_enter unpinned by SIGTERM: {:?}\n{log}",
        pinned(&links)
    );
    let out =
        syscensus_tests::syscensus(&["uninstall", "--state-dir", state.path().to_str().unwrap()]);
    assert!(out.status.success(), "{out:?}");
    assert!(
        !std::path::Path::new(DEFAULT_PINS).exists(),
        "uninstall left {:?}",
        pinned(std::path::Path::new(DEFAULT_PINS))
    );

    // --no-pin: nothing under /sys/fs/bpf, while it runs or after.
    let before = bpffs_entries();
    let agent = Agent::start(&["--no-kube", "--no-pin"]);
    agent.wait_watching();
    assert_eq!(bpffs_entries(), before, "{}", agent.log());
    let log = agent.stop();
    assert_eq!(bpffs_entries(), before, "{log}");
}

/// Without bpffs at /sys/fs/bpf (a tmpfs in the agent's own mount
/// namespace here), an agent told nothing says once that it runs unpinned,
/// and records.
#[test]
fn without_bpffs_the_agent_warns_once_and_runs_unpinned() {
    require_root();
    let state = tempfile::tempdir().unwrap();
    let agent = Agent::start_with_default_pins(
        &[
            "unshare",
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            "mount -t tmpfs tmpfs /sys/fs/bpf && exec \"$@\"",
            "sh",
        ],
        state.path(),
        &["--no-kube"],
        &[],
    );
    agent.wait_watching();
    let rootfs = Rootfs::busybox();
    let bundle = Bundle::new(rootfs.path(), Spec::new(&["uname"]));
    let container = Detached::run(Runtime::Runc, &bundle);
    container.wait_stopped(Duration::from_secs(30));
    let recording = agent.wait_for_recording(bundle.id(), "Exited", Duration::from_secs(20));
    assert!(
        recorded(&recording, "SCMP_ARCH_X86_64").contains("uname"),
        "{recording}"
    );
    let log = agent.stop();
    let warnings = log
        .lines()
        .filter(|l| l.contains("no BPF file system mounted: running unpinned"))
        .count();
    assert_eq!(warnings, 1, "{log}");
}
