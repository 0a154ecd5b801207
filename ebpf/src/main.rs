//! The syscensus kernel program.
//!
//! Two hooks share three maps (see `maps.rs`):
//! - `sys_enter` (BTF tracepoint) marks, for every syscall of a cgroup that
//!   userspace put in `ROWS`, the syscall's byte in that cgroup's row;
//! - `sched_process_exec` (BTF tracepoint) starts recording a marked cgroup at
//!   the first exec completed inside it, so that a container runtime's own
//!   set-up calls (mount, pivot_root, ...) are not recorded.
#![no_std]
#![no_main]

mod exec;
mod maps;
mod sys_enter;
mod task;

/// Dual-licensed so that the GPL-only tracing helpers are available.
#[unsafe(no_mangle)]
#[unsafe(link_section = "license")]
pub static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    // The verifier rejects any program with a reachable panic path, so this
    // is never called.
    loop {}
}
