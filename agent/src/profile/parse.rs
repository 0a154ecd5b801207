//! Reading profiles in the formats users bring, detected from the text:
//!
//! - OCI runtime-spec `linux.seccomp` JSON, as syscensus writes it;
//! - Docker/moby JSON, a superset of OCI: `archMap`, per-rule `includes` /
//!   `excludes` (`arches`, `caps`, `minKernel`), `comment`, and the old
//!   one-`name`-per-rule form;
//! - Security Profiles Operator `SeccompProfile` objects, YAML or JSON, one or
//!   several YAML documents per file (selected by `metadata.name`).
//!
//! Docker's conditions are resolved for a [`Host`] while reading, the way
//! dockerd resolves them before it hands the profile to the runtime, so the
//! result is a plain OCI profile for that host.
//!
//! Names of actions, operators, architectures, flags and syscalls are checked
//! while deserializing, so that the parser's line and column point at the
//! offending value.
use std::path::Path;

use serde::Deserialize;

use super::names::{
    RawAction, RawArch, RawArgIndex, RawErrno, RawFlag, RawOp, RawSyscallName, SPO_GROUP,
};
use super::{
    Arg, Profile, ProfileError, Rule,
    error::Invalid,
    host::{Host, KernelVersion},
};

/// Parses `text` (read from `origin`, used in messages), selecting the SPO
/// object named `select` if the file holds objects, and resolves Docker's
/// conditions for `host`.
pub(super) fn parse(
    text: &str,
    origin: &Path,
    select: Option<&str>,
    host: &Host,
) -> Result<Profile, ProfileError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let invalid = |problem| ProfileError::Invalid {
        origin: origin.to_path_buf(),
        problem,
    };
    let body = text.trim_start();
    if body.is_empty() {
        return Err(invalid(Invalid::Empty));
    }
    if body.starts_with('{') {
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|e| json_error(origin, &e))?;
        if is_object(value.get("kind"), value.get("apiVersion")) {
            let names = object_summary(
                value.get("kind").and_then(serde_json::Value::as_str),
                value
                    .get("metadata")
                    .and_then(|m| m.get("name"))
                    .and_then(serde_json::Value::as_str),
            );
            select_one(&[names], select).map_err(invalid)?;
            let object: RawObject =
                serde_json::from_str(text).map_err(|e| json_error(origin, &e))?;
            return object.resolve(host).map_err(invalid);
        }
        if let Some(name) = select {
            return Err(invalid(Invalid::NotAnObjectFile {
                name: name.to_owned(),
            }));
        }
        let raw: RawSeccomp = serde_json::from_str(text).map_err(|e| json_error(origin, &e))?;
        return raw.resolve(host).map_err(invalid);
    }

    // YAML, possibly several documents: look at each one's kind and name
    // first, then deserialize the chosen document from the text again so
    // that errors carry its line and column.
    check_flow_depth(text, origin)?;
    let mut documents = Vec::new();
    for (index, document) in serde_norway::Deserializer::from_str(text).enumerate() {
        let value =
            serde_norway::Value::deserialize(document).map_err(|e| yaml_error(origin, &e))?;
        if !value.is_null() {
            documents.push((index, value));
        }
    }
    let any_object = documents
        .iter()
        .any(|(_, v)| is_object(v.get("kind"), v.get("apiVersion")));
    if !any_object {
        if let Some(name) = select {
            return Err(invalid(Invalid::NotAnObjectFile {
                name: name.to_owned(),
            }));
        }
        let index = match documents.as_slice() {
            [] => return Err(invalid(Invalid::Empty)),
            [(index, _)] => *index,
            _ => {
                return Err(invalid(Invalid::NoSeccompProfile {
                    found: vec![format!("{} plain profiles", documents.len())],
                }));
            }
        };
        let raw = RawSeccomp::deserialize(nth_document(text, index))
            .map_err(|e| yaml_error(origin, &e))?;
        return raw.resolve(host).map_err(invalid);
    }
    let summaries: Vec<ObjectSummary> = documents
        .iter()
        .map(|(_, v)| {
            object_summary(
                v.get("kind").and_then(serde_norway::Value::as_str),
                v.get("metadata")
                    .and_then(|m| m.get("name"))
                    .and_then(serde_norway::Value::as_str),
            )
        })
        .collect();
    let chosen = select_one(&summaries, select).map_err(invalid)?;
    let object = RawObject::deserialize(nth_document(text, documents[chosen].0))
        .map_err(|e| yaml_error(origin, &e))?;
    object.resolve(host).map_err(invalid)
}

