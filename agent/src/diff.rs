//! How profiles differ: which syscalls two profiles, or two directories of
//! profiles, add and remove, per container and architecture (`syscensus
//! diff`, and the messages of `export --git`).
//!
//! A profile's names are compared per group: for a syscensus profile each
//! `recorded: SCMP_ARCH_…` rule is the group of its architecture and the
//! runtime base set the group `base-set`; any other unconditional allow
//! rule's names form the group `allowed` (all names of a profile that
//! syscensus did not write). Everything else that changes what the profile
//! does (default action and errno, architectures, flags, the base set's
//! name, conditional rules) is reported as a change in words.
use std::{
    collections::{BTreeMap, BTreeSet},
    fmt::Write as _,
    fs,
    path::{Path, PathBuf},
};

use serde::Serialize;

use crate::profile::{Action, Profile, ProfileError, RuleRole, action_name};

/// Two profiles (or directories) could not be compared.
#[derive(Debug, thiserror::Error)]
pub enum DiffError {
    #[error(
        "cannot compare {} with {}: give two profile files or two directories",
        a.display(),
        b.display()
    )]
    Mixed { a: PathBuf, b: PathBuf },
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Profile(#[from] ProfileError),
}

/// The schema name of `diff --json` output.
pub const SCHEMA: &str = "syscensus.io/diff/v1";

/// The group of the runtime base set's names.
pub const BASE_SET_GROUP: &str = "base-set";
/// The group of allowed names that no `recorded:` or base-set rule holds.
pub const ALLOWED_GROUP: &str = "allowed";

/// Names added and removed in one group.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct NameChanges {
    pub added: Vec<String>,
    pub removed: Vec<String>,
}

/// Whether a profile was added, removed, or changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Added,
    Removed,
    Changed,
}

/// How one profile differs from another.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ProfileDiff {
    /// The relative path (comparing directories) or B's path (two files).
    pub path: String,
    /// The file in A (`null` when added).
    pub a: Option<String>,
    /// The file in B (`null` when removed).
    pub b: Option<String>,
    pub status: Status,
    /// Per group (architecture, `base-set`, `allowed`) that changed.
    pub syscalls: BTreeMap<String, NameChanges>,
    /// Other differences, in words (`defaultAction: SCMP_ACT_ERRNO ->
    /// SCMP_ACT_LOG`).
    pub changes: Vec<String>,
}

/// The whole comparison.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Report {
    pub schema: &'static str,
    pub equal: bool,
    /// Only the profiles that differ, sorted by path.
    pub profiles: Vec<ProfileDiff>,
}

/// A profile's names by group.
pub fn name_groups(profile: &Profile) -> BTreeMap<String, BTreeSet<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for rule in &profile.syscalls {
        let group = match rule.role() {
            RuleRole::Recorded(arch) => arch,
            RuleRole::BaseSet(_) => BASE_SET_GROUP,
            RuleRole::Other if rule.action == Action::Allow && rule.args.is_empty() => {
                ALLOWED_GROUP
            }
            RuleRole::Other => continue,
        };
        out.entry(group.to_owned())
            .or_default()
            .extend(rule.names.iter().cloned());
    }
    out
}

fn base_set_name(profile: &Profile) -> Option<&str> {
    profile.syscalls.iter().find_map(|r| match r.role() {
        RuleRole::BaseSet(name) => Some(name),
        _ => None,
    })
}

/// The rules that are not name groups, in a comparable form.
fn other_rules(profile: &Profile) -> Vec<String> {
    let mut out: Vec<String> = profile
        .syscalls
        .iter()
        .filter(|r| {
            matches!(r.role(), RuleRole::Other) && !(r.action == Action::Allow && r.args.is_empty())
        })
        .map(|r| {
            let mut r = r.clone();
            r.names.sort();
            serde_json::to_string(&r).unwrap_or_default()
        })
        .collect();
    out.sort();
    out
}

fn list(items: &[String]) -> String {
    format!("[{}]", items.join(", "))
}

