//! The seccomp profile model: OCI runtime-spec `linux.seccomp`, as written by
//! syscensus and read from others (see `parse.rs` for the formats read).
//!
//! Output is deterministic: fields in a fixed order, names sorted, two-space
//! indentation, a trailing newline, so that identical recordings give
//! byte-identical files and git diffs show only real changes.
use std::{collections::BTreeSet, path::Path};

use serde::{Deserialize, Serialize};

mod error;
mod groups;
mod host;
mod names;
mod parse;
mod spo;
pub use error::{Invalid, ProfileError, SpoProblem, excerpt};
pub use groups::{
    BASE_SET_COMMENT, Mismatch, RECORDED_COMMENT, RuleRole, UnionMismatch, action_name,
};
pub use host::{Host, KernelVersion, capability_number};
pub use names::{ARCH_NAMES, FLAG_NAMES, SPO_GROUP};
pub use spo::{
    RULE_COMMENTS_ANNOTATION, suggest_object_name, validate_namespace, validate_object_name,
};

/// A seccomp action, as named in profiles.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Action {
    #[serde(rename = "SCMP_ACT_ALLOW")]
    Allow,
    #[serde(rename = "SCMP_ACT_ERRNO")]
    Errno,
    #[serde(rename = "SCMP_ACT_LOG")]
    Log,
    #[serde(rename = "SCMP_ACT_KILL_THREAD", alias = "SCMP_ACT_KILL")]
    KillThread,
    #[serde(rename = "SCMP_ACT_KILL_PROCESS")]
    KillProcess,
    #[serde(rename = "SCMP_ACT_TRAP")]
    Trap,
    #[serde(rename = "SCMP_ACT_TRACE")]
    Trace,
    #[serde(rename = "SCMP_ACT_NOTIFY")]
    Notify,
}

/// A comparison on one syscall argument.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    #[serde(rename = "SCMP_CMP_NE")]
    Ne,
    #[serde(rename = "SCMP_CMP_LT")]
    Lt,
    #[serde(rename = "SCMP_CMP_LE")]
    Le,
    #[serde(rename = "SCMP_CMP_EQ")]
    Eq,
    #[serde(rename = "SCMP_CMP_GE")]
    Ge,
    #[serde(rename = "SCMP_CMP_GT")]
    Gt,
    #[serde(rename = "SCMP_CMP_MASKED_EQ")]
    MaskedEq,
}

/// A condition on a syscall argument (`linux.seccomp.syscalls[].args[]`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Arg {
    pub index: u32,
    pub value: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub value_two: u64,
    pub op: Op,
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

/// One rule: an action for a set of syscalls, optionally only when their
/// arguments match.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Rule {
    pub names: Vec<String>,
    pub action: Action,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errno_ret: Option<u32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<Arg>,
    /// Free text for reviewers; runtimes ignore it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

/// A seccomp profile: OCI `linux.seccomp`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Profile {
    pub default_action: Action,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_errno_ret: Option<u32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub architectures: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub flags: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub syscalls: Vec<Rule>,
}

/// Syscalls a container runtime (or `syscensus run`) makes itself after it
/// has loaded the filter and before the workload starts: they must be allowed
/// although the workload never makes them. Kept in a rule of their own so
/// that a reviewer can tell them from the workload's.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BaseSet {
    /// Name and version, e.g. `runc-1.1`.
    pub name: String,
    pub syscalls: BTreeSet<String>,
}

impl BaseSet {
    /// The union of two base sets (say, of two recordings of one
    /// container): their names joined with `+` (each once, sorted), their
    /// syscalls united.
    pub fn union(&self, other: &BaseSet) -> BaseSet {
        let names: BTreeSet<&str> = self.name.split('+').chain(other.name.split('+')).collect();
        BaseSet {
            name: names.into_iter().collect::<Vec<_>>().join("+"),
            syscalls: self.syscalls.union(&other.syscalls).cloned().collect(),
        }
    }
}

/// A base set as a ContainerProfile holds it.
impl From<&BaseSet> for syscensus_api::BaseSetRef {
    fn from(base: &BaseSet) -> Self {
        syscensus_api::BaseSetRef {
            name: base.name.clone(),
            syscalls: base.syscalls.iter().cloned().collect(),
        }
    }
}

/// The base set a ContainerProfile holds.
impl From<&syscensus_api::BaseSetRef> for BaseSet {
    fn from(base: &syscensus_api::BaseSetRef) -> Self {
        BaseSet {
            name: base.name.clone(),
            syscalls: base.syscalls.iter().cloned().collect(),
        }
    }
}

/// How to turn a census into a profile.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BuildOptions {
    /// What happens to a syscall outside the profile: `Errno` (enforce) or
    /// `Log` (complain mode), or one of the kill actions.
    pub default_action: Action,
    /// The errno returned when `default_action` is `Errno` (1 = EPERM).
    pub errno_ret: u32,
}

impl Default for BuildOptions {
    fn default() -> Self {
        Self {
            default_action: Action::Errno,
            errno_ret: libc::EPERM as u32,
        }
    }
}

impl Profile {
    /// The profile as OCI `linux.seccomp` JSON: deterministic, two-space
    /// indentation, trailing newline.
    pub fn to_oci_json(&self) -> String {
        // Serializing a tree of strings, numbers and enums cannot fail.
        #[expect(
            clippy::unwrap_used,
            reason = "serializing plain data to a String cannot fail"
        )]
        let mut text = serde_json::to_string_pretty(self).unwrap();
        text.push('\n');
        text
    }

    /// Reads the profile at `path` in any format [`parse`](Self::parse)
    /// knows, resolved for this machine and process ([`Host::current`]).
    pub fn load(path: &Path, select_name: Option<&str>) -> Result<Profile, ProfileError> {
        let bytes = std::fs::read(path).map_err(|source| ProfileError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let text = String::from_utf8(bytes).map_err(|e| {
            let valid = &e.as_bytes()[..e.utf8_error().valid_up_to()];
            let line = valid.iter().filter(|b| **b == b'\n').count() + 1;
            let column = valid.iter().rev().take_while(|b| **b != b'\n').count() + 1;
            ProfileError::Syntax {
                origin: path.to_path_buf(),
                line,
                column,
                message: "not UTF-8 text: a profile is JSON or YAML".to_owned(),
            }
        })?;
        Profile::parse(&text, path, select_name)
    }

    /// Parses a profile read from `origin` (named in error messages): OCI
    /// JSON, Docker JSON, or Security Profiles Operator `SeccompProfile`
    /// objects (YAML or JSON; `select` picks one by `metadata.name` when the
    /// file holds several). Docker's `archMap`, `includes` and `excludes`
    /// are resolved for this machine and process ([`Host::current`]).
    pub fn parse(text: &str, origin: &Path, select: Option<&str>) -> Result<Profile, ProfileError> {
        Profile::parse_for_host(text, origin, select, &Host::current())
    }

    /// [`parse`](Self::parse), resolving Docker's conditions for `host`.
    pub fn parse_for_host(
        text: &str,
        origin: &Path,
        select: Option<&str>,
        host: &Host,
    ) -> Result<Profile, ProfileError> {
        parse::parse(text, origin, select, host)
    }

    /// Every syscall name the profile allows, on any architecture.
    pub fn allowed_names(&self) -> BTreeSet<&str> {
        self.syscalls
            .iter()
            .filter(|r| r.action == Action::Allow && r.args.is_empty())
            .flat_map(|r| r.names.iter().map(String::as_str))
            .collect()
    }
}
