//! Makes the live workloads of an export use their profiles (`syscensus
//! apply`), by server-side apply of each workload's patch (field manager
//! `syscensus`), once every Node the workload may run on has the profile
//! installed.
//!
//! A syscensus profile (`localhostProfile: syscensus/...`) is installed on
//! a Node when that Node's NodeProfileStatus lists its path with the
//! SHA-256 of the exported file, so a profile changed since the export
//! does not count. A Security Profiles Operator profile (`operator/...`,
//! from `export --for spo`) is installed when its SeccompProfile has the
//! exported spec and SPO reports it `Installed` (on every node, by SPO's
//! own account). The Nodes a workload may run on are the cluster's Nodes
//! that match its pod template's `nodeSelector`; affinity and taints are
//! not evaluated, so every such Node must have the profile. If any profile
//! is missing anywhere, nothing is patched.
use std::{
    collections::{BTreeMap, BTreeSet},
    fmt::Write as _,
};

use k8s_openapi::api::core::v1::Node;
use kube::{
    Api, Client,
    api::{ApiResource, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams},
};
use serde::Serialize;
use serde_json::Value;
use syscensus_api::{FIELD_MANAGER, WorkloadKind, localhost_profile_name};

use crate::export::{
    ExportError, WorkloadPatch, apply_configuration, group_version, pod_spec_pointer,
};

mod installed;
mod read;

use installed::{NodeReports, matching_nodes, node_reports, node_selector, spo_problem};
pub use read::{Exported, Installer, Wanted, read_export};

/// The version of the JSON report (`apply -o json`); fields are only ever
/// added.
pub const SCHEMA: &str = "syscensus.io/apply/v1";

/// A container's `seccompProfile`, as the report names it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SeccompRef {
    #[serde(rename = "type")]
    pub type_: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub localhost_profile: Option<String>,
}

impl SeccompRef {
    fn of(value: Option<&Value>) -> Option<SeccompRef> {
        let value = value.filter(|p| !p.is_null())?;
        Some(SeccompRef {
            type_: value
                .get("type")
                .and_then(Value::as_str)
                .unwrap_or("?")
                .to_owned(),
            localhost_profile: value
                .get("localhostProfile")
                .and_then(Value::as_str)
                .map(str::to_owned),
        })
    }

    fn describe(this: Option<&SeccompRef>) -> String {
        match this {
            None => "none".to_owned(),
            Some(r) => match &r.localhost_profile {
                Some(path) => format!("{} {path}", r.type_),
                None => r.type_.clone(),
            },
        }
    }
}

/// One container of a workload: its `seccompProfile` before and after.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerChange {
    pub name: String,
    pub init: bool,
    pub before: Option<SeccompRef>,
    pub after: SeccompRef,
    pub changed: bool,
}

/// What applying one workload's patch changes.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadChange {
    pub kind: String,
    pub namespace: String,
    pub name: String,
    /// `changed`, `unchanged`, `skipped` (a Pod or a Job: immutable),
    /// `missing` (the workload, or a container of it, does not exist).
    pub status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub containers: Vec<ContainerChange>,
}

/// What [`apply`] did, or with `dry_run` would do.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub schema: &'static str,
    pub dry_run: bool,
    /// Whether the patches were (or, in a dry run, would be) applied.
    pub applied: bool,
    /// Workloads changed (or that would change).
    pub changed: usize,
    pub workloads: Vec<WorkloadChange>,
    /// Why nothing was (or would be) patched: the first problem and the
    /// others.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<String>,
}

impl Report {
    /// The report for people.
    pub fn text(&self) -> String {
        let mut out = String::new();
        for w in &self.workloads {
            let title = format!("{} {}/{}", w.kind, w.namespace, w.name);
            if w.status == "skipped" {
                let _ = writeln!(
                    out,
                    "{title}: skipped: {}",
                    w.reason.as_deref().unwrap_or_default()
                );
                continue;
            }
            if w.status == "missing" {
                continue;
            }
            let _ = writeln!(out, "{title}");
            for c in &w.containers {
                let label = if c.init { "initContainer" } else { "container" };
                let after = SeccompRef::describe(Some(&c.after));
                if c.changed {
                    let before = SeccompRef::describe(c.before.as_ref());
                    let _ = writeln!(
                        out,
                        "  {label} {}: seccompProfile {before} -> {after}",
                        c.name
                    );
                } else {
                    let _ = writeln!(
                        out,
                        "  {label} {}: seccompProfile unchanged ({after})",
                        c.name
                    );
                }
            }
        }
        if self.dry_run {
            let _ = writeln!(
                out,
                "dry run: {} workload(s) would change; nothing was written",
                self.changed
            );
        } else if self.applied {
            let _ = writeln!(
                out,
                "applied: {} workload(s) changed (field manager {FIELD_MANAGER})",
                self.changed
            );
        }
        out
    }
}

