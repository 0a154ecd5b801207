//! The kernel struct offsets the program needs, from the running kernel's
//! BTF. Every path has had its shape for years; where one is missing, the
//! program falls back (to a helper, or to not using a hook) rather than
//! failing, and the agent says so.
use syscensus_common::{KernelOffsets, ancestors};
use tracing::{debug, warn};

use crate::btf::{Btf, BtfError};

/// The kernel's architecture, as far as compat syscalls go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Cpu {
    X86_64,
    Aarch64,
    /// One whose compat syscalls are not told apart.
    Other,
}

impl Cpu {
    /// The architecture this build runs on.
    pub(super) fn native() -> Cpu {
        if cfg!(target_arch = "x86_64") {
            Cpu::X86_64
        } else if cfg!(target_arch = "aarch64") {
            Cpu::Aarch64
        } else {
            Cpu::Other
        }
    }
}

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

    // A process's last thread: task->signal->live (include/linux/
    // sched/signal.h), an atomic_t since 2.6.
    if offsets.direct_cgroup_id == 1 {
        match (
            btf.member_offset("task_struct", "signal"),
            btf.member_offset("signal_struct", "live"),
        ) {
            (Ok(signal), Ok(live)) => {
                offsets.task_signal = signal;
                offsets.signal_live = live;
            }
            (Err(error), _) | (_, Err(error)) => {
                warn!(%error, "thread groups unreadable: a process whose main thread exits first leaves the workload")
            }
        }
        // The command line of a new program: task->mm->arg_start..arg_end
        // (include/linux/mm_types.h).
        let args = (|| -> Result<[u32; 3], BtfError> {
            Ok([
                btf.member_offset("task_struct", "mm")?,
                btf.member_offset("mm_struct", "arg_start")?,
                btf.member_offset("mm_struct", "arg_end")?,
            ])
        })();
        match args {
            Ok([mm, start, end]) => {
                offsets.task_mm = mm;
                offsets.mm_arg_start = start;
                offsets.mm_arg_end = end;
            }
            Err(error) => {
                warn!(%error, "command lines unreadable: exec sessions are listed without them")
            }
        }
        // A thread's id and start time (include/linux/sched.h) name it for
        // the cache of the recorded path: ids are reused, the pair is not.
        offsets.task_start_time = btf.member_offset("task_struct", "start_time").unwrap_or(0);
    }

    let compat = compat_marker(Cpu::native(), btf)?;
    offsets.compat_offset = compat.offset;
    offsets.compat_mask = compat.mask;
    offsets.compat_in_regs = u32::from(compat.in_regs);
    Ok(offsets)
}

/// Where the kernel program sees that a syscall is a 32-bit compat one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct CompatMarker {
    /// Offset of the word to test: into the current `task_struct`, or into
    /// the `pt_regs` that `sys_enter` gets when `in_regs`.
    pub offset: u32,
    /// The bits that mark a compat syscall; 0: none is told apart.
    pub mask: u32,
    pub in_regs: bool,
}

