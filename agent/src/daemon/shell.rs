//! The daemon's I/O: one task owns the loaded kernel program for the whole
//! run. The loop wakes on cgroups the kernel marked, on a timer and on
//! signals, hands each to the state machine, and carries out what it asks
//! in order, feeding every answer back (depth first: an answer's actions
//! run before the rest of the batch).
//!
//! The refusal watch's first-refusal events wake the loop too, so that a
//! refusal is written at once.
//!
//! SIGUSR1 writes a snapshot of every running container (`syscensus
//! snapshot` sends it); SIGTERM and SIGINT write the state of every running
//! container and stop.
use std::{collections::VecDeque, time::Duration};

use tokio::{
    io::{Interest, unix::AsyncFd},
    signal::unix::{SignalKind, signal},
};
use tracing::{info, warn};

use super::{
    DaemonError, checkpoint,
    cri::Cri,
    kube::Kube,
    machine::{Action, Config, Input, Machine, Now, REFUSAL_FAST_INTERVAL, WatchAnswer},
    metrics,
    state::StateDir,
};
use crate::{
    bpf::{RefusalEvents, Tracer, monotonic_to_system},
    cgroup::Hierarchy,
    refusal::report::First,
};

mod node;

/// How often the daemon looks at the containers it records.
const TICK: Duration = Duration::from_millis(250);

/// The daemon's parts, wired once.
#[derive(Debug)]
pub(crate) struct Shell {
    machine: Machine,
    tracer: Tracer,
    hierarchy: Hierarchy,
    state: StateDir,
    cri: Option<Cri>,
    kube: Option<Kube>,
    metrics: metrics::Shared,
    /// The kubelet roots, from the configuration.
    roots: Vec<String>,
    capacity: u32,
    snapshots: u64,
    detach_on_stop: bool,
}

/// What the shell is made of.
#[derive(Debug)]
pub(crate) struct Parts {
    pub tracer: Tracer,
    pub hierarchy: Hierarchy,
    pub state: StateDir,
    pub cri: Option<Cri>,
    pub kube: Option<Kube>,
    pub metrics: metrics::Shared,
    pub capacity: u32,
    /// Detach the programs when stopping, even when they are pinned.
    pub detach_on_stop: bool,
}

impl Shell {
    /// Carries on from the checkpoint and the kernel's rows, and starts the
    /// machine: any failure here stops the daemon.
    pub(crate) async fn start(config: Config, parts: Parts) -> Result<Shell, DaemonError> {
        let checkpoint = checkpoint::load(&parts.state);
        let rows = parts.tracer.marked()?;
        let roots = config.roots.clone();
        let (machine, actions) = Machine::start(config, checkpoint, &rows, Now::current());
        let mut shell = Shell {
            machine,
            tracer: parts.tracer,
            hierarchy: parts.hierarchy,
            state: parts.state,
            cri: parts.cri,
            kube: parts.kube,
            metrics: parts.metrics,
            roots,
            capacity: parts.capacity,
            snapshots: 0,
            detach_on_stop: parts.detach_on_stop,
        };
        shell.execute(actions).await?;
        Ok(shell)
    }

