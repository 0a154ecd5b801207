//! The refusal watch: which syscalls an enforced seccomp profile refused a
//! watched container, counted per (container, ABI, syscall).
//!
//! seccomp decides before the `sys_enter` tracepoint, so a refused syscall
//! never reaches the recorder; it does reach `sys_exit`, with its number and
//! the errno the filter returned. The kill and trap actions never return:
//! the process gets `SIGSYS` with `si_code == SYS_SECCOMP`, caught where the
//! signal is generated.
use core::mem::size_of;

use crate::SYSCALL_SLOTS;

/// What a watched container's profile does with one syscall number, as the
/// kernel program checks it at `sys_exit`: one `u16` per number and ABI in
/// [`Policy::verdicts`].
pub mod verdict {
    /// Allowed (or decided by its arguments, or by a tracer or a listener):
    /// never counted.
    pub const ALLOWED: u16 = 0;
    /// Refused with an errno, in the low 12 bits ([`ERRNO_MASK`]): counted
    /// when the syscall returns exactly `-errno`.
    pub const ERRNO: u16 = 0x8000;
    /// Allowed and logged (`SCMP_ACT_LOG`, complain mode): counted whatever
    /// it returns.
    pub const LOG: u16 = 0x4000;
    /// Refused by a signal (`SCMP_ACT_KILL_*`, `SCMP_ACT_TRAP`): never
    /// returns; counted where the `SIGSYS` is generated, not at `sys_exit`.
    pub const SIGNAL: u16 = 0x2000;
    /// With [`ERRNO`]: also counted when the syscall returns `-ENOSYS`. For
    /// numbers above every syscall the profile names, which runc fails with
    /// ENOSYS (its stub, so that programs fall back from syscalls newer than
    /// the profile) and other runtimes with the profile's errno.
    pub const OR_ENOSYS: u16 = 0x1000;
    /// The errno of an [`ERRNO`] verdict (the kernel caps a filter's errno at
    /// `MAX_ERRNO`, 4095).
    pub const ERRNO_MASK: u16 = 0x0fff;
}

/// Value of [`POLICIES_MAP`]: how a watched container's profile treats each
/// syscall number of one ABI. Key: [`RowKey`](crate::RowKey) (the
/// container's cgroup id and the ABI).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct Policy {
    /// One byte per [`policy_flag`], set once by the kernel program.
    pub flags: [u8; policy_flag::COUNT],
    /// One of the [`verdict`] values per syscall number.
    pub verdicts: [u16; SYSCALL_SLOTS],
}
const _: () = assert!(size_of::<Policy>() == 8 + 2 * SYSCALL_SLOTS);

impl Policy {
    /// A policy that allows everything.
    pub const fn new() -> Self {
        Self {
            flags: [0; policy_flag::COUNT],
            verdicts: [verdict::ALLOWED; SYSCALL_SLOTS],
        }
    }
}

impl Default for Policy {
    fn default() -> Self {
        Self::new()
    }
}

/// Flags of a [`Policy`], kept in the native ABI's entry.
pub mod policy_flag {
    /// A refusal could not be counted: [`REFUSED_MAP`](super::REFUSED_MAP)
    /// was full.
    pub const LOST: usize = 0;
    /// Number of flag bytes.
    pub const COUNT: usize = 8;
}

/// Key of [`REFUSED_MAP`]: one entry per (container, ABI, syscall) refused.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RefusalKey {
    /// The watched container's cgroup id.
    pub cgroup_id: u64,
    /// One of the [`abi`](crate::abi) constants.
    pub abi: u32,
    /// The syscall number (x32: without its marker bit).
    pub nr: u32,
}
const _: () = assert!(size_of::<RefusalKey>() == 16);

/// Value of [`REFUSED_MAP`], per CPU: summed (counts) and maxed (times) by
/// userspace.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RefusalCount {
    /// Refusals counted on this CPU.
    pub count: u64,
    /// `CLOCK_MONOTONIC` of the last one on this CPU, in nanoseconds.
    pub last_ns: u64,
}
const _: () = assert!(size_of::<RefusalCount>() == 16);

