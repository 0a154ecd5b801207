//! Unit tests of the watch policy (against the filter compiler and its
//! interpreter) and of the profiles read from runtimes' state.
#![allow(clippy::unwrap_used, reason = "tests")]
use std::path::Path;

use syscensus_common::{SYSCALL_SLOTS, abi};

use super::{
    runtime::{self, StateRuntime},
    *,
};
use crate::{
    bpf::Verdict,
    profile::{Arg, Host, KernelVersion, Op, Rule},
    seccomp::{SeccompData, X32_SYSCALL_BIT, compile, evaluate},
};

const EPERM: u16 = libc::EPERM as u16;

fn json(text: &str) -> Profile {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

fn nr(arch: Arch, name: &str) -> u32 {
    arch.number(name)
        .unwrap_or_else(|| panic!("{name} not in the {arch} table"))
}

fn policy(profile: &Profile) -> WatchPolicy {
    watch_policy(profile, Arch::X86_64).unwrap().policy
}

fn verdict(policy: &WatchPolicy, abi_id: u32, name: &str) -> Verdict {
    let arch = Arch::for_abi(abi_id).unwrap();
    policy.get(abi_id, nr(arch, name)).unwrap()
}

/// A profile as `syscensus record` writes it.
const RECORDED: &str = r#"{
  "defaultAction": "SCMP_ACT_ERRNO",
  "defaultErrnoRet": 1,
  "architectures": ["SCMP_ARCH_X86_64"],
  "syscalls": [
    {"names": ["close", "exit_group", "getpid", "read", "write"], "action": "SCMP_ACT_ALLOW", "comment": "recorded: SCMP_ARCH_X86_64"},
    {"names": ["execve"], "action": "SCMP_ACT_ALLOW", "comment": "runtime base set: crun-1.8"}
  ]
}"#;

#[test]
fn a_recorded_profile_refuses_everything_else_with_its_errno() {
    let p = policy(&json(RECORDED));
    assert_eq!(p.abis().collect::<Vec<_>>(), vec![abi::NATIVE]);
    for name in ["read", "write", "execve", "getpid"] {
        assert_eq!(verdict(&p, abi::NATIVE, name), Verdict::Allowed, "{name}");
    }
    for name in ["mkdir", "statfs", "clone", "uname"] {
        assert_eq!(
            verdict(&p, abi::NATIVE, name),
            Verdict::Errno(EPERM),
            "{name}"
        );
    }
    // runc fails numbers above the highest named one (exit_group, 231)
    // with ENOSYS; other runtimes with EPERM.
    let above = nr(Arch::X86_64, "exit_group") + 1;
    assert_eq!(
        p.get(abi::NATIVE, above),
        Some(Verdict::ErrnoOrEnosys(EPERM))
    );
    assert_eq!(
        p.get(abi::NATIVE, nr(Arch::X86_64, "statx")),
        Some(Verdict::ErrnoOrEnosys(EPERM))
    );
    // Unlisted ABIs are not covered: their syscalls are killed.
    assert_eq!(p.get(abi::COMPAT, 3), None);
    assert_eq!(p.get(abi::X32, 0), None);
}

