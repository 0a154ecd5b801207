//! The refusal watch, seen from userspace: watch a container under the
//! profile it runs with, read what the profile refused it, stop watching.
//!
//! The kernel side (`ebpf/src/watch.rs`, `sys_exit.rs`, `sigsys.rs`) counts,
//! per (container, ABI, syscall), the syscalls the container's profile
//! refused: those that returned the errno the profile gives them (at
//! `sys_exit`), those it killed or trapped (the `SIGSYS` seccomp sends), and
//! in complain mode (`SCMP_ACT_LOG`) every syscall outside the profile. The
//! first refusal of each is also sent as an event that names the process.
//! Both hooks are attached only while a container is watched.
use std::collections::BTreeMap;

use aya::{
    Btf, Ebpf,
    maps::{HashMap, MapData, MapError, PerCpuArray, PerCpuHashMap, RingBuf},
};
use syscensus_common::{
    FILTER_SLOTS, RowKey, abi, audit_arch, filter_slot,
    refusal::{
        POLICIES_CAPACITY, POLICIES_MAP, Policy, REFUSAL_EVENTS_MAP, REFUSED_MAP, RefusalCount,
        RefusalKey, WATCH_COUNTERS_MAP, WATCH_FILTER_MAP, WatchConfig, policy_flag, program,
        watch_counter,
    },
};
use tracing::debug;

use super::{BpfError, Filter, Tracer, is_not_found};
use crate::btf::{Btf as KernelBtf, BtfError};

mod policy;
mod ring;

pub use policy::{Verdict, WatchPolicy};
pub use ring::{FirstRefusal, RefusalEvents, RefusalKind, monotonic_to_system};

/// `AUDIT_ARCH_*` of the native ABI and of its compat ABI (0: none
/// supported; `syscalls::Arch` names the same, the domain's view).
#[cfg(target_arch = "x86_64")]
const AUDIT_ARCHES: (u32, u32) = (audit_arch::X86_64, audit_arch::I386);
#[cfg(target_arch = "aarch64")]
const AUDIT_ARCHES: (u32, u32) = (audit_arch::AARCH64, 0);

/// The watch's maps, pinned with the recorder's when a pin directory is
/// given.
pub(super) const PINNED_MAPS: [&str; 5] = [
    POLICIES_MAP,
    WATCH_FILTER_MAP,
    REFUSED_MAP,
    REFUSAL_EVENTS_MAP,
    WATCH_COUNTERS_MAP,
];

/// The watch's programs, attached only while a container is watched.
const PROGRAMS: [&str; 3] = [program::SYS_EXIT, program::SIGNAL, program::THREAD_EXIT];

/// The tracepoint each of [`PROGRAMS`] attaches to.
fn tracepoint(name: &str) -> &str {
    if name == program::THREAD_EXIT {
        program::THREAD_EXIT_TRACEPOINT
    } else {
        name
    }
}

/// The refusal watch could not be used.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    #[error("cannot watch refusals on this kernel: {reason}; the recorder works without it")]
    Unavailable { reason: String },
    #[error(
        "cannot watch cgroup {cgroup_id}: {capacity} container ABIs are watched already; unwatch ended containers"
    )]
    Full { cgroup_id: u64, capacity: u32 },
    #[error(
        "cannot watch cgroup {cgroup_id}: the policy has no rules for the native ABI; build it from the container's profile"
    )]
    NoNativeAbi { cgroup_id: u64 },
    #[error("failed to {action} map {name} for cgroup {cgroup_id}: {source}")]
    Map {
        action: &'static str,
        name: &'static str,
        cgroup_id: u64,
        #[source]
        source: MapError,
    },
    #[error(transparent)]
    Bpf(#[from] BpfError),
}

/// The refusals of one (ABI, syscall) of a watched container.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RefusalCountTotal {
    /// Refusals counted, over every CPU.
    pub count: u64,
    /// `CLOCK_MONOTONIC` of the last one, in nanoseconds (see
    /// [`monotonic_to_system`]).
    pub last_ns: u64,
}

/// What a watched container's profile refused it so far.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Refusals {
    /// Per (ABI, syscall number): counts.
    pub syscalls: BTreeMap<(u32, u32), RefusalCountTotal>,
    /// Some refusals could not be counted (the map was full): the report is
    /// incomplete.
    pub lost: bool,
}

impl Refusals {
    /// Refusals of all syscalls together.
    pub fn total(&self) -> u64 {
        self.syscalls.values().map(|c| c.count).sum()
    }
}

