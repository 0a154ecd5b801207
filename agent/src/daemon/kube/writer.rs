//! Writing a ContainerProfile: read, merge, then create (if absent) or
//! server-side apply with the read resourceVersion as a precondition; on a
//! conflict (another node wrote meanwhile) read and merge again.
use kube::{
    Api, Client,
    api::{Patch, PatchParams, PostParams},
};
use serde_json::json;
use syscensus_api::{ContainerProfile, FIELD_MANAGER, annotations, labels};

use crate::daemon::{
    contribution::{Contribution, Key, merge},
    machine::Learned,
};

/// A ContainerProfile could not be written.
#[derive(Debug, thiserror::Error)]
pub(crate) enum WriteError {
    #[error(transparent)]
    Api(#[from] kube::Error),
    #[error("other writers kept changing it ({ATTEMPTS} attempts)")]
    Contended,
}

/// Whether two specs differ only in when they were last seen.
fn same_but_last_seen(
    a: &syscensus_api::ContainerProfileSpec,
    b: &syscensus_api::ContainerProfileSpec,
) -> bool {
    let strip = |s: &syscensus_api::ContainerProfileSpec| {
        let mut s = s.clone();
        s.last_seen = s.first_seen.clone();
        for n in &mut s.nodes {
            n.last_seen = n.first_seen.clone();
        }
        s
    };
    strip(a) == strip(b)
}

/// Attempts before giving up until the next flush.
const ATTEMPTS: usize = 8;

/// The labels of a ContainerProfile.
fn labels_of(key: &Key) -> std::collections::BTreeMap<String, String> {
    [
        (
            labels::RECORDING,
            syscensus_api::label_value(&key.recording),
        ),
        (
            labels::WORKLOAD_KIND,
            key.workload.kind.as_str().to_ascii_lowercase(),
        ),
        (
            labels::WORKLOAD_NAME,
            syscensus_api::label_value(&key.workload.name),
        ),
        (labels::CONTAINER, key.container.clone()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

fn is_conflict(error: &kube::Error) -> bool {
    matches!(error, kube::Error::Api(status) if status.code == 409)
}

/// What `spec`, written over `existing`, added to it.
fn learned(
    key: &Key,
    existing: &ContainerProfile,
    spec: &syscensus_api::ContainerProfileSpec,
) -> Learned {
    let added = spec
        .syscalls
        .iter()
        .filter_map(|(arch, names)| {
            let known = existing.spec.syscalls.get(arch);
            let new: Vec<String> = names
                .iter()
                .filter(|n| known.is_none_or(|k| !k.contains(n)))
                .cloned()
                .collect();
            (!new.is_empty()).then(|| (arch.clone(), new))
        })
        .collect();
    Learned {
        key: key.clone(),
        uid: existing.metadata.uid.clone(),
        added,
        quiet_since: Some(
            existing
                .spec
                .last_new_syscall
                .as_ref()
                .unwrap_or(&existing.spec.first_seen)
                .0,
        ),
    }
}

/// Writes this node's contribution to the ContainerProfile of `key`; says
/// what it added to the profile when it existed.
pub(crate) async fn write(
    client: &Client,
    key: &Key,
    node: &str,
    ours: &Contribution,
) -> Result<Option<Learned>, WriteError> {
    let api: Api<ContainerProfile> = Api::namespaced(client.clone(), &key.namespace);
    let name = key.object_name();
    for _ in 0..ATTEMPTS {
        let existing = api.get_opt(&name).await?;
        let spec = merge(existing.as_ref().map(|e| &e.spec), key, node, ours);
        let result = match &existing {
            None => {
                let mut object = ContainerProfile::new(&name, spec);
                object.metadata.namespace = Some(key.namespace.clone());
                object.metadata.labels = Some(labels_of(key));
                let params = PostParams {
                    field_manager: Some(FIELD_MANAGER.to_owned()),
                    ..PostParams::default()
                };
                api.create(&params, &object).await.map(|_| None)
            }
            Some(existing) => {
                if same_but_last_seen(&existing.spec, &spec) {
                    return Ok(None);
                }
                // An approved profile says whether its spec is still the
                // one approved: `kubectl get cprof` shows it, and
                // `-l syscensus.io/approval=changed` lists what awaits
                // review.
                let mut labels = labels_of(key);
                let approved = existing
                    .metadata
                    .annotations
                    .as_ref()
                    .and_then(|a| a.get(annotations::APPROVED_SHA256));
                if let Some(label) =
                    crate::localhost::approval_label(&spec, approved.map(String::as_str))
                {
                    labels.insert(labels::APPROVAL.to_owned(), label.to_owned());
                }
                let patch = json!({
                    "apiVersion": "syscensus.io/v1alpha1",
                    "kind": "ContainerProfile",
                    "metadata": {
                        "name": name,
                        "namespace": key.namespace,
                        "resourceVersion": existing.metadata.resource_version,
                        "labels": labels,
                    },
                    "spec": spec,
                });
                api.patch(
                    &name,
                    &PatchParams::apply(FIELD_MANAGER).force(),
                    &Patch::Apply(&patch),
                )
                .await
                .map(|_| Some(learned(key, existing, &spec)))
            }
        };
        match result {
            Ok(learned) => return Ok(learned),
            // AlreadyExists or a stale resourceVersion: another node wrote
            // meanwhile; read and merge again.
            Err(error) if is_conflict(&error) => continue,
            Err(error) => return Err(error.into()),
        }
    }
    Err(WriteError::Contended)
}
