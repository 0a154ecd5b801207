//! Profile → classic-BPF seccomp filter, with the semantics runc gets from
//! libseccomp (checked against libseccomp 2.5.4's exported filters):
//!
//! - the filter covers the host's architecture and every listed one the host
//!   can run (x86_64: x86_64, x86, x32); a syscall of any other
//!   architecture gets `SECCOMP_RET_KILL_THREAD` (libseccomp's bad-arch
//!   action). x86_64 and x32 share `AUDIT_ARCH_X86_64`: numbers with the x32
//!   bit are x32's, and without SCMP_ARCH_X32 they are bad-arch (except -1).
//!   There is no syscall table for 32-bit ARM: on aarch64, AArch32
//!   processes get the bad-arch action even if SCMP_ARCH_ARM is listed;
//! - a rule whose action equals the default action is skipped (runc does);
//! - a rule's conditions on distinct arguments are ANDed; if one argument
//!   appears twice, each condition is a rule of its own (runc);
//! - an unconditional rule for a syscall decides it alone: libseccomp drops
//!   conditional rules for that syscall, before or after it, and the first
//!   unconditional rule wins. Otherwise conditional rules are tried in
//!   profile order, then the default action. (Where conditional rules with
//!   different actions overlap, libseccomp's result follows its internal
//!   tree order, and may reject the profile; syscensus takes profile order.);
//! - argument values are compared as unsigned 64-bit values in 32-bit halves,
//!   or as their low 32 bits on 32-bit ABIs (x86, x32), as libseccomp does;
//! - on x86, socket and SysV IPC syscalls are also matched through
//!   `socketcall(2)` / `ipc(2)` with argument 0 set to the call number, as
//!   libseccomp does (its other conditions are kept, argument 0's dropped);
//! - runc's -ENOSYS stub: unless the default action is ALLOW, LOG or TRACE or
//!   the default errno is ENOSYS, a syscall numbered above every syscall the
//!   profile names for a listed architecture fails with ENOSYS, so that
//!   programs fall back from syscalls newer than the profile (clone3).
//!
//! The filters agree with libseccomp's on random profiles and on the Docker
//! and CRI-O defaults (tests/tests/run.rs), with one known exception:
//! libseccomp 2.5.4 (Debian 12) loses track of the accumulator between two
//! argument chains of one syscall, so that its BPF can disagree with its own
//! pseudo-filter code; syscensus does what the pseudo-code says.
use std::collections::BTreeMap;

use libc::sock_filter;

use super::{
    SeccompError,
    bpf::{Asm, Test},
    emit::{Plan, Segment, Verdict, emit_tree, is_32bit, segments},
};
use crate::{
    profile::{ARCH_NAMES, Action, Arg, Op, Profile},
    syscalls::{self, Arch},
};

/// The x32 ABI's bit in syscall numbers.
pub const X32_SYSCALL_BIT: u32 = 0x4000_0000;

/// `offsetof(struct seccomp_data, nr)`.
const OFFSET_NR: u32 = 0;
/// `offsetof(struct seccomp_data, arch)`.
const OFFSET_ARCH: u32 = 4;

/// Socket calls multiplexed through x86's socketcall(2): name and call
/// number (linux/net.h `SYS_*`).
const SOCKETCALLS: [(&str, u32); 20] = [
    ("socket", 1),
    ("bind", 2),
    ("connect", 3),
    ("listen", 4),
    ("accept", 5),
    ("getsockname", 6),
    ("getpeername", 7),
    ("socketpair", 8),
    ("send", 9),
    ("recv", 10),
    ("sendto", 11),
    ("recvfrom", 12),
    ("shutdown", 13),
    ("setsockopt", 14),
    ("getsockopt", 15),
    ("sendmsg", 16),
    ("recvmsg", 17),
    ("accept4", 18),
    ("recvmmsg", 19),
    ("sendmmsg", 20),
];

