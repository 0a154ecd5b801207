//! Reading the profile formats users bring (the third-party files in
//! tests/data/third-party, copied unmodified), writing OCI and SPO, and the
//! messages for broken files. Golden files live in tests/golden/; run with
//! `UPDATE_GOLDEN=1` to rewrite them after an intended change.
#![allow(clippy::unwrap_used, reason = "tests panic with context on failure")]
#![allow(
    unused_crate_dependencies,
    reason = "an integration test uses some of its package's dependencies"
)]

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
};

use syscensus::{
    census::Census,
    profile::{
        Action, BaseSet, BuildOptions, Host, KernelVersion, Profile, ProfileError,
        RULE_COMMENTS_ANNOTATION,
    },
    syscalls::Arch,
};

fn third_party(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/data/third-party")
        .join(name)
}

fn host(capabilities: &[&str], kernel: (u32, u32)) -> Host {
    let capabilities = capabilities
        .iter()
        .map(|c| 1u64 << syscensus::profile::capability_number(c).unwrap())
        .sum();
    Host {
        arch: Arch::X86_64,
        capabilities,
        kernel: KernelVersion {
            major: kernel.0,
            minor: kernel.1,
        },
    }
}

fn load(name: &str, select: Option<&str>, host: &Host) -> Result<Profile, ProfileError> {
    let path = third_party(name);
    let text = std::fs::read_to_string(&path).unwrap();
    Profile::parse_for_host(&text, &path, select, host)
}

fn parse_text(text: &str, origin: &str) -> Result<Profile, ProfileError> {
    Profile::parse_for_host(text, Path::new(origin), None, &host(&[], (6, 1)))
}

/// Compares `actual` with the golden file `name`, or rewrites it when
/// UPDATE_GOLDEN is set.
fn golden(name: &str, actual: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "cannot read golden file {}: {e}; run with UPDATE_GOLDEN=1 to create it",
            path.display()
        )
    });
    assert!(
        expected == actual,
        "{} differs from the output (run with UPDATE_GOLDEN=1 if the change is intended):\n--- expected\n{expected}\n--- actual\n{actual}",
        path.display()
    );
}

/// Names per action, for comparing profiles regardless of grouping.
fn names_by_action(profile: &Profile) -> BTreeMap<String, BTreeSet<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for rule in &profile.syscalls {
        let key = format!("{:?}{:?}{:?}", rule.action, rule.errno_ret, rule.args);
        out.entry(key)
            .or_default()
            .extend(rule.names.iter().cloned());
    }
    out
}

fn fixed_census() -> (Census, BaseSet) {
    let mut census = Census::default();
    census.extend(
        Arch::X86_64,
        [
            "read",
            "write",
            "openat",
            "close",
            "execve",
            "exit_group",
            "mmap",
        ],
    );
    census.extend(Arch::X86, ["read", "write", "exit"]);
    let base = BaseSet {
        name: "runc-1.1".to_owned(),
        syscalls: ["futex", "rt_sigreturn", "execve", "close"]
            .into_iter()
            .map(str::to_owned)
            .collect(),
    };
    (census, base)
}

#[cfg(target_arch = "x86_64")]
#[test]
fn census_profiles_match_the_golden_files() {
    let (census, base) = fixed_census();
    let profile = Profile::from_census(&census, Some(&base), &BuildOptions::default());
    golden("census.oci.json", &profile.to_oci_json());
    golden(
        "census.spo.yaml",
        &profile.to_spo_yaml("nginx-1.23.2", Some("web")).unwrap(),
    );
    let log = Profile::from_census(
        &census,
        None,
        &BuildOptions {
            default_action: Action::Log,
            errno_ret: 1,
        },
    );
    golden(
        "census-log.spo.yaml",
        &log.to_spo_yaml("nginx", None).unwrap(),
    );
}

