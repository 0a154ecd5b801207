//! `#[repr(C)]` types and constants shared by the kernel program (`ebpf/`) and
//! the agent, so both sides agree on every map's name, key, value and size.
#![no_std]

use core::mem::size_of;

pub mod refusal;

/// Syscall numbers below this are recorded, one byte each; larger ones are
/// counted as out of range. Covers every ABI's table with room to grow: the
/// highest numbers in use are 469 (x86_64, i386, aarch64) and 547 (x32, after
/// its 0x4000_0000 marker bit is removed).
pub const SYSCALL_SLOTS: usize = 576;

/// The x32 ABI marks its syscall numbers with this bit (`__X32_SYSCALL_BIT`).
pub const X32_SYSCALL_BIT: u64 = 0x4000_0000;

/// `AUDIT_ARCH_*` (include/uapi/linux/audit.h): what a seccomp filter sees
/// in `seccomp_data.arch` and a `SIGSYS` carries in `si_arch`.
pub mod audit_arch {
    /// x86_64, and x32 (which marks its numbers instead).
    pub const X86_64: u32 = 0xC000_003E;
    /// i386, x86_64's compat ABI.
    pub const I386: u32 = 0x4000_0003;
    /// aarch64.
    pub const AARCH64: u32 = 0xC000_00B7;
    /// ARM (EM_ARM, 40, little-endian): AArch32, aarch64's compat ABI.
    pub const ARM: u32 = 0x4000_0028;
}

/// The ABI and table number of syscall `id` as `sys_enter` receives it: x32
/// numbers carry [`X32_SYSCALL_BIT`], which is removed; otherwise
/// `compat()` (the task is in a compat syscall: ia32) decides between
/// [`abi::COMPAT`] and [`abi::NATIVE`]. `compat` is asked only when needed,
/// since reading the task costs the kernel program a probe.
#[inline(always)]
pub fn classify_syscall(id: u64, compat: impl FnOnce() -> bool) -> (u32, u64) {
    if id & X32_SYSCALL_BIT != 0 {
        (abi::X32, id & !X32_SYSCALL_BIT)
    } else if compat() {
        (abi::COMPAT, id)
    } else {
        (abi::NATIVE, id)
    }
}

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

/// Key of [`ROWS_MAP`]: one row per (cgroup, ABI, session).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RowKey {
    /// cgroup v2 id (the inode number of the cgroup's directory) of the
    /// recorded container: a cgroup made below it is recorded under its id
    /// (see [`ALIAS_MAP`]).
    pub cgroup_id: u64,
    /// One of the [`abi`] constants.
    pub abi: u32,
    /// 0 for the workload; otherwise the exec session or hook whose
    /// syscalls the row holds (see [`Member`]).
    pub session: u32,
}
const _: () = assert!(size_of::<RowKey>() == 16);

impl RowKey {
    /// The workload's row of a cgroup under one ABI.
    pub const fn new(cgroup_id: u64, abi: u32) -> Self {
        Self::session(cgroup_id, abi, 0)
    }

    /// A session's row of a cgroup under one ABI (session 0: the workload).
    pub const fn session(cgroup_id: u64, abi: u32, session: u32) -> Self {
        Self {
            cgroup_id,
            abi,
            session,
        }
    }
}

/// Row states, kept in [`Row::state`] of the workload's native row.
pub mod state {
    /// Marked; syscalls are not recorded yet (the runtime is still setting
    /// the container up).
    pub const WAITING_FOR_EXEC: u8 = 0;
    /// A process of the cgroup completed an exec: every syscall is recorded.
    pub const RECORDING: u8 = 1;
}

