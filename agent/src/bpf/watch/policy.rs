//! What a container's profile does with each syscall number, as the
//! kernel side of the watch checks it.
use std::collections::BTreeMap;

use syscensus_common::{
    SYSCALL_SLOTS,
    refusal::{Policy, verdict},
};

/// What a profile does with one syscall, as far as the watch cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Verdict {
    /// Allowed, or decided by its arguments, a tracer or a listener: never
    /// counted.
    Allowed,
    /// Refused with this errno: counted when the syscall returns it.
    Errno(u16),
    /// Above every syscall the profile names: runc fails it with ENOSYS
    /// (its stub, so that programs fall back), other runtimes with this
    /// errno; counted when it returns either.
    ErrnoOrEnosys(u16),
    /// Logged and allowed (complain mode): counted whatever it returns.
    Log,
    /// Killed or trapped: counted from the `SIGSYS`.
    Signal,
}

impl Verdict {
    /// The kernel's encoding (`syscensus_common::refusal::verdict`).
    pub(super) fn encode(self) -> u16 {
        match self {
            Verdict::Allowed => verdict::ALLOWED,
            // The kernel caps a filter's errno at MAX_ERRNO (4095).
            Verdict::Errno(errno) => verdict::ERRNO | errno.min(verdict::ERRNO_MASK),
            Verdict::ErrnoOrEnosys(errno) => {
                verdict::ERRNO | verdict::OR_ENOSYS | errno.min(verdict::ERRNO_MASK)
            }
            Verdict::Log => verdict::LOG,
            Verdict::Signal => verdict::SIGNAL,
        }
    }
}

/// How a container's profile treats every syscall number, per ABI: what
/// the kernel checks. ABIs without a table are the ones the profile does
/// not cover (the filter kills their syscalls, which the watch sees as
/// `SIGSYS`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WatchPolicy {
    abis: BTreeMap<u32, Vec<Verdict>>,
}

impl WatchPolicy {
    /// A policy that covers no ABI yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Covers `abi_id` (a `syscensus_common::abi` constant), every number
    /// below `SYSCALL_SLOTS` getting `default`.
    pub fn cover(&mut self, abi_id: u32, default: Verdict) -> &mut Self {
        self.abis.insert(abi_id, vec![default; SYSCALL_SLOTS]);
        self
    }

    /// Sets the verdict of `nr` under `abi_id` (covered first with
    /// everything allowed if it was not). Numbers at or above
    /// `SYSCALL_SLOTS` are not checked by the kernel and are ignored.
    pub fn set(&mut self, abi_id: u32, nr: u32, verdict: Verdict) -> &mut Self {
        let table = self
            .abis
            .entry(abi_id)
            .or_insert_with(|| vec![Verdict::Allowed; SYSCALL_SLOTS]);
        if let Some(slot) = table.get_mut(nr as usize) {
            *slot = verdict;
        }
        self
    }

    /// The verdict of `nr` under `abi_id`; `None` if the ABI is not covered
    /// or the number is out of range.
    pub fn get(&self, abi_id: u32, nr: u32) -> Option<Verdict> {
        self.abis.get(&abi_id)?.get(nr as usize).copied()
    }

    /// The ABIs covered.
    pub fn abis(&self) -> impl Iterator<Item = u32> + '_ {
        self.abis.keys().copied()
    }

    pub(super) fn to_kernel(&self, abi_id: u32) -> Option<Policy> {
        let table = self.abis.get(&abi_id)?;
        let mut policy = Policy::new();
        for (slot, verdict) in policy.verdicts.iter_mut().zip(table) {
            *slot = verdict.encode();
        }
        Some(policy)
    }
}
