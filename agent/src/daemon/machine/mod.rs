//! The node daemon's decisions, with no I/O: which marked cgroups are
//! containers, who they are, when one ended, what to record, keep and write,
//! and when. Inputs go in ([`Input`]: kernel events, ticks, signals, and the
//! answers to what it asked), actions come out ([`Action`]), and the time is
//! passed in ([`Now`]). The shell (`daemon::shell`) carries out the actions
//! in order and feeds each answer back as the next input.
//!
//! A tick is a round of steps; a step that needs to read something emits the
//! read as its last action and waits for the answer:
//!
//! ```text
//! Tick ─► rows without an event? ─► FindCgroups ─► Found
//!      ─► containers the runtime has not named ─► AskRuntime ─► RuntimeAnswers
//!      ─► Observe (every container: populated?, what the kernel saw) ─► Observed
//!      ─► WriteResults (ended, unnamed, snapshots) ─► ResultsWritten
//!      ─► Kubernetes: arm or disarm; decide (ResolveWorkloads ─► Workloads)
//!      ─► WriteProfiles (changed results, when due) ─► ProfilesWritten
//!      ─► SaveCheckpoint ─► CheckpointSaved ─► Unmark the rows of containers
//!                                              whose results are safe
//! ```
//!
//! Containers that run under a seccomp profile are watched for what it
//! refuses them: a tick asks the shell to watch the containers not looked
//! at yet (`WatchRefusals`, from the profile their runtime holds; asked
//! again until the runtime has it, for [`REFUSAL_LOOKUP`]), the counts come
//! with each look (`Observe`), the first refusal of each syscall as an
//! event (`Input::Refused`), and a report is written whenever it changed
//! (`WriteRefusals`); a container that ends is unwatched after its last
//! report.
//!
//! A snapshot (SIGUSR1) and the stop (SIGTERM) are shorter rounds of the
//! same steps. In Kubernetes mode, what an operator should hear of (a
//! recording started on this node, a converged profile that grew, a profile
//! installed or refused) becomes a Kubernetes Event ([`events`]); the
//! writes due go out after any input, within the node's bound. Kernel
//! events are taken between rounds: the cgroups the
//! kernel marked are classified at once and their runtime asked at once,
//! so that a container removed with its Pod the moment it ends keeps its
//! name.
use std::{
    collections::{BTreeMap, BTreeSet},
    time::{Duration, Instant},
};

use super::{
    contribution::{Contribution, Key},
    identity::Identity,
};
use crate::{
    bpf::Snapshot,
    container_recording::{ContainerRecording, ExecCommand, PodRef, SessionPolicy, Start},
    profile::BaseSet,
    refusal::report::{Counts, RefusalLog, WatchedProfile},
};

mod cluster;
mod config;
mod containers;
mod contributions;
pub mod events;
mod messages;
mod persist;
mod production;
mod refusals;
mod results;
mod round;
mod status;
#[cfg(test)]
mod testkit;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_cluster;
#[cfg(test)]
mod tests_events;
#[cfg(test)]
mod tests_production;

pub use cluster::{Cluster, RecordingView};
pub use config::{BaseSetChoice, Config, KubeConfig};
pub use events::{EventFailure, EventWrite, Installation, Learned};
pub use messages::{Action, Input};
pub use persist::{Checkpoint, ContainerState};
pub use production::{Enforced, ProfileObject, StatusFailure};
pub use refusals::RefusalSeries;
pub use status::{RecordingSummary, StatusReport};

/// How long the runtime is left alone after a failed CRI call. Containers
/// that end meanwhile are written without a name (with Kubernetes, the Pod's
/// status names them).
pub const RUNTIME_QUIET: Duration = Duration::from_secs(5);

/// How long a container waits for its Pod to appear in the watch (or its
/// name to be known) before it is dropped.
pub const POD_TIMEOUT: Duration = Duration::from_secs(60);

/// How long the shell is asked for the profile a new container runs under
/// before it is taken to have none the agent can read (the runtime writes
/// its state when it creates the container).
pub const REFUSAL_LOOKUP: Duration = Duration::from_secs(10);

