//! The refusal watch's maps and what its hooks share: which containers are
//! watched under which profile, and the count of what their profiles
//! refused, per (container, ABI, syscall), with one event for the first
//! refusal of each. Attached only while a container is watched.
//!
//! The discipline is the recorder's: a prefilter byte first, so that a
//! process in any other cgroup pays one byte read; no event per syscall; no
//! atomic read-modify-write (per-CPU counters, summed by userspace).
use aya_ebpf::{
    helpers::{bpf_get_current_comm, bpf_get_current_pid_tgid, bpf_ktime_get_ns},
    macros::map,
    maps::{Array, HashMap, PerCpuArray, PerCpuHashMap, RingBuf},
};
use syscensus_common::{
    FILTER_SLOTS, RowKey, X32_SYSCALL_BIT, abi, filter_slot,
    refusal::{
        POLICIES_CAPACITY, Policy, REFUSAL_EVENTS_BYTES, REFUSED_CAPACITY, RefusalCount,
        RefusalEvent, RefusalKey, WatchConfig, policy_flag, watch_counter,
    },
};

use crate::task::{field, in_compat_syscall};

/// `BPF_F_MMAPABLE`: userspace maps the array into its memory.
const BPF_F_MMAPABLE: u32 = 1 << 10;
/// `BPF_F_NO_PREALLOC`: entries are allocated as they are inserted, so that
/// the watch costs no memory while nothing is watched.
const BPF_F_NO_PREALLOC: u32 = 1;
/// `BPF_NOEXIST`: create the element only if it is absent.
const BPF_NOEXIST: u64 = 1;
/// `EEXIST`: another CPU created the element first.
const EEXIST: i32 = 17;

/// What the watch needs from the running kernel (struct offsets, the ABIs'
/// `AUDIT_ARCH_*`), found by the agent in its BTF and written here before
/// the program is loaded; `.rodata` is frozen after load, so the verifier
/// sees constants. Read one field at a time with [`config`].
#[unsafe(no_mangle)]
pub static WATCH_CONFIG: WatchConfig = WatchConfig {
    regs_nr: 0,
    regs_nr_bytes: 0,
    siginfo_code: 0,
    siginfo_syscall: 0,
    siginfo_arch: 0,
    native_audit_arch: 0,
    compat_audit_arch: 0,
    task_seccomp_mode: 0,
    task_flags: 0,
    task_exit_code: 0,
    _pad: [0; 2],
};

/// Reads one field of [`WATCH_CONFIG`] (a volatile read, so that the
/// compiler does not fold in the defaults).
macro_rules! config {
    ($field:ident) => {
        $crate::task::read_offset(&raw const $crate::watch::WATCH_CONFIG.$field)
    };
}
pub(crate) use config;

/// How each watched container's profile treats each syscall number, per
/// ABI. Key: (the container's cgroup id, ABI). Written by userspace when it
/// watches a container (an ABI the profile does not list has no entry: the
/// filter kills its syscalls, which the signal hook sees), removed when it
/// stops; the kernel program only sets the flags of the native entry.
#[map]
pub static POLICIES: HashMap<RowKey, Policy> =
    HashMap::with_max_entries(POLICIES_CAPACITY, BPF_F_NO_PREALLOC);

/// Prefilter of the watch: byte `cgroup_id % FILTER_SLOTS` is set for every
/// watched cgroup. Set by userspace (through a memory mapping) before it
/// writes a policy, cleared once no policy uses the slot. A false positive
/// just costs the hash lookup.
#[map]
pub static WATCH_FILTER: Array<[u8; FILTER_SLOTS]> = Array::with_max_entries(1, BPF_F_MMAPABLE);

/// Refusals per (container, ABI, syscall), per CPU: created by the kernel
/// program at the first refusal (whose creator alone sends the event),
/// incremented on this CPU after that; read and removed by userspace.
#[map]
pub static REFUSED: PerCpuHashMap<RefusalKey, RefusalCount> =
    PerCpuHashMap::with_max_entries(REFUSED_CAPACITY, BPF_F_NO_PREALLOC);

/// `RefusalEvent`s: the first refusal of each (container, ABI, syscall),
/// with the process's name. Read by userspace only.
#[map]
pub static REFUSAL_EVENTS: RingBuf = RingBuf::with_byte_size(REFUSAL_EVENTS_BYTES, 0);

/// The watch's counters (see `syscensus_common::refusal::watch_counter`),
/// per CPU. Incremented by the kernel program, summed and never cleared by
/// userspace.
#[map]
pub static WATCH_COUNTERS: PerCpuArray<u64> =
    PerCpuArray::with_max_entries(watch_counter::COUNT, 0);

/// Adds one to a watch counter.
#[inline(always)]
pub fn count(index: u32) {
    if let Some(value) = WATCH_COUNTERS.get_ptr_mut(index) {
        // SAFETY: a per-CPU array value, only touched by this CPU with
        // preemption disabled in a tracepoint.
        unsafe { *value += 1 };
    }
}

