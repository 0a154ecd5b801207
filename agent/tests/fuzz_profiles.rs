//! Property tests of the profile readers and the seccomp compiler against
//! hostile and near-valid input: OCI, Docker and SPO profiles with random
//! actions, operators, architectures and conditions, huge name lists, and
//! mutated real files. Nothing may panic; what parses must survive a round
//! trip; what compiles must be a filter the interpreter runs to a verdict.
//! `cargo xtask fuzz` runs the same parsers under libFuzzer for longer.
#![allow(clippy::unwrap_used, reason = "tests panic with context on failure")]
#![allow(
    unused_crate_dependencies,
    reason = "an integration test uses some of its package's dependencies"
)]

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use proptest::{prelude::*, test_runner::Config};
use serde_json::{Value, json};
use syscensus::{
    profile::{ARCH_NAMES, Action, Arg, FLAG_NAMES, Host, KernelVersion, Op, Profile, Rule},
    seccomp::{self, SeccompData},
    syscalls::Arch,
};

/// A proptest configuration with `cases` cases (or `PROPTEST_CASES`, for a
/// longer run) and no regression files written into the source tree: a
/// failure prints its minimal input, which then becomes a plain test.
fn config(cases: u32) -> Config {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(cases);
    Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    }
}

fn host(arch: Arch, capabilities: u64, kernel: (u32, u32)) -> Host {
    Host {
        arch,
        capabilities,
        kernel: KernelVersion {
            major: kernel.0,
            minor: kernel.1,
        },
    }
}

fn parse(text: &str, select: Option<&str>, host: &Host) -> Result<Profile, String> {
    Profile::parse_for_host(text, Path::new("fuzz.json"), select, host).map_err(|e| e.to_string())
}

const ACTIONS: [&str; 9] = [
    "SCMP_ACT_ALLOW",
    "SCMP_ACT_ERRNO",
    "SCMP_ACT_LOG",
    "SCMP_ACT_KILL_THREAD",
    "SCMP_ACT_KILL",
    "SCMP_ACT_KILL_PROCESS",
    "SCMP_ACT_TRAP",
    "SCMP_ACT_TRACE",
    "SCMP_ACT_NOTIFY",
];

const OPS: [&str; 7] = [
    "SCMP_CMP_NE",
    "SCMP_CMP_LT",
    "SCMP_CMP_LE",
    "SCMP_CMP_EQ",
    "SCMP_CMP_GE",
    "SCMP_CMP_GT",
    "SCMP_CMP_MASKED_EQ",
];

/// Every syscall name the x86_64 and aarch64 tables know.
fn known_names() -> Vec<&'static str> {
    let names: BTreeSet<&str> = Arch::ALL
        .iter()
        .flat_map(|a| a.syscalls().iter().map(|(_, n)| *n))
        .collect();
    names.into_iter().collect()
}

/// A name from `table`, or (one time in `1/odds`) an arbitrary string: a
/// misspelling, an empty name, or text that looks like a path.
fn name_or_junk(table: Vec<&'static str>, odds: u32) -> BoxedStrategy<String> {
    prop_oneof![
        odds => proptest::sample::select(table).prop_map(str::to_owned),
        1 => prop_oneof![
            "[A-Za-z_0-9./-]{0,24}",
            any::<String>(),
            Just("../../etc/passwd".to_owned()),
            Just(String::new()),
        ],
    ]
    .boxed()
}

fn action() -> BoxedStrategy<String> {
    name_or_junk(ACTIONS.to_vec(), 12)
}

/// A JSON number or string for errno fields: in range, out of range,
/// negative, or not a number.
fn errno_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        (0u64..=4095).prop_map(|v| json!(v)),
        any::<u64>().prop_map(|v| json!(v)),
        any::<i64>().prop_map(|v| json!(v)),
        "[0-9 a-z-]{0,6}".prop_map(|v| json!(v)),
        Just(json!(1.5)),
        Just(Value::Null),
    ]
}

fn arg_value() -> impl Strategy<Value = Value> {
    let index = prop_oneof![
        8 => (0u64..6).prop_map(|v| json!(v)),
        1 => any::<i64>().prop_map(|v| json!(v)),
        1 => Just(json!("0")),
    ];
    let op = name_or_junk(OPS.to_vec(), 12);
    let value = prop_oneof![
        any::<u64>().prop_map(|v| json!(v)),
        any::<i64>().prop_map(|v| json!(v)),
        Just(json!(-1)),
        Just(json!(1e300)),
    ];
    (index, any::<u64>(), value, op, any::<bool>()).prop_map(
        |(index, value_two, value, op, with_two)| {
            let mut arg = json!({ "index": index, "value": value, "op": op });
            if with_two {
                arg["valueTwo"] = json!(value_two);
            }
            arg
        },
    )
}

