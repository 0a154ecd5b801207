//! Unit tests of the filter compiler: compiled filters run through the
//! interpreter in `eval.rs` on hand-made `seccomp_data`, and compared with a
//! direct model of the semantics on random profiles.
#![allow(clippy::unwrap_used, reason = "tests")]
use std::path::Path;

use super::*;
use crate::profile::{Action, Arg, Host, KernelVersion, Op, Profile, Rule};

const ALLOW: u32 = libc::SECCOMP_RET_ALLOW;
const KILL_THREAD: u32 = libc::SECCOMP_RET_KILL_THREAD;
const LOG: u32 = libc::SECCOMP_RET_LOG;

fn errno(e: i32) -> u32 {
    libc::SECCOMP_RET_ERRNO | e as u32
}

fn json(text: &str) -> Profile {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

fn nr(arch: Arch, name: &str) -> u32 {
    let nr = arch
        .number(name)
        .unwrap_or_else(|| panic!("{name} not in the {arch} table"));
    if arch == Arch::X32 {
        nr | X32_SYSCALL_BIT
    } else {
        nr
    }
}

fn data(arch: Arch, nr: u32, args: [u64; 6]) -> SeccompData {
    SeccompData {
        nr,
        arch: arch.audit_arch(),
        instruction_pointer: 0,
        args,
    }
}

fn run(filter: &[sock_filter], arch: Arch, nr: u32, args: [u64; 6]) -> u32 {
    evaluate(filter, &data(arch, nr, args)).unwrap()
}

fn call(filter: &[sock_filter], arch: Arch, name: &str, args: [u64; 6]) -> u32 {
    run(filter, arch, nr(arch, name), args)
}

fn rule(names: &[&str], action: Action, errno_ret: Option<u32>, args: Vec<Arg>) -> Rule {
    Rule {
        names: names.iter().map(|n| (*n).to_owned()).collect(),
        action,
        errno_ret,
        args,
        comment: None,
    }
}

fn arg(index: u32, op: Op, value: u64, value_two: u64) -> Arg {
    Arg {
        index,
        value,
        value_two,
        op,
    }
}

fn profile(
    default: Action,
    default_errno: Option<u32>,
    arches: &[Arch],
    rules: Vec<Rule>,
) -> Profile {
    Profile {
        default_action: default,
        default_errno_ret: default_errno,
        architectures: arches.iter().map(|a| a.scmp_name().to_owned()).collect(),
        flags: Vec::new(),
        syscalls: rules,
    }
}

const NO_ARGS: [u64; 6] = [0; 6];

#[test]
fn default_action_and_errno() {
    let p = json(
        r#"{"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 38,
            "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW"}]}"#,
    );
    let f = compile(&p, Arch::X86_64).unwrap();
    assert_eq!(call(&f, Arch::X86_64, "read", NO_ARGS), ALLOW);
    assert_eq!(
        call(&f, Arch::X86_64, "write", NO_ARGS),
        errno(libc::ENOSYS)
    );

    // ERRNO without an errno is EPERM, for the default and for rules.
    let p = json(
        r#"{"defaultAction": "SCMP_ACT_ERRNO",
            "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ERRNO"},
                         {"names": ["write"], "action": "SCMP_ACT_ERRNO", "errnoRet": 5}]}"#,
    );
    let f = compile(&p, Arch::X86_64).unwrap();
    assert_eq!(call(&f, Arch::X86_64, "read", NO_ARGS), errno(libc::EPERM));
    assert_eq!(call(&f, Arch::X86_64, "write", NO_ARGS), errno(libc::EIO));
    assert_eq!(run(&f, Arch::X86_64, 200, NO_ARGS), errno(libc::EPERM));
}

#[test]
fn every_action_has_its_return_value() {
    let cases = [
        (Action::Allow, None, ALLOW),
        (Action::Log, None, LOG),
        (Action::KillThread, None, KILL_THREAD),
        (Action::KillProcess, None, libc::SECCOMP_RET_KILL_PROCESS),
        (Action::Trap, None, libc::SECCOMP_RET_TRAP),
        (Action::Trace, Some(7), libc::SECCOMP_RET_TRACE | 7),
        (Action::Trace, None, libc::SECCOMP_RET_TRACE | 1),
        (Action::Errno, Some(0), libc::SECCOMP_RET_ERRNO),
    ];
    for (action, errno_ret, expected) in cases {
        let p = profile(
            Action::Errno,
            Some(2),
            &[],
            vec![rule(&["read"], action, errno_ret, vec![])],
        );
        let f = compile(&p, Arch::X86_64).unwrap();
        assert_eq!(
            call(&f, Arch::X86_64, "read", NO_ARGS),
            expected,
            "{action:?}"
        );
        assert!(!describe(expected).is_empty());
    }
    assert_eq!(describe(errno(38)), "SCMP_ACT_ERRNO(38)");
}

