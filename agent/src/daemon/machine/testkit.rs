//! A simulated node for the machine's tests: cgroups with rows, a runtime,
//! a cluster, a state directory, carried out the way the shell does
//! (answers first, depth first), with every action kept for inspection.
#![allow(clippy::unwrap_used, reason = "tests")]

use std::{
    collections::{BTreeMap, BTreeSet, VecDeque},
    time::{Duration, Instant},
};

use syscensus_api::{ProfileRecordingSpec, WorkloadKind, WorkloadRef};
use syscensus_common::abi;

use super::*;
// What the machine's tests use beside the machine's own types.
pub(super) use crate::{
    bpf::MarkedCgroup,
    daemon::{
        contribution::Counted,
        identity::{PodView, RuntimeAnswer},
    },
    refusal::report::{ContainerRefusals, First},
};
use crate::{
    daemon::identity::{ContainerMeta, StatusEntry},
    syscalls::Arch,
};

pub(super) const ROOT: &str = "/kubepods";

/// A container id and Pod UID of their own for `n`.
pub(super) fn ids(n: u64) -> (String, String) {
    (
        format!("{n:064x}"),
        format!("00000000-0000-4000-8000-{n:012x}"),
    )
}

/// The cgroup path of container `n` (cgroupfs layout).
pub(super) fn path(n: u64) -> String {
    let (id, uid) = ids(n);
    format!("{ROOT}/besteffort/pod{uid}/{id}")
}

/// A snapshot of a recording container that made `names`.
pub(super) fn saw(names: &[&str]) -> Snapshot {
    let native = Arch::native();
    Snapshot {
        recording: true,
        seen: [(
            abi::NATIVE,
            names.iter().map(|n| native.number(n).unwrap()).collect(),
        )]
        .into(),
        ..Snapshot::default()
    }
}

pub(super) fn node_config() -> Config {
    Config {
        roots: vec![ROOT.into()],
        base_set: BaseSetChoice::Auto {
            runtime: "runc".into(),
        },
        include_running: false,
        poll_interval: Duration::from_secs(10),
        node_name: Some("node-a".into()),
        runtime: true,
        sessions: SessionPolicy::IncludeAll,
        kube: None,
    }
}

pub(super) fn kube_config() -> Config {
    Config {
        kube: Some(KubeConfig {
            node: "node-a".into(),
            flush_interval: Duration::from_secs(5),
        }),
        ..node_config()
    }
}

/// A recording of Pods labelled `app=web` in `shop`.
pub(super) fn recording(name: &str, paused: bool) -> RecordingView {
    RecordingView {
        namespace: "shop".into(),
        name: name.into(),
        uid: Some(format!("uid-{name}")),
        spec: ProfileRecordingSpec {
            include_exec_sessions: false,
            pod_selector: k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector {
                match_labels: Some([("app".to_owned(), "web".to_owned())].into()),
                match_expressions: None,
            },
            containers: Vec::new(),
            include_init_containers: true,
            base_set: None,
            paused,
        },
    }
}

/// The Pod of container `n`, labelled `app`, whose status names container
/// `n` as `app`.
pub(super) fn pod(n: u64, app: &str) -> PodView {
    let (id, uid) = ids(n);
    PodView {
        exec_commands: Default::default(),
        uid,
        namespace: "shop".into(),
        name: format!("{app}-{n}"),
        labels: [("app".to_owned(), app.to_owned())].into(),
        init_containers: BTreeSet::new(),
        statuses: vec![StatusEntry {
            id,
            name: "app".into(),
            init: false,
        }],
        controller: None,
        running: Vec::new(),
        localhost_profiles: BTreeMap::new(),
    }
}

pub(super) fn deployment(name: &str) -> WorkloadRef {
    WorkloadRef {
        kind: WorkloadKind::Deployment,
        name: name.into(),
    }
}

/// The key of container `app` of Deployment `web` in recording `rec`.
pub(super) fn web_key(recording: &str) -> Key {
    Key {
        namespace: "shop".into(),
        recording: recording.into(),
        workload: deployment("web"),
        container: "app".into(),
    }
}

