//! Approving ContainerProfiles in the cluster they were recorded in
//! (`syscensus approve`), bound to their content.
//!
//! Approving a ContainerProfile approves its spec as it is at that moment:
//! the profile file it renders to (merged with the other ContainerProfiles
//! of the same workload container, as `export` merges them) goes into the
//! container's LocalhostProfile, byte for byte, and every node installs
//! those bytes. Each ContainerProfile merged in is annotated with the
//! SHA-256 of what its own spec rendered to (`syscensus.io/approved-sha256`)
//! and labelled `syscensus.io/approval=approved`; the agents that merge
//! later syscalls into it turn the label to `changed`, and the nodes go on
//! installing what was approved until it is approved again. The annotation
//! is written with the resourceVersion that was read as a precondition, so
//! an approval never covers a spec it did not see.
use std::{collections::BTreeMap, fmt::Write as _, path::Path};

use kube::{
    Api, Client, ResourceExt as _,
    api::{DeleteParams, ListParams, Patch, PatchParams, PostParams},
};
use serde::Serialize;
use serde_json::json;
use syscensus_api::{
    ContainerProfile, ContainerProfileSpec, LocalhostProfile, WorkloadRef, annotations, labels,
};

use crate::{
    cluster::ConnectError,
    diff,
    localhost::{self, object},
    profile::Profile,
};

/// The field manager of approvals: not the agents' (`syscensus`), so that
/// their writes of the spec leave the approval alone.
pub const APPROVER: &str = "syscensus-approve";

/// Attempts when the agents keep changing a spec being approved.
const ATTEMPTS: usize = 5;

/// An approval failed.
#[derive(Debug, thiserror::Error)]
pub enum ApproveError {
    #[error(transparent)]
    Connect(#[from] ConnectError),
    #[error("failed to {what}: {source}")]
    Kube {
        what: String,
        #[source]
        source: Box<kube::Error>,
    },
    #[error(
        "no ContainerProfile {name:?} in namespace {namespace}: check the name with `kubectl get cprof -n {namespace}`"
    )]
    NotFound { namespace: String, name: String },
    #[error("no ContainerProfiles in namespace {namespace}: nothing to approve")]
    Nothing { namespace: String },
    #[error(
        "cannot approve ContainerProfile {namespace}/{name}: {reason}; nothing was approved for it"
    )]
    Unusable {
        namespace: String,
        name: String,
        reason: String,
    },
    #[error(
        "the agents kept changing the ContainerProfiles of {path} ({ATTEMPTS} attempts): approve again"
    )]
    Contended { path: String },
}

fn kube_error(what: impl Into<String>) -> impl FnOnce(kube::Error) -> ApproveError {
    let what = what.into();
    move |source| ApproveError::Kube {
        what,
        source: Box::new(source),
    }
}

/// One workload container's profile approved (or revoked).
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Approved {
    /// `syscensus/<namespace>/<kind>-<workload>/<container>.json`.
    pub localhost_profile: String,
    /// `<namespace>/<name>` of the LocalhostProfile.
    pub object: String,
    /// SHA-256 of the profile approved (empty when revoked).
    pub sha256: String,
    /// The ContainerProfiles approved, and the SHA-256 each one's spec
    /// rendered to.
    pub container_profiles: BTreeMap<String, String>,
    /// What changed against what was approved before, in words (empty
    /// when nothing did).
    pub changes: String,
}

/// The workload container a ContainerProfile is the profile of.
fn container_of(spec: &ContainerProfileSpec) -> (WorkloadRef, String) {
    (spec.workload.clone(), spec.container.clone())
}

