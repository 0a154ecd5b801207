//! `sys_enter`: one byte per (recorded cgroup, ABI, session, syscall number).
use aya_ebpf::{macros::btf_tracepoint, programs::BtfTracePointContext};
use syscensus_common::{Row, RowKey, SYSCALL_SLOTS, abi, classify_syscall, counter, flag, state};

use crate::{
    maps::{ROWS, ZERO_ROW, count, filter_hit, resolve},
    members::{member_of, session_of},
    task::{current_cgroup_id, current_task, field, in_compat_syscall, offset},
};

/// `BPF_NOEXIST`: create the element only if it is absent.
const BPF_NOEXIST: u64 = 1;

/// Attached to the `sys_enter` tracepoint: `(struct pt_regs *regs, long id)`.
#[btf_tracepoint(function = "sys_enter")]
pub fn sys_enter(ctx: BtfTracePointContext) -> i32 {
    let task = current_task();
    let cgroup_id = current_cgroup_id(task);
    // The cheap test first: almost every process on a node is not recorded.
    if !filter_hit(cgroup_id) {
        return 0;
    }
    let regs: *const u8 = ctx.arg(0);
    let id: i64 = ctx.arg(1);
    record(task, regs, cgroup_id, id);
    0
}

#[inline(always)]
fn record(task: *const u8, regs: *const u8, cgroup_id: u64, id: i64) {
    let Some((owner, row)) = resolve(cgroup_id) else {
        return;
    };
    // SAFETY: `row` points into a live map value of type `Row`.
    let recording = unsafe { (*row).state } == state::RECORDING;
    let session = if offset!(direct_cgroup_id) != 0 {
        // SAFETY: the current task is a BTF pointer.
        let tgid: u32 = unsafe { field(task, offset!(task_tgid)) };
        if recording {
            // The workload's processes and the sessions'.
            match session_of(row, owner, tgid) {
                Some(session) => session,
                None => {
                    outsider(row);
                    return;
                }
            }
        } else {
            // Before the entrypoint only hooks are recorded; the runtime's
            // own set-up is not.
            match member_of(owner, tgid) {
                Some(member) if member.session != 0 => member.session,
                _ => return,
            }
        }
    } else if recording {
        // Without the offsets everything in the cgroup counts.
        0
    } else {
        return;
    };
    if id < 0 {
        out_of_range(row);
        return;
    }
    let id = id as u64;
    let (key_abi, nr) = classify_syscall(id, || in_compat_syscall(task, regs));
    if nr >= SYSCALL_SLOTS as u64 {
        out_of_range(row);
        return;
    }
    let target = if key_abi == abi::NATIVE && session == 0 {
        row
    } else {
        match other_row(owner, key_abi, session) {
            Some(other) => other,
            None => {
                // SAFETY: as above.
                unsafe { (*row).flags[flag::ROW_LOST] = 1 };
                count(counter::ROW_MAP_FULL);
                return;
            }
        }
    };
    // SAFETY: `nr < SYSCALL_SLOTS`, the length of `seen`. Reading first keeps
    // the cache line clean once the syscall is known.
    unsafe {
        let byte = (*target).seen.as_mut_ptr().add(nr as usize);
        if *byte == 0 {
            *byte = 1;
        }
    }
}

/// Another row of a recorded cgroup (a compat or x32 ABI, or a session's),
/// created on its first syscall. A session's native row is made when the
/// session starts; this makes it only if that failed.
#[inline(always)]
fn other_row(cgroup_id: u64, key_abi: u32, session: u32) -> Option<*mut Row> {
    let key = RowKey::session(cgroup_id, key_abi, session);
    if let Some(row) = ROWS.get_ptr_mut(key) {
        return Some(row);
    }
    let zero = ZERO_ROW.get(0)?;
    // Another CPU may create it first: that is fine, the lookup below finds
    // whichever row won.
    let _ = ROWS.insert(key, zero, BPF_NOEXIST);
    ROWS.get_ptr_mut(key)
}

/// A syscall of a process that is neither the workload's nor a session's.
#[inline(always)]
fn outsider(row: *mut Row) {
    // SAFETY: `row` points into a live map value of type `Row`.
    unsafe {
        if (*row).flags[flag::OUTSIDER] == 0 {
            (*row).flags[flag::OUTSIDER] = 1;
        }
    }
    count(counter::OUTSIDER_SYSCALLS);
}

#[inline(always)]
fn out_of_range(row: *mut Row) {
    // SAFETY: `row` points into a live map value of type `Row`.
    unsafe {
        if (*row).flags[flag::OUT_OF_RANGE] == 0 {
            (*row).flags[flag::OUT_OF_RANGE] = 1;
        }
    }
    count(counter::OUT_OF_RANGE);
}