/// Kinds of session, kept in [`Member::kind`], in [`Row::state`] of a
/// session's rows and in [`SessionEvent::session_kind`].
pub mod session {
    /// The workload (session 0).
    pub const WORKLOAD: u8 = 0;
    /// An exec session: a process from outside the workload completed an
    /// exec in the recording container (`runc exec`, `kubectl exec`, an exec
    /// probe), with what it forks.
    pub const EXEC: u8 = 1;
    /// An OCI hook the runtime ran inside the container before the
    /// entrypoint (createContainer, startContainer), with what it forks.
    pub const HOOK: u8 = 2;
    /// Bits of a session id below the counter: the CPU that started it, so
    /// that CPUs never hand out the same id.
    pub const CPU_BITS: u32 = 10;
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
    /// A process that is neither the workload's nor a session's made
    /// syscalls in the recording cgroup: the runtime's helper that enters
    /// the container for an exec session (runc's `runc init`) before it execs
    /// the session's command. They are in no row (see
    /// [`MEMBERS_MAP`](super::MEMBERS_MAP)).
    pub const OUTSIDER: usize = 2;
    /// A process of the workload could not be added to
    /// [`MEMBERS_MAP`](super::MEMBERS_MAP) (it was full): its syscalls are
    /// missing.
    pub const MEMBER_LOST: usize = 3;
    /// The row was created by the kernel when the cgroup was made (rather
    /// than by userspace).
    pub const FROM_MKDIR: usize = 4;
    /// The process whose exec started the recording had `no_new_privs` set
    /// (`PFA_NO_NEW_PRIVS` in `task_struct.atomic_flags`): the runtime ran the
    /// container with `noNewPrivileges`, which changes what runc needs after
    /// it loads the filter.
    pub const NO_NEW_PRIVS: usize = 5;
    /// A cgroup made below the recorded one could not be added to
    /// [`ALIAS_MAP`](super::ALIAS_MAP) (it was full): what runs in it is not
    /// recorded.
    pub const ALIAS_LOST: usize = 6;
    /// Number of flag bytes.
    pub const COUNT: usize = 7;
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
    /// In the workload's native row, one of the [`state`] constants; in a
    /// session's rows, its [`session`] kind.
    pub state: u8,
    /// One byte per [`flag`], 0 or 1; meaningful in the workload's native
    /// row only.
    pub flags: [u8; flag::COUNT],
    /// Thread-group id (host PID) of the process whose exec started the
    /// recording (in a session's rows: the session's); 0 before.
    pub init_tgid: u32,
    /// Mount namespace (inode number) of the process that made the cgroup,
    /// for rows the kernel made on `cgroup_mkdir`; 0 otherwise. An exec in
    /// that namespace is the runtime's own (runc re-execs itself from a
    /// sealed copy after it joined the cgroup), not the container's
    /// entrypoint, which always runs in a mount namespace of its own.
    pub creator_mntns: u32,
    /// For a row the kernel made on `cgroup_mkdir` below another marked
    /// cgroup that was not recording yet: that cgroup's id (the nearest
    /// marked ancestor), so that userspace can join the two once it knows
    /// the ancestor is a container (crun's `container` sub-cgroup is made
    /// before the container's entrypoint runs). 0 otherwise.
    pub parent: u64,
    /// `seen[nr] == 1` once syscall `nr` was made.
    pub seen: [u8; SYSCALL_SLOTS],
}
const _: () = assert!(size_of::<Row>() == 24 + SYSCALL_SLOTS);

impl Row {
    /// A row in the given [`state`] with nothing seen.
    pub const fn new(state: u8) -> Self {
        Self {
            state,
            flags: [0; flag::COUNT],
            init_tgid: 0,
            creator_mntns: 0,
            parent: 0,
            seen: [0; SYSCALL_SLOTS],
        }
    }
}

/// Value of [`MEMBERS_MAP`]: whose process it is.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Member {
    /// The recorded cgroup (the key of its rows).
    pub cgroup_id: u64,
    /// 0 for the workload, else the session's id.
    pub session: u32,
    /// One of the [`session`] kinds.
    pub kind: u8,
    pub _pad: [u8; 3],
}
const _: () = assert!(size_of::<Member>() == 16);

impl Member {
    /// A process of `cgroup_id`'s session `session` of kind `kind`.
    pub const fn new(cgroup_id: u64, session: u32, kind: u8) -> Self {
        Self {
            cgroup_id,
            session,
            kind,
            _pad: [0; 3],
        }
    }
}

/// Indexes into [`COUNTERS_MAP`], a per-CPU array of `u64` that the kernel
/// program increments and userspace sums.
pub mod counter {
    /// Syscalls seen with a number outside `0..SYSCALL_SLOTS`.
    pub const OUT_OF_RANGE: u32 = 0;
    /// Rows that could not be created because the map was full.
    pub const ROW_MAP_FULL: u32 = 1;
    /// Execs that started a recording (rows moved to `RECORDING`).
    pub const ARMED: u32 = 2;
    /// cgroups marked by the kernel when they were made.
    pub const MKDIR_MARKED: u32 = 3;
    /// cgroup events lost because the ring buffer was full.
    pub const EVENTS_LOST: u32 = 4;
    /// Processes added to the workloads (forks of members).
    pub const MEMBERS_ADDED: u32 = 5;
    /// Syscalls in recording cgroups by processes that are neither the
    /// workload's nor a session's (the runtime's exec helper), not recorded.
    pub const OUTSIDER_SYSCALLS: u32 = 6;
    /// Workload or session processes that could not be added: the map was
    /// full.
    pub const MEMBERS_FULL: u32 = 7;
    /// Sessions started (exec sessions and hooks). This CPU's count is also
    /// the upper part of the ids of the sessions it starts.
    pub const SESSIONS: u32 = 8;
    /// Hooks among [`SESSIONS`].
    pub const HOOKS: u32 = 9;
    /// cgroups made below a recorded one and recorded as part of it.
    pub const ALIASES: u32 = 10;
    /// cgroups made below a recorded one that could not be: the alias map was
    /// full.
    pub const ALIAS_FULL: u32 = 11;
    /// Number of counters.
    pub const COUNT: u32 = 12;
}

