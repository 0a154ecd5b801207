//! Rounds: a tick, a snapshot or the stop, as a sequence of steps. A step
//! that reads emits the read last and waits for its answer; the answer's
//! handler goes on with the next step.
use std::collections::BTreeMap;

use syscensus_api::WorkloadRef;
use tracing::warn;

use super::{Action, CHECKPOINT_INTERVAL, Cluster, Machine, Now};
use crate::container_recording::ContainerRecording;

/// What started a round.
#[derive(Clone, Debug)]
pub(super) enum Kind {
    Tick {
        rows: Vec<u64>,
        cluster: Option<Cluster>,
    },
    Snapshot,
    Stop,
}

/// The steps of a round, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Step {
    /// Rows without an event: find their cgroups (tick).
    Rows,
    /// Ask the runtime about containers it has not named (tick).
    Identify,
    /// Watch the refusals of containers whose profile is not known yet
    /// (tick).
    Watch,
    /// Read every container.
    Observe,
    /// Write the results due.
    Write,
    /// Kubernetes: record new containers or go idle (tick).
    Arming,
    /// Kubernetes: find the workloads decisions need (tick).
    Resolve,
    /// Kubernetes: decide on containers and ended ones (tick).
    Decide,
    /// Kubernetes: write changed results to the cluster.
    Flush,
    /// Kubernetes: report this node's part of the status (tick).
    Report,
    /// Save the checkpoint, then drop the rows it no longer needs.
    Save,
}

/// Why a result is written.
#[derive(Clone, Debug, PartialEq)]
pub(super) enum Pending {
    /// A container that ended: finished once written.
    Ended(u64),
    /// A running container's snapshot.
    Running,
    /// A cgroup that ended before it could be named: its row goes once
    /// written.
    Unnamed(u64),
    /// An ended container's result, named after a decision.
    Named,
}

/// A round in progress.
#[derive(Debug)]
pub(super) struct Round {
    pub kind: Kind,
    /// The step whose answer is awaited.
    pub awaiting: Option<Step>,
    /// Results to write, by file name.
    pub writes: BTreeMap<String, (ContainerRecording, Pending)>,
    /// A write failed (a snapshot is then not confirmed).
    pub failed: bool,
    /// API errors when decisions began, to back off when they grow.
    pub api_errors_before: u64,
    /// Workloads found this round, by Pod UID.
    pub workloads: BTreeMap<String, Result<WorkloadRef, String>>,
    /// The checkpoint being saved.
    pub saving: Option<super::Checkpoint>,
}

impl Round {
    fn new(kind: Kind) -> Round {
        Round {
            kind,
            awaiting: None,
            writes: BTreeMap::new(),
            failed: false,
            api_errors_before: 0,
            workloads: BTreeMap::new(),
            saving: None,
        }
    }

    /// Whether this round writes running containers' results (snapshot,
    /// stop).
    pub(super) fn forced(&self) -> bool {
        matches!(self.kind, Kind::Snapshot | Kind::Stop)
    }

    pub(super) fn is_stop(&self) -> bool {
        matches!(self.kind, Kind::Stop)
    }

    pub(super) fn cluster(&self) -> Option<&Cluster> {
        match &self.kind {
            Kind::Tick { cluster, .. } => cluster.as_ref(),
            _ => None,
        }
    }
}

/// What a step did.
pub(super) enum Flow {
    /// Go on with this step.
    Next(Step),
    /// Its read is emitted; wait for the answer.
    Await,
    /// The round is over.
    Done,
}

impl Machine {
    pub(super) fn start_round(&mut self, kind: Kind, now: Now, out: &mut Vec<Action>) {
        if let Some(round) = self.round.take() {
            warn!(awaiting = ?round.awaiting, "a round was left unfinished; starting afresh");
        }
        let first = match kind {
            Kind::Tick { .. } => Step::Rows,
            Kind::Snapshot | Kind::Stop => Step::Observe,
        };
        self.round = Some(Round::new(kind));
        self.run(first, now, out);
    }

    /// Whether the round waits for the answer of `step`.
    pub(super) fn awaits(&self, step: Step) -> bool {
        self.round.as_ref().and_then(|r| r.awaiting) == Some(step)
    }