    /// Runs until SIGTERM or SIGINT, then writes everything; pinned
    /// programs stay attached for the next agent unless told to detach
    /// (the pinned maps stay either way).
    pub(crate) async fn run(mut self) -> Result<(), DaemonError> {
        let Some(events) = self.tracer.take_events() else {
            return Err(DaemonError::System {
                what: "the kernel event buffer is already taken".into(),
                source: std::io::Error::other("taken"),
            });
        };
        // SAFETY: the ring buffer owns its file descriptor for as long as
        // the AsyncFd owns the ring buffer, and always returns the same one.
        let mut events = unsafe { AsyncFd::register_with_interest(events, Interest::READABLE) }
            .map_err(|e| DaemonError::System {
                what: "cannot poll the kernel event buffer".into(),
                source: e.into(),
            })?;
        let signal_error = |source| DaemonError::System {
            what: "cannot handle signals".into(),
            source,
        };
        // Without it (the watch is unavailable here) the counts still come
        // with every look.
        let mut refused = match self.tracer.take_refusal_events() {
            // SAFETY: as above, for the refusals' ring buffer.
            Some(ring) => {
                match unsafe { AsyncFd::register_with_interest(ring, Interest::READABLE) } {
                    Ok(fd) => Some(fd),
                    Err(error) => {
                        warn!(%error, "cannot poll the refusal event buffer; refusals are read each tick");
                        None
                    }
                }
            }
            None => None,
        };
        let mut usr1 = signal(SignalKind::user_defined1()).map_err(signal_error)?;
        let mut term = signal(SignalKind::terminate()).map_err(signal_error)?;
        let mut int = signal(SignalKind::interrupt()).map_err(signal_error)?;
        self.state.write_pid()?;
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut lookup = tokio::time::interval(REFUSAL_FAST_INTERVAL);
        lookup.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        info!(
            state_dir = %self.state.root().display(),
            kubernetes = self.kube.is_some(),
            "agent running"
        );
        let result = loop {
            tokio::select! {
                ready = events.readable_mut() => {
                    let mut guard = match ready {
                        Ok(guard) => guard,
                        Err(source) => break Err(DaemonError::System { what: "kernel event buffer".into(), source }),
                    };
                    let drained = guard.get_inner_mut().drain();
                    guard.clear_ready();
                    self.step_logged(Input::Cgroups(drained)).await;
                }
                ready = readable(&mut refused) => {
                    if let Some(mut guard) = ready {
                        let drained = guard.get_inner_mut().drain();
                        guard.clear_ready();
                        self.step_logged(Input::Refused(firsts(&drained))).await;
                    }
                }
                _ = lookup.tick(), if self.machine.fast_lookups(std::time::Instant::now()) => {
                    self.step_logged(Input::LookUpProfiles).await;
                }
                _ = tick.tick() => {
                    // Events waiting first, so the tick reads their
                    // containers at once. A row whose event comes later
                    // still (behind a slow runtime call) is not taken for a
                    // lost one: the machine waits for a second look.
                    let drained = events.get_mut().drain();
                    self.step_logged(Input::Cgroups(drained)).await;
                    // Sessions that ended are kept in userspace and their
                    // rows freed.
                    if let Err(error) = self.tracer.reap() {
                        warn!(%error, "cannot read the sessions");
                    }
                    if let Some(refused) = refused.as_mut() {
                        let drained = refused.get_mut().drain();
                        if !drained.is_empty() {
                            self.step_logged(Input::Refused(firsts(&drained))).await;
                        }
                    }
                    let rows = self.tracer.marked().unwrap_or_else(|error| {
                        warn!(%error, "cannot list the kernel's rows");
                        Vec::new()
                    });
                    let cluster = self.kube.as_ref().map(Kube::cluster);
                    self.step_logged(Input::Tick { rows, cluster }).await;
                    if let Some(kube) = self.kube.as_mut() {
                        let installations = kube.install().await;
                        if !installations.is_empty() {
                            self.step_logged(Input::Installations(installations)).await;
                        }
                    }
                    self.update_metrics();
                }
                _ = usr1.recv() => self.step_logged(Input::Snapshot).await,
                _ = term.recv() => break Ok(()),
                _ = int.recv() => break Ok(()),
            }
        };
        // Whatever ended meanwhile, then what still runs.
        let drained = events.get_mut().drain();
        self.step_logged(Input::Cgroups(drained)).await;
        if let Err(error) = self.tracer.reap() {
            warn!(%error, "cannot read the sessions");
        }
        let stopped = self.step(Input::Stop).await;
        let pending = self.machine.pending();
        if pending > 0 {
            warn!(
                pending,
                "results not written to the cluster before stopping"
            );
        }
        if self.detach_on_stop || !self.tracer.is_pinned() {
            self.tracer.release();
        } else {
            // A rolling update: the programs go on recording until the next
            // agent takes over, which carries on from the pinned maps.
            info!(
                "programs left attached and pinned for the next agent (syscensus uninstall removes them)"
            );
        }
        if let Err(error) = self.state.set_watching(None) {
            warn!(%error, "cannot remove the watching file");
        }
        self.state.remove_pid();
        info!(written = self.machine.written(), "agent stopped");
        result.and(stopped)
    }

