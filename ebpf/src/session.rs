//! Exec sessions (`runc exec`, `kubectl exec`): processes that enter a
//! recorded container from outside after its recording started. They, and
//! their descendants, are excluded from the recording, from the moment they
//! enter: a runtime's exec helper (`runc init`) makes its own calls inside
//! the container's cgroup before it execs the session's command, and those
//! are no more the workload's than the command is.
use syscensus_common::{Row, RowKey, abi, counter, flag, state};

use crate::maps::{EXCLUDED, ROWS, count, filter_hit};

/// A process (`tgid`) entered `cgroup_id` from another cgroup: moved in
/// through `cgroup.procs`, or created there by a parent outside
/// (`CLONE_INTO_CGROUP`).
#[inline(always)]
pub fn entered_from_outside(cgroup_id: u64, tgid: u32) {
    if !filter_hit(cgroup_id) {
        return;
    }
    let Some(row) = ROWS.get_ptr_mut(RowKey::new(cgroup_id, abi::NATIVE)) else {
        return;
    };
    // SAFETY: `row` points into a live map value of type `Row`.
    unsafe {
        if (*row).state != state::RECORDING {
            // The runtime is still setting the container up: the first exec
            // starts the recording and names the workload's process.
            return;
        }
        if (*row).init_tgid == 0 {
            // Recording since userspace marked the cgroup, with nobody in it:
            // the first process in is the workload's.
            (*row).init_tgid = tgid;
            return;
        }
        if (*row).init_tgid == tgid {
            return;
        }
    }
    exclude(row, cgroup_id, tgid);
}

/// Excludes process `tgid` from the recording of `cgroup_id`.
#[inline(always)]
pub fn exclude(row: *mut Row, cgroup_id: u64, tgid: u32) {
    if EXCLUDED.get_ptr(tgid).is_some() {
        return;
    }
    // SAFETY: `row` points into a live map value of type `Row`.
    unsafe {
        if EXCLUDED.insert(tgid, cgroup_id, 0).is_ok() {
            (*row).flags[flag::EXEC_SESSION] = 1;
            count(counter::EXEC_SESSIONS);
        } else {
            (*row).flags[flag::SESSION_LOST] = 1;
            count(counter::SESSIONS_LOST);
        }
    }
}
