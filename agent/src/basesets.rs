//! Runtime base sets: the syscalls that whatever starts a workload makes
//! after it has loaded the seccomp filter and before the workload's own
//! code runs. The workload never makes them, so a recording cannot see them,
//! yet the profile must allow them: one missing makes every container of a
//! node fail to start. They are data (`agent/basesets/*.json`), one file per
//! runtime, range of versions and `no_new_privs`, each citing where its
//! names come from, and kept in a rule of their own in every profile.
//!
//! Where the version (or the runtime) is not known, a covering set is used:
//! the union of every set it stands for, never a smaller one
//! ([`choose`]).
use std::{collections::BTreeSet, fmt, sync::OnceLock};

use serde::Deserialize;

use crate::{
    oci_runtime::{Runtime, Version},
    profile::BaseSet,
};

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct File {
    name: String,
    /// `runc`, `crun`, or `syscensus` (`syscensus run`).
    runtime: String,
    /// The releases the set was derived for, first and last.
    #[serde(default)]
    versions: Option<Range>,
    /// Whether the set is for containers whose process has
    /// `no_new_privs` (`allowPrivilegeEscalation: false`).
    no_new_privs: bool,
    description: String,
    syscalls: Vec<String>,
    /// Where the names come from: measurements, source lines at a tag,
    /// commits.
    sources: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Range {
    first: String,
    last: String,
}

/// The base set files, embedded.
const FILES: &[(&str, &str)] = &[
    ("syscensus.json", include_str!("../basesets/syscensus.json")),
    ("runc-1.1.json", include_str!("../basesets/runc-1.1.json")),
    (
        "runc-1.1-nnp.json",
        include_str!("../basesets/runc-1.1-nnp.json"),
    ),
    ("runc-1.2.json", include_str!("../basesets/runc-1.2.json")),
    (
        "runc-1.2-nnp.json",
        include_str!("../basesets/runc-1.2-nnp.json"),
    ),
    ("runc-1.3.json", include_str!("../basesets/runc-1.3.json")),
    (
        "runc-1.3-nnp.json",
        include_str!("../basesets/runc-1.3-nnp.json"),
    ),
    ("runc-1.4.json", include_str!("../basesets/runc-1.4.json")),
    (
        "runc-1.4-nnp.json",
        include_str!("../basesets/runc-1.4-nnp.json"),
    ),
    ("runc-1.5.json", include_str!("../basesets/runc-1.5.json")),
    (
        "runc-1.5-nnp.json",
        include_str!("../basesets/runc-1.5-nnp.json"),
    ),
    ("crun-1.8.json", include_str!("../basesets/crun-1.8.json")),
    (
        "crun-1.8-nnp.json",
        include_str!("../basesets/crun-1.8-nnp.json"),
    ),
    ("crun-1.15.json", include_str!("../basesets/crun-1.15.json")),
    (
        "crun-1.15-nnp.json",
        include_str!("../basesets/crun-1.15-nnp.json"),
    ),
];

/// The runtimes with base sets of their own; their covering sets are
/// `<runtime>-any` and `<runtime>-any-nnp`.
const RUNTIMES: [Runtime; 2] = [Runtime::Runc, Runtime::Crun];

/// The covering sets for an unknown runtime.
const ANY: &str = "any";
const ANY_NNP: &str = "any-nnp";

/// Short names and the set each stands for: a runtime's name alone is its
/// covering set, since it says nothing of the version.
const ALIASES: &[(&str, &str)] = &[
    ("crun", "crun-any"),
    ("crun-nnp", "crun-any-nnp"),
    ("runc", "runc-any"),
    ("runc-nnp", "runc-any-nnp"),
];

/// A known base set, with what it is for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Known {
    pub set: BaseSet,
    pub description: String,
    /// `runc`, `crun`, `syscensus`; `any` for the sets of unknown runtimes.
    pub runtime: String,
    /// The first and last release the set was derived for (none for
    /// `syscensus` and the covering sets).
    pub versions: Option<(Version, Version)>,
    pub no_new_privs: bool,
    /// Where the names come from (a covering set: the sets it unites).
    pub sources: Vec<String>,
    /// The sets a covering set unites; empty for the others.
    pub covers: Vec<String>,
}

