//! The Localhost profile contract: what file a ContainerProfile becomes,
//! byte for byte ([`render`]), where it lives ([`path`]: the same relative
//! path in an export directory and below
//! `<kubelet-root>/seccomp/syscensus/`, which `localhostProfile:
//! syscensus/<path>` points at), which specs may become one ([`check`]),
//! how two specs of the same workload container merge ([`merge`]), the
//! [`object`] that carries a profile's bytes to the nodes, and which
//! profiles Pods and workloads name ([`usage`]). `syscensus export`,
//! `approve` and the node agents' installer all use it, so that what is
//! reviewed in git is what runs. Pure: no I/O.
use std::{collections::BTreeMap, path::Path};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use syscensus_api::{ContainerProfileSpec, Contributors, NodeContribution, SessionSummary};

use crate::{
    census::Census,
    profile::{BaseSet, BuildOptions, Profile},
    syscalls::Arch,
};

pub mod object;
pub mod path;
pub mod usage;

pub use path::{
    PathError, localhost_profile, profile_path, slash_path, spec_profile_path, workload_dir,
};

/// The directory below the kubelet's seccomp directory
/// (`<kubelet-root>/seccomp/`) that holds syscensus's profiles: a
/// `localhostProfile` is `syscensus/<profile path>`.
pub const LOCALHOST_DIR: &str = "syscensus";

/// Pods named per node in a ContainerProfile's sample (the most recent).
pub const MAX_PODS: usize = 10;

/// Nodes named in a ContainerProfile's sample of contributors (the first
/// that contributed); the others are counted only.
pub const MAX_SAMPLE: usize = 10;

/// The profile of a ContainerProfile: its census, one `recorded:` rule per
/// architecture, and its runtime base set in a rule of its own; the default
/// action fails other syscalls with EPERM. It depends on the spec's
/// syscalls and base set only, not on the machine that renders it.
pub fn spec_profile(spec: &ContainerProfileSpec) -> Profile {
    let base = spec.runtime_base_set.as_ref().map(BaseSet::from);
    Profile::from_census(
        &Census::from_spec(&spec.syscalls),
        base.as_ref(),
        &BuildOptions::default(),
    )
}

/// The file for a ContainerProfile: [`spec_profile`] as OCI JSON
/// (deterministic, trailing newline). Exports write it at [`profile_path`]
/// and the installer at `<kubelet-root>/seccomp/syscensus/<profile_path>`,
/// so both hold the same bytes and the same SHA-256.
pub fn render(spec: &ContainerProfileSpec) -> String {
    spec_profile(spec).to_oci_json()
}

/// SHA-256 of `bytes`, lowercase hex: how profile files are named in
/// approvals, LocalhostProfiles and the nodes' reports.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// What approving a ContainerProfile's spec binds the approval to: the
/// SHA-256 of the file it renders to ([`render`]).
pub fn spec_sha256(spec: &ContainerProfileSpec) -> String {
    sha256_hex(render(spec).as_bytes())
}

/// The approval label a ContainerProfile's writer puts on a spec, given the
/// SHA-256 its approval annotation holds (if any).
pub fn approval_label(
    spec: &ContainerProfileSpec,
    approved_sha256: Option<&str>,
) -> Option<&'static str> {
    use syscensus_api::labels::approval;
    let approved = approved_sha256?;
    Some(if spec_sha256(spec).eq_ignore_ascii_case(approved) {
        approval::APPROVED
    } else {
        approval::CHANGED
    })
}

