//! `sys_exit`: a syscall of a watched container that its profile refuses
//! with an errno, seen as it returns that errno; in complain mode
//! (`SCMP_ACT_LOG`), a syscall outside the profile, whatever it returns.
//!
//! seccomp refuses before `sys_enter`, but the refused syscall still leaves
//! through `sys_exit`: `__seccomp_filter` sets the return value and skips
//! the syscall (kernel/seccomp.c at v6.18), and the exit work, which fires
//! the tracepoint, runs as for any other syscall, with the number still in
//! `orig_ax` (measured on 6.18: TESTBED.md).
use aya_ebpf::{macros::btf_tracepoint, programs::BtfTracePointContext};
use syscensus_common::{
    SYSCALL_SLOTS, abi,
    refusal::{ENOSYS, SECCOMP_MODE_FILTER, kind, verdict, watch_counter},
};

use crate::{
    task::{current_cgroup_id, current_task, field},
    watch::{Refusal, config, container_of, count, filter_hit, policy, refuse, regs_nr, split_abi},
};

/// Attached to the `sys_exit` tracepoint: `(struct pt_regs *regs, long
/// ret)`, only while a container is watched.
#[btf_tracepoint(function = "sys_exit")]
pub fn sys_exit(ctx: BtfTracePointContext) -> i32 {
    let task = current_task();
    let cgroup_id = current_cgroup_id(task);
    // The cheap test first: almost every process on a node is not watched.
    if !filter_hit(cgroup_id) {
        return 0;
    }
    let regs: *const u8 = ctx.arg(0);
    let ret: i64 = ctx.arg(1);
    check(task, cgroup_id, regs, ret);
    0
}

#[inline(always)]
fn check(task: *const u8, cgroup_id: u64, regs: *const u8, ret: i64) {
    // SAFETY: `regs` is a BTF pointer from the tracepoint's arguments.
    let Some(id) = (unsafe { regs_nr(regs) }) else {
        return;
    };
    let (key_abi, nr) = split_abi(task, regs, id);
    let container = container_of(cgroup_id);
    let Some(table) = policy(container, key_abi) else {
        return;
    };
    if nr >= SYSCALL_SLOTS as u64 {
        count(watch_counter::OUT_OF_RANGE);
        return;
    }
    // SAFETY: `table` points into a live map value; `nr < SYSCALL_SLOTS`,
    // the length of `verdicts`.
    let value = unsafe { *(*table).verdicts.as_ptr().add(nr as usize) };
    let refusal_kind = if value & verdict::LOG != 0 {
        kind::LOG
    } else if value & verdict::ERRNO != 0
        && (ret == -i64::from(value & verdict::ERRNO_MASK)
            || (value & verdict::OR_ENOSYS != 0 && ret == -i64::from(ENOSYS)))
    {
        kind::ERRNO
    } else {
        return;
    };
    // Only a thread under a seccomp filter can have been refused (or
    // logged) by one: the runtime's own set-up runs in the container's
    // cgroup before it loads the filter, and a syscall failing there with
    // the same errno is its own failure.
    let mode_offset = config!(task_seccomp_mode);
    // SAFETY: the current task is a BTF pointer.
    if mode_offset != 0 && unsafe { field::<i32>(task, mode_offset) } != SECCOMP_MODE_FILTER {
        return;
    }
    let native = if key_abi == abi::NATIVE {
        Some(table)
    } else {
        policy(container, abi::NATIVE)
    };
    let Some(native) = native else {
        return;
    };
    refuse(
        &Refusal {
            container,
            task_cgroup_id: cgroup_id,
            abi: key_abi,
            nr: nr as u32,
            kind: refusal_kind,
            ret,
        },
        native,
    );
}
