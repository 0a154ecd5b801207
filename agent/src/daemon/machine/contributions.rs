//! What this node adds to the ContainerProfiles (what chosen containers did,
//! unless their recording is paused) and when it is written: every flush
//! interval, at once at the stop, with a growing wait after failures.
use std::time::Duration;

use tracing::warn;

use super::{
    Action, Chosen, Decision, Machine, Now,
    round::{Flow, Step},
};
use crate::{
    container_recording::ContainerRecording,
    daemon::contribution::{Contribution, Counted, Key},
    profile::BaseSet,
};

impl Machine {
    /// Adds what a chosen container did so far (`finished`: all it did) to
    /// the contributions of its keys, but not to those of recordings this
    /// round's cluster shows paused: a paused recording takes nothing new
    /// (a container's record is cumulative, so what it did meanwhile is
    /// added once the recording resumes).
    pub(super) fn contribute(
        &mut self,
        chosen: &Chosen,
        recording: &ContainerRecording,
        base_set: Option<&BaseSet>,
        now: Now,
        finished: bool,
    ) {
        let paused = |key: &Key| {
            self.round
                .as_ref()
                .and_then(|r| r.cluster())
                .is_some_and(|c| {
                    c.recordings.iter().any(|r| {
                        r.spec.paused && r.namespace == key.namespace && r.name == key.recording
                    })
                })
        };
        let keys: Vec<&Key> = chosen.keys.iter().filter(|k| !paused(k)).collect();
        let Some(kube) = self.kube.as_mut() else {
            return;
        };
        for key in keys {
            // A recording that includes every exec session.
            let policy = chosen.sessions(Some(&key.recording));
            let everything;
            let recording = if policy == chosen.sessions(None) {
                recording
            } else {
                let mut all = recording.clone();
                all.redecide(&policy);
                everything = all;
                &everything
            };
            let contribution = kube
                .contributions
                .entry(key.clone())
                .or_insert_with(|| Contribution::new(chosen.init, now.time));
            contribution.add(
                &recording.container_id,
                &chosen.pod_name,
                &recording.syscalls,
                base_set,
                &recording.warnings,
                now.time,
            );
            contribution.add_sessions(
                &recording.sessions,
                &recording.syscalls,
                &recording.session_only_syscalls,
            );
            if finished {
                *kube
                    .recorded
                    .entry((key.namespace.clone(), key.recording.clone()))
                    .or_insert(0) += 1;
            }
        }
    }

    /// Adds a running chosen container's progress.
    pub(super) fn contribute_running(
        &mut self,
        cgroup_id: u64,
        recording: &ContainerRecording,
        now: Now,
    ) {
        let Some(c) = self.containers.get(&cgroup_id) else {
            return;
        };
        let Decision::Chosen(chosen) = &c.decision else {
            return;
        };
        let (chosen, base_set) = (chosen.clone(), c.base_set.clone().flatten());
        self.contribute(&chosen, recording, base_set.as_ref(), now, false);
    }

    /// Writes changed contributions every flush interval, longer after
    /// failures (up to a minute); everything at once when stopping.
    pub(super) fn step_flush(&mut self, now: Now, out: &mut Vec<Action>) -> Flow {
        let stop = self.round.as_ref().is_some_and(|r| r.is_stop());
        let next = if stop { Step::Save } else { Step::Report };
        let (Some(kube), Some(config)) = (self.kube.as_mut(), self.config.kube.as_ref()) else {
            return Flow::Next(next);
        };
        let interval = config.flush_interval.max(kube.flush_backoff);
        let due = stop
            || kube
                .last_flush
                .is_none_or(|t| now.instant.duration_since(t) >= interval);
        if !due {
            return Flow::Next(next);
        }
        kube.last_flush = Some(now.instant);
        let dirty: Vec<(Key, Contribution)> = kube
            .contributions
            .iter()
            .filter(|(_, c)| c.dirty)
            .map(|(k, c)| (k.clone(), c.clone()))
            .collect();
        if dirty.is_empty() {
            kube.flush_backoff = Duration::ZERO;
            return Flow::Next(next);
        }
        out.push(Action::WriteProfiles(dirty));
        Flow::Await
    }

    pub(super) fn on_profiles_written(
        &mut self,
        written: Vec<(Key, Option<Counted>)>,
        failed: Option<(Key, String)>,
        now: Now,
        out: &mut Vec<Action>,
    ) {
        if !self.awaits(Step::Flush) {
            return;
        }
        let stop = self.round.as_ref().is_some_and(|r| r.is_stop());
        if let Some(kube) = self.kube.as_mut() {
            for (key, counted) in written {
                if let Some(c) = kube.contributions.get_mut(&key) {
                    c.dirty = false;
                    c.counted = counted;
                }
            }
            kube.flush_backoff = match failed {
                Some((key, error)) => {
                    kube.api_errors += 1;
                    warn!(%error, profile = %key.object_name(), "cannot write a ContainerProfile; will retry");
                    (kube.flush_backoff * 2).clamp(Duration::from_secs(1), Duration::from_secs(60))
                }
                None => Duration::ZERO,
            };
        }
        self.run(if stop { Step::Save } else { Step::Report }, now, out);
    }
}
