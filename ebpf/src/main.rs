//! The syscensus kernel program.
//!
//! BTF tracepoints sharing the maps of `maps.rs`:
//! - `sys_enter` marks, for every syscall of a marked cgroup, the syscall's
//!   byte in that cgroup's row (the only hook on the hot path);
//! - `sched_process_exec` starts recording a marked cgroup at the first exec
//!   completed inside it, so that a container runtime's own set-up calls
//!   (mount, pivot_root, ...) are not recorded;
//! - `sched_process_fork` and `sched_process_exit` keep the set of the
//!   workload's processes (`members.rs`), so that exec sessions are left out;
//! - `cgroup_mkdir` marks a cgroup made below a watched one before anything
//!   can run in it;
//! - `cgroup_attach_task` names the first process of a cgroup that userspace
//!   marked as already recording.
//!
//! The refusal watch (`watch.rs`), attached only while a container is
//! watched: `sys_exit` counts the syscalls a watched container's profile
//! refused with an errno (or logged, in complain mode), `signal_generate`
//! those it killed or trapped, `seccomp_thread_exit` (on
//! `sched_process_exit`) a thread it killed alone, which gets no signal.
#![no_std]
#![no_main]
#![allow(
    unreachable_pub,
    reason = "a binary whose maps and programs the loader finds by symbol: pub or pub(crate) makes no difference"
)]
#![allow(
    unused_crate_dependencies,
    reason = "the package's library target (lib.rs) is empty; it exists for the agent's build-dependency"
)]

mod attach;
mod cgroup_mkdir;
mod exec;
mod fork;
mod maps;
mod members;
mod sigsys;
mod sys_enter;
mod sys_exit;
mod task;
mod watch;

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
