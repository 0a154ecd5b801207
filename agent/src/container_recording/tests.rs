#![allow(clippy::unwrap_used, reason = "tests")]
use syscensus_common::abi;

use super::*;
use crate::syscalls::Arch;

fn nr(name: &str) -> u32 {
    Arch::native().number(name).unwrap()
}

fn session(id: u32, kind: SessionKind, argv: Option<&[&str]>, calls: &[&str]) -> SessionSnapshot {
    SessionSnapshot {
        id,
        kind,
        pid: 100 + id,
        argv: argv.map(|a| a.iter().map(|s| (*s).to_owned()).collect()),
        first_seen: Some(jiff::Timestamp::from_second(i64::from(id)).unwrap()),
        last_seen: Some(jiff::Timestamp::from_second(i64::from(id) + 1).unwrap()),
        count: 1,
        seen: BTreeMap::from([(abi::NATIVE, calls.iter().map(|c| nr(c)).collect())]),
        ended: true,
    }
}

fn snapshot() -> Snapshot {
    Snapshot {
        recording: true,
        seen: BTreeMap::from([(abi::NATIVE, vec![nr("read"), nr("write")])]),
        sessions: vec![
            session(
                1,
                SessionKind::Exec,
                Some(&["sh", "-c", "probe"]),
                &["statfs", "read"],
            ),
            session(
                2,
                SessionKind::Exec,
                Some(&["sh", "-c", "probe"]),
                &["mkdir"],
            ),
            session(3, SessionKind::Hook, Some(&["hook"]), &["sysinfo"]),
            session(4, SessionKind::Exec, None, &["chmod"]),
        ],
        ..Snapshot::default()
    }
}

fn names(census: &Census) -> Vec<String> {
    census
        .names(Arch::native().scmp_name())
        .map(|n| n.iter().cloned().collect())
        .unwrap_or_default()
}

#[test]
fn sessions_are_grouped_by_command_line_and_in_the_profile_by_default() {
    let parts = Parts::of(&snapshot(), &SessionPolicy::IncludeAll);
    let all = parts.census.clone();
    assert_eq!(
        names(&all),
        ["chmod", "mkdir", "read", "statfs", "sysinfo", "write"]
    );
    assert_eq!(
        names(&parts.session_only),
        ["chmod", "mkdir", "statfs", "sysinfo"]
    );
    assert_eq!(parts.sessions.len(), 3, "{:?}", parts.sessions);
    let probe = parts
        .sessions
        .iter()
        .find(|s| s.command.as_deref() == Some(&["sh".into(), "-c".into(), "probe".into()][..]))
        .unwrap();
    assert_eq!(probe.count, 2);
    assert_eq!(probe.first_seen.as_deref(), Some("1970-01-01T00:00:01Z"));
    assert_eq!(probe.last_seen.as_deref(), Some("1970-01-01T00:00:03Z"));
    assert_eq!(names(&probe.syscalls), ["mkdir", "read", "statfs"]);
    assert!(parts.hooks && !parts.exec_sessions_excluded);
    assert_eq!(parts.unnamed_sessions, 1);
}

#[test]
fn excluded_exec_sessions_are_listed_but_hooks_stay() {
    let parts = Parts::of(&snapshot(), &SessionPolicy::ExcludeExec);
    let all = parts.census.clone();
    assert_eq!(names(&all), ["read", "sysinfo", "write"]);
    assert_eq!(names(&parts.session_only), ["sysinfo"]);
    assert!(parts.exec_sessions_excluded);
    let included: Vec<(SessionType, bool)> = parts
        .sessions
        .iter()
        .map(|s| (s.kind, s.included))
        .collect();
    assert_eq!(
        included,
        [
            (SessionType::Exec, false),
            (SessionType::Exec, false),
            (SessionType::Hook, true)
        ]
    );
}

