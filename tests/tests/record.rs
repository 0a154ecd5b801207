//! `syscensus record` against the real kernel: what it records, and that the
//! profiles it writes run the recorded commands and nothing more.
#![allow(clippy::unwrap_used, reason = "tests")]
#![allow(
    unused_crate_dependencies,
    reason = "an integration test uses some of its package's dependencies"
)]

use std::{collections::BTreeSet, path::Path, process::Command};

use syscensus_tests::{
    allowed_names, parse_strace_summary, program, record, recorded_names, require_program,
    require_root, strace_names, syscensus, syscensus_bin,
};

const X86_64: &str = "SCMP_ARCH_X86_64";

fn busybox() -> String {
    require_program("busybox", "busybox-static")
        .display()
        .to_string()
}

/// Writes `profile` to a file and runs `command` under it `times` times,
/// asserting every run succeeds.
fn passes_under_profile(profile: &str, command: &[&str], times: usize) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.json");
    std::fs::write(&path, profile).unwrap();
    for run in 1..=times {
        let output = Command::new(syscensus_bin())
            .args(["run", "--profile"])
            .arg(&path)
            .arg("--")
            .args(command)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "run {run} of {command:?} under its own profile failed: {:?}\nstdout: {}\nstderr: {}\nprofile: {profile}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

/// Checks a command three ways: in one run, everything strace sees the
/// command make is recorded; a separate plain recording covers what strace
/// sees in a separate run; the profile runs the command 20 times in a row.
fn check_command(command: &[&str], must_have: &[&str]) {
    require_root();
    // Same run: strace runs inside the recorded cgroup and reports every
    // syscall its tracees made, so each of those must be in the recording.
    let dir = tempfile::tempdir().unwrap();
    let summary = dir.path().join("strace.txt");
    let summary_arg = summary.display().to_string();
    let strace = require_program("strace", "strace").display().to_string();
    let mut inner = vec![
        strace.as_str(),
        "-f",
        "-qq",
        "-c",
        "-o",
        summary_arg.as_str(),
    ];
    inner.extend_from_slice(command);
    let with_strace = allowed_names(&record(&[], &inner));
    let seen_by_strace = parse_strace_summary(&std::fs::read_to_string(&summary).unwrap());
    assert!(
        !seen_by_strace.is_empty(),
        "strace saw nothing for {command:?}"
    );
    let missing: BTreeSet<_> = seen_by_strace.difference(&with_strace).collect();
    assert!(
        missing.is_empty(),
        "{command:?}: strace saw {missing:?} that the recording lacks"
    );

    // Separate runs: a plain recording against a plain strace. The command's
    // first execve happens before recording starts (it is the base set's).
    let profile = record(&[], command);
    let recorded = recorded_names(&profile, X86_64);
    let mut expected = strace_names(command);
    expected.remove("execve");
    let missing: BTreeSet<_> = expected.difference(&recorded).collect();
    assert!(
        missing.is_empty(),
        "{command:?}: strace saw {missing:?}, not recorded\n{profile}"
    );
    for name in must_have {
        assert!(
            recorded.contains(*name),
            "{command:?}: {name} not recorded\n{profile}"
        );
    }
    passes_under_profile(&profile, command, 20);
}

#[test]
fn records_true() {
    check_command(&["/bin/true"], &["exit_group"]);
}

#[test]
fn records_ls() {
    let busybox = busybox();
    check_command(&[&busybox, "ls", "/"], &["getdents64", "write"]);
}

#[test]
fn records_a_pipeline_that_forks() {
    let busybox = busybox();
    let script = format!("{busybox} ls / | {busybox} wc -l");
    check_command(
        &[&busybox, "sh", "-c", &script],
        &["pipe2", "wait4", "execve"],
    );
}

#[test]
fn records_every_thread() {
    let threads = program("threads", &[]).display().to_string();
    check_command(&[&threads], &["clone3", "gettid", "sched_yield"]);
}

#[test]
fn records_rare_syscalls() {
    let rare = program("rare", &[]).display().to_string();
    check_command(&[&rare], &["memfd_create", "personality"]);
}

#[test]
fn a_syscall_outside_the_profile_fails_with_eperm() {
    require_root();
    let mkdir = program("mkdir", &[]).display().to_string();
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("made");
    let target_arg = target.display().to_string();
    // Recorded doing a stat only; then asked to mkdir under that profile.
    let profile = record(&[], &[&mkdir, "stat", "/"]);
    assert!(!allowed_names(&profile).contains("mkdir"));
    let path = dir.path().join("p.json");
    std::fs::write(&path, &profile).unwrap();
    let output = Command::new(syscensus_bin())
        .args(["run", "--profile"])
        .arg(&path)
        .args(["--", &mkdir, "mkdir", &target_arg])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(3),
        "expected EPERM from mkdir: {stdout}"
    );
    assert!(stdout.contains("Operation not permitted"), "{stdout}");
    assert!(!target.exists(), "the blocked mkdir made the directory");
    // Without the profile the same command works: the failure is the profile's.
    let free = Command::new(&mkdir)
        .args(["mkdir", &target_arg])
        .status()
        .unwrap();
    assert!(free.success() && target.is_dir());
}