    async fn step(&mut self, input: Input) -> Result<(), DaemonError> {
        let actions = self.machine.handle(input, Now::current());
        self.execute(actions).await
    }

    async fn step_logged(&mut self, input: Input) {
        if let Err(error) = self.step(input).await {
            warn!(%error, "periodic work failed");
        }
    }

    /// Carries out `actions` in order; an answer's actions go first. Every
    /// action is tried; the first failure is returned, later ones logged.
    async fn execute(&mut self, actions: Vec<Action>) -> Result<(), DaemonError> {
        let mut queue: VecDeque<Action> = actions.into();
        let mut first_error = None;
        while let Some(action) = queue.pop_front() {
            match self.perform(action).await {
                Ok(Some(input)) => {
                    let more = self.machine.handle(input, Now::current());
                    for action in more.into_iter().rev() {
                        queue.push_front(action);
                    }
                }
                Ok(None) => {}
                Err(error) if first_error.is_none() => first_error = Some(error),
                Err(error) => warn!(%error, "periodic work failed"),
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Carries out one action; a read returns its answer.
    async fn perform(&mut self, action: Action) -> Result<Option<Input>, DaemonError> {
        Ok(match action {
            Action::Arm { roots } => Some(self.arm(&roots)?),
            Action::Disarm { roots } => {
                self.disarm(&roots)?;
                None
            }
            Action::Unwatch(id) => {
                self.tracer.unwatch(id)?;
                None
            }
            Action::Unmark(id) => {
                self.tracer.unmark(id)?;
                None
            }
            Action::UnmarkOrJoin {
                cgroup_id,
                containers,
            } => {
                self.tracer
                    .unmark_or_join(cgroup_id, |owner| containers.contains(&owner))?;
                None
            }
            Action::ScanRunning { roots } => Some(Input::Running(
                roots
                    .iter()
                    .flat_map(|root| self.hierarchy.descendants(root))
                    .collect(),
            )),
            Action::MarkRunning { cgroup_id, path } => {
                self.mark_running(cgroup_id, &path)?;
                None
            }
            Action::FindCgroups { roots, ids } => Some(Input::Found(self.find(&roots, ids)?)),
            Action::AskRuntime(containers) => Some(self.ask_runtime(containers).await),
            Action::Observe(containers) => Some(Input::Observed(self.observe(containers))),
            Action::WriteResults(results) => Some(Input::ResultsWritten(
                results
                    .into_iter()
                    .map(|(name, recording)| {
                        let written = self.state.write(&name, &recording);
                        (name, written.map_err(|e| e.to_string()))
                    })
                    .collect(),
            )),
            Action::ResolveWorkloads(pods) => match self.kube.as_mut() {
                Some(kube) => Some(Input::Workloads(kube.resolve(pods).await)),
                None => None,
            },
            Action::WriteProfiles(contributions) => match self.kube.as_mut() {
                Some(kube) => Some(kube.write_profiles(contributions).await),
                None => None,
            },
            Action::WriteEvents(writes) => match self.kube.as_ref() {
                Some(kube) => Some(Input::EventsWritten(kube.write_events(writes).await)),
                None => None,
            },
            Action::ReportStatus(report) => {
                let counters = self.tracer.counters().unwrap_or_default();
                let drops = counters.row_map_full + counters.events_lost + counters.members_full;
                if let Some(kube) = self.kube.as_mut() {
                    kube.report(&report, drops).await;
                }
                None
            }
            Action::SaveCheckpoint(checkpoint) => Some(Input::CheckpointSaved(
                checkpoint::save(&checkpoint, &self.state).map_err(|e| e.to_string()),
            )),
            Action::SnapshotDone => {
                self.snapshots += 1;
                self.state.write_snapshot_count(self.snapshots)?;
                info!(round = self.snapshots, "snapshot written");
                None
            }
            Action::WatchRefusals(containers) => {
                let mut answers = Vec::new();
                for (cgroup_id, container) in containers {
                    let answer = self.watch_refusals(cgroup_id, &container).await;
                    let failed = matches!(answer, WatchAnswer::RuntimeFailed(_));
                    answers.push((cgroup_id, answer));
                    if failed {
                        break;
                    }
                }
                Some(Input::RefusalsWatched(answers))
            }
            Action::WatchEnforced(containers) => {
                let mut answers = Vec::new();
                for (cgroup_id, container) in containers {
                    let answer = self.watch_refusals(cgroup_id, &container).await;
                    let failed = matches!(answer, WatchAnswer::RuntimeFailed(_));
                    answers.push((cgroup_id, answer));
                    if failed {
                        break;
                    }
                }
                Some(Input::EnforcedWatched(answers))
            }
            Action::FindContainers { roots, ids } => {
                Some(Input::ContainersFound(self.find_containers(&roots, &ids)))
            }
            Action::WriteRefusalStatus(writes) => match self.kube.as_ref() {
                Some(kube) => Some(Input::RefusalStatusWritten(
                    kube.write_refusal_status(writes).await,
                )),
                None => None,
            },
            Action::UnwatchRefusals(cgroup_id) => {
                if let Err(error) = self.tracer.unwatch_refusals(cgroup_id) {
                    warn!(%error, cgroup_id, "cannot stop watching a container's refusals");
                }
                None
            }
            Action::WriteRefusals(reports) => {
                for (name, report) in reports {
                    if let Err(error) = self.state.write_refusals(&name, &report) {
                        warn!(%error, container = %name, "cannot write a refusal report; written again when it changes");
                    }
                }
                None
            }
        })
    }

    fn update_metrics(&self) {
        let counters = self.tracer.counters().unwrap_or_default();
        let rows = self.tracer.marked().map(|m| m.len()).unwrap_or(0);
        let Ok(mut m) = self.metrics.lock() else {
            return;
        };
        m.containers_tracked = self.machine.containers().len() as u64;
        m.results_written = self.machine.written();
        m.rows_used = rows as u64;
        m.rows_capacity = u64::from(self.capacity);
        m.map_bytes = self.tracer.map_bytes();
        m.sys_enter_attached = self.tracer.sys_enter_attached();
        m.out_of_range = counters.out_of_range;
        m.row_map_full = counters.row_map_full;
        m.containers_lost = self.machine.lost();
        m.events_lost = counters.events_lost;
        m.outsider_syscalls = counters.outsider_syscalls;
        m.members_full = counters.members_full;
        m.sessions = counters.sessions;
        m.hooks = counters.hooks;
        m.alias_full = counters.alias_full;
        m.containers_watched = self.machine.watched_refusals() as u64;
        m.refusals = self.machine.refusal_series();
        let watch = self.tracer.watch_counters().unwrap_or_default();
        m.refusals_uncounted = watch.map_full;
        m.refusal_events_lost = watch.events_lost;
        m.last_tick = Some(std::time::Instant::now());
        (m.kube_events, m.kube_events_dropped) = self.machine.event_counts();
        match &self.kube {
            Some(kube) => {
                m.api_errors = self.machine.api_errors()
                    + kube.status_errors()
                    + self.machine.event_errors()
                    + self.machine.refusal_status_errors();
                m.results_pending = self.machine.pending() as u64;
                m.recordings_active = kube.active_count() as u64;
                m.syscalls_recorded = self.machine.syscalls() as u64;
                m.ready = kube.ready();
            }
            None => m.ready = true,
        }
    }
}

/// Waits until the refusals' ring buffer is readable; never, without one.
async fn readable(
    ring: &mut Option<AsyncFd<RefusalEvents>>,
) -> Option<tokio::io::unix::AsyncFdReadyMutGuard<'_, RefusalEvents>> {
    match ring {
        Some(fd) => match fd.readable_mut().await {
            Ok(guard) => Some(guard),
            Err(error) => {
                warn!(%error, "cannot poll the refusal event buffer; refusals are read each tick");
                std::future::pending().await
            }
        },
        None => std::future::pending().await,
    }
}

/// The time of day of the kernel's `CLOCK_MONOTONIC` nanoseconds.
fn time_of(ns: u64) -> jiff::Timestamp {
    jiff::Timestamp::try_from(monotonic_to_system(ns)).unwrap_or_else(|_| jiff::Timestamp::now())
}

fn firsts(events: &[crate::bpf::FirstRefusal]) -> Vec<First> {
    events.iter().map(|e| First::of(e, time_of)).collect()
}
