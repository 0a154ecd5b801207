//! Writing what this node counted into the LocalhostProfiles'
//! RefusalReports: read the report, add this node's counts
//! (`refusal::status::merge`, bounded whatever the number of nodes), and
//! apply it under the resourceVersion read, so that another node's write
//! meanwhile makes this one read and merge again. A profile's first report
//! is created owned by the LocalhostProfile, so that it goes with it.
//!
//! The counts are not written into the LocalhostProfile itself: every
//! node's agent watches LocalhostProfiles to install them, so each write
//! there would be delivered to every node.
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::{
    Api, Client, Resource as _,
    api::{Patch, PatchParams, PostParams},
};
use serde_json::json;
use syscensus_api::{FIELD_MANAGER, LocalhostProfile, RefusalReport, RefusalReportSpec};

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

/// Whether another writer got there first (409: a conflict, or a report
/// another node created meanwhile).
fn lost_race(error: &kube::Error) -> bool {
    matches!(error, kube::Error::Api(status) if status.code == 409)
}

/// The first report of `object`, owned by its LocalhostProfile; `Gone`
/// when there is no such profile.
async fn create(
    client: &Client,
    object: &ProfileObject,
    deltas: &Deltas,
) -> Result<kube::Result<RefusalReport>, StatusFailure> {
    let profiles: Api<LocalhostProfile> = Api::namespaced(client.clone(), &object.namespace);
    let profile = profiles.get(&object.name).await.map_err(failure)?;
    let mut spec = RefusalReportSpec {
        localhost_profile: profile.spec.localhost_profile.clone(),
        ..Default::default()
    };
    merge(&mut spec, deltas);
    let mut report = RefusalReport::new(&object.name, spec);
    report.metadata = ObjectMeta {
        name: Some(object.name.clone()),
        namespace: Some(object.namespace.clone()),
        owner_references: Some(vec![OwnerReference {
            api_version: LocalhostProfile::api_version(&()).into_owned(),
            kind: LocalhostProfile::kind(&()).into_owned(),
            name: object.name.clone(),
            uid: profile.metadata.uid.clone().unwrap_or_default(),
            ..Default::default()
        }]),
        ..Default::default()
    };
    let reports: Api<RefusalReport> = Api::namespaced(client.clone(), &object.namespace);
    Ok(reports.create(&PostParams::default(), &report).await)
}

/// Adds `deltas` to the report of `object`.
async fn write_one(
    client: &Client,
    object: &ProfileObject,
    deltas: &Deltas,
) -> Result<(), StatusFailure> {
    let api: Api<RefusalReport> = Api::namespaced(client.clone(), &object.namespace);
    for _ in 0..ATTEMPTS {
        let Some(existing) = api.get_opt(&object.name).await.map_err(failure)? else {
            match create(client, object, deltas).await? {
                Ok(_) => return Ok(()),
                Err(error) if lost_race(&error) => continue,
                Err(error) => return Err(failure(error)),
            }
        };
        let mut spec = existing.spec.clone();
        merge(&mut spec, deltas);
        let patch = json!({
            "apiVersion": "syscensus.io/v1alpha1",
            "kind": "RefusalReport",
            "metadata": {
                "name": object.name,
                "namespace": object.namespace,
                "resourceVersion": existing.metadata.resource_version,
            },
            "spec": spec,
        });
        match api
            .patch(
                &object.name,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(&patch),
            )
            .await
        {
            Ok(_) => return Ok(()),
            // Another node wrote meanwhile: read and merge again.
            Err(error) if lost_race(&error) => continue,
            Err(error) => return Err(failure(error)),
        }
    }
    Err(StatusFailure::Other(format!(
        "the RefusalReport changed {ATTEMPTS} times while it was merged; tried again later"
    )))
}

/// Adds each object's deltas to its report, each on its own.
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
