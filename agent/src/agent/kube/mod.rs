//! The Kubernetes side of the agent: which of this node's containers the
//! ProfileRecordings select, and the results in the cluster.
//!
//! The agent watches the Pods of its node (field selector
//! `spec.nodeName`) and every ProfileRecording. A container the kernel
//! marked is kept when a recording selects its Pod (by labels) and its name;
//! it is dropped when none does, or when its Pod stays unknown. What each
//! kept container does is merged per (recording, workload, container) and
//! written as a ContainerProfile: read, merged with what other nodes wrote,
//! and applied under one field manager with the object's resourceVersion as
//! a precondition, so that two nodes writing at once never lose a syscall.
//! While the API server is unreachable everything is kept in memory and
//! written when it returns.
use std::{
    collections::{BTreeMap, HashMap},
    sync::Arc,
    time::{Duration, Instant},
};

use futures::StreamExt as _;
use k8s_openapi::api::core::v1::Pod;
use kube::{
    Api, Client, ResourceExt as _,
    runtime::{WatchStreamExt as _, reflector, watcher},
};
use syscensus_api::{ProfileRecording, WorkloadRef};
use tracing::{debug, info, warn};

use super::node::{ContainerView, Finished, NodeError, NodeRecorder};
use crate::{
    basesets,
    recording::{ContainerRecording, PodRef},
};

pub mod aggregate;
pub mod installer;
pub mod selection;
mod status;
pub mod workload;
mod writer;

use aggregate::{Contribution, Key};

/// How often approved profiles are installed or removed.
const INSTALL_INTERVAL: Duration = Duration::from_secs(1);

/// How long a container may wait for its Pod to appear in the watch before
/// it is dropped.
const POD_TIMEOUT: Duration = Duration::from_secs(60);

/// Settings of the Kubernetes side.
#[derive(Clone, Debug)]
pub struct KubeOptions {
    pub node: String,
    /// How often changed results are written to the cluster.
    pub flush_interval: Duration,
    /// How often running containers' progress is merged.
    pub poll_interval: Duration,
    /// The kubelet's root directory, where approved profiles are installed
    /// (`<root>/seccomp/syscensus`); none: nothing is installed.
    pub kubelet_root: Option<std::path::PathBuf>,
    /// Where results not yet written to the cluster are kept across
    /// restarts.
    pub state: Option<super::state::StateDir>,
}

/// What the Kubernetes side keeps across restarts (`kube.json` in the state
/// directory): results not yet written to the cluster, and containers that
/// ended before they could be decided.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct Checkpoint {
    contributions: Vec<(Key, Contribution)>,
    undecided: Vec<Finished>,
}

/// The file of the Kubernetes side's checkpoint.
const CHECKPOINT: &str = "kube.json";

/// A container's Pod and identity, once known.
#[derive(Clone, Debug)]
struct Chosen {
    keys: Vec<Key>,
    pod: PodRef,
    pod_name: String,
    container: String,
    init: bool,
    last_merge: Option<Instant>,
}

/// The Kubernetes side's state.
pub struct KubeSide {
    client: Client,
    options: KubeOptions,
    pods: reflector::Store<Pod>,
    recordings: reflector::Store<ProfileRecording>,
    resolver: workload::Resolver,
    /// Decided containers, by cgroup id.
    chosen: HashMap<u64, Chosen>,
    /// Undecided containers, with when they were first seen.
    waiting: HashMap<u64, Instant>,
    /// Containers that ended before they were decided, with when.
    undecided: Vec<(Finished, Instant)>,
    /// The checkpoint last written, and when.
    checkpointed: String,
    last_checkpoint: Instant,
    /// No decision that needs the API server before this, after it failed.
    decide_after: Option<Instant>,
    decide_backoff: Duration,
    contributions: BTreeMap<Key, Contribution>,
    /// Recordings' names whose containers finished (for the status).
    finished_containers: BTreeMap<(String, String), i64>,
    last_flush: Instant,
    backoff: Duration,
    status: status::StatusWriter,
    installer: Option<installer::Installer>,
    last_install: Instant,
    /// API errors since start, for the metrics.
    pub api_errors: u64,
}

impl std::fmt::Debug for KubeSide {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeSide")
            .field("node", &self.options.node)
            .field("chosen", &self.chosen.len())
            .finish_non_exhaustive()
    }
}

/// The labels of a Pod.
fn labels_of(pod: &Pod) -> BTreeMap<String, String> {
    pod.metadata.labels.clone().unwrap_or_default()
}