/// Where a compat syscall shows on `cpu`, in the layout of `btf`.
/// - x86_64 (ia32): `TS_COMPAT` in `task->thread_info.status`, set by the
///   ia32 entry points for the syscall being made
///   (arch/x86/include/asm/thread_info.h at v6.18: a #define, so not in
///   BTF; 0x0002 since 2.6).
/// - aarch64 (AArch32): `PSR_MODE32_BIT` (0x10, the architecture's M[4]
///   bit: the exception came from AArch32) in `regs->pstate`, the saved
///   user state that `compat_user_mode()` tests
///   (arch/arm64/include/asm/ptrace.h at v6.18). The `thread_info` flag
///   `TIF_32BIT` says the same, but its number is a #define that the
///   generic TIF rework of 2025 moves, while the architecture's bit cannot
///   move.
pub(super) fn compat_marker(cpu: Cpu, btf: &Btf) -> Result<CompatMarker, BtfError> {
    Ok(match cpu {
        Cpu::X86_64 => {
            const TS_COMPAT: u32 = 0x0002;
            let thread_info = btf.member_offset("task_struct", "thread_info")?;
            let status = btf.member_offset("thread_info", "status")?;
            CompatMarker {
                offset: thread_info + status,
                mask: TS_COMPAT,
                in_regs: false,
            }
        }
        Cpu::Aarch64 => {
            const PSR_MODE32_BIT: u32 = 0x10;
            CompatMarker {
                offset: btf.member_offset("pt_regs", "pstate")?,
                mask: PSR_MODE32_BIT,
                in_regs: true,
            }
        }
        Cpu::Other => CompatMarker {
            offset: 0,
            mask: 0,
            in_regs: false,
        },
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    /// BTF with just `struct pt_regs { <anonymous union> { <anonymous
    /// struct> { ... u64 pstate at byte 264 } } }`, aarch64's layout.
    fn aarch64_pt_regs() -> Vec<u8> {
        const INT: u32 = 1;
        const STRUCT: u32 = 4;
        const UNION: u32 = 5;
        let strings = b"\0u64\0pt_regs\0pstate\0".to_vec();
        let types: Vec<u32> = vec![
            // 1: u64
            1,
            INT << 24,
            8,
            64,
            // 2: anonymous struct { u64 pstate; } at 264 bytes
            0,
            STRUCT << 24 | 1,
            272,
            13,
            1,
            264 * 8,
            // 3: anonymous union { struct 2; }
            0,
            UNION << 24 | 1,
            272,
            0,
            2,
            0,
            // 4: struct pt_regs { union 3; }
            5,
            STRUCT << 24 | 1,
            336,
            0,
            3,
            0,
        ];
        let type_bytes: Vec<u8> = types.iter().flat_map(|w| w.to_ne_bytes()).collect();
        let mut data = Vec::new();
        data.extend_from_slice(&0xeb9f_u16.to_ne_bytes());
        data.extend_from_slice(&[1, 0]);
        for w in [
            24u32,
            0,
            type_bytes.len() as u32,
            type_bytes.len() as u32,
            strings.len() as u32,
        ] {
            data.extend_from_slice(&w.to_ne_bytes());
        }
        data.extend_from_slice(&type_bytes);
        data.extend_from_slice(&strings);
        data
    }

    /// AArch32 syscalls on aarch64 are told by the AArch32 bit of the saved
    /// user state, read from the registers `sys_enter` gets; ia32 syscalls
    /// on x86_64 by TS_COMPAT in the task.
    #[test]
    fn compat_syscalls_are_told_apart_per_architecture() {
        let arm64 = Btf::parse(&aarch64_pt_regs(), std::path::Path::new("arm64")).unwrap();
        assert_eq!(
            compat_marker(Cpu::Aarch64, &arm64).unwrap(),
            CompatMarker {
                offset: 264,
                mask: 0x10,
                in_regs: true
            }
        );
        let running = Btf::from_kernel().unwrap();
        let x86 = compat_marker(Cpu::X86_64, &running).unwrap();
        assert_eq!((x86.mask, x86.in_regs), (0x0002, false));
        // Elsewhere none is told apart.
        assert_eq!(compat_marker(Cpu::Other, &running).unwrap().mask, 0);
    }

    /// This machine's kernel has every path the program can use.
    #[test]
    fn the_running_kernel_has_every_offset() {
        let offsets = kernel_offsets(&Btf::from_kernel().unwrap()).unwrap();
        assert_eq!(offsets.direct_cgroup_id, 1);
        assert_eq!(offsets.ancestors_mode, ancestors::POINTERS);
        assert!(offsets.task_cgroups > 0 && offsets.task_tgid > 0 && offsets.cgroup_ancestors > 0);
        assert!(offsets.task_atomic_flags > 0);
        assert!(offsets.task_nsproxy > 0 && offsets.nsproxy_mnt_ns > 0 && offsets.mnt_ns_inum > 0);
        assert!(offsets.task_signal > 0 && offsets.signal_live > 0);
        assert!(offsets.task_mm > 0 && offsets.mm_arg_end == offsets.mm_arg_start + 8);
        assert!(offsets.task_start_time > 0);
        assert_eq!(
            (offsets.compat_mask, offsets.compat_in_regs),
            (0x0002, 0),
            "x86_64 reads TS_COMPAT from the task"
        );
        assert_eq!(
            offsets.task_pid + 4,
            offsets.task_tgid,
            "pid and tgid are neighbours in task_struct"
        );
    }
}