/// The live container's `seccompProfile` for each patched container,
/// before and after, or the names of the containers the live object lacks.
fn change(patch: &WorkloadPatch, live: &Value) -> Result<Vec<ContainerChange>, Vec<String>> {
    let pod = live.pointer(pod_spec_pointer(patch.workload.kind));
    let mut out = Vec::new();
    let mut missing = Vec::new();
    for c in &patch.containers {
        let field = if c.init {
            "initContainers"
        } else {
            "containers"
        };
        let found = pod
            .and_then(|p| p.get(field))
            .and_then(Value::as_array)
            .and_then(|list| {
                list.iter()
                    .find(|x| x.get("name").and_then(Value::as_str) == Some(c.name.as_str()))
            });
        let Some(found) = found else {
            missing.push(c.name.clone());
            continue;
        };
        let before = SeccompRef::of(found.pointer("/securityContext/seccompProfile"));
        let after = SeccompRef {
            type_: "Localhost".to_owned(),
            localhost_profile: Some(c.localhost_profile.clone()),
        };
        out.push(ContainerChange {
            name: c.name.clone(),
            init: c.init,
            changed: before.as_ref() != Some(&after),
            before,
            after,
        });
    }
    if missing.is_empty() {
        Ok(out)
    } else {
        Err(missing)
    }
}

fn list(names: &BTreeSet<String>) -> String {
    const SHOWN: usize = 5;
    let mut text = names
        .iter()
        .take(SHOWN)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if names.len() > SHOWN {
        let _ = write!(text, " and {} more", names.len() - SHOWN);
    }
    text
}

/// Why a workload cannot be patched in place, if it cannot.
fn immutable(kind: WorkloadKind) -> Option<&'static str> {
    match kind {
        WorkloadKind::Pod => Some(
            "a Pod's containers cannot change once it exists: recreate it from its manifest with the export's kustomize patch",
        ),
        WorkloadKind::Job => Some(
            "a Job's pod template cannot change once it exists: recreate it from its manifest with the export's kustomize patch",
        ),
        _ => None,
    }
}