/// The container named by runtime id `id` in a Pod's status: its name and
/// whether it is an init container.
fn container_in_status(pod: &Pod, id: &str) -> Option<(String, bool)> {
    let status = pod.status.as_ref()?;
    let has = |cid: &Option<String>| {
        cid.as_deref()
            .and_then(|c| c.split_once("://").map(|(_, rest)| rest))
            .is_some_and(|c| c == id)
    };
    for (statuses, init) in [
        (&status.container_statuses, false),
        (&status.init_container_statuses, true),
    ] {
        for s in statuses.iter().flatten() {
            let last = s
                .last_state
                .as_ref()
                .and_then(|l| l.terminated.as_ref())
                .map(|t| t.container_id.clone());
            let current = s.state.as_ref().and_then(|st| {
                st.running
                    .as_ref()
                    .map(|_| s.container_id.clone())
                    .or_else(|| st.terminated.as_ref().map(|t| t.container_id.clone()))
            });
            if has(&s.container_id)
                || last.as_ref().is_some_and(has)
                || current.as_ref().is_some_and(has)
            {
                return Some((s.name.clone(), init));
            }
        }
    }
    None
}

/// Whether a Pod's spec has an init container of that name.
fn is_init_container(pod: &Pod, name: &str) -> bool {
    pod.spec
        .as_ref()
        .and_then(|s| s.init_containers.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.name == name))
}

impl KubeSide {
    /// Starts the watches (Pods of this node, every ProfileRecording) in
    /// background tasks; they retry with backoff while the API server is
    /// unreachable.
    pub fn start(
        client: Client,
        options: KubeOptions,
    ) -> Result<KubeSide, installer::InstallError> {
        let (pods, pod_writer) = reflector::store::<Pod>();
        let pod_api: Api<Pod> = Api::all(client.clone());
        let config = watcher::Config::default().fields(&format!("spec.nodeName={}", options.node));
        let pod_stream = watcher(pod_api, config)
            .default_backoff()
            .reflect(pod_writer)
            .applied_objects();
        tokio::spawn(async move {
            let mut stream = std::pin::pin!(pod_stream);
            while let Some(event) = stream.next().await {
                if let Err(error) = event {
                    warn!(%error, "watching Pods");
                }
            }
        });
        let (recordings, recording_writer) = reflector::store::<ProfileRecording>();
        let recording_api: Api<ProfileRecording> = Api::all(client.clone());
        let recording_stream = watcher(recording_api, watcher::Config::default())
            .default_backoff()
            .reflect(recording_writer)
            .applied_objects();
        tokio::spawn(async move {
            let mut stream = std::pin::pin!(recording_stream);
            while let Some(event) = stream.next().await {
                if let Err(error) = event {
                    warn!(%error, "watching ProfileRecordings");
                }
            }
        });
        let installer = match &options.kubelet_root {
            Some(root) => Some(installer::Installer::start(
                client.clone(),
                options.node.clone(),
                root,
            )?),
            None => None,
        };
        let mut contributions = BTreeMap::new();
        let mut undecided = Vec::new();
        if let Some(text) = options.state.as_ref().and_then(|s| s.read_file(CHECKPOINT)) {
            match serde_json::from_str::<Checkpoint>(&text) {
                Ok(checkpoint) => {
                    for (key, mut contribution) in checkpoint.contributions {
                        // Written or not, write again: the merge is idempotent.
                        contribution.dirty = true;
                        contributions.insert(key, contribution);
                    }
                    undecided = checkpoint
                        .undecided
                        .into_iter()
                        .map(|f| (f, Instant::now()))
                        .collect();
                    info!(
                        results = contributions.len(),
                        waiting = undecided.len(),
                        "carrying on with the results kept before the restart"
                    );
                }
                Err(error) => warn!(%error, "unreadable checkpoint ignored"),
            }
        }
        Ok(KubeSide {
            installer,
            last_install: Instant::now() - INSTALL_INTERVAL,
            resolver: workload::Resolver::new(client.clone()),
            status: status::StatusWriter::new(client.clone(), options.node.clone()),
            client,
            options,
            pods,
            recordings,
            chosen: HashMap::new(),
            waiting: HashMap::new(),
            undecided,
            decide_after: None,
            decide_backoff: Duration::ZERO,
            contributions,
            checkpointed: String::new(),
            last_checkpoint: Instant::now(),
            finished_containers: BTreeMap::new(),
            last_flush: Instant::now(),
            backoff: Duration::ZERO,
            api_errors: 0,
        })
    }

    /// Whether the first lists arrived.
    pub fn ready(&self) -> bool {
        use futures::FutureExt as _;
        let ready =
            |r: Option<Result<(), reflector::store::WriterDropped>>| matches!(r, Some(Ok(())));
        ready(self.pods.wait_until_ready().now_or_never())
            && ready(self.recordings.wait_until_ready().now_or_never())
    }

