//! `ProfileRecording`: which Pods to record.
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::profile::WorkloadRef;

fn default_true() -> bool {
    true
}

/// Records the syscalls of the containers of the Pods that `podSelector`
/// selects in this namespace, including Pods that start later. Each node's
/// agent records its share; the results are ContainerProfiles, one per
/// workload container.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[allow(
    clippy::duplicated_attributes,
    reason = "each printcolumn(...) repeats `type_`; clippy takes them for one attribute"
)]
#[kube(
    group = "syscensus.io",
    version = "v1alpha1",
    kind = "ProfileRecording",
    namespaced,
    status = "ProfileRecordingStatus",
    shortname = "prec",
    category = "syscensus",
    doc = "Which Pods to record and how; each node's agent records its share.",
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(name = "Paused", type_ = "boolean", json_path = ".spec.paused"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct ProfileRecordingSpec {
    /// Which Pods of this namespace to record, by their labels. An empty
    /// selector selects every Pod of the namespace.
    pub pod_selector: LabelSelector,
    /// Only the containers with these names; every container when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(
        length(max = 64),
        inner(
            length(min = 1, max = 63),
            regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
        )
    )]
    pub containers: Vec<String>,
    /// Record init containers too.
    #[serde(default = "default_true")]
    pub include_init_containers: bool,
    /// The runtime base set added to the profiles: `auto` (from the
    /// agent's runtime and whether the container runs with no_new_privs), or
    /// a set's name (`runc`, `runc-nnp`, `crun`, `none`). The agent's
    /// `--base-set` when empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 63), regex(pattern = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"))]
    pub base_set: Option<String>,
    /// Put every exec session (`kubectl exec`) into the profiles. Without
    /// it, only sessions that run one of the container's exec probes
    /// (liveness, readiness, startup) or lifecycle hooks (postStart,
    /// preStop), as the Pod's spec gives them, are in; the others are listed
    /// in the ContainerProfile and left out.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub include_exec_sessions: bool,
    /// Stop recording while true, resume when false again. What was recorded
    /// is kept; containers that start while paused are not recorded, and
    /// nothing new from running ones is added until it resumes.
    #[serde(default)]
    pub paused: bool,
}

/// The phase of a recording.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum Phase {
    /// Containers of selected Pods that start are recorded.
    Recording,
    /// `spec.paused` is true.
    Paused,
    /// The spec cannot be used (see the conditions).
    Invalid,
}

/// The phase and conditions, which the agents derive from the spec alone
/// and write only when they differ from what the status holds: nothing
/// here changes with what a node records. What each node records is in a
/// Lease of its own ([`NodeRecordings`]), which nobody watches.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProfileRecordingStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,
    /// `Valid`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    /// The `metadata.generation` the phase and conditions describe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// What one node records, per recording: the JSON of the annotation
/// [`NODE_RECORDINGS`](crate::annotations::NODE_RECORDINGS) on the
/// node's Lease (`syscensus-<node>` in the agent's namespace), written when
/// it changes.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct NodeRecordings {
    pub node: String,
    /// Events lost on this node (kernel map full, ...); 0 when complete.
    #[serde(default)]
    pub kernel_drops: i64,
    pub recordings: Vec<NodeRecording>,
}

/// What one node records for a recording.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct NodeRecording {
    pub namespace: String,
    pub recording: String,
    /// Containers being recorded now.
    pub recording_containers: i64,
    /// Containers recorded to their end.
    pub recorded_containers: i64,
    /// Distinct syscalls across this node's workload containers.
    pub syscalls: i64,
    /// Incomplete results on this node; 0 when complete.
    #[serde(default)]
    pub drops: i64,
    /// The workloads and containers recorded on this node.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub workloads: Vec<RecordedWorkload>,
}

/// A workload and the containers of it that a node records.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RecordedWorkload {
    pub workload: WorkloadRef,
    pub containers: Vec<String>,
}