/// Name of the map of rows: key [`RowKey`], value [`Row`].
pub const ROWS_MAP: &str = "ROWS";
/// Capacity of [`ROWS_MAP`] unless the agent sets another at load time.
pub const ROWS_CAPACITY: u32 = 4096;

/// Name of the prefilter: one array element of [`FILTER_SLOTS`] bytes,
/// memory-mapped by userspace. Byte `cgroup_id % FILTER_SLOTS` is 1 when a
/// cgroup with that slot may have rows. Bytes, not bits, so that the kernel
/// (marking a new cgroup) and userspace (through the mapping) each set or
/// clear one with a single store and never overwrite each other's slots.
pub const FILTER_MAP: &str = "FILTER";
/// Slots in the prefilter; a power of two.
pub const FILTER_SLOTS: usize = 1 << 16;

/// The prefilter slot of a cgroup id. cgroup ids are kernfs inode numbers
/// handed out in sequence, so the low bits spread well.
#[inline(always)]
pub const fn filter_slot(cgroup_id: u64) -> usize {
    (cgroup_id as usize) & (FILTER_SLOTS - 1)
}

/// Name of the per-CPU cache of the recorded path (see [`Seen`]): the
/// kernel program's own, never read by userspace.
pub const SEEN_MAP: &str = "SEEN";
/// Entries of [`SEEN_MAP`] per CPU, indexed by thread id; a power of two.
pub const SEEN_ENTRIES: u32 = 64;
/// Words of [`Seen::bits`]: one bit per syscall slot.
pub const SEEN_WORDS: usize = SYSCALL_SLOTS.div_ceil(64);

/// Name of the epoch of the rows: one `u64`, written by userspace only,
/// changed after every change it makes to [`ROWS_MAP`], [`MEMBERS_MAP`] or
/// [`ALIAS_MAP`]. A [`Seen`] entry is valid only in the epoch it was filled
/// in.
pub const EPOCH_MAP: &str = "EPOCH";

/// An entry of [`SEEN_MAP`]: syscalls of one thread (its thread id and
/// start time: never reused together) in one cgroup that `sys_enter` set in
/// the workload's native row of the cgroup's recorded cgroup, so that it
/// does not look the row up again for them. Filled and read by the kernel
/// program on one CPU only (the program does not run twice at once on a
/// CPU); the kernel never removes or replaces such a row, nor changes what
/// a thread's syscalls go to while it lives, so only userspace's changes
/// can make an entry wrong, and those change [`EPOCH_MAP`].
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Seen {
    /// `task_struct.start_time` of the thread.
    pub start_time: u64,
    /// The cgroup the thread was in (not its recorded cgroup: an alias's
    /// own id).
    pub cgroup_id: u64,
    /// [`EPOCH_MAP`] as read before the row was looked up.
    pub epoch: u64,
    /// `task_struct.pid` of the thread.
    pub pid: u32,
    pub _pad: u32,
    /// Bit `nr % 64` of word `nr / 64`: native syscall `nr` is set in the
    /// row.
    pub bits: [u64; SEEN_WORDS],
}
const _: () = assert!(size_of::<Seen>() == 32 + 8 * SEEN_WORDS);

/// Name of the per-CPU counters map (see [`counter`]).
pub const COUNTERS_MAP: &str = "COUNTERS";

/// Name of the map of watched cgroups: key cgroup id (`u64`), value `u8`.
/// A cgroup made anywhere below a watched one is marked by the kernel as it
/// is made, before any process can run in it.
pub const WATCH_MAP: &str = "WATCH";
/// Capacity of [`WATCH_MAP`].
pub const WATCH_CAPACITY: u32 = 64;

