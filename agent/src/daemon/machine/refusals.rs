//! Which containers are watched for what their profile refuses, and their
//! reports.
use tracing::{debug, info, warn};

use super::{
    Action, Container, Decision, Machine, Now, RefusalWatch, WatchAnswer,
    round::{Flow, Step},
};
use crate::{
    container_recording::State,
    refusal::report::{self, ContainerRefusals, First},
};

/// One series of the refusals metric: a syscall refused a container.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RefusalSeries {
    pub namespace: String,
    /// `Kind/name` of the workload, where a recording resolved it.
    pub workload: String,
    /// The container's name in its Pod, else its id.
    pub container: String,
    pub syscall: String,
    pub count: u64,
}

impl Machine {
    /// Asks the shell to watch the containers whose profile is not known
    /// yet; those it could not find for [`REFUSAL_LOOKUP`](super::REFUSAL_LOOKUP)
    /// are left unwatched.
    pub(super) fn step_watch(&mut self, now: Now, out: &mut Vec<Action>) -> Flow {
        let quiet = self.runtime_is_quiet(now);
        let mut ask = Vec::new();
        for (id, c) in &mut self.containers {
            let RefusalWatch::Pending { until, .. } = c.refusals else {
                continue;
            };
            if now.instant >= until {
                info!(
                    container = %c.identity.container_id,
                    "its refusals are not watched: its runtime holds no profile for it that the agent can read"
                );
                c.refusals = RefusalWatch::Off;
                continue;
            }
            if !quiet {
                ask.push((*id, c.identity.container_id.clone()));
            }
        }
        if ask.is_empty() {
            return Flow::Next(Step::Observe);
        }
        out.push(Action::WatchRefusals(ask));
        Flow::Await
    }

    /// Asks for the profiles of the containers made less than
    /// [`REFUSAL_FAST_LOOKUP`](super::REFUSAL_FAST_LOOKUP) ago, between
    /// rounds.
    pub(super) fn look_up_profiles(&mut self, now: Now, out: &mut Vec<Action>) {
        if self.round.is_some() || self.runtime_is_quiet(now) {
            return;
        }
        let ask: Vec<(u64, String)> = self
            .containers
            .iter()
            .filter(|(_, c)| {
                matches!(c.refusals, RefusalWatch::Pending { fast_until, .. } if now.instant < fast_until)
            })
            .map(|(id, c)| (*id, c.identity.container_id.clone()))
            .collect();
        if !ask.is_empty() {
            out.push(Action::WatchRefusals(ask));
        }
    }

    /// Whether the runtime is left alone after a failed call: a runtime
    /// that hangs would hold the daemon for the call's timeout per lookup.
    fn runtime_is_quiet(&self, now: Now) -> bool {
        self.config.runtime && self.runtime_quiet_until.is_some_and(|t| now.instant < t)
    }

    /// Whether containers made a moment ago wait for their profile to be
    /// looked up (see [`Input::LookUpProfiles`](super::Input::LookUpProfiles)).
    pub fn fast_lookups(&self, now: std::time::Instant) -> bool {
        if self.config.runtime && self.runtime_quiet_until.is_some_and(|t| now < t) {
            return false;
        }
        self.containers.values().any(
            |c| matches!(c.refusals, RefusalWatch::Pending { fast_until, .. } if now < fast_until),
        )
    }

    pub(super) fn on_refusals_watched(
        &mut self,
        answers: Vec<(u64, WatchAnswer)>,
        now: Now,
        out: &mut Vec<Action>,
    ) {
        for (id, answer) in answers {
            let Some(c) = self.containers.get_mut(&id) else {
                // Gone meanwhile.
                if matches!(answer, WatchAnswer::Watched(_)) {
                    out.push(Action::UnwatchRefusals(id));
                }
                continue;
            };
            let container = c.identity.container_id.clone();
            match answer {
                // Watched already: what it counted so far stays.
                WatchAnswer::Watched(_) if matches!(c.refusals, RefusalWatch::Watched { .. }) => {}
                WatchAnswer::Watched(profile) => {
                    info!(
                        %container,
                        source = %profile.source,
                        default_action = %profile.default_action,
                        "watching what its profile refuses"
                    );
                    c.refusals = RefusalWatch::Watched {
                        profile,
                        since: now.time,
                        log: Default::default(),
                        written: false,
                    };
                }
                WatchAnswer::Unconfined => {
                    debug!(%container, "runs without a seccomp profile: nothing refused");
                    c.refusals = RefusalWatch::Off;
                }
                WatchAnswer::NotFound => {}
                WatchAnswer::RuntimeFailed(error) => {
                    self.runtime_quiet_until = Some(now.instant + super::RUNTIME_QUIET);
                    warn!(
                        %error,
                        %container,
                        "cannot ask the runtime about a container; asking again in {}s",
                        super::RUNTIME_QUIET.as_secs()
                    );
                }
                WatchAnswer::Failed(error) => {
                    warn!(%container, %error, "cannot watch what its profile refuses");
                    c.refusals = RefusalWatch::Off;
                }
            }
        }
        if self.awaits(Step::Watch) {
            self.run(Step::Observe, now, out);
        }
    }