/// A cgroup of the simulated node.
#[derive(Clone, Debug)]
pub(super) struct Cgroup {
    pub path: String,
    /// `None`: the directory is gone.
    pub populated: Option<bool>,
    /// `None`: no rows.
    pub rows: Option<Snapshot>,
    /// What its profile refused, while watched.
    pub refused: Option<Counts>,
}

/// The simulated node, cluster and state directory.
pub(super) struct World {
    pub machine: Machine,
    pub base: (Instant, jiff::Timestamp),
    pub elapsed: Duration,
    pub cgroups: BTreeMap<u64, Cgroup>,
    /// The runtime's answers by container id (absent: unknown).
    pub runtime: BTreeMap<String, Result<RuntimeAnswer, String>>,
    /// The profiles containers run under, by container id (absent:
    /// unconfined).
    pub profiles_held: BTreeMap<String, WatchAnswer>,
    /// Refusal reports written, by file name.
    pub refusal_reports: BTreeMap<String, ContainerRefusals>,
    pub cluster: Option<Cluster>,
    pub workloads: BTreeMap<String, Result<WorkloadRef, String>>,
    /// Fail writes to the state directory, ContainerProfiles, the
    /// checkpoint.
    pub fail_results: bool,
    pub fail_profiles: bool,
    pub fail_checkpoint: bool,
    /// Every action carried out, in order.
    pub log: Vec<Action>,
    /// The state directory's results, by file name.
    pub results: BTreeMap<String, ContainerRecording>,
    /// ContainerProfiles: the contributions written, by key.
    pub profiles: BTreeMap<Key, Contribution>,
    /// ContainerProfiles as the cluster holds them: the union of the
    /// syscalls every node wrote, and when it last grew.
    pub unions: BTreeMap<Key, (BTreeMap<String, BTreeSet<String>>, jiff::Timestamp)>,
    /// Fail the writes of Events with this.
    pub fail_events: Option<EventFailure>,
    /// Events written, in order.
    pub events: Vec<EventWrite>,
    pub checkpoint: Option<Checkpoint>,
    pub snapshots: u64,
    /// LocalhostProfiles' RefusalReports, by object (absent: the object is not
    /// there, unless `missing_objects` is false).
    pub reports: BTreeMap<ProfileObject, syscensus_api::RefusalReportSpec>,
    /// Report writes fail with this.
    pub fail_status: Option<StatusFailure>,
}

impl World {
    pub(super) fn new(config: Config) -> World {
        Self::restarted(config, None, BTreeMap::new())
    }

    /// A daemon started on a node whose kernel holds `cgroups`, carrying
    /// on from `checkpoint`.
    pub(super) fn restarted(
        config: Config,
        checkpoint: Option<Checkpoint>,
        cgroups: BTreeMap<u64, Cgroup>,
    ) -> World {
        let base = (
            Instant::now(),
            jiff::Timestamp::from_second(1_800_000_000).unwrap(),
        );
        let rows: Vec<u64> = cgroups
            .iter()
            .filter(|(_, c)| c.rows.is_some())
            .map(|(id, _)| *id)
            .collect();
        let now = Now {
            instant: base.0,
            time: base.1,
        };
        let (machine, actions) = Machine::start(config, checkpoint, &rows, now);
        let mut world = World {
            machine,
            base,
            elapsed: Duration::ZERO,
            cgroups,
            runtime: BTreeMap::new(),
            profiles_held: BTreeMap::new(),
            refusal_reports: BTreeMap::new(),
            cluster: None,
            workloads: BTreeMap::new(),
            fail_results: false,
            fail_profiles: false,
            fail_checkpoint: false,
            log: Vec::new(),
            results: BTreeMap::new(),
            profiles: BTreeMap::new(),
            unions: BTreeMap::new(),
            fail_events: None,
            events: Vec::new(),
            checkpoint: None,
            snapshots: 0,
            reports: BTreeMap::new(),
            fail_status: None,
        };
        world.execute(actions);
        world
    }