    /// Recordings that are not paused and whose selector is valid.
    fn active_recordings(&self) -> Vec<Arc<ProfileRecording>> {
        self.recordings
            .state()
            .into_iter()
            .filter(|r| !r.spec.paused && selection::validate(&r.spec).is_ok())
            .collect()
    }

    /// Containers being recorded for the cluster.
    pub fn chosen_count(&self) -> usize {
        self.chosen.len()
    }

    /// Requests the API server refused or did not answer: resolving Pods,
    /// writing results and writing statuses.
    pub fn api_errors_total(&self) -> u64 {
        self.api_errors + self.status.errors
    }

    /// Periodic work: activation, decisions, merges, writes.
    pub async fn tick(&mut self, node: &mut NodeRecorder) -> Result<(), NodeError> {
        let active = self.active_recordings();
        // Stay active while anything selected still runs.
        let needed = !active.is_empty() || !self.chosen.is_empty();
        if self.ready() {
            node.set_active(needed)?;
        }
        let errors = self.api_errors;
        if self.decide_after.is_none_or(|t| Instant::now() >= t) {
            self.decide(node, &active).await?;
            let finished = node.take_finished();
            self.on_finished(node, finished, &active).await?;
        } else {
            let finished = node.take_finished();
            self.undecided
                .extend(finished.into_iter().map(|f| (f, Instant::now())));
        }
        // Back off from the API server while it fails, up to 30 s.
        if self.api_errors > errors {
            self.decide_backoff = (self.decide_backoff * 2)
                .clamp(Duration::from_millis(500), Duration::from_secs(30));
            self.decide_after = Some(Instant::now() + self.decide_backoff);
        } else if self.decide_after.is_some_and(|t| Instant::now() >= t) {
            self.decide_after = None;
            self.decide_backoff = Duration::ZERO;
        }
        self.merge_running(node)?;
        self.flush().await;
        if let Some(installer) = self.installer.as_mut()
            && self.last_install.elapsed() >= INSTALL_INTERVAL
        {
            self.last_install = Instant::now();
            installer.sync().await;
        }
        let recordings = self.recordings.state();
        self.checkpoint();
        let counters = node.tracer().counters().unwrap_or_default();
        let kernel_drops =
            counters.row_map_full + counters.events_lost + counters.members_full + node.lost();
        self.status
            .update(
                kernel_drops,
                &recordings,
                &self.contributions,
                &self.chosen_by_recording(),
                &self.finished_containers,
            )
            .await;
        Ok(())
    }

    fn chosen_by_recording(&self) -> BTreeMap<(String, String), i64> {
        let mut out = BTreeMap::new();
        for chosen in self.chosen.values() {
            for key in &chosen.keys {
                *out.entry((key.namespace.clone(), key.recording.clone()))
                    .or_insert(0) += 1;
            }
        }
        out
    }

    /// The Pod with this UID, if watched.
    fn pod(&self, uid: &str) -> Option<Arc<Pod>> {
        self.pods.find(|p| p.metadata.uid.as_deref() == Some(uid))
    }

    /// What recordings select a container of a Pod; `None` while the
    /// container's name is not known yet.
    async fn choose(
        &mut self,
        pod: &Pod,
        runtime_name: Option<&str>,
        container_id: &str,
        recordings: &[Arc<ProfileRecording>],
    ) -> Option<Result<Chosen, kube::Error>> {
        let (name, init) = match runtime_name {
            Some(name) if !name.is_empty() => (name.to_owned(), is_init_container(pod, name)),
            _ => container_in_status(pod, container_id)?,
        };
        let namespace = pod.namespace().unwrap_or_default();
        let labels = labels_of(pod);
        let selecting: Vec<&Arc<ProfileRecording>> = recordings
            .iter()
            .filter(|r| r.namespace().as_deref() == Some(namespace.as_str()))
            .filter(|r| selection::selects(&r.spec, &labels, &name, init).unwrap_or(false))
            .collect();
        let pod_name = pod.name_any();
        let pod_ref = PodRef {
            namespace: Some(namespace.clone()),
            name: Some(pod_name.clone()),
            uid: pod.metadata.uid.clone().unwrap_or_default(),
        };
        if selecting.is_empty() {
            return Some(Ok(Chosen {
                keys: Vec::new(),
                pod: pod_ref,
                pod_name,
                container: name,
                init,
                last_merge: None,
            }));
        }
        let workload: WorkloadRef = match self.resolver.workload(pod).await {
            Ok(w) => w,
            Err(error) => return Some(Err(error)),
        };
        let keys = selecting
            .into_iter()
            .map(|r| Key {
                namespace: namespace.clone(),
                recording: r.name_any(),
                workload: workload.clone(),
                container: name.clone(),
            })
            .collect();
        Some(Ok(Chosen {
            keys,
            pod: pod_ref,
            pod_name,
            container: name,
            init,
            last_merge: None,
        }))
    }

