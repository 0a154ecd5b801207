//! The node side of the machine: which marked cgroups are containers, who
//! they are, what they did so far, when they ended, and their results.
use std::collections::BTreeSet;

use tracing::{debug, info, warn};

use super::{
    Action, Container, Decision, Ended, Machine, Now, Observation, Place, RUNTIME_QUIET,
    RefusalWatch,
    results::{base_set_for, fallback_base_set, recording_of},
    round::{Flow, Pending, Step},
};
use crate::{
    bpf::MarkedCgroup,
    container_recording::{ContainerRecording, Start, State},
    daemon::identity::{Identity, RuntimeAnswer},
};

impl Machine {
    /// Starts tracking a container (unless tracked); returns whether it is
    /// new.
    fn track(&mut self, cgroup_id: u64, identity: Identity, start: Start, now: Now) -> bool {
        if self.containers.contains_key(&cgroup_id) {
            return false;
        }
        debug!(cgroup_id, container = %identity.container_id, "container recorded");
        let decision = if self.kube.is_some() {
            Decision::Undecided { since: now.instant }
        } else {
            Decision::Record
        };
        self.containers.insert(
            cgroup_id,
            Container {
                identity,
                start,
                first_seen: now.time,
                last_seen: now.time,
                last_new_syscall: None,
                known: 0,
                base_set: None,
                decision,
                refusals: RefusalWatch::pending(now),
                last_poll: None,
                last_merge: None,
            },
        );
        true
    }

    /// What to do with a marked cgroup that is not a container.
    fn unmark_or_join(&self, cgroup_id: u64) -> Action {
        Action::UnmarkOrJoin {
            cgroup_id,
            containers: self.containers.keys().copied().collect(),
        }
    }

    /// Forgets a container and drops its rows at once (it has no result
    /// worth keeping).
    pub(super) fn untrack(&mut self, cgroup_id: u64, out: &mut Vec<Action>) {
        if let Some(c) = self.containers.remove(&cgroup_id) {
            self.refusals_ended(&c, out, cgroup_id);
            out.push(Action::Unmark(cgroup_id));
        }
    }

    pub(super) fn on_cgroups(
        &mut self,
        events: Vec<MarkedCgroup>,
        now: Now,
        out: &mut Vec<Action>,
    ) {
        let mut fresh = Vec::new();
        for event in events {
            if event.lost {
                if Identity::of_cgroup(&event.path).is_some() {
                    self.lost += 1;
                    warn!(
                        cgroup = %event.path,
                        "a container cannot be recorded: the kernel map is full (raise --max-cgroups)"
                    );
                }
                continue;
            }
            if event.root {
                info!(root = %event.path, "root appeared; watching");
                // A root made again: forget the one it replaces.
                if let Some(old) = self.roots.insert(event.path.clone(), event.cgroup_id)
                    && old != event.cgroup_id
                {
                    out.push(Action::Unwatch(old));
                }
                continue;
            }
            match Identity::of_cgroup(&event.path) {
                Some(identity) => {
                    if self.track(event.cgroup_id, identity, Start::Exec, now) {
                        fresh.push(event.cgroup_id);
                    }
                }
                // A Pod or QoS cgroup, where nothing runs; or a cgroup made
                // below a container while it was set up, which is part of it.
                None => out.push(self.unmark_or_join(event.cgroup_id)),
            }
        }
        // The runtime is asked at once rather than at the next tick: a
        // container that ends within a tick may be removed with its Pod
        // right away, and the runtime would not know it any more.
        // Then for its profile (with CRI it is known before the runtime
        // makes the cgroup), once the runtime answered: a runtime that hangs
        // is then left alone.
        if self.round.is_none()
            && let Some(ask) = self.ask_runtime(fresh.clone(), now)
        {
            out.push(ask);
        } else if !fresh.is_empty() {
            self.look_up_profiles(now, out);
        }
    }

