//! `#[repr(C)]` types and constants shared by the kernel program (`ebpf/`) and
//! the agent, so both sides agree on every map's name, key, value and size.
#![no_std]

use core::mem::size_of;

/// Syscall numbers below this are recorded, one byte each; larger ones are
/// counted as out of range. Covers every ABI's table with room to grow: the
/// highest numbers in use are 469 (x86_64, i386, aarch64) and 547 (x32, after
/// its 0x4000_0000 marker bit is removed).
pub const SYSCALL_SLOTS: usize = 576;

/// The x32 ABI marks its syscall numbers with this bit (`__X32_SYSCALL_BIT`).
pub const X32_SYSCALL_BIT: u64 = 0x4000_0000;

/// The syscall ABI a record belongs to.
///
/// Kept as plain `u32` constants, not a Rust enum, because the value crosses
/// the kernel boundary inside [`RowKey`].
pub mod abi {
    /// The kernel's native 64-bit ABI (x86_64 or aarch64).
    pub const NATIVE: u32 = 0;
    /// 32-bit compat syscalls: ia32 on x86_64 (`int 0x80`, `sysenter`,
    /// 32-bit `syscall`), AArch32 on aarch64.
    pub const COMPAT: u32 = 1;
    /// x32 (x86_64 only): 64-bit registers, 32-bit pointers, numbers marked
    /// with [`X32_SYSCALL_BIT`](super::X32_SYSCALL_BIT).
    pub const X32: u32 = 2;
    /// Number of ABIs.
    pub const COUNT: u32 = 3;
}

/// Key of [`ROWS_MAP`]: one row per (cgroup, ABI).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RowKey {
    /// cgroup v2 id (the inode number of the cgroup's directory).
    pub cgroup_id: u64,
    /// One of the [`abi`] constants.
    pub abi: u32,
    pub _pad: u32,
}
const _: () = assert!(size_of::<RowKey>() == 16);

impl RowKey {
    pub const fn new(cgroup_id: u64, abi: u32) -> Self {
        Self {
            cgroup_id,
            abi,
            _pad: 0,
        }
    }
}

/// Row states, kept in [`Row::state`].
pub mod state {
    /// Marked by userspace; syscalls are not recorded yet (the runtime is
    /// still setting the container up).
    pub const WAITING_FOR_EXEC: u8 = 0;
    /// A process of the cgroup completed an exec: every syscall is recorded.
    pub const RECORDING: u8 = 1;
}

/// Row flags, kept in [`Row::flags`]: each is set once with a plain store, so
/// concurrent CPUs never lose one.
pub mod flag {
    /// A syscall number at or above [`SYSCALL_SLOTS`](super::SYSCALL_SLOTS)
    /// (or negative) was seen; it is not in `seen`.
    pub const OUT_OF_RANGE: usize = 0;
    /// A compat or x32 syscall was seen but its row could not be created
    /// because the map was full.
    pub const ROW_LOST: usize = 1;
    /// Number of flag bytes.
    pub const COUNT: usize = 8;
}

/// Value of [`ROWS_MAP`]: which syscalls a cgroup made, under one ABI.
///
/// One byte per syscall number rather than one bit: setting a byte is a plain
/// store that is idempotent, so CPUs racing on the same row never lose an
/// update and no atomic read-modify-write is needed. The kernel program only
/// writes a byte that is still zero, so after the first call the cache line
/// stays shared and clean.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct Row {
    /// One of the [`state`] constants; meaningful in the native row only.
    pub state: u8,
    /// One byte per [`flag`], 0 or 1.
    pub flags: [u8; flag::COUNT],
    pub _pad: [u8; 7],
    /// `seen[nr] == 1` once syscall `nr` was made.
    pub seen: [u8; SYSCALL_SLOTS],
}
const _: () = assert!(size_of::<Row>() == 16 + SYSCALL_SLOTS);