/// SysV IPC calls multiplexed through x86's ipc(2) (linux/ipc.h).
const IPC_CALLS: [(&str, u32); 12] = [
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

/// The seccomp return value for `action` with `errno_ret`: ERRNO and TRACE
/// without one use EPERM, as runc does.
pub fn action_value(action: Action, errno_ret: Option<u32>) -> Result<u32, SeccompError> {
    let data = errno_ret.unwrap_or(libc::EPERM as u32) & libc::SECCOMP_RET_DATA;
    Ok(match action {
        Action::Allow => libc::SECCOMP_RET_ALLOW,
        Action::Errno => libc::SECCOMP_RET_ERRNO | data,
        Action::Log => libc::SECCOMP_RET_LOG,
        Action::KillThread => libc::SECCOMP_RET_KILL_THREAD,
        Action::KillProcess => libc::SECCOMP_RET_KILL_PROCESS,
        Action::Trap => libc::SECCOMP_RET_TRAP,
        Action::Trace => libc::SECCOMP_RET_TRACE | data,
        Action::Notify => return Err(SeccompError::Notify),
    })
}

/// The number the filter sees for `name` on `arch` (x32 with its bit).
fn number(arch: Arch, name: &str) -> Option<u32> {
    let nr = arch.number(name)?;
    Some(if arch == Arch::X32 {
        nr | X32_SYSCALL_BIT
    } else {
        nr
    })
}

/// For x86's multiplexed calls: the multiplexer's number and the call number.
fn multiplexed(arch: Arch, name: &str) -> Option<(u32, u32)> {
    if arch != Arch::X86 {
        return None;
    }
    let find = |table: &[(&str, u32)], via: &str| {
        let call = table.iter().find(|(n, _)| *n == name)?.1;
        Some((arch.number(via)?, call))
    };
    find(&SOCKETCALLS, "socketcall").or_else(|| find(&IPC_CALLS, "ipc"))
}

/// Whether a condition holds for every value on `arch` (a masked compare
/// with an empty mask); libseccomp drops those.
fn is_tautology(arg: &Arg, arch: Arch) -> bool {
    arg.op == Op::MaskedEq
        && if is_32bit(arch) {
            arg.value as u32 == 0
        } else {
            arg.value == 0
        }
}

/// The highest syscall number `profile` names on `arch`, as runc's -ENOSYS
/// stub computes it (multiplexed x86 calls do not count: libseccomp resolves
/// them to pseudo numbers).
fn highest_named(profile: &Profile, arch: Arch) -> Option<u32> {
    profile
        .syscalls
        .iter()
        .flat_map(|r| r.names.iter())
        .filter(|name| multiplexed(arch, name).is_none())
        .filter_map(|name| number(arch, name))
        .max()
        // runc leaves an architecture whose largest number is 0 alone.
        .filter(|max| *max != 0)
}

/// Checks what the kernel-independent part of a profile needs: known names,
/// no NOTIFY, argument indexes below 6.
fn validate(profile: &Profile) -> Result<(), SeccompError> {
    action_value(profile.default_action, profile.default_errno_ret)?;
    for (index, rule) in profile.syscalls.iter().enumerate() {
        action_value(rule.action, rule.errno_ret)?;
        if let Some(name) = rule.names.iter().find(|n| !syscalls::is_known(n)) {
            return Err(SeccompError::UnknownSyscall { name: name.clone() });
        }
        if let Some(arg) = rule.args.iter().find(|a| a.index >= 6) {
            return Err(SeccompError::ArgIndex {
                rule: index,
                index: arg.index,
            });
        }
    }
    Ok(())
}

/// The architectures the filter covers on `host`, host first, and which of
/// them the profile lists explicitly.
fn architectures(profile: &Profile, host: Arch) -> Result<(Vec<Arch>, Vec<Arch>), SeccompError> {
    let reachable = host.with_sub_arches();
    let mut listed = Vec::new();
    for name in &profile.architectures {
        let arch = if name == "SCMP_ARCH_NATIVE" {
            host
        } else if let Some(arch) = Arch::from_scmp_name(name) {
            arch
        } else if ARCH_NAMES.contains(&name.as_str()) {
            // A real architecture this host never runs: its check could
            // never match.
            continue;
        } else {
            return Err(SeccompError::UnknownArchitecture { name: name.clone() });
        };
        if reachable.contains(&arch) && !listed.contains(&arch) {
            listed.push(arch);
        }
    }
    let covered = reachable
        .iter()
        .copied()
        .filter(|a| *a == host || listed.contains(a))
        .collect();
    Ok((covered, listed))
}

/// Per syscall number on `arch`: what it leads to.
fn plans(profile: &Profile, arch: Arch, default: u32) -> Result<BTreeMap<u32, Plan>, SeccompError> {
    let mut plans: BTreeMap<u32, Plan> = BTreeMap::new();
    for rule in &profile.syscalls {
        let value = action_value(rule.action, rule.errno_ret)?;
        if value == default {
            continue;
        }
        let mut indexes: Vec<u32> = rule.args.iter().map(|a| a.index).collect();
        indexes.sort_unstable();
        let repeated = indexes.windows(2).any(|w| w[0] == w[1]);
        let groups: Vec<Vec<Arg>> = if repeated {
            rule.args.iter().map(|a| vec![*a]).collect()
        } else {
            vec![rule.args.clone()]
        };
        for name in &rule.names {
            let mut targets: Vec<(u32, Option<u32>)> = Vec::new();
            if let Some((via, call)) = multiplexed(arch, name) {
                targets.push((via, Some(call)));
            }
            if let Some(nr) = number(arch, name) {
                targets.push((nr, None));
            }
            for (nr, call) in targets {
                for group in &groups {
                    let mut conditions: Vec<Arg> = group
                        .iter()
                        .copied()
                        .filter(|a| !is_tautology(a, arch))
                        .collect();
                    if let Some(call) = call {
                        conditions.retain(|a| a.index != 0);
                        conditions.insert(
                            0,
                            Arg {
                                index: 0,
                                value: u64::from(call),
                                value_two: 0,
                                op: Op::Eq,
                            },
                        );
                    }
                    plans.entry(nr).or_default().add(conditions, value);
                }
            }
        }
    }
    Ok(plans)
}

/// The number above which runc's -ENOSYS stub fails syscalls of `arch`
/// with ENOSYS under `profile` on `host` (x32: with the x32 bit), if it
/// applies to `arch` at all.
pub fn enosys_above(
    profile: &Profile,
    host: Arch,
    arch: Arch,
) -> Result<Option<u32>, SeccompError> {
    let (_, listed) = architectures(profile, host)?;
    let stub = !matches!(
        profile.default_action,
        Action::Allow | Action::Log | Action::Trace
    ) && profile.default_errno_ret != Some(libc::ENOSYS as u32);
    Ok(if stub && listed.contains(&arch) {
        highest_named(profile, arch)
    } else {
        None
    })
}

/// What a profile's filter does with one syscall number, whatever its
/// arguments.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Always this `SECCOMP_RET_*` value.
    Fixed(u32),
    /// Decided by argument conditions.
    Conditional,
    /// Above every syscall the profile names: runc's -ENOSYS stub (see
    /// [`enosys_above`]); a runtime without the stub gives the default.
    EnosysStub,
}

