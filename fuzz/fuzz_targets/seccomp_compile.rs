//! Profiles built from the fuzzer's bytes (any action, errno, argument
//! condition, architecture and known syscall name) compiled for x86_64 and
//! aarch64: refused with an error, or a filter of at most 4096
//! instructions that runs to a verdict on any syscall, and gives an
//! unconditional rule's action to its syscall.
#![no_main]

use libfuzzer_sys::fuzz_target;
use syscensus::{
    profile::{ARCH_NAMES, Action, Arg, FLAG_NAMES, Op, Profile, Rule},
    seccomp::{self, SeccompData, action_value},
    syscalls::Arch,
};
use syscensus_fuzz::Bytes;

const ACTIONS: [Action; 8] = [
    Action::Allow,
    Action::Errno,
    Action::Log,
    Action::KillThread,
    Action::KillProcess,
    Action::Trap,
    Action::Trace,
    Action::Notify,
];

const OPS: [Op; 7] = [Op::Ne, Op::Lt, Op::Le, Op::Eq, Op::Ge, Op::Gt, Op::MaskedEq];

fn errno(bytes: &mut Bytes<'_>) -> Option<u32> {
    match bytes.u8() % 4 {
        0 => None,
        1 => Some(1),
        2 => Some(u32::from(bytes.u8()) * 17),
        _ => Some(bytes.u32()),
    }
}

fn profile(bytes: &mut Bytes<'_>) -> Profile {
    let names: Vec<&str> = Arch::X86_64
        .syscalls()
        .iter()
        .chain(Arch::X86.syscalls())
        .chain(Arch::Aarch64.syscalls())
        .map(|(_, n)| *n)
        .collect();
    let default_action = *bytes.pick(&ACTIONS);
    let default_errno_ret = errno(bytes);
    let arches = bytes.u32();
    let architectures = ARCH_NAMES
        .iter()
        .enumerate()
        .filter(|(i, _)| arches & (1 << i) != 0)
        .map(|(_, a)| (*a).to_owned())
        .collect();
    let flag_bits = bytes.u8();
    let flags = FLAG_NAMES
        .iter()
        .enumerate()
        .filter(|(i, _)| flag_bits & (1 << i) != 0)
        .map(|(_, f)| (*f).to_owned())
        .collect();
    let mut syscalls = Vec::new();
    while !bytes.is_empty() && syscalls.len() < 64 {
        let count = usize::from(bytes.u8() % 16);
        let names = (0..count)
            .map(|_| {
                let i = usize::from(bytes.u8()) << 8 | usize::from(bytes.u8());
                names[i % names.len()].to_owned()
            })
            .collect();
        let action = *bytes.pick(&ACTIONS);
        let errno_ret = errno(bytes);
        let args = (0..bytes.u8() % 8)
            .map(|_| Arg {
                index: u32::from(bytes.u8() % 8),
                value: bytes.u64(),
                value_two: bytes.u64(),
                op: *bytes.pick(&OPS),
            })
            .collect();
        syscalls.push(Rule {
            names,
            action,
            errno_ret,
            args,
            comment: None,
        });
    }
    Profile {
        default_action,
        default_errno_ret,
        architectures,
        flags,
        syscalls,
    }
}

fuzz_target!(|data: &[u8]| {
    let mut bytes = Bytes(data);
    let profile = profile(&mut bytes);
    for host in [Arch::X86_64, Arch::Aarch64] {
        let Ok(program) = seccomp::compile(&profile, host) else {
            continue;
        };
        assert!(program.len() <= 4096, "{} instructions", program.len());
        for arch in host.with_sub_arches() {
            for nr in [0, 1, 59, 221, 435, 1000, u32::MAX] {
                let data = SeccompData {
                    nr: if *arch == Arch::X32 { nr | 0x4000_0000 } else { nr },
                    arch: arch.audit_arch(),
                    ..SeccompData::default()
                };
                seccomp::evaluate(&program, &data).expect("a compiled filter runs");
            }
        }
        // The first unconditional rule for a syscall (other than one with
        // the default action) decides it.
        let default = action_value(profile.default_action, profile.default_errno_ret).unwrap();
        let mut decided = std::collections::BTreeSet::new();
        for rule in &profile.syscalls {
            let Ok(value) = action_value(rule.action, rule.errno_ret) else {
                continue;
            };
            if !rule.args.is_empty() || value == default {
                continue;
            }
            for name in &rule.names {
                if !decided.insert(name.clone()) {
                    continue;
                }
                if let Some(verdict) = seccomp::verdict_for(&program, host, name) {
                    assert_eq!(verdict, Ok(value), "{name} on {host}");
                }
            }
        }
    }
});