/// Approves the ContainerProfiles `names` of `namespace` (every one of the
/// namespace when `names` is empty), as they are now; with `revoke`, takes
/// their approval back (the nodes keep what is in use: see the installer).
pub async fn approve(
    client: &Client,
    namespace: &str,
    names: &[String],
    revoke: bool,
) -> Result<Vec<Approved>, ApproveError> {
    let api: Api<ContainerProfile> = Api::namespaced(client.clone(), namespace);
    let all = api
        .list(&ListParams::default())
        .await
        .map_err(kube_error(format!("list ContainerProfiles in {namespace}")))?
        .items;
    if all.is_empty() {
        return Err(ApproveError::Nothing {
            namespace: namespace.to_owned(),
        });
    }
    let mut containers = Vec::new();
    if names.is_empty() {
        containers.extend(all.iter().map(|p| container_of(&p.spec)));
    }
    for name in names {
        let found =
            all.iter()
                .find(|p| p.name_any() == *name)
                .ok_or_else(|| ApproveError::NotFound {
                    namespace: namespace.to_owned(),
                    name: name.clone(),
                })?;
        containers.push(container_of(&found.spec));
    }
    containers.sort();
    containers.dedup();
    let mut out = Vec::new();
    for (workload, container) in containers {
        out.push(if revoke {
            revoke_one(client, namespace, &workload, &container).await?
        } else {
            approve_one(client, namespace, &workload, &container).await?
        });
    }
    Ok(out)
}

/// Approves every ContainerProfile of one workload container, retrying
/// while the agents change them meanwhile.
async fn approve_one(
    client: &Client,
    namespace: &str,
    workload: &WorkloadRef,
    container: &str,
) -> Result<Approved, ApproveError> {
    let profiles: Api<ContainerProfile> = Api::namespaced(client.clone(), namespace);
    let objects: Api<LocalhostProfile> = Api::namespaced(client.clone(), namespace);
    let path = localhost::localhost_profile(namespace, workload.kind, &workload.name, container)
        .map_err(|e| ApproveError::Unusable {
            namespace: namespace.to_owned(),
            name: format!("{} {}", workload.kind.as_str(), workload.name),
            reason: e.to_string(),
        })?;
    for _ in 0..ATTEMPTS {
        let mut sources: Vec<ContainerProfile> = profiles
            .list(&ListParams::default())
            .await
            .map_err(kube_error(format!("list ContainerProfiles in {namespace}")))?
            .items
            .into_iter()
            .filter(|p| p.spec.workload == *workload && p.spec.container == container)
            .collect();
        sources.sort_by_key(|p| p.name_any());
        let Some((first, rest)) = sources.split_first() else {
            return Err(ApproveError::NotFound {
                namespace: namespace.to_owned(),
                name: path.clone(),
            });
        };
        let mut spec = first.spec.clone();
        for other in rest {
            localhost::merge(&mut spec, &other.spec);
        }
        for source in &sources {
            localhost::check(&source.spec).map_err(|reason| ApproveError::Unusable {
                namespace: namespace.to_owned(),
                name: source.name_any(),
                reason,
            })?;
        }
        let text = localhost::render(&spec);
        let object = object::make(namespace, workload, container, &text).map_err(|e| {
            ApproveError::Unusable {
                namespace: namespace.to_owned(),
                name: first.name_any(),
                reason: e.to_string(),
            }
        })?;
        let name = object.name_any();
        let before = objects.get_opt(&name).await.map_err(kube_error(format!(
            "read LocalhostProfile {namespace}/{name}"
        )))?;
        let changes = describe_changes(
            &path,
            before.as_ref().map(|b| b.spec.profile.as_str()),
            &text,
        );
        let manifest = json!({
            "apiVersion": format!("{}/{}", syscensus_api::GROUP, syscensus_api::VERSION),
            "kind": "LocalhostProfile",
            "metadata": {"name": name, "namespace": namespace},
            "spec": object.spec,
        });
        objects
            .patch(
                &name,
                &PatchParams::apply(APPROVER).force(),
                &Patch::Apply(&manifest),
            )
            .await
            .map_err(kube_error(format!(
                "write LocalhostProfile {namespace}/{name}"
            )))?;
        let now = jiff::Timestamp::now().to_string();
        let mut approved = BTreeMap::new();
        let mut conflict = false;
        for source in &sources {
            let sha256 = localhost::spec_sha256(&source.spec);
            let patch = json!({
                "apiVersion": format!("{}/{}", syscensus_api::GROUP, syscensus_api::VERSION),
                "kind": "ContainerProfile",
                "metadata": {
                    "name": source.name_any(),
                    "namespace": namespace,
                    "resourceVersion": source.metadata.resource_version,
                    "annotations": {
                        annotations::APPROVED_SHA256: sha256,
                        annotations::APPROVED_AT: now,
                    },
                    "labels": {labels::APPROVAL: labels::approval::APPROVED},
                },
            });
            match profiles
                .patch(
                    &source.name_any(),
                    &PatchParams::apply(APPROVER).force(),
                    &Patch::Apply(&patch),
                )
                .await
            {
                Ok(_) => {
                    approved.insert(source.name_any(), sha256);
                }
                // Changed since it was read: approve what it is now.
                Err(kube::Error::Api(status)) if status.code == 409 => {
                    conflict = true;
                    break;
                }
                Err(error) => {
                    return Err(kube_error(format!(
                        "annotate ContainerProfile {namespace}/{}",
                        source.name_any()
                    ))(error));
                }
            }
        }
        if conflict {
            continue;
        }
        return Ok(Approved {
            localhost_profile: path,
            object: format!("{namespace}/{name}"),
            sha256: object.spec.sha256,
            container_profiles: approved,
            changes,
        });
    }
    Err(ApproveError::Contended { path })
}

