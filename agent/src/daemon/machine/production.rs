//! Production (Kubernetes mode): the containers of this node's Pods that
//! run under a Localhost profile syscensus installed are watched for what
//! that profile refuses them, with no recording: nothing is attached to
//! `sys_enter`, and the refusal watch's hooks only while such a container
//! runs.
//!
//! Each tick, the Pods' specs and statuses say which running containers
//! (by runtime id) use a `localhostProfile` below `syscensus/`; a new one
//! is looked for below the roots (`FindContainers`, its cgroup path holds
//! its id), then watched under the profile its runtime holds
//! (`WatchEnforced`); one the status no longer shows running, or whose
//! cgroup is gone, has its last report written and is unwatched. A
//! container a recording records is left to the recording path, which
//! watches it too.
//!
//! What they are refused goes to the state directory (as for every watched
//! container), to Events (the first refusal of a syscall in a container:
//! on its Pod and on the LocalhostProfile), and to the LocalhostProfile's
//! status: each node adds what it counted since its last write
//! (`WriteRefusalStatus`), at once for a syscall new on this node, else
//! every flush interval.
use std::{
    collections::{BTreeMap, BTreeSet},
    time::{Duration, Instant},
};

use syscensus_api::{WorkloadRef, localhost_profile_name};
use tracing::{debug, info, warn};

use super::{
    Action, Cluster, Machine, Now, Observation, REFUSAL_LOOKUP, RUNTIME_QUIET, RefusalWatch,
    WatchAnswer,
    events::{Kind, Occurrence, Reason, Regarding},
};
use crate::{
    container_recording::{PodRef, State},
    daemon::identity::Identity,
    localhost::usage,
    refusal::{
        report::{self, First, RefusalLog},
        status::Deltas,
    },
};

mod status;

use status::report_of;
pub(super) use status::workload_label;

/// How often a production container that cannot be found below the roots
/// is looked for again, after [`REFUSAL_LOOKUP`].
pub(super) const SLOW_LOOKUP: Duration = Duration::from_secs(10);

/// The LocalhostProfile whose profile a container runs under.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ProfileObject {
    pub namespace: String,
    pub name: String,
    /// Its `localhostProfile` path.
    pub path: String,
    pub workload: WorkloadRef,
}

impl ProfileObject {
    /// The object behind a `localhostProfile` below syscensus's directory
    /// (`syscensus/<namespace>/<kind>-<workload>/<container>.json`);
    /// `None` for any other profile.
    pub fn of_path(path: &str) -> Option<ProfileObject> {
        let relative = usage::syscensus_relative(path)?;
        let (namespace, kind, workload) = usage::workload_of(relative)?;
        let container = relative.rsplit('/').next()?.strip_suffix(".json")?;
        if container.is_empty() {
            return None;
        }
        Some(ProfileObject {
            name: localhost_profile_name(kind.as_str(), &workload, container),
            namespace,
            path: path.to_owned(),
            workload: WorkloadRef {
                kind,
                name: workload,
            },
        })
    }

    fn regarding(&self) -> Regarding {
        Regarding {
            kind: Kind::LocalhostProfile,
            namespace: self.namespace.clone(),
            name: self.name.clone(),
            uid: None,
        }
    }
}

/// A production container watched for what its profile refuses.
#[derive(Clone, Debug, PartialEq)]
pub struct Enforced {
    /// From its cgroup path.
    pub identity: Identity,
    pub pod: PodRef,
    /// Its name in its Pod.
    pub container: String,
    pub profile: ProfileObject,
    pub refusals: RefusalWatch,
    /// Per (architecture, syscall), the count already added to the status.
    reported: BTreeMap<(String, String), u64>,
}

/// A container the Pods show running under an installed profile.
#[derive(Clone, Debug, PartialEq)]
struct Wanted {
    pod: PodRef,
    container: String,
    profile: ProfileObject,
}

/// A container being looked for below the roots.
#[derive(Clone, Debug, PartialEq)]
struct Looking {
    since: Instant,
    next: Instant,
    warned: bool,
}

/// How a status write failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StatusFailure {
    /// The LocalhostProfile does not exist (deleted while its file stays).
    Gone,
    /// Anything else; written again later.
    Other(String),
}

