//! The first refusal of each (container, ABI, syscall), read from the
//! kernel's ring buffer with the process that made it.
use std::time::{Duration, SystemTime};

use aya::maps::{MapData, RingBuf};
use syscensus_common::refusal::{RefusalEvent, kind};

/// How the first refusal was seen.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RefusalKind {
    /// The syscall returned the profile's errno.
    Errno,
    /// The profile logs it (complain mode); it ran.
    Log,
    /// The profile killed or trapped the process (`SIGSYS`).
    Signal,
}

/// The first refusal of one (container, ABI, syscall), naming the process.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FirstRefusal {
    /// The watched container's cgroup id.
    pub cgroup_id: u64,
    /// The cgroup the process was in.
    pub task_cgroup_id: u64,
    /// A `syscensus_common::abi` constant.
    pub abi: u32,
    /// The syscall number (x32: without its marker bit).
    pub nr: u32,
    pub kind: RefusalKind,
    /// What the syscall returned (`-errno` for [`RefusalKind::Errno`]); 0
    /// for a signal.
    pub ret: i64,
    /// Host PID of the process and thread id of the thread.
    pub tgid: u32,
    pub pid: u32,
    /// The thread's name.
    pub comm: String,
    /// `CLOCK_MONOTONIC` in nanoseconds (see [`monotonic_to_system`]).
    pub time_ns: u64,
}

/// The time of day of a `CLOCK_MONOTONIC` reading taken on this boot.
pub fn monotonic_to_system(ns: u64) -> SystemTime {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes the timespec it is given.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
    let mono_now = Duration::new(now.tv_sec as u64, now.tv_nsec as u32);
    let ago = mono_now.saturating_sub(Duration::from_nanos(ns));
    let now = SystemTime::now();
    now.checked_sub(ago).unwrap_or(now)
}

/// The ring buffer of first refusals.
pub struct RefusalEvents {
    pub(super) ring: RingBuf<MapData>,
}

impl RefusalEvents {
    /// Every event waiting in the buffer.
    pub fn drain(&mut self) -> Vec<FirstRefusal> {
        let mut out = Vec::new();
        while let Some(item) = self.ring.next() {
            if item.len() < size_of::<RefusalEvent>() {
                continue;
            }
            // SAFETY: the kernel wrote a whole RefusalEvent; read unaligned.
            let raw: RefusalEvent = unsafe { std::ptr::read_unaligned(item.as_ptr().cast()) };
            let len = raw.comm.iter().position(|b| *b == 0).unwrap_or(16);
            out.push(FirstRefusal {
                cgroup_id: raw.cgroup_id,
                task_cgroup_id: raw.task_cgroup_id,
                abi: raw.abi,
                nr: raw.nr,
                kind: match raw.kind {
                    kind::LOG => RefusalKind::Log,
                    kind::SIGNAL => RefusalKind::Signal,
                    _ => RefusalKind::Errno,
                },
                ret: raw.ret,
                tgid: raw.tgid,
                pid: raw.pid,
                comm: String::from_utf8_lossy(&raw.comm[..len]).into_owned(),
                time_ns: raw.time_ns,
            });
        }
        out
    }

    /// The buffer's file descriptor, readable when events wait.
    pub fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        std::os::fd::AsFd::as_fd(&self.ring)
    }
}

impl std::os::fd::AsRawFd for RefusalEvents {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.as_fd().as_raw_fd()
    }
}

impl std::fmt::Debug for RefusalEvents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RefusalEvents").finish_non_exhaustive()
    }
}
