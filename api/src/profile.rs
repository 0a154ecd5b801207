//! `ContainerProfile`: the result of a recording for one workload container.
use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The kinds of workload a Pod can belong to, through its owners.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, JsonSchema,
)]
pub enum WorkloadKind {
    Deployment,
    StatefulSet,
    DaemonSet,
    /// A ReplicaSet that no Deployment owns.
    ReplicaSet,
    /// A Job that no CronJob owns.
    Job,
    CronJob,
    /// A Pod that no controller owns.
    Pod,
}

impl WorkloadKind {
    /// The kind's name.
    pub fn as_str(self) -> &'static str {
        match self {
            WorkloadKind::Deployment => "Deployment",
            WorkloadKind::StatefulSet => "StatefulSet",
            WorkloadKind::DaemonSet => "DaemonSet",
            WorkloadKind::ReplicaSet => "ReplicaSet",
            WorkloadKind::Job => "Job",
            WorkloadKind::CronJob => "CronJob",
            WorkloadKind::Pod => "Pod",
        }
    }

    /// The kind from its name.
    pub fn from_name(name: &str) -> Option<WorkloadKind> {
        [
            WorkloadKind::Deployment,
            WorkloadKind::StatefulSet,
            WorkloadKind::DaemonSet,
            WorkloadKind::ReplicaSet,
            WorkloadKind::Job,
            WorkloadKind::CronJob,
            WorkloadKind::Pod,
        ]
        .into_iter()
        .find(|k| k.as_str() == name)
    }

    /// The `apiVersion` of the kind.
    pub fn api_version(self) -> &'static str {
        match self {
            WorkloadKind::Deployment
            | WorkloadKind::StatefulSet
            | WorkloadKind::DaemonSet
            | WorkloadKind::ReplicaSet => "apps/v1",
            WorkloadKind::Job | WorkloadKind::CronJob => "batch/v1",
            WorkloadKind::Pod => "v1",
        }
    }
}

/// A workload: what a Pod's controllers resolve to.
#[derive(
    Serialize, Deserialize, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, JsonSchema,
)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadRef {
    pub kind: WorkloadKind,
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
}

/// A runtime base set, as added to the profile.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BaseSetRef {
    /// The set's name (several, joined by `+`, when nodes chose differently).
    pub name: String,
    pub syscalls: Vec<String>,
}

/// What one node contributed, as the sample of contributors shows it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NodeContribution {
    #[schemars(length(min = 1, max = 253))]
    pub node: String,
    /// Names of Pods recorded on the node (the most recent 10).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 10), inner(length(max = 253)))]
    pub pods: Vec<String>,
    /// Container instances recorded on the node (restarts count again).
    pub containers: i64,
    #[schemars(regex(pattern = crate::TIME_PATTERN))]
    pub first_seen: Time,
    #[schemars(regex(pattern = crate::TIME_PATTERN))]
    pub last_seen: Time,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = crate::TIME_PATTERN))]
    pub last_new_syscall: Option<Time>,
}

/// Who contributed to a ContainerProfile: counts over every node, and a
/// sample of the first nodes (at most 10), so that the object's size does
/// not grow with the cluster. Each node is counted once per object (its
/// agent remembers the object's uid); its Pods and containers are counted
/// when it next writes.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Contributors {
    /// Nodes that contributed.
    pub nodes: i64,
    /// Pods recorded, over every node (a Pod seen again after its node
    /// forgot it may count twice).
    pub pods: i64,
    /// Container instances recorded, over every node.
    pub containers: i64,
    /// The first nodes that contributed, with their Pods.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 10))]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["node"]))]
    pub sample: Vec<NodeContribution>,
}

/// The syscalls one container of one workload made: the union over every
/// replica on every node that recorded it, and the runtime's base set kept
/// apart. `lastNewSyscall` tells when the recording last learned something:
/// when it is long ago, the recording has converged.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[allow(
    clippy::duplicated_attributes,
    reason = "each printcolumn(...) repeats `type_`; clippy takes them for one attribute"
)]
#[kube(
    group = "syscensus.io",
    version = "v1alpha1",
    kind = "ContainerProfile",
    namespaced,
    shortname = "cprof",
    category = "syscensus",
    doc = "The syscalls one container of one workload made, merged over replicas and nodes.",
    printcolumn(name = "Workload", type_ = "string", json_path = ".spec.workload.name"),
    printcolumn(name = "Kind", type_ = "string", json_path = ".spec.workload.kind"),
    printcolumn(name = "Container", type_ = "string", json_path = ".spec.container"),
    printcolumn(name = "Syscalls", type_ = "integer", json_path = ".spec.syscallCount"),
    printcolumn(name = "Last-New", type_ = "date", json_path = ".spec.lastNewSyscall"),
    printcolumn(
        name = "Approval",
        type_ = "string",
        json_path = ".metadata.labels.syscensus\\.io/approval"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct ContainerProfileSpec {
    /// The ProfileRecording that made this profile.
    #[schemars(length(min = 1, max = 253))]
    pub recording: String,
    pub workload: WorkloadRef,
    /// The container's name.
    #[schemars(length(min = 1, max = 63))]
    pub container: String,
    /// Whether it is an init container.
    #[serde(default)]
    pub init_container: bool,
    /// Syscall names per architecture (`SCMP_ARCH_X86_64`, ...), sorted.
    pub syscalls: BTreeMap<String, Vec<String>>,
    /// Distinct (architecture, syscall) pairs in `syscalls`.
    pub syscall_count: i64,
    /// The runtime base set, kept apart from what the workload made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime_base_set: Option<BaseSetRef>,
    /// Who recorded it: how many nodes, Pods and containers, and a
    /// bounded sample of the nodes.
    #[serde(default)]
    pub contributors: Contributors,
    #[schemars(regex(pattern = crate::TIME_PATTERN))]
    pub first_seen: Time,
    #[schemars(regex(pattern = crate::TIME_PATTERN))]
    pub last_seen: Time,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = crate::TIME_PATTERN))]
    pub last_new_syscall: Option<Time>,
    /// Anything that makes the recording incomplete.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// Syscall names in `syscalls` that only exec sessions or OCI hooks
    /// made, not the workload, per architecture.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub session_only_syscalls: BTreeMap<String, Vec<String>>,
    /// The exec sessions and OCI hooks that ran in the containers, one entry
    /// per type and command line (at most 64).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    pub sessions: Vec<SessionSummary>,
}

/// Exec sessions or OCI hooks of one type and command line.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SessionSummary {
    /// `Exec` (an exec session: a probe, a lifecycle hook, `kubectl
    /// exec`), `Hook` (an OCI hook) or `Unknown`.
    #[serde(rename = "type")]
    #[schemars(length(max = 16))]
    pub kind: String,
    /// The command line as exec'd (the kernel cuts it at 512 bytes); absent
    /// when it is unknown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 256), inner(length(max = 512)))]
    pub command: Option<Vec<String>>,
    /// Whether their syscalls are in `syscalls`.
    pub included: bool,
    /// Why they are in the profile or not.
    #[schemars(length(max = 512))]
    pub reason: String,
    /// Syscall names they made, per architecture.
    #[serde(default)]
    pub syscalls: BTreeMap<String, Vec<String>>,
}