#[cfg(target_arch = "x86_64")]
#[test]
fn written_profiles_read_back_the_same() {
    let (census, base) = fixed_census();
    let profile = Profile::from_census(&census, Some(&base), &BuildOptions::default());
    let oci = parse_text(&profile.to_oci_json(), "census.json").unwrap();
    assert_eq!(oci, profile);

    // SPO has no comments (they go to an annotation) and no
    // defaultErrnoRet: otherwise the same profile.
    let yaml = profile.to_spo_yaml("nginx", None).unwrap();
    assert!(yaml.contains(RULE_COMMENTS_ANNOTATION), "{yaml}");
    assert!(
        yaml.contains("syscalls[2]: runtime base set: runc-1.1"),
        "{yaml}"
    );
    let spo = parse_text(&yaml, "census.yaml").unwrap();
    let mut expected = profile.clone();
    expected.default_errno_ret = None;
    for rule in &mut expected.syscalls {
        rule.comment = None;
    }
    assert_eq!(spo, expected);
}

#[test]
fn spo_output_rejects_what_the_schema_cannot_hold() {
    let (census, _) = fixed_census();
    let profile = Profile::from_census(&census, None, &BuildOptions::default());
    for bad in ["Nginx", "my_app", "-x", "", "a..b"] {
        let error = profile.to_spo_yaml(bad, None).unwrap_err().to_string();
        assert!(error.contains("invalid object name"), "{error}");
        assert!(error.contains("--name"), "{error}");
    }
    let error = profile.to_spo_yaml("My_App", None).unwrap_err().to_string();
    assert!(error.contains("\"my-app\""), "{error}");
    let error = profile
        .to_spo_yaml("x", Some("Bad.NS"))
        .unwrap_err()
        .to_string();
    assert!(error.contains("invalid namespace"), "{error}");

    let enosys = Profile::from_census(
        &census,
        None,
        &BuildOptions {
            default_action: Action::Errno,
            errno_ret: 38,
        },
    );
    let error = enosys.to_spo_yaml("x", None).unwrap_err().to_string();
    assert!(error.contains("defaultErrnoRet"), "{error}");

    let big = parse_text(
        r#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read"],
            "action": "SCMP_ACT_ALLOW",
            "args": [{"index": 0, "value": 18446744073709551615, "op": "SCMP_CMP_EQ"}]}]}"#,
        "big.json",
    )
    .unwrap();
    let error = big.to_spo_yaml("x", None).unwrap_err().to_string();
    assert!(error.contains("18446744073709551615"), "{error}");
}

#[test]
fn moby_default_resolves_for_the_host() {
    let all_caps = host(
        &[
            "CAP_SYS_ADMIN",
            "CAP_SYS_PTRACE",
            "CAP_DAC_READ_SEARCH",
            "CAP_BPF",
            "CAP_PERFMON",
        ],
        (6, 18),
    );
    let profile = load("moby-default.json", None, &all_caps).unwrap();
    // archMap: the x86_64 entry and its sub-architectures.
    assert_eq!(
        profile.architectures,
        ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]
    );
    assert_eq!(profile.default_action, Action::Errno);
    assert_eq!(profile.default_errno_ret, Some(1));
    let names = |p: &Profile| -> BTreeSet<String> {
        p.syscalls
            .iter()
            .filter(|r| r.action == Action::Allow && r.args.is_empty())
            .flat_map(|r| r.names.iter().cloned())
            .collect()
    };
    let allowed = names(&profile);
    // includes.arches: amd64 rules in, arm and s390 rules out.
    assert!(allowed.contains("arch_prctl"));
    assert!(allowed.contains("modify_ldt"));
    assert!(!allowed.contains("s390_runtime_instr"));
    assert!(!allowed.contains("set_tls"));
    // includes.caps and excludes.caps.
    assert!(allowed.contains("mount"));
    assert!(allowed.contains("ptrace"));
    assert!(
        !profile
            .syscalls
            .iter()
            .any(|r| r.names == ["clone3"] && r.action == Action::Errno),
        "the clone3 ENOSYS rule excludes CAP_SYS_ADMIN"
    );
    golden("moby-default.amd64-all-caps.json", &profile.to_oci_json());

    let none = host(&[], (4, 4));
    let profile = load("moby-default.json", None, &none).unwrap();
    let allowed = names(&profile);
    assert!(!allowed.contains("mount"));
    // minKernel 4.8: not on 4.4.
    assert!(!allowed.contains("ptrace"));
    let clone3 = profile
        .syscalls
        .iter()
        .find(|r| r.names == ["clone3"])
        .unwrap();
    assert_eq!((clone3.action, clone3.errno_ret), (Action::Errno, Some(38)));
    assert!(
        profile
            .syscalls
            .iter()
            .any(|r| r.names == ["clone"] && !r.args.is_empty()),
        "the clone argument rule applies without CAP_SYS_ADMIN"
    );
}

