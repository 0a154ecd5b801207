//! Reads from the current task that have no helper.
use aya_ebpf::{
    Global,
    helpers::{bpf_get_current_cgroup_id, bpf_get_current_task_btf},
};
use syscensus_common::KernelOffsets;

/// Offsets into kernel structs, found by the agent in the running kernel's
/// BTF and written here before the program is loaded. `.rodata` is frozen
/// after load, so the verifier sees these as constants.
#[unsafe(no_mangle)]
pub static OFFSETS: Global<KernelOffsets> = Global::new(KernelOffsets {
    ti_status: 0,
    ts_compat: 0,
    direct_cgroup_id: 0,
    task_cgroups: 0,
    css_set_dfl_cgrp: 0,
    cgroup_kn: 0,
    kernfs_node_id: 0,
    _pad: 0,
});

/// The cgroup v2 id of the current task: `current->cgroups->dfl_cgrp->kn->id`,
/// what `bpf_get_current_cgroup_id()` returns (kernel/bpf/helpers.c at
/// v6.18), read with plain loads when the offsets are known, which avoids a
/// helper call on every syscall.
#[inline(always)]
pub fn current_cgroup_id() -> u64 {
    let offsets = OFFSETS.load();
    if offsets.direct_cgroup_id == 0 {
        return unsafe { bpf_get_current_cgroup_id() };
    }
    // SAFETY: BTF pointers: the verifier checks each load against the
    // kernel's types and a faulting load reads zero instead of crashing. A
    // tracepoint program runs under RCU, which keeps `cgroups` alive.
    unsafe {
        let task = bpf_get_current_task_btf().cast::<u8>();
        let css_set = task
            .add(offsets.task_cgroups as usize)
            .cast::<*const u8>()
            .read();
        let cgroup = css_set
            .add(offsets.css_set_dfl_cgrp as usize)
            .cast::<*const u8>()
            .read();
        let kn = cgroup
            .add(offsets.cgroup_kn as usize)
            .cast::<*const u8>()
            .read();
        kn.add(offsets.kernfs_node_id as usize).cast::<u64>().read()
    }
}

/// Whether the current syscall is a 32-bit compat one (x86: `TS_COMPAT` in
/// `current->thread_info.status`, set by the ia32 entry points for exactly
/// that syscall; see arch/x86/include/asm/thread_info.h at v6.18).
#[inline(always)]
pub fn in_compat_syscall() -> bool {
    let offsets = OFFSETS.load();
    if offsets.ts_compat == 0 {
        return false;
    }
    // SAFETY: the helper returns the current task as a BTF pointer; the
    // verifier checks the load against task_struct's layout and the kernel
    // fixes up a faulting load, so a wrong offset cannot crash the kernel.
    unsafe {
        let task = bpf_get_current_task_btf().cast::<u8>();
        let status = task.add(offsets.ti_status as usize).cast::<u32>().read();
        status & offsets.ts_compat != 0
    }
}
