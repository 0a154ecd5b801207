//! `syscensus run` against the real kernel: commands run under hand-made,
//! Docker and SPO profiles, fail as the profile says, and broken profiles
//! are reported before anything runs. (The filter compiler is compared with
//! libseccomp in filters.rs.)
#![allow(clippy::unwrap_used, reason = "tests")]
#![allow(
    unused_crate_dependencies,
    reason = "an integration test uses some of its package's dependencies"
)]

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
    process::{Command, Output},
};

use syscensus::{
    profile::{Action, Profile, Rule},
    syscalls::Arch,
};
use syscensus_tests::{require_program, require_root, strace_names, syscensus_bin, workspace_root};

fn busybox() -> String {
    require_program("busybox", "busybox-static")
        .display()
        .to_string()
}

fn third_party(name: &str) -> PathBuf {
    workspace_root().join("tests/data/third-party").join(name)
}

/// Runs `syscensus run` with `options` before `--` and `command` after.
fn run(options: &[&str], command: &[&str]) -> Output {
    Command::new(syscensus_bin())
        .arg("run")
        .args(options)
        .arg("--")
        .args(command)
        .output()
        .unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// An OCI profile that allows `names` on x86_64 and fails everything else
/// with `errno`.
fn allow_profile(names: &BTreeSet<String>, errno: u32) -> String {
    let profile = Profile {
        default_action: Action::Errno,
        default_errno_ret: Some(errno),
        architectures: vec![Arch::native().scmp_name().to_owned()],
        flags: Vec::new(),
        syscalls: vec![Rule {
            names: names.iter().cloned().collect(),
            action: Action::Allow,
            errno_ret: None,
            args: Vec::new(),
            comment: Some("busybox, from strace".to_owned()),
        }],
    };
    profile.to_oci_json()
}

/// What `commands` make, by strace, plus what strace's summary leaves out:
/// exit_group (a syscall that does not return is not counted) and execve,
/// the one syscall syscensus makes after installing the filter.
fn traced_names(commands: &[&[&str]]) -> BTreeSet<String> {
    let mut names: BTreeSet<String> = commands.iter().flat_map(|c| strace_names(c)).collect();
    names.extend(["exit_group", "execve"].map(str::to_owned));
    names
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

#[test]
fn busybox_runs_under_its_profile_twenty_times() {
    require_root();
    let bb = busybox();
    let dir = tempfile::tempdir().unwrap();
    let cases: [(&[&str], &str); 3] = [
        (&[&bb, "true"], ""),
        (&[&bb, "ls", "/"], "tmp\n"),
        (&[&bb, "sh", "-c", "echo hi | busybox cat"], "hi\n"),
    ];
    let names = traced_names(&cases.map(|(command, _)| command));
    let profile = write(dir.path(), "busybox.json", &allow_profile(&names, 1));
    for (command, expected) in cases {
        for attempt in 1..=20 {
            let output = run(&["--profile", &profile], command);
            let stdout = String::from_utf8_lossy(&output.stdout);
            assert!(
                output.status.success() && stdout.contains(expected),
                "run {attempt} of {command:?} failed: {:?}\nstdout: {stdout}\nstderr: {}",
                output.status,
                stderr(&output)
            );
        }
    }
}

#[test]
fn a_denied_mkdir_fails_with_the_profiles_errno() {
    require_root();
    let bb = busybox();
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("made-by-busybox");
    let target_arg = target.display().to_string();
    // What a mkdir that works makes, and write for the error message.
    let probe = dir.path().join("probe").display().to_string();
    let mut names = traced_names(&[&[&bb, "mkdir", &probe]]);
    names.insert("write".to_owned());
    names.remove("mkdir");
    names.remove("mkdirat");

    for (errno, message) in [
        (1, "Operation not permitted"),
        (38, "Function not implemented"),
    ] {
        let profile = write(
            dir.path(),
            &format!("no-mkdir-{errno}.json"),
            &allow_profile(&names, errno),
        );
        let output = run(&["--profile", &profile], &[&bb, "mkdir", &target_arg]);
        assert!(
            !output.status.success(),
            "mkdir succeeded under a profile without it"
        );
        assert!(
            stderr(&output).contains(message),
            "expected {message:?} from busybox mkdir, got: {}",
            stderr(&output)
        );
        assert!(!target.exists(), "{} was created", target.display());
    }
}

#[test]
fn docker_and_spo_profiles_run_busybox() {
    require_root();
    let bb = busybox();
    let moby = third_party("moby-default.json").display().to_string();
    let spo_runc = third_party("spo-baseprofile-runc.yaml")
        .display()
        .to_string();
    let spo_multi = third_party("spo-seccompprofile.yaml").display().to_string();
    let containers = third_party("containers-common-seccomp.json")
        .display()
        .to_string();
    for options in [
        vec!["--profile", moby.as_str()],
        vec!["--profile", containers.as_str()],
        vec!["--profile", spo_runc.as_str()],
        vec![
            "--profile",
            spo_multi.as_str(),
            "--name",
            "profile-allow-unsafe",
        ],
    ] {
        let output = run(&options, &[&bb, "true"]);
        assert!(
            output.status.success(),
            "busybox true under {options:?} failed: {:?}\n{}",
            output.status,
            stderr(&output)
        );
    }
    let output = run(&["--profile", &moby], &[&bb, "sh", "-c", "echo ok"]);
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "ok\n",
        "{}",
        stderr(&output)
    );
}

#[test]
fn the_exit_status_is_the_commands() {
    require_root();
    let bb = busybox();
    let moby = third_party("moby-default.json").display().to_string();
    let output = run(&["--profile", &moby], &[&bb, "sh", "-c", "exit 42"]);
    assert_eq!(output.status.code(), Some(42), "{}", stderr(&output));
}

#[test]
fn broken_profiles_are_reported_before_running() {
    let bb = busybox();
    let dir = tempfile::tempdir().unwrap();
    let malformed = write(
        dir.path(),
        "malformed.json",
        "{\n  \"defaultAction\": \"SCMP_ACT_ERRNO\",\n  \"syscalls\": [\n    {\"names\": [\"read\"] \"action\": \"SCMP_ACT_ALLOW\"}\n  ]\n}\n",
    );
    let output = run(&["--profile", &malformed], &[&bb, "true"]);
    assert_eq!(output.status.code(), Some(65), "{}", stderr(&output));
    let message = stderr(&output);
    assert!(
        message.contains(&format!("{malformed}:4:")),
        "no FILE:LINE:COLUMN in: {message}"
    );
    assert_eq!(message.trim_end().lines().count(), 1, "{message}");

    let unknown = write(
        dir.path(),
        "unknown.json",
        r#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["execve", "frobnicate"], "action": "SCMP_ACT_ALLOW"}]}"#,
    );
    let output = run(&["--profile", &unknown], &[&bb, "true"]);
    assert_eq!(output.status.code(), Some(65), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("\"frobnicate\""),
        "{}",
        stderr(&output)
    );

    let output = run(&["--profile", "/nonexistent/profile.json"], &[&bb, "true"]);
    assert_eq!(output.status.code(), Some(66), "{}", stderr(&output));

    let no_execve = write(
        dir.path(),
        "no-execve.json",
        r#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW"}]}"#,
    );
    let output = run(&["--profile", &no_execve], &[&bb, "true"]);
    assert_eq!(output.status.code(), Some(65), "{}", stderr(&output));
    assert!(stderr(&output).contains("execve"), "{}", stderr(&output));

    let notify = write(
        dir.path(),
        "notify.json",
        r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]}"#,
    );
    let output = run(&["--profile", &notify], &[&bb, "true"]);
    assert_eq!(output.status.code(), Some(65), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("SCMP_ACT_NOTIFY"),
        "{}",
        stderr(&output)
    );

    let multi = third_party("spo-seccompprofile.yaml").display().to_string();
    let output = run(&["--profile", &multi], &[&bb, "true"]);
    assert_eq!(output.status.code(), Some(65), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("profile-allow-unsafe"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn missing_and_unexecutable_commands() {
    let moby = third_party("moby-default.json").display().to_string();
    let output = run(&["--profile", &moby], &["syscensus-no-such-command"]);
    assert_eq!(output.status.code(), Some(127), "{}", stderr(&output));
    assert!(stderr(&output).contains("syscensus-no-such-command"));

    let dir = tempfile::tempdir().unwrap();
    let plain = write(dir.path(), "plain-file", "not a program");
    let output = run(&["--profile", &moby], &[&plain]);
    assert_eq!(output.status.code(), Some(126), "{}", stderr(&output));
}
