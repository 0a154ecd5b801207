//! `sched_process_exec`: who an exec completed in a recorded cgroup makes a
//! process.
//!
//! Before the recording starts:
//! - the runtime's own execs do not count: runc re-execs itself from a
//!   sealed copy after it has joined the cgroup, in the runtime's mount
//!   namespace; the container's processes always run in one of their own;
//! - an exec by a process whose parent is in the container too is an OCI
//!   hook (createContainer, startContainer): the runtime's process inside
//!   the container forks it before it execs the entrypoint itself. It starts
//!   a session of kind hook;
//! - the first other exec is the container's entrypoint (its parent, the
//!   runtime or `syscensus record`, is outside): the recording starts and
//!   the process is the workload's first (see `members.rs`).
//!
//! Once recording, an exec by a process that is neither the workload's nor
//! a session's, outside the runtime's mount namespace, starts an exec
//! session (`runc exec`, `kubectl exec`, an exec probe).
//!
//! A session's start is sent to userspace with its command line.
use aya_ebpf::{
    helpers::{
        bpf_get_current_pid_tgid, bpf_get_smp_processor_id, bpf_ktime_get_boot_ns,
        generated::bpf_probe_read_user,
    },
    macros::btf_tracepoint,
    programs::BtfTracePointContext,
};
use syscensus_common::{
    EVENT_ARGV_BYTES, Member, Row, RowKey, SessionEvent, abi, counter, event, flag, session, state,
};

use crate::{
    maps::{EVENTS, ROWS, ZERO_ROW, count, count_and_get, filter_hit, resolve},
    members::{add_member, member_of},
    task::{
        current_cgroup_id, current_task, field, offset, task_args, task_cgroup_id, task_mnt_ns,
    },
};

/// `BPF_NOEXIST`: create the element only if it is absent.
const BPF_NOEXIST: u64 = 1;

/// Attached to `sched_process_exec`: `(struct task_struct *p, pid_t old_pid,
/// struct linux_binprm *bprm)`, fired after the new image is in place.
#[btf_tracepoint(function = "sched_process_exec")]
pub fn sched_process_exec(_ctx: BtfTracePointContext) -> i32 {
    let task = current_task();
    let cgroup_id = current_cgroup_id(task);
    if !filter_hit(cgroup_id) {
        return 0;
    }
    let Some((owner, row)) = resolve(cgroup_id) else {
        return 0;
    };
    let tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
    // SAFETY: `row` points into a live map value of type `Row`; `task` is
    // the current task, a BTF pointer.
    unsafe {
        if (*row).state == state::WAITING_FOR_EXEC {
            let creator = (*row).creator_mntns;
            if creator != 0 && task_mnt_ns(task) == creator {
                // The runtime exec'ing in its own namespace: not yet.
                return 0;
            }
            if member_of(owner, tgid).is_some() {
                // A hook's process exec'ing again: still the hook.
                return 0;
            }
            if parent_owner(task) == Some(owner) {
                start_session(task, owner, row, tgid, session::HOOK);
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
            return 0;
        }
        if (*row).init_tgid == tgid || offset!(direct_cgroup_id) == 0 {
            return 0;
        }
        if member_of(owner, tgid).is_some() {
            // The workload's or a session's process: it stays where it is.
            return 0;
        }
        let creator = (*row).creator_mntns;
        if creator != 0 && task_mnt_ns(task) == creator {
            // The runtime's own exec, in its namespace.
            return 0;
        }
        start_session(task, owner, row, tgid, session::EXEC);
    }
    0
}

/// The recorded cgroup that `task`'s parent's syscalls go to, if any.
///
/// # Safety
/// `task` must be a BTF pointer to a `task_struct`, the offsets known.
#[inline(always)]
unsafe fn parent_owner(task: *const u8) -> Option<u64> {
    if offset!(direct_cgroup_id) == 0 {
        return None;
    }
    let cgroup_id = unsafe {
        let parent: *const u8 = field(task, offset!(task_real_parent));
        task_cgroup_id(parent)
    };
    if !filter_hit(cgroup_id) {
        return None;
    }
    resolve(cgroup_id).map(|(owner, _)| owner)
}

/// Starts a session of kind `kind` in the recorded cgroup `owner` (whose
/// workload's native row is `row`) with the process `tgid` (the current
/// task): a fresh id, its native row, its first member, and an event for
/// userspace with the command line.
///
/// # Safety
/// `task` must be the current task as a BTF pointer; `row` must point into a
/// live map value of type `Row`.
#[inline(always)]
unsafe fn start_session(task: *const u8, owner: u64, row: *mut Row, tgid: u32, kind: u8) {
    // Unique without an atomic: this CPU's count of sessions above the
    // CPU's number. Never 0, the workload's.
    // SAFETY: no preconditions.
    let cpu = unsafe { bpf_get_smp_processor_id() } & ((1 << session::CPU_BITS) - 1);
    let id = ((count_and_get(counter::SESSIONS) as u32) << session::CPU_BITS) | cpu;
    let id = if id == 0 { 1 << session::CPU_BITS } else { id };
    if kind == session::HOOK {
        count(counter::HOOKS);
    }
    // The member first: userspace frees a session's rows once it finds no
    // member of it, and may find the row before the event.
    add_member(row, tgid, &Member::new(owner, id, kind));
    if let Some(zero) = ZERO_ROW.get(0) {
        let key = RowKey::session(owner, abi::NATIVE, id);
        if ROWS.insert(key, zero, BPF_NOEXIST).is_ok()
            && let Some(first) = ROWS.get_ptr_mut(key)
        {
            // SAFETY: the value just made.
            unsafe {
                (*first).state = kind;
                (*first).init_tgid = tgid;
            }
        }
        // Otherwise the map is full: `sys_enter` tries again and flags it.
    }
    // SAFETY: as for this function.
    unsafe { send_session(task, owner, id, tgid, kind) };
}

/// Tells userspace about a session, with its command line as exec'd.
///
/// # Safety
/// `task` must be the current task as a BTF pointer.
#[inline(always)]
unsafe fn send_session(task: *const u8, owner: u64, id: u32, tgid: u32, kind: u8) {
    let Some(mut entry) = EVENTS.reserve::<SessionEvent>(0) else {
        count(counter::EVENTS_LOST);
        return;
    };
    let event = entry.as_mut_ptr();
    // SAFETY: `event` points to reserved ring buffer memory of the right
    // size; the command line is read from the current task's own memory,
    // which exec has just written.
    unsafe {
        (*event).cgroup_id = owner;
        (*event).session = id;
        (*event).kind = event::SESSION;
        (*event).pid = tgid;
        (*event).session_kind = u32::from(kind);
        (*event).boot_ns = bpf_ktime_get_boot_ns();
        (*event).argv_len = 0;
        if let Some((start, end)) = task_args(task) {
            let len = end - start;
            let len = if len > EVENT_ARGV_BYTES as u64 {
                EVENT_ARGV_BYTES as u32
            } else {
                len as u32
            };
            let argv = (*event).argv.as_mut_ptr();
            if bpf_probe_read_user(argv.cast(), len, start as *const _) == 0 {
                (*event).argv_len = len as u16;
            }
        }
    }
    entry.submit(0);
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
