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
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    fn set(name: &str) -> &'static Known {
        all()
            .iter()
            .find(|k| k.set.name == name)
            .unwrap_or_else(|| panic!("no set {name}"))
    }

    #[test]
    fn embedded_files_load() {
        let sets = load().unwrap();
        assert_eq!(sets.len(), FILES.len() + 2 * RUNTIMES.len() + 2);
        for known in &sets {
            assert!(
                known.set.syscalls.contains("execve"),
                "{} must allow the exec",
                known.set.name
            );
        }
    }

    #[test]
    fn hook_calls_are_known_syscalls_of_known_sets() {
        let file = hooks_file();
        let names: Vec<&str> = all().iter().map(|k| k.set.name.as_str()).collect();
        for (set, calls) in &file.sets {
            assert!(
                names.contains(&set.as_str()),
                "hooks.json names unknown base set {set}"
            );
            assert!(
                calls.windows(2).all(|w| w[0] < w[1]),
                "{set}: sort the names"
            );
            for call in calls {
                assert!(crate::syscalls::is_known(call), "{set}: {call}");
            }
        }
        let runc = with_hooks(&set("runc-1.1").set);
        assert_eq!(runc.name, "runc-1.1+hooks");
        assert!(runc.syscalls.contains("clone") && runc.syscalls.contains("capset"));
        // The name resolves to the same set.
        assert_eq!(find("runc-1.1+hooks").unwrap().unwrap(), runc);
        // A covering set gets every runtime's hook calls.
        let any = find("runc-any+hooks").unwrap().unwrap();
        assert!(any.syscalls.contains("wait4") && any.syscalls.contains("madvise"));
        // An unmeasured runtime gets every runtime's hook calls.
        let other = with_hooks(&BaseSet {
            name: "youki-0.4".into(),
            syscalls: ["execve".to_owned()].into(),
        });
        assert!(other.syscalls.contains("wait4") && other.syscalls.contains("rt_sigprocmask"));
    }

    #[test]
    fn covering_sets_include_every_set_they_cover() {
        for known in all().iter().filter(|k| !k.covers.is_empty()) {
            for member in &known.covers {
                let member = set(member);
                assert!(
                    member.set.syscalls.is_subset(&known.set.syscalls),
                    "{} lacks {:?} of {}",
                    known.set.name,
                    member
                        .set
                        .syscalls
                        .difference(&known.set.syscalls)
                        .collect::<Vec<_>>(),
                    member.set.name
                );
            }
        }
        // Each runtime's covering set covers each of its sets; `any` every set.
        for runtime in RUNTIMES {
            let any = set(&format!("{runtime}-any"));
            let any_nnp = set(&format!("{runtime}-any-nnp"));
            for k in all()
                .iter()
                .filter(|k| k.runtime == runtime.name() && k.covers.is_empty())
            {
                assert!(any.covers.contains(&k.set.name), "{}", k.set.name);
                assert_eq!(any_nnp.covers.contains(&k.set.name), k.no_new_privs);
            }
        }
        let any = set(ANY);
        let measured = all().iter().filter(|k| k.covers.is_empty()).count();
        assert_eq!(any.covers.len(), measured);
    }

    #[test]
    fn a_set_without_no_new_privs_covers_its_counterpart_with_it() {
        // A container whose no_new_privs is unknown is given the set
        // without it; that is only safe if it holds the other.
        for known in all()
            .iter()
            .filter(|k| k.no_new_privs && k.covers.is_empty())
        {
            let Some(base) = known.set.name.strip_suffix("-nnp") else {
                continue;
            };
            let without = set(base);
            assert!(
                known.set.syscalls.is_subset(&without.set.syscalls),
                "{base} lacks {:?} of {}",
                known
                    .set
                    .syscalls
                    .difference(&without.set.syscalls)
                    .collect::<Vec<_>>(),
                known.set.name
            );
            assert_eq!(without.versions, known.versions, "{base}");
        }
    }

    #[test]
    fn version_ranges_do_not_overlap() {
        let measured: Vec<&Known> = all().iter().filter(|k| k.versions.is_some()).collect();
        for a in &measured {
            for b in &measured {
                if a.set.name == b.set.name
                    || a.runtime != b.runtime
                    || a.no_new_privs != b.no_new_privs
                {
                    continue;
                }
                let ((a1, a2), (b1, b2)) =
                    (a.versions.clone().unwrap(), b.versions.clone().unwrap());
                assert!(
                    a2 < b1 || b2 < a1,
                    "{} and {} overlap",
                    a.set.name,
                    b.set.name
                );
            }
        }
    }

    #[test]
    fn every_name_resolves() {
        for known in all() {
            assert_eq!(find(&known.set.name).unwrap().unwrap(), known.set);
        }
        for (alias, full) in ALIASES {
            assert_eq!(
                find(alias).unwrap().unwrap().syscalls,
                set(full).set.syscalls
            );
        }
        assert!(find("none").unwrap().is_none());
        let err = find("podman").unwrap_err().to_string();
        assert!(
            err.contains("runc-1.2") && err.contains("runc-any") && err.contains("none"),
            "{err}"
        );
        // The names merged profiles carry resolve to the union.
        let merged = find("crun-1.8+runc-1.1").unwrap().unwrap();
        assert_eq!(merged.name, "crun-1.8+runc-1.1");
        assert!(set("crun-1.8").set.syscalls.is_subset(&merged.syscalls));
        assert!(set("runc-1.1").set.syscalls.is_subset(&merged.syscalls));
        assert!(find("runc-1.1+podman").is_err());
    }

    #[test]
    fn lookups_of_known_versions() {
        let v = |s: &str| Version::parse(s).unwrap();
        let cases = [
            (Runtime::Runc, "1.1.5+ds1", false, "runc-1.1"),
            (Runtime::Runc, "1.1.5", true, "runc-1.1-nnp"),
            (Runtime::Runc, "1.2.8", false, "runc-1.2"),
            (Runtime::Runc, "1.2.0", true, "runc-1.2-nnp"),
            (Runtime::Runc, "1.3.3", false, "runc-1.3"),
            (Runtime::Runc, "1.4.3", true, "runc-1.4-nnp"),
            (Runtime::Runc, "1.5.1", false, "runc-1.5"),
            (Runtime::Crun, "1.8.1", false, "crun-1.8"),
            (Runtime::Crun, "1.14.4", true, "crun-1.8-nnp"),
            (Runtime::Crun, "1.15", false, "crun-1.15"),
            (Runtime::Crun, "1.29.1", true, "crun-1.15-nnp"),
        ];
        for (runtime, version, nnp, name) in cases {
            let choice = choose(Some(runtime), Some(&v(version)), nnp);
            assert_eq!(choice.set.name, name, "{runtime} {version} nnp={nnp}");
            assert_eq!(choice.reason, Reason::Version(v(version)));
        }
    }

    #[test]
    fn lookups_of_unknown_versions_and_runtimes_cover_everything() {
        let v = |s: &str| Version::parse(s).unwrap();
        let runc = choose(Some(Runtime::Runc), None, false);
        assert_eq!(runc.set.name, "runc-any");
        assert_eq!(runc.reason, Reason::VersionUnknown);
        for (version, name) in [
            ("1.6.0", "runc-any"),
            ("1.0.3", "runc-any"),
            ("1.4.0-rc.3", "runc-any"),
        ] {
            let choice = choose(Some(Runtime::Runc), Some(&v(version)), false);
            assert_eq!(choice.set.name, name, "{version}");
            assert_eq!(choice.reason, Reason::VersionNotCovered(v(version)));
        }
        assert_eq!(
            choose(Some(Runtime::Crun), Some(&v("1.30")), true).set.name,
            "crun-any-nnp"
        );
        assert_eq!(
            choose(Some(Runtime::Crun), Some(&v("1.7.2")), false)
                .set
                .name,
            "crun-any"
        );
        let youki = choose(Some(Runtime::Youki), Some(&v("0.5.0")), false);
        assert_eq!(youki.set.name, "any");
        assert_eq!(youki.reason, Reason::RuntimeUnknown(Some(Runtime::Youki)));
        assert_eq!(choose(None, None, true).set.name, "any-nnp");
        // A chosen covering set holds the sets of every version it stands for.
        for runtime in RUNTIMES {
            for nnp in [false, true] {
                let cover = choose(Some(runtime), None, nnp).set;
                let any = choose(None, None, nnp).set;
                for k in all().iter().filter(|k| {
                    k.runtime == runtime.name() && k.no_new_privs == nnp && k.covers.is_empty()
                }) {
                    assert!(k.set.syscalls.is_subset(&cover.syscalls), "{}", k.set.name);
                    assert!(k.set.syscalls.is_subset(&any.syscalls), "{}", k.set.name);
                }
            }
        }
        assert!(runc.to_string().contains("version unknown"), "{runc}");
    }

    #[test]
    fn the_names_that_broke_published_base_profiles_are_there() {
        // runc 1.2.8 and 1.3.3 reopen the exec fifo and list /proc's fds
        // through a verified procfs handle after the filter (openat2,
        // statx); a base set without them failed every container.
        for name in [
            "runc-1.2",
            "runc-1.2-nnp",
            "runc-1.3",
            "runc-1.3-nnp",
            "runc-1.4-nnp",
        ] {
            let s = &set(name).set.syscalls;
            assert!(s.contains("openat2") && s.contains("statx"), "{name}");
        }
        // crun without no_new_privs waits on its exec fifo after the filter
        // when started by `create` and `start`, as containerd and CRI-O do.
        let crun = &set("crun-1.8").set.syscalls;
        assert!(crun.contains("pselect6") && crun.contains("read"));
    }

    #[test]
    fn broken_files_are_refused() {
        let good = r#"{"name": "runc-9.9", "runtime": "runc", "versions": {"first": "9.9.0", "last": "9.9.1"},
            "noNewPrivs": false, "description": "d", "syscalls": ["close", "execve"], "sources": ["s"]}"#;
        assert!(load_file("runc-9.9.json", good).is_ok());
        let cases = [
            ("runc-9.8.json", good.to_owned(), "does not match"),
            (
                "runc-9.9.json",
                good.replace("\"close\"", "\"clsoe\""),
                "not a syscall",
            ),
            (
                "runc-9.9.json",
                good.replace("\"close\", \"execve\"", "\"execve\", \"close\""),
                "sorted",
            ),
            ("runc-9.9.json", good.replace("[\"s\"]", "[]"), "no sources"),
            (
                "runc-9.9.json",
                good.replace("\"runtime\": \"runc\"", "\"runtime\": \"podman\""),
                "unknown runtime",
            ),
            (
                "runc-9.9.json",
                good.replace("9.9.1", "9.8.0"),
                "9.9.0 > 9.8.0",
            ),
            ("runc-9.9.json", good.replace("9.9.1", "x"), "bad version"),
            (
                "runc-9.9.json",
                good.replace("\"description\"", "\"extra\": 1, \"description\""),
                "unknown field",
            ),
        ];
        for (file, text, expected) in cases {
            let err = load_file(file, &text).unwrap_err().to_string();
            assert!(err.contains(expected), "{err}");
        }
    }
}
