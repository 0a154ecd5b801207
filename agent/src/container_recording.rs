//! The record of one container's recording, as the agent writes it to its
//! state directory (`containers/<container-id>.json`): who the container is,
//! what it did, and the profile that allows exactly that.
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use syscensus_api::SessionSummary;

use crate::{
    basesets,
    bpf::{SessionKind, SessionSnapshot, Snapshot},
    census::{Census, census_of_seen},
    profile::{BaseSet, BuildOptions, Profile, RuleRole},
};

/// `apiVersion` of [`ContainerRecording`].
pub const API_VERSION: &str = "syscensus.io/v1alpha1";
/// `kind` of [`ContainerRecording`].
pub const KIND: &str = "ContainerRecording";

/// A Pod, as the runtime's labels name it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodRef {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub uid: String,
}

/// Whether the container still runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum State {
    /// A snapshot of a running container: more may come.
    Running,
    /// The container exited: this is all it did.
    Exited,
}

/// When the recording started.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Start {
    /// At the container's entrypoint exec: the recording is complete.
    Exec,
    /// The container was already running: what it did before is missing.
    Late,
}

/// One container's recording.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerRecording {
    pub api_version: String,
    pub kind: String,
    pub container_id: String,
    /// The container's name in its Pod (from the runtime's labels).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<PodRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// The container's cgroup v2 path.
    pub cgroup: String,
    /// The runtime's labels for the container.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// The image, as the runtime names it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    pub state: State,
    pub start: Start,
    /// RFC 3339 times: when the container was first seen, when it was last
    /// read, when a syscall new to the recording last appeared.
    pub first_seen: String,
    pub last_seen: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_new_syscall: Option<String>,
    /// The runtime base set in the profile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime_base_set: Option<String>,
    /// Syscall names in the profile, per architecture (`SCMP_ARCH_*`): what
    /// the container's workload made, and what the sessions in the profile
    /// made (see `sessions`).
    pub syscalls: Census,
    /// Exec sessions (`kubectl exec`, `runc exec`) ran in the container and
    /// were left out of the profile; `sessions` lists them.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub exec_sessions_excluded: bool,
    /// The exec sessions and OCI hooks that ran in the container, one entry
    /// per kind and distinct command line.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sessions: Vec<SessionRecord>,
    /// Syscall names in `syscalls` that only sessions made, not the
    /// workload, per architecture: without those sessions they would not be
    /// in the profile.
    #[serde(default, skip_serializing_if = "Census::is_empty")]
    pub session_only_syscalls: Census,
    /// Anything that makes the recording incomplete.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    pub profile: Profile,
}

/// What kind of session ran in a container.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum SessionType {
    /// An exec session: `kubectl exec`, `runc exec`, an exec probe or a
    /// lifecycle hook run through the runtime.
    Exec,
    /// An OCI hook the runtime ran inside the container before the
    /// entrypoint; it runs again on every start.
    Hook,
    /// Unknown: the kernel's event for it was lost.
    Unknown,
}

impl From<SessionKind> for SessionType {
    fn from(kind: SessionKind) -> Self {
        match kind {
            SessionKind::Exec => SessionType::Exec,
            SessionKind::Hook => SessionType::Hook,
            SessionKind::Unknown => SessionType::Unknown,
        }
    }
}

/// The sessions of one kind and command line that ran in a container.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionRecord {
    #[serde(rename = "type")]
    pub kind: SessionType,
    /// The command line as exec'd (cut at 512 bytes); absent when the
    /// kernel's event for the session was lost.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
    /// RFC 3339 times: when the first of them started, when one was last
    /// seen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_seen: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_seen: Option<String>,
    /// How many times it ran.
    pub count: u64,
    /// Syscall names they made, per architecture.
    pub syscalls: Census,
    /// Whether their syscalls are in the profile.
    pub included: bool,
    /// Why they are in the profile or not.
    pub reason: String,
}

/// A command the Pod's spec runs in a container through the runtime: an
/// exec probe or a lifecycle hook.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ExecCommand {
    /// Where the spec gives it: `livenessProbe`, `readinessProbe`,
    /// `startupProbe`, `postStart`, `preStop`.
    pub source: String,
    /// The command, as the runtime execs it.
    pub command: Vec<String>,
}

impl ExecCommand {
    /// Whether a session's command line (cut at
    /// `syscensus_common::EVENT_ARGV_BYTES` bytes, NUL-separated) is this
    /// command: equal, or cut from it where the kernel cut it.
    pub fn matches(&self, argv: &[String]) -> bool {
        if argv == self.command.as_slice() {
            return true;
        }
        let bytes: usize = argv.iter().map(|a| a.len() + 1).sum();
        if bytes + 1 < syscensus_common::EVENT_ARGV_BYTES || argv.len() > self.command.len() {
            return false;
        }
        let Some((last, whole)) = argv.split_last() else {
            return false;
        };
        whole == &self.command[..whole.len()]
            && self.command[whole.len()].starts_with(last.as_str())
    }
}

