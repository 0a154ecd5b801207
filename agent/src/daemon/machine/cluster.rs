//! The Kubernetes side of the machine: which containers the
//! ProfileRecordings select, where their results go, and when they are
//! written to the cluster.
//!
//! A container is chosen when an active recording of its Pod's namespace
//! selects its Pod (by labels) and its name; it is dropped when none does,
//! or when its Pod stays unknown. What each chosen container does is merged
//! per (recording, workload, container) into this node's contribution, and
//! changed contributions are written every flush interval. While the API
//! server is away, decisions that need it back off and results wait (in the
//! checkpoint too).
use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use syscensus_api::{ProfileRecordingSpec, WorkloadRef};
use tracing::{debug, info, warn};

use super::{
    Action, Chosen, Decision, Ended, Machine, Now, POD_TIMEOUT,
    round::{Flow, Pending, Step},
};
use crate::{
    container_recording::ContainerRecording,
    daemon::{
        contribution::{Contribution, Key},
        identity::{Identity, PodView},
        selection,
    },
};

/// What the watches hold, as the machine sees it at a tick.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Cluster {
    /// Whether the watches have their first lists.
    pub ready: bool,
    /// The Pods of this node.
    pub pods: Vec<PodView>,
    /// Every ProfileRecording.
    pub recordings: Vec<RecordingView>,
}

impl Cluster {
    fn pod(&self, uid: &str) -> Option<&PodView> {
        self.pods.iter().find(|p| p.uid == uid)
    }

    /// Recordings that are not paused and whose selector is valid.
    pub fn active(&self) -> impl Iterator<Item = &RecordingView> {
        self.recordings.iter().filter(|r| r.is_active())
    }
}

/// A ProfileRecording.
#[derive(Clone, Debug, PartialEq)]
pub struct RecordingView {
    pub namespace: String,
    pub name: String,
    /// Its UID, which the Events about it carry.
    pub uid: Option<String>,
    pub spec: ProfileRecordingSpec,
}

impl RecordingView {
    /// Whether it records: not paused, and its selector valid.
    pub fn is_active(&self) -> bool {
        !self.spec.paused && selection::validate(&self.spec).is_ok()
    }
}

/// Kubernetes mode's state.
#[derive(Debug, Default)]
pub(super) struct KubeState {
    pub contributions: BTreeMap<Key, Contribution>,
    /// Containers that ended before a decision.
    pub ended: Vec<Ended>,
    /// Their results once decided, until the state directory has taken
    /// them (a full disk refuses them): written again every tick, and
    /// checkpointed.
    pub unwritten: Vec<(String, ContainerRecording)>,
    /// Containers recorded to their end, per (namespace, recording).
    pub recorded: BTreeMap<(String, String), i64>,
    /// API requests that failed.
    pub api_errors: u64,
    /// No decision that needs the API server before this, after it failed.
    pub decide_after: Option<Instant>,
    pub decide_backoff: Duration,
    pub last_flush: Option<Instant>,
    pub flush_backoff: Duration,
}

