//! A process of the workload stays in it while any of its threads lives:
//! when its main thread ends first (`pthread_exit` from `main`), and when
//! another thread execs (the kernel ends the main thread first; Go's
//! `syscall.Exec` from an unlocked goroutine does this).
#![allow(clippy::unwrap_used, reason = "tests")]
#![allow(
    unused_crate_dependencies,
    reason = "an integration test uses some of its package's dependencies"
)]

use std::process::Command;

use syscensus_tests::{program, record, recorded_names, require_root, syscensus_bin};

const X86_64: &str = "SCMP_ARCH_X86_64";

/// Records `thread_exits MODE` run by a shell (so that it is a forked
/// process of the workload, not its first), checks that `call` (which it
/// makes only after its main thread is gone) is recorded, and runs it
/// under the profile 20 times.
fn check(mode: &str, call: &str) {
    require_root();
    let binary = program("thread_exits", &[]).display().to_string();
    let script = format!("{binary} {mode}; status=$?; exit $status");
    let command = ["/bin/sh", "-c", script.as_str()];
    let profile = record(&[], &command);
    assert!(
        recorded_names(&profile, X86_64).contains(call),
        "{mode}: {call} is missing:\n{profile}"
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.json");
    std::fs::write(&path, &profile).unwrap();
    for attempt in 1..=20 {
        let output = Command::new(syscensus_bin())
            .args(["run", "--profile"])
            .arg(&path)
            .arg("--")
            .args(command)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{mode}: attempt {attempt} under the recorded profile failed: {output:?}\nprofile: {profile}"
        );
    }
}

#[test]
fn a_process_whose_main_thread_exits_first_stays_recorded() {
    check("leader-exits", "getitimer");
}

#[test]
fn a_process_that_execs_from_another_thread_stays_recorded() {
    check("exec-from-thread", "sched_getscheduler");
}