/// Production's state.
#[derive(Debug, Default)]
pub(super) struct Production {
    pub watched: BTreeMap<u64, Enforced>,
    wanted: BTreeMap<String, Wanted>,
    looking: BTreeMap<String, Looking>,
    /// What this node has to add to each object's status.
    deltas: BTreeMap<ProfileObject, Deltas>,
    /// What is being written.
    sending: Option<BTreeMap<ProfileObject, Deltas>>,
    /// A syscall new on this node waits: written at once.
    urgent: bool,
    last_write: Option<Instant>,
    write_after: Option<Instant>,
    backoff: Duration,
    /// Status writes that failed.
    pub errors: u64,
}

/// The containers `cluster` shows running under a profile syscensus
/// installed, by runtime id.
fn wanted(cluster: &Cluster) -> BTreeMap<String, Wanted> {
    let mut out = BTreeMap::new();
    for pod in &cluster.pods {
        for s in &pod.running {
            let Some(profile) = pod
                .localhost_profiles
                .get(&s.name)
                .and_then(|p| ProfileObject::of_path(p))
            else {
                continue;
            };
            out.insert(
                s.id.clone(),
                Wanted {
                    pod: pod.pod_ref(),
                    container: s.name.clone(),
                    profile,
                },
            );
        }
    }
    out
}

impl Machine {
    /// At a tick: starts and ends the watch of production containers, asks
    /// again for the profiles not known yet, and writes the status due.
    pub(super) fn enforce(&mut self, cluster: &Cluster, now: Now, out: &mut Vec<Action>) {
        if !cluster.ready || self.production.is_none() {
            return;
        }
        let recorded: BTreeSet<String> = self
            .containers
            .values()
            .map(|c| c.identity.container_id.clone())
            .collect();
        let mut wanted = wanted(cluster);
        wanted.retain(|id, _| !recorded.contains(id));
        let Some(production) = self.production.as_mut() else {
            return;
        };
        let ended: Vec<u64> = production
            .watched
            .iter()
            .filter(|(_, e)| !wanted.contains_key(&e.identity.container_id))
            .map(|(id, _)| *id)
            .collect();
        for id in ended {
            self.enforced_ended(id, out);
        }
        let Some(production) = self.production.as_mut() else {
            return;
        };
        let tracked: BTreeSet<String> = production
            .watched
            .values()
            .map(|e| e.identity.container_id.clone())
            .collect();
        production
            .looking
            .retain(|id, _| wanted.contains_key(id) && !tracked.contains(id));
        let mut find = Vec::new();
        for id in wanted.keys().filter(|id| !tracked.contains(*id)) {
            let looking = production.looking.entry(id.clone()).or_insert(Looking {
                since: now.instant,
                next: now.instant,
                warned: false,
            });
            if now.instant < looking.next {
                continue;
            }
            if now.instant.duration_since(looking.since) >= REFUSAL_LOOKUP {
                if !looking.warned {
                    looking.warned = true;
                    warn!(
                        container = %id,
                        roots = ?self.config.roots,
                        "a container runs under a profile syscensus installed, but its cgroup is not below the roots; looked for every {}s",
                        SLOW_LOOKUP.as_secs()
                    );
                }
                looking.next = now.instant + SLOW_LOOKUP;
            }
            find.push(id.clone());
        }
        production.wanted = wanted;
        if !find.is_empty() {
            out.push(Action::FindContainers {
                roots: self.config.roots.clone(),
                ids: find,
            });
        }
        self.look_up_enforced(now, out);
        self.write_refusal_status(now, out);
    }

    /// Asks for the profiles of production containers not watched yet;
    /// those not found within [`REFUSAL_LOOKUP`] are left unwatched.
    fn look_up_enforced(&mut self, now: Now, out: &mut Vec<Action>) {
        let quiet =
            self.config.runtime && self.runtime_quiet_until.is_some_and(|t| now.instant < t);
        let Some(production) = self.production.as_mut() else {
            return;
        };
        let mut ask = Vec::new();
        for (id, e) in &mut production.watched {
            let RefusalWatch::Pending { until, .. } = e.refusals else {
                continue;
            };
            if now.instant >= until {
                info!(
                    container = %e.identity.container_id,
                    "its refusals are not watched: its runtime holds no profile for it that the agent can read"
                );
                e.refusals = RefusalWatch::Off;
            } else if !quiet {
                ask.push((*id, e.identity.container_id.clone()));
            }
        }
        if !ask.is_empty() {
            out.push(Action::WatchEnforced(ask));
        }
    }