/// Totals of the watch's counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WatchCounters {
    /// Refusals counted.
    pub refused: u64,
    /// (container, ABI, syscall) refused a first time.
    pub first: u64,
    /// First-refusal events lost (ring buffer full): counted, not named.
    pub events_lost: u64,
    /// Refusals not counted (map full).
    pub map_full: u64,
    /// Syscalls of watched containers numbered out of range: not checked.
    pub out_of_range: u64,
    /// seccomp `SIGSYS` in watched containers.
    pub signals: u64,
    /// Threads of watched containers `SCMP_ACT_KILL_THREAD` ended without a
    /// signal.
    pub threads_killed: u64,
}

/// What the watch needs from the running kernel's BTF. Where something is
/// missing the watch is unavailable (`regs_nr == 0`) and says why; the
/// recorder is not affected.
pub(super) fn kernel_config(btf: &KernelBtf) -> (WatchConfig, Option<String>) {
    let mut config = WatchConfig::default();
    // The number syscall_get_nr() reads: arch/x86/include/asm/syscall.h and
    // arch/arm64/include/asm/syscall.h at v6.18.
    #[cfg(target_arch = "x86_64")]
    let regs = btf.member_offset("pt_regs", "orig_ax").map(|o| (o, 8));
    #[cfg(target_arch = "aarch64")]
    let regs = btf.member_offset("pt_regs", "syscallno").map(|o| (o, 4));
    let siginfo = (|| -> Result<[u32; 3], BtfError> {
        Ok([
            btf.member_offset("kernel_siginfo", "si_code")?,
            btf.member_offset("kernel_siginfo", "_sifields._sigsys._syscall")?,
            btf.member_offset("kernel_siginfo", "_sifields._sigsys._arch")?,
        ])
    })();
    match (regs, siginfo) {
        (Ok((offset, bytes)), Ok([code, syscall, arch])) if offset != 0 => {
            config.regs_nr = offset;
            config.regs_nr_bytes = bytes;
            config.siginfo_code = code;
            config.siginfo_syscall = syscall;
            config.siginfo_arch = arch;
        }
        (Err(error), _) | (_, Err(error)) => return (config, Some(error.to_string())),
        _ => return (config, Some("pt_regs has no syscall number".to_owned())),
    }
    (config.native_audit_arch, config.compat_audit_arch) = AUDIT_ARCHES;
    // A thread SCMP_ACT_KILL_THREAD ends alone: task->seccomp.mode,
    // task->flags, task->exit_code (include/linux/sched.h,
    // include/linux/seccomp_types.h at v6.18). Without them such a thread
    // goes unseen, and the rest of the watch still works.
    let thread = (|| -> Result<[u32; 3], BtfError> {
        Ok([
            btf.member_offset("task_struct", "seccomp.mode")?,
            btf.member_offset("task_struct", "flags")?,
            btf.member_offset("task_struct", "exit_code")?,
        ])
    })();
    match thread {
        Ok([mode, flags, exit_code]) if mode != 0 => {
            config.task_seccomp_mode = mode;
            config.task_flags = flags;
            config.task_exit_code = exit_code;
        }
        Ok(_) => {}
        Err(error) => {
            tracing::warn!(%error, "threads killed alone by seccomp will not be seen as refusals");
        }
    }
    (config, None)
}

/// The watch's maps, owned by the [`Tracer`].
pub(super) struct WatchMaps {
    policies: HashMap<MapData, RowKey, Policy>,
    filter: Filter,
    refused: PerCpuHashMap<MapData, RefusalKey, RefusalCount>,
    counters: PerCpuArray<MapData, u64>,
    events: Option<RingBuf<MapData>>,
    /// Why the watch cannot be used on this kernel, if it cannot.
    unavailable: Option<String>,
}

fn take_err(name: &'static str) -> impl FnOnce(MapError) -> BpfError {
    move |source| BpfError::Map { name, source }
}

impl WatchMaps {
    /// Takes the watch's maps from the loaded object.
    pub(super) fn take(ebpf: &mut Ebpf, unavailable: Option<String>) -> Result<Self, BpfError> {
        let mut take = |name: &'static str| {
            ebpf.take_map(name)
                .ok_or(BpfError::Missing { what: "map", name })
        };
        let policies = HashMap::try_from(take(POLICIES_MAP)?).map_err(take_err(POLICIES_MAP))?;
        let filter = match take(WATCH_FILTER_MAP)? {
            aya::maps::Map::Array(data) => Filter::map(data).map_err(BpfError::MapFilter)?,
            _ => {
                return Err(BpfError::Missing {
                    what: "array map",
                    name: WATCH_FILTER_MAP,
                });
            }
        };
        let refused = PerCpuHashMap::try_from(take(REFUSED_MAP)?).map_err(take_err(REFUSED_MAP))?;
        let counters = PerCpuArray::try_from(take(WATCH_COUNTERS_MAP)?)
            .map_err(take_err(WATCH_COUNTERS_MAP))?;
        let events =
            RingBuf::try_from(take(REFUSAL_EVENTS_MAP)?).map_err(take_err(REFUSAL_EVENTS_MAP))?;
        Ok(Self {
            policies,
            filter,
            refused,
            counters,
            events: Some(events),
            unavailable,
        })
    }
}