/// Applies `export` (or with `dry_run` says what would change). The report
/// says what changed, or would; the error, why nothing was patched.
pub async fn apply(
    client: &Client,
    export: Vec<Exported>,
    dry_run: bool,
    force_uninstalled: bool,
) -> Result<(Report, Option<ExportError>), ExportError> {
    let nodes = if force_uninstalled {
        Vec::new()
    } else {
        Api::<Node>::all(client.clone())
            .list(&ListParams::default())
            .await
            .map_err(ExportError::kube("list Nodes"))?
            .items
    };
    // The syscensus profiles the export holds: localhostProfile → the
    // LocalhostProfile that installs it.
    let paths: BTreeMap<String, String> = export
        .iter()
        .flat_map(|(patch, wanted)| {
            patch.containers.iter().filter_map(move |c| {
                let w = wanted.get(&c.name)?;
                (w.installer == Installer::Syscensus).then(|| {
                    let object = localhost_profile_name(
                        patch.workload.kind.as_str(),
                        &patch.workload.name,
                        &c.name,
                    );
                    (
                        c.localhost_profile.clone(),
                        format!("{}/{object}", patch.namespace),
                    )
                })
            })
        })
        .collect();
    let reports = if force_uninstalled || paths.is_empty() {
        NodeReports::default()
    } else {
        node_reports(client, &paths).await?
    };
    let mut workloads = Vec::new();
    let mut not_installed = Vec::new();
    let mut other = Vec::new();
    let mut todo = Vec::new();
    for (patch, wanted) in &export {
        let mut entry = WorkloadChange {
            kind: patch.workload.kind.as_str().to_owned(),
            namespace: patch.namespace.clone(),
            name: patch.workload.name.clone(),
            status: "unchanged",
            reason: None,
            containers: Vec::new(),
        };
        let title = format!("{} {}/{}", entry.kind, entry.namespace, entry.name);
        if let Some(reason) = immutable(patch.workload.kind) {
            entry.status = "skipped";
            entry.reason = Some(reason.to_owned());
            workloads.push(entry);
            continue;
        }
        let (group, version) = group_version(patch.workload.kind);
        let resource = ApiResource::from_gvk(&GroupVersionKind::gvk(
            group,
            version,
            patch.workload.kind.as_str(),
        ));
        let api: Api<DynamicObject> =
            Api::namespaced_with(client.clone(), &patch.namespace, &resource);
        let Some(live) = api
            .get_opt(&patch.workload.name)
            .await
            .map_err(ExportError::kube(format!("read {title}")))?
        else {
            other.push(format!("{title} does not exist"));
            entry.status = "missing";
            entry.reason = Some("it does not exist".into());
            workloads.push(entry);
            continue;
        };
        #[expect(
            clippy::unwrap_used,
            reason = "serializing an object read from JSON cannot fail"
        )]
        let live = serde_json::to_value(&live).unwrap();
        let containers = match change(patch, &live) {
            Ok(containers) => containers,
            Err(missing) => {
                let reason = format!("has no container {}", missing.join(", "));
                other.push(format!("{title} {reason}"));
                entry.status = "missing";
                entry.reason = Some(reason);
                workloads.push(entry);
                continue;
            }
        };
        if !force_uninstalled {
            let selector = node_selector(patch, &live);
            let candidates = matching_nodes(&nodes, &selector);
            if candidates.is_empty() {
                not_installed.push(format!("no Node matches the nodeSelector of {title}"));
            }
            for c in &patch.containers {
                let Some(w) = wanted.get(&c.name) else {
                    continue;
                };
                if w.installer != Installer::Syscensus {
                    if let Some(problem) = spo_problem(client, &w.installer).await? {
                        not_installed
                            .push(format!("{} (for {title}): {problem}", c.localhost_profile));
                    }
                    continue;
                }
                let missing: BTreeSet<String> = candidates
                    .iter()
                    .filter(|node| {
                        reports
                            .installed
                            .get(*node)
                            .and_then(|paths| paths.get(&c.localhost_profile))
                            .is_none_or(|sha| !sha.eq_ignore_ascii_case(&w.sha256))
                    })
                    .cloned()
                    .collect();
                if missing.is_empty() {
                    continue;
                }
                let refusal = missing.iter().find_map(|node| {
                    let reason = reports.refused.get(node)?.get(&c.localhost_profile)?;
                    Some(format!("; {node} refused it: {reason}"))
                });
                let silent: BTreeSet<String> = missing
                    .iter()
                    .filter(|n| !reports.installed.contains_key(*n))
                    .cloned()
                    .collect();
                let agents = if silent.is_empty() {
                    String::new()
                } else {
                    format!("; no syscensus agent reports on {}", list(&silent))
                };
                not_installed.push(format!(
                    "{} ({}, for {title}) is not installed on {}{}{agents}",
                    c.localhost_profile,
                    w.relative,
                    list(&missing),
                    refusal.unwrap_or_default()
                ));
            }
        }
        let changed = containers.iter().any(|c| c.changed);
        entry.status = if changed { "changed" } else { "unchanged" };
        entry.containers = containers;
        workloads.push(entry);
        todo.push((api, patch, changed));
    }

    let changing = todo.iter().filter(|(_, _, changed)| *changed).count();
    let refusal = if !other.is_empty() {
        Some(ExportError::Workloads { problems: other })
    } else if !not_installed.is_empty() {
        Some(ExportError::NotInstalled {
            problems: not_installed,
        })
    } else {
        None
    };
    let problems = match &refusal {
        Some(ExportError::Workloads { problems } | ExportError::NotInstalled { problems }) => {
            problems.clone()
        }
        _ => Vec::new(),
    };
    let mut report = Report {
        schema: SCHEMA,
        dry_run,
        applied: refusal.is_none(),
        changed: changing,
        workloads,
        problems,
    };
    if dry_run || refusal.is_some() {
        // Nothing is written unless everything can be; the planned changes
        // are reported either way.
        return Ok((report, refusal));
    }
    let params = PatchParams::apply(FIELD_MANAGER).force();
    for (api, patch, changed) in &todo {
        if !changed {
            continue;
        }
        let title = format!(
            "{} {}/{}",
            patch.workload.kind.as_str(),
            patch.namespace,
            patch.workload.name
        );
        api.patch(
            &patch.workload.name,
            &params,
            &Patch::Apply(apply_configuration(patch)),
        )
        .await
        .map_err(ExportError::kube(format!("apply the patch to {title}")))?;
        tracing::info!(workload = %title, "patched");
    }
    report.applied = true;
    Ok((report, None))
}