/// Checks that a ContainerProfile renders into a profile that runtimes and
/// `syscensus run` accept: known architectures, and names that are
/// syscalls of theirs. The CRD cannot say so, and an approved profile with
/// a wrong name would be installed on every node and fail every Pod that
/// uses it; exports and the installer refuse it instead.
pub fn check(spec: &ContainerProfileSpec) -> Result<(), String> {
    if let Some(arch) = spec
        .syscalls
        .keys()
        .find(|a| Arch::from_scmp_name(a).is_none())
    {
        return Err(format!(
            "unknown architecture {arch:?} in spec.syscalls (use names such as SCMP_ARCH_X86_64)"
        ));
    }
    Profile::parse(&render(spec), Path::new("spec.syscalls"), None)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// Merges `other` into `into`: two specs of the same workload container
/// (from two recordings, or this node's results and what the cluster
/// holds), so that the profile allows what either saw and nothing either
/// says is lost. The one set of rules for ContainerProfile specs:
///
/// - syscalls united per architecture; base sets united (names joined
///   with `+`);
/// - an init container if either says so;
/// - first seen the earlier, last seen the later;
/// - `lastNewSyscall` the later of the two when `other` brings syscalls
///   `into` lacks, else `into`'s: it moves only when the union grows, to
///   when the new syscall was seen;
/// - contributors: each count the larger of the two (both may count the
///   same nodes; a node's own write adds what it brings, see
///   `daemon::contribution::merge`); each sampled node's entry merged with
///   that node's other entry (its Pods united, most recent last, at most
///   [`MAX_PODS`]; the larger container count; the earlier first seen, the
///   later last seen and `lastNewSyscall`), nodes not in the sample added
///   at its end while it holds fewer than [`MAX_SAMPLE`];
/// - warnings united, sorted;
/// - sessions merged ([`merge_sessions`]); a syscall only sessions made
///   if neither spec's workload made it.
///
/// `recording`, `workload` and `container` are `into`'s. Returns whether
/// the syscalls grew.
pub fn merge(into: &mut ContainerProfileSpec, other: &ContainerProfileSpec) -> bool {
    into.session_only_syscalls = session_only(into, other);
    merge_sessions(&mut into.sessions, &other.sessions);
    let mut census = Census::from_spec(&into.syscalls);
    let grew = census.merge(&Census::from_spec(&other.syscalls));
    into.syscalls = census.to_spec();
    into.syscall_count = census.len() as i64;
    into.init_container |= other.init_container;
    into.runtime_base_set = match (into.runtime_base_set.take(), &other.runtime_base_set) {
        (Some(a), Some(b)) => Some((&BaseSet::from(&a).union(&BaseSet::from(b))).into()),
        (a, b) => a.or_else(|| b.clone()),
    };
    into.first_seen = earlier(&into.first_seen, &other.first_seen);
    into.last_seen = later(&into.last_seen, &other.last_seen);
    if grew {
        into.last_new_syscall = later_opt(
            into.last_new_syscall.as_ref(),
            other.last_new_syscall.as_ref(),
        );
    }
    merge_contributors(&mut into.contributors, &other.contributors);
    into.warnings.extend(other.warnings.iter().cloned());
    into.warnings.sort();
    into.warnings.dedup();
    grew
}

/// Merges two views of who contributed (see [`merge`]).
fn merge_contributors(into: &mut Contributors, other: &Contributors) {
    into.nodes = into.nodes.max(other.nodes);
    into.pods = into.pods.max(other.pods);
    into.containers = into.containers.max(other.containers);
    // In the order `into` has them (the API server's, after its merge of
    // the list map): a merge that changes nothing else changes nothing.
    for theirs in &other.sample {
        let full = into.sample.len() >= MAX_SAMPLE;
        match into.sample.iter_mut().find(|n| n.node == theirs.node) {
            Some(ours) => *ours = merge_node(ours.clone(), theirs),
            None if !full => {
                let mut entry = theirs.clone();
                let excess = entry.pods.len().saturating_sub(MAX_PODS);
                entry.pods.drain(..excess);
                into.sample.push(entry);
            }
            None => {}
        }
    }
}

/// Most sessions listed in a ContainerProfile.
pub const MAX_SESSIONS: usize = 64;

/// Merges the sessions of two specs (or a recording's into a spec): one
/// entry per type and command line, their syscalls united, in the profile
/// if either says so (with its reason). Those in the profile come first;
/// at most [`MAX_SESSIONS`] are kept.
pub fn merge_sessions(into: &mut Vec<SessionSummary>, other: &[SessionSummary]) {
    for theirs in other {
        match into
            .iter_mut()
            .find(|s| s.kind == theirs.kind && s.command == theirs.command)
        {
            Some(ours) => {
                let mut census = Census::from_spec(&ours.syscalls);
                census.merge(&Census::from_spec(&theirs.syscalls));
                ours.syscalls = census.to_spec();
                if theirs.included && !ours.included {
                    ours.included = true;
                    ours.reason = theirs.reason.clone();
                }
            }
            None => into.push(theirs.clone()),
        }
    }
    into.sort_by(|a, b| {
        (!a.included, &a.kind, &a.command).cmp(&(!b.included, &b.kind, &b.command))
    });
    into.truncate(MAX_SESSIONS);
}

/// What only sessions made in a union of two specs: what only sessions
/// made in either, but not what either's workload made.
fn session_only(
    a: &ContainerProfileSpec,
    b: &ContainerProfileSpec,
) -> BTreeMap<String, Vec<String>> {
    let (a_only, b_only) = (
        Census::from_spec(&a.session_only_syscalls),
        Census::from_spec(&b.session_only_syscalls),
    );
    let mut workload = Census::from_spec(&a.syscalls).difference(&a_only);
    workload.merge(&Census::from_spec(&b.syscalls).difference(&b_only));
    let mut only = a_only;
    only.merge(&b_only);
    only.difference(&workload).to_spec()
}

/// Two entries of one node: `theirs` is the more recent.
fn merge_node(ours: NodeContribution, theirs: &NodeContribution) -> NodeContribution {
    let mut pods: Vec<String> = ours
        .pods
        .into_iter()
        .filter(|p| !theirs.pods.contains(p))
        .collect();
    pods.extend(theirs.pods.iter().cloned());
    let excess = pods.len().saturating_sub(MAX_PODS);
    pods.drain(..excess);
    NodeContribution {
        node: theirs.node.clone(),
        pods,
        containers: ours.containers.max(theirs.containers),
        first_seen: earlier(&ours.first_seen, &theirs.first_seen),
        last_seen: later(&ours.last_seen, &theirs.last_seen),
        last_new_syscall: later_opt(
            ours.last_new_syscall.as_ref(),
            theirs.last_new_syscall.as_ref(),
        ),
    }
}

fn earlier(a: &Time, b: &Time) -> Time {
    if a.0 <= b.0 { a.clone() } else { b.clone() }
}

fn later(a: &Time, b: &Time) -> Time {
    if a.0 >= b.0 { a.clone() } else { b.clone() }
}

fn later_opt(a: Option<&Time>, b: Option<&Time>) -> Option<Time> {
    match (a, b) {
        (Some(a), Some(b)) => Some(later(a, b)),
        (Some(x), None) | (None, Some(x)) => Some(x.clone()),
        (None, None) => None,
    }
}

#[cfg(test)]
mod tests;
