//! The record of one container's recording, as the agent writes it to its
//! state directory (`containers/<container-id>.json`): who the container is,
//! what it did, and the profile that allows exactly that.
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{
    bpf::Snapshot,
    census::{Census, census_of},
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
    /// Syscall names the container made, per architecture (`SCMP_ARCH_*`).
    pub syscalls: Census,
    /// Exec sessions (`kubectl exec`, `runc exec`) ran in the container and
    /// were left out of the recording.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub exec_sessions_excluded: bool,
    /// Anything that makes the recording incomplete.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    pub profile: Profile,
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
}

impl ContainerRecording {
    /// The recording of `parts`: the census of the snapshot, its warnings,
    /// and the profile that allows what it saw plus the base set.
    pub fn build(parts: RecordingParts<'_>) -> ContainerRecording {
        let census = census_of(parts.snapshot);
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
            runtime_base_set: parts.base_set.map(|b| b.name.clone()),
            profile: Profile::from_census(&census, parts.base_set, &BuildOptions::default()),
            syscalls: census,
            exec_sessions_excluded: parts.snapshot.exec_sessions,
            warnings: warnings_of(parts.snapshot, parts.start),
        }
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
pub fn warnings_of(snapshot: &Snapshot, start: Start) -> Vec<String> {
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
    warnings
}