/// Per architecture the filter for `profile` covers on `host` (host
/// first), the outcome of each syscall number below `count` (x32: without
/// the x32 bit), decided as [`compile`] decides. Architectures the filter
/// does not cover kill the thread (libseccomp's bad-architecture action).
pub fn outcomes(
    profile: &Profile,
    host: Arch,
    count: u32,
) -> Result<Vec<(Arch, Vec<Outcome>)>, SeccompError> {
    validate(profile)?;
    let default = action_value(profile.default_action, profile.default_errno_ret)?;
    let (covered, _) = architectures(profile, host)?;
    let mut out = Vec::new();
    for arch in covered {
        let mut plans = plans(profile, arch, default)?;
        let above = enosys_above(profile, host, arch)?;
        let table = (0..count)
            .map(|nr| {
                let seen = if arch == Arch::X32 {
                    nr | X32_SYSCALL_BIT
                } else {
                    nr
                };
                if above.is_some_and(|max| seen > max) {
                    return Outcome::EnosysStub;
                }
                match plans.remove(&seen).map(|plan| plan.verdict(default)) {
                    None => Outcome::Fixed(default),
                    Some(Verdict::Return(value)) => Outcome::Fixed(value),
                    Some(Verdict::Rules { .. }) => Outcome::Conditional,
                }
            })
            .collect();
        out.push((arch, table));
    }
    Ok(out)
}

