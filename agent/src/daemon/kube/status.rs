//! The status of ProfileRecordings: each node's agent writes its own entry
//! of `status.nodes` (server-side apply under a field manager of its own,
//! so that nodes never overwrite each other), and the phase and conditions
//! that every node derives the same way from the spec.
use std::{
    collections::BTreeMap,
    sync::Arc,
    time::{Duration, Instant},
};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{
    Api, Client, ResourceExt as _,
    api::{Patch, PatchParams},
};
use serde_json::json;
use syscensus_api::{NodeRecording, Phase, ProfileRecording, RecordedWorkload};
use tracing::debug;

use crate::daemon::{
    machine::{RecordingSummary, StatusReport},
    selection,
};

/// How often an unchanged status is rewritten (so `lastUpdate` shows the
/// agent is alive).
const HEARTBEAT: Duration = Duration::from_secs(60);

/// Writes this node's part of every recording's status.
pub(crate) struct StatusWriter {
    client: Client,
    node: String,
    /// What was last written, per recording, and when.
    written: BTreeMap<(String, String), (serde_json::Value, Instant)>,
    /// Status writes the API server refused or did not answer.
    pub(crate) errors: u64,
}

/// The status of `recording` as this node sees it (without `lastUpdate`):
/// the phase and `Valid` condition every node derives the same way from the
/// spec, and this node's entry. `kernel_drops`: what the kernel could not
/// record on this node (full maps, lost events).
fn status_body(
    node: &str,
    recording: &ProfileRecording,
    summary: Option<&RecordingSummary>,
    kernel_drops: u64,
) -> serde_json::Value {
    let (phase, condition) = match selection::validate(&recording.spec) {
        Err(error) => (
            Phase::Invalid,
            ("False", "InvalidSelector", error.to_string()),
        ),
        Ok(()) if recording.spec.paused => (Phase::Paused, ("True", "Valid", String::new())),
        Ok(()) => (Phase::Recording, ("True", "Valid", String::new())),
    };
    let empty = RecordingSummary::default();
    let summary = summary.unwrap_or(&empty);
    let entry = NodeRecording {
        node: node.to_owned(),
        recording_containers: summary.recording_containers,
        recorded_containers: summary.recorded_containers,
        syscalls: summary.syscalls,
        // Incomplete results, plus what the kernel could not record.
        drops: summary.incomplete + kernel_drops as i64,
        workloads: summary
            .workloads
            .iter()
            .map(|(workload, containers)| RecordedWorkload {
                workload: workload.clone(),
                containers: containers.iter().cloned().collect(),
            })
            .collect(),
        last_update: None,
    };
    let transition = recording
        .metadata
        .creation_timestamp
        .clone()
        .unwrap_or(Time(jiff::Timestamp::UNIX_EPOCH));
    let condition = Condition {
        type_: "Valid".into(),
        status: condition.0.into(),
        reason: condition.1.into(),
        message: condition.2,
        last_transition_time: transition,
        observed_generation: recording.metadata.generation,
    };
    json!({
        "phase": phase,
        "observedGeneration": recording.metadata.generation,
        "conditions": [condition],
        "nodes": [entry],
    })
}

impl StatusWriter {
    pub(crate) fn new(client: Client, node: String) -> StatusWriter {
        StatusWriter {
            client,
            node,
            written: BTreeMap::new(),
            errors: 0,
        }
    }

    fn field_manager(&self) -> String {
        format!("syscensus-node-{}", self.node)
    }

    /// Writes the status of every recording whose part changed, or whose
    /// heartbeat is due.
    pub(crate) async fn update(
        &mut self,
        recordings: &[Arc<ProfileRecording>],
        report: &StatusReport,
        kernel_drops: u64,
    ) {
        for recording in recordings {
            let namespace = recording.namespace().unwrap_or_default();
            let name = recording.name_any();
            let id = (namespace.clone(), name.clone());
            let body = status_body(
                &self.node,
                recording,
                report.recordings.get(&id),
                kernel_drops,
            );
            let due = match self.written.get(&id) {
                Some((last, at)) => *last != body || at.elapsed() > HEARTBEAT,
                None => true,
            };
            if !due {
                continue;
            }
            let mut status = body.clone();
            status["nodes"][0]["lastUpdate"] = json!(jiff::Timestamp::now());
            let patch = json!({
                "apiVersion": "syscensus.io/v1alpha1",
                "kind": "ProfileRecording",
                "metadata": { "name": name, "namespace": namespace },
                "status": status,
            });
            let api: Api<ProfileRecording> = Api::namespaced(self.client.clone(), &namespace);
            let params = PatchParams::apply(&self.field_manager()).force();
            match api
                .patch_status(&name, &params, &Patch::Apply(&patch))
                .await
            {
                Ok(_) => {
                    self.written.insert(id, (body, Instant::now()));
                }
                Err(error) => {
                    self.errors += 1;
                    debug!(%error, recording = %name, "cannot write the status; will retry")
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use syscensus_api::{ProfileRecordingSpec, WorkloadKind, WorkloadRef};

    use super::*;

    #[test]
    fn the_body_counts_this_node_and_says_the_phase() {
        let spec = ProfileRecordingSpec {
            include_exec_sessions: false,
            pod_selector: Default::default(),
            containers: Vec::new(),
            include_init_containers: true,
            base_set: None,
            paused: false,
        };
        let mut recording = ProfileRecording::new("rec", spec);
        recording.metadata.generation = Some(3);
        let summary = RecordingSummary {
            recording_containers: 2,
            recorded_containers: 5,
            syscalls: 40,
            incomplete: 1,
            workloads: [(
                WorkloadRef {
                    kind: WorkloadKind::Deployment,
                    name: "web".into(),
                },
                ["app".to_owned()].into(),
            )]
            .into(),
        };
        let body = status_body("node-a", &recording, Some(&summary), 2);
        assert_eq!(body["phase"], "Recording");
        assert_eq!(body["observedGeneration"], 3);
        let node = &body["nodes"][0];
        assert_eq!(node["node"], "node-a");
        assert_eq!(node["recordingContainers"], 2);
        assert_eq!(node["recordedContainers"], 5);
        assert_eq!(node["drops"], 3);
        assert_eq!(node["workloads"][0]["containers"][0], "app");
        recording.spec.paused = true;
        assert_eq!(
            status_body("node-a", &recording, None, 0)["phase"],
            "Paused"
        );
    }
}