/// Name of the map of recorded processes: key thread-group id (`u32`),
/// value a [`Member`]. A recorded cgroup's workload is the process whose
/// exec started the recording ([`Row::init_tgid`], not in the map) and
/// every process forked from a member since. A process from outside that
/// completes an exec in the container starts a session of its own, which
/// the processes it forks join. The runtime's helper before that exec is
/// in no session and is not recorded.
pub const MEMBERS_MAP: &str = "MEMBERS";
/// Capacity of [`MEMBERS_MAP`] (allocated as used).
pub const MEMBERS_CAPACITY: u32 = 65_536;

/// Name of the map of cgroups made below a recorded one: key the cgroup's
/// id (`u64`), value the id of the recorded cgroup (`u64`) whose rows hold
/// what runs in it.
pub const ALIAS_MAP: &str = "ALIAS";
/// Capacity of [`ALIAS_MAP`] (allocated as used).
pub const ALIAS_CAPACITY: u32 = 16_384;

/// Name of the ring buffer of [`CgroupEvent`]s.
pub const EVENTS_MAP: &str = "EVENTS";
/// Size of [`EVENTS_MAP`] in bytes (a power of two, a multiple of the page).
pub const EVENTS_BYTES: u32 = 256 * 1024;

/// Bytes of a cgroup path carried in a [`CgroupEvent`].
pub const EVENT_PATH_BYTES: usize = 512;

/// Kinds of [`CgroupEvent`].
pub mod event {
    /// A cgroup made below a watched one, and marked.
    pub const MARKED: u16 = 0;
    /// A cgroup made at one of the [`ROOT_PATHS_MAP`](super::ROOT_PATHS_MAP)
    /// paths, and watched from now on.
    pub const ROOT: u16 = 1;
    /// A cgroup below a watched one that could not be marked: the rows map
    /// was full.
    pub const LOST: u16 = 2;
    /// A session started: a [`SessionEvent`](super::SessionEvent).
    pub const SESSION: u16 = 3;
}

/// A cgroup the kernel program acted on as it was made.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct CgroupEvent {
    pub cgroup_id: u64,
    /// Depth below the hierarchy's root.
    pub level: u32,
    /// Bytes of `path` used, without the terminating zero.
    pub path_len: u16,
    /// One of the [`event`] constants.
    pub kind: u16,
    /// The cgroup's path from the hierarchy's root, zero-terminated.
    pub path: [u8; EVENT_PATH_BYTES],
}
const _: () = assert!(size_of::<CgroupEvent>() == 16 + EVENT_PATH_BYTES);

/// Bytes of a command line carried in a [`SessionEvent`].
pub const EVENT_ARGV_BYTES: usize = 512;

/// A session that started: its first process completed its exec. Its first
/// 16 bytes have the shape of a [`CgroupEvent`]'s, `kind` at the same
/// place.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct SessionEvent {
    /// The recorded cgroup (the key of the session's rows).
    pub cgroup_id: u64,
    /// The session's id.
    pub session: u32,
    /// Bytes of `argv` used.
    pub argv_len: u16,
    /// [`event::SESSION`].
    pub kind: u16,
    /// Thread-group id (host PID) of the process that exec'd.
    pub pid: u32,
    /// One of the [`session`] kinds.
    pub session_kind: u32,
    /// `bpf_ktime_get_boot_ns()` at the exec.
    pub boot_ns: u64,
    /// The command line as exec'd: the arguments, each ending in a zero
    /// byte, cut at [`EVENT_ARGV_BYTES`].
    pub argv: [u8; EVENT_ARGV_BYTES],
}
const _: () = assert!(size_of::<SessionEvent>() == 32 + EVENT_ARGV_BYTES);

/// Name of the array of root paths: cgroups made at one of these paths
/// (zero-terminated, from the hierarchy's root, e.g. `/kubepods`) are watched
/// as soon as they are made, so that even the first container below a
/// kubelet root that appears late is marked. Written by userspace only.
pub const ROOT_PATHS_MAP: &str = "ROOT_PATHS";
/// Entries in [`ROOT_PATHS_MAP`].
pub const ROOT_PATHS: u32 = 4;
/// Bytes of a root path, with its terminating zero.
pub const ROOT_PATH_BYTES: usize = 64;

/// How deep below a watched cgroup a new cgroup may be and still be marked:
/// ancestors are compared up to this many levels from the hierarchy's root.
pub const MAX_WATCH_LEVEL: u32 = 12;