/// One OCI or Docker rule: `names` or the old `name`, random action, errno,
/// conditions and comment.
fn rule_value() -> impl Strategy<Value = Value> {
    (
        proptest::collection::vec(name_or_junk(known_names(), 40), 0..12),
        action(),
        proptest::option::of(errno_value()),
        proptest::collection::vec(arg_value(), 0..4),
        proptest::option::of(any::<String>()),
        0u8..4,
    )
        .prop_map(|(names, action, errno, args, comment, shape)| {
            let mut rule = json!({ "action": action });
            match shape {
                // The old one-name form, or both forms at once.
                0 => rule["name"] = json!(names.first().cloned().unwrap_or_default()),
                1 => {
                    rule["name"] = json!("read");
                    rule["names"] = json!(names);
                }
                _ => rule["names"] = json!(names),
            }
            if let Some(errno) = errno {
                rule["errnoRet"] = errno;
            }
            if !args.is_empty() {
                rule["args"] = json!(args);
            }
            if let Some(comment) = comment {
                rule["comment"] = json!(comment);
            }
            rule
        })
}

fn arch_name() -> BoxedStrategy<String> {
    name_or_junk(ARCH_NAMES.to_vec(), 10)
}

/// An OCI profile document with random parts.
fn oci_value() -> impl Strategy<Value = Value> {
    (
        action(),
        proptest::option::of(errno_value()),
        proptest::collection::vec(arch_name(), 0..5),
        proptest::collection::vec(name_or_junk(FLAG_NAMES.to_vec(), 10), 0..3),
        proptest::collection::vec(rule_value(), 0..8),
    )
        .prop_map(|(default, errno, arches, flags, rules)| {
            let mut profile = json!({ "defaultAction": default, "syscalls": rules });
            if let Some(errno) = errno {
                profile["defaultErrnoRet"] = errno;
            }
            if !arches.is_empty() {
                profile["architectures"] = json!(arches);
            }
            if !flags.is_empty() {
                profile["flags"] = json!(flags);
            }
            profile
        })
}

/// The Go architecture names Docker's `includes`/`excludes` use, and junk.
fn go_arch() -> BoxedStrategy<String> {
    name_or_junk(vec!["amd64", "arm64", "386", "x86", "x32", "ppc64le"], 6)
}

fn capability() -> BoxedStrategy<String> {
    name_or_junk(
        vec![
            "CAP_SYS_ADMIN",
            "CAP_SYS_PTRACE",
            "CAP_BPF",
            "CAP_NET_ADMIN",
            "CAP_CHECKPOINT_RESTORE",
        ],
        6,
    )
}

fn kernel_text() -> BoxedStrategy<String> {
    prop_oneof![
        4 => (0u32..8, 0u32..30).prop_map(|(a, b)| format!("{a}.{b}")),
        1 => "[0-9.a-z-]{0,12}",
        1 => any::<u64>().prop_map(|v| format!("{v}.{v}")),
    ]
    .boxed()
}

fn condition_value() -> impl Strategy<Value = Value> {
    (
        proptest::option::of(proptest::collection::vec(go_arch(), 0..3)),
        proptest::option::of(proptest::collection::vec(capability(), 0..3)),
        proptest::option::of(kernel_text()),
    )
        .prop_map(|(arches, caps, min_kernel)| {
            let mut filter = json!({});
            if let Some(arches) = arches {
                filter["arches"] = json!(arches);
            }
            if let Some(caps) = caps {
                filter["caps"] = json!(caps);
            }
            if let Some(min_kernel) = min_kernel {
                filter["minKernel"] = json!(min_kernel);
            }
            filter
        })
}