/// Flow collections (`[`, `{`) nested deeper than any profile needs.
/// The YAML parser refuses them too, but only after libyaml has scanned them in
/// time quadratic in the depth (seconds for 100 kB), so they are refused
/// here first, in one pass. Brackets inside quotes or comments count as
/// well: a profile never holds hundreds of them.
const MAX_FLOW_DEPTH: usize = 256;

fn check_flow_depth(text: &str, origin: &Path) -> Result<(), ProfileError> {
    let (mut depth, mut line, mut column) = (0usize, 1, 0);
    for c in text.chars() {
        column += 1;
        match c {
            '\n' => (line, column) = (line + 1, 0),
            '[' | '{' => depth += 1,
            ']' | '}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        if depth > MAX_FLOW_DEPTH {
            return Err(ProfileError::Syntax {
                origin: origin.to_path_buf(),
                line,
                column,
                message: format!(
                    "collections nested more than {MAX_FLOW_DEPTH} levels deep; a seccomp profile needs a few"
                ),
            });
        }
    }
    Ok(())
}

fn nth_document(text: &str, index: usize) -> serde_norway::Deserializer<'_> {
    // The document was there a moment ago: the same text splits the same way.
    serde_norway::Deserializer::from_str(text)
        .nth(index)
        .unwrap_or_else(|| serde_norway::Deserializer::from_str(""))
}

fn is_object<V>(kind: Option<&V>, api_version: Option<&V>) -> bool {
    kind.is_some() || api_version.is_some()
}

/// The kind and name of one document, for selection and messages.
struct ObjectSummary {
    kind: String,
    name: Option<String>,
}

fn object_summary(kind: Option<&str>, name: Option<&str>) -> ObjectSummary {
    ObjectSummary {
        kind: kind.unwrap_or("(no kind)").to_owned(),
        name: name.map(str::to_owned),
    }
}

/// Picks the SeccompProfile object to use: the one named `select`, else the
/// only one. Returns its index in `objects`.
fn select_one(objects: &[ObjectSummary], select: Option<&str>) -> Result<usize, Invalid> {
    let profiles: Vec<(usize, &str)> = objects
        .iter()
        .enumerate()
        .filter(|(_, o)| o.kind == "SeccompProfile")
        .map(|(i, o)| (i, o.name.as_deref().unwrap_or("")))
        .collect();
    let names = || profiles.iter().map(|(_, n)| (*n).to_owned()).collect();
    if profiles.is_empty() {
        return Err(Invalid::NoSeccompProfile {
            found: objects
                .iter()
                .map(|o| match &o.name {
                    Some(name) => format!("{} {name}", o.kind),
                    None => o.kind.clone(),
                })
                .collect(),
        });
    }
    match select {
        Some(name) => profiles
            .iter()
            .find(|(_, n)| *n == name)
            .map(|(i, _)| *i)
            .ok_or_else(|| Invalid::NoSuchObject {
                name: name.to_owned(),
                names: names(),
            }),
        None if profiles.len() == 1 => Ok(profiles[0].0),
        None => Err(Invalid::AmbiguousObject { names: names() }),
    }
}

