//! What production nodes install, and what each node reports it installed.
//!
//! - [`LocalhostProfile`]: one seccomp profile, byte for byte, and the
//!   workload container whose `localhostProfile` it is. `syscensus export`
//!   writes one beside each profile file, so that what is reviewed in git
//!   is what nodes install; `syscensus approve` makes one from a
//!   ContainerProfile in the same cluster. Every node's agent writes it to
//!   `<kubelet-root>/seccomp/<spec.localhostProfile>`.
//! - [`NodeProfileStatus`]: one per node, named after it and written only
//!   by that node's agent: the profiles it installed, with their SHA-256,
//!   and the ones it refused. `syscensus apply` reads them; nothing watches
//!   them.
//! - [`RefusalReport`]: one per LocalhostProfile that refused anything in
//!   production, named after it and owned by it: the refused syscalls with
//!   counts over every node. Every node that saw a refusal adds to it; no
//!   agent watches it, so those writes reach no node (a write into the
//!   LocalhostProfile's status would reach every node's watch of
//!   LocalhostProfiles: traffic that grows with the square of the nodes).
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::profile::WorkloadRef;

/// The longest profile a LocalhostProfile holds (256 KiB; a profile of
/// every syscall of every architecture is well under 64 KiB).
pub const MAX_PROFILE_BYTES: usize = 256 * 1024;

/// A seccomp profile to install on every node, at the path a workload
/// container's `localhostProfile` names. The profile is held as text, byte
/// for byte the file that was reviewed, with its SHA-256: nodes install
/// exactly these bytes, whatever version of syscensus they run.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[allow(
    clippy::duplicated_attributes,
    reason = "each printcolumn(...) repeats `type_`; clippy takes them for one attribute"
)]
#[kube(
    group = "syscensus.io",
    version = "v1alpha1",
    kind = "LocalhostProfile",
    namespaced,
    shortname = "lprof",
    category = "syscensus",
    doc = "A seccomp profile, byte for byte, that every node installs where the workload container's Localhost profile points.",
    printcolumn(
        name = "Localhost-Profile",
        type_ = "string",
        json_path = ".spec.localhostProfile"
    ),
    printcolumn(name = "SHA256", type_ = "string", json_path = ".spec.sha256"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct LocalhostProfileSpec {
    /// The workload whose container runs under it; with the object's
    /// namespace and `container`, it decides the path.
    pub workload: WorkloadRef,
    /// The container's name.
    #[schemars(
        length(min = 1, max = 63),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    )]
    pub container: String,
    /// Where the kubelet finds it, relative to its seccomp directory:
    /// `syscensus/<namespace>/<kind>-<workload>/<container>.json`, the
    /// workload's kind lowercase. Nodes refuse an object whose path is not
    /// the one its namespace, workload and container make.
    #[schemars(length(min = 1, max = 400))]
    pub localhost_profile: String,
    /// SHA-256 of `profile`, lowercase hex.
    #[schemars(regex(pattern = r"^[0-9a-f]{64}$"))]
    pub sha256: String,
    /// The profile file (OCI `linux.seccomp` JSON), exactly as exported.
    #[schemars(length(min = 2, max = 262144))]
    pub profile: String,
}

/// The most syscalls one [`RefusalReport`] lists.
pub const MAX_REFUSED_SYSCALLS: usize = 256;
/// The most (node, Pod) pairs one [`RefusedSyscall`] names.
pub const MAX_REPORTERS: usize = 10;