#[test]
fn old_format_reads_like_names() {
    let profile = load("moby-default-old-format.json", None, &host(&[], (6, 1))).unwrap();
    assert_eq!(profile.syscalls[0].names, ["accept"]);
    assert!(profile.syscalls.iter().all(|r| r.names.len() == 1));
    assert!(profile.syscalls.len() > 300);
}

#[test]
fn conditional_includes_follow_capabilities() {
    let without = load("moby-conditional-include.json", None, &host(&[], (6, 1))).unwrap();
    let with = load(
        "moby-conditional-include.json",
        None,
        &host(&["CAP_SYSLOG", "CAP_SYS_ADMIN"], (6, 1)),
    )
    .unwrap();
    let names =
        |p: &Profile| -> Vec<String> { p.syscalls.iter().flat_map(|r| r.names.clone()).collect() };
    assert_eq!(names(&without), ["chmod", "ptrace"]);
    assert_eq!(names(&with), ["chmod", "syslog"]);
}

#[test]
fn containers_common_reads_with_its_extra_fields() {
    let profile = load("containers-common-seccomp.json", None, &host(&[], (6, 1))).unwrap();
    assert_eq!(profile.default_errno_ret, Some(38));
    assert!(profile.syscalls.iter().all(|r| r.comment.is_none()));
    let socket_rules = profile
        .syscalls
        .iter()
        .filter(|r| r.names == ["socket"])
        .count();
    assert_eq!(socket_rules, 4);
}

#[test]
fn spo_objects_are_selected_by_name() {
    let h = host(&[], (6, 1));
    let error = load("spo-seccompprofile.yaml", None, &h).unwrap_err();
    let message = error.to_string();
    assert!(message.contains("spo-seccompprofile.yaml"), "{message}");
    assert!(
        message.contains("profile-block-all, profile-complain-unsafe"),
        "{message}"
    );
    assert!(message.contains("--name"), "{message}");
    assert!(!matches!(error, ProfileError::Read { .. }), "{error}");

    let profile = load(
        "spo-seccompprofile.yaml",
        Some("profile-complain-block-high-risk"),
        &h,
    )
    .unwrap();
    assert_eq!(profile.default_action, Action::Log);
    assert_eq!(profile.architectures, ["SCMP_ARCH_X86_64"]);
    assert_eq!(profile.syscalls.len(), 2);
    assert_eq!(profile.syscalls[1].action, Action::Errno);

    let error = load("spo-seccompprofile.yaml", Some("nope"), &h)
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("no SeccompProfile named \"nope\""),
        "{error}"
    );

    let runc = load("spo-baseprofile-runc.yaml", None, &h).unwrap();
    assert!(runc.syscalls[0].names.contains(&"execve".to_owned()));
    let crun = load("spo-baseprofile-crun.yaml", Some("crun-v1.26"), &h).unwrap();
    assert_eq!(crun.default_action, Action::Errno);

    let error = load("spo-profilerecording-seccomp-bpf.yaml", None, &h)
        .unwrap_err()
        .to_string();
    assert!(error.contains("ProfileRecording test-recording"), "{error}");
}

