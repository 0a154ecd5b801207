//! Reads from kernel structs that have no helper.
use aya_ebpf::helpers::{bpf_get_current_cgroup_id, bpf_get_current_task_btf};
use syscensus_common::KernelOffsets;

/// Offsets into kernel structs, found by the agent in the running kernel's
/// BTF and written here before the program is loaded. `.rodata` is frozen
/// after load, so the verifier sees these as constants. Read one field at a
/// time with [`offset!`] (a volatile read, so that the compiler does not fold
/// in these defaults): reading the whole struct would cost a load per field
/// on every syscall.
#[unsafe(no_mangle)]
pub static OFFSETS: KernelOffsets = KernelOffsets {
    compat_offset: 0,
    compat_mask: 0,
    direct_cgroup_id: 0,
    task_cgroups: 0,
    css_set_dfl_cgrp: 0,
    cgroup_kn: 0,
    kernfs_node_id: 0,
    task_real_parent: 0,
    task_tgid: 0,
    task_pid: 0,
    ancestors_mode: 0,
    cgroup_ancestors: 0,
    cgroup_level: 0,
    cgroup_root: 0,
    root_hierarchy_id: 0,
    task_atomic_flags: 0,
    task_nsproxy: 0,
    nsproxy_mnt_ns: 0,
    mnt_ns_inum: 0,
    compat_in_regs: 0,
    task_signal: 0,
    signal_live: 0,
    task_mm: 0,
    mm_arg_start: 0,
    mm_arg_end: 0,
    task_start_time: 0,
};

/// Reads one field of [`OFFSETS`].
macro_rules! offset {
    ($field:ident) => {
        $crate::task::read_offset(&raw const $crate::task::OFFSETS.$field)
    };
}
pub(crate) use offset;

/// A volatile read of a field of [`OFFSETS`] (see [`offset!`]).
#[inline(always)]
pub fn read_offset(field: *const u32) -> u32 {
    // SAFETY: `field` points into the static OFFSETS.
    unsafe { core::ptr::read_volatile(field) }
}

/// Reads a `T` at `offset` bytes into the struct at `base`.
///
/// # Safety
/// `base` must be a BTF pointer (from a BTF tracepoint argument or
/// `bpf_get_current_task_btf`, or read through one): the verifier checks the
/// load against the kernel's types, and a faulting load reads zero instead of
/// crashing.
#[inline(always)]
pub unsafe fn field<T: Copy>(base: *const u8, offset: u32) -> T {
    unsafe { base.add(offset as usize).cast::<T>().read() }
}

/// The cgroup v2 id of a task: `task->cgroups->dfl_cgrp->kn->id`, what
/// `bpf_get_current_cgroup_id()` returns for the current task
/// (kernel/bpf/helpers.c at v6.18). Read under RCU (a tracepoint program
/// runs in an RCU read-side section), which keeps `cgroups` alive.
///
/// # Safety
/// `task` must be a BTF pointer to a `task_struct`, and the offsets known
/// (`direct_cgroup_id == 1`).
#[inline(always)]
pub unsafe fn task_cgroup_id(task: *const u8) -> u64 {
    unsafe {
        let css_set: *const u8 = field(task, offset!(task_cgroups));
        let cgroup: *const u8 = field(css_set, offset!(css_set_dfl_cgrp));
        let kn: *const u8 = field(cgroup, offset!(cgroup_kn));
        field(kn, offset!(kernfs_node_id))
    }
}

/// The current task, as a BTF pointer.
#[inline(always)]
pub fn current_task() -> *const u8 {
    // SAFETY: no preconditions; the helper returns a trusted BTF pointer.
    unsafe { bpf_get_current_task_btf().cast::<u8>().cast_const() }
}

