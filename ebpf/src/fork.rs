//! `sched_process_fork` and `sched_process_exit`: a process forked by a
//! process of a recorded workload or session joins it; a member leaves when
//! the last thread of its process exits (not its leader: `pthread_exit` from
//! `main` leaves the other threads running, and an exec from another thread
//! ends the leader while the process goes on).
use aya_ebpf::{macros::btf_tracepoint, programs::BtfTracePointContext};
use syscensus_common::{Member, session, state};

use crate::{
    maps::{MEMBERS, filter_hit, resolve},
    members::{add_member, member_of},
    task::{field, group_dead, offset, task_cgroup_id},
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
    let Some((owner, row)) = resolve(cgroup_id) else {
        return 0;
    };
    // A child made in this container (its cgroup or one below it, as
    // CLONE_INTO_CGROUP allows) by a process of it, not by one outside.
    // SAFETY: BTF pointer from the tracepoint's arguments.
    let parent_cgroup = unsafe { task_cgroup_id(parent) };
    if parent_cgroup != cgroup_id
        && !(filter_hit(parent_cgroup) && resolve(parent_cgroup).is_some_and(|(o, _)| o == owner))
    {
        return 0;
    }
    // SAFETY: `row` points into a live map value of type `Row`.
    let (recording, init_tgid) = unsafe { ((*row).state == state::RECORDING, (*row).init_tgid) };
    if recording && init_tgid == parent_tgid {
        add_member(row, child_tgid, &Member::new(owner, 0, session::WORKLOAD));
    } else if let Some(member) = member_of(owner, parent_tgid) {
        // The workload's once recording; a session's (a hook's) any time.
        if recording || member.session != 0 {
            add_member(row, child_tgid, &member);
        }
    }
    0
}

/// Attached to `sched_process_exit`: `(struct task_struct *p, ...)`, for every
/// exiting thread. The member goes when its process's last thread exits.
#[btf_tracepoint(function = "sched_process_exit")]
pub fn sched_process_exit(ctx: BtfTracePointContext) -> i32 {
    let task: *const u8 = ctx.arg(0);
    // SAFETY: a BTF pointer from the tracepoint's arguments.
    unsafe {
        let (tgid, pid): (u32, u32) = (
            field(task, offset!(task_tgid)),
            field(task, offset!(task_pid)),
        );
        if group_dead(task, tgid, pid) {
            let _ = MEMBERS.remove(tgid);
        }
    }
    0
}
