//! The prefilter, seen from userspace through a shared memory mapping.
use std::{
    io,
    os::fd::{AsFd as _, AsRawFd as _},
    ptr::NonNull,
};

use aya::maps::MapData;
use syscensus_common::{FILTER_SLOTS, filter_slot};

/// The kernel program's `FILTER` array, mapped into this process. Each slot
/// is one byte, written with a single volatile store, so that this side and
/// the kernel (which sets slots for cgroups it marks) never overwrite each
/// other's slots.
pub struct Filter {
    base: NonNull<u8>,
    /// Keeps the map alive while it is mapped.
    _map: MapData,
}

// SAFETY: the mapping is shared memory owned by this value; every access is a
// single-byte volatile read or write.
unsafe impl Send for Filter {}

impl Filter {
    /// Maps the filter array of `map` (created with `BPF_F_MMAPABLE`).
    pub fn map(map: MapData) -> io::Result<Filter> {
        let fd = map.fd().as_fd().as_raw_fd();
        // SAFETY: maps FILTER_SLOTS bytes of an array map's value area, shared
        // with the kernel; the length is the map's value size.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                FILTER_SLOTS,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let base = NonNull::new(base.cast::<u8>())
            .ok_or_else(|| io::Error::other("mmap returned null"))?;
        Ok(Filter { base, _map: map })
    }

    fn slot(&self, cgroup_id: u64) -> *mut u8 {
        // SAFETY: filter_slot is below FILTER_SLOTS, the mapping's length.
        unsafe { self.base.as_ptr().add(filter_slot(cgroup_id)) }
    }

    /// Sets the slot of `cgroup_id`.
    pub fn set(&mut self, cgroup_id: u64) {
        // SAFETY: in bounds (see `slot`).
        unsafe { self.slot(cgroup_id).write_volatile(1) };
    }

    /// Clears the slot of `cgroup_id`.
    pub fn clear(&mut self, cgroup_id: u64) {
        // SAFETY: in bounds (see `slot`).
        unsafe { self.slot(cgroup_id).write_volatile(0) };
    }

    /// Whether the slot of `cgroup_id` is set.
    pub fn is_set(&self, cgroup_id: u64) -> bool {
        // SAFETY: in bounds (see `slot`).
        unsafe { self.slot(cgroup_id).read_volatile() != 0 }
    }

    /// Number of slots set.
    pub fn count(&self) -> usize {
        (0..FILTER_SLOTS)
            // SAFETY: in bounds.
            .filter(|&i| unsafe { self.base.as_ptr().add(i).read_volatile() } != 0)
            .count()
    }
}

impl std::fmt::Debug for Filter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Filter").finish_non_exhaustive()
    }
}

impl Drop for Filter {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly what `map` mapped.
        unsafe { libc::munmap(self.base.as_ptr().cast(), FILTER_SLOTS) };
    }
}
