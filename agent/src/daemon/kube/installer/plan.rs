//! What the installer does with the files of its directory, decided without
//! I/O: write what the LocalhostProfiles ask for where the bytes differ;
//! keep what they no longer ask for while anything may still start a
//! container with it; remove the rest. And what the node reports.
use std::{
    collections::{BTreeMap, BTreeSet},
    path::PathBuf,
};

use syscensus_api::{InstalledProfile, RefusedProfile};

use crate::localhost::{LOCALHOST_DIR, slash_path};

/// A file a LocalhostProfile asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Want {
    pub bytes: String,
    pub sha256: String,
    /// `<namespace>/<name>` of the object.
    pub source: String,
}

/// What the pod template of the workload a path names says about it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Template {
    /// The template names the path (the words say which workload).
    Names(String),
    /// The workload does not exist, or its template does not name the path.
    DoesNot,
    /// The workload could not be read (the words say why): the file stays.
    Unknown(String),
}

/// What to do with the directory.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Plan {
    /// Files to write (absent, or other bytes).
    pub write: Vec<PathBuf>,
    /// Files nothing asks for and nothing uses.
    pub remove: Vec<PathBuf>,
    /// Files nothing asks for that stay, and what for.
    pub keep: BTreeMap<PathBuf, String>,
    /// Files nothing asks for and no Pod uses, whose workload's template
    /// must be read before they may go.
    pub ask: Vec<PathBuf>,
}

/// The plan for the directory: `wanted` by the LocalhostProfiles,
/// `installed` now (path → SHA-256), `held` (paths whose object is refused:
/// what is installed there stays), `pods` (paths the node's Pods name →
/// which Pod) and `templates` (what was learnt of the workloads' templates).
pub(crate) fn plan(
    wanted: &BTreeMap<PathBuf, Want>,
    installed: &BTreeMap<PathBuf, String>,
    held: &BTreeMap<PathBuf, String>,
    pods: &BTreeMap<PathBuf, String>,
    templates: &BTreeMap<PathBuf, Template>,
) -> Plan {
    let mut out = Plan::default();
    for (path, want) in wanted {
        if installed.get(path) != Some(&want.sha256) {
            out.write.push(path.clone());
        }
    }
    for path in installed.keys().filter(|p| !wanted.contains_key(*p)) {
        if let Some(source) = held.get(path) {
            out.keep.insert(
                path.clone(),
                format!("LocalhostProfile {source} is refused: the file installed before stays"),
            );
        } else if let Some(pod) = pods.get(path) {
            out.keep.insert(path.clone(), format!("Pod {pod} uses it"));
        } else {
            match templates.get(path) {
                Some(Template::Names(workload)) => {
                    out.keep.insert(
                        path.clone(),
                        format!("the pod template of {workload} names it"),
                    );
                }
                Some(Template::Unknown(why)) => {
                    out.keep.insert(path.clone(), why.clone());
                }
                Some(Template::DoesNot) => out.remove.push(path.clone()),
                None => out.ask.push(path.clone()),
            }
        }
    }
    out
}

/// The `localhostProfile` of a path below syscensus's directory.
pub(crate) fn localhost_profile(relative: &std::path::Path) -> String {
    format!("{LOCALHOST_DIR}/{}", slash_path(relative))
}

/// The node's report: every file in the directory with its SHA-256 (and
/// what it is kept for when no object asks for it), and the refusals.
pub(crate) fn report(
    installed: &BTreeMap<PathBuf, String>,
    keep: &BTreeMap<PathBuf, String>,
    refused: &BTreeMap<String, String>,
) -> (Vec<InstalledProfile>, Vec<RefusedProfile>) {
    let installed = installed
        .iter()
        .map(|(path, sha256)| InstalledProfile {
            localhost_profile: localhost_profile(path),
            sha256: sha256.clone(),
            kept_for: keep.get(path).cloned(),
        })
        .collect();
    let refused = refused
        .iter()
        .take(MAX_REFUSED)
        .map(|(profile, reason)| RefusedProfile {
            profile: profile.clone(),
            reason: crate::profile::excerpt(reason, 1000),
        })
        .collect();
    (installed, refused)
}

/// Refusals a report lists at most (the count says how many there are).
pub(crate) const MAX_REFUSED: usize = 1000;

/// The paths of `installed` that `plan` changes, for logging.
pub(crate) fn changed(plan: &Plan) -> BTreeSet<&PathBuf> {
    plan.write.iter().chain(&plan.remove).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> PathBuf {
        PathBuf::from(s)
    }

    fn want(sha: &str) -> Want {
        Want {
            bytes: "{}".into(),
            sha256: sha.into(),
            source: "ns/x".into(),
        }
    }

    #[test]
    fn wanted_files_are_written_only_when_their_bytes_differ() {
        let wanted = [
            (p("a"), want("1")),
            (p("b"), want("2")),
            (p("c"), want("3")),
        ]
        .into();
        let installed = [(p("a"), "1".into()), (p("b"), "old".into())].into();
        let plan = plan(&wanted, &installed, &[].into(), &[].into(), &[].into());
        assert_eq!(plan.write, [p("b"), p("c")]);
        assert!(plan.remove.is_empty() && plan.keep.is_empty() && plan.ask.is_empty());
    }

    #[test]
    fn unwanted_files_go_only_when_nothing_uses_them() {
        let installed: BTreeMap<PathBuf, String> =
            ["pod", "tmpl", "unknown", "free", "ask", "held"]
                .map(|n| (p(n), "1".to_owned()))
                .into();
        let pods = [(p("pod"), "ns/web-1".to_owned())].into();
        let held = [(p("held"), "ns/held".to_owned())].into();
        let templates = [
            (p("tmpl"), Template::Names("Deployment ns/web".into())),
            (
                p("unknown"),
                Template::Unknown("cannot read Deployment ns/x".into()),
            ),
            (p("free"), Template::DoesNot),
            // A Pod's use wins over what the template said.
            (p("pod"), Template::DoesNot),
        ]
        .into();
        let plan = plan(&[].into(), &installed, &held, &pods, &templates);
        assert_eq!(plan.remove, [p("free")]);
        assert_eq!(plan.ask, [p("ask")]);
        assert_eq!(
            plan.keep.keys().collect::<Vec<_>>(),
            [&p("held"), &p("pod"), &p("tmpl"), &p("unknown")]
        );
        assert_eq!(plan.keep[&p("pod")], "Pod ns/web-1 uses it");
        let (report, _) = report(&installed, &plan.keep, &[].into());
        assert_eq!(report.len(), 6);
        assert_eq!(report[0].localhost_profile, "syscensus/ask");
        assert_eq!(report[0].kept_for, None);
    }
}