impl SessionRecord {
    /// The entry of a ContainerProfile's `sessions`.
    pub fn summary(&self) -> SessionSummary {
        SessionSummary {
            kind: format!("{:?}", self.kind),
            command: self.command.clone(),
            included: self.included,
            reason: self.reason.clone(),
            syscalls: self.syscalls.to_spec(),
        }
    }
}

/// Which sessions go into a container's profile. OCI hooks always do: the
/// runtime runs them again, under the profile, on every start.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum SessionPolicy {
    /// Every exec session (the default without Kubernetes, where nothing
    /// tells a probe from a person).
    #[default]
    IncludeAll,
    /// No exec session (`--exclude-exec-sessions`).
    ExcludeExec,
    /// Kubernetes: the sessions that run one of the container's exec probes
    /// or lifecycle hooks, as its Pod's spec gives them; the others only if
    /// `include_others` (the ProfileRecording's `includeExecSessions`).
    Commands {
        commands: Vec<ExecCommand>,
        include_others: bool,
    },
}

impl SessionPolicy {
    /// Whether sessions of `kind` running `command` go into the profile, and
    /// why.
    pub fn decide(&self, kind: SessionType, command: Option<&[String]>) -> (bool, String) {
        let (included, reason) = match (kind, self) {
            (SessionType::Hook, _) => (true, "an OCI hook: it runs again on every start"),
            (SessionType::Unknown, _) => (
                true,
                "its kind is unknown (its event was lost): kept so the profile cannot break it",
            ),
            (SessionType::Exec, SessionPolicy::IncludeAll) => {
                (true, "exec sessions are in the profile")
            }
            (SessionType::Exec, SessionPolicy::ExcludeExec) => {
                (false, "exec sessions are left out of the profile")
            }
            (
                SessionType::Exec,
                SessionPolicy::Commands {
                    commands,
                    include_others,
                },
            ) => {
                let found: Vec<&str> = match command {
                    Some(argv) => commands
                        .iter()
                        .filter(|c| c.matches(argv))
                        .map(|c| c.source.as_str())
                        .collect(),
                    None => Vec::new(),
                };
                if !found.is_empty() {
                    return (
                        true,
                        format!("the container's {} in its Pod's spec", found.join(", ")),
                    );
                }
                match (command, include_others) {
                    (_, true) => (true, "the ProfileRecording includes every exec session"),
                    // A probe whose command line was lost may be one.
                    (None, false) => (
                        true,
                        "its command line is unknown (its event was lost): kept so the profile cannot break a probe",
                    ),
                    (Some(_), false) => (
                        false,
                        "not an exec probe or lifecycle hook of the container: left out (see the ProfileRecording's includeExecSessions)",
                    ),
                }
            }
        };
        (included, reason.to_owned())
    }
}

/// What a snapshot puts in a recording: the profile's census and the
/// sessions, as [`SessionPolicy`] decides.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Parts {
    /// What the profile allows: the workload's syscalls and those of the
    /// sessions in it.
    pub census: Census,
    pub sessions: Vec<SessionRecord>,
    /// What only sessions in the profile made.
    pub session_only: Census,
    /// Exec sessions ran and were left out.
    pub exec_sessions_excluded: bool,
    /// OCI hooks ran.
    pub hooks: bool,
    /// Sessions whose command lines are unknown.
    pub unnamed_sessions: u64,
}

impl Parts {
    /// Sorts what `snapshot` saw into the profile's census and the sessions.
    pub fn of(snapshot: &Snapshot, policy: &SessionPolicy) -> Parts {
        let workload = census_of_seen(&snapshot.seen);
        let mut census = workload.clone();
        let mut groups: BTreeMap<(SessionType, Option<Vec<String>>), Vec<&SessionSnapshot>> =
            BTreeMap::new();
        for session in &snapshot.sessions {
            groups
                .entry((session.kind.into(), session.argv.clone()))
                .or_default()
                .push(session);
        }
        let mut parts = Parts::default();
        for ((kind, command), sessions) in groups {
            let mut seen: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
            for session in &sessions {
                for (abi, numbers) in &session.seen {
                    seen.entry(*abi).or_default().extend(numbers);
                }
            }
            let session_census = census_of_seen(&seen);
            let (included, reason) = policy.decide(kind, command.as_deref());
            if included {
                census.merge(&session_census);
            } else if kind == SessionType::Exec {
                parts.exec_sessions_excluded = true;
            }
            parts.hooks |= kind == SessionType::Hook;
            let count: u64 = sessions.iter().map(|s| s.count).sum();
            if command.is_none() {
                parts.unnamed_sessions += count;
            }
            parts.sessions.push(SessionRecord {
                kind,
                command,
                first_seen: sessions
                    .iter()
                    .filter_map(|s| s.first_seen)
                    .min()
                    .map(|t| t.to_string()),
                last_seen: sessions
                    .iter()
                    .filter_map(|s| s.last_seen)
                    .max()
                    .map(|t| t.to_string()),
                count,
                syscalls: session_census,
                included,
                reason,
            });
        }
        parts.session_only = census.difference(&workload);
        parts.census = census;
        parts
    }
}