fn json_error(origin: &Path, error: &serde_json::Error) -> ProfileError {
    let (line, column) = (error.line(), error.column());
    let text = error.to_string();
    let message = super::error::shorten_quoted(
        text.strip_suffix(&format!(" at line {line} column {column}"))
            .unwrap_or(&text),
    );
    ProfileError::Syntax {
        origin: origin.to_path_buf(),
        line,
        column,
        message,
    }
}

fn yaml_error(origin: &Path, error: &serde_norway::Error) -> ProfileError {
    let text = error.to_string();
    match error.location() {
        Some(location) => {
            let (line, column) = (location.line(), location.column());
            let message = super::error::shorten_quoted(&text.replacen(
                &format!(" at line {line} column {column}"),
                "",
                1,
            ));
            ProfileError::Syntax {
                origin: origin.to_path_buf(),
                line,
                column,
                message,
            }
        }
        None => ProfileError::Syntax {
            origin: origin.to_path_buf(),
            line: 1,
            column: 1,
            message: super::error::shorten_quoted(&text),
        },
    }
}

/// A Kubernetes object: only SeccompProfile is ever deserialized.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
#[serde(expecting = "a SeccompProfile object")]
struct RawObject {
    api_version: String,
    metadata: RawMetadata,
    spec: RawSeccomp,
}

#[derive(Deserialize)]
#[serde(expecting = "object metadata")]
struct RawMetadata {
    #[serde(default)]
    name: String,
}

impl RawObject {
    fn resolve(self, host: &Host) -> Result<Profile, Invalid> {
        let known = ["v1", "v1beta1", "v1alpha1"]
            .iter()
            .any(|v| self.api_version == format!("{SPO_GROUP}/{v}"));
        if !known {
            return Err(Invalid::ApiVersion {
                api_version: self.api_version,
            });
        }
        if let Some(base) = self
            .spec
            .base_profile_name
            .as_deref()
            .filter(|b| !b.is_empty())
        {
            return Err(Invalid::BaseProfile {
                object: self.metadata.name,
                base: base.to_owned(),
            });
        }
        self.spec.resolve(host)
    }
}