/// Whether a cgroup id passes the watch's prefilter.
#[inline(always)]
pub fn filter_hit(cgroup_id: u64) -> bool {
    let Some(slots) = WATCH_FILTER.get_ptr(0) else {
        return false;
    };
    // SAFETY: `filter_slot` is below FILTER_SLOTS, the array's length.
    unsafe { *slots.cast::<u8>().add(filter_slot(cgroup_id)) != 0 }
}

/// The watched container a cgroup belongs to. A container's own cgroup is
/// its key; a cgroup below it (a runtime's `container` sub-cgroup, a
/// workload that moves itself) is to resolve to the container here, through
/// the recorder's child-cgroup map, with its prefilter slot set when it is
/// made below a watched container.
#[inline(always)]
pub fn container_of(cgroup_id: u64) -> u64 {
    cgroup_id
}

/// The syscall number in `regs` as `syscall_get_nr` reads it; `None` if
/// unknown or negative (-1 after rt_sigreturn, and for a syscall a tracer
/// skipped).
///
/// # Safety
/// `regs` must be a BTF pointer to a `struct pt_regs`.
#[inline(always)]
pub unsafe fn regs_nr(regs: *const u8) -> Option<u64> {
    let offset = config!(regs_nr);
    if offset == 0 {
        return None;
    }
    // SAFETY: the verifier checks the load against `struct pt_regs`.
    let nr: i64 = unsafe {
        if config!(regs_nr_bytes) == 4 {
            i64::from(field::<i32>(regs, offset))
        } else {
            field::<i64>(regs, offset)
        }
    };
    (nr >= 0).then_some(nr as u64)
}

/// The ABI and the number (x32: without its bit) of syscall `id` made by
/// `task`, the current task, whose user registers are `regs`.
#[inline(always)]
pub fn split_abi(task: *const u8, regs: *const u8, id: u64) -> (u32, u64) {
    if id & X32_SYSCALL_BIT != 0 {
        (abi::X32, id & !X32_SYSCALL_BIT)
    } else if in_compat_syscall(task, regs) {
        (abi::COMPAT, id)
    } else {
        (abi::NATIVE, id)
    }
}

/// The policy of a watched container for one ABI.
#[inline(always)]
pub fn policy(container: u64, abi: u32) -> Option<*mut Policy> {
    POLICIES.get_ptr_mut(RowKey::new(container, abi))
}

/// A refusal: what `refuse` needs to count it and, the first time, to name
/// who was refused.
pub struct Refusal {
    pub container: u64,
    pub task_cgroup_id: u64,
    pub abi: u32,
    pub nr: u32,
    pub kind: u32,
    pub ret: i64,
}

/// Counts a refusal of a watched container. The first one of its
/// (container, ABI, syscall) creates the entry and sends an event; later
/// ones add one to this CPU's count. Two CPUs racing on the first refusal
/// both try to create it: one wins and sends the event, the other counts.
/// `native` is the container's native policy, flagged when the map is full.
#[inline(always)]
pub fn refuse(refusal: &Refusal, native: *mut Policy) {
    let key = RefusalKey {
        cgroup_id: refusal.container,
        abi: refusal.abi,
        nr: refusal.nr,
    };
    // SAFETY: no preconditions.
    let now = unsafe { bpf_ktime_get_ns() };
    if add(&key, now) {
        return;
    }
    let first = RefusalCount {
        count: 1,
        last_ns: now,
    };
    match REFUSED.insert(key, first, BPF_NOEXIST) {
        Ok(()) => {
            count(watch_counter::REFUSED);
            count(watch_counter::FIRST);
            send_event(refusal, now);
        }
        Err(error) if error == -EEXIST && add(&key, now) => {}
        Err(_) => {
            // SAFETY: `native` points into a live map value of type `Policy`.
            unsafe {
                if (*native).flags[policy_flag::LOST] == 0 {
                    (*native).flags[policy_flag::LOST] = 1;
                }
            }
            count(watch_counter::MAP_FULL);
        }
    }
}

/// Adds one to this CPU's count of an existing entry.
#[inline(always)]
fn add(key: &RefusalKey, now: u64) -> bool {
    let Some(value) = REFUSED.get_ptr_mut(key) else {
        return false;
    };
    // SAFETY: this CPU's value of a per-CPU map, touched only by this CPU
    // with preemption disabled in a tracepoint.
    unsafe {
        (*value).count += 1;
        (*value).last_ns = now;
    }
    count(watch_counter::REFUSED);
    true
}

/// Tells userspace about the first refusal of a (container, ABI, syscall).
#[inline(always)]
fn send_event(refusal: &Refusal, now: u64) {
    let Some(mut entry) = REFUSAL_EVENTS.reserve::<RefusalEvent>(0) else {
        count(watch_counter::EVENTS_LOST);
        return;
    };
    let pid_tgid = bpf_get_current_pid_tgid();
    let comm = bpf_get_current_comm().unwrap_or([0; 16]);
    entry.write(RefusalEvent {
        cgroup_id: refusal.container,
        task_cgroup_id: refusal.task_cgroup_id,
        time_ns: now,
        ret: refusal.ret,
        abi: refusal.abi,
        nr: refusal.nr,
        tgid: (pid_tgid >> 32) as u32,
        pid: pid_tgid as u32,
        kind: refusal.kind,
        _pad: 0,
        comm,
    });
    entry.submit(0);
}