/// What a LocalhostProfile refused in production, over every node that
/// runs a container under it. Named after the LocalhostProfile, in its
/// namespace, and owned by it (deleting the profile deletes its report).
/// Its size does not grow with the number of nodes: one entry per refused
/// syscall, each with a bounded sample of the nodes and Pods that reported
/// it. Each node's agent adds what it saw since its last write, under the
/// resourceVersion it read. No agent watches these objects.
#[derive(
    CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema,
)]
#[allow(
    clippy::duplicated_attributes,
    reason = "each printcolumn(...) repeats `type_`; clippy takes them for one attribute"
)]
#[kube(
    group = "syscensus.io",
    version = "v1alpha1",
    kind = "RefusalReport",
    namespaced,
    shortname = "refusals",
    category = "syscensus",
    doc = "What one LocalhostProfile refused in production, over every node; named after it, owned by it, and written by the agents that saw the refusals.",
    printcolumn(
        name = "Localhost-Profile",
        type_ = "string",
        json_path = ".spec.localhostProfile"
    ),
    printcolumn(
        name = "Not-Listed",
        type_ = "integer",
        json_path = ".spec.refusedNotListed"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct RefusalReportSpec {
    /// The LocalhostProfile's `localhostProfile` path when the report was
    /// made.
    #[serde(default)]
    #[schemars(length(max = 400))]
    pub localhost_profile: String,
    /// The refused syscalls, sorted by architecture and name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 256))]
    pub refused: Vec<RefusedSyscall>,
    /// Refused syscalls not listed: `refused` was full.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub refused_not_listed: i64,
}

fn is_zero(n: &i64) -> bool {
    *n == 0
}

/// One syscall a profile refused.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RefusedSyscall {
    /// `SCMP_ARCH_X86_64`, ...
    #[schemars(length(max = 64))]
    pub architecture: String,
    /// The syscall's name (`#<nr>` for a number without one).
    #[schemars(length(max = 64))]
    pub syscall: String,
    /// `errno` (it failed with the profile's errno), `log` (complain mode:
    /// it ran, an enforced profile would refuse it) or `signal` (the
    /// process was killed or trapped), as first seen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 16))]
    pub how: Option<String>,
    /// Refusals counted, over every node.
    pub count: i64,
    #[schemars(regex(pattern = crate::TIME_PATTERN))]
    pub first_seen: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time,
    #[schemars(regex(pattern = crate::TIME_PATTERN))]
    pub last_seen: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time,
    /// Up to 10 of the (node, Pod, container) that reported it, the most
    /// recent last.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 10))]
    pub reported_by: Vec<RefusalReporter>,
}

/// Where a refusal was seen.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RefusalReporter {
    #[schemars(length(max = 253))]
    pub node: String,
    #[schemars(length(max = 253))]
    pub pod: String,
    #[schemars(length(max = 63))]
    pub container: String,
}

/// What a node installed and refused. One object per node, named after
/// the node and owned by its Node object; only that node's agent writes
/// it, and only when what it says changes.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[allow(
    clippy::duplicated_attributes,
    reason = "each printcolumn(...) repeats `type_`; clippy takes them for one attribute"
)]
#[kube(
    group = "syscensus.io",
    version = "v1alpha1",
    kind = "NodeProfileStatus",
    plural = "nodeprofilestatuses",
    shortname = "nps",
    category = "syscensus",
    doc = "The seccomp profiles one node's agent installed and refused; written by that agent only.",
    printcolumn(
        name = "Installed",
        type_ = "integer",
        json_path = ".spec.installedCount"
    ),
    printcolumn(name = "Refused", type_ = "integer", json_path = ".spec.refusedCount"),
    printcolumn(name = "Changed", type_ = "date", json_path = ".spec.changed")
)]
#[serde(rename_all = "camelCase")]
pub struct NodeProfileStatusSpec {
    /// The node.
    #[schemars(length(min = 1, max = 253))]
    pub node: String,
    /// Entries in `installed`.
    pub installed_count: i64,
    /// Entries in `refused`.
    pub refused_count: i64,
    /// The profiles on the node, sorted by path.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 20000))]
    pub installed: Vec<InstalledProfile>,
    /// LocalhostProfiles the node would not install, and why.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 1000))]
    pub refused: Vec<RefusedProfile>,
    /// When the agent last changed this object.
    #[schemars(regex(pattern = crate::TIME_PATTERN))]
    pub changed: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time,
}

/// A profile file on a node.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct InstalledProfile {
    /// The `localhostProfile` path, relative to the kubelet's seccomp
    /// directory.
    #[schemars(length(max = 400))]
    pub localhost_profile: String,
    /// SHA-256 of the file, lowercase hex.
    #[schemars(length(max = 64))]
    pub sha256: String,
    /// Set when no LocalhostProfile asks for the file any more and it stays
    /// because something still uses it (a Pod on the node, or the pod
    /// template of the workload the path names): what.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 400))]
    pub kept_for: Option<String>,
}

/// A LocalhostProfile a node would not install.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RefusedProfile {
    /// `<namespace>/<name>` of the LocalhostProfile.
    #[schemars(length(max = 320))]
    pub profile: String,
    /// Why, in one line.
    #[schemars(length(max = 1024))]
    pub reason: String,
}