/// What a recording is made of: who the container is, when it was seen,
/// and what the kernel saw it do.
#[derive(Clone, Debug)]
pub struct RecordingParts<'a> {
    pub container_id: String,
    pub container_name: Option<String>,
    pub pod: Option<PodRef>,
    pub node: Option<String>,
    /// The container's cgroup v2 path (empty when unknown).
    pub cgroup: String,
    pub labels: BTreeMap<String, String>,
    pub image: Option<String>,
    pub state: State,
    pub start: Start,
    pub first_seen: jiff::Timestamp,
    pub last_seen: jiff::Timestamp,
    pub last_new_syscall: Option<jiff::Timestamp>,
    pub base_set: Option<&'a BaseSet>,
    pub snapshot: &'a Snapshot,
    /// Which sessions go into the profile.
    pub sessions: &'a SessionPolicy,
}

impl ContainerRecording {
    /// The recording of `parts`: the census of the snapshot (its workload
    /// and the sessions the policy puts in the profile), its sessions, its
    /// warnings, and the profile that allows what it saw plus the base set
    /// (with what the runtime needs for hooks, if hooks ran).
    pub fn build(parts: RecordingParts<'_>) -> ContainerRecording {
        let sorted = Parts::of(parts.snapshot, parts.sessions);
        let base = parts.base_set.map(|b| {
            if sorted.hooks {
                basesets::with_hooks(b)
            } else {
                b.clone()
            }
        });
        let census = sorted.census.clone();
        ContainerRecording {
            api_version: API_VERSION.into(),
            kind: KIND.into(),
            container_id: parts.container_id,
            container_name: parts.container_name.filter(|n| !n.is_empty()),
            pod: parts.pod,
            node: parts.node,
            cgroup: parts.cgroup,
            labels: parts.labels,
            image: parts.image.filter(|i| !i.is_empty()),
            state: parts.state,
            start: parts.start,
            first_seen: parts.first_seen.to_string(),
            last_seen: parts.last_seen.to_string(),
            last_new_syscall: parts.last_new_syscall.map(|t| t.to_string()),
            runtime_base_set: base.as_ref().map(|b| b.name.clone()),
            profile: Profile::from_census(&census, base.as_ref(), &BuildOptions::default()),
            syscalls: census,
            exec_sessions_excluded: sorted.exec_sessions_excluded,
            warnings: warnings_of(parts.snapshot, parts.start, &sorted),
            sessions: sorted.sessions,
            session_only_syscalls: sorted.session_only,
        }
    }

    /// Decides again which of its sessions are in the profile, with
    /// `policy`: for a container whose recording was made before its Pod's
    /// spec was known. The workload's own syscalls stay; the profile is
    /// rebuilt with the same base set.
    pub fn redecide(&mut self, policy: &SessionPolicy) {
        let workload = self.syscalls.difference(&self.session_only_syscalls);
        let mut census = workload.clone();
        let mut excluded = false;
        for session in &mut self.sessions {
            let (included, reason) = policy.decide(session.kind, session.command.as_deref());
            session.included = included;
            session.reason = reason;
            if included {
                census.merge(&session.syscalls);
            } else if session.kind == SessionType::Exec {
                excluded = true;
            }
        }
        let base = self.base_set();
        self.profile = Profile::from_census(&census, base.as_ref(), &BuildOptions::default());
        self.session_only_syscalls = census.difference(&workload);
        self.syscalls = census;
        self.exec_sessions_excluded = excluded;
    }

    /// The runtime base set its profile allows, from the profile's base-set
    /// rule (the document names it in `runtimeBaseSet`).
    pub fn base_set(&self) -> Option<BaseSet> {
        self.profile
            .syscalls
            .iter()
            .find_map(|rule| match rule.role() {
                RuleRole::BaseSet(name) => Some(BaseSet {
                    name: name.to_owned(),
                    syscalls: rule.names.iter().cloned().collect(),
                }),
                _ => None,
            })
    }

    /// The document as JSON: two-space indentation, trailing newline.
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

/// What makes a recording incomplete, in words for the reviewer.
pub fn warnings_of(snapshot: &Snapshot, start: Start, parts: &Parts) -> Vec<String> {
    let mut warnings = Vec::new();
    if start == Start::Late {
        warnings
            .push("recording started after the container did: earlier syscalls are missing".into());
    }
    if snapshot.out_of_range {
        warnings
            .push("syscall numbers outside the recorded range were made and are missing".into());
    }
    if snapshot.row_lost {
        warnings.push("32-bit syscalls were lost: the kernel map was full".into());
    }
    if snapshot.member_lost {
        warnings
            .push("a process of the workload could not be tracked: the kernel map was full".into());
    }
    if snapshot.alias_lost {
        warnings.push(
            "a cgroup made below the container's could not be tracked: the kernel map was full"
                .into(),
        );
    }
    if parts.unnamed_sessions > 0 {
        warnings.push(format!(
            "the command lines of {} sessions are unknown: the kernel's event buffer was full",
            parts.unnamed_sessions
        ));
    }
    warnings
}

#[cfg(test)]
mod tests;