impl std::fmt::Debug for WatchMaps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WatchMaps")
            .field("unavailable", &self.unavailable)
            .finish_non_exhaustive()
    }
}

/// Loads the watch's programs (not attached).
pub(super) fn load_programs(tracer: &mut Tracer, btf: &Btf) -> Result<(), BpfError> {
    for name in PROGRAMS {
        tracer
            .program(name)?
            .load(tracepoint(name), btf)
            .map_err(|source| BpfError::Program {
                action: "load",
                name,
                source,
            })?;
    }
    Ok(())
}

impl Tracer {
    /// Watches a container's cgroup under `policy`: from now on the kernel
    /// counts every syscall the policy refuses there. Watching it again
    /// replaces the policy (and clears the lost flag); the counts stay.
    /// The first watched container attaches `sys_exit` and
    /// `signal_generate`.
    pub fn watch_refusals(
        &mut self,
        cgroup_id: u64,
        policy: &WatchPolicy,
    ) -> Result<(), WatchError> {
        if let Some(reason) = &self.refusal.unavailable {
            return Err(WatchError::Unavailable {
                reason: reason.clone(),
            });
        }
        if policy.get(abi::NATIVE, 0).is_none() {
            return Err(WatchError::NoNativeAbi { cgroup_id });
        }
        let map_err = |action, source| WatchError::Map {
            action,
            name: POLICIES_MAP,
            cgroup_id,
            source,
        };
        // Prefilter first, so that the kernel never finds a policy whose
        // slot it skips.
        self.refusal.filter.set(cgroup_id);
        for abi_id in 0..abi::COUNT {
            let key = RowKey::new(cgroup_id, abi_id);
            let result = match policy.to_kernel(abi_id) {
                Some(value) => self.refusal.policies.insert(key, value, 0),
                None => match self.refusal.policies.remove(&key) {
                    Err(e) if is_not_found(&e) => Ok(()),
                    other => other,
                },
            };
            if let Err(source) = result {
                let full = matches!(&source, MapError::SyscallError(e)
                    if e.io_error.raw_os_error() == Some(libc::E2BIG));
                self.forget_policies(cgroup_id);
                return Err(if full {
                    WatchError::Full {
                        cgroup_id,
                        capacity: POLICIES_CAPACITY,
                    }
                } else {
                    map_err("write the policy into", source)
                });
            }
        }
        for name in PROGRAMS {
            if let Err(error) = self.attach(name) {
                self.forget_policies(cgroup_id);
                return Err(error.into());
            }
        }
        debug!(cgroup_id, "refusals watched");
        Ok(())
    }

    /// Stops watching a container and forgets its counts: read them with
    /// [`refusals`](Self::refusals) first. The last one detaches the
    /// watch's hooks. Unwatching a cgroup that is not watched changes
    /// nothing.
    pub fn unwatch_refusals(&mut self, cgroup_id: u64) -> Result<(), WatchError> {
        self.forget_policies(cgroup_id);
        let watched = self.watched_refusals()?;
        // Counts of this container, and any a refusal in flight on another
        // CPU created after an earlier unwatch.
        let stale: Vec<RefusalKey> = self
            .refusal
            .refused
            .keys()
            .filter_map(Result::ok)
            .filter(|k| k.cgroup_id == cgroup_id || watched.binary_search(&k.cgroup_id).is_err())
            .collect();
        for key in stale {
            match self.refusal.refused.remove(&key) {
                Err(e) if !is_not_found(&e) => {
                    return Err(WatchError::Map {
                        action: "remove counts from",
                        name: REFUSED_MAP,
                        cgroup_id,
                        source: e,
                    });
                }
                _ => {}
            }
        }
        if watched.is_empty() {
            for name in PROGRAMS {
                self.detach(name)?;
            }
        }
        debug!(cgroup_id, "refusals no longer watched");
        Ok(())
    }

    /// Removes a cgroup's policies and, unless another watched cgroup
    /// shares it, its prefilter slot.
    fn forget_policies(&mut self, cgroup_id: u64) {
        for abi_id in 0..abi::COUNT {
            let _ = self
                .refusal
                .policies
                .remove(&RowKey::new(cgroup_id, abi_id));
        }
        let slot = filter_slot(cgroup_id);
        let shared = self
            .refusal
            .policies
            .keys()
            .filter_map(Result::ok)
            .any(|k| filter_slot(k.cgroup_id) == slot);
        if !shared {
            self.refusal.filter.clear(cgroup_id);
        }
    }