#[test]
fn spo_objects_read_as_json_too() {
    let json = r#"{
  "apiVersion": "security-profiles-operator.x-k8s.io/v1beta1",
  "kind": "SeccompProfile",
  "metadata": {"name": "p", "namespace": "default"},
  "spec": {
    "defaultAction": "SCMP_ACT_ERRNO",
    "syscalls": [{"action": "SCMP_ACT_ERRNO", "names": ["read"], "errnoRet": "5"}]
  }
}"#;
    let profile = parse_text(json, "p.json").unwrap();
    assert_eq!(profile.syscalls[0].errno_ret, Some(5));
    let error = Profile::parse_for_host(json, Path::new("p.json"), Some("q"), &host(&[], (6, 1)))
        .unwrap_err()
        .to_string();
    assert!(error.contains("no SeccompProfile named \"q\""), "{error}");
}

#[test]
fn base_profiles_are_reported() {
    let yaml = "apiVersion: security-profiles-operator.x-k8s.io/v1
kind: SeccompProfile
metadata:
  name: app
spec:
  baseProfileName: runc-v1.4.2
  defaultAction: SCMP_ACT_ERRNO
";
    let error = parse_text(yaml, "app.yaml").unwrap_err().to_string();
    assert!(error.starts_with("app.yaml: "), "{error}");
    assert!(error.contains("\"runc-v1.4.2\""), "{error}");
    assert!(error.contains("baseProfileName"), "{error}");
}

/// Parses `text` and returns the one-line error message.
fn error_of(text: &str, origin: &str) -> String {
    let error = parse_text(text, origin).unwrap_err();
    // Malformed, not unreadable: exit status 65 (`cli::exit`).
    assert!(!matches!(error, ProfileError::Read { .. }), "{error}");
    let message = error.to_string();
    assert!(!message.contains('\n'), "{message}");
    message
}