/// Compiles `profile` into a filter for a process on `host`.
pub fn compile(profile: &Profile, host: Arch) -> Result<Vec<sock_filter>, SeccompError> {
    validate(profile)?;
    let default = action_value(profile.default_action, profile.default_errno_ret)?;
    let (covered, _) = architectures(profile, host)?;
    let tree = |arch: Arch, low: u32, high: u32| -> Result<Vec<Segment>, SeccompError> {
        Ok(segments(
            plans(profile, arch, default)?,
            low,
            high,
            default,
            enosys_above(profile, host, arch)?,
        ))
    };

    let mut asm = Asm::default();
    // Group the covered architectures by the AUDIT_ARCH value the kernel
    // reports (x86_64 and x32 share one).
    let mut groups: Vec<(u32, Vec<Arch>)> = Vec::new();
    for arch in &covered {
        match groups
            .iter_mut()
            .find(|(audit, _)| *audit == arch.audit_arch())
        {
            Some((_, arches)) => arches.push(*arch),
            None => groups.push((arch.audit_arch(), vec![*arch])),
        }
    }
    asm.load(OFFSET_ARCH);
    let mut entries = Vec::new();
    for (audit, _) in &groups {
        let entry = asm.label();
        let next = asm.label();
        asm.jump(Test::Eq, *audit, entry, next);
        asm.bind(next);
        entries.push(entry);
    }
    asm.ret(libc::SECCOMP_RET_KILL_THREAD);

    for ((_, arches), entry) in groups.iter().zip(entries) {
        asm.bind(entry);
        asm.load(OFFSET_NR);
        let has64 = arches.contains(&Arch::X86_64);
        let has32 = arches.contains(&Arch::X32);
        if has64 || has32 {
            let low_half = asm.label();
            let high_half = asm.label();
            asm.jump(Test::Ge, X32_SYSCALL_BIT, high_half, low_half);
            asm.bind(low_half);
            if has64 {
                emit_tree(
                    &mut asm,
                    &tree(Arch::X86_64, 0, X32_SYSCALL_BIT - 1)?,
                    Arch::X86_64,
                );
            } else {
                asm.ret(libc::SECCOMP_RET_KILL_THREAD);
            }
            asm.bind(high_half);
            if has32 {
                emit_tree(
                    &mut asm,
                    &tree(Arch::X32, X32_SYSCALL_BIT, u32::MAX)?,
                    Arch::X32,
                );
            } else {
                // -1 is not an x32 number: libseccomp leaves it to the
                // x86_64 rules, where nothing matches it.
                let minus_one = asm.label();
                let bad = asm.label();
                asm.jump(Test::Eq, u32::MAX, minus_one, bad);
                asm.bind(minus_one);
                asm.ret(default);
                asm.bind(bad);
                asm.ret(libc::SECCOMP_RET_KILL_THREAD);
            }
        } else {
            for arch in arches {
                emit_tree(&mut asm, &tree(*arch, 0, u32::MAX)?, *arch);
            }
        }
    }
    let program = asm.finish().map_err(|e| SeccompError::Assemble {
        detail: format!("{e:?}"),
    })?;
    if program.len() > libc::BPF_MAXINSNS as usize {
        return Err(SeccompError::TooLarge {
            instructions: program.len(),
        });
    }
    Ok(program)
}