impl Row {
    /// A row in the given [`state`] with nothing seen.
    pub const fn new(state: u8) -> Self {
        Self {
            state,
            flags: [0; flag::COUNT],
            _pad: [0; 7],
            seen: [0; SYSCALL_SLOTS],
        }
    }
}

/// Indexes into [`COUNTERS_MAP`], a per-CPU array of `u64` that the kernel
/// program increments and userspace sums.
pub mod counter {
    /// Syscalls seen with a number outside `0..SYSCALL_SLOTS`.
    pub const OUT_OF_RANGE: u32 = 0;
    /// Compat or x32 rows that could not be created: the map was full.
    pub const ROW_MAP_FULL: u32 = 1;
    /// Execs that started a recording (rows moved to `RECORDING`).
    pub const ARMED: u32 = 2;
    /// Number of counters.
    pub const COUNT: u32 = 3;
}

/// Name of the map of rows: key [`RowKey`], value [`Row`].
pub const ROWS_MAP: &str = "ROWS";
/// Capacity of [`ROWS_MAP`] unless the agent sets another at load time.
pub const ROWS_CAPACITY: u32 = 16_384;
/// Name of the prefilter: an array of `u64` words, bit `id % FILTER_BITS` set
/// for every cgroup id that has rows.
pub const FILTER_MAP: &str = "FILTER";
/// Bits in the prefilter; a power of two.
pub const FILTER_BITS: u32 = 1 << 16;
/// Words in [`FILTER_MAP`].
pub const FILTER_WORDS: u32 = FILTER_BITS / 64;
/// Name of the per-CPU counters map (see [`counter`]).
pub const COUNTERS_MAP: &str = "COUNTERS";

/// The prefilter word index and bit for a cgroup id. cgroup ids are kernfs
/// inode numbers handed out in sequence, so the low bits spread well.
#[inline(always)]
pub const fn filter_slot(cgroup_id: u64) -> (u32, u64) {
    let bit = (cgroup_id as u32) & (FILTER_BITS - 1);
    (bit >> 6, 1u64 << (bit & 63))
}

/// Name of the program attached to `sys_enter`.
pub const SYS_ENTER_PROGRAM: &str = "sys_enter";
/// Name of the program attached to `sched_process_exec`.
pub const EXEC_PROGRAM: &str = "sched_process_exec";

/// Kernel struct offsets the program needs, found by the agent in the
/// running kernel's BTF and written into the program's read-only data before
/// it is loaded. The verifier sees them as constants.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KernelOffsets {
    /// Offset of `thread_info.status` from the start of `task_struct` (x86:
    /// `thread_info` is the first member). Unused where `ts_compat` is 0.
    pub ti_status: u32,
    /// `TS_COMPAT` on this architecture (x86: 0x0002), 0 where unused.
    pub ts_compat: u32,
    /// 1: read the cgroup id through the four members below (plain loads
    /// from the current task); 0: call `bpf_get_current_cgroup_id()`.
    pub direct_cgroup_id: u32,
    /// `task_struct.cgroups` (`struct css_set *`).
    pub task_cgroups: u32,
    /// `css_set.dfl_cgrp` (`struct cgroup *`).
    pub css_set_dfl_cgrp: u32,
    /// `cgroup.kn` (`struct kernfs_node *`).
    pub cgroup_kn: u32,
    /// `kernfs_node.id` (`u64`).
    pub kernfs_node_id: u32,
    pub _pad: u32,
}
const _: () = assert!(size_of::<KernelOffsets>() == 32);

/// Name of the global holding [`KernelOffsets`].
pub const OFFSETS_GLOBAL: &str = "OFFSETS";

#[cfg(feature = "user")]
mod user {
    // SAFETY: every type here is `#[repr(C)]`, `Copy`, and has no padding
    // (checked by the size assertions above), so any byte pattern is valid.
    unsafe impl aya::Pod for super::RowKey {}
    unsafe impl aya::Pod for super::Row {}
    unsafe impl aya::Pod for super::KernelOffsets {}
}