    pub(super) fn now(&self) -> Now {
        Now {
            instant: self.base.0 + self.elapsed,
            time: self
                .base
                .1
                .checked_add(jiff::SignedDuration::try_from(self.elapsed).unwrap())
                .unwrap(),
        }
    }

    pub(super) fn advance(&mut self, by: Duration) {
        self.elapsed += by;
    }

    /// Feeds an input and carries out everything that follows.
    pub(super) fn feed(&mut self, input: Input) {
        let actions = self.machine.handle(input, self.now());
        self.execute(actions);
    }

    /// The actions `input` leads to, without carrying them out.
    pub(super) fn handle(&mut self, input: Input) -> Vec<Action> {
        self.machine.handle(input, self.now())
    }

    pub(super) fn tick(&mut self) {
        let rows = self
            .cgroups
            .iter()
            .filter(|(_, c)| c.rows.is_some())
            .map(|(id, _)| *id)
            .collect();
        let cluster = self.cluster.clone();
        self.feed(Input::Tick { rows, cluster });
    }

    /// The kernel makes cgroup `id` at `path` below the root: it gets a
    /// row (waiting for its exec) and an event.
    pub(super) fn mkdir(&mut self, id: u64, path: &str) -> MarkedCgroup {
        self.cgroups.insert(
            id,
            Cgroup {
                path: path.into(),
                populated: Some(false),
                rows: Some(Snapshot::default()),
                refused: None,
            },
        );
        MarkedCgroup {
            root: false,
            lost: false,
            cgroup_id: id,
            level: 4,
            path: path.into(),
        }
    }

    /// Container `n` (cgroup id `n`) is made and its event taken.
    pub(super) fn start_container(&mut self, n: u64) {
        let event = self.mkdir(n, &path(n));
        self.feed(Input::Cgroups(vec![event]));
    }

    /// Container `n` runs its entrypoint, which makes `names`.
    pub(super) fn run(&mut self, n: u64, names: &[&str]) {
        let cgroup = self.cgroups.get_mut(&n).unwrap();
        cgroup.populated = Some(true);
        cgroup.rows = Some(saw(names));
    }

    /// Container `n` ends (its cgroup empty, or `removed`).
    pub(super) fn end(&mut self, n: u64, removed: bool) {
        let cgroup = self.cgroups.get_mut(&n).unwrap();
        cgroup.populated = (!removed).then_some(false);
    }

    pub(super) fn has_rows(&self, id: u64) -> bool {
        self.cgroups.get(&id).is_some_and(|c| c.rows.is_some())
    }

    /// How many actions of the log match.
    pub(super) fn count(&self, matches: impl Fn(&Action) -> bool) -> usize {
        self.log.iter().filter(|a| matches(a)).count()
    }

    pub(super) fn clear_log(&mut self) {
        self.log.clear();
    }

    fn execute(&mut self, actions: Vec<Action>) {
        let mut queue: VecDeque<Action> = actions.into();
        while let Some(action) = queue.pop_front() {
            self.log.push(action.clone());
            if let Some(input) = self.perform(action) {
                let more = self.machine.handle(input, self.now());
                for action in more.into_iter().rev() {
                    queue.push_front(action);
                }
            }
        }
    }