#[test]
fn notify_is_rejected() {
    let p = profile(
        Action::Errno,
        None,
        &[],
        vec![rule(&["read"], Action::Notify, None, vec![])],
    );
    assert!(matches!(
        compile(&p, Arch::X86_64),
        Err(SeccompError::Notify)
    ));
    let p = profile(Action::Notify, None, &[], vec![]);
    assert!(matches!(
        compile(&p, Arch::X86_64),
        Err(SeccompError::Notify)
    ));
}

#[test]
fn unknown_names_and_bad_indexes_are_rejected() {
    let p = profile(
        Action::Errno,
        None,
        &[],
        vec![rule(&["read", "frobnicate"], Action::Allow, None, vec![])],
    );
    assert!(matches!(
        compile(&p, Arch::X86_64),
        Err(SeccompError::UnknownSyscall { name }) if name == "frobnicate"
    ));
    let p = profile(
        Action::Errno,
        None,
        &[],
        vec![rule(
            &["read"],
            Action::Allow,
            None,
            vec![arg(6, Op::Eq, 1, 0)],
        )],
    );
    assert!(matches!(
        compile(&p, Arch::X86_64),
        Err(SeccompError::ArgIndex { rule: 0, index: 6 })
    ));
    let mut p = profile(Action::Errno, None, &[], vec![]);
    p.architectures = vec!["SCMP_ARCH_VAX".to_owned()];
    assert!(matches!(
        compile(&p, Arch::X86_64),
        Err(SeccompError::UnknownArchitecture { .. })
    ));
}

#[test]
fn other_architectures_are_killed() {
    // No architectures listed: the host's only.
    let p = profile(
        Action::Errno,
        None,
        &[],
        vec![rule(&["read"], Action::Allow, None, vec![])],
    );
    let f = compile(&p, Arch::X86_64).unwrap();
    assert_eq!(call(&f, Arch::X86_64, "read", NO_ARGS), ALLOW);
    assert_eq!(call(&f, Arch::X86, "read", NO_ARGS), KILL_THREAD);
    assert_eq!(call(&f, Arch::Aarch64, "read", NO_ARGS), KILL_THREAD);
    assert_eq!(
        evaluate(
            &f,
            &SeccompData {
                nr: 0,
                arch: 0x1234,
                ..SeccompData::default()
            }
        )
        .unwrap(),
        KILL_THREAD
    );
    // Listing an architecture the host cannot run changes nothing.
    let p = profile(
        Action::Errno,
        None,
        &[Arch::X86_64, Arch::Aarch64],
        vec![rule(&["read"], Action::Allow, None, vec![])],
    );
    let f = compile(&p, Arch::X86_64).unwrap();
    assert_eq!(call(&f, Arch::Aarch64, "read", NO_ARGS), KILL_THREAD);

    // Listed: x86 is filtered with its own numbers.
    let p = profile(
        Action::Errno,
        Some(38),
        &[Arch::X86_64, Arch::X86],
        vec![rule(&["read"], Action::Allow, None, vec![])],
    );
    let f = compile(&p, Arch::X86_64).unwrap();
    assert_eq!(call(&f, Arch::X86, "read", NO_ARGS), ALLOW);
    assert_eq!(call(&f, Arch::X86, "write", NO_ARGS), errno(38));
    // SCMP_ARCH_NATIVE is the host.
    let mut p = profile(
        Action::Errno,
        None,
        &[],
        vec![rule(&["read"], Action::Allow, None, vec![])],
    );
    p.architectures = vec!["SCMP_ARCH_NATIVE".to_owned(), "SCMP_ARCH_MIPS".to_owned()];
    let f = compile(&p, Arch::X86_64).unwrap();
    assert_eq!(call(&f, Arch::X86_64, "read", NO_ARGS), ALLOW);
}