#[test]
fn concurrent_recordings_never_mix() {
    require_root();
    let unique = program("unique", &[]).display().to_string();
    let alone_a = recorded_names(&record(&[], &[&unique, "a"]), X86_64);
    let alone_b = recorded_names(&record(&[], &[&unique, "b"]), X86_64);
    assert!(alone_a.contains("getpriority") && !alone_a.contains("getpgid"));
    assert!(alone_b.contains("getpgid") && !alone_b.contains("getpriority"));
    for round in 0..3 {
        let (a, b) = std::thread::scope(|s| {
            let a = s.spawn(|| recorded_names(&record(&[], &[&unique, "a"]), X86_64));
            let b = s.spawn(|| recorded_names(&record(&[], &[&unique, "b"]), X86_64));
            (a.join().unwrap(), b.join().unwrap())
        });
        assert_eq!(
            a, alone_a,
            "round {round}: recording of `a` changed when `b` ran beside it"
        );
        assert_eq!(
            b, alone_b,
            "round {round}: recording of `b` changed when `a` ran beside it"
        );
    }
}

#[test]
fn records_32_bit_syscalls_under_their_own_architecture() {
    require_root();
    let hello32 = program("hello32", &["-m32"]).display().to_string();
    let profile = record(&[], &[&hello32]);
    let value: serde_json::Value = serde_json::from_str(&profile).unwrap();
    let arches: Vec<_> = value["architectures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(arches, vec![X86_64, "SCMP_ARCH_X86"], "{profile}");
    let x86 = recorded_names(&profile, "SCMP_ARCH_X86");
    for name in ["getppid", "write", "exit_group", "brk"] {
        assert!(
            x86.contains(name),
            "{name} not recorded as an i386 syscall:\n{profile}"
        );
    }
    // Nothing of the 32-bit program is mistaken for a 64-bit syscall.
    assert!(recorded_names(&profile, X86_64).is_empty(), "{profile}");
    passes_under_profile(&profile, &[&hello32], 20);
}

#[test]
fn propagates_the_exit_status_and_still_writes_the_profile() {
    require_root();
    let exit_with = program("exit_with", &[]).display().to_string();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("p.json");
    let status = Command::new(syscensus_bin())
        .arg("record")
        .arg("-o")
        .arg(&out)
        .args(["--", &exit_with, "42"])
        .status()
        .unwrap();
    assert_eq!(status.code(), Some(42));
    // Recorded, not only allowed: every profile allows exit_group anyway.
    assert!(recorded_names(&std::fs::read_to_string(&out).unwrap(), X86_64).contains("exit_group"));
    // Killed by a signal: 128 + signal number, as a shell reports it.
    let busybox = busybox();
    let output = syscensus(&["record", "--", &busybox, "sh", "-c", "kill -9 $$"]);
    assert_eq!(
        output.status.code(),
        Some(137),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn output_is_deterministic() {
    require_root();
    let rare = program("rare", &[]).display().to_string();
    let first = record(&[], &[&rare]);
    let second = record(&[], &[&rare]);
    assert_eq!(first, second);
    assert!(first.ends_with("}\n"));
}

#[test]
fn leaves_no_cgroup_behind() {
    require_root();
    let hierarchy = syscensus::cgroup::Hierarchy::find().unwrap();
    let own = hierarchy.dir(&hierarchy.own_path().unwrap());
    let busybox = busybox();
    // A daemon that outlives the command is moved out, and keeps running.
    record(
        &[],
        &[&busybox, "sh", "-c", &format!("{busybox} sleep 2 & exit 0")],
    );
    // Other tests record at the same time: only a cgroup whose recorder has
    // exited is left behind.
    let leftovers: Vec<_> = std::fs::read_dir(&own)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| {
            n.strip_prefix("syscensus-record-")
                .is_some_and(|pid| !Path::new("/proc").join(pid).exists())
        })
        .collect();
    assert!(
        leftovers.is_empty(),
        "cgroups left in {}: {leftovers:?}",
        own.display()
    );
}

mod bad_input {
    use super::*;

    fn stderr_line(output: &std::process::Output) -> String {
        let text = String::from_utf8_lossy(&output.stderr).into_owned();
        let lines: Vec<_> = text
            .lines()
            .filter(|l| l.starts_with("syscensus:"))
            .collect();
        assert_eq!(lines.len(), 1, "expected one error line, got:\n{text}");
        lines[0].to_owned()
    }

    #[test]
    fn command_not_found() {
        require_root();
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("p.json");
        let out_arg = out.display().to_string();
        let output = syscensus(&["record", "-o", &out_arg, "--", "no-such-command-xyz"]);
        assert_eq!(output.status.code(), Some(127));
        let line = stderr_line(&output);
        assert!(
            line.contains("command not found: no-such-command-xyz"),
            "{line}"
        );
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            0,
            "left a file behind"
        );
    }

    #[test]
    fn not_root() {
        require_root();
        let setpriv = require_program("setpriv", "util-linux");
        let output = Command::new(setpriv)
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(syscensus_bin())
            .args(["record", "--", "/bin/true"])
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(77));
        assert!(stderr_line(&output).contains("needs root"));
    }

    #[test]
    fn no_btf() {
        require_root();
        let output = Command::new(syscensus_bin())
            .env("SYSCENSUS_KERNEL_BTF", "/nonexistent/vmlinux")
            .args(["record", "--", "/bin/true"])
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(69));
        let line = stderr_line(&output);
        assert!(
            line.contains("BTF") && line.contains("/nonexistent/vmlinux"),
            "{line}"
        );
    }

    #[test]
    fn no_cgroup_v2() {
        require_root();
        let hierarchy = syscensus::cgroup::Hierarchy::find().unwrap();
        // In a private mount namespace without the cgroup2 mount.
        let script = format!(
            "umount -l {} && exec {} record -- /bin/true",
            hierarchy.mount().display(),
            syscensus_bin().display()
        );
        let output = Command::new("unshare")
            .args(["-m", "--propagation", "private", "sh", "-c", &script])
            .output()
            .unwrap();
        assert_eq!(
            output.status.code(),
            Some(69),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(stderr_line(&output).contains("no cgroup v2"));
    }

    #[test]
    fn unwritable_output_is_refused_before_the_command_runs() {
        require_root();
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("ran");
        let out = dir.path().join("missing/p.json");
        let output = syscensus(&[
            "record",
            "-o",
            &out.display().to_string(),
            "--",
            "/bin/sh",
            "-c",
            &format!("touch {}", marker.display()),
        ]);
        assert_eq!(output.status.code(), Some(73));
        assert!(stderr_line(&output).contains("missing/p.json"));
        assert!(
            !marker.exists(),
            "the command ran although its profile could not be written"
        );
        assert!(!Path::new(&out).exists());
    }

    #[test]
    fn unknown_base_set() {
        let output = syscensus(&["record", "--base-set", "podman", "--", "/bin/true"]);
        assert_eq!(output.status.code(), Some(64));
        assert!(stderr_line(&output).contains("unknown runtime base set"));
    }
}