    async fn decide(
        &mut self,
        node: &mut NodeRecorder,
        recordings: &[Arc<ProfileRecording>],
    ) -> Result<(), NodeError> {
        let views: Vec<ContainerView> = node
            .containers()
            .into_iter()
            .filter(|v| v.keep.is_none())
            .collect();
        for view in views {
            let since = *self
                .waiting
                .entry(view.cgroup_id)
                .or_insert_with(Instant::now);
            let Some(pod) = self.pod(&view.pod_uid) else {
                debug!(pod_uid = %view.pod_uid, container = %view.container_id, "its Pod is not known yet");
                if since.elapsed() > POD_TIMEOUT {
                    debug!(container = %view.container_id, "its Pod never appeared on this node; dropped");
                    self.waiting.remove(&view.cgroup_id);
                    node.decide(view.cgroup_id, false)?;
                }
                continue;
            };
            match self
                .choose(
                    &pod,
                    view.meta.as_ref().map(|m| m.name.as_str()),
                    &view.container_id,
                    recordings,
                )
                .await
            {
                None => debug!(container = %view.container_id, "its name is not known yet"),
                Some(Err(error)) => {
                    self.api_errors += 1;
                    debug!(%error, "cannot resolve a Pod's workload yet");
                }
                Some(Ok(chosen)) => {
                    self.waiting.remove(&view.cgroup_id);
                    if chosen.keys.is_empty() {
                        debug!(pod = %chosen.pod_name, container = %chosen.container, "not selected");
                        node.decide(view.cgroup_id, false)?;
                    } else {
                        info!(
                            pod = %chosen.pod_name,
                            container = %chosen.container,
                            recordings = chosen.keys.len(),
                            "recording container"
                        );
                        node.decide(view.cgroup_id, true)?;
                        self.chosen.insert(view.cgroup_id, chosen);
                    }
                }
            }
        }
        Ok(())
    }

    /// Adds a container's result to the contributions of its keys.
    fn contribute(&mut self, chosen: &Chosen, recording: &ContainerRecording) {
        let now = jiff::Timestamp::now();
        let base = recording
            .runtime_base_set
            .as_deref()
            .and_then(|name| basesets::find(name).ok().flatten());
        for key in &chosen.keys {
            let contribution = self
                .contributions
                .entry(key.clone())
                .or_insert_with(|| Contribution::new(chosen.init, now));
            contribution.add(
                &recording.container_id,
                &chosen.pod_name,
                &recording.syscalls,
                base.as_ref(),
                &recording.warnings,
                now,
            );
        }
    }

    /// Containers that ended: their results go to their keys. Those not
    /// decided yet wait until they can be (their Pod or name not known yet,
    /// the API server away), never dropped while a decision may come.
    async fn on_finished(
        &mut self,
        node: &mut NodeRecorder,
        finished: Vec<Finished>,
        recordings: &[Arc<ProfileRecording>],
    ) -> Result<(), NodeError> {
        let mut queue: Vec<(Finished, Instant)> = std::mem::take(&mut self.undecided);
        queue.extend(finished.into_iter().map(|f| (f, Instant::now())));
        for (done, since) in queue {
            self.waiting.remove(&done.cgroup_id);
            let chosen = if let Some(chosen) = self.chosen.remove(&done.cgroup_id) {
                Some(chosen)
            } else if let Some(pod) = self.pod(&done.pod_uid) {
                let runtime_name = done.recording.container_name.clone();
                let choice = self
                    .choose(
                        &pod,
                        runtime_name.as_deref(),
                        &done.recording.container_id,
                        recordings,
                    )
                    .await;
                match choice {
                    Some(Ok(chosen)) if chosen.keys.is_empty() => None,
                    Some(Ok(chosen)) => {
                        let mut recording = done.recording.clone();
                        recording.container_name = Some(chosen.container.clone());
                        recording.pod = Some(chosen.pod.clone());
                        node.write_result(&recording)?;
                        Some(chosen)
                    }
                    Some(Err(error)) => {
                        self.api_errors += 1;
                        debug!(%error, "an ended container waits for its workload");
                        self.undecided.push((done, since));
                        continue;
                    }
                    None if since.elapsed() < POD_TIMEOUT => {
                        self.undecided.push((done, since));
                        continue;
                    }
                    None => None,
                }
            } else if since.elapsed() < POD_TIMEOUT {
                self.undecided.push((done, since));
                continue;
            } else {
                None
            };
            let Some(chosen) = chosen else {
                continue;
            };
            self.contribute(&chosen, &done.recording);
            for key in &chosen.keys {
                *self
                    .finished_containers
                    .entry((key.namespace.clone(), key.recording.clone()))
                    .or_insert(0) += 1;
            }
        }
        Ok(())
    }

