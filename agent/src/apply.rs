//! Makes the live workloads of an export use their profiles (`syscensus
//! apply`), by server-side apply of each workload's patch (field manager
//! `syscensus`), once every Node the workload may run on has the profile
//! installed.
//!
//! A profile is installed on a Node when one of its ContainerProfiles has a
//! `status.installed[]` entry for that Node whose `path` is the
//! `localhostProfile` (or the path inside the export) and whose `sha256` is
//! the exported file's. The Nodes a workload may run on are the cluster's
//! Nodes that match its pod template's `nodeSelector`; affinity and taints
//! are not evaluated, so every such Node must have the profile. If any
//! profile is missing anywhere, nothing is patched.
use std::{
    collections::{BTreeMap, BTreeSet},
    fmt::Write as _,
    fs,
    path::Path,
};

use k8s_openapi::api::core::v1::Node;
use kube::{
    Api,
    api::{ApiResource, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams},
};
use serde_json::Value;
use sha2::{Digest as _, Sha256};
use syscensus_api::{ContainerProfile, FIELD_MANAGER, WorkloadKind};

use crate::{
    export::{
        ExportError, PATCH_FILE, WorkloadPatch, apply_configuration, client, group_version,
        parse_patch, pod_spec_pointer, read_manifest,
    },
    localhost::LOCALHOST_DIR,
};

/// A container of an exported workload, with its profile file's digest.
#[derive(Clone, Debug)]
pub struct Wanted {
    /// The path inside the export directory.
    relative: String,
    sha256: String,
}

/// A workload's patch, and its containers' profiles by container name.
pub type Exported = (WorkloadPatch, BTreeMap<String, Wanted>);

/// Reads the patches of the export in `dir`, and each profile's SHA-256.
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
        let mut wanted = BTreeMap::new();
        for c in &patch.containers {
            let inside = c
                .localhost_profile
                .strip_prefix(LOCALHOST_DIR)
                .and_then(|p| p.strip_prefix('/'))
                .filter(|p| manifest.contains(*p))
                .ok_or_else(|| ExportError::Parse {
                    path: path.clone(),
                    message: format!(
                        "container {}: localhostProfile {:?} is not a profile of this export",
                        c.name, c.localhost_profile
                    ),
                })?;
            let file = dir.join(inside);
            let bytes = fs::read(&file).map_err(ExportError::read(&file))?;
            let sha256 = Sha256::digest(&bytes)
                .iter()
                .fold(String::new(), |mut s, b| {
                    let _ = write!(s, "{b:02x}");
                    s
                });
            wanted.insert(
                c.name.clone(),
                Wanted {
                    relative: inside.to_owned(),
                    sha256,
                },
            );
        }
        out.push((patch, wanted));
    }
    Ok(out)
}

fn describe(profile: Option<&Value>) -> String {
    let Some(p) = profile.filter(|p| !p.is_null()) else {
        return "none".to_owned();
    };
    let kind = p.get("type").and_then(Value::as_str).unwrap_or("?");
    match p.get("localhostProfile").and_then(Value::as_str) {
        Some(path) => format!("{kind} {path}"),
        None => kind.to_owned(),
    }
}

fn title(patch: &WorkloadPatch) -> String {
    format!(
        "{} {}/{}",
        patch.workload.kind.as_str(),
        patch.namespace,
        patch.workload.name
    )
}

/// What applying one workload's patch changes.
#[derive(Debug)]
struct Change {
    lines: Vec<String>,
    changed: bool,
}