/// How a refusal was seen ([`RefusalEvent::kind`]).
pub mod kind {
    /// The syscall returned the errno the profile gives it.
    pub const ERRNO: u32 = 0;
    /// The profile logs the syscall (complain mode): it ran.
    pub const LOG: u32 = 1;
    /// The profile killed or trapped the process: `SIGSYS` with
    /// `si_code == SYS_SECCOMP`.
    pub const SIGNAL: u32 = 2;
}

/// The first refusal of one (container, ABI, syscall), sent once through
/// [`REFUSAL_EVENTS_MAP`] so that userspace can name who was refused.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct RefusalEvent {
    /// The watched container's cgroup id.
    pub cgroup_id: u64,
    /// The cgroup the process was in (the container's, or one below it).
    pub task_cgroup_id: u64,
    /// `CLOCK_MONOTONIC` in nanoseconds.
    pub time_ns: u64,
    /// What the syscall returned ([`kind::ERRNO`], [`kind::LOG`]); 0 for
    /// [`kind::SIGNAL`].
    pub ret: i64,
    /// One of the [`abi`](crate::abi) constants.
    pub abi: u32,
    /// The syscall number (x32: without its marker bit).
    pub nr: u32,
    /// Thread-group id (host PID) of the refused process.
    pub tgid: u32,
    /// Thread id (host) of the refused thread.
    pub pid: u32,
    /// One of the [`kind`] constants.
    pub kind: u32,
    pub _pad: u32,
    /// The thread's name (`comm`), zero-padded.
    pub comm: [u8; 16],
}
const _: () = assert!(size_of::<RefusalEvent>() == 72);

/// Indexes into [`WATCH_COUNTERS_MAP`], a per-CPU array of `u64` that the
/// kernel program increments and userspace sums.
pub mod watch_counter {
    /// Refusals counted.
    pub const REFUSED: u32 = 0;
    /// (container, ABI, syscall) refused for the first time.
    pub const FIRST: u32 = 1;
    /// First-refusal events lost because the ring buffer was full (the
    /// refusal is still counted, without the process's name).
    pub const EVENTS_LOST: u32 = 2;
    /// Refusals not counted because [`REFUSED_MAP`](super::REFUSED_MAP) was
    /// full.
    pub const MAP_FULL: u32 = 3;
    /// Syscalls of watched containers numbered outside `0..SYSCALL_SLOTS`:
    /// not checked.
    pub const OUT_OF_RANGE: u32 = 4;
    /// `SIGSYS` from seccomp seen in watched containers.
    pub const SIGNALS: u32 = 5;
    /// Threads of watched containers ended by `SCMP_ACT_KILL_THREAD` with
    /// no signal (their process had other threads).
    pub const THREADS_KILLED: u32 = 6;
    /// Number of counters.
    pub const COUNT: u32 = 7;
}

/// Name of the map of watched containers' policies: key
/// [`RowKey`](crate::RowKey), value [`Policy`].
pub const POLICIES_MAP: &str = "POLICIES";
/// Capacity of [`POLICIES_MAP`] (containers × ABIs; allocated as used).
pub const POLICIES_CAPACITY: u32 = 4096;

/// Name of the watch's prefilter: one array element of
/// [`FILTER_SLOTS`](crate::FILTER_SLOTS) bytes, memory-mapped by userspace;
/// byte [`filter_slot`](crate::filter_slot)`(cgroup_id)` is 1 when a cgroup
/// with that slot may be watched. Apart from the recorder's, so that neither
/// side's cgroups pay for the other's lookups.
pub const WATCH_FILTER_MAP: &str = "WATCH_FILTER";

/// Name of the per-CPU map of refusal counts: key [`RefusalKey`], value
/// [`RefusalCount`].
pub const REFUSED_MAP: &str = "REFUSED";
/// Capacity of [`REFUSED_MAP`] (allocated as used).
pub const REFUSED_CAPACITY: u32 = 16_384;

/// Name of the ring buffer of [`RefusalEvent`]s.
pub const REFUSAL_EVENTS_MAP: &str = "REFUSAL_EVENTS";
/// Size of [`REFUSAL_EVENTS_MAP`] in bytes (a power of two, a multiple of
/// the page).
pub const REFUSAL_EVENTS_BYTES: u32 = 128 * 1024;

