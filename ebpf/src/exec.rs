//! `sched_process_exec`: a marked cgroup starts recording at the first exec
//! completed inside it: the container's entrypoint (runc and crun both exec
//! it from a process already in the container's cgroup, after their set-up),
//! or the command given to `syscensus record`.
//!
//! The exec'ing process becomes the workload's first process (see
//! `members.rs`). The runtime's own execs do not count: runc re-execs itself
//! from a sealed copy after it has joined the cgroup, in the runtime's mount
//! namespace; the entrypoint always runs in the container's own.
use aya_ebpf::{
    helpers::bpf_get_current_pid_tgid, macros::btf_tracepoint, programs::BtfTracePointContext,
};
use syscensus_common::{RowKey, abi, counter, flag, state};

use crate::{
    maps::{ROWS, count, filter_hit},
    task::{current_cgroup_id, current_task, field, offset, task_mnt_ns},
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
            let creator = (*row).creator_mntns;
            if creator != 0 && task_mnt_ns(task) == creator {
                // The runtime exec'ing in its own namespace: not yet.
                return 0;
            }
            (*row).flags[flag::NO_NEW_PRIVS] = no_new_privs(task);
            (*row).init_tgid = tgid;
            (*row).state = state::RECORDING;
            count(counter::ARMED);
            return 0;
        }
        // Recording since userspace marked the cgroup, with nobody in it
        // yet: the first exec is the workload's.
        if (*row).init_tgid == 0 {
            (*row).init_tgid = tgid;
        }
    }
    0
}

/// `PFA_NO_NEW_PRIVS` (bit 0 of `task_struct.atomic_flags`,
/// include/linux/sched.h at v6.18) of `task`, as 0 or 1.
#[inline(always)]
fn no_new_privs(task: *const u8) -> u8 {
    let offset = offset!(task_atomic_flags);
    if offset == 0 {
        return 0;
    }
    // SAFETY: a BTF pointer to the current task.
    let flags: u64 = unsafe { field(task, offset) };
    (flags & 1) as u8
}