/// Names of the programs and the tracepoints they attach to.
pub mod program {
    pub const SYS_ENTER: &str = "sys_enter";
    pub const EXEC: &str = "sched_process_exec";
    pub const FORK: &str = "sched_process_fork";
    pub const EXIT: &str = "sched_process_exit";
    pub const CGROUP_MKDIR: &str = "cgroup_mkdir";
    pub const CGROUP_ATTACH: &str = "cgroup_attach_task";
}

/// How the kernel program reads a cgroup's ancestors in `cgroup_mkdir`.
pub mod ancestors {
    /// Not readable: the hook is not used.
    pub const NONE: u32 = 0;
    /// `struct cgroup *ancestors[]` (Linux 6.0 and later).
    pub const POINTERS: u32 = 1;
    /// `u64 ancestor_ids[]` (Linux 5.x).
    pub const IDS: u32 = 2;
}

/// Kernel struct offsets the program needs, found by the agent in the
/// running kernel's BTF and written into the program's read-only data before
/// it is loaded. The verifier sees them as constants.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KernelOffsets {
    /// Where a 32-bit compat syscall shows (see `compat_in_regs`): x86, the
    /// offset of `thread_info.status` from the start of `task_struct`;
    /// aarch64, the offset of `pt_regs.pstate`. Unused where `compat_mask`
    /// is 0.
    pub compat_offset: u32,
    /// The bits that mark a compat syscall there: x86 `TS_COMPAT` (0x0002),
    /// aarch64 `PSR_MODE32_BIT` (0x10); 0 where unused.
    pub compat_mask: u32,
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
    /// `task_struct.real_parent`; with `direct_cgroup_id`, lets the exec
    /// hook see whether the parent is in the same cgroup.
    pub task_real_parent: u32,
    /// `task_struct.tgid`.
    pub task_tgid: u32,
    /// `task_struct.pid`.
    pub task_pid: u32,
    /// One of the [`ancestors`] constants.
    pub ancestors_mode: u32,
    /// `cgroup.ancestors` or `cgroup.ancestor_ids`.
    pub cgroup_ancestors: u32,
    /// `cgroup.level`.
    pub cgroup_level: u32,
    /// `cgroup.root` (`struct cgroup_root *`).
    pub cgroup_root: u32,
    /// `cgroup_root.hierarchy_id`: 0 for the cgroup v2 hierarchy.
    pub root_hierarchy_id: u32,
    /// `task_struct.atomic_flags` (bit 0: `PFA_NO_NEW_PRIVS`); 0 if unknown.
    pub task_atomic_flags: u32,
    /// `task_struct.nsproxy`; 0 if unknown.
    pub task_nsproxy: u32,
    /// `nsproxy.mnt_ns`.
    pub nsproxy_mnt_ns: u32,
    /// `mnt_namespace.ns.inum`.
    pub mnt_ns_inum: u32,
    /// 1: `compat_offset` is into the `pt_regs` of `sys_enter` (aarch64);
    /// 0: into the current `task_struct` (x86).
    pub compat_in_regs: u32,
    /// `task_struct.signal` (`struct signal_struct *`); 0 if unknown.
    pub task_signal: u32,
    /// `signal_struct.live` (`atomic_t`): the live threads of the process.
    pub signal_live: u32,
    /// `task_struct.mm` (`struct mm_struct *`); 0 if unknown.
    pub task_mm: u32,
    /// `mm_struct.arg_start`.
    pub mm_arg_start: u32,
    /// `mm_struct.arg_end`.
    pub mm_arg_end: u32,
    /// `task_struct.start_time` (`u64`); 0 if unknown (then `sys_enter`
    /// keeps no [`Seen`] cache).
    pub task_start_time: u32,
}
const _: () = assert!(size_of::<KernelOffsets>() == 104);

/// Name of the global holding [`KernelOffsets`].
pub const OFFSETS_GLOBAL: &str = "OFFSETS";

#[cfg(feature = "user")]
mod user {
    // SAFETY: every type here is `#[repr(C)]`, `Copy`, and has no padding
    // (checked by the size assertions above), so any byte pattern is valid.
    unsafe impl aya::Pod for super::RowKey {}
    unsafe impl aya::Pod for super::Row {}
    unsafe impl aya::Pod for super::KernelOffsets {}
    unsafe impl aya::Pod for super::CgroupEvent {}
    unsafe impl aya::Pod for super::SessionEvent {}
    unsafe impl aya::Pod for super::Member {}
    unsafe impl aya::Pod for super::Seen {}
}