#[test]
fn x32_numbers_are_bad_arch_unless_listed() {
    let rules = || vec![rule(&["read"], Action::Allow, None, vec![])];
    let f = compile(
        &profile(Action::Errno, Some(38), &[Arch::X86_64], rules()),
        Arch::X86_64,
    )
    .unwrap();
    assert_eq!(call(&f, Arch::X32, "read", NO_ARGS), KILL_THREAD);
    assert_eq!(call(&f, Arch::X32, "write", NO_ARGS), KILL_THREAD);
    assert_eq!(run(&f, Arch::X86_64, 0x7000_0000, NO_ARGS), KILL_THREAD);
    // -1 is not x32's: libseccomp gives it the default action.
    assert_eq!(run(&f, Arch::X86_64, u32::MAX, NO_ARGS), errno(38));

    let f = compile(
        &profile(Action::Errno, Some(38), &[Arch::X86_64, Arch::X32], rules()),
        Arch::X86_64,
    )
    .unwrap();
    assert_eq!(call(&f, Arch::X32, "read", NO_ARGS), ALLOW);
    assert_eq!(call(&f, Arch::X32, "write", NO_ARGS), errno(38));
    assert_eq!(call(&f, Arch::X86_64, "read", NO_ARGS), ALLOW);
    assert_eq!(call(&f, Arch::X86_64, "write", NO_ARGS), errno(38));
}

/// Unsigned 64-bit comparison, as libseccomp does on 64-bit ABIs.
fn holds(arg: &Arg, value: u64) -> bool {
    match arg.op {
        Op::Eq => value == arg.value,
        Op::Ne => value != arg.value,
        Op::Lt => value < arg.value,
        Op::Le => value <= arg.value,
        Op::Gt => value > arg.value,
        Op::Ge => value >= arg.value,
        Op::MaskedEq => value & arg.value == arg.value_two & arg.value,
    }
}

/// The same on the low 32 bits, as on x86 and x32.
fn holds32(arg: &Arg, value: u64) -> bool {
    let narrow = Arg {
        value: u64::from(arg.value as u32),
        value_two: u64::from(arg.value_two as u32),
        ..*arg
    };
    holds(&narrow, u64::from(value as u32))
}

/// Values around `v` in both halves.
fn probes(v: u64) -> Vec<u64> {
    let (hi, lo) = (v >> 32, v & 0xffff_ffff);
    let mut out = vec![0, 1, u64::MAX, 0xffff_ffff, 0x1_0000_0000, v];
    for h in [hi.wrapping_sub(1), hi, hi.wrapping_add(1)] {
        for l in [lo.wrapping_sub(1), lo, lo.wrapping_add(1)] {
            out.push(((h & 0xffff_ffff) << 32) | (l & 0xffff_ffff));
        }
    }
    out
}

#[test]
fn argument_comparisons_use_both_halves() {
    let ops = [Op::Eq, Op::Ne, Op::Lt, Op::Le, Op::Gt, Op::Ge, Op::MaskedEq];
    let values = [
        0u64,
        1,
        5,
        0xffff_ffff,
        0x1_0000_0000,
        0x1_0000_0005,
        0x8000_0000_0000_0000,
        u64::MAX,
        0x7e02_0000,
    ];
    for op in ops {
        for value in values {
            for value_two in [0u64, 0x7e02_0000, 0x1_0000_0000, u64::MAX] {
                let condition = arg(2, op, value, value_two);
                let p = profile(
                    Action::Errno,
                    Some(38),
                    &[Arch::X86_64, Arch::X86],
                    vec![rule(&["read"], Action::Allow, None, vec![condition])],
                );
                let f = compile(&p, Arch::X86_64).unwrap();
                for probe in probes(value).into_iter().chain(probes(value_two)) {
                    let mut args = NO_ARGS;
                    args[2] = probe;
                    let expected = |ok: bool| if ok { ALLOW } else { errno(38) };
                    assert_eq!(
                        call(&f, Arch::X86_64, "read", args),
                        expected(holds(&condition, probe)),
                        "x86_64 {op:?} {value:#x} {value_two:#x} on {probe:#x}"
                    );
                    assert_eq!(
                        call(&f, Arch::X86, "read", args),
                        expected(holds32(&condition, probe)),
                        "x86 {op:?} {value:#x} {value_two:#x} on {probe:#x}"
                    );
                }
            }
        }
    }
}

#[test]
fn distinct_arguments_are_anded_repeated_ones_ored() {
    // Distinct indexes: both must hold.
    let p = profile(
        Action::Errno,
        Some(38),
        &[],
        vec![rule(
            &["read"],
            Action::Allow,
            None,
            vec![arg(0, Op::Eq, 1, 0), arg(1, Op::Eq, 2, 0)],
        )],
    );
    let f = compile(&p, Arch::X86_64).unwrap();
    assert_eq!(call(&f, Arch::X86_64, "read", [1, 2, 0, 0, 0, 0]), ALLOW);
    assert_eq!(
        call(&f, Arch::X86_64, "read", [1, 3, 0, 0, 0, 0]),
        errno(38)
    );
    assert_eq!(
        call(&f, Arch::X86_64, "read", [0, 2, 0, 0, 0, 0]),
        errno(38)
    );

    // The same index twice: runc makes one rule of each, so either will do.
    let p = profile(
        Action::Errno,
        Some(38),
        &[],
        vec![rule(
            &["read"],
            Action::Allow,
            None,
            vec![
                arg(0, Op::Eq, 1, 0),
                arg(0, Op::Eq, 2, 0),
                arg(1, Op::Eq, 9, 0),
            ],
        )],
    );
    let f = compile(&p, Arch::X86_64).unwrap();
    assert_eq!(call(&f, Arch::X86_64, "read", [1, 0, 0, 0, 0, 0]), ALLOW);
    assert_eq!(call(&f, Arch::X86_64, "read", [2, 0, 0, 0, 0, 0]), ALLOW);
    assert_eq!(call(&f, Arch::X86_64, "read", [3, 9, 0, 0, 0, 0]), ALLOW);
    assert_eq!(
        call(&f, Arch::X86_64, "read", [3, 0, 0, 0, 0, 0]),
        errno(38)
    );
}

