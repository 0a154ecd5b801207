//! The status of ProfileRecordings: each node's agent writes its own entry
//! of `status.nodes` (server-side apply under a field manager of its own,
//! so that nodes never overwrite each other), and the phase and conditions
//! that every node derives the same way from the spec.
use std::{
    collections::{BTreeMap, BTreeSet},
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

use super::{
    aggregate::{Contribution, Key},
    selection,
};

/// How often an unchanged status is rewritten (so `lastUpdate` shows the
/// agent is alive).
const HEARTBEAT: Duration = Duration::from_secs(60);

/// Writes this node's part of every recording's status.
pub struct StatusWriter {
    client: Client,
    node: String,
    /// What was last written, per recording, and when.
    written: BTreeMap<(String, String), (serde_json::Value, Instant)>,
    /// Status writes the API server refused or did not answer.
    pub errors: u64,
}

impl StatusWriter {
    pub fn new(client: Client, node: String) -> StatusWriter {
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

    /// Writes the status of every recording whose part changed.
    pub async fn update(
        &mut self,
        kernel_drops: u64,
        recordings: &[Arc<ProfileRecording>],
        contributions: &BTreeMap<Key, Contribution>,
        recording_now: &BTreeMap<(String, String), i64>,
        finished: &BTreeMap<(String, String), i64>,
    ) {
        for recording in recordings {
            let namespace = recording.namespace().unwrap_or_default();
            let name = recording.name_any();
            let id = (namespace.clone(), name.clone());
            let (phase, condition) = match selection::validate(&recording.spec) {
                Err(error) => (
                    Phase::Invalid,
                    ("False", "InvalidSelector", error.to_string()),
                ),
                Ok(()) if recording.spec.paused => {
                    (Phase::Paused, ("True", "Valid", String::new()))
                }
                Ok(()) => (Phase::Recording, ("True", "Valid", String::new())),
            };
            let mine: Vec<(&Key, &Contribution)> = contributions
                .iter()
                .filter(|(k, _)| k.namespace == namespace && k.recording == name)
                .collect();
            let mut workloads: BTreeMap<_, BTreeSet<String>> = BTreeMap::new();
            for (key, _) in &mine {
                workloads
                    .entry(key.workload.clone())
                    .or_default()
                    .insert(key.container.clone());
            }
            let syscalls: usize = mine.iter().map(|(_, c)| c.len()).sum();
            // Incomplete results, plus what the kernel could not record on
            // this node (full maps, lost events).
            let drops =
                mine.iter().filter(|(_, c)| !c.warnings.is_empty()).count() as u64 + kernel_drops;
            let entry = NodeRecording {
                node: self.node.clone(),
                recording_containers: recording_now.get(&id).copied().unwrap_or(0),
                recorded_containers: finished.get(&id).copied().unwrap_or(0),
                syscalls: syscalls as i64,
                drops: drops as i64,
                workloads: workloads
                    .into_iter()
                    .map(|(workload, containers)| RecordedWorkload {
                        workload,
                        containers: containers.into_iter().collect(),
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
            let body = json!({
                "phase": phase,
                "observedGeneration": recording.metadata.generation,
                "conditions": [condition],
                "nodes": [entry],
            });
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
