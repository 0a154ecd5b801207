//! From ContainerProfiles to an export directory for review in git: where
//! the profiles come from ([`source`]), what the directory holds ([`plan`],
//! pure; the [`patch`]es that make the workloads use the profiles), writing
//! it ([`tree`]), and committing and pushing it ([`git`]).
//!
//! What each profile file holds and where it goes is the Localhost profile
//! contract ([`crate::localhost`]), which the node agents' installer
//! follows too.
mod error;
pub mod git;
mod patch;
mod plan;
pub mod source;
pub mod write;

pub use error::ExportError;
pub use git::{Commit, DEFAULT_EMAIL, DEFAULT_NAME};
pub use patch::{
    ManifestContainer, ManifestWorkload, PatchContainer, WorkloadPatch, apply_configuration,
    group_version, json_patch, kustomization, parse_patch, pod_spec_pointer, strategic_merge_patch,
};
pub use plan::{
    Base, Entry, Installer, JSON_PATCH_FILE, KUSTOMIZATION_FILE, LOCALHOST_PROFILE_SUFFIX,
    PATCH_FILE, Plan, PlanOptions, SECCOMP_PROFILE_SUFFIX, is_profile_file, plan,
};
pub use source::{
    Filter, cluster_entries, denial_reports, file_entries, read_base, read_documents,
    recording_entry,
};
pub use write::{MANIFEST_FILE, Written, read_manifest};
