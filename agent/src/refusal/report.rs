//! What a watched container's profile refused it: the kernel's counts and
//! first-refusal events, kept per (ABI, syscall), named, and written as a
//! report per container (`refusals/<container-id>.json` in the agent's
//! state directory; `syscensus denials` prints them).
//!
//! Pure: the shell turns the kernel's monotonic times into times of day
//! before they come here.
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use syscensus_api::{WorkloadKind, WorkloadRef};

use crate::{
    bpf::{FirstRefusal, RefusalKind, Refusals},
    container_recording::{PodRef, State},
    syscalls::Arch,
};

/// `apiVersion` of [`ContainerRefusals`].
pub const API_VERSION: &str = "syscensus.io/v1alpha1";
/// `kind` of [`ContainerRefusals`].
pub const KIND: &str = "ContainerRefusals";

/// How a refusal was seen.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum How {
    /// The syscall failed with the profile's errno.
    Errno,
    /// The profile logs it (complain mode): it ran, and an enforced profile
    /// would refuse it.
    Log,
    /// The profile killed or trapped the process (`SIGSYS`).
    Signal,
}

impl From<RefusalKind> for How {
    fn from(kind: RefusalKind) -> How {
        match kind {
            RefusalKind::Errno => How::Errno,
            RefusalKind::Log => How::Log,
            RefusalKind::Signal => How::Signal,
        }
    }
}

/// The kernel's count of one (ABI, syscall) of a container.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Counted {
    /// A `syscensus_common::abi` constant.
    pub abi: u32,
    pub nr: u32,
    pub count: u64,
    /// When the last one was refused.
    pub last: jiff::Timestamp,
}

/// The kernel's counts of a container.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub syscalls: Vec<Counted>,
    /// Some refusals could not be counted (the kernel's map was full).
    pub lost: bool,
}

impl Counts {
    /// The counts of `refusals`, with `time_of` turning the kernel's
    /// `CLOCK_MONOTONIC` nanoseconds into a time of day.
    pub fn of(refusals: &Refusals, time_of: impl Fn(u64) -> jiff::Timestamp) -> Counts {
        Counts {
            syscalls: refusals
                .syscalls
                .iter()
                .map(|(&(abi, nr), c)| Counted {
                    abi,
                    nr,
                    count: c.count,
                    last: time_of(c.last_ns),
                })
                .collect(),
            lost: refusals.lost,
        }
    }
}

/// The first refusal of one (ABI, syscall) of a container.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct First {
    /// The watched container's cgroup id.
    pub cgroup_id: u64,
    pub abi: u32,
    pub nr: u32,
    pub how: How,
    /// The process's name (the thread's `comm`) and PID on the host.
    pub process: String,
    pub pid: u32,
    pub time: jiff::Timestamp,
}

impl First {
    /// The event `event`, with `time_of` as in [`Counts::of`].
    pub fn of(event: &FirstRefusal, time_of: impl Fn(u64) -> jiff::Timestamp) -> First {
        First {
            cgroup_id: event.cgroup_id,
            abi: event.abi,
            nr: event.nr,
            how: event.kind.into(),
            process: event.comm.clone(),
            pid: event.tgid,
            time: time_of(event.time_ns),
        }
    }
}

/// One refused syscall of a container, as reported.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Refused {
    /// `SCMP_ARCH_*` of the ABI it was made through.
    pub arch: String,
    /// Its name; `#<number>` where the architecture's table has none.
    pub name: String,
    pub count: u64,
    /// RFC 3339 times of the first and the last refusal. The first is
    /// missing when its event was lost (the kernel's buffer was full).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_seen: Option<String>,
    pub last_seen: String,
    /// The process that made it first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub process: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub how: Option<How>,
}

/// The profile a container is watched under.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WatchedProfile {
    /// Where it was read: `cri` (the runtime's verbose container status),
    /// `runc` or `crun` (the runtime's state directory).
    pub source: String,
    /// Its default action (`SCMP_ACT_ERRNO`, `SCMP_ACT_LOG`, ...).
    pub default_action: String,
    /// Syscall names it lists that no architecture knows (the runtime skips
    /// them, and so does the watch).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unknown_names: Vec<String>,
}

/// One container's refusals: the report the agent writes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerRefusals {
    pub api_version: String,
    pub kind: String,
    pub container_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<PodRef>,
    /// The Pod's workload, where a recording resolved it (Kubernetes
    /// mode); else the Pod is the workload.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload: Option<WorkloadRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    pub cgroup: String,
    pub profile: WatchedProfile,
    /// Whether the container still runs.
    pub state: State,
    /// RFC 3339: since when it is watched.
    pub watched_since: String,
    /// Some refusals could not be counted: the counts are too low.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub incomplete: bool,
    /// The refused syscalls, by architecture and name.
    pub syscalls: Vec<Refused>,
}

/// The comment of the rule an export adds for refused syscalls.
pub const RULE_COMMENT: &str =
    "refused in production (syscensus denials), not recorded: allow only after review";

impl ContainerRefusals {
    /// The workload container the report is about: (namespace, workload,
    /// container), the Pod standing for the workload where none is known,
    /// as exports of recordings name it. `None` without a namespace, Pod or
    /// container name.
    pub fn workload_container(&self) -> Option<(String, WorkloadRef, String)> {
        let pod = self.pod.as_ref()?;
        let namespace = pod.namespace.clone()?;
        let workload = match &self.workload {
            Some(workload) => workload.clone(),
            None => WorkloadRef {
                kind: WorkloadKind::Pod,
                name: pod.name.clone()?,
            },
        };
        Some((namespace, workload, self.container_name.clone()?))
    }

