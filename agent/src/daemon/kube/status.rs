//! What the agents report of the recordings, written only on change:
//!
//! - a ProfileRecording's status (phase, the `Valid` condition, the
//!   generation they describe) depends on its spec alone, so every node
//!   derives the same; a node writes it only when the watched status
//!   differs, after a delay of its own (0-5 s, from its name) during which
//!   another node's write usually arrives and makes its own unneeded. So a
//!   change of spec costs about one write, not one per node, and nothing
//!   is rewritten while nothing changes;
//! - what this node records of each recording goes into the node's Lease
//!   (named after the node, in the agent's namespace), which no agent
//!   watches, and is written when it changes: no heartbeat (the
//!   DaemonSet's readiness tells whether an agent is alive). The Lease is
//!   owned by the node's Node, so that a deleted node's Lease is
//!   garbage-collected; when the Node cannot be read (RBAC, or no Node of
//!   that name) it is written without an owner.
use std::{
    collections::BTreeMap,
    sync::Arc,
    time::{Duration, Instant},
};

use k8s_openapi::{
    api::{coordination::v1::Lease, core::v1::Node},
    apimachinery::pkg::apis::meta::v1::{Condition, OwnerReference, Time},
};
use kube::{
    Api, Client, ResourceExt as _,
    api::{Patch, PatchParams},
};
use serde_json::json;
use syscensus_api::{
    FIELD_MANAGER, NodeRecording, NodeRecordings, Phase, ProfileRecording, ProfileRecordingStatus,
    RecordedWorkload, annotations,
};
use tracing::debug;

use crate::daemon::{machine::StatusReport, selection};

/// The longest a node waits, once it sees a status that differs from the
/// spec, before it writes it (its share of this window comes from its name).
const STAGGER: Duration = Duration::from_secs(5);

/// How long a written status may take to come back through the watch
/// before it is written again.
const REWRITE_AFTER: Duration = Duration::from_secs(30);

/// Writes the recordings' status where it differs from their spec, and
/// this node's Lease where it changed.
pub(crate) struct StatusWriter {
    client: Client,
    node: String,
    /// The agent's namespace, where the node's Lease lives.
    namespace: String,
    stagger: Duration,
    /// Since when each recording's status has differed from its spec.
    differs_since: BTreeMap<(String, String), Instant>,
    /// The status last written, per recording, and when.
    written: BTreeMap<(String, String), (ProfileRecordingStatus, Instant)>,
    /// The Lease's annotation as last written.
    lease: Option<String>,
    /// The node's Node as the Lease's owner: `None` until it was read, or
    /// found not to be readable (then `Some(None)`).
    owner: Option<Option<OwnerReference>>,
    /// Whether the Lease's missing owner was logged.
    owner_logged: bool,
    /// Status and Lease writes the API server refused or did not answer.
    pub(crate) errors: u64,
}

/// The status every node derives from `recording`'s spec.
pub(crate) fn derived(recording: &ProfileRecording) -> ProfileRecordingStatus {
    let (phase, condition) = match selection::validate(&recording.spec) {
        Err(error) => (
            Phase::Invalid,
            ("False", "InvalidSelector", error.to_string()),
        ),
        Ok(()) if recording.spec.paused => (Phase::Paused, ("True", "Valid", String::new())),
        Ok(()) => (Phase::Recording, ("True", "Valid", String::new())),
    };
    let transition = recording
        .metadata
        .creation_timestamp
        .clone()
        .unwrap_or(Time(jiff::Timestamp::UNIX_EPOCH));
    ProfileRecordingStatus {
        phase: Some(phase),
        conditions: vec![Condition {
            type_: "Valid".into(),
            status: condition.0.into(),
            reason: condition.1.into(),
            message: condition.2,
            last_transition_time: transition,
            observed_generation: recording.metadata.generation,
        }],
        observed_generation: recording.metadata.generation,
    }
}

