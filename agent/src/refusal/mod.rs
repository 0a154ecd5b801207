//! Refusals: what an enforced profile refuses a container. This module
//! turns the profile a container runs under into what the kernel's watch
//! checks ([`watch_policy`]); [`runtime`] finds that profile in what the
//! container's runtime holds.
//!
//! The watch is conservative in one direction only: it may miss a refusal,
//! never invent one. A syscall that argument conditions decide (Docker's
//! `clone` without namespace flags, `personality` with some values) counts
//! as allowed: it is not refused by name, and a failure with the profile's
//! errno could be the syscall's own. A syscall whose rule hands it to a
//! tracer or a listener counts as allowed too.
use std::collections::BTreeSet;

use syscensus_common::{SYSCALL_SLOTS, abi, refusal::ENOSYS};

use crate::{
    bpf::{Verdict, WatchPolicy},
    profile::{Action, Profile},
    seccomp::{Outcome, SeccompError, outcomes},
    syscalls::{self, Arch},
};

pub mod report;
pub mod runtime;
pub mod status;

/// What the kernel checks for a container, and what of its profile could
/// not be used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyBuild {
    pub policy: WatchPolicy,
    /// Syscall names the profile lists that no architecture knows: runc and
    /// crun skip them when they build the filter, and so does the watch.
    pub unknown_names: BTreeSet<String>,
}

/// The watch policy of a container that runs under `profile` on a `host`
/// machine: for each ABI the profile's filter covers, how each syscall
/// number is refused, decided as the runtime's filter decides it
/// (`seccomp::compile`'s semantics, runc's -ENOSYS stub included).
pub fn watch_policy(profile: &Profile, host: Arch) -> Result<PolicyBuild, SeccompError> {
    let mut profile = profile.clone();
    let mut unknown_names = BTreeSet::new();
    // A listener decides these: never counted as refused.
    if profile.default_action == Action::Notify {
        profile.default_action = Action::Allow;
    }
    for rule in &mut profile.syscalls {
        if rule.action == Action::Notify {
            rule.action = Action::Allow;
        }
        rule.names.retain(|name| {
            let known = syscalls::is_known(name);
            if !known {
                unknown_names.insert(name.clone());
            }
            known
        });
    }
    let default = classify(Outcome::Fixed(crate::seccomp::action_value(
        profile.default_action,
        profile.default_errno_ret,
    )?));
    let stub = match default {
        Verdict::Errno(errno) => Verdict::ErrnoOrEnosys(errno),
        _ => Verdict::Errno(ENOSYS),
    };
    let mut policy = WatchPolicy::new();
    for (arch, table) in outcomes(&profile, host, SYSCALL_SLOTS as u32)? {
        let Some(abi_id) = abi_of(arch, host) else {
            continue;
        };
        policy.cover(abi_id, Verdict::Allowed);
        for (nr, outcome) in table.into_iter().enumerate() {
            let verdict = match outcome {
                Outcome::EnosysStub => stub,
                other => classify(other),
            };
            policy.set(abi_id, nr as u32, verdict);
        }
    }
    Ok(PolicyBuild {
        policy,
        unknown_names,
    })
}

/// The watch's verdict for a filter outcome.
fn classify(outcome: Outcome) -> Verdict {
    let Outcome::Fixed(value) = outcome else {
        return Verdict::Allowed;
    };
    let data = (value & libc::SECCOMP_RET_DATA) as u16;
    match value & libc::SECCOMP_RET_ACTION_FULL {
        libc::SECCOMP_RET_ERRNO => Verdict::Errno(data),
        libc::SECCOMP_RET_LOG => Verdict::Log,
        libc::SECCOMP_RET_KILL_PROCESS | libc::SECCOMP_RET_KILL_THREAD | libc::SECCOMP_RET_TRAP => {
            Verdict::Signal
        }
        // Without a tracer attached the kernel fails the syscall with
        // ENOSYS (kernel/seccomp.c); with one, the tracer decides.
        libc::SECCOMP_RET_TRACE => Verdict::Errno(ENOSYS),
        _ => Verdict::Allowed,
    }
}

/// The ABI (`syscensus_common::abi`) under which the kernel program sees
/// `arch`'s syscalls on `host`.
fn abi_of(arch: Arch, host: Arch) -> Option<u32> {
    if arch == host {
        return Some(abi::NATIVE);
    }
    (0..abi::COUNT).find(|&id| Arch::for_abi(id) == Some(arch) && Arch::native() == host)
}

#[cfg(test)]
mod tests;