/// A base set file that is wrong: a unit test loads every embedded file.
#[derive(Debug, thiserror::Error)]
pub enum BaseSetFileError {
    #[error("agent/basesets/{file}: {source}")]
    Parse {
        file: &'static str,
        #[source]
        source: serde_json::Error,
    },
    #[error("agent/basesets/{file}: {problem}")]
    Invalid { file: &'static str, problem: String },
}

fn load_file(file: &'static str, text: &str) -> Result<Known, BaseSetFileError> {
    let invalid = |problem: String| BaseSetFileError::Invalid { file, problem };
    let parsed: File =
        serde_json::from_str(text).map_err(|source| BaseSetFileError::Parse { file, source })?;
    if format!("{}.json", parsed.name) != file {
        return Err(invalid(format!(
            "name {:?} does not match the file name",
            parsed.name
        )));
    }
    if parsed.runtime != "syscensus" && Runtime::from_name(&parsed.runtime).is_none() {
        return Err(invalid(format!("unknown runtime {:?}", parsed.runtime)));
    }
    if let Some(unknown) = parsed
        .syscalls
        .iter()
        .find(|name| !crate::syscalls::is_known(name))
    {
        return Err(invalid(format!(
            "{unknown:?} is not a syscall libseccomp knows"
        )));
    }
    if !parsed.syscalls.is_sorted_by(|a, b| a < b) {
        return Err(invalid("syscalls must be sorted and unique".into()));
    }
    if parsed.sources.is_empty() {
        return Err(invalid("no sources: say where the names come from".into()));
    }
    let versions = match parsed.versions {
        Some(range) => {
            let parse =
                |v: &str| Version::parse(v).ok_or_else(|| invalid(format!("bad version {v:?}")));
            let (first, last) = (parse(&range.first)?, parse(&range.last)?);
            if first > last {
                return Err(invalid(format!("versions {first} > {last}")));
            }
            Some((first, last))
        }
        None if parsed.runtime == "syscensus" => None,
        None => return Err(invalid("a runtime's set names its versions".into())),
    };
    Ok(Known {
        set: BaseSet {
            name: parsed.name,
            syscalls: parsed.syscalls.into_iter().collect(),
        },
        description: parsed.description,
        runtime: parsed.runtime,
        versions,
        no_new_privs: parsed.no_new_privs,
        sources: parsed.sources,
        covers: Vec::new(),
    })
}

/// The covering set `name` of the sets `members` picks from `measured`.
fn covering(
    name: String,
    runtime: &str,
    no_new_privs: bool,
    description: String,
    measured: &[Known],
    members: impl Fn(&Known) -> bool,
) -> Known {
    let chosen: Vec<&Known> = measured.iter().filter(|k| members(k)).collect();
    let syscalls: BTreeSet<String> = chosen
        .iter()
        .flat_map(|k| k.set.syscalls.iter().cloned())
        .collect();
    let covers: Vec<String> = chosen.iter().map(|k| k.set.name.clone()).collect();
    Known {
        set: BaseSet { name, syscalls },
        description,
        runtime: runtime.to_owned(),
        versions: None,
        no_new_privs,
        sources: vec![format!("the union of {}", covers.join(", "))],
        covers,
    }
}

/// Loads and checks the embedded files, then adds the covering sets: per
/// runtime, `-any-nnp` unites its `no_new_privs` sets and `-any` all of its
/// sets (a container without `no_new_privs` may be given a set for one
/// with it, never the reverse); `any-nnp` and `any` do the same across
/// runtimes, for a runtime without sets of its own.
fn load() -> Result<Vec<Known>, BaseSetFileError> {
    let measured = FILES
        .iter()
        .map(|(file, text)| load_file(file, text))
        .collect::<Result<Vec<_>, _>>()?;
    let mut sets = measured.clone();
    for runtime in RUNTIMES {
        let name = runtime.name();
        sets.push(covering(
            format!("{name}-any-nnp"),
            name,
            true,
            format!("{name} of any version, with no_new_privs"),
            &measured,
            |k| k.runtime == name && k.no_new_privs,
        ));
        sets.push(covering(
            format!("{name}-any"),
            name,
            false,
            format!("{name} of any version, with or without no_new_privs"),
            &measured,
            |k| k.runtime == name,
        ));
    }
    sets.push(covering(
        ANY_NNP.to_owned(),
        ANY,
        true,
        "any runtime, with no_new_privs".to_owned(),
        &measured,
        |k| k.no_new_privs,
    ));
    sets.push(covering(
        ANY.to_owned(),
        ANY,
        false,
        "any runtime, with or without no_new_privs".to_owned(),
        &measured,
        |_| true,
    ));
    Ok(sets)
}

/// Every base set shipped with syscensus, covering sets last.
pub fn all() -> &'static [Known] {
    static SETS: OnceLock<Vec<Known>> = OnceLock::new();
    SETS.get_or_init(|| {
        #[expect(
            clippy::expect_used,
            reason = "embedded files, loaded and checked by a unit test"
        )]
        load().expect("the embedded base sets are valid")
    })
}