    /// Answer to [`Action::FindContainers`]: the containers found, watched
    /// from now on.
    pub(super) fn on_containers_found(
        &mut self,
        found: Vec<(String, u64, String)>,
        now: Now,
        out: &mut Vec<Action>,
    ) {
        let Some(production) = self.production.as_mut() else {
            return;
        };
        for (container_id, cgroup_id, path) in found {
            let Some(wanted) = production.wanted.get(&container_id) else {
                continue;
            };
            if production.watched.contains_key(&cgroup_id)
                || self.containers.contains_key(&cgroup_id)
            {
                continue;
            }
            let Some(identity) = Identity::of_cgroup(&path) else {
                continue;
            };
            production.looking.remove(&container_id);
            debug!(container = %container_id, pod = ?wanted.pod.name, profile = %wanted.profile.path, "production container found");
            production.watched.insert(
                cgroup_id,
                Enforced {
                    identity,
                    pod: wanted.pod.clone(),
                    container: wanted.container.clone(),
                    profile: wanted.profile.clone(),
                    refusals: RefusalWatch::pending(now),
                    reported: BTreeMap::new(),
                },
            );
        }
        self.look_up_enforced(now, out);
    }

    /// Answer to [`Action::WatchEnforced`].
    pub(super) fn on_enforced_watched(
        &mut self,
        answers: Vec<(u64, WatchAnswer)>,
        now: Now,
        out: &mut Vec<Action>,
    ) {
        for (id, answer) in answers {
            let Some(e) = self
                .production
                .as_mut()
                .and_then(|p| p.watched.get_mut(&id))
            else {
                if matches!(answer, WatchAnswer::Watched(_)) {
                    out.push(Action::UnwatchRefusals(id));
                }
                continue;
            };
            let container = e.identity.container_id.clone();
            match answer {
                WatchAnswer::Watched(_) if matches!(e.refusals, RefusalWatch::Watched { .. }) => {}
                WatchAnswer::Watched(profile) => {
                    info!(
                        %container,
                        pod = e.pod.name.as_deref().unwrap_or(""),
                        name = %e.container,
                        localhost_profile = %e.profile.path,
                        default_action = %profile.default_action,
                        "watching what its installed profile refuses"
                    );
                    e.refusals = RefusalWatch::Watched {
                        profile,
                        since: now.time,
                        log: RefusalLog::default(),
                        written: false,
                    };
                }
                WatchAnswer::Unconfined => {
                    warn!(%container, localhost_profile = %e.profile.path, "its Pod names an installed profile, but it runs without one");
                    e.refusals = RefusalWatch::Off;
                }
                WatchAnswer::NotFound => {}
                WatchAnswer::RuntimeFailed(error) => {
                    self.runtime_quiet_until = Some(now.instant + RUNTIME_QUIET);
                    warn!(%error, %container, "cannot ask the runtime about a container; asking again in {}s", RUNTIME_QUIET.as_secs());
                }
                WatchAnswer::Failed(error) => {
                    warn!(%container, %error, "cannot watch what its profile refuses");
                    e.refusals = RefusalWatch::Off;
                }
            }
        }
        self.write_enforced_reports(out);
    }

    /// A production container the Pod no longer shows running, or whose
    /// cgroup is gone: its last report, and the watch goes.
    fn enforced_ended(&mut self, id: u64, out: &mut Vec<Action>) {
        let node = self.config.node_name.clone();
        let Some(e) = self.production.as_mut().and_then(|p| p.watched.remove(&id)) else {
            return;
        };
        if !matches!(e.refusals, RefusalWatch::Watched { .. }) {
            return;
        }
        debug!(container = %e.identity.container_id, "production container ended");
        if let Some(report) = report_of(&e, node, State::Exited) {
            out.push(Action::WriteRefusals(vec![(
                e.identity.container_id.clone(),
                report,
            )]));
        }
        out.push(Action::UnwatchRefusals(id));
    }

