//! `cgroup_mkdir`: a cgroup made below a watched one (the kubelet's
//! `kubepods` tree) is marked at once, before any process can be moved into
//! it, so that no container starts unrecorded however slow userspace is.
//! Its path goes to userspace through the ring buffer. A cgroup made at one
//! of the configured root paths is watched from then on.
//!
//! A cgroup made below a container that is recording (or that userspace
//! marked itself, like `syscensus record`'s cgroup), however deep, belongs
//! to that container: it gets no row of its own but an entry in `ALIAS`, so
//! that every hook records what runs in it in the container's rows. Below a
//! marked cgroup that is not recording yet (a Pod's, or a container's still
//! being set up by its runtime: crun makes its `container` sub-cgroup then)
//! it gets a row of its own that names that cgroup as its parent, for
//! userspace to join to its container once it knows which cgroups are
//! containers.
use aya_ebpf::{
    helpers::{bpf_probe_read_kernel, bpf_probe_read_kernel_str_bytes},
    macros::btf_tracepoint,
    programs::BtfTracePointContext,
};
use syscensus_common::{
    CgroupEvent, KernelOffsets, MAX_WATCH_LEVEL, ROOT_PATH_BYTES, RowKey, abi, ancestors, counter,
    event, flag, state,
};

use crate::{
    maps::{ALIAS, EVENTS, ROOT_PATHS, ROWS, WATCH, ZERO_ROW, count, filter_set},
    task::{current_task, task_mnt_ns},
};

/// What a new cgroup is, from its nearest ancestor that the program knows.
enum Place {
    /// Nothing recorded or watched above it.
    Outside,
    /// Part of this recorded cgroup.
    Alias(u64),
    /// A cgroup to mark with a row of its own; the value is its nearest
    /// marked ancestor (0 below a watched cgroup).
    Row(u64),
}

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
    let parent = match place(cgroup, level as u32, &offsets)? {
        Place::Outside => {
            if is_root_path(path) {
                let _ = WATCH.insert(cgroup_id, 1, 0);
                send_event(event::ROOT, cgroup_id, level, path);
            }
            return Ok(());
        }
        Place::Alias(owner) => {
            alias(cgroup_id, owner);
            return Ok(());
        }
        Place::Row(parent) => parent,
    };

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
            (*row).parent = parent;
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

/// Records a cgroup made below the recorded cgroup `owner` as part of it.
#[inline(always)]
fn alias(cgroup_id: u64, owner: u64) {
    if ALIAS.insert(cgroup_id, owner, 0).is_err() {
        count(counter::ALIAS_FULL);
        if let Some(row) = ROWS.get_ptr_mut(RowKey::new(owner, abi::NATIVE)) {
            // SAFETY: points into a live map value of type `Row`.
            unsafe { (*row).flags[flag::ALIAS_LOST] = 1 };
        }
        return;
    }
    // After the alias, as for rows (see `release_slot` in userspace).
    filter_set(cgroup_id);
    count(counter::ALIASES);
}

/// Where a new cgroup belongs, from its ancestors (not the cgroup itself),
/// nearest first: below a cgroup that is part of a recorded one, or below a
/// recorded one that is recording or that userspace marked, it is part of
/// that; below another marked cgroup or a watched one, it is marked itself.
#[inline(always)]
fn place(cgroup: u64, level: u32, offsets: &KernelOffsets) -> Result<Place, i64> {
    for step in 0..MAX_WATCH_LEVEL {
        if step >= level {
            break;
        }
        let i = level - 1 - step;
        let id: u64 = if offsets.ancestors_mode == ancestors::POINTERS {
            let ancestor: u64 = read(cgroup, offsets.cgroup_ancestors + 8 * i)?;
            let kn: u64 = read(ancestor, offsets.cgroup_kn)?;
            read(kn, offsets.kernfs_node_id)?
        } else {
            read(cgroup, offsets.cgroup_ancestors + 8 * i)?
        };
        if let Some(owner) = ALIAS.get_ptr(id) {
            // SAFETY: a live map value.
            return Ok(Place::Alias(unsafe { *owner }));
        }
        if let Some(row) = ROWS.get_ptr(RowKey::new(id, abi::NATIVE)) {
            // SAFETY: a live map value of type `Row`.
            let (recording, from_mkdir) = unsafe {
                (
                    (*row).state == state::RECORDING,
                    (*row).flags[flag::FROM_MKDIR],
                )
            };
            return Ok(if recording || from_mkdir == 0 {
                Place::Alias(id)
            } else {
                Place::Row(id)
            });
        }
        if WATCH.get_ptr(id).is_some() {
            return Ok(Place::Row(0));
        }
    }
    Ok(Place::Outside)
}