/// How `b` differs from `a` (either may be absent); `None` when equal.
pub fn compare(
    path: &str,
    a: Option<(&str, &Profile)>,
    b: Option<(&str, &Profile)>,
) -> Option<ProfileDiff> {
    let groups_a = a.map(|(_, p)| name_groups(p)).unwrap_or_default();
    let groups_b = b.map(|(_, p)| name_groups(p)).unwrap_or_default();
    let keys: BTreeSet<&String> = groups_a.keys().chain(groups_b.keys()).collect();
    let empty = BTreeSet::new();
    let mut syscalls = BTreeMap::new();
    for key in keys {
        let old = groups_a.get(key).unwrap_or(&empty);
        let new = groups_b.get(key).unwrap_or(&empty);
        let changes = NameChanges {
            added: new.difference(old).cloned().collect(),
            removed: old.difference(new).cloned().collect(),
        };
        if !changes.added.is_empty() || !changes.removed.is_empty() {
            syscalls.insert(key.clone(), changes);
        }
    }

    let mut changes = Vec::new();
    if let (Some((_, a)), Some((_, b))) = (a, b) {
        if a.default_action != b.default_action {
            changes.push(format!(
                "defaultAction: {} -> {}",
                action_name(a.default_action),
                action_name(b.default_action)
            ));
        }
        let (ea, eb) = (a.effective_default_errno(), b.effective_default_errno());
        if ea != eb && ea.is_some() && eb.is_some() {
            changes.push(format!(
                "defaultErrnoRet: {} -> {}",
                ea.unwrap_or_default(),
                eb.unwrap_or_default()
            ));
        }
        let sorted = |v: &[String]| {
            let mut v = v.to_vec();
            v.sort();
            v
        };
        if sorted(&a.architectures) != sorted(&b.architectures) {
            changes.push(format!(
                "architectures: {} -> {}",
                list(&a.architectures),
                list(&b.architectures)
            ));
        }
        if sorted(&a.flags) != sorted(&b.flags) {
            changes.push(format!("flags: {} -> {}", list(&a.flags), list(&b.flags)));
        }
        let (na, nb) = (base_set_name(a), base_set_name(b));
        if na != nb {
            changes.push(format!(
                "runtime base set: {} -> {}",
                na.unwrap_or("none"),
                nb.unwrap_or("none")
            ));
        }
        if other_rules(a) != other_rules(b) {
            changes.push("rules with other actions or argument conditions differ".to_owned());
        }
    }

    let status = match (a, b) {
        (None, Some(_)) => Status::Added,
        (Some(_), None) => Status::Removed,
        _ if syscalls.is_empty() && changes.is_empty() => return None,
        _ => Status::Changed,
    };
    Some(ProfileDiff {
        path: path.to_owned(),
        a: a.map(|(f, _)| f.to_owned()),
        b: b.map(|(f, _)| f.to_owned()),
        status,
        syscalls,
        changes,
    })
}

/// A difference as text: a line with `+` (added), `-` (removed) or `~`
/// (changed) and the path, then one indented line per group and change.
pub fn text(diff: &ProfileDiff) -> String {
    let mark = match diff.status {
        Status::Added => '+',
        Status::Removed => '-',
        Status::Changed => '~',
    };
    let mut out = format!("{mark} {}\n", diff.path);
    for (group, names) in &diff.syscalls {
        let _ = write!(out, "    {group}:");
        for n in &names.added {
            let _ = write!(out, " +{n}");
        }
        for n in &names.removed {
            let _ = write!(out, " -{n}");
        }
        out.push('\n');
    }
    for change in &diff.changes {
        let _ = writeln!(out, "    {change}");
    }
    out
}

/// The profile files of a directory, by relative path (`/` separated):
/// its `.json` files, without hidden ones and the export's JSON patches.
fn profiles_in(dir: &Path) -> Result<BTreeMap<String, PathBuf>, DiffError> {
    let mut out = BTreeMap::new();
    let mut stack = vec![(dir.to_path_buf(), String::new())];
    while let Some((current, prefix)) = stack.pop() {
        let read = |source| DiffError::Read {
            path: current.clone(),
            source,
        };
        for entry in fs::read_dir(&current).map_err(read)? {
            let entry = entry.map_err(read)?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') {
                continue;
            }
            let relative = format!("{prefix}{name}");
            if entry.file_type().map_err(read)?.is_dir() {
                stack.push((entry.path(), format!("{relative}/")));
            } else if name.ends_with(".json") && !name.ends_with(".rfc6902.json") {
                out.insert(relative, entry.path());
            }
        }
    }
    Ok(out)
}

/// Compares A and B (two profile files, or two directories).
pub fn report(a: &Path, b: &Path) -> Result<Report, DiffError> {
    let pairs: Vec<(String, Option<PathBuf>, Option<PathBuf>)> = match (a.is_dir(), b.is_dir()) {
        (false, false) => vec![(
            b.display().to_string(),
            Some(a.to_path_buf()),
            Some(b.to_path_buf()),
        )],
        (true, true) => {
            let mut in_a = profiles_in(a)?;
            let mut in_b = profiles_in(b)?;
            let keys: BTreeSet<String> = in_a.keys().chain(in_b.keys()).cloned().collect();
            keys.into_iter()
                .map(|k| {
                    let (x, y) = (in_a.remove(&k), in_b.remove(&k));
                    (k, x, y)
                })
                .collect()
        }
        _ => {
            return Err(DiffError::Mixed {
                a: a.to_path_buf(),
                b: b.to_path_buf(),
            });
        }
    };
    let mut profiles = Vec::new();
    for (path, fa, fb) in pairs {
        let pa = fa.as_deref().map(|f| Profile::load(f, None)).transpose()?;
        let pb = fb.as_deref().map(|f| Profile::load(f, None)).transpose()?;
        let na = fa.as_ref().map(|f| f.display().to_string());
        let nb = fb.as_ref().map(|f| f.display().to_string());
        if let Some(d) = compare(
            &path,
            na.as_deref().zip(pa.as_ref()),
            nb.as_deref().zip(pb.as_ref()),
        ) {
            profiles.push(d);
        }
    }
    Ok(Report {
        schema: SCHEMA,
        equal: profiles.is_empty(),
        profiles,
    })
}