/// A Docker profile: `archMap` (or `architectures`, or both), rules with
/// `includes` and `excludes`.
fn docker_value() -> impl Strategy<Value = Value> {
    let arch_map = proptest::collection::vec(
        (arch_name(), proptest::collection::vec(arch_name(), 0..3))
            .prop_map(|(a, subs)| json!({ "architecture": a, "subArchitectures": subs })),
        0..4,
    );
    let rule = (
        rule_value(),
        proptest::option::of(condition_value()),
        proptest::option::of(condition_value()),
    )
        .prop_map(|(mut rule, includes, excludes)| {
            if let Some(includes) = includes {
                rule["includes"] = includes;
            }
            if let Some(excludes) = excludes {
                rule["excludes"] = excludes;
            }
            rule
        });
    (
        oci_value(),
        arch_map,
        proptest::collection::vec(rule, 0..8),
        any::<bool>(),
    )
        .prop_map(|(mut profile, arch_map, rules, keep_architectures)| {
            if !keep_architectures {
                profile.as_object_mut().unwrap().remove("architectures");
            }
            profile["archMap"] = json!(arch_map);
            profile["syscalls"] = json!(rules);
            profile
        })
}

fn any_host() -> impl Strategy<Value = Host> {
    (
        proptest::sample::select(Arch::ALL.to_vec()),
        any::<u64>(),
        0u32..8,
        0u32..30,
    )
        .prop_map(|(arch, caps, major, minor)| host(arch, caps, (major, minor)))
}

/// A valid profile value, as the model holds it after parsing: known
/// names, in-range errnos and argument indexes, non-empty comments.
fn profile_model() -> impl Strategy<Value = Profile> {
    let action = proptest::sample::select(vec![
        Action::Allow,
        Action::Errno,
        Action::Log,
        Action::KillThread,
        Action::KillProcess,
        Action::Trap,
        Action::Trace,
        Action::Notify,
    ]);
    let op = proptest::sample::select(vec![
        Op::Ne,
        Op::Lt,
        Op::Le,
        Op::Eq,
        Op::Ge,
        Op::Gt,
        Op::MaskedEq,
    ]);
    let arg = (0u32..6, any::<u64>(), any::<u64>(), op).prop_map(|(index, value, two, op)| Arg {
        index,
        value,
        value_two: two,
        op,
    });
    let rule = (
        proptest::collection::vec(proptest::sample::select(known_names()), 0..20),
        action.clone(),
        proptest::option::of(0u32..=4095),
        proptest::collection::vec(arg, 0..4),
        proptest::option::of(".{1,20}"),
    )
        .prop_map(|(names, action, errno_ret, args, comment)| Rule {
            names: names.into_iter().map(str::to_owned).collect(),
            action,
            errno_ret,
            args,
            comment,
        });
    (
        action,
        proptest::option::of(0u32..=4095),
        proptest::collection::vec(proptest::sample::select(ARCH_NAMES.to_vec()), 0..4),
        proptest::collection::vec(proptest::sample::select(FLAG_NAMES.to_vec()), 0..3),
        proptest::collection::vec(rule, 0..8),
    )
        .prop_map(
            |(default_action, default_errno_ret, arches, flags, syscalls)| Profile {
                default_action,
                default_errno_ret,
                architectures: arches.into_iter().map(str::to_owned).collect(),
                flags: flags.into_iter().map(str::to_owned).collect(),
                syscalls,
            },
        )
}

fn seccomp_data() -> impl Strategy<Value = SeccompData> {
    let arch = prop_oneof![
        proptest::sample::select(Arch::ALL.to_vec()).prop_map(Arch::audit_arch),
        any::<u32>(),
    ];
    let nr = prop_oneof![0u32..500, 0x4000_0000u32..0x4000_0300, any::<u32>()];
    (nr, arch, any::<[u64; 6]>()).prop_map(|(nr, arch, args)| SeccompData {
        nr,
        arch,
        instruction_pointer: 0,
        args,
    })
}

/// Compiles `profile` for every host architecture; whatever compiles must
/// run to a verdict on every input (the compiler only emits programs the
/// interpreter, and so the kernel, accepts).
fn check_compiles(profile: &Profile, data: &[SeccompData]) {
    for host in [Arch::X86_64, Arch::Aarch64] {
        let Ok(program) = seccomp::compile(profile, host) else {
            continue;
        };
        assert!(program.len() <= 4096, "{} instructions", program.len());
        for d in data {
            seccomp::evaluate(&program, d).unwrap_or_else(|e| {
                panic!(
                    "compiled filter fails on {d:?}: {e}\n{}",
                    profile.to_oci_json()
                )
            });
        }
    }
}

