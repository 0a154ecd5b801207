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
    fs,
    path::Path,
};

use k8s_openapi::api::core::v1::Node;
use kube::{
    Api, Client,
    api::{ApiResource, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams},
};
use serde::Serialize;
use serde_json::Value;
use syscensus_api::{FIELD_MANAGER, NodeProfileStatus, WorkloadKind, localhost_profile_name};

use crate::{
    export::{
        ExportError, PATCH_FILE, WorkloadPatch, apply_configuration, group_version, parse_patch,
        pod_spec_pointer, read_documents, read_manifest,
    },
    localhost::{self, usage::syscensus_relative},
};

/// The version of the JSON report (`apply -o json`); fields are only ever
/// added.
pub const SCHEMA: &str = "syscensus.io/apply/v1";

/// Who installs a profile on the nodes.
#[derive(Clone, Debug, PartialEq)]
pub enum Installer {
    /// syscensus's agents, from LocalhostProfiles.
    Syscensus,
    /// The Security Profiles Operator, from this SeccompProfile.
    Spo {
        api_version: String,
        name: String,
        namespace: Option<String>,
        spec: Value,
    },
}

/// A container of an exported workload, with its profile file's digest.
#[derive(Clone, Debug)]
pub struct Wanted {
    /// The path inside the export directory.
    relative: String,
    sha256: String,
    installer: Installer,
}

/// A workload's patch, and its containers' profiles by container name.
pub type Exported = (WorkloadPatch, BTreeMap<String, Wanted>);

fn parse_error(path: &Path, message: String) -> ExportError {
    ExportError::Parse {
        path: path.to_path_buf(),
        message,
    }
}

/// Reads the patches of the export in `dir`, and each profile's SHA-256.
/// A container's profile is `<container>.json` beside its workload's
/// patch; with the Security Profiles Operator's path, its SeccompProfile is
/// `<container>.seccompprofile.yaml`.
pub fn read_export(dir: &Path) -> Result<Vec<Exported>, ExportError> {
    let manifest = read_manifest(dir)?.ok_or_else(|| ExportError::NotAnExport {
        dir: dir.to_path_buf(),
    })?;
    let mut out = Vec::new();
    for relative in manifest
        .iter()
        .filter(|p| p.rsplit('/').next() == Some(PATCH_FILE))
    {
        let path = dir.join(relative);
        let text = fs::read_to_string(&path).map_err(ExportError::read(&path))?;
        let patch = parse_patch(&text, &path)?;
        let workload_dir = relative.rsplit_once('/').map_or("", |(d, _)| d);
        let mut wanted = BTreeMap::new();
        for c in &patch.containers {
            let inside = if workload_dir.is_empty() {
                format!("{}.json", c.name)
            } else {
                format!("{workload_dir}/{}.json", c.name)
            };
            if !manifest.contains(&inside) {
                return Err(parse_error(
                    &path,
                    format!(
                        "container {}: {inside} is not a file of this export",
                        c.name
                    ),
                ));
            }
            let installer = if let Some(rest) = syscensus_relative(&c.localhost_profile) {
                if rest != inside {
                    return Err(parse_error(
                        &path,
                        format!(
                            "container {}: localhostProfile {:?} is not a profile of this export",
                            c.name, c.localhost_profile
                        ),
                    ));
                }
                Installer::Syscensus
            } else if c.localhost_profile.starts_with("operator/") {
                spo_object(dir, &manifest, &inside, &path, &c.name)?
            } else {
                return Err(parse_error(
                    &path,
                    format!(
                        "container {}: localhostProfile {:?} is neither syscensus's (syscensus/...) nor the Security Profiles Operator's (operator/...)",
                        c.name, c.localhost_profile
                    ),
                ));
            };
            let file = dir.join(&inside);
            let bytes = fs::read(&file).map_err(ExportError::read(&file))?;
            wanted.insert(
                c.name.clone(),
                Wanted {
                    relative: inside,
                    sha256: localhost::sha256_hex(&bytes),
                    installer,
                },
            );
        }
        out.push((patch, wanted));
    }
    Ok(out)
}