    /// First refusals from the kernel: written at once.
    pub(super) fn on_refused(&mut self, events: Vec<First>, now: Now, out: &mut Vec<Action>) {
        let mut enforced = false;
        for event in events {
            if self.refused_enforced(&event, now) {
                enforced = true;
                continue;
            }
            let Some(c) = self.containers.get_mut(&event.cgroup_id) else {
                continue;
            };
            if let RefusalWatch::Watched { log, written, .. } = &mut c.refusals
                && log.first(&event)
            {
                *written = false;
                let (arch, syscall) = report::name_of(event.abi, event.nr);
                warn!(
                    container = %c.identity.container_id,
                    name = c.identity.runtime_name().unwrap_or(""),
                    %syscall,
                    %arch,
                    process = %event.process,
                    pid = event.pid,
                    how = ?event.how,
                    "its profile refused a syscall"
                );
            }
        }
        self.write_refusals(out);
        if enforced {
            self.after_refused_enforced(now, out);
        }
    }

    /// Writes the reports that changed.
    pub(super) fn write_refusals(&mut self, out: &mut Vec<Action>) {
        let node = self.config.node_name.clone();
        let mut reports = Vec::new();
        for c in self.containers.values_mut() {
            if let RefusalWatch::Watched { written, .. } = &mut c.refusals
                && !*written
            {
                *written = true;
                if let Some(report) = report_of(c, node.clone(), State::Running) {
                    reports.push((c.identity.container_id.clone(), report));
                }
            }
        }
        if !reports.is_empty() {
            out.push(Action::WriteRefusals(reports));
        }
    }

    /// A container that ended: its last report, and the watch goes.
    pub(super) fn refusals_ended(&self, c: &Container, out: &mut Vec<Action>, id: u64) {
        if !matches!(c.refusals, RefusalWatch::Watched { .. }) {
            return;
        }
        if let Some(report) = report_of(c, self.config.node_name.clone(), State::Exited) {
            out.push(Action::WriteRefusals(vec![(
                c.identity.container_id.clone(),
                report,
            )]));
        }
        out.push(Action::UnwatchRefusals(id));
    }

    /// The refusals metric's series, one per (container, syscall).
    pub fn refusal_series(&self) -> Vec<RefusalSeries> {
        let mut series = Vec::new();
        for c in self.containers.values() {
            let RefusalWatch::Watched { log, .. } = &c.refusals else {
                continue;
            };
            let meta = c.identity.runtime.as_ref();
            let (namespace, workload, container) = match &c.decision {
                Decision::Chosen(chosen) => {
                    let workload = chosen
                        .keys
                        .first()
                        .map(|k| format!("{}/{}", k.workload.kind.as_str(), k.workload.name))
                        .unwrap_or_default();
                    (
                        chosen.pod.namespace.clone().unwrap_or_default(),
                        workload,
                        chosen.container.clone(),
                    )
                }
                _ => (
                    meta.and_then(|m| m.pod_namespace.clone())
                        .unwrap_or_default(),
                    String::new(),
                    c.identity
                        .runtime_name()
                        .unwrap_or(&c.identity.container_id)
                        .to_owned(),
                ),
            };
            for refused in log.syscalls() {
                series.push(RefusalSeries {
                    namespace: namespace.clone(),
                    workload: workload.clone(),
                    container: container.clone(),
                    syscall: refused.name,
                    count: refused.count,
                });
            }
        }
        for e in self.enforced().into_iter().flat_map(|m| m.values()) {
            let RefusalWatch::Watched { log, .. } = &e.refusals else {
                continue;
            };
            for refused in log.syscalls() {
                series.push(RefusalSeries {
                    namespace: e.pod.namespace.clone().unwrap_or_default(),
                    workload: super::production::workload_label(
                        e.profile.workload.kind,
                        &e.profile.workload.name,
                    ),
                    container: e.container.clone(),
                    syscall: refused.name,
                    count: refused.count,
                });
            }
        }
        series
    }

    /// Containers whose refusals are watched.
    pub fn watched_refusals(&self) -> usize {
        let enforced = self.enforced().map_or(0, |m| {
            m.values()
                .filter(|e| matches!(e.refusals, RefusalWatch::Watched { .. }))
                .count()
        });
        self.containers
            .values()
            .filter(|c| matches!(c.refusals, RefusalWatch::Watched { .. }))
            .count()
            + enforced
    }
}

/// The report of a watched container.
fn report_of(c: &Container, node: Option<String>, state: State) -> Option<ContainerRefusals> {
    let RefusalWatch::Watched {
        profile,
        since,
        log,
        ..
    } = &c.refusals
    else {
        return None;
    };
    Some(ContainerRefusals {
        api_version: report::API_VERSION.to_owned(),
        kind: report::KIND.to_owned(),
        container_id: c.identity.container_id.clone(),
        container_name: c.identity.runtime_name().map(ToOwned::to_owned),
        pod: Some(c.identity.pod()),
        workload: match &c.decision {
            Decision::Chosen(chosen) => chosen.keys.first().map(|k| k.workload.clone()),
            _ => None,
        },
        node,
        cgroup: c.identity.cgroup.clone(),
        profile: profile.clone(),
        state,
        watched_since: since.to_string(),
        incomplete: log.lost(),
        syscalls: log.syscalls(),
    })
}