/// The live container's `seccompProfile` for each patched container,
/// before and after, or the names of the containers the live object lacks.
fn change(patch: &WorkloadPatch, live: &Value) -> Result<Change, Vec<String>> {
    let pod = live.pointer(pod_spec_pointer(patch.workload.kind));
    let mut lines = Vec::new();
    let mut missing = Vec::new();
    let mut changed = false;
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
        let before = describe(found.pointer("/securityContext/seccompProfile"));
        let after = format!("Localhost {}", c.localhost_profile);
        let label = if c.init { "initContainer" } else { "container" };
        if before == after {
            lines.push(format!(
                "  {label} {}: seccompProfile unchanged ({after})",
                c.name
            ));
        } else {
            changed = true;
            lines.push(format!(
                "  {label} {}: seccompProfile {before} -> {after}",
                c.name
            ));
        }
    }
    if missing.is_empty() {
        Ok(Change { lines, changed })
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

/// The Nodes that have the profile of `container` installed.
fn installed_on(
    profiles: &[ContainerProfile],
    patch: &WorkloadPatch,
    container: &str,
    localhost: &str,
    wanted: &Wanted,
) -> BTreeSet<String> {
    profiles
        .iter()
        .filter(|p| {
            p.spec.workload == patch.workload
                && p.spec.container == container
                && p.metadata.namespace.as_deref() == Some(patch.namespace.as_str())
        })
        .flat_map(|p| p.status.iter().flat_map(|s| &s.installed))
        .filter(|i| {
            (i.path == localhost || i.path == wanted.relative)
                && i.sha256.eq_ignore_ascii_case(&wanted.sha256)
        })
        .map(|i| i.node.clone())
        .collect()
}

fn list(names: &BTreeSet<String>) -> String {
    names.iter().cloned().collect::<Vec<_>>().join(", ")
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

/// What [`apply`] did, or with `dry_run` would do.
#[derive(Debug)]
pub struct Outcome {
    /// Per workload, each container's seccompProfile before and after.
    pub report: String,
    /// Why a dry run's apply would be refused.
    pub refused: Option<ExportError>,
}

/// Applies `export` (or with `dry_run` says what would change).
pub async fn apply(
    export: Vec<Exported>,
    dry_run: bool,
    force_uninstalled: bool,
) -> Result<Outcome, ExportError> {
    let client = client().await?;
    let nodes = if force_uninstalled {
        Vec::new()
    } else {
        Api::<Node>::all(client.clone())
            .list(&ListParams::default())
            .await
            .map_err(ExportError::kube("list Nodes"))?
            .items
    };
    let mut profiles: BTreeMap<String, Vec<ContainerProfile>> = BTreeMap::new();
    let mut out = String::new();
    let mut not_installed = Vec::new();
    let mut other = Vec::new();
    let mut todo = Vec::new();
    for (patch, wanted) in &export {
        if let Some(reason) = immutable(patch.workload.kind) {
            let _ = writeln!(out, "{}: skipped: {reason}", title(patch));
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
            .map_err(ExportError::kube(format!("read {}", title(patch))))?
        else {
            other.push(format!("{} does not exist", title(patch)));
            continue;
        };
        #[expect(
            clippy::unwrap_used,
            reason = "serializing an object read from JSON cannot fail"
        )]
        let live = serde_json::to_value(&live).unwrap();
        let change = match change(patch, &live) {
            Ok(change) => change,
            Err(missing) => {
                other.push(format!(
                    "{} has no container {}",
                    title(patch),
                    missing.join(", ")
                ));
                continue;
            }
        };
        if !force_uninstalled {
            let selector = node_selector(patch, &live);
            let candidates = matching_nodes(&nodes, &selector);
            if candidates.is_empty() {
                not_installed.push(format!(
                    "no Node matches the nodeSelector of {}",
                    title(patch)
                ));
            }
            if !profiles.contains_key(&patch.namespace) {
                let list = Api::<ContainerProfile>::namespaced(client.clone(), &patch.namespace)
                    .list(&ListParams::default())
                    .await
                    .map_err(ExportError::kube(format!(
                        "list ContainerProfiles in {}",
                        patch.namespace
                    )))?;
                profiles.insert(patch.namespace.clone(), list.items);
            }
            let in_namespace = &profiles[&patch.namespace];
            for c in &patch.containers {
                let Some(w) = wanted.get(&c.name) else {
                    continue;
                };
                let have = installed_on(in_namespace, patch, &c.name, &c.localhost_profile, w);
                let missing: BTreeSet<String> = candidates.difference(&have).cloned().collect();
                if !missing.is_empty() {
                    not_installed.push(format!(
                        "{} (for {}) is not installed on {}",
                        c.localhost_profile,
                        title(patch),
                        list(&missing)
                    ));
                }
            }
        }
        let _ = writeln!(out, "{}", title(patch));
        for line in &change.lines {
            let _ = writeln!(out, "{line}");
        }
        todo.push((api, patch, change.changed));
    }

    if !dry_run {
        // Nothing is written unless everything can be.
        if !other.is_empty() {
            return Err(ExportError::Workloads { problems: other });
        }
        if !not_installed.is_empty() {
            return Err(ExportError::NotInstalled {
                problems: not_installed,
            });
        }
    }
    let changing = todo.iter().filter(|(_, _, changed)| *changed).count();
    if dry_run {
        let _ = writeln!(
            out,
            "dry run: {changing} workload(s) would change; nothing was written"
        );
        // The planned changes are printed even when the apply would be
        // refused; the refusal is the error.
        let refused = if !other.is_empty() {
            Some(ExportError::Workloads { problems: other })
        } else if !not_installed.is_empty() {
            Some(ExportError::NotInstalled {
                problems: not_installed,
            })
        } else {
            None
        };
        return Ok(Outcome {
            report: out,
            refused,
        });
    }
    let params = PatchParams::apply(FIELD_MANAGER).force();
    for (api, patch, changed) in &todo {
        if !changed {
            continue;
        }
        api.patch(
            &patch.workload.name,
            &params,
            &Patch::Apply(apply_configuration(patch)),
        )
        .await
        .map_err(ExportError::kube(format!(
            "apply the patch to {}",
            title(patch)
        )))?;
        tracing::info!(workload = %title(patch), "patched");
    }
    let _ = writeln!(
        out,
        "applied: {changing} workload(s) changed (field manager {FIELD_MANAGER})"
    );
    Ok(Outcome {
        report: out,
        refused: None,
    })
}