    fn perform(&mut self, action: Action) -> Option<Input> {
        match action {
            Action::Arm { roots } => Some(Input::Armed {
                roots: roots.into_iter().map(|r| (r, 1)).collect(),
            }),
            Action::Disarm { .. } | Action::Unwatch(_) | Action::ReportStatus(_) => None,
            Action::Unmark(id) | Action::UnmarkOrJoin { cgroup_id: id, .. } => {
                if let Some(c) = self.cgroups.get_mut(&id) {
                    c.rows = None;
                }
                None
            }
            Action::ScanRunning { .. } => Some(Input::Running(
                self.cgroups
                    .iter()
                    .filter(|(_, c)| c.populated.is_some())
                    .map(|(id, c)| (c.path.clone(), *id))
                    .collect(),
            )),
            Action::MarkRunning { cgroup_id, .. } => {
                if let Some(c) = self.cgroups.get_mut(&cgroup_id) {
                    let mut rows = c.rows.take().unwrap_or_default();
                    rows.recording = true;
                    c.rows = Some(rows);
                }
                None
            }
            Action::FindCgroups { ids, .. } => Some(Input::Found(
                ids.into_iter()
                    .map(|id| {
                        let c = self.cgroups.get(&id);
                        let place = match c {
                            Some(c) if c.populated.is_some() => Place::Path(c.path.clone()),
                            _ => Place::Gone(c.and_then(|c| c.rows.clone())),
                        };
                        (id, place)
                    })
                    .collect(),
            )),
            Action::AskRuntime(containers) => {
                let mut answers = Vec::new();
                for (id, container) in containers {
                    let answer = self
                        .runtime
                        .get(&container)
                        .cloned()
                        .unwrap_or(Ok(RuntimeAnswer::Unknown));
                    let failed = answer.is_err();
                    answers.push((id, answer));
                    if failed {
                        break;
                    }
                }
                Some(Input::RuntimeAnswers(answers))
            }
            Action::Observe(containers) => Some(Input::Observed(
                containers
                    .into_iter()
                    .map(|(id, _)| {
                        let c = self.cgroups.get(&id);
                        Observation {
                            cgroup_id: id,
                            populated: c.and_then(|c| c.populated),
                            snapshot: c.and_then(|c| c.rows.clone()),
                            refusals: c.and_then(|c| c.refused.clone()),
                        }
                    })
                    .collect(),
            )),
            Action::WriteResults(results) => Some(Input::ResultsWritten(
                results
                    .into_iter()
                    .map(|(name, recording)| {
                        if self.fail_results {
                            return (name, Err("No space left on device".to_owned()));
                        }
                        self.results.insert(name.clone(), recording);
                        (name, Ok(()))
                    })
                    .collect(),
            )),
            Action::ResolveWorkloads(pods) => Some(Input::Workloads(
                pods.into_iter()
                    .map(|p| {
                        let answer = self
                            .workloads
                            .get(&p.uid)
                            .cloned()
                            .unwrap_or(Err("no such workload".into()));
                        (p.uid, answer)
                    })
                    .collect(),
            )),
            Action::WriteProfiles(contributions) => {
                let mut written = Vec::new();
                let mut learned = Vec::new();
                for (key, contribution) in contributions {
                    if self.fail_profiles {
                        return Some(Input::ProfilesWritten {
                            written,
                            failed: Some((key, "503 Service Unavailable".into())),
                            learned,
                        });
                    }
                    learned.extend(self.merge_union(&key, &contribution));
                    let counted = Counted {
                        uid: format!("uid-{}", key.object_name()),
                        pods: contribution.pods_seen,
                        containers: contribution.containers.len() as i64,
                    };
                    self.profiles.insert(key.clone(), contribution);
                    written.push((key, Some(counted)));
                }
                Some(Input::ProfilesWritten {
                    written,
                    failed: None,
                    learned,
                })
            }
            Action::WriteEvents(writes) => Some(Input::EventsWritten(
                writes
                    .into_iter()
                    .map(|write| {
                        let name = write.name().to_owned();
                        self.events.push(write);
                        (name, self.fail_events.clone().map_or(Ok(()), Err))
                    })
                    .collect(),
            )),
            Action::SaveCheckpoint(checkpoint) => {
                if self.fail_checkpoint {
                    return Some(Input::CheckpointSaved(
                        Err("No space left on device".into()),
                    ));
                }
                // As the shell does: through its file format.
                let text = serde_json::to_string(&checkpoint).unwrap();
                self.checkpoint = Some(serde_json::from_str(&text).unwrap());
                Some(Input::CheckpointSaved(Ok(())))
            }
            Action::SnapshotDone => {
                self.snapshots += 1;
                None
            }
            Action::WatchRefusals(containers) => {
                Some(Input::RefusalsWatched(self.watch_answers(containers)))
            }
            Action::WatchEnforced(containers) => {
                Some(Input::EnforcedWatched(self.watch_answers(containers)))
            }
            Action::FindContainers { ids, .. } => Some(Input::ContainersFound(
                self.cgroups
                    .iter()
                    .filter(|(_, c)| c.populated.is_some())
                    .filter_map(|(cgroup_id, c)| {
                        let id = ids.iter().find(|id| c.path.ends_with(id.as_str()))?;
                        Some((id.clone(), *cgroup_id, c.path.clone()))
                    })
                    .collect(),
            )),
            Action::WriteRefusalStatus(writes) => Some(Input::RefusalStatusWritten(
                writes
                    .into_iter()
                    .map(|(object, deltas)| {
                        if let Some(failure) = &self.fail_status {
                            return (object, Err(failure.clone()));
                        }
                        let status = self.reports.entry(object.clone()).or_default();
                        crate::refusal::status::merge(status, &deltas);
                        (object, Ok(()))
                    })
                    .collect(),
            )),
            Action::UnwatchRefusals(id) => {
                if let Some(c) = self.cgroups.get_mut(&id) {
                    c.refused = None;
                }
                None
            }
            Action::WriteRefusals(reports) => {
                self.refusal_reports.extend(reports);
                None
            }
        }
    }