/// For how long after its cgroup is made a container's profile is looked
/// up at once and then every [`REFUSAL_FAST_INTERVAL`] rather than every
/// tick: a container is watched only from when its runtime has written its
/// state, and the runtime starts the workload right after.
pub const REFUSAL_FAST_LOOKUP: Duration = Duration::from_secs(1);
/// See [`REFUSAL_FAST_LOOKUP`].
pub const REFUSAL_FAST_INTERVAL: Duration = Duration::from_millis(5);

/// How often at most the checkpoint is saved while nothing forces it.
pub const CHECKPOINT_INTERVAL: Duration = Duration::from_secs(1);

/// The time: monotonic for intervals, wall-clock for what is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Now {
    pub instant: Instant,
    pub time: jiff::Timestamp,
}

impl Now {
    /// The current time.
    pub fn current() -> Now {
        Now {
            instant: Instant::now(),
            time: jiff::Timestamp::now(),
        }
    }
}

/// What a container is to the daemon: recorded, not decided on yet, or
/// chosen by recordings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Recorded for the node (without Kubernetes).
    Record,
    /// Kubernetes mode: no recording has selected it yet (its Pod, its
    /// name or its workload is not known yet).
    Undecided { since: Instant },
    /// Kubernetes mode: selected; its results go to these keys.
    Chosen(Chosen),
}

/// A container the recordings selected, and where its results go.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Chosen {
    pub keys: Vec<Key>,
    pub pod: PodRef,
    pub pod_name: String,
    pub container: String,
    pub init: bool,
    /// The exec probes and lifecycle hooks its Pod's spec runs in it: exec
    /// sessions running one of them are in its profile.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exec_commands: Vec<ExecCommand>,
    /// The recordings (among `keys`) that include every exec session.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub include_exec_sessions: Vec<String>,
}

impl Chosen {
    /// Which sessions go into the profiles of `recording`'s key (every
    /// recording's when `None`).
    pub fn sessions(&self, recording: Option<&str>) -> SessionPolicy {
        SessionPolicy::Commands {
            commands: self.exec_commands.clone(),
            include_others: recording
                .is_some_and(|r| self.include_exec_sessions.iter().any(|i| i == r)),
        }
    }
}

/// A container being recorded.
#[derive(Clone, Debug, PartialEq)]
pub struct Container {
    pub identity: Identity,
    pub start: Start,
    pub first_seen: jiff::Timestamp,
    pub last_seen: jiff::Timestamp,
    pub last_new_syscall: Option<jiff::Timestamp>,
    /// Distinct syscalls at the last look.
    pub known: usize,
    /// The base set, once decided (when its recording has started).
    pub base_set: Option<Option<BaseSet>>,
    pub decision: Decision,
    /// Whether what its profile refuses is watched.
    pub refusals: RefusalWatch,
    last_poll: Option<Instant>,
    last_merge: Option<Instant>,
}

/// Whether a container's refusals are watched.
#[derive(Clone, Debug, PartialEq)]
pub enum RefusalWatch {
    /// Not known yet: the shell is asked for its profile until `until`,
    /// often until `fast_until`.
    Pending { until: Instant, fast_until: Instant },
    /// Watched under this profile since `since`; `written` is false while
    /// the report has changes not written.
    Watched {
        profile: WatchedProfile,
        since: jiff::Timestamp,
        log: RefusalLog,
        written: bool,
    },
    /// Not watched: it runs without a profile, or its profile could not be
    /// read or watched.
    Off,
}

impl RefusalWatch {
    pub(super) fn pending(now: Now) -> RefusalWatch {
        RefusalWatch::Pending {
            until: now.instant + REFUSAL_LOOKUP,
            fast_until: now.instant + REFUSAL_FAST_LOOKUP,
        }
    }
}

/// The shell's answer to [`Action::WatchRefusals`] for one container.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WatchAnswer {
    /// Watched from now on, under this profile.
    Watched(WatchedProfile),
    /// It runs without a seccomp profile: nothing to watch.
    Unconfined,
    /// The runtime holds nothing for it (yet).
    NotFound,
    /// The runtime did not answer (CRI): asked again once it is no longer
    /// left alone ([`RUNTIME_QUIET`]). The shell asks about no further
    /// container of the batch.
    RuntimeFailed(String),
    /// Its profile could not be read or watched.
    Failed(String),
}

/// A container that ended before a recording selected it (Kubernetes
/// mode): its result waits for a decision.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Ended {
    pub identity: Identity,
    pub recording: ContainerRecording,
    #[serde(default)]
    pub base_set: Option<BaseSet>,
    #[serde(skip)]
    pub since: Option<Instant>,
}