    /// Takes a look at a production container (part of `Observe`); returns
    /// false when `observation` is not about one.
    pub(super) fn observed_enforced(&mut self, observation: &Observation) -> bool {
        let id = observation.cgroup_id;
        let Some(e) = self
            .production
            .as_mut()
            .and_then(|p| p.watched.get_mut(&id))
        else {
            return false;
        };
        if let (Some(counts), RefusalWatch::Watched { log, written, .. }) =
            (&observation.refusals, &mut e.refusals)
            && log.counted(counts)
        {
            *written = false;
        }
        true
    }

    /// After a look: production containers whose cgroup is gone end; the
    /// files in the state directory and the RefusalReports take what changed.
    pub(super) fn after_observed_enforced(
        &mut self,
        gone: &[u64],
        now: Now,
        out: &mut Vec<Action>,
    ) {
        self.write_enforced_reports(out);
        for id in gone {
            self.enforced_ended(*id, out);
        }
        if self.round.as_ref().is_some_and(|r| r.is_stop()) {
            self.flush_refusal_status(now, out);
        } else {
            self.write_refusal_status(now, out);
        }
    }

    /// The production containers (cgroup id, path) to look at.
    pub(super) fn enforced_to_observe(&self) -> Vec<(u64, String)> {
        self.production.as_ref().map_or_else(Vec::new, |p| {
            p.watched
                .iter()
                .filter(|(_, e)| matches!(e.refusals, RefusalWatch::Watched { .. }))
                .map(|(id, e)| (*id, e.identity.cgroup.clone()))
                .collect()
        })
    }

    /// A first refusal from the kernel; returns false when it is not about
    /// a production container. A syscall refused for the first time in a
    /// container is an Event on its Pod and on the LocalhostProfile.
    pub(super) fn refused_enforced(&mut self, event: &First, now: Now) -> bool {
        let node = self.node();
        let Some(e) = self
            .production
            .as_mut()
            .and_then(|p| p.watched.get_mut(&event.cgroup_id))
        else {
            return false;
        };
        let RefusalWatch::Watched { log, written, .. } = &mut e.refusals else {
            return true;
        };
        if !log.first(event) {
            return true;
        }
        *written = false;
        let (arch, syscall) = report::name_of(event.abi, event.nr);
        let how = match event.how {
            report::How::Errno => "refused",
            report::How::Log => "logged (complain mode)",
            report::How::Signal => "killed or trapped",
        };
        let pod_name = e.pod.name.clone().unwrap_or_default();
        warn!(
            container = %e.identity.container_id,
            pod = %pod_name,
            name = %e.container,
            %syscall,
            %arch,
            process = %event.process,
            pid = event.pid,
            localhost_profile = %e.profile.path,
            "its installed profile refused a syscall"
        );
        let on_pod = Occurrence::new(
            Regarding {
                kind: Kind::Pod,
                namespace: e.pod.namespace.clone().unwrap_or_default(),
                name: pod_name.clone(),
                uid: Some(e.pod.uid.clone()),
            },
            Reason::SyscallRefused,
            &format!(
                "seccomp profile {} {how} syscall {syscall} ({arch}) in container {} (process {}) on node {node}; see LocalhostProfile {} or `syscensus denials`",
                e.profile.path, e.container, event.process, e.profile.name
            ),
        );
        let on_profile = Occurrence::new(
            e.profile.regarding(),
            Reason::SyscallRefused,
            &format!(
                "{how} syscall {syscall} ({arch}) in container {} on node {node}",
                e.container
            ),
        );
        self.observe_event(on_pod, now);
        self.observe_event(on_profile, now);
        true
    }

    /// After first refusals: the files in the state directory and the RefusalReports take them.
    pub(super) fn after_refused_enforced(&mut self, now: Now, out: &mut Vec<Action>) {
        self.write_enforced_reports(out);
        self.write_refusal_status(now, out);
    }

    /// The production containers watched, by cgroup id.
    pub fn enforced(&self) -> Option<&BTreeMap<u64, Enforced>> {
        self.production.as_ref().map(|p| &p.watched)
    }

    /// RefusalReport writes that failed.
    pub fn refusal_status_errors(&self) -> u64 {
        self.production.as_ref().map_or(0, |p| p.errors)
    }
}