    pub(super) fn on_running(
        &mut self,
        found: Vec<(String, u64)>,
        now: Now,
        out: &mut Vec<Action>,
    ) {
        let mut skipped = 0;
        for (path, cgroup_id) in found {
            let Some(identity) = Identity::of_cgroup(&path) else {
                continue;
            };
            if self.containers.contains_key(&cgroup_id) {
                continue;
            }
            if !self.config.include_running {
                skipped += 1;
                continue;
            }
            out.push(Action::MarkRunning { cgroup_id, path });
            self.track(cgroup_id, identity, Start::Late, now);
        }
        if skipped > 0 {
            info!(
                containers = skipped,
                "containers already running are not recorded (see --include-running)"
            );
        }
    }

    /// Rows the kernel made whose event never arrived (the ring buffer was
    /// full, or an agent killed between reading events and its checkpoint)
    /// are looked for below the roots. A row counts only when the tick
    /// before found it without an event too.
    pub(super) fn step_rows(&mut self, _now: Now, out: &mut Vec<Action>) -> Flow {
        let rows = match self.round.as_mut().map(|r| &mut r.kind) {
            Some(super::round::Kind::Tick { rows, .. }) => std::mem::take(rows),
            _ => Vec::new(),
        };
        let (lost, waiting): (BTreeSet<u64>, BTreeSet<u64>) = rows
            .into_iter()
            .filter(|id| !self.containers.contains_key(id) && !self.drops.contains(id))
            .partition(|id| self.rowless.contains(id));
        self.rowless = waiting;
        if lost.is_empty() {
            return Flow::Next(Step::Identify);
        }
        out.push(Action::FindCgroups {
            roots: self.config.roots.clone(),
            ids: lost.into_iter().collect(),
        });
        Flow::Await
    }

    pub(super) fn on_found(&mut self, found: Vec<(u64, Place)>, now: Now, out: &mut Vec<Action>) {
        for (cgroup_id, place) in found {
            match place {
                Place::Path(path) => match Identity::of_cgroup(&path) {
                    Some(identity) => {
                        self.track(cgroup_id, identity, Start::Exec, now);
                    }
                    // After a restart: a cgroup joined to its container.
                    None => out.push(self.unmark_or_join(cgroup_id)),
                },
                // Gone before it could be named: keep what it did.
                Place::Gone(Some(snapshot)) if !snapshot.is_empty() => {
                    warn!(
                        cgroup_id,
                        "a cgroup ended before it could be named; its result is cgroup-<id>"
                    );
                    let recording = self.unnamed_recording(cgroup_id, &snapshot, now);
                    if let Some(round) = self.round.as_mut() {
                        round.writes.insert(
                            recording.container_id.clone(),
                            (recording, Pending::Unnamed(cgroup_id)),
                        );
                    }
                }
                Place::Gone(_) => out.push(Action::Unmark(cgroup_id)),
            }
        }
        if self.awaits(Step::Rows) {
            self.run(Step::Identify, now, out);
        }
    }

    /// Asks the runtime who these containers are, unless it was left
    /// alone after a failure or already said.
    fn ask_runtime(&self, candidates: Vec<u64>, now: Now) -> Option<Action> {
        if !self.config.runtime || self.runtime_quiet_until.is_some_and(|t| now.instant < t) {
            return None;
        }
        let ask: Vec<(u64, String)> = candidates
            .into_iter()
            .filter_map(|id| {
                let c = self.containers.get(&id)?;
                c.identity
                    .runtime
                    .is_none()
                    .then(|| (id, c.identity.container_id.clone()))
            })
            .collect();
        (!ask.is_empty()).then_some(Action::AskRuntime(ask))
    }

    /// Asks the runtime about every container it has not named, until it
    /// does: a Pod's sandbox is not known when its cgroup is made; the last
    /// time just before the container's end is read.
    pub(super) fn step_identify(&mut self, now: Now, out: &mut Vec<Action>) -> Flow {
        let ids = self.containers.keys().copied().collect();
        match self.ask_runtime(ids, now) {
            Some(ask) => {
                out.push(ask);
                Flow::Await
            }
            None => Flow::Next(Step::Watch),
        }
    }