/// Whether `status` says what `want` says (times aside: another node may
/// have written the same transition with another precision).
fn same(status: Option<&ProfileRecordingStatus>, want: &ProfileRecordingStatus) -> bool {
    let Some(status) = status else {
        return false;
    };
    let key = |c: &Condition| {
        (
            c.type_.clone(),
            c.status.clone(),
            c.reason.clone(),
            c.message.clone(),
            c.observed_generation,
        )
    };
    status.phase == want.phase
        && status.observed_generation == want.observed_generation
        && status.conditions.iter().map(key).collect::<Vec<_>>()
            == want.conditions.iter().map(key).collect::<Vec<_>>()
}

/// This node's delay in the [`STAGGER`] window, from its name: spread over
/// the nodes, the same across restarts.
fn stagger_of(node: &str) -> Duration {
    let digest = crate::localhost::sha256_hex(node.as_bytes());
    let n = u64::from_str_radix(&digest[..8], 16).unwrap_or(0);
    Duration::from_millis(n % STAGGER.as_millis() as u64)
}

/// The Lease annotation: what this node records, per recording.
fn node_recordings(node: &str, report: &StatusReport, kernel_drops: u64) -> NodeRecordings {
    NodeRecordings {
        node: node.to_owned(),
        kernel_drops: kernel_drops as i64,
        recordings: report
            .recordings
            .iter()
            .map(|((namespace, recording), summary)| NodeRecording {
                namespace: namespace.clone(),
                recording: recording.clone(),
                recording_containers: summary.recording_containers,
                recorded_containers: summary.recorded_containers,
                syscalls: summary.syscalls,
                drops: summary.incomplete,
                workloads: summary
                    .workloads
                    .iter()
                    .map(|(workload, containers)| RecordedWorkload {
                        workload: workload.clone(),
                        containers: containers.iter().cloned().collect(),
                    })
                    .collect(),
            })
            .collect(),
    }
}

impl StatusWriter {
    pub(crate) fn new(client: Client, node: String) -> StatusWriter {
        StatusWriter {
            namespace: client.default_namespace().to_owned(),
            stagger: stagger_of(&node),
            client,
            node,
            differs_since: BTreeMap::new(),
            written: BTreeMap::new(),
            lease: None,
            owner: None,
            owner_logged: false,
            errors: 0,
        }
    }

    /// Writes the status of every recording whose watched status differs
    /// from its spec (once this node's delay has passed), and the node's
    /// Lease if what it records changed.
    pub(crate) async fn update(
        &mut self,
        recordings: &[Arc<ProfileRecording>],
        report: &StatusReport,
        kernel_drops: u64,
    ) {
        let now = Instant::now();
        let present: Vec<(String, String)> = recordings
            .iter()
            .map(|r| (r.namespace().unwrap_or_default(), r.name_any()))
            .collect();
        self.differs_since.retain(|id, _| present.contains(id));
        self.written.retain(|id, _| present.contains(id));
        for (recording, id) in recordings.iter().zip(present) {
            let want = derived(recording);
            if same(recording.status.as_ref(), &want) {
                self.differs_since.remove(&id);
                continue;
            }
            let since = *self.differs_since.entry(id.clone()).or_insert(now);
            if now.duration_since(since) < self.stagger {
                continue;
            }
            if self
                .written
                .get(&id)
                .is_some_and(|(last, at)| *last == want && at.elapsed() < REWRITE_AFTER)
            {
                continue;
            }
            let (namespace, name) = &id;
            let patch = json!({
                "apiVersion": "syscensus.io/v1alpha1",
                "kind": "ProfileRecording",
                "metadata": { "name": name, "namespace": namespace },
                "status": want,
            });
            let api: Api<ProfileRecording> = Api::namespaced(self.client.clone(), namespace);
            let params = PatchParams::apply(FIELD_MANAGER).force();
            match api.patch_status(name, &params, &Patch::Apply(&patch)).await {
                Ok(_) => {
                    self.written.insert(id, (want, Instant::now()));
                }
                Err(error) => {
                    self.errors += 1;
                    debug!(%error, recording = %name, "cannot write the status; will retry");
                }
            }
        }
        self.write_lease(report, kernel_drops).await;
    }

