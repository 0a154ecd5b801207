//! The maps, their keys and values; names and capacities come from
//! `syscensus-common` so that the agent agrees.
use aya_ebpf::{
    macros::map,
    maps::{Array, HashMap, PerCpuArray, RingBuf},
};
use syscensus_common::{
    EVENTS_BYTES, FILTER_SLOTS, MEMBERS_CAPACITY, ROOT_PATH_BYTES, ROWS_CAPACITY, Row, RowKey,
    WATCH_CAPACITY, counter, filter_slot,
};

/// `BPF_F_MMAPABLE`: userspace maps the array into its memory.
const BPF_F_MMAPABLE: u32 = 1 << 10;

/// What each recorded cgroup did, per ABI. Key: (cgroup id, ABI). Native
/// rows are created by userspace when it marks a cgroup, or by
/// `cgroup_mkdir` for a cgroup made below a watched one; `sys_enter` sets
/// bytes and creates compat and x32 rows on their first syscall;
/// `sched_process_exec` starts the recording. Userspace deletes a cgroup's
/// rows when its recording ends.
#[map]
pub static ROWS: HashMap<RowKey, Row> = HashMap::with_max_entries(ROWS_CAPACITY, 0);

/// Prefilter, so that processes nobody records pay one byte read instead of
/// a hash lookup: byte `cgroup_id % FILTER_SLOTS` is set for every cgroup with
/// rows. Set before a row is created, by `cgroup_mkdir` or by userspace
/// (through a memory mapping); cleared by userspace once no row uses the
/// slot. A false positive just costs the hash lookup.
#[map]
pub static FILTER: Array<[u8; FILTER_SLOTS]> = Array::with_max_entries(1, BPF_F_MMAPABLE);

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

/// Workload processes other than the first: key thread-group id, value the
/// cgroup id of their workload. Added by `sched_process_fork` (children of
/// the first process or of members) and by userspace (processes already
/// running when a cgroup is marked late); removed by `sched_process_exit`
/// and by userspace when the recording ends.
#[map]
pub static MEMBERS: HashMap<u32, u64> =
    HashMap::with_max_entries(MEMBERS_CAPACITY, BPF_F_NO_PREALLOC);

/// `CgroupEvent`s: cgroups marked by `cgroup_mkdir`, with their paths, for
/// userspace to resolve. Read by userspace only.
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