    pub(super) fn on_runtime_answers(
        &mut self,
        answers: Vec<(u64, Result<RuntimeAnswer, String>)>,
        now: Now,
        out: &mut Vec<Action>,
    ) {
        for (cgroup_id, answer) in answers {
            let container = self
                .containers
                .get(&cgroup_id)
                .map(|c| c.identity.container_id.clone())
                .unwrap_or_default();
            match answer {
                Ok(RuntimeAnswer::Container(meta)) => {
                    if let Some(c) = self.containers.get_mut(&cgroup_id) {
                        c.identity.runtime = Some(meta);
                    }
                }
                Ok(RuntimeAnswer::Sandbox) => {
                    debug!(%container, "a Pod sandbox; not recorded");
                    self.untrack(cgroup_id, out);
                }
                Ok(RuntimeAnswer::Unknown) => {
                    debug!(%container, "not known to the runtime yet");
                }
                Err(error) => {
                    self.runtime_quiet_until = Some(now.instant + RUNTIME_QUIET);
                    warn!(
                        %error,
                        %container,
                        "cannot ask the runtime about a container; asking again in {}s",
                        RUNTIME_QUIET.as_secs()
                    );
                }
            }
        }
        if self.awaits(Step::Identify) {
            self.run(Step::Watch, now, out);
        } else {
            self.look_up_profiles(now, out);
        }
    }

    pub(super) fn step_observe(&mut self, out: &mut Vec<Action>) -> Flow {
        let enforced = self.enforced_to_observe();
        if self.containers.is_empty() && enforced.is_empty() {
            return Flow::Next(Step::Write);
        }
        out.push(Action::Observe(
            self.containers
                .iter()
                .map(|(id, c)| (*id, c.identity.cgroup.clone()))
                .chain(enforced)
                .collect(),
        ));
        Flow::Await
    }

    /// Reads containers: progress, base set, whether they ended (then their
    /// results are written and they are finished), snapshots of running
    /// ones in a snapshot or the stop, and (Kubernetes) the progress of
    /// chosen ones every poll interval.
    pub(super) fn on_observed(
        &mut self,
        observations: Vec<Observation>,
        now: Now,
        out: &mut Vec<Action>,
    ) {
        if !self.awaits(Step::Observe) {
            return;
        }
        let (forced, stop) = self
            .round
            .as_ref()
            .map_or((false, false), |r| (r.forced(), r.is_stop()));
        let poll_interval = self.config.poll_interval;
        let mut enforced_gone = Vec::new();
        for observation in observations {
            let id = observation.cgroup_id;
            if self.observed_enforced(&observation) {
                if observation.populated.is_none() {
                    enforced_gone.push(id);
                }
                continue;
            }
            let Some(snapshot) = observation.snapshot else {
                // Its rows are gone: nothing to write.
                if let Some(c) = self.containers.remove(&id) {
                    self.refusals_ended(&c, out, id);
                }
                continue;
            };
            let Some(c) = self.containers.get_mut(&id) else {
                continue;
            };
            if let (Some(counts), RefusalWatch::Watched { log, written, .. }) =
                (&observation.refusals, &mut c.refusals)
                && log.counted(counts)
            {
                *written = false;
            }
            // Empty after it ran, or gone.
            let ended = (snapshot.recording && observation.populated != Some(true))
                || observation.populated.is_none();
            let due = c
                .last_poll
                .is_none_or(|t| now.instant.duration_since(t) >= poll_interval);
            if ended || forced || due {
                c.last_poll = Some(now.instant);
                c.last_seen = now.time;
                if snapshot.len() > c.known {
                    c.known = snapshot.len();
                    c.last_new_syscall = Some(now.time);
                }
            }
            if c.base_set.is_none() && snapshot.recording {
                c.base_set = Some(base_set_for(&self.config.base_set, snapshot.no_new_privs));
            }
            // With Kubernetes, only what a recording selected is written.
            let writable = !matches!(c.decision, Decision::Undecided { .. });
            let chosen = matches!(c.decision, Decision::Chosen(_));
            if ended && !snapshot.recording {
                debug!(
                    cgroup_id = id,
                    "a container cgroup ended before its entrypoint ran"
                );
                self.untrack(id, out);
                continue;
            }
            if ended {
                let recording = recording_of(&self.config, c, &snapshot, State::Exited);
                if !writable {
                    self.finish(id, recording, now, out);
                } else if let Some(round) = self.round.as_mut() {
                    round.writes.insert(
                        recording.container_id.clone(),
                        (recording, Pending::Ended(id)),
                    );
                }
                continue;
            }
            if !snapshot.recording {
                continue;
            }
            if forced
                && writable
                && let Some(round) = self.round.as_mut()
            {
                let recording = recording_of(&self.config, c, &snapshot, State::Running);
                round.writes.insert(
                    recording.container_id.clone(),
                    (recording, Pending::Running),
                );
            }
            let merge_due = chosen
                && (stop
                    || c.last_merge
                        .is_none_or(|t| now.instant.duration_since(t) >= poll_interval));
            if merge_due {
                c.last_merge = Some(now.instant);
                let recording = recording_of(&self.config, c, &snapshot, State::Running);
                self.contribute_running(id, &recording, now);
            }
        }
        self.write_refusals(out);
        self.after_observed_enforced(&enforced_gone, now, out);
        self.run(Step::Write, now, out);
    }

