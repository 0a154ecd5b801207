//! The syscensus Kubernetes API, group `syscensus.io`, version `v1alpha1`:
//!
//! - [`ProfileRecording`]: which Pods to record (by labels), and how; its
//!   status says whether the spec is valid and recording (what each node
//!   records is in the node's Lease: [`NodeRecordings`]).
//! - [`ContainerProfile`]: the result, one per (recording, workload,
//!   container): the syscalls every replica on every node made, merged, with
//!   how many nodes, Pods and containers they came from and a bounded
//!   sample of those nodes.
//! - [`LocalhostProfile`]: a reviewed profile, byte for byte, that every
//!   node installs where a workload container's `localhostProfile` points.
//! - [`NodeProfileStatus`]: per node, what its agent installed.
//!
//! The CRD manifests in `deploy/` are generated from these types by `cargo
//! xtask gen-crds`, and a test fails when they drift.
#![cfg_attr(
    test,
    allow(
        unused_crate_dependencies,
        reason = "the dev-dependencies serve the integration tests"
    )
)]

mod install;
mod names;
mod profile;
mod recording;

pub use install::{
    InstalledProfile, LocalhostProfile, LocalhostProfileSpec, MAX_PROFILE_BYTES,
    MAX_REFUSED_SYSCALLS, MAX_REPORTERS, NodeProfileStatus, NodeProfileStatusSpec, RefusalReport,
    RefusalReportSpec, RefusalReporter, RefusedProfile, RefusedSyscall,
};
pub use names::{
    NameError, label_value, localhost_profile_name, object_name, validate_dns_label,
    validate_dns_subdomain,
};
pub use profile::{
    BaseSetRef, ContainerProfile, ContainerProfileSpec, Contributors, NodeContribution,
    SessionSummary, WorkloadKind, WorkloadRef,
};
pub use recording::{
    NodeRecording, NodeRecordings, Phase, ProfileRecording, ProfileRecordingSpec,
    ProfileRecordingStatus, RecordedWorkload,
};

/// The API group.
pub const GROUP: &str = "syscensus.io";
/// The API version.
pub const VERSION: &str = "v1alpha1";

/// Labels syscensus puts on the objects it writes, and reads.
pub mod labels {
    /// On a ContainerProfile: the ProfileRecording that made it.
    pub const RECORDING: &str = "syscensus.io/recording";
    /// On a ContainerProfile: the workload's kind, lowercase.
    pub const WORKLOAD_KIND: &str = "syscensus.io/workload-kind";
    /// On a ContainerProfile: the workload's name (shortened with a hash if
    /// longer than a label value may be).
    pub const WORKLOAD_NAME: &str = "syscensus.io/workload-name";
    /// On a ContainerProfile: the container's name.
    pub const CONTAINER: &str = "syscensus.io/container";
    /// On a ContainerProfile that `syscensus approve` approved:
    /// [`APPROVED`](approval::APPROVED) while its spec is the one approved,
    /// [`CHANGED`](approval::CHANGED) once the agents merged syscalls into
    /// it since (kept current by every writer of the spec).
    pub const APPROVAL: &str = "syscensus.io/approval";

    /// Values of [`APPROVAL`].
    pub mod approval {
        /// The spec is the one approved.
        pub const APPROVED: &str = "approved";
        /// The spec changed since it was approved: the nodes install what
        /// was approved until it is approved again.
        pub const CHANGED: &str = "changed";
    }
}

/// Annotations syscensus puts on the objects it writes, and reads.
pub mod annotations {
    /// On a ContainerProfile: the SHA-256 of the profile file its spec
    /// rendered to when `syscensus approve` approved it.
    pub const APPROVED_SHA256: &str = "syscensus.io/approved-sha256";
    /// On a ContainerProfile: when it was approved (RFC 3339).
    pub const APPROVED_AT: &str = "syscensus.io/approved-at";
    /// On a node's Lease (`syscensus-<node>` in the agent's namespace): what
    /// the node records, the JSON of a
    /// [`NodeRecordings`](crate::NodeRecordings).
    pub const NODE_RECORDINGS: &str = "syscensus.io/recordings";
}

/// The times the API types hold, as the CRDs' `pattern` for them: RFC 3339
/// with a `Z` or `±hh:mm` offset, at most nine fraction digits and a year
/// from 1000 to 2999. The API server's own `date-time` check lets through
/// more (any number of fraction digits, years near 9999 that no offset can
/// take to UTC), which the agents could not read back: one such object
/// would stop every agent's watch of its kind.
pub const TIME_PATTERN: &str = r"^[12][0-9]{3}-[0-9]{2}-[0-9]{2}[Tt]([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{1,9})?([Zz]|[+-]([01][0-9]|2[0-3]):[0-5][0-9])$";

/// The field manager syscensus writes with (server-side apply).
pub const FIELD_MANAGER: &str = "syscensus";

/// The CustomResourceDefinitions, in a stable order.
pub fn crds()
-> Vec<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition>
{
    use kube::CustomResourceExt as _;
    vec![
        ProfileRecording::crd(),
        ContainerProfile::crd(),
        LocalhostProfile::crd(),
        NodeProfileStatus::crd(),
        RefusalReport::crd(),
    ]
}

/// The CRDs as YAML documents, one per CRD, as `deploy/` holds them.
pub fn crd_yaml() -> Vec<(String, String)> {
    crds()
        .into_iter()
        .map(|crd| {
            let name = crd.metadata.name.clone().unwrap_or_default();
            #[expect(clippy::unwrap_used, reason = "serializing a CRD to YAML cannot fail")]
            let body = serde_norway::to_string(&crd).unwrap();
            (
                name,
                format!("# Generated by `cargo xtask gen-crds` from api/src: do not edit.\n{body}"),
            )
        })
        .collect()
}
