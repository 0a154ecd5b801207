//! The kernel program's ring buffer: cgroups it acted on as they were made,
//! and sessions that started.
use std::sync::{Arc, Mutex};

use aya::maps::{MapData, RingBuf};
use syscensus_common::{CgroupEvent, SessionEvent, event};

use super::sessions::{Book, wall_time_of};

/// A cgroup the kernel acted on as it was made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MarkedCgroup {
    /// Whether it is a root path, now watched (rather than a cgroup below a
    /// watched one, now marked).
    pub root: bool,
    /// Whether it could not be marked (the rows map was full).
    pub lost: bool,
    pub cgroup_id: u64,
    /// Depth below the hierarchy's root.
    pub level: u32,
    /// Path from the hierarchy's root (`/kubepods/...`).
    pub path: String,
}

/// The ring buffer of cgroups the kernel marked and sessions it saw start.
/// Sessions go to the [`Tracer`](super::Tracer) they belong to; cgroups to
/// the caller.
pub struct Events {
    pub(super) ring: RingBuf<MapData>,
    pub(super) book: Arc<Mutex<Book>>,
}

impl Events {
    /// Every cgroup event waiting in the buffer; session events waiting are
    /// handed to the tracer.
    pub fn drain(&mut self) -> Vec<MarkedCgroup> {
        drain(&mut self.ring, &self.book)
    }

    /// The buffer's file descriptor, readable when events wait.
    pub fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        std::os::fd::AsFd::as_fd(&self.ring)
    }
}

/// Reads every event in `ring`: cgroups are returned, sessions go to `book`.
pub(super) fn drain(ring: &mut RingBuf<MapData>, book: &Mutex<Book>) -> Vec<MarkedCgroup> {
    let mut out = Vec::new();
    while let Some(item) = ring.next() {
        // `kind` sits at the same place in every event.
        let Some(kind) = item.get(14..16).map(|b| u16::from_ne_bytes([b[0], b[1]])) else {
            continue;
        };
        if kind == event::SESSION {
            if item.len() < size_of::<SessionEvent>() {
                continue;
            }
            // SAFETY: the kernel wrote a whole SessionEvent; read unaligned.
            let raw: SessionEvent = unsafe { std::ptr::read_unaligned(item.as_ptr().cast()) };
            let at = wall_time_of(raw.boot_ns);
            book.lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .started(&raw, at);
            continue;
        }
        if item.len() < size_of::<CgroupEvent>() {
            continue;
        }
        // SAFETY: the kernel wrote a whole CgroupEvent; read unaligned.
        let raw: CgroupEvent = unsafe { std::ptr::read_unaligned(item.as_ptr().cast()) };
        let len = (raw.path_len as usize).min(raw.path.len());
        let path = String::from_utf8_lossy(&raw.path[..len])
            .trim_end_matches('\0')
            .to_owned();
        out.push(MarkedCgroup {
            root: raw.kind == event::ROOT,
            lost: raw.kind == event::LOST,
            cgroup_id: raw.cgroup_id,
            level: raw.level,
            path,
        });
    }
    out
}

impl std::os::fd::AsRawFd for Events {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.ring.as_raw_fd()
    }
}

impl std::fmt::Debug for Events {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Events").finish_non_exhaustive()
    }
}