    /// The cgroups watched, sorted.
    pub fn watched_refusals(&self) -> Result<Vec<u64>, WatchError> {
        let mut ids = Vec::new();
        for key in self.refusal.policies.keys() {
            let key = key.map_err(|source| WatchError::Map {
                action: "list",
                name: POLICIES_MAP,
                cgroup_id: 0,
                source,
            })?;
            if key.abi == abi::NATIVE {
                ids.push(key.cgroup_id);
            }
        }
        ids.sort_unstable();
        Ok(ids)
    }

    /// What a watched container's profile refused it so far; `None` if it
    /// is not watched.
    pub fn refusals(&self, cgroup_id: u64) -> Result<Option<Refusals>, WatchError> {
        let map_err = |name, source| WatchError::Map {
            action: "read",
            name,
            cgroup_id,
            source,
        };
        let native = match self
            .refusal
            .policies
            .get(&RowKey::new(cgroup_id, abi::NATIVE), 0)
        {
            Ok(policy) => policy,
            Err(e) if is_not_found(&e) => return Ok(None),
            Err(e) => return Err(map_err(POLICIES_MAP, e)),
        };
        let mut refusals = Refusals {
            lost: native.flags[policy_flag::LOST] != 0,
            ..Refusals::default()
        };
        for entry in self.refusal.refused.iter() {
            let (key, values) = entry.map_err(|e| map_err(REFUSED_MAP, e))?;
            if key.cgroup_id != cgroup_id {
                continue;
            }
            let total = RefusalCountTotal {
                count: values.iter().map(|v| v.count).sum(),
                last_ns: values.iter().map(|v| v.last_ns).max().unwrap_or(0),
            };
            refusals.syscalls.insert((key.abi, key.nr), total);
        }
        Ok(Some(refusals))
    }

    /// The ring buffer of first refusals, for a task that polls it (it can
    /// be taken once).
    pub fn take_refusal_events(&mut self) -> Option<RefusalEvents> {
        self.refusal
            .events
            .take()
            .map(|ring| RefusalEvents { ring })
    }

    /// Whether the watch's hooks are attached.
    pub fn refusal_hooks_attached(&self) -> bool {
        PROGRAMS.iter().any(|name| self.links.contains_key(name))
    }

    /// Why the watch cannot be used on this kernel, if it cannot.
    pub fn refusal_watch_unavailable(&self) -> Option<&str> {
        self.refusal.unavailable.as_deref()
    }

    /// The watch's counters, summed over CPUs.
    pub fn watch_counters(&self) -> Result<WatchCounters, WatchError> {
        let sum = |index: u32| -> Result<u64, WatchError> {
            let values =
                self.refusal
                    .counters
                    .get(&index, 0)
                    .map_err(|source| WatchError::Map {
                        action: "read",
                        name: WATCH_COUNTERS_MAP,
                        cgroup_id: 0,
                        source,
                    })?;
            Ok(values.iter().sum())
        };
        Ok(WatchCounters {
            refused: sum(watch_counter::REFUSED)?,
            first: sum(watch_counter::FIRST)?,
            events_lost: sum(watch_counter::EVENTS_LOST)?,
            map_full: sum(watch_counter::MAP_FULL)?,
            out_of_range: sum(watch_counter::OUT_OF_RANGE)?,
            signals: sum(watch_counter::SIGNALS)?,
            threads_killed: sum(watch_counter::THREADS_KILLED)?,
        })
    }

    /// Bytes the watch's maps take while nothing is watched (the prefilter
    /// and the ring buffer; policies and counts are allocated as used), and
    /// per watched container ABI.
    pub fn watch_map_bytes(&self) -> (u64, u64) {
        let fixed =
            FILTER_SLOTS as u64 + u64::from(syscensus_common::refusal::REFUSAL_EVENTS_BYTES);
        let per_policy = (size_of::<RowKey>() + size_of::<Policy>()) as u64;
        (fixed, per_policy)
    }

    /// Re-attaches the watch's hooks a previous run left pinned (it was
    /// watching when it stopped), so that nothing goes uncounted.
    pub(super) fn resume_refusal_watch(&mut self) -> Result<(), BpfError> {
        let pinned = PROGRAMS
            .iter()
            .any(|name| self.pin_path(name).is_some_and(|p| p.exists()));
        if pinned {
            for name in PROGRAMS {
                self.attach(name)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