/// What the kernel and cgroupfs say about a container at a look.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Observation {
    pub cgroup_id: u64,
    /// `populated` of its `cgroup.events`; `None` when the cgroup is gone.
    pub populated: Option<bool>,
    /// Its rows; `None` when they are gone.
    pub snapshot: Option<Snapshot>,
    /// What its profile refused it so far, if it is watched.
    pub refusals: Option<Counts>,
}

/// Where a cgroup with a row but no event is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Place {
    /// Below a root, at this path.
    Path(String),
    /// Gone; what its rows hold.
    Gone(Option<Snapshot>),
}

/// The node daemon's state.
#[derive(Debug)]
pub struct Machine {
    config: Config,
    /// Whether the roots are watched and `sys_enter` attached.
    armed: bool,
    /// The watched roots' cgroup ids, by path.
    roots: BTreeMap<String, u64>,
    containers: BTreeMap<u64, Container>,
    /// Rows the last tick found without an event. A row is taken as one
    /// whose event was lost only when two ticks in a row find it so: its
    /// event may still wait in the buffer behind a slow runtime call.
    rowless: BTreeSet<u64>,
    /// After a failed CRI call, the runtime is not asked again before this:
    /// a runtime that hangs would otherwise hold the daemon for the call's
    /// timeout once per container.
    runtime_quiet_until: Option<Instant>,
    /// Containers that could not be recorded: the kernel map was full.
    lost: u64,
    /// Results written to the state directory.
    written: u64,
    /// Kubernetes mode's state.
    kube: Option<cluster::KubeState>,
    /// Kubernetes mode: the Events to post.
    events: Option<events::Events>,
    /// Kubernetes mode: production containers watched for refusals.
    production: Option<production::Production>,
    /// The round in progress.
    round: Option<round::Round>,
    /// Rows of ended containers, dropped once a checkpoint without them is
    /// saved (until then a crash finds them again).
    drops: BTreeSet<u64>,
    /// The checkpoint last saved, and when.
    saved: Option<Checkpoint>,
    last_save: Option<Instant>,
}

impl Machine {
    /// A daemon with `config`, carrying on from `checkpoint` for the
    /// containers that still have `rows` in the kernel. The actions start
    /// it: arm (and take the running containers) without Kubernetes or when
    /// containers were carried over; make sure nothing is left attached
    /// otherwise.
    pub fn start(
        config: Config,
        checkpoint: Option<Checkpoint>,
        rows: &[u64],
        now: Now,
    ) -> (Machine, Vec<Action>) {
        let kube = config.kube.as_ref().map(|_| cluster::KubeState::default());
        let events = config.kube.as_ref().map(|k| events::Events::new(&k.node));
        let production = config
            .kube
            .as_ref()
            .map(|_| production::Production::default());
        let mut machine = Machine {
            config,
            armed: false,
            roots: BTreeMap::new(),
            containers: BTreeMap::new(),
            rowless: BTreeSet::new(),
            runtime_quiet_until: None,
            lost: 0,
            written: 0,
            kube,
            events,
            production,
            round: None,
            drops: BTreeSet::new(),
            saved: None,
            last_save: None,
        };
        let restored = match checkpoint {
            Some(checkpoint) => machine.restore(checkpoint, rows, now),
            None => 0,
        };
        let mut out = Vec::new();
        let kube = machine.config.kube.is_some();
        if !kube || restored > 0 {
            // Containers recorded before a restart go on being recorded (in
            // Kubernetes mode until the recordings say otherwise).
            out.push(machine.arm());
            if !kube {
                out.push(Action::ScanRunning {
                    roots: machine.config.roots.clone(),
                });
            }
        } else {
            // A crashed run may have left sys_enter attached and the roots
            // watched: an idle node pays nothing.
            out.push(Action::Disarm { roots: Vec::new() });
        }
        (machine, out)
    }