#[test]
fn an_unconditional_rule_decides_alone() {
    // Conditional rules in profile order, then the default.
    let conditional = || {
        vec![
            rule(
                &["read"],
                Action::Errno,
                Some(5),
                vec![arg(0, Op::Eq, 1, 0)],
            ),
            rule(&["read"], Action::Log, None, vec![arg(0, Op::Lt, 10, 0)]),
        ]
    };
    let f = compile(
        &profile(Action::Errno, Some(38), &[], conditional()),
        Arch::X86_64,
    )
    .unwrap();
    assert_eq!(call(&f, Arch::X86_64, "read", [1, 0, 0, 0, 0, 0]), errno(5));
    assert_eq!(call(&f, Arch::X86_64, "read", [2, 0, 0, 0, 0, 0]), LOG);
    assert_eq!(
        call(&f, Arch::X86_64, "read", [20, 0, 0, 0, 0, 0]),
        errno(38)
    );

    // An unconditional rule, after or before them, takes the whole syscall
    // (libseccomp drops the conditional ones), and the first one wins.
    for unconditional_first in [false, true] {
        let mut rules = conditional();
        let allow = rule(&["read"], Action::Allow, None, vec![]);
        if unconditional_first {
            rules.insert(0, allow);
        } else {
            rules.push(allow);
        }
        rules.push(rule(&["read"], Action::Trap, None, vec![]));
        let f = compile(&profile(Action::Errno, Some(38), &[], rules), Arch::X86_64).unwrap();
        for a0 in [1, 2, 20] {
            assert_eq!(call(&f, Arch::X86_64, "read", [a0, 0, 0, 0, 0, 0]), ALLOW);
        }
    }
}

#[test]
fn rules_with_the_default_action_are_skipped() {
    // runc drops a rule whose action is the default action, so the
    // unconditional ERRNO(1) below does not hide the conditional ALLOW.
    let p = profile(
        Action::Errno,
        None,
        &[],
        vec![
            rule(&["read"], Action::Errno, Some(1), vec![]),
            rule(&["read"], Action::Allow, None, vec![arg(0, Op::Eq, 5, 0)]),
        ],
    );
    let f = compile(&p, Arch::X86_64).unwrap();
    assert_eq!(call(&f, Arch::X86_64, "read", [5, 0, 0, 0, 0, 0]), ALLOW);
    assert_eq!(call(&f, Arch::X86_64, "read", [6, 0, 0, 0, 0, 0]), errno(1));
}

#[test]
fn masked_compare_with_empty_mask_is_unconditional() {
    let p = profile(
        Action::Errno,
        Some(38),
        &[],
        vec![
            rule(
                &["read"],
                Action::Errno,
                Some(5),
                vec![arg(0, Op::Eq, 1, 0)],
            ),
            rule(
                &["read"],
                Action::Allow,
                None,
                vec![arg(0, Op::MaskedEq, 0, 7)],
            ),
        ],
    );
    let f = compile(&p, Arch::X86_64).unwrap();
    assert_eq!(call(&f, Arch::X86_64, "read", [1, 0, 0, 0, 0, 0]), ALLOW);
}

