//! `sched_process_exec`: a marked cgroup starts recording at the first exec
//! completed inside it: the container's entrypoint (runc and crun both exec
//! it from a process already in the container's cgroup, after their set-up),
//! or the command given to `syscensus record`.
//!
//! A later exec by a process that is not the first one and whose parent is
//! outside the cgroup is an exec session (`runc exec`, `kubectl exec`): that
//! process and its descendants are excluded from the recording.
use aya_ebpf::{
    helpers::bpf_get_current_pid_tgid, macros::btf_tracepoint, programs::BtfTracePointContext,
};
use syscensus_common::{RowKey, abi, counter, flag, state};

use crate::{
    maps::{EXCLUDED, ROWS, count, filter_hit},
    task::{current_cgroup_id, current_task, field, offset, task_cgroup_id},
};

/// Attached to `sched_process_exec`: `(struct task_struct *p, pid_t old_pid,
/// struct linux_binprm *bprm)`, fired after the new image is in place.
#[btf_tracepoint(function = "sched_process_exec")]
pub fn sched_process_exec(_ctx: BtfTracePointContext) -> i32 {
    let task = current_task();
    let cgroup_id = current_cgroup_id(task);
    if !filter_hit(cgroup_id) {
        return 0;
    }
    let Some(row) = ROWS.get_ptr_mut(RowKey::new(cgroup_id, abi::NATIVE)) else {
        return 0;
    };
    let tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
    // SAFETY: `row` points into a live map value of type `Row`.
    unsafe {
        if (*row).state == state::WAITING_FOR_EXEC {
            (*row).init_tgid = tgid;
            (*row).state = state::RECORDING;
            count(counter::ARMED);
            return 0;
        }
        // Recording since userspace marked the cgroup, with nobody in it
        // yet: the first exec is the workload's.
        if (*row).init_tgid == 0 {
            (*row).init_tgid = tgid;
            return 0;
        }
        if (*row).init_tgid == tgid || !parent_outside(task, cgroup_id) {
            return 0;
        }
        if EXCLUDED.get_ptr(tgid).is_some() {
            return 0;
        }
        if EXCLUDED.insert(tgid, cgroup_id, 0).is_ok() {
            (*row).flags[flag::EXEC_SESSION] = 1;
            count(counter::EXEC_SESSIONS);
        } else {
            (*row).flags[flag::SESSION_LOST] = 1;
            count(counter::SESSIONS_LOST);
        }
    }
    0
}

/// Whether the current task's parent is in another cgroup than `cgroup_id`.
/// Without the offsets to tell, no: nothing is excluded.
#[inline(always)]
fn parent_outside(task: *const u8, cgroup_id: u64) -> bool {
    if offset!(direct_cgroup_id) == 0 {
        return false;
    }
    // SAFETY: BTF pointers from the current task, offsets known.
    unsafe {
        let parent: *const u8 = field(task, offset!(task_real_parent));
        task_cgroup_id(parent) != cgroup_id
    }
}