/// The syscalls added and removed against the profile approved before.
fn describe_changes(path: &str, before: Option<&str>, after: &str) -> String {
    let parse = |text: &str| Profile::parse(text, Path::new(path), None).ok();
    let old = before.and_then(parse);
    let new = parse(after);
    diff::compare(
        path,
        old.as_ref().map(|p| (path, p)),
        new.as_ref().map(|p| (path, p)),
    )
    .map(|d| diff::text(&d))
    .unwrap_or_default()
}

/// Takes the approval of one workload container back: its LocalhostProfile
/// is deleted and its ContainerProfiles lose the approval.
async fn revoke_one(
    client: &Client,
    namespace: &str,
    workload: &WorkloadRef,
    container: &str,
) -> Result<Approved, ApproveError> {
    let profiles: Api<ContainerProfile> = Api::namespaced(client.clone(), namespace);
    let objects: Api<LocalhostProfile> = Api::namespaced(client.clone(), namespace);
    let name =
        syscensus_api::localhost_profile_name(workload.kind.as_str(), &workload.name, container);
    match objects.delete(&name, &DeleteParams::default()).await {
        Ok(_) => {}
        Err(kube::Error::Api(status)) if status.code == 404 => {}
        Err(error) => {
            return Err(kube_error(format!(
                "delete LocalhostProfile {namespace}/{name}"
            ))(error));
        }
    }
    let mut revoked = BTreeMap::new();
    for source in profiles
        .list(&ListParams::default())
        .await
        .map_err(kube_error(format!("list ContainerProfiles in {namespace}")))?
        .items
        .into_iter()
        .filter(|p| p.spec.workload == *workload && p.spec.container == container)
    {
        // Whoever wrote them last (the approver, or an agent that turned
        // the label to `changed`), the annotations and the label go: the
        // object is replaced without them, under the resourceVersion read,
        // and read again when an agent wrote meanwhile.
        let name = source.name_any();
        let what = || format!("take the approval of ContainerProfile {namespace}/{name} back");
        let mut current = source;
        let mut done = false;
        for _ in 0..ATTEMPTS {
            let annotations = current.metadata.annotations.get_or_insert_default();
            let mut changed = annotations.remove(annotations::APPROVED_SHA256).is_some();
            changed |= annotations.remove(annotations::APPROVED_AT).is_some();
            changed |= current
                .metadata
                .labels
                .get_or_insert_default()
                .remove(labels::APPROVAL)
                .is_some();
            if !changed {
                done = true;
                break;
            }
            let params = PostParams {
                field_manager: Some(APPROVER.to_owned()),
                ..PostParams::default()
            };
            match profiles.replace(&name, &params, &current).await {
                Ok(_) => {
                    done = true;
                    break;
                }
                Err(kube::Error::Api(status)) if status.code == 409 => {
                    current = profiles.get(&name).await.map_err(kube_error(what()))?;
                }
                Err(error) => return Err(kube_error(what())(error)),
            }
        }
        if !done {
            return Err(ApproveError::Contended { path: what() });
        }
        revoked.insert(name, String::new());
    }
    let mut path =
        localhost::localhost_profile(namespace, workload.kind, &workload.name, container)
            .unwrap_or_default();
    if path.is_empty() {
        let _ = write!(
            path,
            "{} {}/{container}",
            workload.kind.as_str(),
            workload.name
        );
    }
    Ok(Approved {
        localhost_profile: path,
        object: format!("{namespace}/{name}"),
        sha256: String::new(),
        container_profiles: revoked,
        changes: String::new(),
    })
}