#[test]
fn conditional_rules_count_as_allowed() {
    let p = policy(&json(
        r#"{
          "defaultAction": "SCMP_ACT_ERRNO",
          "syscalls": [
            {"names": ["read", "clone3"], "action": "SCMP_ACT_ALLOW"},
            {"names": ["clone"], "action": "SCMP_ACT_ALLOW",
             "args": [{"index": 0, "value": 2114060288, "op": "SCMP_CMP_MASKED_EQ"}]},
            {"names": ["personality"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13,
             "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}]}
          ]
        }"#,
    ));
    assert_eq!(verdict(&p, abi::NATIVE, "clone"), Verdict::Allowed);
    assert_eq!(verdict(&p, abi::NATIVE, "personality"), Verdict::Allowed);
    assert_eq!(verdict(&p, abi::NATIVE, "fork"), Verdict::Errno(EPERM));
}

#[test]
fn explicit_errno_rules_keep_their_errno() {
    let p = policy(&json(
        r#"{
          "defaultAction": "SCMP_ACT_ERRNO",
          "defaultErrnoRet": 1,
          "syscalls": [
            {"names": ["read"], "action": "SCMP_ACT_ALLOW"},
            {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38},
            {"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 9999}
          ]
        }"#,
    ));
    assert_eq!(verdict(&p, abi::NATIVE, "clone3"), Verdict::Errno(38));
    // The kernel caps a filter's errno at 4095; the loader caps the same.
    assert_eq!(verdict(&p, abi::NATIVE, "mkdir"), Verdict::Errno(9999));
    assert_eq!(verdict(&p, abi::NATIVE, "write"), Verdict::Errno(EPERM));
}

#[test]
fn complain_mode_counts_everything_outside_the_profile() {
    let mut profile = json(RECORDED);
    profile.default_action = Action::Log;
    profile.default_errno_ret = None;
    let p = policy(&profile);
    assert_eq!(verdict(&p, abi::NATIVE, "read"), Verdict::Allowed);
    assert_eq!(verdict(&p, abi::NATIVE, "mkdir"), Verdict::Log);
    // No ENOSYS stub under SCMP_ACT_LOG.
    assert_eq!(verdict(&p, abi::NATIVE, "statx"), Verdict::Log);
}

#[test]
fn kill_and_trap_are_seen_as_signals() {
    for action in [Action::KillProcess, Action::KillThread, Action::Trap] {
        let mut profile = json(RECORDED);
        profile.default_action = action;
        profile.default_errno_ret = None;
        let p = policy(&profile);
        assert_eq!(verdict(&p, abi::NATIVE, "read"), Verdict::Allowed);
        assert_eq!(
            verdict(&p, abi::NATIVE, "mkdir"),
            Verdict::Signal,
            "{action:?}"
        );
        // runc's stub fails newer syscalls with ENOSYS; without the stub
        // they are killed, which the signal hook sees.
        assert_eq!(
            verdict(&p, abi::NATIVE, "statx"),
            Verdict::Errno(38),
            "{action:?}"
        );
    }
}

#[test]
fn notify_and_trace_rules() {
    let p = policy(&json(
        r#"{
          "defaultAction": "SCMP_ACT_ERRNO",
          "syscalls": [
            {"names": ["read", "execve"], "action": "SCMP_ACT_ALLOW"},
            {"names": ["mount"], "action": "SCMP_ACT_NOTIFY"},
            {"names": ["ptrace"], "action": "SCMP_ACT_TRACE"}
          ]
        }"#,
    ));
    assert_eq!(verdict(&p, abi::NATIVE, "mount"), Verdict::Allowed);
    // No tracer: the kernel fails it with ENOSYS.
    assert_eq!(verdict(&p, abi::NATIVE, "ptrace"), Verdict::Errno(38));
    let notify_default = policy(&json(
        r#"{"defaultAction": "SCMP_ACT_NOTIFY", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ERRNO"}]}"#,
    ));
    assert_eq!(
        verdict(&notify_default, abi::NATIVE, "write"),
        Verdict::Allowed
    );
    assert_eq!(
        verdict(&notify_default, abi::NATIVE, "read"),
        Verdict::Errno(EPERM)
    );
}

#[test]
fn unknown_names_are_skipped_and_listed() {
    let mut profile = json(RECORDED);
    profile.syscalls[0].names.push("no_such_syscall".to_owned());
    let build = watch_policy(&profile, Arch::X86_64).unwrap();
    assert_eq!(
        build.unknown_names.into_iter().collect::<Vec<_>>(),
        vec!["no_such_syscall".to_owned()]
    );
    assert_eq!(
        verdict(&build.policy, abi::NATIVE, "read"),
        Verdict::Allowed
    );
}

#[test]
fn listed_compat_architectures_are_covered_with_their_numbers() {
    let mut profile = json(RECORDED);
    profile.architectures = vec![
        "SCMP_ARCH_X86_64".to_owned(),
        "SCMP_ARCH_X86".to_owned(),
        "SCMP_ARCH_X32".to_owned(),
    ];
    let p = policy(&profile);
    assert_eq!(
        p.abis().collect::<Vec<_>>(),
        vec![abi::NATIVE, abi::COMPAT, abi::X32]
    );
    // read is 3 on i386, 0 on x86_64 and x32; mkdir is 39 on i386 (getpid
    // on x86_64).
    assert_eq!(p.get(abi::COMPAT, 3), Some(Verdict::Allowed));
    assert_eq!(verdict(&p, abi::COMPAT, "mkdir"), Verdict::Errno(EPERM));
    assert_eq!(p.get(abi::NATIVE, 39), Some(Verdict::Allowed));
    assert_eq!(verdict(&p, abi::X32, "read"), Verdict::Allowed);
    assert_eq!(verdict(&p, abi::X32, "mkdir"), Verdict::Errno(EPERM));
}