    /// Takes an input; returns what to do, in order.
    pub fn handle(&mut self, input: Input, now: Now) -> Vec<Action> {
        let mut out = Vec::new();
        match input {
            Input::Cgroups(events) => self.on_cgroups(events, now, &mut out),
            Input::Tick { rows, cluster } => {
                if let Some(cluster) = &cluster {
                    self.enforce(cluster, now, &mut out);
                }
                self.start_round(round::Kind::Tick { rows, cluster }, now, &mut out)
            }
            Input::Snapshot => self.start_round(round::Kind::Snapshot, now, &mut out),
            Input::Stop => self.start_round(round::Kind::Stop, now, &mut out),
            Input::Armed { roots } => {
                self.armed = true;
                self.roots.extend(roots);
            }
            Input::Running(found) => self.on_running(found, now, &mut out),
            Input::Found(found) => self.on_found(found, now, &mut out),
            Input::RuntimeAnswers(answers) => self.on_runtime_answers(answers, now, &mut out),
            Input::Observed(observations) => self.on_observed(observations, now, &mut out),
            Input::ResultsWritten(results) => self.on_results_written(results, now, &mut out),
            Input::Workloads(answers) => self.on_workloads(answers, now, &mut out),
            Input::ProfilesWritten {
                written,
                failed,
                learned,
            } => {
                self.on_learned(learned, now);
                self.on_profiles_written(written, failed, now, &mut out)
            }
            Input::CheckpointSaved(result) => self.on_checkpoint_saved(result, now, &mut out),
            Input::Installations(installations) => self.on_installations(installations, now),
            Input::EventsWritten(results) => {
                if let Some(events) = self.events.as_mut() {
                    events.written(results, now);
                }
            }
            Input::RefusalsWatched(answers) => self.on_refusals_watched(answers, now, &mut out),
            Input::Refused(events) => self.on_refused(events, now, &mut out),
            Input::ContainersFound(found) => self.on_containers_found(found, now, &mut out),
            Input::EnforcedWatched(answers) => self.on_enforced_watched(answers, now, &mut out),
            Input::RefusalStatusWritten(results) => self.on_refusal_status_written(results, now),
            Input::LookUpProfiles => self.look_up_profiles(now, &mut out),
        }
        if let Some(events) = self.events.as_mut() {
            let writes = events.due(now);
            if !writes.is_empty() {
                out.push(Action::WriteEvents(writes));
            }
        }
        out
    }

    fn arm(&self) -> Action {
        Action::Arm {
            roots: self.config.roots.clone(),
        }
    }

    /// Whether new containers are recorded (roots watched, `sys_enter`
    /// attached).
    pub fn is_armed(&self) -> bool {
        self.armed
    }

    /// The containers being recorded, by cgroup id.
    pub fn containers(&self) -> &BTreeMap<u64, Container> {
        &self.containers
    }

    /// Containers that could not be recorded because the kernel map was
    /// full.
    pub fn lost(&self) -> u64 {
        self.lost
    }

    /// Results written to the state directory so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Kubernetes API requests that failed (resolving workloads, writing
    /// ContainerProfiles).
    pub fn api_errors(&self) -> u64 {
        self.kube.as_ref().map_or(0, |k| k.api_errors)
    }

    /// Results not yet written to the cluster.
    pub fn pending(&self) -> usize {
        self.kube
            .as_ref()
            .map_or(0, |k| k.contributions.values().filter(|c| c.dirty).count())
    }

    /// Distinct syscalls across this node's results for the cluster.
    pub fn syscalls(&self) -> usize {
        self.kube
            .as_ref()
            .map_or(0, |k| k.contributions.values().map(Contribution::len).sum())
    }

    /// Containers that ended and wait for a decision (Kubernetes mode).
    pub fn ended(&self) -> &[Ended] {
        self.kube.as_ref().map_or(&[], |k| k.ended.as_slice())
    }

    /// This node's results for the cluster.
    pub fn contributions(&self) -> Option<&BTreeMap<Key, Contribution>> {
        self.kube.as_ref().map(|k| &k.contributions)
    }

    /// Kubernetes Events decided, by reason, and those dropped by the
    /// node's bound.
    pub fn event_counts(&self) -> (BTreeMap<&'static str, u64>, u64) {
        self.events.as_ref().map_or_else(Default::default, |e| {
            (
                e.decided.iter().map(|(r, n)| (r.as_str(), *n)).collect(),
                e.dropped,
            )
        })
    }

    /// Event writes that failed.
    pub fn event_errors(&self) -> u64 {
        self.events.as_ref().map_or(0, |e| e.failed)
    }
}