    /// Runs steps from `step` until one waits for an answer or the round
    /// is over.
    pub(super) fn run(&mut self, mut step: Step, now: Now, out: &mut Vec<Action>) {
        loop {
            if let Some(round) = self.round.as_mut() {
                round.awaiting = None;
            } else {
                return;
            }
            let flow = match step {
                Step::Rows => self.step_rows(now, out),
                Step::Identify => self.step_identify(now, out),
                Step::Watch => self.step_watch(now, out),
                Step::Observe => self.step_observe(out),
                Step::Write => self.step_write(out),
                Step::Arming => self.step_arming(out),
                Step::Resolve => self.step_resolve(now, out),
                Step::Decide => self.step_decide(now, out),
                Step::Flush => self.step_flush(now, out),
                Step::Report => self.step_report(out),
                Step::Save => self.step_save(now, out),
            };
            match flow {
                Flow::Next(next) => step = next,
                Flow::Await => {
                    if let Some(round) = self.round.as_mut() {
                        round.awaiting = Some(step);
                    }
                    return;
                }
                Flow::Done => {
                    self.end_round(out);
                    return;
                }
            }
        }
    }

    fn step_write(&mut self, out: &mut Vec<Action>) -> Flow {
        let Some(round) = self.round.as_ref() else {
            return Flow::Done;
        };
        if round.writes.is_empty() {
            return Flow::Next(self.after_write());
        }
        let writes = round
            .writes
            .iter()
            .map(|(name, (recording, _))| (name.clone(), recording.clone()))
            .collect();
        out.push(Action::WriteResults(writes));
        Flow::Await
    }

    /// The step after the results are written.
    pub(super) fn after_write(&self) -> Step {
        match self.round.as_ref().map(|r| &r.kind) {
            _ if self.kube.is_none() => Step::Save,
            Some(Kind::Tick { .. }) => Step::Arming,
            Some(Kind::Stop) => Step::Flush,
            _ => Step::Save,
        }
    }

    /// Saves the checkpoint when it changed and is due: at most once a
    /// second, at once when rows wait for it or the daemon stops. Rows wait
    /// for it so that a crash never finds a result in neither the
    /// checkpoint nor the kernel.
    fn step_save(&mut self, now: Now, out: &mut Vec<Action>) -> Flow {
        let stop = self.round.as_ref().is_some_and(Round::is_stop);
        let due = stop
            || !self.drops.is_empty()
            || self
                .last_save
                .is_none_or(|t| now.instant.duration_since(t) >= CHECKPOINT_INTERVAL);
        if !due {
            return Flow::Done;
        }
        let checkpoint = self.checkpoint();
        if self.saved.as_ref() == Some(&checkpoint) {
            self.drop_rows(out);
            return Flow::Done;
        }
        out.push(Action::SaveCheckpoint(Box::new(checkpoint.clone())));
        if let Some(round) = self.round.as_mut() {
            round.saving = Some(checkpoint);
        }
        Flow::Await
    }

    pub(super) fn on_checkpoint_saved(
        &mut self,
        result: Result<(), String>,
        now: Now,
        out: &mut Vec<Action>,
    ) {
        if !self.awaits(Step::Save) {
            return;
        }
        let saving = self.round.as_mut().and_then(|r| r.saving.take());
        match result {
            Ok(()) => {
                self.saved = saving;
                self.last_save = Some(now.instant);
                self.drop_rows(out);
            }
            // The rows stay until a checkpoint without them is saved.
            Err(error) => warn!(%error, "cannot write the checkpoint"),
        }
        self.end_round(out);
    }

    /// Ends the round; a snapshot round that wrote everything is confirmed.
    fn end_round(&mut self, out: &mut Vec<Action>) {
        if let Some(round) = self.round.take()
            && matches!(round.kind, Kind::Snapshot)
            && !round.failed
        {
            out.push(Action::SnapshotDone);
        }
    }

    fn drop_rows(&mut self, out: &mut Vec<Action>) {
        out.extend(
            std::mem::take(&mut self.drops)
                .into_iter()
                .map(Action::Unmark),
        );
    }
}