/// A deterministic pseudo-random sequence (xorshift), so failures repeat.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// What the compiled filter returns for `nr` on `arch` with each of a few
/// argument vectors.
fn filter_returns(filter: &[libc::sock_filter], arch: Arch, nr: u32, rng: &mut Rng) -> Vec<u32> {
    let seen = if arch == Arch::X32 {
        nr | X32_SYSCALL_BIT
    } else {
        nr
    };
    let mut args_list = vec![[0u64; 6], [u64::MAX; 6]];
    for _ in 0..6 {
        args_list.push(std::array::from_fn(|_| match rng.below(3) {
            0 => rng.next() % 64,
            1 => rng.next(),
            _ => 0x7E02_0000,
        }));
    }
    args_list
        .iter()
        .map(|args| {
            evaluate(
                filter,
                &SeccompData {
                    nr: seen,
                    arch: arch.audit_arch(),
                    instruction_pointer: 0,
                    args: *args,
                },
            )
            .unwrap()
        })
        .collect()
}

/// Checks the watch policy of `profile` against its compiled filter: a
/// syscall the watch counts is refused that way by the filter whatever its
/// arguments (no refusal is invented); one the filter refuses the same way
/// for every argument tried and that no condition mentions is counted.
fn check_against_filter(profile: &Profile, rng: &mut Rng, context: &str) {
    let filter = compile(profile, Arch::X86_64).unwrap();
    let build = watch_policy(profile, Arch::X86_64).unwrap();
    let conditional: BTreeSet<&str> = profile
        .syscalls
        .iter()
        .filter(|r| !r.args.is_empty())
        .flat_map(|r| r.names.iter().map(String::as_str))
        .collect();
    let enosys = libc::SECCOMP_RET_ERRNO | libc::ENOSYS as u32;
    for abi_id in build.policy.abis() {
        let arch = Arch::for_abi(abi_id).unwrap();
        for nr in 0..SYSCALL_SLOTS as u32 {
            let watch = build.policy.get(abi_id, nr).unwrap();
            let returns = filter_returns(&filter, arch, nr, rng);
            let action = |v: u32| v & libc::SECCOMP_RET_ACTION_FULL;
            let all = |f: &dyn Fn(u32) -> bool| returns.iter().all(|v| f(*v));
            let at = || format!("{context}: {arch} nr {nr}: watch {watch:?}, filter {returns:x?}");
            match watch {
                Verdict::Allowed => {
                    let name = arch.name(nr).unwrap_or("");
                    let refused_alike = returns.windows(2).all(|w| w[0] == w[1])
                        && !matches!(
                            action(returns[0]),
                            libc::SECCOMP_RET_ALLOW | libc::SECCOMP_RET_USER_NOTIF
                        );
                    // On x86, socket and SysV IPC calls are matched through
                    // socketcall(2) and ipc(2) by their first argument.
                    let multiplexer = arch == Arch::X86 && matches!(name, "socketcall" | "ipc");
                    assert!(
                        !refused_alike || conditional.contains(name) || multiplexer,
                        "missed: {}",
                        at()
                    );
                }
                Verdict::Errno(e) => {
                    let e = u32::from(e);
                    assert!(
                        all(&|v| v == libc::SECCOMP_RET_ERRNO | e
                            || (e == 38 && action(v) == libc::SECCOMP_RET_TRACE)),
                        "invented: {}",
                        at()
                    );
                }
                Verdict::ErrnoOrEnosys(_) => {
                    assert!(all(&|v| v == enosys), "invented: {}", at());
                }
                Verdict::Log => {
                    assert!(all(&|v| v == libc::SECCOMP_RET_LOG), "invented: {}", at());
                }
                Verdict::Signal => assert!(
                    all(&|v| matches!(
                        action(v),
                        libc::SECCOMP_RET_KILL_PROCESS
                            | libc::SECCOMP_RET_KILL_THREAD
                            | libc::SECCOMP_RET_TRAP
                    )),
                    "invented: {}",
                    at()
                ),
            }
        }
    }
}

