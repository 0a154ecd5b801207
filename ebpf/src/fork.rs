//! `sched_process_fork` and `sched_process_exit`: a process forked by a
//! member of a recorded workload (or by its first process) joins the
//! workload; a member leaves when its thread-group leader exits.
use aya_ebpf::{macros::btf_tracepoint, programs::BtfTracePointContext};
use syscensus_common::{RowKey, abi, state};

use crate::{
    maps::{MEMBERS, ROWS, filter_hit},
    members::{add_member, is_member},
    task::{field, offset, task_cgroup_id},
};

/// Attached to `sched_process_fork`: `(struct task_struct *parent, struct
/// task_struct *child)`, for new processes and threads alike, before the
/// child first runs.
#[btf_tracepoint(function = "sched_process_fork")]
pub fn sched_process_fork(ctx: BtfTracePointContext) -> i32 {
    if offset!(direct_cgroup_id) == 0 {
        return 0;
    }
    let parent: *const u8 = ctx.arg(0);
    let child: *const u8 = ctx.arg(1);
    // SAFETY: BTF pointers from the tracepoint's arguments.
    let (parent_tgid, child_tgid): (u32, u32) = unsafe {
        (
            field(parent, offset!(task_tgid)),
            field(child, offset!(task_tgid)),
        )
    };
    if parent_tgid == child_tgid {
        // A new thread: it shares its process's membership.
        return 0;
    }
    // SAFETY: BTF pointers from the tracepoint's arguments.
    let cgroup_id = unsafe { task_cgroup_id(child) };
    if !filter_hit(cgroup_id) {
        return 0;
    }
    let Some(row) = ROWS.get_ptr_mut(RowKey::new(cgroup_id, abi::NATIVE)) else {
        return 0;
    };
    // SAFETY: `row` points into a live map value of type `Row`.
    if unsafe { (*row).state } != state::RECORDING {
        return 0;
    }
    // A child created in this cgroup by a member (not by a process outside
    // it, as CLONE_INTO_CGROUP allows).
    // SAFETY: BTF pointer from the tracepoint's arguments.
    if unsafe { task_cgroup_id(parent) } == cgroup_id && is_member(row, cgroup_id, parent_tgid) {
        add_member(row, cgroup_id, child_tgid);
    }
    0
}

/// Attached to `sched_process_exit`: `(struct task_struct *p, ...)`, for every
/// exiting thread. The member goes when its thread-group leader exits.
#[btf_tracepoint(function = "sched_process_exit")]
pub fn sched_process_exit(ctx: BtfTracePointContext) -> i32 {
    let task: *const u8 = ctx.arg(0);
    // SAFETY: a BTF pointer from the tracepoint's arguments.
    let (tgid, pid): (u32, u32) = unsafe {
        (
            field(task, offset!(task_tgid)),
            field(task, offset!(task_pid)),
        )
    };
    if tgid == pid {
        let _ = MEMBERS.remove(tgid);
    }
    0
}
