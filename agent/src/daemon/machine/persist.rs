//! What the machine carries over a restart ([`Checkpoint`]): made from its
//! state, and taken back. `daemon::checkpoint` keeps it in a file.
use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use tracing::info;

use super::{Chosen, Container, Decision, Ended, Machine, Now};
use crate::{
    container_recording::{ContainerRecording, Start},
    daemon::{
        contribution::{Contribution, Key},
        identity::Identity,
    },
    profile::BaseSet,
};

/// Everything the daemon carries over a restart.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Checkpoint {
    #[serde(default)]
    pub containers: Vec<ContainerState>,
    #[serde(default)]
    pub ended: Vec<Ended>,
    /// Results of ended containers, named after a late decision, that the
    /// state directory refused: written again until it takes them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unwritten: Vec<(String, ContainerRecording)>,
    #[serde(default)]
    pub contributions: Vec<(Key, Contribution)>,
}

/// A container being recorded.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerState {
    pub cgroup_id: u64,
    pub identity: Identity,
    pub start: Start,
    pub first_seen: jiff::Timestamp,
    pub last_seen: jiff::Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_new_syscall: Option<jiff::Timestamp>,
    pub known: usize,
    /// Whether its base set was decided (its entrypoint seen), and which.
    #[serde(default)]
    pub base_set_decided: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_set: Option<BaseSet>,
    /// The recordings that chose it (Kubernetes mode).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chosen: Option<Chosen>,
}

impl Machine {
    /// Takes back the containers an earlier run tracked whose rows are
    /// still in the (pinned) maps, and (Kubernetes) its results; returns
    /// how many containers.
    pub(super) fn restore(&mut self, checkpoint: Checkpoint, rows: &[u64], now: Now) -> usize {
        let rows: BTreeSet<u64> = rows.iter().copied().collect();
        let mut restored = 0;
        for state in checkpoint.containers {
            if !rows.contains(&state.cgroup_id) {
                continue;
            }
            let decision = match (&self.kube, state.chosen) {
                (None, _) => Decision::Record,
                (Some(_), Some(chosen)) => Decision::Chosen(chosen),
                (Some(_), None) => Decision::Undecided { since: now.instant },
            };
            self.containers.insert(
                state.cgroup_id,
                Container {
                    identity: state.identity,
                    start: state.start,
                    first_seen: state.first_seen,
                    last_seen: state.last_seen,
                    last_new_syscall: state.last_new_syscall,
                    known: state.known,
                    base_set: state.base_set_decided.then_some(state.base_set),
                    decision,
                    // Watched again: the kernel kept its counts.
                    refusals: super::RefusalWatch::pending(now),
                    last_poll: None,
                    last_merge: None,
                },
            );
            restored += 1;
        }
        let mut results = 0;
        if let Some(kube) = self.kube.as_mut() {
            for (key, mut contribution) in checkpoint.contributions {
                // Written or not, write again: the merge is idempotent.
                contribution.dirty = true;
                kube.contributions.insert(key, contribution);
            }
            kube.ended = checkpoint
                .ended
                .into_iter()
                .map(|e| Ended {
                    since: Some(now.instant),
                    ..e
                })
                .collect();
            kube.unwritten = checkpoint.unwritten;
            results = kube.contributions.len() + kube.ended.len() + kube.unwritten.len();
        }
        if restored > 0 || results > 0 {
            info!(
                containers = restored,
                results, "carrying on with what was recorded before the restart"
            );
        }
        restored
    }

    /// What survives a restart: the containers (their rows survive in the
    /// pinned maps, and this names them), and (Kubernetes) the results not
    /// yet written to the cluster and the ended containers not yet decided.
    pub fn checkpoint(&self) -> Checkpoint {
        Checkpoint {
            containers: self
                .containers
                .iter()
                .map(|(id, c)| ContainerState {
                    cgroup_id: *id,
                    identity: c.identity.clone(),
                    start: c.start,
                    first_seen: c.first_seen,
                    last_seen: c.last_seen,
                    last_new_syscall: c.last_new_syscall,
                    known: c.known,
                    base_set_decided: c.base_set.is_some(),
                    base_set: c.base_set.clone().flatten(),
                    chosen: match &c.decision {
                        Decision::Chosen(chosen) => Some(chosen.clone()),
                        _ => None,
                    },
                })
                .collect(),
            ended: self.ended().to_vec(),
            unwritten: self
                .kube
                .as_ref()
                .map(|k| k.unwritten.clone())
                .unwrap_or_default(),
            contributions: self
                .contributions()
                .map(|c| c.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                .unwrap_or_default(),
        }
    }
}