/// The cgroup v2 id of `task` (the current task): plain loads where the
/// offsets are known, which avoids a helper call on every syscall; the helper
/// otherwise.
#[inline(always)]
pub fn current_cgroup_id(task: *const u8) -> u64 {
    if offset!(direct_cgroup_id) == 0 {
        // SAFETY: no preconditions.
        return unsafe { bpf_get_current_cgroup_id() };
    }
    // SAFETY: the current task is a BTF pointer and the offsets are known.
    unsafe { task_cgroup_id(task) }
}

/// Whether the current syscall of `task` (the current task), whose
/// registers `sys_enter` got as `regs`, is a 32-bit compat one:
/// - x86: `TS_COMPAT` in `current->thread_info.status`, set by the ia32
///   entry points for exactly that syscall (arch/x86/include/asm/
///   thread_info.h at v6.18);
/// - aarch64: `PSR_MODE32_BIT` in the saved `pstate` of the user registers,
///   the architecture's mark of AArch32 state, which is what
///   `compat_user_mode()` tests (arch/arm64/include/asm/ptrace.h at v6.18).
#[inline(always)]
pub fn in_compat_syscall(task: *const u8, regs: *const u8) -> bool {
    let mask = offset!(compat_mask);
    if mask == 0 {
        return false;
    }
    let base = if offset!(compat_in_regs) != 0 {
        regs
    } else {
        task
    };
    // SAFETY: the current task and the tracepoint's registers are BTF
    // pointers.
    let word: u32 = unsafe { field(base, offset!(compat_offset)) };
    word & mask != 0
}

/// Whether `task` (an exiting task) is the last live thread of its process
/// (`signal->live` is 0: do_exit() decrements it before
/// `sched_process_exit` on every kernel, kernel/exit.c at v6.18; a thread
/// that reads 0 may not be the one that made it so, but then the whole
/// group is exiting anyway). Without the offsets, the leader's exit counts.
///
/// # Safety
/// `task` must be a BTF pointer to a `task_struct`.
#[inline(always)]
pub unsafe fn group_dead(task: *const u8, tgid: u32, pid: u32) -> bool {
    if offset!(task_signal) == 0 {
        return tgid == pid;
    }
    unsafe {
        let signal: *const u8 = field(task, offset!(task_signal));
        let live: i32 = field(signal, offset!(signal_live));
        live == 0
    }
}

/// The address range of the command line of `task`'s new program
/// (`mm->arg_start`, `mm->arg_end`, set up by exec), or `None`.
///
/// # Safety
/// `task` must be a BTF pointer to a `task_struct`.
#[inline(always)]
pub unsafe fn task_args(task: *const u8) -> Option<(u64, u64)> {
    if offset!(task_mm) == 0 {
        return None;
    }
    unsafe {
        let mm: *const u8 = field(task, offset!(task_mm));
        if mm.is_null() {
            return None;
        }
        let start: u64 = field(mm, offset!(mm_arg_start));
        let end: u64 = field(mm, offset!(mm_arg_end));
        (end > start).then_some((start, end))
    }
}

/// The inode number of `task`'s mount namespace
/// (`task->nsproxy->mnt_ns->ns.inum`), or 0 if unknown. `nsproxy` is NULL for
/// an exiting task; the load then reads 0.
///
/// # Safety
/// `task` must be a BTF pointer to a `task_struct`.
#[inline(always)]
pub unsafe fn task_mnt_ns(task: *const u8) -> u32 {
    if offset!(task_nsproxy) == 0 {
        return 0;
    }
    unsafe {
        let nsproxy: *const u8 = field(task, offset!(task_nsproxy));
        let mnt_ns: *const u8 = field(nsproxy, offset!(nsproxy_mnt_ns));
        field(mnt_ns, offset!(mnt_ns_inum))
    }
}

/// All of [`OFFSETS`] at once, for the hooks that are not on the hot path.
#[inline(always)]
pub fn load_offsets() -> KernelOffsets {
    // SAFETY: a read of a static.
    unsafe { core::ptr::read_volatile(&raw const OFFSETS) }
}
