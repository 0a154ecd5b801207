//! The daemon's Kubernetes I/O: the watches (this node's Pods, every
//! ProfileRecording), workload lookups, ContainerProfile writes, status
//! writes, and the installer of LocalhostProfiles. What to do with them is
//! decided by the state machine (`daemon::machine`).
use std::{
    path::PathBuf,
    time::{Duration, Instant},
};

use k8s_openapi::api::core::v1::Pod;
use kube::{Api, Client, ResourceExt as _, runtime::reflector, runtime::watcher};
use syscensus_api::{ProfileRecording, WorkloadRef};
use tracing::debug;

use super::{
    contribution::{Contribution, Key},
    identity::PodView,
    machine::{
        Cluster, EventFailure, EventWrite, Input, Installation, ProfileObject, RecordingView,
        StatusFailure, StatusReport,
    },
};
use crate::refusal::status::Deltas;

mod events;
#[doc(hidden)]
pub mod harness;
pub mod installer;
mod refusals;
mod status;
pub(crate) mod watch;
pub mod workload;
mod writer;

/// How often LocalhostProfiles are installed or removed.
pub const INSTALL_INTERVAL: Duration = Duration::from_secs(1);

/// The connection to the cluster and what the daemon watches there.
pub struct Kube {
    client: Client,
    node: String,
    pods: reflector::Store<Pod>,
    recordings: reflector::Store<ProfileRecording>,
    resolver: workload::Resolver,
    status: status::StatusWriter,
    installer: Option<installer::Installer>,
    last_install: Option<Instant>,
}

impl std::fmt::Debug for Kube {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kube")
            .field("node", &self.node)
            .finish_non_exhaustive()
    }
}

impl Kube {
    /// Starts the watches (the Pods of `node`, every ProfileRecording, and
    /// with `kubelet_root` the LocalhostProfiles to install) in
    /// background tasks; they retry with backoff while the API server is
    /// unreachable.
    pub fn start(
        client: Client,
        node: String,
        kubelet_root: Option<PathBuf>,
    ) -> Result<Kube, installer::InstallError> {
        let pods = node_pods(&client, &node);
        let recordings = watch::watched(
            Api::<ProfileRecording>::all(client.clone()),
            watcher::Config::default(),
            "ProfileRecordings",
        );
        let installer = match &kubelet_root {
            Some(root) => Some(installer::Installer::start(
                client.clone(),
                node.clone(),
                root,
                pods.clone(),
            )?),
            None => None,
        };
        Ok(Kube {
            resolver: workload::Resolver::new(client.clone()),
            status: status::StatusWriter::new(client.clone(), node.clone()),
            client,
            node,
            pods,
            recordings,
            installer,
            last_install: None,
        })
    }

    /// Whether the first lists of Pods and ProfileRecordings arrived.
    pub fn ready(&self) -> bool {
        watch::is_ready(&self.pods) && watch::is_ready(&self.recordings)
    }

    /// What the watches hold now, for the state machine.
    pub fn cluster(&self) -> Cluster {
        Cluster {
            ready: self.ready(),
            pods: self.pods.state().iter().map(|p| PodView::of(p)).collect(),
            recordings: self
                .recordings
                .state()
                .iter()
                .map(|r| RecordingView {
                    namespace: r.namespace().unwrap_or_default(),
                    name: r.name_any(),
                    uid: r.uid(),
                    spec: r.spec.clone(),
                })
                .collect(),
        }
    }

    /// ProfileRecordings that record (not paused, valid).
    pub fn active_count(&self) -> usize {
        self.cluster().active().count()
    }

    /// The workloads of `pods`, by UID.
    pub async fn resolve(
        &mut self,
        pods: Vec<PodView>,
    ) -> Vec<(String, Result<WorkloadRef, String>)> {
        let mut out = Vec::new();
        for pod in pods {
            let answer = self
                .resolver
                .workload(&pod)
                .await
                .map_err(|e| e.to_string());
            out.push((pod.uid, answer));
        }
        out
    }

    /// Merges contributions into their ContainerProfiles, in order, up to
    /// the first failure.
    pub async fn write_profiles(&mut self, contributions: Vec<(Key, Contribution)>) -> Input {
        let mut written = Vec::new();
        let mut learned = Vec::new();
        for (key, contribution) in contributions {
            match writer::write(&self.client, &key, &self.node, &contribution).await {
                Ok(done) => {
                    if done.conflicts > 0 {
                        debug!(
                            profile = %key.object_name(),
                            conflicts = done.conflicts,
                            "merged again after other nodes wrote"
                        );
                    }
                    learned.extend(done.learned);
                    written.push((key, done.counted));
                }
                Err(error) => {
                    return Input::ProfilesWritten {
                        written,
                        failed: Some((key, error.to_string())),
                        learned,
                    };
                }
            }
        }
        Input::ProfilesWritten {
            written,
            failed: None,
            learned,
        }
    }

    /// Writes this node's part of the recordings' status where it changed.
    pub async fn report(&mut self, report: &StatusReport, kernel_drops: u64) {
        let recordings = self.recordings.state();
        self.status
            .update(&recordings, report, kernel_drops + report.lost)
            .await;
    }

    /// Installs and removes LocalhostProfiles, every second; returns what
    /// it installed and refused.
    pub async fn install(&mut self) -> Vec<Installation> {
        let Some(installer) = self.installer.as_mut() else {
            return Vec::new();
        };
        if self
            .last_install
            .is_some_and(|t| t.elapsed() < INSTALL_INTERVAL)
        {
            return Vec::new();
        }
        self.last_install = Some(Instant::now());
        installer.sync().await
    }

    /// Creates Events and updates their series.
    pub async fn write_events(
        &self,
        writes: Vec<EventWrite>,
    ) -> Vec<(String, Result<(), EventFailure>)> {
        events::write(&self.client, &self.node, writes).await
    }

    /// Adds what this node counted to the LocalhostProfiles'
    /// RefusalReports.
    pub async fn write_refusal_status(
        &self,
        writes: Vec<(ProfileObject, Deltas)>,
    ) -> Vec<(ProfileObject, Result<(), StatusFailure>)> {
        refusals::write(&self.client, writes).await
    }

    /// Status writes that failed.
    pub fn status_errors(&self) -> u64 {
        self.status.errors + self.installer.as_ref().map_or(0, |i| i.errors)
    }
}

/// The watched Pods of `node` (field selector `spec.nodeName`).
pub fn node_pods(client: &Client, node: &str) -> reflector::Store<Pod> {
    watch::watched(
        Api::<Pod>::all(client.clone()),
        watcher::Config::default().fields(&format!("spec.nodeName={node}")),
        "Pods",
    )
}