proptest! {
    #![proptest_config(config(256))]

    /// Arbitrary text, JSON-looking or not, never panics the reader.
    #[test]
    fn arbitrary_text_never_panics(text in prop_oneof![
        any::<String>(),
        "[{}\\[\\]\":,a-zA-Z_0-9 \n\t.-]{0,200}",
        "(---\n|kind: |apiVersion: |metadata:\n  name: x\n|spec:\n  |defaultAction: |- |\\{|\\[|&a |\\*a |!!str |[a-zA-Z0-9_\" :]){0,40}",
    ], select in proptest::option::of("[a-z]{0,3}"), host in any_host()) {
        let _ = parse(&text, select.as_deref(), &host);
    }

}

proptest! {
    #![proptest_config(config(64))]

    /// Arbitrary bytes, as `Profile::load` reads them: never panics.
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("profile.json");
        std::fs::write(&path, &bytes).unwrap();
        let _ = Profile::load(&path, None);
    }
}

proptest! {
    #![proptest_config(config(96))]

    /// Near-valid OCI profiles: parse or fail with a message naming the
    /// file; what parses survives `to_oci_json` and compiles (or is
    /// refused) without panicking.
    #[test]
    fn near_valid_oci_profiles(
        profile in oci_value(),
        pretty in any::<bool>(),
        host in any_host(),
        data in proptest::collection::vec(seccomp_data(), 1..8),
    ) {
        let text = if pretty {
            serde_json::to_string_pretty(&profile).unwrap()
        } else {
            serde_json::to_string(&profile).unwrap()
        };
        match parse(&text, None, &host) {
            Ok(parsed) => {
                let again = parse(&parsed.to_oci_json(), None, &host).unwrap();
                prop_assert_eq!(&again, &parsed);
                check_compiles(&parsed, &data);
            }
            Err(message) => prop_assert!(message.starts_with("fuzz.json"), "{}", message),
        }
    }

    /// The same documents as YAML (an SPO spec without the object around
    /// it is read as a plain profile).
    #[test]
    fn near_valid_yaml_profiles(profile in oci_value(), host in any_host()) {
        let text = serde_norway::to_string(&profile).unwrap();
        let from_json = parse(&serde_json::to_string(&profile).unwrap(), None, &host);
        let from_yaml = parse(&text, None, &host);
        // YAML and JSON agree on what is valid, but YAML may read a JSON
        // string such as "0" as a number: compare only clean successes.
        if let (Ok(a), Ok(b)) = (&from_json, &from_yaml) {
            prop_assert_eq!(a, b);
        }
    }

    /// Docker profiles: conditions resolved for random hosts never panic,
    /// and a rule excluded on the host's architecture, or included only on
    /// others, is gone.
    #[test]
    fn docker_profiles(mut profile in docker_value(), host in any_host()) {
        for (i, rule) in profile["syscalls"].as_array_mut().unwrap().iter_mut().enumerate() {
            rule["comment"] = json!(format!("rule-{i}"));
        }
        let text = serde_json::to_string(&profile).unwrap();
        if let Ok(parsed) = parse(&text, None, &host) {
            let names = host_go_names(host.arch);
            let on_host = |arches: &Value| {
                arches
                    .as_array()
                    .map(|a| a.iter().any(|x| names.contains(&x.as_str().unwrap())))
            };
            for (i, rule) in profile["syscalls"].as_array().unwrap().iter().enumerate() {
                let excluded = on_host(&rule["excludes"]["arches"]) == Some(true)
                    || (on_host(&rule["includes"]["arches"]) == Some(false)
                        && !rule["includes"]["arches"].as_array().unwrap().is_empty());
                let kept = parsed
                    .syscalls
                    .iter()
                    .any(|r| r.comment.as_deref() == Some(format!("rule-{i}").as_str()));
                prop_assert!(!(excluded && kept), "rule {} kept on {:?}", i, host.arch);
            }
            let again = parse(&parsed.to_oci_json(), None, &host).unwrap();
            prop_assert_eq!(again, parsed);
        }
    }

    /// Profile → to_oci_json → parse gives the same profile.
    #[test]
    fn oci_round_trip(profile in profile_model(), host in any_host()) {
        let text = profile.to_oci_json();
        let parsed = parse(&text, None, &host).map_err(TestCaseError::fail)?;
        prop_assert_eq!(parsed, profile);
    }

    /// Profile → to_spo_yaml → parse gives the same rules, when SPO can
    /// express the profile at all; the object name and namespace are
    /// checked, never trusted.
    #[test]
    fn spo_round_trip(
        profile in profile_model(),
        name in prop_oneof!["[a-z0-9]([a-z0-9.-]{0,20}[a-z0-9])?", any::<String>(), Just("../x".to_owned())],
        namespace in proptest::option::of(prop_oneof!["[a-z0-9-]{1,20}", any::<String>()]),
        host in any_host(),
    ) {
        let Ok(yaml) = profile.to_spo_yaml(&name, namespace.as_deref()) else {
            return Ok(());
        };
        let parsed = parse(&yaml, Some(&name), &host).map_err(TestCaseError::fail)?;
        prop_assert_eq!(parsed.default_action, profile.default_action);
        prop_assert_eq!(&parsed.architectures, &profile.architectures);
        // SPO's `names` is a set: a name given twice is written once.
        let unique = |names: &[String]| -> Vec<String> {
            let mut out: Vec<String> = Vec::new();
            for name in names {
                if !out.contains(name) {
                    out.push(name.clone());
                }
            }
            out
        };
        let rules = |p: &Profile| -> Vec<(Vec<String>, Action, Vec<Arg>)> {
            p.syscalls.iter().filter(|r| !r.names.is_empty()).map(|r| (unique(&r.names), r.action, r.args.clone())).collect()
        };
        prop_assert_eq!(rules(&parsed), rules(&profile));
    }

}

