//! `cgroup_attach_task`: a process moved into a recorded container's cgroup
//! after the recording started is an exec session (see `session.rs`).
use aya_ebpf::{macros::btf_tracepoint, programs::BtfTracePointContext};

use crate::{
    session::entered_from_outside,
    task::{field, offset},
};

/// Attached to `cgroup_attach_task`: `(struct cgroup *dst_cgrp, const char
/// *path, struct task_struct *task, bool threadgroup)`, for every task moved
/// between cgroups of any hierarchy; only cgroup v2 (hierarchy 0) matters.
#[btf_tracepoint(function = "cgroup_attach_task")]
pub fn cgroup_attach_task(ctx: BtfTracePointContext) -> i32 {
    if offset!(cgroup_root) == 0 || offset!(direct_cgroup_id) == 0 {
        return 0;
    }
    let cgroup: *const u8 = ctx.arg(0);
    let task: *const u8 = ctx.arg(2);
    // SAFETY: BTF pointers from the tracepoint's arguments and loads through
    // them; the verifier checks each against the kernel's types.
    unsafe {
        let root: *const u8 = field(cgroup, offset!(cgroup_root));
        let hierarchy_id: i32 = field(root, offset!(root_hierarchy_id));
        if hierarchy_id != 0 {
            return 0;
        }
        let kn: *const u8 = field(cgroup, offset!(cgroup_kn));
        let cgroup_id: u64 = field(kn, offset!(kernfs_node_id));
        let tgid: u32 = field(task, offset!(task_tgid));
        entered_from_outside(cgroup_id, tgid);
    }
    0
}
