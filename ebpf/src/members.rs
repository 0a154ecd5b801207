//! Who a process in a recorded cgroup is. The workload is the process whose
//! exec started the recording and everything forked from it since, whatever
//! cgroup moves or reparenting happen later. A process that enters the
//! cgroup from outside and completes an exec there starts a session of its
//! own (an exec session: `kubectl exec`, `runc exec`, an exec probe; or,
//! before the entrypoint, an OCI hook), which what it forks joins. The
//! runtime's helper that enters for an exec session (runc's `runc init`,
//! which runs inside the cgroup before it execs the session's command) is in
//! no session: membership is given at fork and exec, never taken from where
//! a process sits.
use syscensus_common::{Member, Row, counter, flag};

use crate::maps::{MEMBERS, count};

/// Whose process `tgid` is in the recorded cgroup `cgroup_id` (whose
/// workload's native row is `row`): `Some(0)` for the workload, `Some(id)`
/// for session `id`, `None` for an outsider. The workload's first process is
/// found without a map lookup.
#[inline(always)]
pub fn session_of(row: *const Row, cgroup_id: u64, tgid: u32) -> Option<u32> {
    // SAFETY: `row` points into a live map value of type `Row`.
    if unsafe { (*row).init_tgid } == tgid {
        return Some(0);
    }
    member_of(cgroup_id, tgid).map(|m| m.session)
}

/// The membership of process `tgid` in the recorded cgroup `cgroup_id`, if
/// it has one there (the workload's first process has none: see
/// [`session_of`]).
#[inline(always)]
pub fn member_of(cgroup_id: u64, tgid: u32) -> Option<Member> {
    let member = MEMBERS.get_ptr(tgid)?;
    // SAFETY: points into a live map value.
    let member = unsafe { *member };
    (member.cgroup_id == cgroup_id).then_some(member)
}

/// Adds process `tgid` to `member`'s workload or session; a full map is
/// flagged in the workload's native row `row` and counted.
#[inline(always)]
pub fn add_member(row: *mut Row, tgid: u32, member: &Member) {
    if MEMBERS.insert(tgid, member, 0).is_ok() {
        count(counter::MEMBERS_ADDED);
    } else {
        // SAFETY: `row` points into a live map value of type `Row`.
        unsafe { (*row).flags[flag::MEMBER_LOST] = 1 };
        count(counter::MEMBERS_FULL);
    }
}