#[test]
fn random_profiles_agree_with_their_filters() {
    let mut rng = Rng(0x0bad_5eed_0ddb_a110);
    let pool = [
        "read",
        "write",
        "openat",
        "clone",
        "clone3",
        "mkdir",
        "statfs",
        "socket",
        "personality",
        "getppid",
        "execve",
        "mmap",
        "futex",
    ];
    let actions = [
        (Action::Allow, None),
        (Action::Allow, None),
        (Action::Errno, None),
        (Action::Errno, Some(13)),
        (Action::Log, None),
        (Action::Trap, None),
        (Action::KillProcess, None),
        (Action::Trace, None),
    ];
    let ops = [Op::Eq, Op::Ne, Op::Gt, Op::MaskedEq];
    let arch_sets: [&[&str]; 4] = [
        &[],
        &["SCMP_ARCH_X86_64"],
        &["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"],
        &["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
    ];
    for case in 0..60 {
        let (default_action, default_errno_ret) = *rng.pick(&[
            (Action::Errno, None),
            (Action::Errno, Some(38)),
            (Action::Errno, Some(5)),
            (Action::KillProcess, None),
            (Action::Log, None),
        ]);
        let syscalls = (0..rng.below(7))
            .map(|_| {
                let (action, errno_ret) = *rng.pick(&actions);
                let args = (0..rng.below(3).saturating_sub(1))
                    .map(|_| Arg {
                        index: rng.below(2) as u32,
                        value: rng.next() % 64,
                        value_two: 0,
                        op: *rng.pick(&ops),
                    })
                    .collect();
                Rule {
                    names: (0..1 + rng.below(3))
                        .map(|_| (*rng.pick(&pool)).to_owned())
                        .collect(),
                    action,
                    errno_ret,
                    args,
                    comment: None,
                }
            })
            .collect();
        let profile = Profile {
            default_action,
            default_errno_ret,
            architectures: rng
                .pick(&arch_sets)
                .iter()
                .map(|a| (*a).to_owned())
                .collect(),
            flags: Vec::new(),
            syscalls,
        };
        let context = format!("case {case}\n{}", profile.to_oci_json());
        check_against_filter(&profile, &mut rng, &context);
    }
}

fn third_party(name: &str, capabilities: u64) -> Profile {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/data/third-party")
        .join(name);
    let text = std::fs::read_to_string(&path).unwrap();
    let host = Host {
        arch: Arch::X86_64,
        capabilities,
        kernel: KernelVersion { major: 6, minor: 1 },
    };
    Profile::parse_for_host(&text, &path, None, &host).unwrap()
}

#[test]
fn third_party_defaults_agree_with_their_filters() {
    let mut rng = Rng(0x5eed);
    for name in ["moby-default.json", "containers-common-seccomp.json"] {
        for caps in [0, u64::MAX] {
            let profile = third_party(name, caps);
            check_against_filter(&profile, &mut rng, name);
        }
    }
    // Docker's default without CAP_SYS_ADMIN: mount refused with EPERM,
    // clone3 with ENOSYS (an explicit rule), clone decided by its flags.
    let p = policy(&third_party("moby-default.json", 0));
    assert_eq!(verdict(&p, abi::NATIVE, "read"), Verdict::Allowed);
    assert_eq!(verdict(&p, abi::NATIVE, "mount"), Verdict::Errno(EPERM));
    assert_eq!(verdict(&p, abi::NATIVE, "clone3"), Verdict::Errno(38));
    assert_eq!(verdict(&p, abi::NATIVE, "clone"), Verdict::Allowed);
    assert_eq!(verdict(&p, abi::COMPAT, "read"), Verdict::Allowed);
}

// --- Profiles from the runtimes' state ---

/// runc 1.1.5's state.json for a container created with a hand-written
/// profile (`runc create`, copied from /run/runc/<id>/state.json).
const RUNC_STATE: &str = include_str!("testdata/runc-1.1.5-state.json");

/// The profile that container was created with, in its config.json.
const RUNC_STATE_SOURCE: &str = r#"{
  "defaultAction": "SCMP_ACT_ERRNO",
  "defaultErrnoRet": 38,
  "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"],
  "syscalls": [
    {"names": ["read", "write", "nanosleep", "clock_nanosleep", "execve", "futex", "rt_sigreturn", "close", "openat", "fstatfs", "getdents64", "setuid", "setgid", "setgroups", "capget", "capset", "faccessat2", "fstat", "chdir", "prctl", "getppid", "newfstatat", "exit_group", "brk", "arch_prctl", "set_tid_address", "mmap", "rt_sigprocmask", "rt_sigaction"], "action": "SCMP_ACT_ALLOW"},
    {"names": ["clone"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 2114060288, "op": "SCMP_CMP_MASKED_EQ"}]},
    {"names": ["mkdir"], "action": "SCMP_ACT_KILL_PROCESS"}
  ]
}"#;