proptest! {
    #![proptest_config(config(32))]

    /// Several SPO objects in one file: `select` picks the one of that
    /// name, and gives what that object alone gives.
    #[test]
    fn spo_multi_document_selection(
        profiles in proptest::collection::vec(profile_model(), 1..5),
        others in proptest::collection::vec("[a-zA-Z]{1,10}", 0..3),
        pick in any::<proptest::sample::Index>(),
        host in any_host(),
    ) {
        let mut documents = Vec::new();
        let mut names = Vec::new();
        for (i, profile) in profiles.iter().enumerate() {
            let name = format!("profile-{i}");
            if let Ok(yaml) = profile.to_spo_yaml(&name, None) {
                documents.push(yaml);
                names.push(name);
            }
        }
        for kind in &others {
            documents.push(format!("apiVersion: v1\nkind: {kind}\nmetadata:\n  name: other\n"));
        }
        prop_assume!(!names.is_empty());
        let text = documents.join("---\n");
        // The objects come first, in the order of `names`.
        let chosen = pick.index(names.len());
        let from_file = parse(&text, Some(&names[chosen]), &host);
        let from_alone = parse(&documents[chosen], None, &host);
        prop_assert_eq!(from_file, from_alone);
        // Without a name, only a file of one object is unambiguous.
        let unselected = parse(&text, None, &host);
        prop_assert_eq!(unselected.is_ok(), names.len() == 1, "{:?}", unselected);
    }

}

proptest! {
    #![proptest_config(config(256))]

    /// Arbitrary BPF programs run to a verdict or an error, never a panic
    /// or an endless loop.
    #[test]
    fn evaluator_never_panics(
        program in proptest::collection::vec((any::<u16>(), any::<u8>(), any::<u8>(), any::<u32>()), 0..64),
        data in seccomp_data(),
    ) {
        let program: Vec<libc::sock_filter> = program
            .into_iter()
            .map(|(code, jt, jf, k)| libc::sock_filter { code, jt, jf, k })
            .collect();
        let _ = seccomp::evaluate(&program, &data);
    }

    /// Real files, mutated: truncated, a byte range replaced, a chunk
    /// repeated. Never a panic.
    #[test]
    fn mutated_real_profiles_never_panic(
        file in proptest::sample::select(real_profiles()),
        cut in any::<proptest::sample::Index>(),
        at in any::<proptest::sample::Index>(),
        splice in "[{}\\[\\]\":,a-zA-Z_0-9 \n-]{0,8}",
        mode in 0u8..3,
        host in any_host(),
    ) {
        let text = std::fs::read_to_string(&file).unwrap();
        let bytes = text.as_bytes();
        let at = at.index(bytes.len().max(1));
        let mut mutated: Vec<u8> = match mode {
            0 => bytes[..cut.index(bytes.len().max(1))].to_vec(),
            1 => [&bytes[..at], splice.as_bytes(), &bytes[(at + splice.len()).min(bytes.len())..]].concat(),
            _ => [&bytes[..at], &bytes[at..(at + 64).min(bytes.len())], &bytes[at..]].concat(),
        };
        mutated.truncate(200_000);
        let text = String::from_utf8_lossy(&mutated);
        let _ = parse(&text, None, &host);
        let _ = parse(&text, Some("profile"), &host);
    }
}