#[test]
fn enosys_above_the_highest_named_syscall() {
    let rules = || vec![rule(&["read", "write"], Action::Allow, None, vec![])];
    let max = nr(Arch::X86_64, "read").max(nr(Arch::X86_64, "write"));
    let f = compile(
        &profile(Action::Errno, None, &[Arch::X86_64], rules()),
        Arch::X86_64,
    )
    .unwrap();
    assert_eq!(run(&f, Arch::X86_64, max + 1, NO_ARGS), errno(libc::ENOSYS));
    assert_eq!(run(&f, Arch::X86_64, 1000, NO_ARGS), errno(libc::ENOSYS));
    assert_eq!(call(&f, Arch::X86_64, "write", NO_ARGS), ALLOW);
    // -1 and x32 numbers are not x86_64's: not covered by the stub.
    assert_eq!(run(&f, Arch::X86_64, u32::MAX, NO_ARGS), errno(libc::EPERM));
    assert_eq!(
        run(&f, Arch::X86_64, X32_SYSCALL_BIT | 1000, NO_ARGS),
        KILL_THREAD
    );

    // Per listed architecture, x32 with its bit.
    let f = compile(
        &profile(
            Action::KillProcess,
            None,
            &[Arch::X86_64, Arch::X32],
            rules(),
        ),
        Arch::X86_64,
    )
    .unwrap();
    let x32_max = nr(Arch::X32, "read").max(nr(Arch::X32, "write"));
    assert_eq!(
        run(&f, Arch::X86_64, x32_max + 1, NO_ARGS),
        errno(libc::ENOSYS)
    );
    assert_eq!(
        run(&f, Arch::X86_64, u32::MAX, NO_ARGS),
        errno(libc::ENOSYS)
    );

    // Not for architectures the profile does not list, not when the default
    // errno is ENOSYS, not for permissive defaults.
    let f = compile(&profile(Action::Errno, None, &[], rules()), Arch::X86_64).unwrap();
    assert_eq!(run(&f, Arch::X86_64, 1000, NO_ARGS), errno(libc::EPERM));
    for (action, errno_ret) in [
        (Action::Log, None),
        (Action::Allow, None),
        (Action::Trace, None),
    ] {
        let f = compile(
            &profile(
                action,
                errno_ret,
                &[Arch::X86_64],
                vec![rule(&["read"], Action::Errno, None, vec![])],
            ),
            Arch::X86_64,
        )
        .unwrap();
        assert_ne!(
            run(&f, Arch::X86_64, 1000, NO_ARGS),
            errno(libc::ENOSYS),
            "{action:?}"
        );
    }
}

#[test]
fn long_rule_chains_stay_correct() {
    // Enough conditional rules that jumps exceed 255 instructions.
    let rules: Vec<Rule> = (0..300u64)
        .map(|i| {
            rule(
                &["read"],
                Action::Errno,
                Some(100 + i as u32),
                vec![arg(1, Op::Eq, i * 3, 0)],
            )
        })
        .chain([rule(&["write"], Action::Allow, None, vec![])])
        .collect();
    let f = compile(
        &profile(Action::Errno, Some(38), &[Arch::X86_64, Arch::X86], rules),
        Arch::X86_64,
    )
    .unwrap();
    assert!(f.len() > 1000);
    for i in [0u64, 1, 150, 299] {
        let mut args = NO_ARGS;
        args[1] = i * 3;
        assert_eq!(call(&f, Arch::X86_64, "read", args), errno(100 + i as i32));
        assert_eq!(call(&f, Arch::X86, "read", args), errno(100 + i as i32));
        args[1] += 1;
        assert_eq!(call(&f, Arch::X86_64, "read", args), errno(38));
    }
    assert_eq!(call(&f, Arch::X86_64, "write", NO_ARGS), ALLOW);
    assert_eq!(call(&f, Arch::X86, "write", NO_ARGS), ALLOW);
}

#[test]
fn oversized_filters_are_rejected() {
    let rules: Vec<Rule> = (0..2000u64)
        .map(|i| rule(&["read"], Action::Allow, None, vec![arg(1, Op::Gt, i, 0)]))
        .collect();
    assert!(matches!(
        compile(&profile(Action::Errno, None, &[], rules), Arch::X86_64),
        Err(SeccompError::TooLarge { .. })
    ));
}

#[test]
fn every_syscall_of_the_table_gets_its_verdict() {
    // Allow every other syscall the table knows, with distinct errnos for a
    // few: exercises the binary search over many ranges.
    let table = Arch::X86_64.syscalls();
    let rules: Vec<Rule> = table
        .iter()
        .enumerate()
        .filter(|(i, _)| i % 2 == 0)
        .map(|(i, (_, name))| {
            if i % 6 == 0 {
                rule(&[name], Action::Errno, Some(i as u32 % 4000 + 1), vec![])
            } else {
                rule(&[name], Action::Allow, None, vec![])
            }
        })
        .collect();
    let f = compile(&profile(Action::Errno, Some(38), &[], rules), Arch::X86_64).unwrap();
    for (i, (number, _)) in table.iter().enumerate() {
        let expected = match (i % 2, i % 6) {
            (0, 0) => errno(i as i32 % 4000 + 1),
            (0, _) => ALLOW,
            _ => errno(38),
        };
        assert_eq!(
            run(&f, Arch::X86_64, *number, NO_ARGS),
            expected,
            "syscall {number}"
        );
    }
}

