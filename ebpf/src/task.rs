//! Reads from the current task that have no helper.
use aya_ebpf::{Global, helpers::bpf_get_current_task_btf};
use syscensus_common::KernelOffsets;

/// Offsets into kernel structs, found by the agent in the running kernel's
/// BTF and written here before the program is loaded. `.rodata` is frozen
/// after load, so the verifier sees these as constants.
#[unsafe(no_mangle)]
pub static OFFSETS: Global<KernelOffsets> = Global::new(KernelOffsets {
    ti_status: u32::MAX,
    ts_compat: 0,
});

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
