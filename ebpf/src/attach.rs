//! `cgroup_attach_task`: the first process moved into a cgroup that
//! userspace marked as already recording (or one below it), with nobody in
//! it yet, is the workload's first process. (Anyone else who enters later is
//! not a member: see `members.rs`.)
use aya_ebpf::{macros::btf_tracepoint, programs::BtfTracePointContext};
use syscensus_common::state;

use crate::{
    maps::{filter_hit, resolve},
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
    let (hierarchy_id, cgroup_id, tgid) = unsafe {
        let root: *const u8 = field(cgroup, offset!(cgroup_root));
        let hierarchy_id: i32 = field(root, offset!(root_hierarchy_id));
        let kn: *const u8 = field(cgroup, offset!(cgroup_kn));
        let cgroup_id: u64 = field(kn, offset!(kernfs_node_id));
        let tgid: u32 = field(task, offset!(task_tgid));
        (hierarchy_id, cgroup_id, tgid)
    };
    if hierarchy_id != 0 || !filter_hit(cgroup_id) {
        return 0;
    }
    let Some((_, row)) = resolve(cgroup_id) else {
        return 0;
    };
    // SAFETY: `row` points into a live map value of type `Row`.
    unsafe {
        if (*row).state == state::RECORDING && (*row).init_tgid == 0 {
            (*row).init_tgid = tgid;
        }
    }
    0
}