#[test]
fn probes_and_hooks_of_the_spec_are_in_and_other_sessions_are_not() {
    let probe = ExecCommand {
        source: "livenessProbe".into(),
        command: vec!["sh".into(), "-c".into(), "probe".into()],
    };
    let policy = SessionPolicy::Commands {
        commands: vec![probe.clone()],
        include_others: false,
    };
    let parts = Parts::of(&snapshot(), &policy);
    // The probe's mkdir and statfs, the hook's sysinfo, and chmod of the
    // session whose command line was lost; not what others ran.
    assert_eq!(
        names(&parts.census),
        ["chmod", "mkdir", "read", "statfs", "sysinfo", "write"]
    );
    let listed = Parts::of(
        &Snapshot {
            sessions: vec![session(
                7,
                SessionKind::Exec,
                Some(&["sh", "-c", "ls"]),
                &["getdents64"],
            )],
            ..snapshot()
        },
        &policy,
    );
    let ls = listed
        .sessions
        .iter()
        .find(|s| s.command.as_ref().is_some_and(|c| c[2] == "ls"))
        .unwrap();
    assert!(!ls.included, "{ls:?}");
    assert!(listed.exec_sessions_excluded);
    assert!(!names(&listed.census).contains(&"getdents64".to_owned()));
    let probed = parts
        .sessions
        .iter()
        .find(|s| s.command.as_ref().is_some_and(|c| c[2] == "probe"))
        .unwrap();
    assert!(probed.included);
    assert!(probed.reason.contains("livenessProbe"), "{}", probed.reason);
    // A recording ProfileRecording that includes every session.
    let all = Parts::of(
        &Snapshot {
            sessions: vec![session(
                7,
                SessionKind::Exec,
                Some(&["sh", "-c", "ls"]),
                &["getdents64"],
            )],
            ..snapshot()
        },
        &SessionPolicy::Commands {
            commands: vec![probe.clone()],
            include_others: true,
        },
    );
    assert!(names(&all.census).contains(&"getdents64".to_owned()));
    // A command line the kernel cut matches the command it was cut from.
    let long = ExecCommand {
        source: "readinessProbe".into(),
        command: vec!["sh".into(), "-c".into(), "x".repeat(600)],
    };
    assert!(long.matches(&["sh".into(), "-c".into(), "x".repeat(505)]));
    assert!(!long.matches(&["sh".into(), "-c".into(), "x".repeat(10)]));
    assert!(!probe.matches(&["sh".into(), "-c".into()]));
}

#[test]
fn a_recording_decided_again_keeps_the_workload_and_takes_the_probe() {
    let mut recording = ContainerRecording::build(RecordingParts {
        container_id: "c".into(),
        container_name: None,
        pod: None,
        node: None,
        cgroup: String::new(),
        labels: BTreeMap::new(),
        image: None,
        state: State::Exited,
        start: Start::Exec,
        first_seen: jiff::Timestamp::UNIX_EPOCH,
        last_seen: jiff::Timestamp::UNIX_EPOCH,
        last_new_syscall: None,
        base_set: None,
        snapshot: &snapshot(),
        sessions: &SessionPolicy::ExcludeExec,
    });
    assert_eq!(names(&recording.syscalls), ["read", "sysinfo", "write"]);
    recording.redecide(&SessionPolicy::Commands {
        commands: vec![ExecCommand {
            source: "postStart".into(),
            command: vec!["sh".into(), "-c".into(), "probe".into()],
        }],
        include_others: false,
    });
    assert_eq!(
        names(&recording.syscalls),
        ["chmod", "mkdir", "read", "statfs", "sysinfo", "write"]
    );
    assert_eq!(
        names(&recording.session_only_syscalls),
        ["chmod", "mkdir", "statfs", "sysinfo"]
    );
    assert!(!recording.exec_sessions_excluded);
    let rendered = recording.profile.to_oci_json();
    assert!(rendered.contains("\"mkdir\""), "{rendered}");
}

#[test]
fn sessions_round_trip_through_json() {
    let parts = Parts::of(&snapshot(), &SessionPolicy::IncludeAll);
    let text = serde_json::to_string(&parts.sessions).unwrap();
    assert!(text.contains(r#""type":"Hook""#), "{text}");
    let back: Vec<SessionRecord> = serde_json::from_str(&text).unwrap();
    assert_eq!(back, parts.sessions);
}