#[test]
fn flags_map_to_seccomp_flags() {
    let mut p = profile(Action::Errno, None, &[], vec![]);
    p.flags = vec![
        "SECCOMP_FILTER_FLAG_LOG".to_owned(),
        "SECCOMP_FILTER_FLAG_SPEC_ALLOW".to_owned(),
        "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV".to_owned(),
    ];
    assert_eq!(flags(&p).unwrap(), 2 | 4);
    p.flags = vec!["SECCOMP_FILTER_FLAG_NOPE".to_owned()];
    assert!(flags(&p).is_err());
}

/// A direct model of the semantics in `compile.rs`, to compare compiled
/// filters with.
mod model {
    use super::*;

    fn covered(p: &Profile, host: Arch) -> (Vec<Arch>, Vec<Arch>) {
        let listed: Vec<Arch> = p
            .architectures
            .iter()
            .filter_map(|n| Arch::from_scmp_name(n))
            .filter(|a| host.with_sub_arches().contains(a))
            .collect();
        let mut covered = vec![host];
        covered.extend(listed.iter().copied().filter(|a| *a != host));
        (covered, listed)
    }

    fn mux(arch: Arch, name: &str) -> Option<(u32, u32)> {
        if arch != Arch::X86 {
            return None;
        }
        let socket = [
            "socket",
            "bind",
            "connect",
            "listen",
            "accept",
            "getsockname",
            "getpeername",
            "socketpair",
            "send",
            "recv",
            "sendto",
            "recvfrom",
            "shutdown",
            "setsockopt",
            "getsockopt",
            "sendmsg",
            "recvmsg",
            "accept4",
            "recvmmsg",
            "sendmmsg",
        ];
        if let Some(i) = socket.iter().position(|n| *n == name) {
            return Some((arch.number("socketcall")?, i as u32 + 1));
        }
        let ipc = [
            ("semop", 1),
            ("semget", 2),
            ("semctl", 3),
            ("semtimedop", 4),
            ("msgsnd", 11),
            ("msgrcv", 12),
            ("msgget", 13),
            ("msgctl", 14),
            ("shmat", 21),
            ("shmdt", 22),
            ("shmget", 23),
            ("shmctl", 24),
        ];
        let call = ipc.iter().find(|(n, _)| *n == name)?.1;
        Some((arch.number("ipc")?, call))
    }

    fn number(arch: Arch, name: &str) -> Option<u32> {
        arch.number(name).map(|n| {
            if arch == Arch::X32 {
                n | X32_SYSCALL_BIT
            } else {
                n
            }
        })
    }

    fn matches(arch: Arch, conditions: &[Arg], args: &[u64; 6]) -> bool {
        conditions.iter().all(|c| {
            let v = args[c.index as usize];
            if matches!(arch, Arch::X86 | Arch::X32) {
                holds32(c, v)
            } else {
                holds(c, v)
            }
        })
    }