/// A base set could not be found.
#[derive(Debug, thiserror::Error)]
#[error("unknown runtime base set {name:?}: use one of {choices}")]
pub struct UnknownBaseSet {
    pub name: String,
    pub choices: String,
}

/// The base set called `name` (a full name such as `runc-1.2`, a covering
/// set such as `runc-any`, or an alias such as `runc`); `none` gives no base
/// set. Names joined by `+` (as [`crate::profile::Profile::union`] writes
/// them) give the union of those sets.
pub fn find(name: &str) -> Result<Option<BaseSet>, UnknownBaseSet> {
    if name == "none" {
        return Ok(None);
    }
    let mut out: Option<BaseSet> = None;
    for part in name.split('+') {
        if part == "hooks"
            && let Some(acc) = out.take()
        {
            out = Some(with_hooks(&acc));
            continue;
        }
        let set = find_one(part).ok_or_else(|| UnknownBaseSet {
            name: name.to_owned(),
            choices: choices(),
        })?;
        out = Some(match out {
            None => set.clone(),
            Some(mut acc) => {
                acc.syscalls.extend(set.syscalls.iter().cloned());
                acc
            }
        });
    }
    if let Some(set) = &mut out {
        set.name = name.to_owned();
    }
    Ok(out)
}

fn find_one(name: &str) -> Option<&'static BaseSet> {
    let full = ALIASES
        .iter()
        .find(|(alias, _)| *alias == name)
        .map_or(name, |(_, full)| full);
    all().iter().find(|k| k.set.name == full).map(|k| &k.set)
}

fn choices() -> String {
    let mut choices: Vec<&str> = all().iter().map(|k| k.set.name.as_str()).collect();
    choices.extend(ALIASES.iter().map(|(a, _)| *a));
    choices.push("none");
    choices.join(", ")
}

/// Why [`choose`] picked the set it did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reason {
    /// A set derived for this runtime's version.
    Version(Version),
    /// The runtime is known but not its version: its covering set.
    VersionUnknown,
    /// A version no set was derived for (newer, older, a pre-release):
    /// the runtime's covering set.
    VersionNotCovered(Version),
    /// No runtime given, or one without sets of its own: the set that
    /// covers every runtime.
    RuntimeUnknown(Option<Runtime>),
}

/// The base set for a container, and why it was chosen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Choice {
    pub set: BaseSet,
    pub reason: Reason,
}

