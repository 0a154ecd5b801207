//! The maps, their keys and values; names and capacities come from
//! `syscensus-common` so that the agent agrees.
use aya_ebpf::{
    macros::map,
    maps::{Array, HashMap, PerCpuArray},
};
use syscensus_common::{FILTER_WORDS, ROWS_CAPACITY, Row, RowKey, counter};

/// What each recorded cgroup did, per ABI. Key: (cgroup id, ABI). Userspace
/// creates the native row when it marks a cgroup and deletes the cgroup's rows
/// when the recording ends; `sys_enter` sets bytes in existing rows and
/// creates compat and x32 rows on their first syscall; `sched_process_exec`
/// moves a native row from waiting to recording.
#[map]
pub static ROWS: HashMap<RowKey, Row> = HashMap::with_max_entries(ROWS_CAPACITY, 0);

/// Prefilter, so that processes nobody records pay one array read instead of
/// a hash lookup: bit `cgroup_id % FILTER_BITS` is set for every cgroup with
/// rows. Written only by userspace (set before a row is created, cleared after
/// the last row with that bit is gone); a false positive just costs the hash
/// lookup.
#[map]
pub static FILTER: Array<u64> = Array::with_max_entries(FILTER_WORDS, 0);

/// Event counters (see `syscensus_common::counter`), per CPU so that no atomic
/// read-modify-write is needed. Incremented by the kernel program, summed and
/// never cleared by userspace.
#[map]
pub static COUNTERS: PerCpuArray<u64> = PerCpuArray::with_max_entries(counter::COUNT, 0);

/// An all-zero row: the source of the value when `sys_enter` creates a compat
/// or x32 row (a `Row` does not fit on the 512-byte BPF stack). Never written.
#[map]
pub static ZERO_ROW: Array<Row> = Array::with_max_entries(1, 0);

/// Adds one to a counter.
#[inline(always)]
pub fn count(index: u32) {
    if let Some(value) = COUNTERS.get_ptr_mut(index) {
        // SAFETY: a per-CPU array value, only touched by this CPU with
        // preemption disabled in a tracepoint.
        unsafe { *value += 1 };
    }
}

/// Whether a cgroup id passes the prefilter.
#[inline(always)]
pub fn filter_hit(cgroup_id: u64) -> bool {
    let (word, bit) = syscensus_common::filter_slot(cgroup_id);
    match FILTER.get(word) {
        Some(value) => *value & bit != 0,
        None => false,
    }
}
