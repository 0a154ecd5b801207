//! Writing what this node counted into the LocalhostProfiles' status of
//! refusals (`status.refused`): read the object, add this node's counts
//! (`refusal::status::merge`, bounded whatever the number of nodes), and
//! apply the status under the resourceVersion read, so that another
//! node's write meanwhile makes this one read and merge again.
use kube::{
    Api, Client,
    api::{Patch, PatchParams},
};
use serde_json::json;
use syscensus_api::{FIELD_MANAGER, LocalhostProfile};

use crate::{
    daemon::machine::{ProfileObject, StatusFailure},
    refusal::status::{Deltas, merge},
};

/// Reads and merges again at most this often when other nodes keep
/// writing the same object.
const ATTEMPTS: usize = 5;

fn failure(error: kube::Error) -> StatusFailure {
    match error {
        kube::Error::Api(status) if status.code == 404 => StatusFailure::Gone,
        error => StatusFailure::Other(error.to_string()),
    }
}

/// Adds `deltas` to the status of `object`.
async fn write_one(
    client: &Client,
    object: &ProfileObject,
    deltas: &Deltas,
) -> Result<(), StatusFailure> {
    let api: Api<LocalhostProfile> = Api::namespaced(client.clone(), &object.namespace);
    for _ in 0..ATTEMPTS {
        let existing = api.get(&object.name).await.map_err(failure)?;
        let mut status = existing.status.clone().unwrap_or_default();
        merge(&mut status, deltas);
        let patch = json!({
            "apiVersion": "syscensus.io/v1alpha1",
            "kind": "LocalhostProfile",
            "metadata": {
                "name": object.name,
                "namespace": object.namespace,
                "resourceVersion": existing.metadata.resource_version,
            },
            "status": status,
        });
        match api
            .patch_status(
                &object.name,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(&patch),
            )
            .await
        {
            Ok(_) => return Ok(()),
            // Another node wrote meanwhile: read and merge again.
            Err(kube::Error::Api(status)) if status.code == 409 => continue,
            Err(error) => return Err(failure(error)),
        }
    }
    Err(StatusFailure::Other(format!(
        "the LocalhostProfile changed {ATTEMPTS} times while it was merged; tried again later"
    )))
}

/// Adds each object's deltas to its status, each on its own.
pub(super) async fn write(
    client: &Client,
    writes: Vec<(ProfileObject, Deltas)>,
) -> Vec<(ProfileObject, Result<(), StatusFailure>)> {
    let mut out = Vec::new();
    for (object, deltas) in writes {
        let result = write_one(client, &object, &deltas).await;
        out.push((object, result));
    }
    out
}
