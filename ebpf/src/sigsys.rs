//! `signal_generate`: a syscall of a watched container that its profile
//! kills or traps (`SCMP_ACT_KILL_PROCESS`, `SCMP_ACT_KILL_THREAD`,
//! `SCMP_ACT_TRAP`, and a syscall of an architecture the profile does not
//! list). Such a syscall never returns a value; `force_sig_seccomp` sends the
//! process `SIGSYS` with `si_code == SYS_SECCOMP` and the syscall's number
//! and `AUDIT_ARCH_*` in `si_syscall` and `si_arch` (kernel/seccomp.c at
//! v6.18), which this hook sees as the signal is generated.
//!
//! `SCMP_ACT_KILL_THREAD` of a thread whose process has other live threads
//! sends no signal: the kernel marks the thread `SECCOMP_MODE_DEAD` and
//! ends it with `do_exit(SIGSYS)` from inside the syscall. `sched_process_exit`
//! sees that thread leave with the syscall's number still in its registers.
use aya_ebpf::{
    helpers::{bpf_get_current_cgroup_id, bpf_probe_read_kernel, bpf_task_pt_regs},
    macros::btf_tracepoint,
    programs::BtfTracePointContext,
};
use syscensus_common::{
    X32_SYSCALL_BIT, abi,
    refusal::{PF_SIGNALED, SECCOMP_MODE_DEAD, SIGSYS, SYS_SECCOMP, kind, watch_counter},
};

use crate::{
    task::{current_cgroup_id, current_task, field, offset, task_cgroup_id},
    watch::{Refusal, config, container_of, count, filter_hit, policy, refuse, regs_nr, split_abi},
};

/// Attached to `signal_generate`: `(int sig, struct kernel_siginfo *info,
/// struct task_struct *task, int group, int result)`, for every signal sent,
/// only while a container is watched.
#[btf_tracepoint(function = "signal_generate")]
pub fn signal_generate(ctx: BtfTracePointContext) -> i32 {
    let sig: i32 = ctx.arg(0);
    if sig != SIGSYS {
        return 0;
    }
    let info: *const u8 = ctx.arg(1);
    let task: *const u8 = ctx.arg(2);
    check(info, task);
    0
}

#[inline(always)]
fn check(info: *const u8, task: *const u8) {
    // SEND_SIG_NOINFO (0) and SEND_SIG_PRIV (1) are not siginfo pointers.
    if (info as usize) <= 1 || config!(siginfo_code) == 0 {
        return;
    }
    let cgroup_id = if offset!(direct_cgroup_id) != 0 {
        // SAFETY: a BTF pointer from the tracepoint's arguments.
        unsafe { task_cgroup_id(task) }
    } else {
        // seccomp signals the current task.
        // SAFETY: no preconditions.
        unsafe { bpf_get_current_cgroup_id() }
    };
    if !filter_hit(cgroup_id) {
        return;
    }
    // The verifier gives `info` as a plain number (it may be one of the
    // special values above), so it is read with the helper; this runs once
    // per SIGSYS of a watched container.
    let read = |offset: u32| -> Option<i32> {
        // SAFETY: the helper checks the address and fails instead of
        // faulting.
        unsafe { bpf_probe_read_kernel(info.add(offset as usize).cast::<i32>()).ok() }
    };
    if read(config!(siginfo_code)) != Some(SYS_SECCOMP) {
        return;
    }
    let (Some(nr), Some(arch)) = (read(config!(siginfo_syscall)), read(config!(siginfo_arch)))
    else {
        return;
    };
    let arch = arch as u32;
    let container = container_of(cgroup_id);
    let Some(native) = policy(container, abi::NATIVE) else {
        return;
    };
    count(watch_counter::SIGNALS);
    let nr = nr as u32;
    let (key_abi, nr) = if arch == config!(native_audit_arch) {
        if u64::from(nr) & X32_SYSCALL_BIT != 0 {
            (abi::X32, nr & !(X32_SYSCALL_BIT as u32))
        } else {
            (abi::NATIVE, nr)
        }
    } else if arch == config!(compat_audit_arch) && arch != 0 {
        (abi::COMPAT, nr)
    } else {
        // An architecture this kernel does not run natively or in compat
        // mode: counted above, not attributed.
        return;
    };
    refuse(
        &Refusal {
            container,
            task_cgroup_id: cgroup_id,
            abi: key_abi,
            nr,
            kind: kind::SIGNAL,
            ret: 0,
        },
        native,
    );
}

/// Attached to `sched_process_exit` (`(struct task_struct *p, ...)`, in
/// `do_exit` of the exiting thread, the current task), only while a
/// container is watched: a thread that seccomp killed without a signal.
#[btf_tracepoint(function = "sched_process_exit")]
pub fn seccomp_thread_exit(_ctx: BtfTracePointContext) -> i32 {
    let mode_offset = config!(task_seccomp_mode);
    if mode_offset == 0 {
        return 0;
    }
    let task = current_task();
    // The rare case first: one load from the task.
    // SAFETY: the current task is a BTF pointer.
    let mode: i32 = unsafe { field(task, mode_offset) };
    if mode != SECCOMP_MODE_DEAD {
        return 0;
    }
    check_thread_exit(task);
    0
}

#[inline(always)]
fn check_thread_exit(task: *const u8) {
    // SAFETY: the current task is a BTF pointer.
    let (flags, exit_code): (u32, i32) = unsafe {
        (
            field(task, config!(task_flags)),
            field(task, config!(task_exit_code)),
        )
    };
    // Killed by the SIGSYS, which `signal_generate` counted; or not by
    // seccomp's do_exit(SIGSYS).
    if flags & PF_SIGNALED != 0 || exit_code != SIGSYS {
        return;
    }
    let cgroup_id = current_cgroup_id(task);
    if !filter_hit(cgroup_id) {
        return;
    }
    let container = container_of(cgroup_id);
    let Some(native) = policy(container, abi::NATIVE) else {
        return;
    };
    count(watch_counter::THREADS_KILLED);
    // SAFETY: the helper takes a BTF pointer to a task and returns its user
    // registers, a BTF pointer to `struct pt_regs`.
    let regs = unsafe { bpf_task_pt_regs(task.cast_mut().cast()) } as *const u8;
    // SAFETY: as above.
    let Some(id) = (unsafe { regs_nr(regs) }) else {
        return;
    };
    let (key_abi, nr) = split_abi(task, regs, id);
    refuse(
        &Refusal {
            container,
            task_cgroup_id: cgroup_id,
            abi: key_abi,
            nr: nr as u32,
            kind: kind::SIGNAL,
            ret: 0,
        },
        native,
    );
}