/// The SeccompProfile object exported beside `profile` (`<container>.json`).
fn spo_object(
    dir: &Path,
    manifest: &BTreeSet<String>,
    profile: &str,
    patch: &Path,
    container: &str,
) -> Result<Installer, ExportError> {
    let object = format!("{}.seccompprofile.yaml", profile.trim_end_matches(".json"));
    if !manifest.contains(&object) {
        return Err(parse_error(
            patch,
            format!(
                "container {container}: the Security Profiles Operator's profile needs its object {object}, which this export lacks"
            ),
        ));
    }
    let path = dir.join(&object);
    let document = read_documents(&path)?
        .into_iter()
        .next()
        .ok_or_else(|| parse_error(&path, "empty".into()))?;
    let text = |pointer: &str| document.pointer(pointer).and_then(Value::as_str);
    let (Some(api_version), Some(name)) = (text("/apiVersion"), text("/metadata/name")) else {
        return Err(parse_error(
            &path,
            "not a SeccompProfile object written by syscensus export".into(),
        ));
    };
    Ok(Installer::Spo {
        api_version: api_version.to_owned(),
        name: name.to_owned(),
        namespace: text("/metadata/namespace").map(str::to_owned),
        spec: document.get("spec").cloned().unwrap_or(Value::Null),
    })
}

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

fn node_selector(patch: &WorkloadPatch, live: &Value) -> BTreeMap<String, String> {
    live.pointer(&format!(
        "{}/nodeSelector",
        pod_spec_pointer(patch.workload.kind)
    ))
    .and_then(Value::as_object)
    .map(|m| {
        m.iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
            .collect()
    })
    .unwrap_or_default()
}

/// The Nodes whose labels match `selector`.
fn matching_nodes(nodes: &[Node], selector: &BTreeMap<String, String>) -> BTreeSet<String> {
    nodes
        .iter()
        .filter(|n| {
            let labels = n.metadata.labels.as_ref();
            selector
                .iter()
                .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v))
        })
        .filter_map(|n| n.metadata.name.clone())
        .collect()
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

/// What the nodes report of the syscensus profiles the export holds: per
/// node, path → SHA-256, and refusals (path → reason). Read in pages, and
/// only the paths asked about are kept, so that a large cluster's reports
/// do not all sit in memory.
#[derive(Debug, Default)]
struct NodeReports {
    installed: BTreeMap<String, BTreeMap<String, String>>,
    refused: BTreeMap<String, BTreeMap<String, String>>,
}

async fn node_reports(
    client: &Client,
    paths: &BTreeMap<String, String>,
) -> Result<NodeReports, ExportError> {
    let api: Api<NodeProfileStatus> = Api::all(client.clone());
    let mut reports = NodeReports::default();
    let mut params = ListParams::default().limit(500);
    loop {
        let page = api
            .list(&params)
            .await
            .map_err(ExportError::kube("list NodeProfileStatuses"))?;
        for status in page.items {
            let node = status.spec.node.clone();
            let installed = reports.installed.entry(node.clone()).or_default();
            for entry in status.spec.installed {
                if paths.contains_key(&entry.localhost_profile) {
                    installed.insert(entry.localhost_profile, entry.sha256);
                }
            }
            for refusal in status.spec.refused {
                if let Some((path, _)) =
                    paths.iter().find(|(_, object)| **object == refusal.profile)
                {
                    reports
                        .refused
                        .entry(node.clone())
                        .or_default()
                        .insert(path.clone(), refusal.reason);
                }
            }
        }
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(token) => params = params.continue_token(&token),
            None => break,
        }
    }
    Ok(reports)
}

/// Whether the Security Profiles Operator has installed the exported
/// SeccompProfile: `None` if so, else why not.
async fn spo_problem(
    client: &Client,
    installer: &Installer,
) -> Result<Option<String>, ExportError> {
    let Installer::Spo {
        api_version,
        name,
        namespace,
        spec,
    } = installer
    else {
        return Ok(None);
    };
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let resource = ApiResource::from_gvk(&GroupVersionKind::gvk(group, version, "SeccompProfile"));
    let api: Api<DynamicObject> = match namespace {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &resource),
        None => Api::all_with(client.clone(), &resource),
    };
    let title = format!(
        "SeccompProfile {}{name}",
        namespace
            .as_ref()
            .map(|n| format!("{n}/"))
            .unwrap_or_default()
    );
    let live = match api.get_opt(name).await {
        Ok(Some(live)) => live,
        Ok(None) => return Ok(Some(format!("{title} does not exist"))),
        Err(kube::Error::Api(status)) if status.code == 404 => {
            return Ok(Some(format!(
                "{title} cannot be read: the Security Profiles Operator's {api_version} API is not served"
            )));
        }
        Err(error) => return Err(ExportError::kube(format!("read {title}"))(error)),
    };
    if live.data.get("spec") != Some(spec) {
        return Ok(Some(format!(
            "{title} is not the one exported (its spec differs)"
        )));
    }
    let state = live
        .data
        .pointer("/status/status")
        .and_then(Value::as_str)
        .unwrap_or("unknown");
    if state != "Installed" {
        return Ok(Some(format!(
            "{title} is {state}, not Installed, by the Security Profiles Operator's account"
        )));
    }
    Ok(None)
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