/// The union of the OCI, Docker and SPO `spec` fields. Unknown fields are
/// ignored, as the Go decoders of those projects do.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
#[serde(expecting = "a seccomp profile: an object with defaultAction and syscalls")]
struct RawSeccomp {
    default_action: RawAction,
    #[serde(default)]
    default_errno_ret: Option<RawErrno>,
    #[serde(default)]
    architectures: Option<Vec<RawArch>>,
    #[serde(default)]
    arch_map: Option<Vec<RawArchMap>>,
    #[serde(default)]
    flags: Option<Vec<RawFlag>>,
    #[serde(default)]
    syscalls: Option<Vec<RawSyscall>>,
    #[serde(default)]
    base_profile_name: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
#[serde(expecting = "an archMap entry")]
struct RawArchMap {
    architecture: RawArch,
    #[serde(default)]
    sub_architectures: Option<Vec<RawArch>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
#[serde(expecting = "a syscall rule: an object with names and action")]
struct RawSyscall {
    #[serde(default)]
    name: Option<RawSyscallName>,
    #[serde(default)]
    names: Option<Vec<RawSyscallName>>,
    action: RawAction,
    #[serde(default)]
    errno_ret: Option<RawErrno>,
    #[serde(default)]
    args: Option<Vec<RawArg>>,
    #[serde(default)]
    comment: Option<String>,
    #[serde(default)]
    includes: Option<RawFilter>,
    #[serde(default)]
    excludes: Option<RawFilter>,
}

/// Docker's `includes` / `excludes`.
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
#[serde(expecting = "an includes or excludes object")]
struct RawFilter {
    #[serde(default)]
    arches: Option<Vec<String>>,
    #[serde(default)]
    caps: Option<Vec<String>>,
    #[serde(default)]
    min_kernel: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
#[serde(expecting = "an argument condition: an object with index, value and op")]
struct RawArg {
    index: RawArgIndex,
    #[serde(default)]
    value: u64,
    #[serde(default)]
    value_two: u64,
    op: RawOp,
}

impl RawSeccomp {
    fn resolve(self, host: &Host) -> Result<Profile, Invalid> {
        let mut architectures: Vec<String> = self
            .architectures
            .unwrap_or_default()
            .into_iter()
            .map(|a| a.0)
            .collect();
        let arch_map = self.arch_map.unwrap_or_default();
        if !architectures.is_empty() && !arch_map.is_empty() {
            return Err(Invalid::ArchitecturesAndArchMap);
        }
        // Docker keeps the archMap entry of the host's architecture only.
        if let Some(entry) = arch_map
            .into_iter()
            .find(|e| e.architecture.0 == host.arch.scmp_name())
        {
            architectures.push(entry.architecture.0);
            architectures.extend(
                entry
                    .sub_architectures
                    .unwrap_or_default()
                    .into_iter()
                    .map(|a| a.0),
            );
        }
        let mut syscalls = Vec::new();
        for (index, raw) in self.syscalls.unwrap_or_default().into_iter().enumerate() {
            if let Some(rule) = raw.resolve(index, host)? {
                syscalls.push(rule);
            }
        }
        Ok(Profile {
            default_action: self.default_action.0,
            default_errno_ret: self.default_errno_ret.map(|e| e.0),
            architectures,
            flags: self
                .flags
                .unwrap_or_default()
                .into_iter()
                .map(|f| f.0)
                .collect(),
            syscalls,
        })
    }
}

impl RawSyscall {
    /// The rule, or `None` if its Docker conditions leave it out on `host`.
    fn resolve(self, index: usize, host: &Host) -> Result<Option<Rule>, Invalid> {
        let names = match (self.name, self.names) {
            (Some(_), Some(names)) if !names.is_empty() => {
                return Err(Invalid::NameAndNames { index });
            }
            (Some(name), _) => vec![name.0],
            (None, names) => names.unwrap_or_default().into_iter().map(|n| n.0).collect(),
        };
        let includes = self.includes.unwrap_or_default();
        let excludes = self.excludes.unwrap_or_default();
        let min_kernel = |value: Option<String>| -> Result<Option<KernelVersion>, Invalid> {
            value
                .map(|v| KernelVersion::parse(&v).ok_or(Invalid::MinKernel { index, value: v }))
                .transpose()
        };
        let on_host = |arches: &[String]| {
            arches
                .iter()
                .any(|a| host.go_arch_names().contains(&a.as_str()))
        };

        // dockerd's order: excludes first, then includes (moby
        // profiles/seccomp/seccomp_linux.go).
        let ex_arches = excludes.arches.unwrap_or_default();
        if on_host(&ex_arches) {
            return Ok(None);
        }
        if excludes
            .caps
            .unwrap_or_default()
            .iter()
            .any(|c| host.has_capability(c))
        {
            return Ok(None);
        }
        if min_kernel(excludes.min_kernel)?.is_some_and(|min| host.kernel >= min) {
            return Ok(None);
        }
        let in_arches = includes.arches.unwrap_or_default();
        if !in_arches.is_empty() && !on_host(&in_arches) {
            return Ok(None);
        }
        if !includes
            .caps
            .unwrap_or_default()
            .iter()
            .all(|c| host.has_capability(c))
        {
            return Ok(None);
        }
        if min_kernel(includes.min_kernel)?.is_some_and(|min| host.kernel < min) {
            return Ok(None);
        }
        Ok(Some(Rule {
            names,
            action: self.action.0,
            errno_ret: self.errno_ret.map(|e| e.0),
            args: self
                .args
                .unwrap_or_default()
                .into_iter()
                .map(|a| Arg {
                    index: a.index.0,
                    value: a.value,
                    value_two: a.value_two,
                    op: a.op.0,
                })
                .collect(),
            comment: self.comment.filter(|c| !c.is_empty()),
        }))
    }
}
