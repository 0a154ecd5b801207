//! The maps, their keys and values; names and capacities come from
//! `syscensus-common` so that the agent agrees.
use aya_ebpf::{
    macros::map,
    maps::{Array, HashMap, PerCpuArray, RingBuf},
};
use syscensus_common::{
    ALIAS_CAPACITY, EVENTS_BYTES, FILTER_SLOTS, MEMBERS_CAPACITY, Member, ROOT_PATH_BYTES,
    ROWS_CAPACITY, Row, RowKey, SEEN_ENTRIES, Seen, WATCH_CAPACITY, abi, counter, filter_slot,
};

/// `BPF_F_MMAPABLE`: userspace maps the array into its memory.
const BPF_F_MMAPABLE: u32 = 1 << 10;

/// What each recorded cgroup did, per ABI and session. Key: (cgroup id,
/// ABI, session). The workload's native rows are created by userspace when
/// it marks a cgroup, or by `cgroup_mkdir` for a cgroup made below a
/// watched one; `sched_process_exec` starts the recording and creates a
/// session's native row when the session starts; `sys_enter` sets bytes and
/// creates the other rows on their first syscall. Userspace deletes a
/// session's rows once no process of it is left, and a cgroup's rows when
/// its recording ends.
#[map]
pub static ROWS: HashMap<RowKey, Row> = HashMap::with_max_entries(ROWS_CAPACITY, 0);

/// Prefilter, so that processes nobody records pay one byte read instead of
/// a hash lookup: byte `cgroup_id % FILTER_SLOTS` is set for every cgroup with
/// rows. Set before a row is created, by `cgroup_mkdir` or by userspace
/// (through a memory mapping); cleared by userspace once no row uses the
/// slot. A false positive just costs the hash lookup.
#[map]
pub static FILTER: Array<[u8; FILTER_SLOTS]> = Array::with_max_entries(1, BPF_F_MMAPABLE);

/// The recorded path's cache (see `syscensus_common::Seen`): per CPU, so
/// that each entry has one writer, and an array, whose lookups the verifier
/// inlines (a `ROWS` lookup is a call into the hash table's code, most of
/// what recording a syscall costs). Entry `pid % SEEN_ENTRIES`.
#[map]
pub static SEEN: PerCpuArray<Seen> = PerCpuArray::with_max_entries(SEEN_ENTRIES, 0);

/// The rows' epoch (see `syscensus_common::EPOCH_MAP`): changed by
/// userspace after it changes `ROWS`, `MEMBERS` or `ALIAS`, which makes
/// every `SEEN` entry filled before stale.
#[map]
pub static EPOCH: Array<u64> = Array::with_max_entries(1, 0);

/// Event counters (see `syscensus_common::counter`), per CPU so that no atomic
/// read-modify-write is needed. Incremented by the kernel program, summed and
/// never cleared by userspace.
#[map]
pub static COUNTERS: PerCpuArray<u64> = PerCpuArray::with_max_entries(counter::COUNT, 0);

/// An all-zero row: the source of the value when the program creates a row
/// (a `Row` does not fit on the 512-byte BPF stack). Never written.
#[map]
pub static ZERO_ROW: Array<Row> = Array::with_max_entries(1, 0);

/// cgroups below which every new cgroup is marked as it is made. Key: cgroup
/// id; value unused. Written by userspace only.
#[map]
pub static WATCH: HashMap<u64, u8> = HashMap::with_max_entries(WATCH_CAPACITY, 0);

/// Paths of cgroups to watch as soon as they are made (zero-terminated;
/// empty entries unused). Written by userspace only.
#[map]
pub static ROOT_PATHS: Array<[u8; ROOT_PATH_BYTES]> =
    Array::with_max_entries(syscensus_common::ROOT_PATHS, 0);

/// `BPF_F_NO_PREALLOC`: entries are allocated as they are inserted.
const BPF_F_NO_PREALLOC: u32 = 1;

/// Recorded processes other than a workload's first: key thread-group id,
/// value whose they are (cgroup and session). Added by `sched_process_exec`
/// (a session's first process), `sched_process_fork` (children of members
/// and of a workload's first process) and userspace (processes already
/// running when a cgroup is marked late); removed by `sched_process_exit`
/// when the last thread of the process exits, and by userspace when the
/// recording ends.
#[map]
pub static MEMBERS: HashMap<u32, Member> =
    HashMap::with_max_entries(MEMBERS_CAPACITY, BPF_F_NO_PREALLOC);

/// cgroups made below a recorded one: key the cgroup's id, value the
/// recorded cgroup's, whose rows hold what runs in it. Added by
/// `cgroup_mkdir` and by userspace (for cgroups that existed when it marked
/// their container); removed by userspace when the container's recording
/// ends.
#[map]
pub static ALIAS: HashMap<u64, u64> = HashMap::with_max_entries(ALIAS_CAPACITY, BPF_F_NO_PREALLOC);

/// `CgroupEvent`s (cgroups marked by `cgroup_mkdir`, with their paths, for
/// userspace to resolve) and `SessionEvent`s (sessions started by
/// `sched_process_exec`, with their command lines). Read by userspace only.
#[map]
pub static EVENTS: RingBuf = RingBuf::with_byte_size(EVENTS_BYTES, 0);

/// Adds one to a counter.
#[inline(always)]
pub fn count(index: u32) {
    if let Some(value) = COUNTERS.get_ptr_mut(index) {
        // SAFETY: a per-CPU array value, only touched by this CPU with
        // preemption disabled in a tracepoint.
        unsafe { *value += 1 };
    }
}

/// Adds one to a counter and returns this CPU's new count.
#[inline(always)]
pub fn count_and_get(index: u32) -> u64 {
    match COUNTERS.get_ptr_mut(index) {
        // SAFETY: as in `count`.
        Some(value) => unsafe {
            *value += 1;
            *value
        },
        None => 0,
    }
}

/// The recorded cgroup a cgroup's syscalls go to, with its workload's
/// native row: the cgroup itself if it has rows, else the cgroup it was
/// made below (see `ALIAS`). Call after the prefilter passed.
#[inline(always)]
pub fn resolve(cgroup_id: u64) -> Option<(u64, *mut Row)> {
    if let Some(row) = ROWS.get_ptr_mut(RowKey::new(cgroup_id, abi::NATIVE)) {
        return Some((cgroup_id, row));
    }
    // SAFETY: a live map value read once.
    let owner = unsafe { *ALIAS.get_ptr(cgroup_id)? };
    ROWS.get_ptr_mut(RowKey::new(owner, abi::NATIVE))
        .map(|row| (owner, row))
}

/// The prefilter byte of a cgroup id.
#[inline(always)]
fn filter_byte(cgroup_id: u64) -> Option<*mut u8> {
    let slots = FILTER.get_ptr_mut(0)?;
    // SAFETY: `filter_slot` is below FILTER_SLOTS, the array's length.
    Some(unsafe { slots.cast::<u8>().add(filter_slot(cgroup_id)) })
}

/// Whether a cgroup id passes the prefilter.
#[inline(always)]
pub fn filter_hit(cgroup_id: u64) -> bool {
    match filter_byte(cgroup_id) {
        // SAFETY: points into the live map value.
        Some(byte) => unsafe { *byte != 0 },
        None => false,
    }
}

/// Sets the prefilter byte of a cgroup id.
#[inline(always)]
pub fn filter_set(cgroup_id: u64) {
    if let Some(byte) = filter_byte(cgroup_id) {
        // SAFETY: points into the live map value.
        unsafe { *byte = 1 };
    }
}