    pub(super) fn verdict(p: &Profile, host: Arch, d: &SeccompData) -> u32 {
        let default = action_value(p.default_action, p.default_errno_ret).unwrap();
        let (covered, listed) = covered(p, host);
        let arch = covered.iter().copied().find(|a| {
            a.audit_arch() == d.arch
                && match a {
                    Arch::X86_64 => d.nr & X32_SYSCALL_BIT == 0,
                    Arch::X32 => d.nr & X32_SYSCALL_BIT != 0,
                    _ => true,
                }
        });
        let Some(arch) = arch else {
            if d.arch == Arch::X86_64.audit_arch()
                && d.nr == u32::MAX
                && covered.contains(&Arch::X86_64)
            {
                return default;
            }
            return KILL_THREAD;
        };
        let stub = !matches!(
            p.default_action,
            Action::Allow | Action::Log | Action::Trace
        ) && p.default_errno_ret != Some(38)
            && listed.contains(&arch);
        if stub {
            let max = p
                .syscalls
                .iter()
                .flat_map(|r| r.names.iter())
                .filter(|n| mux(arch, n).is_none())
                .filter_map(|n| number(arch, n))
                .max()
                .filter(|m| *m != 0);
            if let Some(max) = max
                && d.nr > max
            {
                return errno(38);
            }
        }
        let mut unconditional = None;
        let mut conditional = Vec::new();
        for r in &p.syscalls {
            let value = action_value(r.action, r.errno_ret).unwrap();
            if value == default {
                continue;
            }
            let mut indexes: Vec<u32> = r.args.iter().map(|a| a.index).collect();
            indexes.sort_unstable();
            let groups: Vec<Vec<Arg>> = if indexes.windows(2).any(|w| w[0] == w[1]) {
                r.args.iter().map(|a| vec![*a]).collect()
            } else {
                vec![r.args.clone()]
            };
            for name in &r.names {
                let mut targets = Vec::new();
                if let Some((via, call)) = mux(arch, name) {
                    targets.push((via, Some(call)));
                }
                if let Some(n) = number(arch, name) {
                    targets.push((n, None));
                }
                for (n, call) in targets {
                    if n != d.nr {
                        continue;
                    }
                    for g in &groups {
                        let mut c: Vec<Arg> = g
                            .iter()
                            .copied()
                            .filter(|a| {
                                !(a.op == Op::MaskedEq
                                    && if matches!(arch, Arch::X86 | Arch::X32) {
                                        a.value as u32 == 0
                                    } else {
                                        a.value == 0
                                    })
                            })
                            .collect();
                        if let Some(call) = call {
                            c.retain(|a| a.index != 0);
                            c.push(arg(0, Op::Eq, u64::from(call), 0));
                        }
                        if c.is_empty() {
                            unconditional.get_or_insert(value);
                        } else {
                            conditional.push((c, value));
                        }
                    }
                }
            }
        }
        if let Some(v) = unconditional {
            return v;
        }
        conditional
            .iter()
            .find(|(c, _)| matches(arch, c, &d.args))
            .map_or(default, |(_, v)| *v)
    }
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

#[test]
fn random_profiles_match_the_model() {
    let mut rng = Rng(0x5eed_cafe_f00d_1234);
    // Names known on the arches under test, multiplexed ones included when
    // the table has them.
    let mut pool: Vec<&str> = vec!["read", "write"];
    for extra in [
        "socket",
        "socketcall",
        "semget",
        "ipc",
        "personality",
        "clone",
        "execve",
        "mmap",
        "openat",
    ] {
        if Arch::X86_64.number(extra).is_some() || Arch::X86.number(extra).is_some() {
            pool.push(extra);
        }
    }
    let actions = [
        (Action::Allow, None),
        (Action::Errno, None),
        (Action::Errno, Some(13)),
        (Action::Log, None),
        (Action::Trap, None),
        (Action::KillProcess, None),
        (Action::Trace, Some(3)),
    ];
    let ops = [Op::Eq, Op::Ne, Op::Lt, Op::Le, Op::Gt, Op::Ge, Op::MaskedEq];
    let values = [
        0u64,
        1,
        2,
        40,
        0xffff_ffff,
        0x1_0000_0000,
        0x1_0000_0028,
        u64::MAX,
    ];
    let arch_sets: [&[Arch]; 5] = [
        &[],
        &[Arch::X86_64],
        &[Arch::X86_64, Arch::X86],
        &[Arch::X86_64, Arch::X86, Arch::X32],
        &[Arch::X32],
    ];
    for case in 0..300 {
        let (default_action, default_errno) = *rng.pick(&[
            (Action::Errno, None),
            (Action::Errno, Some(38)),
            (Action::KillThread, None),
            (Action::Log, None),
            (Action::Allow, None),
        ]);
        let rules: Vec<Rule> = (0..rng.below(8))
            .map(|_| {
                let names: Vec<&str> = (0..1 + rng.below(3)).map(|_| *rng.pick(&pool)).collect();
                let (action, errno_ret) = *rng.pick(&actions);
                let args = (0..rng.below(4))
                    .map(|_| {
                        arg(
                            rng.below(3) as u32,
                            *rng.pick(&ops),
                            *rng.pick(&values),
                            *rng.pick(&values),
                        )
                    })
                    .collect();
                rule(&names, action, errno_ret, args)
            })
            .collect();
        let arches = arch_sets[rng.below(arch_sets.len())];
        let p = profile(default_action, default_errno, arches, rules);
        let f = compile(&p, Arch::X86_64).unwrap();
        for _ in 0..60 {
            let arch = *rng.pick(&[Arch::X86_64, Arch::X86, Arch::X32, Arch::Aarch64]);
            let name = *rng.pick(&pool);
            let nr = match rng.below(4) {
                0 => rng.next() as u32 % 600,
                1 => u32::MAX,
                _ => arch.number(name).map_or(0, |n| {
                    if arch == Arch::X32 {
                        n | X32_SYSCALL_BIT
                    } else {
                        n
                    }
                }),
            };
            let args = std::array::from_fn(|_| match rng.below(3) {
                0 => *rng.pick(&values),
                1 => rng.pick(&values).wrapping_add(1),
                _ => rng.next(),
            });
            let d = data(arch, nr, args);
            assert_eq!(
                evaluate(&f, &d).unwrap(),
                model::verdict(&p, Arch::X86_64, &d),
                "case {case}: {d:?}\n{}",
                p.to_oci_json()
            );
        }
    }
}

/// Third-party profiles compile: these need the generated syscall tables.
fn third_party(name: &str, host: &Host) -> Profile {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/data/third-party")
        .join(name);
    let text = std::fs::read_to_string(&path).unwrap();
    Profile::parse_for_host(&text, &path, None, host).unwrap_or_else(|e| panic!("{e}"))
}

fn host(capabilities: u64) -> Host {
    Host {
        arch: Arch::X86_64,
        capabilities,
        kernel: KernelVersion { major: 6, minor: 1 },
    }
}

#[test]
fn moby_default_compiles_and_behaves() {
    assert_ne!(
        crate::syscalls::SOURCE,
        "placeholder",
        "this test needs the generated syscall tables (cargo xtask gen-syscalls)"
    );
    for caps in [0, u64::MAX] {
        let p = third_party("moby-default.json", &host(caps));
        let f = compile(&p, Arch::X86_64).unwrap();
        assert!(f.len() < 1000, "{} instructions", f.len());
        let x64 = Arch::X86_64;
        assert_eq!(call(&f, x64, "read", NO_ARGS), ALLOW);
        assert_eq!(
            call(&f, x64, "personality", [0xffff_ffff, 0, 0, 0, 0, 0]),
            ALLOW
        );
        assert_eq!(call(&f, x64, "personality", [1, 0, 0, 0, 0, 0]), errno(1));
        // socket: AF_VSOCK (40) is denied, the rest allowed.
        assert_eq!(call(&f, x64, "socket", [2, 1, 0, 0, 0, 0]), ALLOW);
        assert_eq!(call(&f, x64, "socket", [40, 1, 0, 0, 0, 0]), errno(1));
        // x86 and x32 processes are filtered too (archMap).
        assert_eq!(call(&f, Arch::X86, "read", NO_ARGS), ALLOW);
        assert_eq!(call(&f, Arch::X32, "read", NO_ARGS), ALLOW);
        // x86's socketcall(SYS_SOCKET) is allowed like socket.
        assert_eq!(call(&f, Arch::X86, "socketcall", [1, 0, 0, 0, 0, 0]), ALLOW);
        let clone_newuser = [0x1000_0000, 0, 0, 0, 0, 0];
        if caps == 0 {
            // Without CAP_SYS_ADMIN: namespaces are denied, clone3 is ENOSYS.
            assert_eq!(call(&f, x64, "clone", clone_newuser), errno(1));
            assert_eq!(call(&f, x64, "clone", [0x11, 0, 0, 0, 0, 0]), ALLOW);
            assert_eq!(call(&f, x64, "clone3", NO_ARGS), errno(libc::ENOSYS));
            assert_eq!(call(&f, x64, "mount", NO_ARGS), errno(1));
        } else {
            assert_eq!(call(&f, x64, "clone", clone_newuser), ALLOW);
            assert_eq!(call(&f, x64, "clone3", NO_ARGS), ALLOW);
            assert_eq!(call(&f, x64, "mount", NO_ARGS), ALLOW);
        }
        // Newer than anything the profile names: ENOSYS (runc's stub).
        assert_eq!(run(&f, x64, 1000, NO_ARGS), errno(libc::ENOSYS));
    }
}

#[test]
fn containers_common_compiles_and_behaves() {
    assert_ne!(
        crate::syscalls::SOURCE,
        "placeholder",
        "this test needs the generated syscall tables (cargo xtask gen-syscalls)"
    );
    for caps in [0, u64::MAX] {
        let p = third_party("containers-common-seccomp.json", &host(caps));
        let f = compile(&p, Arch::X86_64).unwrap();
        let x64 = Arch::X86_64;
        // Default errno is ENOSYS here.
        assert_eq!(call(&f, x64, "read", NO_ARGS), ALLOW);
        assert_eq!(call(&f, x64, "kexec_load", NO_ARGS), errno(1));
        assert_eq!(run(&f, x64, 1000, NO_ARGS), errno(libc::ENOSYS));
        // socket(AF_NETLINK, _, NETLINK_AUDIT) without CAP_AUDIT_WRITE: EINVAL.
        let audit = [16, 3, 9, 0, 0, 0];
        let expected = if caps == 0 {
            errno(libc::EINVAL)
        } else {
            ALLOW
        };
        assert_eq!(call(&f, x64, "socket", audit), expected);
        assert_eq!(call(&f, x64, "socket", [2, 1, 0, 0, 0, 0]), ALLOW);
    }
}