/// What to do with a container, given the cluster.
#[derive(Debug)]
enum Choice {
    /// Not yet: the reason.
    Wait(&'static str),
    /// Not recorded: the reason.
    Drop(&'static str),
    /// Its Pod's workload must be found first.
    Resolve(PodView),
    Chosen(Chosen),
}

/// What recordings select a container, once its Pod, name and workload are
/// known. `since`: when the container was first seen (running) or ended.
fn choose(
    identity: &Identity,
    since: Instant,
    ended: bool,
    cluster: &Cluster,
    workloads: &BTreeMap<String, Result<WorkloadRef, String>>,
    now: Now,
) -> Choice {
    let waited = now.instant.duration_since(since);
    let Some(pod) = cluster.pod(&identity.pod_uid) else {
        return if waited > POD_TIMEOUT {
            Choice::Drop("its Pod never appeared on this node")
        } else {
            Choice::Wait("its Pod is not known yet")
        };
    };
    let Some(name) = identity.name_in(pod) else {
        return if ended && waited >= POD_TIMEOUT {
            Choice::Drop("its name never became known")
        } else {
            Choice::Wait("its name is not known yet")
        };
    };
    let selecting: Vec<&RecordingView> = cluster
        .active()
        .filter(|r| r.namespace == pod.namespace)
        .filter(|r| {
            selection::selects(&r.spec, &pod.labels, &name.name, name.init).unwrap_or(false)
        })
        .collect();
    if selecting.is_empty() {
        return Choice::Drop("not selected");
    }
    let workload = match workloads.get(&pod.uid) {
        None => return Choice::Resolve(pod.clone()),
        Some(Err(_)) => return Choice::Wait("its workload cannot be found yet"),
        Some(Ok(workload)) => workload,
    };
    let include_exec_sessions = selecting
        .iter()
        .filter(|r| r.spec.include_exec_sessions)
        .map(|r| r.name.clone())
        .collect();
    Choice::Chosen(Chosen {
        keys: selecting
            .into_iter()
            .map(|r| Key {
                namespace: pod.namespace.clone(),
                recording: r.name.clone(),
                workload: workload.clone(),
                container: name.name.clone(),
            })
            .collect(),
        pod: pod.pod_ref(),
        pod_name: pod.name.clone(),
        exec_commands: pod
            .exec_commands
            .get(&name.name)
            .cloned()
            .unwrap_or_default(),
        include_exec_sessions,
        container: name.name,
        init: name.init,
    })
}

impl Machine {
    /// Records new containers while a recording is active or a chosen
    /// container still runs; otherwise goes idle (no root watched,
    /// `sys_enter` detached), forgetting the undecided containers.
    pub(super) fn step_arming(&mut self, out: &mut Vec<Action>) -> Flow {
        let Some(cluster) = self.round.as_ref().and_then(|r| r.cluster()) else {
            return Flow::Next(Step::Resolve);
        };
        if !cluster.ready {
            return Flow::Next(Step::Resolve);
        }
        let needed = cluster.active().next().is_some()
            || self
                .containers
                .values()
                .any(|c| matches!(c.decision, Decision::Chosen(_)));
        if needed && !self.armed {
            out.push(self.arm());
        } else if !needed && self.armed {
            let ids: Vec<u64> = self.containers.keys().copied().collect();
            for id in ids {
                self.untrack(id, out);
            }
            out.push(Action::Disarm {
                roots: std::mem::take(&mut self.roots).into_values().collect(),
            });
            self.armed = false;
            info!("idle: no cgroup watched, sys_enter detached");
        }
        Flow::Next(Step::Resolve)
    }

    fn may_decide(&self, now: Now) -> bool {
        self.kube
            .as_ref()
            .is_some_and(|k| k.decide_after.is_none_or(|t| now.instant >= t))
    }

    /// The Pods whose workloads pending decisions need, looked up once for
    /// all.
    pub(super) fn step_resolve(&mut self, now: Now, out: &mut Vec<Action>) -> Flow {
        let errors = self.api_errors();
        let Some(round) = self.round.as_mut() else {
            return Flow::Done;
        };
        round.api_errors_before = errors;
        if !self.may_decide(now) {
            return Flow::Next(Step::Decide);
        }
        let (Some(round), Some(kube)) = (self.round.as_ref(), self.kube.as_ref()) else {
            return Flow::Done;
        };
        let Some(cluster) = round.cluster() else {
            return Flow::Next(Step::Decide);
        };
        let running = self.containers.values().filter_map(|c| match c.decision {
            Decision::Undecided { since } => Some((&c.identity, since, false)),
            _ => None,
        });
        let ended = kube
            .ended
            .iter()
            .map(|e| (&e.identity, e.since.unwrap_or(now.instant), true));
        let mut pods: BTreeMap<String, PodView> = BTreeMap::new();
        for (identity, since, ended) in running.chain(ended) {
            if let Choice::Resolve(pod) =
                choose(identity, since, ended, cluster, &round.workloads, now)
            {
                pods.insert(pod.uid.clone(), pod);
            }
        }
        if pods.is_empty() {
            return Flow::Next(Step::Decide);
        }
        out.push(Action::ResolveWorkloads(pods.into_values().collect()));
        Flow::Await
    }

    pub(super) fn on_workloads(
        &mut self,
        answers: Vec<(String, Result<WorkloadRef, String>)>,
        now: Now,
        out: &mut Vec<Action>,
    ) {
        if !self.awaits(Step::Resolve) {
            return;
        }
        for (uid, answer) in answers {
            if let Err(error) = &answer {
                if let Some(kube) = self.kube.as_mut() {
                    kube.api_errors += 1;
                }
                debug!(%error, pod_uid = %uid, "cannot resolve a Pod's workload yet");
            }
            if let Some(round) = self.round.as_mut() {
                round.workloads.insert(uid, answer);
            }
        }
        self.run(Step::Decide, now, out);
    }

    /// Decides on undecided containers, running and ended, then backs off
    /// from the API server while it fails (up to 30 s).
    pub(super) fn step_decide(&mut self, now: Now, out: &mut Vec<Action>) -> Flow {
        if self.may_decide(now) {
            self.decide_running(now, out);
            self.decide_ended(now, out);
        }
        let before = self.round.as_ref().map_or(0, |r| r.api_errors_before);
        if let Some(kube) = self.kube.as_mut() {
            if kube.api_errors > before {
                kube.decide_backoff = (kube.decide_backoff * 2)
                    .clamp(Duration::from_millis(500), Duration::from_secs(30));
                kube.decide_after = Some(now.instant + kube.decide_backoff);
            } else if kube.decide_after.is_some_and(|t| now.instant >= t) {
                kube.decide_after = None;
                kube.decide_backoff = Duration::ZERO;
            }
        }
        Flow::Next(Step::Flush)
    }

    fn decide_running(&mut self, now: Now, out: &mut Vec<Action>) {
        let Some(round) = self.round.as_ref() else {
            return;
        };
        let Some(cluster) = round.cluster() else {
            return;
        };
        let mut choices = Vec::new();
        for (id, c) in &self.containers {
            if let Decision::Undecided { since } = c.decision {
                let choice = choose(&c.identity, since, false, cluster, &round.workloads, now);
                choices.push((*id, choice));
            }
        }
        let mut here = self.recordings_here();
        for (id, choice) in choices {
            let container = self
                .containers
                .get(&id)
                .map(|c| c.identity.container_id.clone())
                .unwrap_or_default();
            match choice {
                Choice::Wait(why) => debug!(%container, "undecided: {why}"),
                Choice::Resolve(_) => {
                    debug!(%container, "undecided: its workload is not known yet")
                }
                Choice::Drop(why) => {
                    debug!(%container, "not recorded: {why}");
                    self.untrack(id, out);
                }
                Choice::Chosen(chosen) => {
                    info!(
                        pod = %chosen.pod_name,
                        container = %chosen.container,
                        recordings = chosen.keys.len(),
                        "recording container"
                    );
                    self.recording_started(&chosen, &mut here, now);
                    if let Some(c) = self.containers.get_mut(&id) {
                        c.decision = Decision::Chosen(chosen);
                    }
                }
            }
        }
    }

    /// Containers that ended before a decision: their results go to their
    /// keys once decided (named after the Pod's status when the runtime
    /// did not name them), and wait while a decision may come.
    fn decide_ended(&mut self, now: Now, out: &mut Vec<Action>) {
        let (Some(round), Some(kube)) = (self.round.as_ref(), self.kube.as_mut()) else {
            return;
        };
        let Some(cluster) = round.cluster() else {
            return;
        };
        let retry = kube.unwritten.clone();
        let mut decided = Vec::new();
        let mut waiting = Vec::new();
        for ended in std::mem::take(&mut kube.ended) {
            let since = ended.since.unwrap_or(now.instant);
            match choose(&ended.identity, since, true, cluster, &round.workloads, now) {
                Choice::Wait(_) | Choice::Resolve(_) => waiting.push(ended),
                Choice::Drop("not selected") => {}
                Choice::Drop(why) => warn!(
                    container = %ended.identity.container_id,
                    "a container ended and is not recorded: {why}"
                ),
                Choice::Chosen(chosen) => decided.push((ended, chosen)),
            }
        }
        kube.ended = waiting;
        if !retry.is_empty() {
            out.push(Action::WriteResults(retry.clone()));
            if let Some(round) = self.round.as_mut() {
                for (name, recording) in retry {
                    round.writes.insert(name, (recording, Pending::Named));
                }
            }
        }
        let mut here = self.recordings_here();
        for (ended, chosen) in decided {
            self.recording_started(&chosen, &mut here, now);
            let mut recording = ended.recording;
            // Made before its Pod's spec was known.
            recording.redecide(&chosen.sessions(None));
            recording.container_name = Some(chosen.container.clone());
            recording.pod = Some(chosen.pod.clone());
            let name = recording.container_id.clone();
            out.push(Action::WriteResults(vec![(
                name.clone(),
                recording.clone(),
            )]));
            if let Some(kube) = self.kube.as_mut() {
                kube.unwritten.push((name.clone(), recording.clone()));
            }
            self.contribute(&chosen, &recording, ended.base_set.as_ref(), now, true);
            if let Some(round) = self.round.as_mut() {
                round.writes.insert(name, (recording, Pending::Named));
            }
        }
    }
}
