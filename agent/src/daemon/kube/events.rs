//! Writing the Events the machine decided (`events.k8s.io/v1`): a create
//! per new Event, a merge patch of `series` per repeat, as client-go's
//! event recorder writes them. The note, reason and the rest are immutable
//! once created (the API server refuses to change them), so a series
//! carries the note of its first occurrence.
//!
//! kube's own event recorder is not used: it writes once per occurrence
//! (its series count is the number of writes), keeps no bound, and names
//! an Event after its object, which fails for object names near the
//! 253-character limit; here the machine decides how many writes and
//! with which count, and the names.
use k8s_openapi::{
    api::{
        core::v1::ObjectReference,
        events::v1::{Event, EventSeries},
    },
    apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta},
};
use kube::{
    Api, Client,
    api::{Patch, PatchParams, PostParams},
};
use serde_json::json;

use crate::daemon::machine::{
    EventFailure, EventWrite,
    events::{Occurrence, reporting_instance},
};

/// The Events' `reportingController`: a qualified name, as the API server
/// requires.
pub(super) const REPORTING_CONTROLLER: &str = "syscensus.io/agent";

/// The Event for `occurrence`.
fn event(
    name: &str,
    node: &str,
    occurrence: &Occurrence,
    first: jiff::Timestamp,
    series: Option<(u32, jiff::Timestamp)>,
) -> Event {
    let r = &occurrence.regarding;
    Event {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            namespace: Some(r.namespace.clone()),
            ..ObjectMeta::default()
        },
        event_time: Some(MicroTime(first)),
        action: Some(occurrence.reason.action().to_owned()),
        reason: Some(occurrence.reason.as_str().to_owned()),
        note: Some(occurrence.note.clone()),
        type_: Some(if occurrence.reason.is_warning() {
            "Warning".to_owned()
        } else {
            "Normal".to_owned()
        }),
        regarding: Some(ObjectReference {
            api_version: Some(r.kind.api_version().to_owned()),
            kind: Some(r.kind.as_str().to_owned()),
            namespace: Some(r.namespace.clone()),
            name: Some(r.name.clone()),
            uid: r.uid.clone(),
            ..ObjectReference::default()
        }),
        reporting_controller: Some(REPORTING_CONTROLLER.to_owned()),
        reporting_instance: Some(reporting_instance(node)),
        series: series.map(|(count, last)| EventSeries {
            count: i32::try_from(count).unwrap_or(i32::MAX),
            last_observed_time: MicroTime(last),
        }),
        ..Event::default()
    }
}

fn failure(error: kube::Error) -> EventFailure {
    match error {
        kube::Error::Api(status) if status.code == 404 => EventFailure::Gone,
        kube::Error::Api(status) if status.code == 409 => EventFailure::Exists,
        error => EventFailure::Other(error.to_string()),
    }
}

/// Carries out `writes`, each on its own: one failing stops no other.
pub(super) async fn write(
    client: &Client,
    node: &str,
    writes: Vec<EventWrite>,
) -> Vec<(String, Result<(), EventFailure>)> {
    let mut results = Vec::new();
    for write in writes {
        let result = match &write {
            EventWrite::Create {
                name,
                occurrence,
                first,
                series,
            } => {
                let api: Api<Event> =
                    Api::namespaced(client.clone(), &occurrence.regarding.namespace);
                api.create(
                    &PostParams::default(),
                    &event(name, node, occurrence, *first, *series),
                )
                .await
                .map(|_| ())
            }
            EventWrite::Series {
                name,
                namespace,
                count,
                last,
            } => {
                let api: Api<Event> = Api::namespaced(client.clone(), namespace);
                let patch =
                    json!({"series": {"count": count, "lastObservedTime": MicroTime(*last)}});
                api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await
                    .map(|_| ())
            }
        };
        let result = result.map_err(failure);
        if let Err(EventFailure::Other(error)) = &result {
            tracing::warn!(%error, event = write.name(), "cannot write an Event; will retry");
        }
        results.push((write.name().to_owned(), result));
    }
    results
}