    /// Writes the node's Lease when what it records changed.
    async fn write_lease(&mut self, report: &StatusReport, kernel_drops: u64) {
        let body = node_recordings(&self.node, report, kernel_drops);
        let Ok(text) = serde_json::to_string(&body) else {
            return;
        };
        let same = self.lease.as_deref() == Some(text.as_str());
        if same && self.owner.is_some() {
            return;
        }
        let owner = self.owner().await;
        // Written without its owner after a failure to read the Node: written
        // again once the Node is read.
        if same && owner.is_none() {
            return;
        }
        let mut patch = json!({
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {
                "name": self.node,
                "namespace": self.namespace,
                "annotations": { annotations::NODE_RECORDINGS: text },
            },
            "spec": { "holderIdentity": self.node },
        });
        if let Some(owner) = owner {
            patch["metadata"]["ownerReferences"] = json!([owner]);
        }
        let api: Api<Lease> = Api::namespaced(self.client.clone(), &self.namespace);
        let params = PatchParams::apply(FIELD_MANAGER).force();
        match api.patch(&self.node, &params, &Patch::Apply(&patch)).await {
            Ok(_) => self.lease = Some(text),
            Err(error) => {
                self.errors += 1;
                debug!(%error, lease = %self.node, "cannot write the node's Lease; will retry");
            }
        }
    }