    /// What the runtime says of the profiles of `containers`; the watched
    /// ones start counting.
    fn watch_answers(&mut self, containers: Vec<(u64, String)>) -> Vec<(u64, WatchAnswer)> {
        containers
            .into_iter()
            .map(|(id, container)| {
                let answer = self
                    .profiles_held
                    .get(&container)
                    .cloned()
                    .unwrap_or(WatchAnswer::Unconfined);
                if let (WatchAnswer::Watched(_), Some(c)) = (&answer, self.cgroups.get_mut(&id)) {
                    c.refused = Some(Default::default());
                }
                (id, answer)
            })
            .collect()
    }
}

impl World {
    /// Merges a contribution into the cluster's union, as the writer does;
    /// what it added to a profile that existed.
    fn merge_union(&mut self, key: &Key, contribution: &Contribution) -> Option<Learned> {
        let now = self.now().time;
        let Some((union, last_new)) = self.unions.get_mut(key) else {
            self.unions
                .insert(key.clone(), (contribution.syscalls.clone().into(), now));
            return None;
        };
        let mut added: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (arch, names) in contribution.syscalls.iter() {
            let known = union.entry(arch.to_owned()).or_default();
            for name in names {
                if known.insert(name.clone()) {
                    added.entry(arch.to_owned()).or_default().push(name.clone());
                }
            }
        }
        let quiet_since = Some(*last_new);
        if !added.is_empty() {
            *last_new = now;
        }
        Some(Learned {
            key: key.clone(),
            uid: Some(format!("uid-{}", key.object_name())),
            added,
            quiet_since,
        })
    }

    /// The Events created, with their reasons.
    pub(super) fn created(&self) -> Vec<(&str, &events::Occurrence)> {
        self.events
            .iter()
            .filter_map(|w| match w {
                EventWrite::Create {
                    name, occurrence, ..
                } => Some((name.as_str(), occurrence)),
                EventWrite::Series { .. } => None,
            })
            .collect()
    }
}

/// The runtime's answer naming container `n` as `app` of its Pod.
pub(super) fn named(n: u64) -> RuntimeAnswer {
    let (_, uid) = ids(n);
    RuntimeAnswer::Container(ContainerMeta {
        name: "app".into(),
        pod_name: Some(format!("web-{n}")),
        pod_namespace: Some("shop".into()),
        pod_uid: Some(uid),
        labels: BTreeMap::new(),
        image: "busybox".into(),
    })
}
