//! `sys_enter`: one byte per (recorded cgroup, ABI, session, syscall number).
use aya_ebpf::{macros::btf_tracepoint, programs::BtfTracePointContext};
use syscensus_common::{
    Row, RowKey, SEEN_ENTRIES, SEEN_WORDS, SYSCALL_SLOTS, Seen, abi, classify_syscall, counter,
    flag, state,
};

use crate::{
    maps::{EPOCH, ROWS, SEEN, ZERO_ROW, count, filter_hit, resolve},
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
    // Read before the row is looked up (see `Seen`).
    let cache = thread_cache(task);
    if let Some(cache) = &cache
        && id >= 0
    {
        let (key_abi, nr) = classify_syscall(id as u64, || in_compat_syscall(task, regs));
        if key_abi == abi::NATIVE && nr < SYSCALL_SLOTS as u64 && cache.has(cgroup_id, nr) {
            // Already set in the row it goes to.
            return 0;
        }
    }
    record(task, regs, cgroup_id, id, cache.as_ref());
    0
}

/// The current thread's entry of `SEEN`, with what names it.
struct ThreadCache {
    entry: *mut Seen,
    pid: u32,
    start_time: u64,
    epoch: u64,
}

/// The current thread's cache entry, with the rows' epoch read now; `None`
/// where the thread's start time is unknown.
#[inline(always)]
fn thread_cache(task: *const u8) -> Option<ThreadCache> {
    let start_offset = offset!(task_start_time);
    if start_offset == 0 {
        return None;
    }
    // SAFETY: the current task is a BTF pointer.
    let (pid, start_time): (u32, u64) =
        unsafe { (field(task, offset!(task_pid)), field(task, start_offset)) };
    let epoch = *EPOCH.get(0)?;
    let entry = SEEN.get_ptr_mut(pid & (SEEN_ENTRIES - 1))?;
    Some(ThreadCache {
        entry,
        pid,
        start_time,
        epoch,
    })
}

impl ThreadCache {
    /// Whether the entry is this thread's, in cgroup `cgroup_id` and this
    /// epoch.
    #[inline(always)]
    fn owns(&self, cgroup_id: u64) -> bool {
        // SAFETY: `entry` points into this CPU's live map value.
        unsafe {
            (*self.entry).pid == self.pid
                && (*self.entry).start_time == self.start_time
                && (*self.entry).cgroup_id == cgroup_id
                && (*self.entry).epoch == self.epoch
        }
    }

    /// Whether native syscall `nr` (below `SYSCALL_SLOTS`) is known to be set
    /// in the row this thread's syscalls in `cgroup_id` go to.
    #[inline(always)]
    fn has(&self, cgroup_id: u64, nr: u64) -> bool {
        if !self.owns(cgroup_id) {
            return false;
        }
        let Some(word) = bits_word(self.entry, nr) else {
            return false;
        };
        // SAFETY: points into this CPU's live map value.
        unsafe { *word & (1 << (nr & 63)) != 0 }
    }

    /// Notes that native syscall `nr` (below `SYSCALL_SLOTS`) is set in the
    /// workload's native row this thread's syscalls in `cgroup_id` go to.
    #[inline(always)]
    fn note(&self, cgroup_id: u64, nr: u64) {
        let entry = self.entry;
        if !self.owns(cgroup_id) {
            // SAFETY: as in `owns`.
            unsafe {
                let bits = (*entry).bits.as_mut_ptr();
                for word in 0..SEEN_WORDS {
                    // Volatile: a loop the compiler would make a memset of,
                    // a byte at a time.
                    bits.add(word).write_volatile(0);
                }
                (*entry).pid = self.pid;
                (*entry).start_time = self.start_time;
                (*entry).cgroup_id = cgroup_id;
                (*entry).epoch = self.epoch;
            }
        }
        if let Some(word) = bits_word(entry, nr) {
            // SAFETY: points into this CPU's live map value.
            unsafe { *word |= 1 << (nr & 63) };
        }
    }
}

/// The word of `entry`'s bits that holds syscall `nr`, if in range. The
/// index goes through the stack so that the verifier sees the bound checked
/// here (the compiler knows `nr < SYSCALL_SLOTS` already, and would fold
/// the check into a mask whose range the verifier overestimates).
#[inline(always)]
fn bits_word(entry: *mut Seen, nr: u64) -> Option<*mut u64> {
    let index = nr >> 6;
    // SAFETY: a local.
    let index = unsafe { core::ptr::read_volatile(&raw const index) };
    if index >= SEEN_WORDS as u64 {
        return None;
    }
    // SAFETY: `index < SEEN_WORDS`, the length of `bits`.
    Some(unsafe { (*entry).bits.as_mut_ptr().add(index as usize) })
}

#[inline(always)]
fn record(task: *const u8, regs: *const u8, cgroup_id: u64, id: i64, cache: Option<&ThreadCache>) {
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
    if key_abi == abi::NATIVE
        && session == 0
        && let Some(cache) = cache
    {
        // The workload's native row: the next time, no lookup.
        cache.note(cgroup_id, nr);
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
