//! cgroups made below a recorded container's (or `record`'s), however deep
//! and whenever made, belong to it: crun running the container's processes
//! in a `container` sub-cgroup it makes while setting the container up
//! (`run.oci.delegate-cgroup`, what the systemd driver's
//! `run.oci.systemd.subgroup` does too), and a workload that makes a child
//! cgroup, moves itself in and calls there what it calls nowhere else.
#![allow(clippy::unwrap_used, reason = "tests")]
#![allow(
    unused_crate_dependencies,
    reason = "an integration test uses some of its package's dependencies"
)]

use std::{
    process::{Command, Output},
    time::Duration,
};

use serde_json::Value;
use syscensus_tests::{
    agent::{Agent, recorded},
    containers::{Bundle, CgroupLease, CrunCgroups, Rootfs, Runtime, Spec, cgroup::unified_root},
    program, record, recorded_names, require_program, require_root, syscensus_bin,
};

const X86_64: &str = "SCMP_ARCH_X86_64";
const WAIT: Duration = Duration::from_secs(20);

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn record_follows_its_command_into_a_cgroup_it_makes() {
    require_root();
    let subcgroup = program("subcgroup", &[]).display().to_string();
    // It makes a cgroup below record's, and one below that, and calls
    // statfs in the deeper one only.
    let profile = record(&[], &[&subcgroup]);
    let names = recorded_names(&profile, X86_64);
    assert!(
        names.contains("statfs"),
        "statfs, made only in the child cgroup, is missing:\n{profile}"
    );
    // Under its profile, where the child cgroup is made below the test's.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.json");
    std::fs::write(&path, &profile).unwrap();
    for attempt in 1..=20 {
        let output = Command::new(syscensus_bin())
            .args(["run", "--profile"])
            .arg(&path)
            .args(["--", &subcgroup])
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "attempt {attempt} under the recorded profile failed: {output:?}\n{}",
            text(&output.stderr)
        );
    }
}

/// The workload: says where it runs, then lists, reads and prints.
const WORKLOAD: [&str; 3] = [
    "sh",
    "-c",
    "echo ready; cat /proc/self/cgroup; ls / >/dev/null; cat /etc/passwd >/dev/null; uname -a",
];

/// `crun run` in a mount namespace of its own where /sys/fs/cgroup is the
/// cgroup2 mount: crun 1.8 reads the cgroup mode from there, and delegates
/// a sub-cgroup (`run.oci.delegate-cgroup`) only in unified mode, which
/// this hybrid host is not. The container's cgroups are the host's cgroup2
/// ones all the same.
fn crun_run_unified(bundle: &Bundle) -> Output {
    require_program("unshare", "util-linux");
    let crun = Runtime::Crun.binary();
    let _lease = CgroupLease::acquire(bundle.spec().cgroups_path.as_deref().unwrap());
    let script = format!(
        "mount --bind {} /sys/fs/cgroup && exec timeout 60 {} run --bundle \"$0\" \"$1\"",
        unified_root().display(),
        crun.display()
    );
    let output = Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c", &script])
        .arg(bundle.path())
        .arg(bundle.id())
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    // `run` deletes the container when it ends; after a failure it may not.
    let _ = Command::new(&crun)
        .args(["delete", "--force", bundle.id()])
        .output();
    output
}

/// A container whose processes crun runs in a `container` sub-cgroup. No
/// device rules: on cgroup v2 they need a device program, which crun cannot
/// load here (see [`Spec::deny_devices`]).
fn delegating_spec(args: &[&str]) -> Spec {
    Spec::new(args)
        .annotation("run.oci.delegate-cgroup", "container")
        .deny_devices(false)
}

#[test]
fn crun_containers_in_a_sub_cgroup_are_recorded_and_their_profiles_run() {
    require_root();
    // No cgroup2 controllers: crun then enables none on the shared tree.
    let _crun = CrunCgroups::acquire();
    let agent = Agent::start(&["--no-kube", "--runtime", "crun"]);
    agent.wait_watching();
    let rootfs = Rootfs::busybox();
    let bundle = Bundle::new(rootfs.path(), delegating_spec(&WORKLOAD));
    let output = crun_run_unified(&bundle);
    let stdout = text(&output.stdout);
    assert!(
        output.status.success(),
        "{output:?}\n{}",
        text(&output.stderr)
    );
    let cgroup = bundle.spec().cgroups_path.clone().unwrap();
    assert!(
        stdout.contains(&format!("0::{cgroup}/container\n")),
        "the workload did not run in the container sub-cgroup: {stdout}"
    );
    let recording = agent.wait_for_recording(bundle.id(), "Exited", WAIT);
    assert_eq!(recording["cgroup"], Value::from(cgroup), "{recording}");
    let syscalls = recorded(&recording, X86_64);
    for expected in ["write", "getdents64", "uname", "openat", "exit_group"] {
        assert!(
            syscalls.contains(expected),
            "{expected} missing: {recording}"
        );
    }
    // Told the runtime and not its version: the set covering every crun.
    assert_eq!(recording["runtimeBaseSet"], "crun", "{recording}");

    let profile = recording["profile"].clone();
    for attempt in 1..=20 {
        let bundle = Bundle::new(
            rootfs.path(),
            delegating_spec(&WORKLOAD).seccomp(profile.clone()),
        );
        let output = crun_run_unified(&bundle);
        assert!(
            output.status.success() && text(&output.stdout).starts_with("ready\n"),
            "attempt {attempt} under the recorded profile failed: {output:?}\n{}\nprofile: {profile}",
            text(&output.stderr)
        );
    }
    let bundle = Bundle::new(
        rootfs.path(),
        delegating_spec(&["mkdir", "/tmp/made"]).seccomp(profile),
    );
    let output = crun_run_unified(&bundle);
    assert!(
        !output.status.success() && text(&output.stderr).contains("Operation not permitted"),
        "mkdir was allowed: {output:?}"
    );
}
