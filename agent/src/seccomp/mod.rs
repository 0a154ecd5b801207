//! Compiles a profile into a classic-BPF seccomp filter and installs it.
//!
//! The compiler is our own (no libseccomp): see `compile.rs` for the
//! semantics, which follow what runc does with libseccomp so that a profile
//! behaves under `syscensus run` as it does in a container.
use std::io;

use libc::sock_filter;

use crate::{profile::Profile, syscalls::Arch};

mod bpf;
mod compile;
mod emit;
pub mod eval;
#[cfg(test)]
mod tests;

pub use compile::{Outcome, X32_SYSCALL_BIT, action_value, compile, enosys_above, outcomes};
pub use eval::{EvalError, SeccompData, evaluate};

/// A profile that cannot be turned into a filter, or a filter the kernel
/// refused.
#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    #[error(
        "the profile uses SCMP_ACT_NOTIFY, which needs a seccomp agent listening for notifications; syscensus run has none: use another action"
    )]
    Notify,
    #[error(
        "unknown syscall {name:?} in the profile: check the spelling (profiles use libseccomp's names)"
    )]
    UnknownSyscall { name: String },
    #[error(
        "unknown architecture {name:?} in the profile: use an SCMP_ARCH_* name such as SCMP_ARCH_X86_64"
    )]
    UnknownArchitecture { name: String },
    #[error(
        "unknown flag {name:?} in the profile: use SECCOMP_FILTER_FLAG_TSYNC, _LOG or _SPEC_ALLOW"
    )]
    UnknownFlag { name: String },
    #[error("syscalls[{rule}] compares argument {index}, but syscalls have arguments 0 to 5")]
    ArgIndex { rule: usize, index: u32 },
    #[error(
        "the profile compiles to {instructions} BPF instructions, more than the kernel's 4096: use fewer argument conditions"
    )]
    TooLarge { instructions: usize },
    #[error("internal error assembling the filter ({detail}): please report it")]
    Assemble { detail: String },
    #[error(
        "the profile does not allow execve on {arch} (it gets {verdict}), so the command could not be started: add execve to the profile"
    )]
    ExecveBlocked { arch: Arch, verdict: String },
    #[error("failed to set no_new_privs before installing the seccomp filter: {source}")]
    NoNewPrivs {
        #[source]
        source: io::Error,
    },
    #[error(
        "the kernel refused the seccomp filter ({instructions} instructions, flags {flags:#x}): {source}"
    )]
    Install {
        instructions: usize,
        flags: u32,
        #[source]
        source: io::Error,
    },
}

/// The `seccomp(2)` flags for the profile's `flags`. TSYNC, LOG and
/// SPEC_ALLOW are passed on; WAIT_KILLABLE_RECV only concerns notification
/// listeners, which `run` does not create, and is left out.
pub fn flags(profile: &Profile) -> Result<u32, SeccompError> {
    let mut flags = 0u32;
    for name in &profile.flags {
        flags |= match name.as_str() {
            "SECCOMP_FILTER_FLAG_TSYNC" => libc::SECCOMP_FILTER_FLAG_TSYNC as u32,
            "SECCOMP_FILTER_FLAG_LOG" => libc::SECCOMP_FILTER_FLAG_LOG as u32,
            "SECCOMP_FILTER_FLAG_SPEC_ALLOW" => libc::SECCOMP_FILTER_FLAG_SPEC_ALLOW as u32,
            "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV" => 0,
            _ => return Err(SeccompError::UnknownFlag { name: name.clone() }),
        };
    }
    Ok(flags)
}

/// Sets no_new_privs (the kernel requires it, or CAP_SYS_ADMIN, and it keeps
/// setuid programs from escaping the filter's intent), then installs
/// `program` as the calling thread's seccomp filter with `flags`.
pub fn install(program: &[sock_filter], flags: u32) -> Result<(), SeccompError> {
    // SAFETY: prctl(PR_SET_NO_NEW_PRIVS) takes integer arguments only.
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
        return Err(SeccompError::NoNewPrivs {
            source: io::Error::last_os_error(),
        });
    }
    let install_error = |source| SeccompError::Install {
        instructions: program.len(),
        flags,
        source,
    };
    let len = u16::try_from(program.len())
        .map_err(|_| install_error(io::Error::from_raw_os_error(libc::EINVAL)))?;
    let prog = libc::sock_fprog {
        len,
        // The kernel only reads the program.
        filter: program.as_ptr().cast_mut(),
    };
    // SAFETY: `prog` points at `program`, which outlives the call; the
    // kernel copies the filter.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            flags,
            &prog as *const libc::sock_fprog,
        )
    };
    if rc != 0 {
        return Err(install_error(io::Error::last_os_error()));
    }
    Ok(())
}

/// The verdict of `program` on syscall `name` of `arch` with all arguments
/// zero, or `None` if `arch` has no such syscall.
pub fn verdict_for(
    program: &[sock_filter],
    arch: Arch,
    name: &str,
) -> Option<Result<u32, EvalError>> {
    let nr = arch.number(name)?;
    let nr = if arch == Arch::X32 {
        nr | X32_SYSCALL_BIT
    } else {
        nr
    };
    Some(evaluate(
        program,
        &SeccompData {
            nr,
            arch: arch.audit_arch(),
            ..SeccompData::default()
        },
    ))
}

/// A return value as profiles name it: `SCMP_ACT_ERRNO(1)`, `SCMP_ACT_ALLOW`.
pub fn describe(value: u32) -> String {
    let data = value & libc::SECCOMP_RET_DATA;
    match value & libc::SECCOMP_RET_ACTION_FULL {
        libc::SECCOMP_RET_KILL_PROCESS => "SCMP_ACT_KILL_PROCESS".to_owned(),
        libc::SECCOMP_RET_KILL_THREAD => "SCMP_ACT_KILL_THREAD".to_owned(),
        libc::SECCOMP_RET_TRAP => "SCMP_ACT_TRAP".to_owned(),
        libc::SECCOMP_RET_ERRNO => format!("SCMP_ACT_ERRNO({data})"),
        libc::SECCOMP_RET_USER_NOTIF => "SCMP_ACT_NOTIFY".to_owned(),
        libc::SECCOMP_RET_TRACE => format!("SCMP_ACT_TRACE({data})"),
        libc::SECCOMP_RET_LOG => "SCMP_ACT_LOG".to_owned(),
        libc::SECCOMP_RET_ALLOW => "SCMP_ACT_ALLOW".to_owned(),
        other => format!("{other:#x}"),
    }
}
