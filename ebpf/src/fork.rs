//! `sched_process_fork` and `sched_process_exit`: the children of an excluded
//! exec session are excluded too; a process created straight into a recorded
//! cgroup by a parent outside it (`CLONE_INTO_CGROUP`) is a session; a
//! session's entry goes when it exits.
use aya_ebpf::{macros::btf_tracepoint, programs::BtfTracePointContext};
use syscensus_common::counter;

use crate::{
    maps::{EXCLUDED, count},
    session::entered_from_outside,
    task::{field, offset, task_cgroup_id},
};

/// Attached to `sched_process_fork`: `(struct task_struct *parent, struct
/// task_struct *child)`, for new processes and threads alike.
#[btf_tracepoint(function = "sched_process_fork")]
pub fn sched_process_fork(ctx: BtfTracePointContext) -> i32 {
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
        // A new thread: its process is already in the map or not.
        return 0;
    }
    let Some(cgroup_id) = EXCLUDED.get_ptr(parent_tgid) else {
        if offset!(direct_cgroup_id) != 0 {
            // SAFETY: BTF pointers from the tracepoint's arguments.
            let (from, into) = unsafe { (task_cgroup_id(parent), task_cgroup_id(child)) };
            if from != into {
                entered_from_outside(into, child_tgid);
            }
        }
        return 0;
    };
    // SAFETY: points into a live map value.
    let cgroup_id = unsafe { *cgroup_id };
    if EXCLUDED.insert(child_tgid, cgroup_id, 0).is_err() {
        count(counter::SESSIONS_LOST);
    }
    0
}

/// Attached to `sched_process_exit`: `(struct task_struct *p, ...)`, for every
/// exiting thread. The entry goes when the thread-group leader exits.
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
        let _ = EXCLUDED.remove(tgid);
    }
    0
}
