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
    identity::Identity,
    kube::Kube,
    machine::{
        Action, Config, Input, Machine, Now, Observation, Place, REFUSAL_FAST_INTERVAL, WatchAnswer,
    },
    metrics,
    state::StateDir,
};
use crate::{
    bpf::{RefusalEvents, Tracer, monotonic_to_system},
    cgroup::Hierarchy,
    refusal::{
        self,
        report::{Counts, First, WatchedProfile},
        runtime::{RuntimeProfileError, StateRuntime},
    },
    syscalls::Arch,
};

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

    /// Marks a running container with the cgroups below it and the
    /// processes in them (the kernel adds cgroups made below it later).
    fn mark_running(&mut self, cgroup_id: u64, path: &str) -> Result<(), DaemonError> {
        let below = self.hierarchy.descendants(path);
        let mut pids = self.hierarchy.processes(path);
        for (child, _) in &below {
            pids.extend(self.hierarchy.processes(child));
        }
        pids.sort_unstable();
        self.tracer
            .mark_recording(cgroup_id, pids.first().copied().unwrap_or(0), &pids)?;
        for (_, child) in below {
            self.tracer.alias(child, cgroup_id)?;
        }
        Ok(())
    }

    /// Attaches `sys_enter` first, so that a container marked from now on
    /// loses nothing, then watches the roots, then says so.
    fn arm(&mut self, roots: &[String]) -> Result<Input, DaemonError> {
        self.tracer.attach_sys_enter()?;
        let paths: Vec<&str> = roots.iter().map(String::as_str).collect();
        self.tracer.set_root_paths(&paths)?;
        let mut watched = Vec::new();
        for root in roots {
            match self.hierarchy.id_of(root) {
                Some(id) => {
                    self.tracer.watch(id)?;
                    watched.push((root.clone(), id));
                    info!(%root, "watching");
                }
                None => info!(%root, "not there yet; watched from when it is made"),
            }
        }
        // Either way every container made from now on is recorded.
        self.state.set_watching(Some(roots))?;
        Ok(Input::Armed { roots: watched })
    }

    /// Undoes [`arm`](Self::arm), for the roots the machine knows and
    /// whatever the roots' directories are now (a crashed run may have left
    /// them watched in the pinned maps).
    fn disarm(&mut self, roots: &[u64]) -> Result<(), DaemonError> {
        self.state.set_watching(None)?;
        self.tracer.set_root_paths(&[])?;
        let now: Vec<u64> = self
            .roots
            .iter()
            .filter_map(|r| self.hierarchy.id_of(r))
            .collect();
        for id in roots.iter().chain(&now) {
            self.tracer.unwatch(*id)?;
        }
        self.tracer.detach_sys_enter()?;
        Ok(())
    }

    /// Where the cgroups of these rows are: below a root, or gone (with
    /// what their rows hold).
    fn find(&self, roots: &[String], ids: Vec<u64>) -> Result<Vec<(u64, Place)>, DaemonError> {
        let by_id: std::collections::HashMap<u64, String> = roots
            .iter()
            .flat_map(|root| self.hierarchy.descendants(root))
            .map(|(path, id)| (id, path))
            .collect();
        let mut found = Vec::new();
        for id in ids {
            let place = match by_id.get(&id) {
                Some(path) => Place::Path(path.clone()),
                None => Place::Gone(self.tracer.snapshot(id)?),
            };
            found.push((id, place));
        }
        Ok(found)
    }

    /// Asks the runtime, in order, up to the first failure.
    async fn ask_runtime(&mut self, containers: Vec<(u64, String)>) -> Input {
        let mut answers = Vec::new();
        if let Some(cri) = self.cri.as_mut() {
            for (cgroup_id, container) in containers {
                let answer = cri.lookup(&container).await.map_err(|e| e.to_string());
                let failed = answer.is_err();
                answers.push((cgroup_id, answer));
                if failed {
                    break;
                }
            }
        }
        Input::RuntimeAnswers(answers)
    }

    /// Reads the profile a container runs under from its runtime (CRI's
    /// verbose status, else runc's or crun's state directory) and watches
    /// what it refuses.
    async fn watch_refusals(&mut self, cgroup_id: u64, container: &str) -> WatchAnswer {
        let mut found = None;
        let mut cri_error = None;
        if let Some(cri) = self.cri.as_mut() {
            match cri.verbose_info(container).await {
                Ok(Some(info)) => {
                    found = Some(("cri", refusal::runtime::from_cri_info(&info)));
                }
                Ok(None) => {}
                // The state directories may still say.
                Err(error) => cri_error = Some(error.to_string()),
            }
        }
        let (source, profile) = match found {
            Some(found) => found,
            None => match refusal::runtime::from_default_state_dirs(container) {
                Ok(None) => {
                    return cri_error.map_or(WatchAnswer::NotFound, WatchAnswer::RuntimeFailed);
                }
                Ok(Some((runtime, profile))) => (
                    match runtime {
                        StateRuntime::Runc => "runc",
                        StateRuntime::Crun => "crun",
                    },
                    Ok::<_, RuntimeProfileError>(profile),
                ),
                Err(error) => return WatchAnswer::Failed(error.to_string()),
            },
        };
        let profile = match profile {
            Ok(Some(profile)) => profile,
            Ok(None) => return WatchAnswer::Unconfined,
            Err(error) => return WatchAnswer::Failed(error.to_string()),
        };
        let build = match refusal::watch_policy(&profile, Arch::native()) {
            Ok(build) => build,
            Err(error) => return WatchAnswer::Failed(error.to_string()),
        };
        if let Err(error) = self.tracer.watch_refusals(cgroup_id, &build.policy) {
            return WatchAnswer::Failed(error.to_string());
        }
        WatchAnswer::Watched(WatchedProfile {
            source: source.to_owned(),
            default_action: serde_json::to_value(profile.default_action)
                .ok()
                .and_then(|v| v.as_str().map(ToOwned::to_owned))
                .unwrap_or_default(),
            unknown_names: build.unknown_names.into_iter().collect(),
        })
    }

    /// The cgroups below `roots` of the containers with runtime ids `ids`
    /// (their paths end in the id): runtime id, cgroup id, path.
    fn find_containers(&self, roots: &[String], ids: &[String]) -> Vec<(String, u64, String)> {
        roots
            .iter()
            .flat_map(|root| self.hierarchy.descendants(root))
            .filter_map(|(path, cgroup_id)| {
                let identity = Identity::of_cgroup(&path)?;
                ids.contains(&identity.container_id).then_some((
                    identity.container_id,
                    cgroup_id,
                    path,
                ))
            })
            .collect()
    }

    /// Reads containers: whether their cgroups hold processes, and their
    /// rows. A container whose rows cannot be read is left out (and looked
    /// at again next time).
    fn observe(&self, containers: Vec<(u64, String)>) -> Vec<Observation> {
        let mut observations = Vec::new();
        for (cgroup_id, path) in containers {
            let populated = self.hierarchy.is_populated(&path);
            let refusals = match self.tracer.refusals(cgroup_id) {
                Ok(refusals) => refusals.map(|r| Counts::of(&r, time_of)),
                Err(error) => {
                    warn!(%error, cgroup_id, "cannot read a container's refusals");
                    None
                }
            };
            match self.tracer.snapshot(cgroup_id) {
                Ok(snapshot) => observations.push(Observation {
                    cgroup_id,
                    populated,
                    snapshot,
                    refusals,
                }),
                Err(error) => warn!(%error, cgroup_id, "cannot read a container's rows"),
            }
        }
        observations
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
