//! The kernel struct offsets the program needs, from the running kernel's
//! BTF. Every path has had its shape for years; where one is missing, the
//! program falls back (to a helper, or to not using a hook) rather than
//! failing, and the agent says so.
use syscensus_common::{KernelOffsets, ancestors};
use tracing::{debug, warn};

use crate::btf::{Btf, BtfError};

/// Offsets for the running kernel.
pub fn kernel_offsets(btf: &Btf) -> Result<KernelOffsets, BtfError> {
    let mut offsets = KernelOffsets::default();

    // task->cgroups->dfl_cgrp->kn->id: what bpf_get_current_cgroup_id()
    // reads (kernel/bpf/helpers.c), the same since v5.5.
    let direct = (|| -> Result<[u32; 7], BtfError> {
        Ok([
            btf.member_offset("task_struct", "cgroups")?,
            btf.member_offset("css_set", "dfl_cgrp")?,
            btf.member_offset("cgroup", "kn")?,
            btf.member_offset("kernfs_node", "id")?,
            btf.member_offset("task_struct", "real_parent")?,
            btf.member_offset("task_struct", "tgid")?,
            btf.member_offset("task_struct", "pid")?,
        ])
    })();
    match direct {
        Ok([cgroups, dfl_cgrp, kn, id, real_parent, tgid, pid]) => {
            offsets.direct_cgroup_id = 1;
            offsets.task_cgroups = cgroups;
            offsets.css_set_dfl_cgrp = dfl_cgrp;
            offsets.cgroup_kn = kn;
            offsets.kernfs_node_id = id;
            offsets.task_real_parent = real_parent;
            offsets.task_tgid = tgid;
            offsets.task_pid = pid;
        }
        Err(error) => {
            warn!(%error, "kernel layout unknown: cgroup ids read with a helper, exec sessions not excluded");
        }
    }

    // cgroup->ancestors[] (v6.0+) or cgroup->ancestor_ids[] (v5.x),
    // cgroup->level, cgroup->root->hierarchy_id (include/linux/cgroup-defs.h).
    if offsets.direct_cgroup_id == 1 {
        let common = (|| -> Result<[u32; 3], BtfError> {
            Ok([
                btf.member_offset("cgroup", "level")?,
                btf.member_offset("cgroup", "root")?,
                btf.member_offset("cgroup_root", "hierarchy_id")?,
            ])
        })();
        let (mode, ancestors_offset) = match (
            btf.member_offset("cgroup", "ancestors"),
            btf.member_offset("cgroup", "ancestor_ids"),
        ) {
            (Ok(off), _) => (ancestors::POINTERS, off),
            (_, Ok(off)) => (ancestors::IDS, off),
            _ => (ancestors::NONE, 0),
        };
        match common {
            Ok([level, root, hierarchy_id]) => {
                offsets.cgroup_root = root;
                offsets.root_hierarchy_id = hierarchy_id;
                if mode != ancestors::NONE {
                    offsets.ancestors_mode = mode;
                    offsets.cgroup_ancestors = ancestors_offset;
                    offsets.cgroup_level = level;
                } else {
                    debug!("cgroup ancestors unreadable: new cgroups are not marked by the kernel");
                }
            }
            Err(error) => {
                debug!(%error, "cgroup roots unreadable: exec sessions are excluded at exec only")
            }
        }
    }

    // PFA_NO_NEW_PRIVS is bit 0 of atomic_flags (include/linux/sched.h);
    // task->nsproxy->mnt_ns->ns.inum (include/linux/nsproxy.h,
    // fs/mount.h) tells the runtime's execs from the container's.
    if offsets.direct_cgroup_id == 1 {
        offsets.task_atomic_flags = btf
            .member_offset("task_struct", "atomic_flags")
            .unwrap_or(0);
        let mnt_ns = (|| -> Result<[u32; 3], BtfError> {
            Ok([
                btf.member_offset("task_struct", "nsproxy")?,
                btf.member_offset("nsproxy", "mnt_ns")?,
                btf.member_offset("mnt_namespace", "ns.inum")?,
            ])
        })();
        match mnt_ns {
            Ok([nsproxy, mnt, inum]) => {
                offsets.task_nsproxy = nsproxy;
                offsets.nsproxy_mnt_ns = mnt;
                offsets.mnt_ns_inum = inum;
            }
            Err(error) => {
                warn!(%error, "mount namespaces unreadable: a runtime's own exec may start a recording early")
            }
        }
    }

    #[cfg(target_arch = "x86_64")]
    {
        // TS_COMPAT: arch/x86/include/asm/thread_info.h at v6.18 (a #define,
        // so not in BTF; unchanged since 2.6).
        const TS_COMPAT: u32 = 0x0002;
        let thread_info = btf.member_offset("task_struct", "thread_info")?;
        let status = btf.member_offset("thread_info", "status")?;
        offsets.ti_status = thread_info + status;
        offsets.ts_compat = TS_COMPAT;
    }
    Ok(offsets)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    /// This machine's kernel has every path the program can use.
    #[test]
    fn the_running_kernel_has_every_offset() {
        let offsets = kernel_offsets(&Btf::from_kernel().unwrap()).unwrap();
        assert_eq!(offsets.direct_cgroup_id, 1);
        assert_eq!(offsets.ancestors_mode, ancestors::POINTERS);
        assert!(offsets.task_cgroups > 0 && offsets.task_tgid > 0 && offsets.cgroup_ancestors > 0);
        assert!(offsets.task_atomic_flags > 0);
        assert!(offsets.task_nsproxy > 0 && offsets.nsproxy_mnt_ns > 0 && offsets.mnt_ns_inum > 0);
        assert_eq!(
            offsets.task_pid + 4,
            offsets.task_tgid,
            "pid and tgid are neighbours in task_struct"
        );
    }
}