    /// Merges the progress of running containers, every poll interval.
    fn merge_running(&mut self, node: &NodeRecorder) -> Result<(), NodeError> {
        let due: Vec<u64> = self
            .chosen
            .iter()
            .filter(|(_, c)| {
                c.last_merge
                    .is_none_or(|t| t.elapsed() >= self.options.poll_interval)
            })
            .map(|(id, _)| *id)
            .collect();
        for id in due {
            let Some(recording) = node.running_recording(id)? else {
                continue;
            };
            let Some(mut chosen) = self.chosen.remove(&id) else {
                continue;
            };
            chosen.last_merge = Some(Instant::now());
            self.contribute(&chosen, &recording);
            self.chosen.insert(id, chosen);
        }
        Ok(())
    }

    /// Writes changed contributions, with backoff after failures.
    async fn flush(&mut self) {
        if self.last_flush.elapsed() < self.options.flush_interval.max(self.backoff) {
            return;
        }
        self.last_flush = Instant::now();
        let dirty: Vec<Key> = self
            .contributions
            .iter()
            .filter(|(_, c)| c.dirty)
            .map(|(k, _)| k.clone())
            .collect();
        let mut failed = false;
        for key in dirty {
            let Some(contribution) = self.contributions.get(&key) else {
                continue;
            };
            match writer::write(&self.client, &key, &self.options.node, contribution).await {
                Ok(()) => {
                    if let Some(c) = self.contributions.get_mut(&key) {
                        c.dirty = false;
                    }
                }
                Err(error) => {
                    self.api_errors += 1;
                    warn!(%error, profile = %key.object_name(), "cannot write a ContainerProfile; will retry");
                    failed = true;
                    break;
                }
            }
        }
        self.backoff = if failed {
            (self.backoff * 2).clamp(Duration::from_secs(1), Duration::from_secs(60))
        } else {
            Duration::ZERO
        };
    }

    /// Writes everything still pending, once (before the agent stops), and
    /// the checkpoint.
    pub async fn flush_now(&mut self, node: &mut NodeRecorder) -> Result<(), NodeError> {
        self.last_checkpoint = Instant::now() - Duration::from_secs(2);
        let ids: Vec<u64> = self.chosen.keys().copied().collect();
        for id in ids {
            if let (Some(recording), Some(chosen)) =
                (node.running_recording(id)?, self.chosen.get(&id).cloned())
            {
                self.contribute(&chosen, &recording);
            }
        }
        self.last_flush = Instant::now() - self.options.flush_interval - self.backoff;
        self.backoff = Duration::ZERO;
        self.flush().await;
        self.checkpoint();
        Ok(())
    }

    /// Recordings that are recording.
    pub fn active_count(&self) -> usize {
        self.active_recordings().len()
    }

    /// Distinct syscalls across this node's contributions.
    pub fn syscalls(&self) -> usize {
        self.contributions.values().map(Contribution::len).sum()
    }

    /// Writes the checkpoint when it changed.
    fn checkpoint(&mut self) {
        let Some(state) = self.options.state.as_ref() else {
            return;
        };
        // At most once a second: the checkpoint holds every result.
        if self.last_checkpoint.elapsed() < Duration::from_secs(1) {
            return;
        }
        self.last_checkpoint = Instant::now();
        let checkpoint = Checkpoint {
            contributions: self
                .contributions
                .iter()
                .map(|(k, c)| (k.clone(), c.clone()))
                .collect(),
            undecided: self.undecided.iter().map(|(f, _)| f.clone()).collect(),
        };
        let text = serde_json::to_string(&checkpoint).unwrap_or_default();
        if text != self.checkpointed {
            match state.write_file(CHECKPOINT, text.as_bytes()) {
                Ok(()) => self.checkpointed = text,
                Err(error) => warn!(%error, "cannot write the checkpoint"),
            }
        }
    }

    /// Contributions not yet written to the cluster.
    pub fn pending(&self) -> usize {
        self.contributions.values().filter(|c| c.dirty).count()
    }
}