#[test]
fn errors_point_at_file_line_and_column() {
    let text = "{\n  \"defaultAction\": \"SCMP_ACT_ERRNO\",\n  \"syscalls\": [\n    {\"names\": [\"read\"], \"action\": \"SCMP_ACT_FOO\"}\n  ]\n}\n";
    let message = error_of(text, "profile.json");
    assert!(message.starts_with("profile.json:4:"), "{message}");
    assert!(
        message.contains("unknown action \"SCMP_ACT_FOO\": use one of SCMP_ACT_ALLOW"),
        "{message}"
    );

    let message = error_of(
        "{\n  \"defaultAction\": \"SCMP_ACT_ERRNO\",\n  \"syscalls\": [{\"names\": [\"frobnicate\"], \"action\": \"SCMP_ACT_ALLOW\"}]\n}",
        "p.json",
    );
    assert!(message.starts_with("p.json:3:"), "{message}");
    assert!(
        message.contains("unknown syscall \"frobnicate\""),
        "{message}"
    );

    let message = error_of("{\"defaultAction\": \"SCMP_ACT_ERRNO\",}", "comma.json");
    assert!(message.starts_with("comma.json:1:"), "{message}");
    assert!(message.contains("trailing comma"), "{message}");

    let yaml = "apiVersion: security-profiles-operator.x-k8s.io/v1\nkind: SeccompProfile\nmetadata:\n  name: x\nspec:\n  defaultAction: SCMP_ACT_ERRNO\n  syscalls:\n  - action: SCMP_ACT_ALLOW\n    names: [read, nope]\n";
    let message = error_of(yaml, "x.yaml");
    assert!(message.starts_with("x.yaml:9:"), "{message}");
    assert!(message.contains("unknown syscall \"nope\""), "{message}");

    let message = error_of("defaultAction: [\n", "broken.yaml");
    assert!(message.starts_with("broken.yaml:"), "{message}");

    for (text, needle) in [
        (
            r#"{"defaultAction": "SCMP_ACT_ERRNO", "architectures": ["SCMP_ARCH_VAX"]}"#,
            "unknown architecture \"SCMP_ARCH_VAX\"",
        ),
        (
            r#"{"defaultAction": "SCMP_ACT_ERRNO", "flags": ["SECCOMP_FILTER_FLAG_X"]}"#,
            "unknown flag",
        ),
        (
            r#"{"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 70000}"#,
            "errno 70000 is out of range",
        ),
        (
            r#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 6, "value": 1, "op": "SCMP_CMP_EQ"}]}]}"#,
            "argument index 6",
        ),
        (
            r#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 1, "value": 1, "op": "SCMP_CMP_XX"}]}]}"#,
            "unknown operator",
        ),
        (r#"{"syscalls": []}"#, "missing field `defaultAction`"),
        (
            r#"{"defaultAction": "SCMP_ACT_ERRNO", "architectures": ["SCMP_ARCH_X86"], "archMap": [{"architecture": "SCMP_ARCH_X86_64"}]}"#,
            "not both",
        ),
        (
            r#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"name": "read", "names": ["write"], "action": "SCMP_ACT_ALLOW"}]}"#,
            "both \"name\" and \"names\"",
        ),
        (
            r#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW", "includes": {"minKernel": "four"}}]}"#,
            "invalid minKernel",
        ),
        ("", "the file is empty"),
    ] {
        let message = error_of(text, "t.json");
        assert!(message.contains(needle), "{needle:?} not in {message}");
        assert!(message.starts_with("t.json"), "{message}");
    }
}

#[test]
fn unreadable_files_are_no_input() {
    let error = Profile::load(Path::new("/nonexistent/profile.json"), None).unwrap_err();
    assert!(matches!(error, ProfileError::Read { .. }), "{error}");
    assert!(error.to_string().contains("/nonexistent/profile.json"));
}

#[test]
fn names_known_elsewhere_are_accepted() {
    // An s390 syscall in a profile is not an error: the compiler skips it on
    // architectures without it.
    let profile = parse_text(
        r#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read", "s390_runtime_instr"], "action": "SCMP_ACT_ALLOW"}]}"#,
        "t.json",
    )
    .unwrap();
    assert_eq!(names_by_action(&profile).len(), 1);
    syscensus::seccomp::compile(&profile, Arch::X86_64).unwrap();
}

#[test]
fn files_that_are_not_text_are_malformed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("binary.json");
    std::fs::write(&path, b"{\"defaultAction\":\n \"\xff\"}").unwrap();
    let error = Profile::load(&path, None).unwrap_err();
    assert!(!matches!(error, ProfileError::Read { .. }), "{error}");
    assert!(error.to_string().contains(":2:3: not UTF-8"), "{error}");
}

#[test]
fn object_names_can_be_checked_before_recording() {
    assert!(syscensus::profile::validate_object_name("nginx-1.23.2").is_ok());
    let error = syscensus::profile::validate_object_name("Nginx_1")
        .unwrap_err()
        .to_string();
    assert!(error.contains("\"nginx-1\""), "{error}");
    assert!(syscensus::profile::validate_namespace("kube-system").is_ok());
    assert!(syscensus::profile::validate_namespace("a.b").is_err());
}

/// A file that is not a profile gets a one-line error quoting at most a
/// short excerpt of it, however long the file (it used to hold all of
/// /etc/passwd).
#[test]
fn malformed_input_is_quoted_in_a_short_excerpt() {
    let long_line: String = (0..200)
        .map(|i| format!("user{i}:x:{i}:{i}::/home/user{i}:/bin/sh "))
        .collect();
    for text in [
        long_line.clone(),
        format!("[\"{long_line}\"]"),
        format!("{{\"defaultAction\": \"{long_line}\"}}"),
        format!("defaultAction: [{long_line}"),
    ] {
        let error = parse_text(&text, "passwd").unwrap_err().to_string();
        assert!(error.len() < 300, "{} bytes: {error}", error.len());
        assert!(!error.contains("user199"), "{error}");
        assert!(!error.contains('\n'), "{error}");
    }
}
