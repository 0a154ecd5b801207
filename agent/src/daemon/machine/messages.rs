//! What goes into the machine ([`Input`]: kernel events, ticks, signals,
//! answers) and what comes out ([`Action`]: what the shell carries out).

use syscensus_api::WorkloadRef;

use crate::daemon::{
    contribution::{Contribution, Counted, Key},
    identity::{PodView, RuntimeAnswer},
};
use crate::{
    bpf::MarkedCgroup,
    container_recording::ContainerRecording,
    refusal::report::{ContainerRefusals, First},
};

use super::*;

/// Everything the machine is told.
#[derive(Clone, Debug)]
pub enum Input {
    /// Cgroups the kernel marked, watched or could not mark, as they were
    /// made.
    Cgroups(Vec<MarkedCgroup>),
    /// The periodic tick: the cgroups that have rows in the kernel, and (in
    /// Kubernetes mode) what the watches hold.
    Tick {
        rows: Vec<u64>,
        cluster: Option<Cluster>,
    },
    /// Write what running containers did so far (SIGUSR1).
    Snapshot,
    /// Write everything and stop (SIGTERM, SIGINT).
    Stop,
    /// [`Action::Arm`] done: the roots watched now, with their ids.
    Armed { roots: Vec<(String, u64)> },
    /// Answer to [`Action::ScanRunning`]: containers' cgroups below the
    /// roots.
    Running(Vec<(String, u64)>),
    /// Answer to [`Action::FindCgroups`].
    Found(Vec<(u64, Place)>),
    /// Answer to [`Action::AskRuntime`], in the order asked, up to the first
    /// failure.
    RuntimeAnswers(Vec<(u64, Result<RuntimeAnswer, String>)>),
    /// Answer to [`Action::Observe`].
    Observed(Vec<Observation>),
    /// Answer to [`Action::WriteResults`]: per file name, written or why
    /// not.
    ResultsWritten(Vec<(String, Result<(), String>)>),
    /// Answer to [`Action::ResolveWorkloads`], per Pod UID.
    Workloads(Vec<(String, Result<WorkloadRef, String>)>),
    /// Answer to [`Action::WriteProfiles`]: written in order, up to the
    /// first failure (each with what the profile now counts of this node),
    /// and what the writes added to profiles that existed.
    ProfilesWritten {
        written: Vec<(Key, Option<Counted>)>,
        failed: Option<(Key, String)>,
        learned: Vec<Learned>,
    },
    /// Approved profiles this node installed or refused (Kubernetes mode).
    Installations(Vec<Installation>),
    /// Answer to [`Action::WriteEvents`], per Event name.
    EventsWritten(Vec<(String, Result<(), EventFailure>)>),
    /// Answer to [`Action::SaveCheckpoint`].
    CheckpointSaved(Result<(), String>),
    /// Answer to [`Action::WatchRefusals`].
    RefusalsWatched(Vec<(u64, WatchAnswer)>),
    /// First refusals the kernel reported.
    Refused(Vec<First>),
    /// Answer to [`Action::FindContainers`]: the containers found below the
    /// roots (runtime id, cgroup id, cgroup path).
    ContainersFound(Vec<(String, u64, String)>),
    /// Answer to [`Action::WatchEnforced`].
    EnforcedWatched(Vec<(u64, WatchAnswer)>),
    /// Answer to [`Action::WriteRefusalStatus`], per LocalhostProfile.
    RefusalStatusWritten(Vec<(ProfileObject, Result<(), StatusFailure>)>),
    /// Look up the profiles of containers made less than
    /// [`REFUSAL_FAST_LOOKUP`] ago (the shell sends it every
    /// [`REFUSAL_FAST_INTERVAL`] while [`Machine::fast_lookups`] says so).
    LookUpProfiles,
}

/// Everything the machine asks for. Reads are answered by an [`Input`];
/// the others are done (and their failures logged) by the shell.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// Attach `sys_enter`, then watch the roots (now, or as they are made),
    /// then say so in the state directory. Answered by [`Input::Armed`].
    Arm { roots: Vec<String> },
    /// Stop watching the roots (these ids, and whatever a roots' directory
    /// is now), detach `sys_enter`, take the state directory's word back.
    Disarm { roots: Vec<u64> },
    /// Stop watching a root that was made again.
    Unwatch(u64),
    /// Stop recording a cgroup and drop its rows.
    Unmark(u64),
    /// A marked cgroup that is not a container: if the kernel made its row
    /// below one of these containers (or a cgroup joined to one), it is
    /// part of that container (made while the container was set up, like
    /// crun's `container` sub-cgroup); otherwise unmark it.
    UnmarkOrJoin {
        cgroup_id: u64,
        containers: Vec<u64>,
    },
    /// List the containers' cgroups below `roots`. Answered by
    /// [`Input::Running`].
    ScanRunning { roots: Vec<String> },
    /// Start recording a running container now (its processes, and those of
    /// the cgroups below it, which are part of it, are the workload).
    MarkRunning { cgroup_id: u64, path: String },
    /// Look for these cgroups below `roots`, and read the rows of those that
    /// are gone. Answered by [`Input::Found`].
    FindCgroups { roots: Vec<String>, ids: Vec<u64> },
    /// Ask the runtime about these containers (cgroup id, container id), in
    /// order, stopping at the first failure. Answered by
    /// [`Input::RuntimeAnswers`].
    AskRuntime(Vec<(u64, String)>),
    /// Read these containers (cgroup id, cgroup path). Answered by
    /// [`Input::Observed`].
    Observe(Vec<(u64, String)>),
    /// Write these results to the state directory (file name, recording).
    /// Answered by [`Input::ResultsWritten`].
    WriteResults(Vec<(String, ContainerRecording)>),
    /// Find the workloads of these Pods. Answered by [`Input::Workloads`].
    ResolveWorkloads(Vec<PodView>),
    /// Merge these contributions into their ContainerProfiles, in order,
    /// stopping at the first failure. Answered by
    /// [`Input::ProfilesWritten`].
    WriteProfiles(Vec<(Key, Contribution)>),
    /// Write this node's part of the recordings' status.
    ReportStatus(StatusReport),
    /// Save the checkpoint. Answered by [`Input::CheckpointSaved`].
    SaveCheckpoint(Box<Checkpoint>),
    /// A snapshot round is written.
    SnapshotDone,
    /// Create Events or update their series. Answered by
    /// [`Input::EventsWritten`].
    WriteEvents(Vec<EventWrite>),
    /// Read the profile each container (cgroup id, container id) runs under
    /// from its runtime, and watch what it refuses. Answered by
    /// [`Input::RefusalsWatched`].
    WatchRefusals(Vec<(u64, String)>),
    /// Stop watching a container's refusals.
    UnwatchRefusals(u64),
    /// Write these refusal reports (file name, report).
    WriteRefusals(Vec<(String, ContainerRefusals)>),
    /// Look for the cgroups of these containers (runtime ids) below
    /// `roots`. Answered by [`Input::ContainersFound`].
    FindContainers {
        roots: Vec<String>,
        ids: Vec<String>,
    },
    /// As [`Action::WatchRefusals`], for production containers. Answered by
    /// [`Input::EnforcedWatched`].
    WatchEnforced(Vec<(u64, String)>),
    /// Add what this node counted to these LocalhostProfiles'
    /// RefusalReports. Answered by [`Input::RefusalStatusWritten`].
    WriteRefusalStatus(Vec<(ProfileObject, crate::refusal::status::Deltas)>),
}
