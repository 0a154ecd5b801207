//! A node that cannot run the agent gets one line at its start naming what
//! is missing (exit status 69), before anything is loaded: kernel BTF
//! without the `bpf_get_current_task_btf` helper, no cgroup v2 hierarchy at
//! or below `--cgroup-mount`, a pin directory outside bpffs.
#![allow(
    unused_crate_dependencies,
    reason = "an integration test uses some of its package's dependencies"
)]
#![allow(clippy::unwrap_used, reason = "tests")]

use std::process::{Command, Output};

use syscensus_tests::{require_root, syscensus_bin};

/// `syscensus agent --no-kube ARGS`, pinning nothing unless ARGS say where.
fn agent(args: &[&str], env: &[(&str, &str)]) -> Output {
    let state = tempfile::tempdir().unwrap();
    let pins: &[&str] = if args.contains(&"--pin-dir") {
        &[]
    } else {
        &["--no-pin"]
    };
    Command::new(syscensus_bin())
        .args(["agent", "--no-kube", "--state-dir"])
        .arg(state.path())
        .args(pins)
        .args(args)
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

/// The one line of stderr, after checking the exit status.
fn refusal(output: &Output) -> String {
    assert_eq!(output.status.code(), Some(69), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(stderr.lines().count(), 1, "not one line: {stderr}");
    assert!(
        stderr.starts_with("syscensus: this node cannot run the agent: "),
        "{stderr}"
    );
    stderr
}

#[test]
fn a_kernel_without_the_helper_is_named() {
    require_root();
    // This kernel's BTF with the helper's name changed: as a kernel older
    // than 5.11 would have it.
    let mut btf = std::fs::read("/sys/kernel/btf/vmlinux").unwrap();
    let name = b"BPF_FUNC_get_current_task_btf\0";
    let at = btf
        .windows(name.len())
        .position(|w| w == name)
        .expect("this kernel's BTF names the helper");
    btf[at + name.len() - 4..at + name.len() - 1].copy_from_slice(b"xyz");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("vmlinux");
    std::fs::write(&file, btf).unwrap();
    let output = agent(&[], &[("SYSCENSUS_KERNEL_BTF", file.to_str().unwrap())]);
    let line = refusal(&output);
    assert!(
        line.contains("has no bpf_get_current_task_btf helper: Linux 5.11 or later is needed"),
        "{line}"
    );
}

#[test]
fn everything_missing_is_named_at_once() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let pins = dir.path().join("pins");
    let output = agent(
        &[
            "--cgroup-mount",
            dir.path().to_str().unwrap(),
            "--pin-dir",
            pins.to_str().unwrap(),
        ],
        &[("SYSCENSUS_KERNEL_BTF", "/nonexistent/vmlinux")],
    );
    let line = refusal(&output);
    for part in [
        "no kernel BTF at /nonexistent/vmlinux",
        "is not a cgroup v2 mount and holds none below it",
        "is not on a BPF file system",
    ] {
        assert!(line.contains(part), "{part} not in: {line}");
    }
    assert!(!pins.exists(), "the pin directory was made");
}

/// A hybrid host's /sys/fs/cgroup (as the DaemonSet mounts it) holds cgroup
/// v2 at unified/: the agent finds it there and starts.
#[test]
fn the_hierarchy_below_a_hybrid_cgroup_mount_is_found() {
    require_root();
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let mount = syscensus::cgroup::cgroup2_mount_in(&mountinfo).unwrap();
    let parent = mount.parent().unwrap();
    assert!(
        !parent.join("cgroup.controllers").exists(),
        "this test needs the hybrid layout of the test machine ({} is cgroup v2 itself)",
        parent.display()
    );
    let state = tempfile::tempdir().unwrap();
    let agent = syscensus_tests::agent::Agent::start_in(
        state.path(),
        &["--no-kube", "--cgroup-mount", parent.to_str().unwrap()],
        &[],
    );
    agent.wait_watching();
    let log = agent.stop();
    assert!(!log.contains("cannot run the agent"), "{log}");
}