    pub(super) fn on_results_written(
        &mut self,
        results: Vec<(String, Result<(), String>)>,
        now: Now,
        out: &mut Vec<Action>,
    ) {
        for (name, result) in results {
            let Some((recording, pending)) =
                self.round.as_mut().and_then(|r| r.writes.remove(&name))
            else {
                continue;
            };
            match result {
                Ok(()) => {
                    self.written += 1;
                    info!(
                        container = %recording.container_id,
                        name = recording.container_name.as_deref().unwrap_or(""),
                        pod = recording.pod.as_ref().and_then(|p| p.name.as_deref()).unwrap_or(""),
                        state = ?recording.state,
                        syscalls = recording.syscalls.len(),
                        "recording written"
                    );
                    match pending {
                        Pending::Ended(id) => self.finish(id, recording, now, out),
                        Pending::Unnamed(id) => out.push(Action::Unmark(id)),
                        Pending::Named => {
                            if let Some(kube) = self.kube.as_mut() {
                                kube.unwritten.retain(|(n, _)| *n != name);
                            }
                        }
                        Pending::Running => {}
                    }
                }
                Err(error) => {
                    // An ended container stays tracked, and is written at
                    // the next tick; one failure holds up no other.
                    warn!(%error, container = %recording.container_id, "cannot write a result; will retry");
                    if let Some(round) = self.round.as_mut() {
                        round.failed = true;
                    }
                }
            }
        }
        if self.awaits(Step::Write) {
            if let Some(round) = self.round.as_mut() {
                round.writes.clear();
            }
            let next = self.after_write();
            self.run(next, now, out);
        }
    }

    /// A container whose result is safe (written, or kept for a decision):
    /// it is forgotten, its rows dropped once the checkpoint no longer
    /// names it, and its result goes where its decision says.
    fn finish(
        &mut self,
        cgroup_id: u64,
        recording: ContainerRecording,
        now: Now,
        out: &mut Vec<Action>,
    ) {
        let Some(c) = self.containers.remove(&cgroup_id) else {
            return;
        };
        self.refusals_ended(&c, out, cgroup_id);
        self.drops.insert(cgroup_id);
        let base_set = c
            .base_set
            .unwrap_or_else(|| fallback_base_set(&self.config.base_set));
        match c.decision {
            Decision::Record => {}
            Decision::Chosen(chosen) => {
                self.contribute(&chosen, &recording, base_set.as_ref(), now, true)
            }
            Decision::Undecided { .. } => {
                if let Some(kube) = self.kube.as_mut() {
                    kube.ended.push(Ended {
                        identity: c.identity,
                        recording,
                        base_set,
                        since: Some(now.instant),
                    });
                }
            }
        }
    }
}