/// Name of the watch's per-CPU counters (see [`watch_counter`]).
pub const WATCH_COUNTERS_MAP: &str = "WATCH_COUNTERS";

/// Names of the watch's programs.
pub mod program {
    /// At `sys_exit`: refusals by errno, and complain mode.
    pub const SYS_EXIT: &str = "sys_exit";
    /// At `signal_generate`: refusals by kill or trap.
    pub const SIGNAL: &str = "signal_generate";
    /// At `sched_process_exit`: a thread killed alone by
    /// `SCMP_ACT_KILL_THREAD`, which gets no signal.
    pub const THREAD_EXIT: &str = "seccomp_thread_exit";
    /// The tracepoint [`THREAD_EXIT`] attaches to.
    pub const THREAD_EXIT_TRACEPOINT: &str = "sched_process_exit";
}

/// What the watch needs from the running kernel, found by the agent in its
/// BTF and written into the program's read-only data before it is loaded.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WatchConfig {
    /// Offset of the syscall number in `struct pt_regs` (x86:
    /// `orig_ax`; arm64: `syscallno`); 0 if unknown, and then the watch is
    /// not used.
    pub regs_nr: u32,
    /// Its size in bytes: 8 (x86's `unsigned long`) or 4 (arm64's `s32`).
    pub regs_nr_bytes: u32,
    /// `kernel_siginfo.si_code`.
    pub siginfo_code: u32,
    /// `kernel_siginfo._sifields._sigsys._syscall`.
    pub siginfo_syscall: u32,
    /// `kernel_siginfo._sifields._sigsys._arch`.
    pub siginfo_arch: u32,
    /// `AUDIT_ARCH_*` of the native ABI.
    pub native_audit_arch: u32,
    /// `AUDIT_ARCH_*` of the compat ABI (0 if none).
    pub compat_audit_arch: u32,
    /// `task_struct.seccomp.mode`; 0 if unknown, and then threads killed
    /// alone are not seen, and syscalls made before the runtime loaded the
    /// filter are not told from refusals.
    pub task_seccomp_mode: u32,
    /// `task_struct.flags`.
    pub task_flags: u32,
    /// `task_struct.exit_code`.
    pub task_exit_code: u32,
    pub _pad: [u32; 2],
}
const _: () = assert!(size_of::<WatchConfig>() == 48);

/// Name of the global holding [`WatchConfig`].
pub const WATCH_CONFIG_GLOBAL: &str = "WATCH_CONFIG";

/// `ENOSYS` (include/uapi/asm-generic/errno.h; 38 on x86 and arm64).
pub const ENOSYS: u16 = 38;

/// `SECCOMP_MODE_FILTER` (include/uapi/linux/seccomp.h): the thread runs
/// under a seccomp filter.
pub const SECCOMP_MODE_FILTER: i32 = 2;
/// `SECCOMP_MODE_DEAD`: the mode of a thread seccomp killed
/// (`SECCOMP_MODE_FILTER + 1`, kernel/seccomp.c at v6.18).
pub const SECCOMP_MODE_DEAD: i32 = 3;
/// `PF_SIGNALED` in `task_struct.flags`: the task was killed by a signal
/// (include/linux/sched.h at v6.18).
pub const PF_SIGNALED: u32 = 0x0000_0400;

/// `SIGSYS` (asm-generic/signal.h; 31 on x86 and arm64).
pub const SIGSYS: i32 = 31;
/// `SYS_SECCOMP`, the `si_code` of a seccomp `SIGSYS`
/// (include/uapi/asm-generic/siginfo.h).
pub const SYS_SECCOMP: i32 = 1;

#[cfg(feature = "user")]
mod user {
    // SAFETY: every type here is `#[repr(C)]`, `Copy`, and has no padding
    // (checked by the size assertions above), so any byte pattern is valid.
    unsafe impl aya::Pod for super::Policy {}
    unsafe impl aya::Pod for super::RefusalKey {}
    unsafe impl aya::Pod for super::RefusalCount {}
    unsafe impl aya::Pod for super::RefusalEvent {}
    unsafe impl aya::Pod for super::WatchConfig {}
}
