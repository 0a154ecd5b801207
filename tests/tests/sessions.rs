//! Exec sessions (`runc exec`, as a kubelet runs exec probes and lifecycle
//! hooks through CRI) recorded apart from the workload: listed per command
//! line in the recording, in the profile without Kubernetes unless
//! `--exclude-exec-sessions`, so that a probe keeps working under the
//! profile (20 runs of 20 by `runc exec`), and fails under one recorded
//! with them left out.
#![allow(clippy::unwrap_used, reason = "tests")]
#![allow(
    unused_crate_dependencies,
    reason = "an integration test uses some of its package's dependencies"
)]

use std::time::{Duration, Instant};

use serde_json::Value;
use syscensus_tests::{
    agent::{Agent, recorded},
    containers::{Bundle, Detached, Rootfs, Runtime, Spec},
    require_root,
};

const X86_64: &str = "SCMP_ARCH_X86_64";
const WAIT: Duration = Duration::from_secs(20);

/// A service that starts and then idles.
const SERVICE: [&str; 3] = ["sh", "-c", "echo up; while true; do sleep 0.1; done"];

/// An exec probe that makes calls the service never makes: statfs (df) and
/// mkdir.
const PROBE: [&str; 3] = [
    "sh",
    "-c",
    "df / >/dev/null && mkdir -p /tmp/probe && test -d /tmp/probe",
];

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn wait_until_up(container: &Detached<'_>) {
    let deadline = Instant::now() + WAIT;
    while !container.stdout().starts_with("up") {
        assert!(
            Instant::now() < deadline,
            "the container did not start: {}",
            container.stderr()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The recording's session entries for `command`.
fn sessions_running<'a>(recording: &'a Value, command: &[&str]) -> Vec<&'a Value> {
    recording["sessions"]
        .as_array()
        .map(|all| {
            all.iter()
                .filter(|s| {
                    s["command"].as_array().is_some_and(|c| {
                        c.iter()
                            .map(|a| a.as_str().unwrap())
                            .eq(command.iter().copied())
                    })
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Runs SERVICE, execs PROBE into it three times, and returns the recording
/// of the container once it was killed.
fn record_service_with_probes(agent: &Agent, rootfs: &Rootfs) -> Value {
    let bundle = Bundle::new(rootfs.path(), Spec::new(&SERVICE));
    let container = Detached::run(Runtime::Runc, &bundle);
    wait_until_up(&container);
    for _ in 0..3 {
        let exec = container.exec(&PROBE);
        assert!(exec.status.success(), "{exec:?}");
    }
    agent.snapshot();
    let running = agent.wait_for_recording(bundle.id(), "Running", WAIT);
    assert_eq!(
        sessions_running(&running, &PROBE).len(),
        1,
        "the probes are listed while the container runs: {running}"
    );
    container.kill("KILL");
    container.wait_stopped(WAIT);
    container.delete();
    agent.wait_for_recording(bundle.id(), "Exited", WAIT)
}

#[test]
fn exec_probes_are_recorded_and_run_under_the_profile() {
    require_root();
    let agent = Agent::start(&["--no-kube"]);
    agent.wait_watching();
    let rootfs = Rootfs::busybox();
    let recording = record_service_with_probes(&agent, &rootfs);

    let probes = sessions_running(&recording, &PROBE);
    assert_eq!(probes.len(), 1, "one entry per command line: {recording}");
    let probe = probes[0];
    assert_eq!(probe["type"], "Exec", "{probe}");
    assert_eq!(probe["count"], 3, "{probe}");
    assert_eq!(probe["included"], true, "{probe}");
    assert!(
        probe["firstSeen"].is_string() && probe["lastSeen"].is_string(),
        "{probe}"
    );
    let probe_calls = recorded(probe, X86_64);
    for call in ["statfs", "mkdir"] {
        assert!(
            probe_calls.contains(call),
            "{call} not in the probe's syscalls: {probe}"
        );
    }
    // In the profile, and marked as coming from sessions only.
    let all = recorded(&recording, X86_64);
    let only = &recording["sessionOnlySyscalls"][X86_64];
    for call in ["statfs", "mkdir"] {
        assert!(all.contains(call), "{call} not in the profile: {recording}");
        assert!(
            only.as_array().unwrap().iter().any(|n| n == call),
            "{call} not listed as a session's only: {recording}"
        );
    }
    assert!(
        all.contains("clock_nanosleep") || all.contains("nanosleep"),
        "the service itself: {all:?}"
    );
    assert!(recording["execSessionsExcluded"].is_null(), "{recording}");

    // The service under its profile; the probe run into it by runc exec.
    let profile = recording["profile"].clone();
    let bundle = Bundle::new(rootfs.path(), Spec::new(&SERVICE).seccomp(profile));
    let container = Detached::run(Runtime::Runc, &bundle);
    wait_until_up(&container);
    for attempt in 1..=20 {
        let exec = container.exec(&PROBE);
        assert!(
            exec.status.success(),
            "probe {attempt} under the recorded profile failed: {exec:?}\n{}",
            text(&exec.stderr)
        );
    }
    // What neither the service nor the probe did is still refused.
    let exec = container.exec(&["chmod", "600", "/tmp"]);
    assert!(
        !exec.status.success() && text(&exec.stderr).contains("Operation not permitted"),
        "chmod was allowed: {exec:?}"
    );
    container.delete();
}

#[test]
fn excluded_exec_sessions_are_listed_and_left_out() {
    require_root();
    let agent = Agent::start(&["--no-kube", "--exclude-exec-sessions"]);
    agent.wait_watching();
    let rootfs = Rootfs::busybox();
    let recording = record_service_with_probes(&agent, &rootfs);
    let probes = sessions_running(&recording, &PROBE);
    assert_eq!(probes.len(), 1, "{recording}");
    assert_eq!(probes[0]["included"], false, "{recording}");
    assert!(
        recorded(probes[0], X86_64).contains("statfs"),
        "{recording}"
    );
    assert_eq!(recording["execSessionsExcluded"], true, "{recording}");
    let all = recorded(&recording, X86_64);
    for call in ["statfs", "mkdir", "mkdirat"] {
        assert!(
            !all.contains(call),
            "an excluded session's {call} is in the profile"
        );
    }
    assert!(recording["sessionOnlySyscalls"].is_null(), "{recording}");

    // Under that profile the probe, run by runc exec, fails: what the
    // sessions made is what keeps it working.
    let bundle = Bundle::new(
        rootfs.path(),
        Spec::new(&SERVICE).seccomp(recording["profile"].clone()),
    );
    let container = Detached::run(Runtime::Runc, &bundle);
    wait_until_up(&container);
    // A probe that does not end counts as failed, as the kubelet's timeout
    // would count it.
    let exec = container.exec_within(&PROBE, Duration::from_secs(10));
    assert!(
        exec.as_ref().is_none_or(|e| !e.status.success()),
        "the probe ran under a profile without the sessions: {exec:?}"
    );
    container.kill("KILL");
    container.wait_stopped(WAIT);
    container.delete();
}
