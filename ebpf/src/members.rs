//! The workload of a recorded cgroup: the process whose exec started the
//! recording and everything forked from it since, whatever cgroup moves or
//! reparenting happen later. Only their syscalls are recorded. A process
//! that enters the cgroup from outside (an exec session: `kubectl exec`,
//! `runc exec`, and the runtime's own helper for it, which runs inside the
//! cgroup before it execs the session's command) is not a member, however
//! early it enters: membership is given at fork, never taken from where a
//! process sits.
use syscensus_common::{Row, counter, flag};

use crate::maps::{MEMBERS, count};

/// Whether process `tgid` belongs to the workload of the cgroup whose row is
/// `row`.
#[inline(always)]
pub fn is_member(row: *const Row, cgroup_id: u64, tgid: u32) -> bool {
    // SAFETY: `row` points into a live map value of type `Row`.
    if unsafe { (*row).init_tgid } == tgid {
        return true;
    }
    MEMBERS.get_ptr(tgid).is_some_and(|owner| {
        // SAFETY: points into a live map value.
        unsafe { *owner == cgroup_id }
    })
}

/// Adds process `tgid` to the workload of `cgroup_id`.
#[inline(always)]
pub fn add_member(row: *mut Row, cgroup_id: u64, tgid: u32) {
    if MEMBERS.insert(tgid, cgroup_id, 0).is_ok() {
        count(counter::MEMBERS_ADDED);
    } else {
        // SAFETY: `row` points into a live map value of type `Row`.
        unsafe { (*row).flags[flag::MEMBER_LOST] = 1 };
        count(counter::MEMBERS_FULL);
    }
}
