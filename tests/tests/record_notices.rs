//! `syscensus record` says on stderr, one `syscensus:` line each, whatever
//! makes its profile more or less than the command's own syscalls, and
//! still exits with the command's status.
#![allow(clippy::unwrap_used, reason = "tests")]
#![allow(
    unused_crate_dependencies,
    reason = "an integration test uses some of its package's dependencies"
)]

use std::{
    path::PathBuf,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use syscensus_tests::{
    allowed_names, program, recorded_names, require_program, require_root, syscensus_bin,
};

fn notices(stderr: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(stderr)
        .lines()
        .filter(|l| l.starts_with("syscensus: "))
        .map(str::to_owned)
        .collect()
}

/// The cgroup2 directory of this process.
fn own_cgroup_dir() -> PathBuf {
    let hierarchy = syscensus::cgroup::Hierarchy::find().unwrap();
    hierarchy.dir(&hierarchy.own_path().unwrap())
}

#[test]
fn an_exec_session_into_the_command_is_recorded_and_told() {
    require_root();
    let busybox = require_program("busybox", "busybox-static");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("p.json");
    let marker = dir.path().join("done");
    // The command waits until the session has run, then exits 7.
    let script = format!(
        "while [ ! -e {} ]; do sleep 0.05; done; exit 7",
        marker.display()
    );
    let recorder = Command::new(syscensus_bin())
        .arg("record")
        .arg("-o")
        .arg(&out)
        .args(["--", "/bin/sh", "-c", &script])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let cgroup = own_cgroup_dir().join(format!("syscensus-record-{}", recorder.id()));
    let deadline = Instant::now() + Duration::from_secs(20);
    // The command runs (exec'd in its cgroup) before anything enters: the
    // first exec there is the command's.
    let runs = || {
        std::fs::read_to_string(cgroup.join("cgroup.procs"))
            .unwrap_or_default()
            .lines()
            .any(|pid| {
                std::fs::read(format!("/proc/{}/cmdline", pid.trim()))
                    .is_ok_and(|c| String::from_utf8_lossy(&c).contains("exit 7"))
            })
    };
    while !runs() {
        assert!(
            Instant::now() < deadline,
            "the command never ran in {}",
            cgroup.display()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    // A process from outside enters the command's cgroup and execs there,
    // as `nsenter` or a runtime's exec would: an exec session.
    let session = format!(
        "echo $$ > {}/cgroup.procs && exec {} mkdir -p {}",
        cgroup.display(),
        busybox.display(),
        marker.display()
    );
    let status = Command::new("/bin/sh")
        .args(["-c", &session])
        .status()
        .unwrap();
    assert!(status.success());
    let output = recorder.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(7), "{output:?}");
    let notices = notices(&output.stderr);
    assert!(
        notices.iter().any(|n| n.contains("1 exec session ran")
            && n.contains("\"mkdir\"")
            && n.contains("in the profile")),
        "{notices:?}"
    );
    let profile = std::fs::read_to_string(&out).unwrap();
    assert!(
        recorded_names(&profile, "SCMP_ARCH_X86_64").contains("mkdir"),
        "the session's mkdir is not in the profile:\n{profile}"
    );
}

#[test]
fn out_of_range_syscalls_are_told_on_one_line() {
    require_root();
    let out_of_range = program("out_of_range", &[]).display().to_string();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("p.json");
    let output = Command::new(syscensus_bin())
        .arg("record")
        .arg("-o")
        .arg(&out)
        .args(["--", "/bin/sh", "-c", &format!("{out_of_range}; exit 3")])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(3), "{output:?}");
    let notices = notices(&output.stderr);
    assert_eq!(
        notices,
        vec![
            "syscensus: syscalls with numbers outside the recorded range were made: they are not in the profile"
        ],
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(allowed_names(&std::fs::read_to_string(&out).unwrap()).contains("exit_group"));
}