impl fmt::Display for Choice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = &self.set.name;
        match &self.reason {
            Reason::Version(v) => write!(f, "{name} (derived for version {v})"),
            Reason::VersionUnknown => write!(f, "{name} (version unknown: covers every version)"),
            Reason::VersionNotCovered(v) => write!(
                f,
                "{name} (no set derived for version {v}: covers every version)"
            ),
            Reason::RuntimeUnknown(Some(r)) => {
                write!(f, "{name} (no sets for {r}: covers every runtime)")
            }
            Reason::RuntimeUnknown(None) => {
                write!(f, "{name} (runtime unknown: covers every runtime)")
            }
        }
    }
}

/// The base set for a container that `runtime` (if known) at `version`
/// (if known) started, with `no_new_privs` set on its process or not:
/// the set derived for that version; else the runtime's covering set
/// (`runc-any`, `runc-any-nnp`); else the one for any runtime (`any`,
/// `any-nnp`). Never a set smaller than the runtime could need, as far as
/// the data knows. The chosen set's name is what the profile's base-set
/// rule and the recording name.
pub fn choose(runtime: Option<Runtime>, version: Option<&Version>, no_new_privs: bool) -> Choice {
    let nnp = if no_new_privs { "-nnp" } else { "" };
    let covering = |name: String, reason: Reason| Choice {
        set: find_one(&name)
            .cloned()
            .unwrap_or_else(|| unreachable_set(&name)),
        reason,
    };
    let Some(runtime) = runtime.filter(|r| RUNTIMES.contains(r)) else {
        return covering(format!("{ANY}{nnp}"), Reason::RuntimeUnknown(runtime));
    };
    let Some(version) = version else {
        return covering(format!("{runtime}-any{nnp}"), Reason::VersionUnknown);
    };
    let derived = all().iter().find(|k| {
        k.runtime == runtime.name()
            && k.no_new_privs == no_new_privs
            && k.versions
                .as_ref()
                .is_some_and(|(first, last)| first <= version && version <= last)
    });
    match derived {
        Some(known) => Choice {
            set: known.set.clone(),
            reason: Reason::Version(version.clone()),
        },
        None => covering(
            format!("{runtime}-any{nnp}"),
            Reason::VersionNotCovered(version.clone()),
        ),
    }
}

/// The covering sets are made by [`load`] for every runtime in
/// [`RUNTIMES`]; a unit test looks each one up.
fn unreachable_set(name: &str) -> BaseSet {
    #[expect(
        clippy::panic,
        reason = "covering sets are made for every runtime; checked by a unit test"
    )]
    {
        panic!("no covering base set {name}")
    }
}

/// What runtimes make beyond their base sets when they run OCI hooks.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HooksFile {
    #[expect(dead_code, reason = "documentation in the data file")]
    description: String,
    sets: std::collections::BTreeMap<String, Vec<String>>,
}

/// The embedded hooks file.
const HOOKS_FILE: &str = include_str!("../basesets/hooks.json");

fn hooks_file() -> HooksFile {
    #[expect(clippy::unwrap_used, reason = "embedded file, checked by a unit test")]
    serde_json::from_str(HOOKS_FILE).unwrap()
}

/// The base set of a runtime that also runs createContainer or
/// startContainer hooks (it forks each one and waits for it after it has
/// loaded the filter): `base` with what that runtime needs for them, named
/// `<base>+hooks`. For a base set without measured hook calls, those of
/// every runtime measured are added, so that the hooks can run whichever
/// runtime it is.
pub fn with_hooks(base: &BaseSet) -> BaseSet {
    let sets = hooks_file().sets;
    let extra: BTreeSet<String> = match sets.get(&base.name) {
        Some(names) => names.iter().cloned().collect(),
        None => sets.into_values().flatten().collect(),
    };
    BaseSet {
        name: format!("{}+hooks", base.name),
        syscalls: base.syscalls.union(&extra).cloned().collect(),
    }
}

#[cfg(test)]
mod tests;