/// One rule per name, as libcontainer holds them.
fn per_name(profile: &Profile) -> Vec<(String, Action, Option<u32>, Vec<Arg>)> {
    profile
        .syscalls
        .iter()
        .flat_map(|r| {
            r.names
                .iter()
                .map(|n| (n.clone(), r.action, r.errno_ret, r.args.clone()))
        })
        .collect()
}

#[test]
fn runc_state_gives_back_the_profile() {
    let read = runtime::from_runc_state(RUNC_STATE, "state.json")
        .unwrap()
        .unwrap();
    let source = json(RUNC_STATE_SOURCE);
    assert_eq!(read.default_action, source.default_action);
    assert_eq!(read.default_errno_ret, Some(38));
    assert_eq!(read.architectures, source.architectures);
    assert_eq!(per_name(&read), per_name(&source));
    // The same filter, so the same watch.
    let insns = |p: &Profile| -> Vec<(u16, u8, u8, u32)> {
        compile(p, Arch::X86_64)
            .unwrap()
            .iter()
            .map(|i| (i.code, i.jt, i.jf, i.k))
            .collect()
    };
    assert_eq!(insns(&read), insns(&source));
    assert_eq!(policy(&read), policy(&source));
}

#[test]
fn runc_state_without_seccomp_and_broken_states() {
    let mut state: serde_json::Value = serde_json::from_str(RUNC_STATE).unwrap();
    state["config"]["seccomp"] = serde_json::Value::Null;
    assert_eq!(
        runtime::from_runc_state(&state.to_string(), "s").unwrap(),
        None
    );
    state["config"].as_object_mut().unwrap().remove("seccomp");
    assert_eq!(
        runtime::from_runc_state(&state.to_string(), "s").unwrap(),
        None
    );
    let mut bad: serde_json::Value = serde_json::from_str(RUNC_STATE).unwrap();
    bad["config"]["seccomp"]["default_action"] = 42.into();
    let error = runtime::from_runc_state(&bad.to_string(), "/run/runc/x/state.json")
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("/run/runc/x/state.json") && error.contains("unknown default action 42"),
        "{error}"
    );
    bad["config"]["seccomp"]["default_action"] = 2.into();
    bad["config"]["seccomp"]["architectures"] = serde_json::json!(["vax"]);
    let error = runtime::from_runc_state(&bad.to_string(), "s")
        .unwrap_err()
        .to_string();
    assert!(error.contains("unknown architecture \"vax\""), "{error}");
    let error = runtime::from_runc_state("{", "s").unwrap_err().to_string();
    assert!(
        error.contains("not JSON") && error.contains("runc state.json"),
        "{error}"
    );
}

#[test]
fn every_libcontainer_action_and_operator_maps_back() {
    let mut state: serde_json::Value = serde_json::from_str(RUNC_STATE).unwrap();
    let actions = [
        (1, Action::KillThread),
        (2, Action::Errno),
        (3, Action::Trap),
        (4, Action::Allow),
        (5, Action::Trace),
        (6, Action::Log),
        (7, Action::Notify),
        (8, Action::KillThread),
        (9, Action::KillProcess),
    ];
    let ops = [
        (1, Op::Eq),
        (2, Op::Ne),
        (3, Op::Gt),
        (4, Op::Ge),
        (5, Op::Lt),
        (6, Op::Le),
        (7, Op::MaskedEq),
    ];
    state["config"]["seccomp"]["syscalls"] = actions
        .iter()
        .zip(ops.iter().cycle())
        .map(|((a, _), (o, _))| {
            serde_json::json!({"name": "read", "action": a, "errnoRet": 5,
                "args": [{"index": 1, "value": 2, "value_two": 3, "op": o}]})
        })
        .collect();
    let read = runtime::from_runc_state(&state.to_string(), "s")
        .unwrap()
        .unwrap();
    for (rule, ((_, action), (_, op))) in read
        .syscalls
        .iter()
        .zip(actions.iter().zip(ops.iter().cycle()))
    {
        assert_eq!(rule.action, *action);
        assert_eq!(rule.errno_ret, Some(5));
        assert_eq!(
            rule.args,
            vec![Arg {
                index: 1,
                value: 2,
                value_two: 3,
                op: *op
            }]
        );
    }
}

