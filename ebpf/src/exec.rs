//! `sched_process_exec`: a marked cgroup starts recording at the first exec
//! completed inside it: the container's entrypoint (runc and crun both exec
//! it from a process already in the container's cgroup, after their set-up),
//! or the command given to `syscensus record`.
use aya_ebpf::{macros::btf_tracepoint, programs::BtfTracePointContext};
use syscensus_common::{RowKey, abi, counter, state};

use crate::maps::{ROWS, count, filter_hit};

/// Attached to `sched_process_exec`: `(struct task_struct *p, pid_t old_pid,
/// struct linux_binprm *bprm)`, fired after the new image is in place.
#[btf_tracepoint(function = "sched_process_exec")]
pub fn sched_process_exec(_ctx: BtfTracePointContext) -> i32 {
    let cgroup_id = crate::task::current_cgroup_id();
    if !filter_hit(cgroup_id) {
        return 0;
    }
    let Some(row) = ROWS.get_ptr_mut(RowKey::new(cgroup_id, abi::NATIVE)) else {
        return 0;
    };
    // SAFETY: `row` points into a live map value of type `Row`.
    unsafe {
        if (*row).state == state::WAITING_FOR_EXEC {
            (*row).state = state::RECORDING;
            count(counter::ARMED);
        }
    }
    0
}