    /// The node's Node as an owner, read once. A Node that is absent, has
    /// no uid, or may not be read (403) is not read again; after another
    /// failure it is read again at the next Lease write. The first time
    /// there is none is logged (debug).
    async fn owner(&mut self) -> Option<OwnerReference> {
        if let Some(owner) = &self.owner {
            return owner.clone();
        }
        let (owner, settled, why) = match Api::<Node>::all(self.client.clone())
            .get_opt(&self.node)
            .await
        {
            Ok(Some(node)) => match node.metadata.uid {
                Some(uid) => (
                    Some(OwnerReference {
                        api_version: "v1".into(),
                        kind: "Node".into(),
                        name: self.node.clone(),
                        uid,
                        ..OwnerReference::default()
                    }),
                    true,
                    String::new(),
                ),
                None => (None, true, "the Node has no uid".to_owned()),
            },
            Ok(None) => (None, true, "no Node of this name".to_owned()),
            Err(kube::Error::Api(status)) if status.code == 403 => {
                (None, true, kube::Error::Api(status).to_string())
            }
            Err(error) => (None, false, error.to_string()),
        };
        if owner.is_none() && !std::mem::replace(&mut self.owner_logged, true) {
            debug!(
                node = %self.node,
                %why,
                "the node's Lease is written without its Node as owner: it stays if the node is deleted"
            );
        }
        if settled {
            self.owner = Some(owner.clone());
        }
        owner
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use syscensus_api::{ProfileRecordingSpec, WorkloadKind, WorkloadRef};

    use super::*;
    use crate::daemon::machine::RecordingSummary;

    fn recording() -> ProfileRecording {
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
        recording
    }

    #[test]
    fn the_status_comes_from_the_spec_alone() {
        let mut recording = recording();
        let want = derived(&recording);
        assert_eq!(want.phase, Some(Phase::Recording));
        assert_eq!(want.observed_generation, Some(3));
        assert!(!same(None, &want));
        recording.status = Some(want.clone());
        assert!(same(recording.status.as_ref(), &derived(&recording)));
        // A new generation, paused: the status no longer says it.
        recording.metadata.generation = Some(4);
        recording.spec.paused = true;
        let paused = derived(&recording);
        assert_eq!(paused.phase, Some(Phase::Paused));
        assert!(!same(recording.status.as_ref(), &paused));
    }

    #[test]
    fn nodes_wait_for_each_other_by_their_names() {
        let delays: std::collections::BTreeSet<Duration> =
            (0..100).map(|i| stagger_of(&format!("node-{i}"))).collect();
        assert!(delays.iter().all(|d| *d < STAGGER));
        assert!(delays.len() > 90, "spread over the window: {delays:?}");
        assert_eq!(stagger_of("node-a"), stagger_of("node-a"));
    }

    #[test]
    fn the_lease_counts_this_node() {
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
        let report = StatusReport {
            recordings: [(("shop".to_owned(), "rec".to_owned()), summary)].into(),
            lost: 0,
        };
        let body = serde_json::to_value(node_recordings("node-a", &report, 2)).unwrap();
        assert_eq!(body["node"], "node-a");
        assert_eq!(body["kernelDrops"], 2);
        let entry = &body["recordings"][0];
        assert_eq!(entry["namespace"], "shop");
        assert_eq!(entry["recording"], "rec");
        assert_eq!(entry["recordingContainers"], 2);
        assert_eq!(entry["recordedContainers"], 5);
        assert_eq!(entry["drops"], 1);
        assert_eq!(entry["workloads"][0]["containers"][0], "app");
    }

    fn report() -> StatusReport {
        StatusReport {
            recordings: [(
                ("shop".to_owned(), "rec".to_owned()),
                RecordingSummary {
                    recording_containers: 1,
                    ..RecordingSummary::default()
                },
            )]
            .into(),
            lost: 0,
        }
    }

    /// The Lease is owned by the node's Node (so that the garbage
    /// collector deletes a deleted node's Lease), read with a get; written
    /// once, not again while nothing changed.
    #[tokio::test]
    async fn the_lease_is_owned_by_the_node() {
        use syscensus_fake_apiserver::{FakeApiServer, Gvr};
        let server = FakeApiServer::start();
        let node = server
            .create(
                &Gvr::new("", "v1", "nodes"),
                None,
                json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "node-a"}}),
            )
            .unwrap();
        let mut writer = StatusWriter::new(server.client(), "node-a".to_owned());
        writer.update(&[], &report(), 0).await;
        let lease = server
            .get(
                &Gvr::new("coordination.k8s.io", "v1", "leases"),
                Some("default"),
                "node-a",
            )
            .unwrap();
        let owners = &lease["metadata"]["ownerReferences"];
        assert_eq!(owners.as_array().map(Vec::len), Some(1), "{lease}");
        assert_eq!(owners[0]["kind"], "Node");
        assert_eq!(owners[0]["apiVersion"], "v1");
        assert_eq!(owners[0]["name"], "node-a");
        assert_eq!(owners[0]["uid"], node["metadata"]["uid"]);
        assert_eq!(writer.errors, 0);
        server.clear_requests();
        writer.update(&[], &report(), 0).await;
        assert!(server.requests().is_empty(), "{:?}", server.requests());
    }

    /// Without a Node to own it (or one the agent may not read), the Lease
    /// is written without an owner, and the Node is not asked for again.
    #[tokio::test]
    async fn the_lease_is_written_without_a_node() {
        use syscensus_fake_apiserver::{FakeApiServer, Gvr};
        let server = FakeApiServer::start();
        let mut writer = StatusWriter::new(server.client(), "node-b".to_owned());
        writer.update(&[], &report(), 0).await;
        let lease = server
            .get(
                &Gvr::new("coordination.k8s.io", "v1", "leases"),
                Some("default"),
                "node-b",
            )
            .unwrap();
        assert!(lease["metadata"]["ownerReferences"].is_null(), "{lease}");
        assert_eq!(writer.errors, 0);
        let mut changed = report();
        changed
            .recordings
            .values_mut()
            .for_each(|s| s.recorded_containers = 1);
        server.clear_requests();
        writer.update(&[], &changed, 0).await;
        let paths: Vec<String> = server.requests().iter().map(|r| r.path.clone()).collect();
        assert_eq!(
            paths,
            ["/apis/coordination.k8s.io/v1/namespaces/default/leases/node-b"],
            "one write, no second read of the Node"
        );
    }
}