fn host_go_names(arch: Arch) -> &'static [&'static str] {
    host(arch, 0, (0, 0)).go_arch_names()
}

/// The real profiles the other tests read, as seeds for mutation.
fn real_profiles() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    for dir in [
        root.join("../tests/data/third-party"),
        root.join("tests/golden"),
    ] {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "json" || e == "yaml") {
                files.push(path);
            }
        }
    }
    assert!(files.len() >= 8, "the real profiles are missing: {files:?}");
    files.sort();
    files
}

/// A rule of 100,000 names (every known name, repeated) parses and
/// compiles in bounded time, and a profile of 10,000 rules too.
#[test]
fn huge_name_lists_are_bounded() {
    let names = known_names();
    let many: Vec<&str> = names.iter().copied().cycle().take(100_000).collect();
    let text = json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": [{ "names": many, "action": "SCMP_ACT_ALLOW" }],
    })
    .to_string();
    let started = Instant::now();
    let profile = parse(&text, None, &host(Arch::X86_64, 0, (6, 1))).unwrap();
    let program = seccomp::compile(&profile, Arch::X86_64).unwrap();
    assert!(!program.is_empty());
    let rules: Vec<Value> = many[..10_000]
        .iter()
        .map(|n| json!({ "names": [n], "action": "SCMP_ACT_LOG" }))
        .collect();
    let text = json!({ "defaultAction": "SCMP_ACT_ERRNO", "syscalls": rules }).to_string();
    let profile = parse(&text, None, &host(Arch::X86_64, 0, (6, 1))).unwrap();
    seccomp::compile(&profile, Arch::X86_64).unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "took {:?}",
        started.elapsed()
    );
}

/// Many conditions make a filter larger than the kernel takes: refused
/// with a clear error, in bounded time.
#[test]
fn oversized_filters_are_refused() {
    let args: Vec<Value> = (0..2_000)
        .map(|i| json!({ "index": i % 6, "value": i, "op": "SCMP_CMP_EQ" }))
        .collect();
    let text = json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "syscalls": [{ "names": ["read", "write", "openat", "close"], "action": "SCMP_ACT_ALLOW", "args": args }],
    })
    .to_string();
    let started = Instant::now();
    let profile = parse(&text, None, &host(Arch::X86_64, 0, (6, 1))).unwrap();
    let error = seccomp::compile(&profile, Arch::X86_64).unwrap_err();
    assert!(
        error.to_string().contains("more than the kernel's 4096"),
        "{error}"
    );
    assert!(started.elapsed() < Duration::from_secs(20));
}

/// Deep nesting and YAML alias bombs are refused by the parsers' limits
/// rather than exhausting the stack or memory.
#[test]
fn nesting_and_alias_bombs_are_refused() {
    let host = host(Arch::X86_64, 0, (6, 1));
    let started = Instant::now();
    let deep_json = format!("{}{}", "{\"a\":[".repeat(50_000), "]}".repeat(50_000));
    assert!(parse(&deep_json, None, &host).is_err());
    let deep_yaml = format!("a: {}1{}", "[".repeat(1_000), "]".repeat(1_000));
    assert!(parse(&deep_yaml, None, &host).is_err());
    let mut bomb = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 0..6 {
        let prev = if i == 0 {
            "a".to_owned()
        } else {
            format!("b{}", i - 1)
        };
        bomb.push_str(&format!(
            "b{i}: &b{i} [*{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}]\n"
        ));
    }
    bomb.push_str("kind: SeccompProfile\n");
    assert!(parse(&bomb, None, &host).is_err());
    assert!(started.elapsed() < Duration::from_secs(5));
}

/// A 100 kB file of nested YAML flow collections: the YAML parser refuses it
/// (recursion limit), but only after libyaml has scanned all of it, in time
/// quadratic in the depth (12 s in a release build, 40 s in a debug one;
/// 1 MB would take over an hour). The parser's depth check refuses it
/// first.
#[test]
fn deep_yaml_flow_nesting_is_refused_quickly() {
    let host = host(Arch::X86_64, 0, (6, 1));
    let deep_yaml = format!("a: {}1{}", "[".repeat(50_000), "]".repeat(50_000));
    let started = Instant::now();
    assert!(parse(&deep_yaml, None, &host).is_err());
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "took {:?}",
        started.elapsed()
    );
}