/// The shape of containerd 1.6's verbose `ContainerStatus` info (the
/// root tests read a real one): the runtime spec with the profile
/// containerd resolved.
fn cri_info(seccomp: serde_json::Value) -> String {
    serde_json::json!({
        "sandboxID": "0f1e",
        "pid": 4242,
        "removing": false,
        "snapshotKey": "abc",
        "snapshotter": "overlayfs",
        "runtimeType": "io.containerd.runc.v2",
        "runtimeOptions": null,
        "config": {"metadata": {"name": "app"}},
        "runtimeSpec": {
            "ociVersion": "1.0.2-dev",
            "process": {"args": ["/app"]},
            "linux": {"seccomp": seccomp, "namespaces": []}
        }
    })
    .to_string()
}

#[test]
fn cri_info_gives_back_the_profile() {
    let source = json(RECORDED);
    let seccomp = serde_json::from_str(RECORDED).unwrap();
    let read = runtime::from_cri_info(&cri_info(seccomp)).unwrap().unwrap();
    // Comments are not in the runtime spec containerd builds; here they
    // are, and they are kept.
    assert_eq!(read, source);
    assert_eq!(
        runtime::from_cri_info(&cri_info(serde_json::Value::Null)).unwrap(),
        None
    );
    let error = runtime::from_cri_info(r#"{"pid": 1}"#)
        .unwrap_err()
        .to_string();
    assert!(error.contains("no runtimeSpec"), "{error}");
    let error = runtime::from_cri_info(&cri_info(
        serde_json::json!({"defaultAction": "SCMP_ACT_NOPE"}),
    ))
    .unwrap_err()
    .to_string();
    assert!(
        error.contains("the seccomp profile in the CRI ContainerStatus info"),
        "{error}"
    );
}

#[test]
fn state_directories_are_searched_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let runc_root = dir.path().join("runc");
    let shim_root = dir.path().join("containerd-runc");
    let crun_root = dir.path().join("crun");
    let roots = [runc_root.as_path(), shim_root.as_path()];
    let id = "0123abcd";
    assert_eq!(
        runtime::from_state_dirs(id, &roots, &crun_root).unwrap(),
        None
    );
    std::fs::create_dir_all(crun_root.join(id)).unwrap();
    let config = serde_json::json!({"ociVersion": "1.0.2", "linux": {"seccomp": serde_json::from_str::<serde_json::Value>(RECORDED).unwrap()}});
    std::fs::write(crun_root.join(id).join("config.json"), config.to_string()).unwrap();
    let (runtime_found, profile) = runtime::from_state_dirs(id, &roots, &crun_root)
        .unwrap()
        .unwrap();
    assert_eq!(runtime_found, StateRuntime::Crun);
    assert_eq!(profile.unwrap(), json(RECORDED));
    std::fs::create_dir_all(shim_root.join(id)).unwrap();
    std::fs::write(shim_root.join(id).join("state.json"), RUNC_STATE).unwrap();
    let (runtime_found, profile) = runtime::from_state_dirs(id, &roots, &crun_root)
        .unwrap()
        .unwrap();
    assert_eq!(runtime_found, StateRuntime::Runc);
    assert_eq!(profile.unwrap().default_errno_ret, Some(38));
    for bad in ["", ".", "..", "../etc", "a/b", "a b"] {
        let error = runtime::from_state_dirs(bad, &roots, &crun_root)
            .unwrap_err()
            .to_string();
        assert!(error.contains("is not a container id"), "{bad:?}: {error}");
    }
}