    /// Refusals of every syscall together.
    pub fn total(&self) -> u64 {
        self.syscalls.iter().map(|r| r.count).sum()
    }

    /// The JSON document, as written.
    pub fn to_json(&self) -> String {
        #[expect(
            clippy::unwrap_used,
            reason = "serializing plain data to a String cannot fail"
        )]
        let mut text = serde_json::to_string_pretty(self).unwrap();
        text.push('\n');
        text
    }
}

/// What is known of one (ABI, syscall).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Entry {
    count: u64,
    last: Option<jiff::Timestamp>,
    first: Option<(jiff::Timestamp, String, How)>,
}

/// A watched container's refusals so far, from the kernel's counts and its
/// first-refusal events.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RefusalLog {
    entries: BTreeMap<(u32, u32), Entry>,
    lost: bool,
}

impl RefusalLog {
    /// Takes the kernel's counts; returns whether anything changed.
    pub fn counted(&mut self, counts: &Counts) -> bool {
        let mut changed = counts.lost && !self.lost;
        self.lost |= counts.lost;
        for c in &counts.syscalls {
            let entry = self.entries.entry((c.abi, c.nr)).or_default();
            // The kernel's counts only grow while it is watched.
            if c.count > entry.count {
                entry.count = c.count;
                entry.last = Some(c.last);
                changed = true;
            }
        }
        changed
    }

    /// Takes a first-refusal event; returns whether it is new.
    pub fn first(&mut self, first: &First) -> bool {
        let entry = self.entries.entry((first.abi, first.nr)).or_default();
        if entry.first.is_some() {
            return false;
        }
        entry.first = Some((first.time, first.process.clone(), first.how));
        // The event says it was refused once at least.
        entry.count = entry.count.max(1);
        entry.last = Some(entry.last.map_or(first.time, |l| l.max(first.time)));
        true
    }

    /// Refusals of every syscall together.
    pub fn total(&self) -> u64 {
        self.entries.values().map(|e| e.count).sum()
    }

    /// Whether some refusals could not be counted.
    pub fn lost(&self) -> bool {
        self.lost
    }

    /// The refused syscalls, named, ordered by architecture and name.
    pub fn syscalls(&self) -> Vec<Refused> {
        let mut out: Vec<Refused> = self
            .entries
            .iter()
            .filter(|(_, e)| e.count > 0)
            .map(|(&(abi, nr), e)| {
                let (arch, name) = name_of(abi, nr);
                let last = e.last.or(e.first.as_ref().map(|f| f.0));
                Refused {
                    arch,
                    name,
                    count: e.count,
                    first_seen: e.first.as_ref().map(|f| f.0.to_string()),
                    last_seen: last.map(|t| t.to_string()).unwrap_or_default(),
                    process: e.first.as_ref().map(|f| f.1.clone()),
                    how: e.first.as_ref().map(|f| f.2),
                }
            })
            .collect();
        out.sort_by(|a, b| (&a.arch, &a.name).cmp(&(&b.arch, &b.name)));
        out
    }
}

/// The `SCMP_ARCH_*` and name of syscall `nr` of `abi` on this machine.
pub fn name_of(abi: u32, nr: u32) -> (String, String) {
    match Arch::for_abi(abi) {
        Some(arch) => (
            arch.scmp_name().to_owned(),
            arch.name(nr)
                .map_or_else(|| format!("#{nr}"), ToOwned::to_owned),
        ),
        None => (format!("abi-{abi}"), format!("#{nr}")),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use syscensus_common::abi;

    use super::*;

    fn at(s: i64) -> jiff::Timestamp {
        jiff::Timestamp::from_second(1_700_000_000 + s).unwrap()
    }

    fn mkdir() -> u32 {
        Arch::native().number("mkdir").unwrap()
    }

    #[test]
    fn counts_and_first_events_make_one_entry_per_syscall() {
        let mut log = RefusalLog::default();
        assert!(log.syscalls().is_empty());
        let first = First {
            cgroup_id: 7,
            abi: abi::NATIVE,
            nr: mkdir(),
            how: How::Errno,
            process: "app".into(),
            pid: 42,
            time: at(1),
        };
        assert!(log.first(&first));
        assert!(!log.first(&first), "a second first event changes nothing");
        let counts = Counts {
            syscalls: vec![Counted {
                abi: abi::NATIVE,
                nr: mkdir(),
                count: 3,
                last: at(5),
            }],
            lost: false,
        };
        assert!(log.counted(&counts));
        assert!(
            !log.counted(&counts),
            "the same counts again change nothing"
        );
        let refused = log.syscalls();
        assert_eq!(
            refused,
            vec![Refused {
                arch: Arch::native().scmp_name().into(),
                name: "mkdir".into(),
                count: 3,
                first_seen: Some(at(1).to_string()),
                last_seen: at(5).to_string(),
                process: Some("app".into()),
                how: Some(How::Errno),
            }]
        );
        assert_eq!(log.total(), 3);
    }

    #[test]
    fn a_count_without_its_event_is_reported_without_a_process() {
        let mut log = RefusalLog::default();
        log.counted(&Counts {
            syscalls: vec![Counted {
                abi: abi::NATIVE,
                nr: 1000,
                count: 2,
                last: at(2),
            }],
            lost: true,
        });
        let refused = log.syscalls();
        assert_eq!(refused[0].name, "#1000");
        assert_eq!((refused[0].count, refused[0].process.as_deref()), (2, None));
        assert!(log.lost());
    }
}
