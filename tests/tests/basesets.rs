//! The runtime base sets are enough for the runtimes installed here: a
//! container whose profile allows only what its entrypoint and an exec
//! probe make (as the host's strace sees them), plus the base set syscensus
//! chooses for the runtime's version and `no_new_privs`, plus the
//! always-allowed syscalls, is created and started as containerd and CRI-O
//! start containers (`create`, then `start`) and answers an exec probe, 20
//! times in a row, with and without `no_new_privs`, under runc and crun.
//! The profile is built by syscensus's own profile builder, as `export`
//! builds it.
#![allow(clippy::unwrap_used, reason = "tests")]
#![allow(
    unused_crate_dependencies,
    reason = "an integration test uses some of its package's dependencies"
)]

use std::{
    io::Read,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use syscensus::{
    basesets::{self, Reason},
    census::Census,
    oci_runtime::{self, Runtime as OciRuntime},
    profile::{BuildOptions, Profile},
    syscalls::Arch,
};
use syscensus_tests::{
    containers::{Bundle, Detached, Rootfs, Runtime, Spec},
    require_root, strace_names,
};

const RUNS: usize = 20;
const ENTRYPOINT: &[&str] = &["/bin/sh", "-c", "echo started; exec sleep 30"];
const PROBE: &[&str] = &["/bin/echo", "probe"];

/// The runtime's identity, from its `--version` banner.
fn identity(runtime: Runtime) -> oci_runtime::Identity {
    let output = Command::new(runtime.binary())
        .arg("--version")
        .output()
        .unwrap();
    oci_runtime::from_version_output(&String::from_utf8_lossy(&output.stdout))
        .unwrap_or_else(|| panic!("{} --version names no runtime", runtime.name()))
}

/// What the entrypoint and the probe make, per the host's strace.
fn workload_names() -> Vec<String> {
    let mut names = strace_names(&["/bin/busybox", "sh", "-c", "echo started; exec sleep 0"]);
    names.extend(strace_names(&["/bin/busybox", "echo", "probe"]));
    names.into_iter().collect()
}

fn profile(
    runtime: Runtime,
    no_new_privs: bool,
    workload: &[String],
) -> (serde_json::Value, String) {
    let id = identity(runtime);
    let choice = basesets::choose(Some(id.runtime), id.version.as_ref(), no_new_privs);
    assert!(
        matches!(choice.reason, Reason::Version(_)),
        "{} {:?}: no base set derived for the installed version ({choice})",
        runtime.name(),
        id.version
    );
    let mut census = Census::default();
    census.extend(Arch::native(), workload.iter().cloned());
    let profile = Profile::from_census(&census, Some(&choice.set), &BuildOptions::default());
    (
        serde_json::from_str(&profile.to_oci_json()).unwrap(),
        choice.set.name,
    )
}

/// `<runtime> start id`, which blocks until the container process opens
/// its exec fifo: a process that died after loading the filter never does.
fn start_within(runtime: Runtime, id: &str, timeout: Duration, what: impl Fn() -> String) {
    let mut child = Command::new(runtime.binary())
        .args(["start", id])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut stderr = String::new();
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut stderr)
                .unwrap();
            assert!(
                status.success(),
                "{}: start failed ({status}): {stderr}",
                what()
            );
            return;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{}: start did not return within {timeout:?}: the container process died \
                 after loading the filter, so nothing opened the exec fifo",
                what()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn starts_and_takes_probes(runtime: Runtime, no_new_privs: bool) {
    require_root();
    let rootfs = Rootfs::busybox();
    let (seccomp, set) = profile(runtime, no_new_privs, &workload_names());
    for run in 0..RUNS {
        let bundle = Bundle::new(
            rootfs.path(),
            Spec::new(ENTRYPOINT)
                .no_new_privileges(no_new_privs)
                .seccomp(seccomp.clone()),
        );
        let container = Detached::create(runtime, &bundle);
        start_within(runtime, container.id(), Duration::from_secs(10), || {
            format!(
                "{} run {run} under base set {set} (no_new_privs {no_new_privs}); \
                 the container's stderr: {}",
                runtime.name(),
                container.stderr()
            )
        });
        let deadline = Instant::now() + Duration::from_secs(10);
        while !container.stdout().contains("started") {
            assert!(
                Instant::now() < deadline,
                "{} run {run}: the entrypoint did not start within 10 s under base set {set} \
                 (no_new_privs {no_new_privs}); stderr: {}",
                runtime.name(),
                container.stderr()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        let probe = container.exec(PROBE);
        assert!(
            probe.status.success() && String::from_utf8_lossy(&probe.stdout).contains("probe"),
            "{} run {run}: the exec probe failed under base set {set} (no_new_privs {no_new_privs}): {}\n{}",
            runtime.name(),
            probe.status,
            String::from_utf8_lossy(&probe.stderr)
        );
        container.delete();
    }
}

#[test]
fn runc_starts_and_takes_probes_under_its_base_set() {
    starts_and_takes_probes(Runtime::Runc, false);
}

#[test]
fn runc_with_no_new_privs_starts_and_takes_probes_under_its_base_set() {
    starts_and_takes_probes(Runtime::Runc, true);
}

#[test]
fn crun_starts_and_takes_probes_under_its_base_set() {
    starts_and_takes_probes(Runtime::Crun, false);
}

#[test]
fn crun_with_no_new_privs_starts_and_takes_probes_under_its_base_set() {
    starts_and_takes_probes(Runtime::Crun, true);
}

#[test]
fn the_installed_runtimes_are_identified_from_their_binaries() {
    for (runtime, expected) in [
        (Runtime::Runc, OciRuntime::Runc),
        (Runtime::Crun, OciRuntime::Crun),
    ] {
        let bytes = std::fs::read(runtime.binary()).unwrap();
        let from_bytes = oci_runtime::from_binary(&bytes)
            .unwrap_or_else(|| panic!("{} not identified from its binary", runtime.name()));
        assert_eq!(from_bytes.runtime, expected);
        assert_eq!(identity(runtime).runtime, expected);
    }
}
