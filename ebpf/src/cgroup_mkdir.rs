//! `cgroup_mkdir`: a cgroup made below a watched one (the kubelet's
//! `kubepods` tree) is marked at once, before any process can be moved into
//! it, so that no container starts unrecorded however slow userspace is.
//! Its path goes to userspace through the ring buffer. A cgroup made at one
//! of the configured root paths is watched from then on.
use aya_ebpf::{
    helpers::{bpf_probe_read_kernel, bpf_probe_read_kernel_str_bytes},
    macros::btf_tracepoint,
    programs::BtfTracePointContext,
};
use syscensus_common::{
    CgroupEvent, MAX_WATCH_LEVEL, ROOT_PATH_BYTES, RowKey, abi, ancestors, counter, event, flag,
};

use crate::{
    maps::{EVENTS, ROOT_PATHS, ROWS, WATCH, ZERO_ROW, count, filter_set},
    task::{current_task, task_mnt_ns},
};

/// `BPF_NOEXIST`: create the element only if it is absent.
const BPF_NOEXIST: u64 = 1;

/// Attached to `cgroup_mkdir`: `(struct cgroup *cgrp, const char *path)`,
/// for every hierarchy; only cgroup v2 (hierarchy 0) matters.
#[btf_tracepoint(function = "cgroup_mkdir")]
pub fn cgroup_mkdir(ctx: BtfTracePointContext) -> i32 {
    let cgroup: *const u8 = ctx.arg(0);
    let path: *const u8 = ctx.arg(1);
    let _ = try_cgroup_mkdir(cgroup, path);
    0
}

/// Reads a `T` from kernel memory at `base + offset`. The ancestors array is
/// a flexible array member, which the verifier does not let BTF loads index,
/// so this hook reads with the helper (it runs once per cgroup made).
#[inline(always)]
fn read<T: Copy>(base: u64, offset: u32) -> Result<T, i64> {
    // SAFETY: the helper checks the address and fails instead of faulting.
    unsafe { bpf_probe_read_kernel((base + u64::from(offset)) as *const T).map_err(|e| e as i64) }
}

#[inline(always)]
fn try_cgroup_mkdir(cgroup: *const u8, path: *const u8) -> Result<(), i64> {
    let offsets = crate::task::load_offsets();
    if offsets.ancestors_mode == ancestors::NONE {
        return Ok(());
    }
    let cgroup = cgroup as u64;
    let root: u64 = read(cgroup, offsets.cgroup_root)?;
    let hierarchy_id: i32 = read(root, offsets.root_hierarchy_id)?;
    if hierarchy_id != 0 {
        return Ok(());
    }
    let level: i32 = read(cgroup, offsets.cgroup_level)?;
    let kn: u64 = read(cgroup, offsets.cgroup_kn)?;
    let cgroup_id: u64 = read(kn, offsets.kernfs_node_id)?;
    if !watched(cgroup, level as u32, &offsets)? {
        if is_root_path(path) {
            let _ = WATCH.insert(cgroup_id, 1, 0);
            send_event(event::ROOT, cgroup_id, level, path);
        }
        return Ok(());
    }

    let zero = ZERO_ROW.get(0).ok_or(0)?;
    let key = RowKey::new(cgroup_id, abi::NATIVE);
    if ROWS.insert(key, zero, BPF_NOEXIST).is_err() {
        count(counter::ROW_MAP_FULL);
        // Userspace names the container that will go unrecorded.
        send_event(event::LOST, cgroup_id, level, path);
        return Ok(());
    }
    if let Some(row) = ROWS.get_ptr_mut(key) {
        // SAFETY: points into the live map value just created; the current
        // task (the runtime making the cgroup) is a BTF pointer.
        unsafe {
            (*row).flags[flag::FROM_MKDIR] = 1;
            (*row).creator_mntns = task_mnt_ns(current_task());
        }
    }
    // After the row, so that userspace, which clears a slot and then looks
    // for rows using it, never clears a slot a new row needs.
    filter_set(cgroup_id);
    count(counter::MKDIR_MARKED);
    send_event(event::MARKED, cgroup_id, level, path);
    Ok(())
}

/// Tells userspace about a cgroup, with its path.
#[inline(always)]
fn send_event(kind: u16, cgroup_id: u64, level: i32, path: *const u8) {
    let Some(mut entry) = EVENTS.reserve::<CgroupEvent>(0) else {
        count(counter::EVENTS_LOST);
        return;
    };
    let event = entry.as_mut_ptr();
    // SAFETY: `event` points to reserved ring buffer memory of the right size.
    unsafe {
        (*event).cgroup_id = cgroup_id;
        (*event).level = level as u32;
        (*event).kind = kind;
        (*event).path_len = match bpf_probe_read_kernel_str_bytes(path, &mut (*event).path) {
            Ok(bytes) => bytes.len() as u16,
            Err(_) => 0,
        };
    }
    entry.submit(0);
}

/// Whether `path` is one of the configured root paths.
#[inline(always)]
fn is_root_path(path: *const u8) -> bool {
    let mut buf = [0u8; ROOT_PATH_BYTES];
    // SAFETY: the helper checks the address and fails instead of faulting.
    if unsafe { bpf_probe_read_kernel_str_bytes(path, &mut buf) }.is_err() {
        return false;
    }
    for i in 0..syscensus_common::ROOT_PATHS {
        let Some(root) = ROOT_PATHS.get(i) else {
            continue;
        };
        if root[0] != 0 && *root == buf {
            return true;
        }
    }
    false
}

/// Whether an ancestor of the cgroup (not the cgroup itself) is watched.
#[inline(always)]
fn watched(
    cgroup: u64,
    level: u32,
    offsets: &syscensus_common::KernelOffsets,
) -> Result<bool, i64> {
    for i in 0..MAX_WATCH_LEVEL {
        if i >= level {
            break;
        }
        let id: u64 = if offsets.ancestors_mode == ancestors::POINTERS {
            let ancestor: u64 = read(cgroup, offsets.cgroup_ancestors + 8 * i)?;
            let kn: u64 = read(ancestor, offsets.cgroup_kn)?;
            read(kn, offsets.kernfs_node_id)?
        } else {
            read(cgroup, offsets.cgroup_ancestors + 8 * i)?
        };
        if WATCH.get_ptr(id).is_some() {
            return Ok(true);
        }
    }
    Ok(false)
}
