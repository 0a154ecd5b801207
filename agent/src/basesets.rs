//! Runtime base sets: the syscalls that whatever starts a workload makes
//! after it has loaded the seccomp filter and before the workload's own
//! code runs. The workload never makes them, so a recording cannot see them,
//! yet the profile must allow them. They are data (`agent/basesets/*.json`),
//! versioned by runtime, and kept in a rule of their own in every profile.
use std::collections::BTreeSet;

use serde::Deserialize;

use crate::profile::BaseSet;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    name: String,
    description: String,
    syscalls: Vec<String>,
}

/// The base set files, embedded.
const FILES: &[&str] = &[
    include_str!("../basesets/syscensus.json"),
    include_str!("../basesets/crun-1.8.json"),
    include_str!("../basesets/crun-1.8-nnp.json"),
    include_str!("../basesets/runc-1.1.json"),
    include_str!("../basesets/runc-1.1-nnp.json"),
];

/// Short names and the versioned set each stands for today.
const ALIASES: &[(&str, &str)] = &[
    ("crun", "crun-1.8"),
    ("crun-nnp", "crun-1.8-nnp"),
    ("runc", "runc-1.1"),
    ("runc-nnp", "runc-1.1-nnp"),
];

/// A known base set, with what it is for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Known {
    pub set: BaseSet,
    pub description: String,
}

/// Every base set shipped with syscensus.
pub fn all() -> Vec<Known> {
    FILES
        .iter()
        .map(|text| {
            #[expect(clippy::unwrap_used, reason = "embedded files, checked by a unit test")]
            let file: File = serde_json::from_str(text).unwrap();
            Known {
                set: BaseSet {
                    name: file.name,
                    syscalls: file.syscalls.into_iter().collect::<BTreeSet<_>>(),
                },
                description: file.description,
            }
        })
        .collect()
}

/// A base set could not be found.
#[derive(Debug, thiserror::Error)]
#[error("unknown runtime base set {name:?}: use one of {choices}")]
pub struct UnknownBaseSet {
    pub name: String,
    pub choices: String,
}

/// The base set called `name` (a full name such as `runc-1.1`, or an alias
/// such as `runc`); `none` gives no base set.
pub fn find(name: &str) -> Result<Option<BaseSet>, UnknownBaseSet> {
    if name == "none" {
        return Ok(None);
    }
    let full = ALIASES
        .iter()
        .find(|(alias, _)| *alias == name)
        .map_or(name, |(_, full)| full);
    let sets = all();
    if let Some(known) = sets.iter().find(|k| k.set.name == full) {
        return Ok(Some(known.set.clone()));
    }
    let mut choices: Vec<&str> = sets.iter().map(|k| k.set.name.as_str()).collect();
    choices.extend(ALIASES.iter().map(|(a, _)| *a));
    choices.push("none");
    Err(UnknownBaseSet {
        name: name.to_owned(),
        choices: choices.join(", "),
    })
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

    #[test]
    fn embedded_files_parse_and_are_sorted() {
        let sets = all();
        assert_eq!(sets.len(), FILES.len());
        for known in &sets {
            assert!(!known.set.syscalls.is_empty(), "{}", known.set.name);
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
        let names: Vec<String> = all().into_iter().map(|k| k.set.name).collect();
        for (set, calls) in &file.sets {
            assert!(
                names.contains(set),
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
        let runc = with_hooks(&find("runc").unwrap().unwrap());
        assert_eq!(runc.name, "runc-1.1+hooks");
        assert!(runc.syscalls.contains("clone") && runc.syscalls.contains("capset"));
        // An unmeasured runtime gets every runtime's hook calls.
        let other = with_hooks(&BaseSet {
            name: "youki-0.4".into(),
            syscalls: ["execve".to_owned()].into(),
        });
        assert!(other.syscalls.contains("wait4") && other.syscalls.contains("rt_sigprocmask"));
    }

    #[test]
    fn finds_by_alias_and_name() {
        assert_eq!(find("runc").unwrap().unwrap().name, "runc-1.1");
        assert_eq!(find("runc-1.1-nnp").unwrap().unwrap().name, "runc-1.1-nnp");
        assert!(find("none").unwrap().is_none());
        let err = find("podman").unwrap_err().to_string();
        assert!(err.contains("runc-1.1") && err.contains("none"), "{err}");
    }
}
