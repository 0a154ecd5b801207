//! What production containers are refused, reported: their files in the
//! state directory, and each node's counts added to the LocalhostProfile's
//! RefusalReport since its last write (at once for a syscall new on this node,
//! else every flush interval).
use std::time::Duration;

use syscensus_api::{RefusalReporter, WorkloadKind};
use tracing::warn;

use super::{
    super::{Action, Machine, Now, RefusalWatch},
    Enforced, ProfileObject, StatusFailure,
};
use crate::{
    container_recording::State,
    refusal::{
        report::{self, ContainerRefusals},
        status::Delta,
    },
};

impl Machine {
    /// Writes the production reports that changed to the state directory,
    /// and adds what was counted since to the status deltas.
    pub(super) fn write_enforced_reports(&mut self, out: &mut Vec<Action>) {
        let node = self.config.node_name.clone();
        let reporter_node = self.node();
        let Some(production) = self.production.as_mut() else {
            return;
        };
        let mut reports = Vec::new();
        for e in production.watched.values_mut() {
            let RefusalWatch::Watched { written, log, .. } = &mut e.refusals else {
                continue;
            };
            if *written {
                continue;
            }
            *written = true;
            let reporter = RefusalReporter {
                node: reporter_node.clone(),
                pod: e.pod.name.clone().unwrap_or_default(),
                container: e.container.clone(),
            };
            for refused in log.syscalls() {
                let key = (refused.arch.clone(), refused.name.clone());
                let before = e.reported.get(&key).copied().unwrap_or(0);
                if refused.count <= before {
                    continue;
                }
                e.reported.insert(key.clone(), refused.count);
                let last = refused
                    .last_seen
                    .parse()
                    .unwrap_or_else(|_| jiff::Timestamp::now());
                let first = refused
                    .first_seen
                    .as_deref()
                    .and_then(|t| t.parse().ok())
                    .unwrap_or(last);
                let deltas = production.deltas.entry(e.profile.clone()).or_default();
                match deltas.get_mut(&key) {
                    Some(delta) => delta.add(
                        refused.count - before,
                        refused.how,
                        first,
                        last,
                        reporter.clone(),
                    ),
                    None => {
                        deltas.insert(
                            key,
                            Delta {
                                count: refused.count - before,
                                how: refused.how,
                                first,
                                last,
                                reporters: vec![reporter.clone()],
                            },
                        );
                    }
                }
                if before == 0 {
                    production.urgent = true;
                }
            }
            if let Some(report) = report_of(e, node.clone(), State::Running) {
                reports.push((e.identity.container_id.clone(), report));
            }
        }
        if !reports.is_empty() {
            out.push(Action::WriteRefusals(reports));
        }
    }

    /// Stopping: what this node has to add to the LocalhostProfiles'
    /// reports is written now, whatever the interval.
    pub(super) fn flush_refusal_status(&mut self, now: Now, out: &mut Vec<Action>) {
        if let Some(production) = self.production.as_mut() {
            production.urgent = true;
            production.write_after = None;
        }
        self.write_refusal_status(now, out);
    }

    /// Writes what this node has to add to the LocalhostProfiles' reports:
    /// at once for a syscall new on this node, else every flush interval;
    /// after a failure, not before the backoff.
    pub(super) fn write_refusal_status(&mut self, now: Now, out: &mut Vec<Action>) {
        let interval = self
            .config
            .kube
            .as_ref()
            .map_or(Duration::from_secs(10), |k| k.flush_interval);
        let Some(production) = self.production.as_mut() else {
            return;
        };
        if production.deltas.is_empty()
            || production.sending.is_some()
            || production.write_after.is_some_and(|t| now.instant < t)
        {
            return;
        }
        let due = production.urgent
            || production
                .last_write
                .is_none_or(|t| now.instant.duration_since(t) >= interval);
        if !due {
            return;
        }
        production.urgent = false;
        production.last_write = Some(now.instant);
        let sending = production.deltas.clone();
        out.push(Action::WriteRefusalStatus(
            sending
                .iter()
                .map(|(o, d)| (o.clone(), d.clone()))
                .collect(),
        ));
        production.sending = Some(sending);
    }

    /// Answer to [`Action::WriteRefusalStatus`], per object: what was
    /// written is taken off the deltas; what failed is written again later
    /// (a LocalhostProfile that is gone: dropped, with a warning).
    pub(in crate::daemon::machine) fn on_refusal_status_written(
        &mut self,
        results: Vec<(ProfileObject, Result<(), StatusFailure>)>,
        now: Now,
    ) {
        let Some(production) = self.production.as_mut() else {
            return;
        };
        let Some(mut sent) = production.sending.take() else {
            return;
        };
        let mut failed = false;
        for (object, result) in results {
            let Some(sent) = sent.remove(&object) else {
                continue;
            };
            match result {
                Ok(()) => {}
                Err(StatusFailure::Gone) => warn!(
                    profile = %format!("{}/{}", object.namespace, object.name),
                    "no such LocalhostProfile: its refusals are in the Events and the state directory only"
                ),
                Err(StatusFailure::Other(error)) => {
                    failed = true;
                    production.errors += 1;
                    warn!(%error, profile = %format!("{}/{}", object.namespace, object.name), "cannot write a LocalhostProfile's refusals; will retry");
                    continue;
                }
            }
            // Written (or nowhere to write): off the deltas, but what came
            // since stays.
            if let Some(deltas) = production.deltas.get_mut(&object) {
                for (key, sent) in sent {
                    if let Some(delta) = deltas.get_mut(&key) {
                        delta.count = delta.count.saturating_sub(sent.count);
                        if delta.count == 0 {
                            deltas.remove(&key);
                        }
                    }
                }
                if deltas.is_empty() {
                    production.deltas.remove(&object);
                }
            }
        }
        if failed {
            production.backoff =
                (production.backoff * 2).clamp(Duration::from_secs(1), Duration::from_secs(60));
            production.write_after = Some(now.instant + production.backoff);
        } else {
            production.backoff = Duration::ZERO;
            production.write_after = None;
        }
    }
}

/// The report of a production container.
pub(super) fn report_of(
    e: &Enforced,
    node: Option<String>,
    state: State,
) -> Option<ContainerRefusals> {
    let RefusalWatch::Watched {
        profile,
        since,
        log,
        ..
    } = &e.refusals
    else {
        return None;
    };
    Some(ContainerRefusals {
        api_version: report::API_VERSION.to_owned(),
        kind: report::KIND.to_owned(),
        container_id: e.identity.container_id.clone(),
        container_name: Some(e.container.clone()),
        pod: Some(e.pod.clone()),
        workload: Some(e.profile.workload.clone()),
        node,
        cgroup: e.identity.cgroup.clone(),
        profile: profile.clone(),
        state,
        watched_since: since.to_string(),
        incomplete: log.lost(),
        syscalls: log.syscalls(),
    })
}

/// The refusals metric's workload label of a production container.
pub(in crate::daemon::machine) fn workload_label(kind: WorkloadKind, name: &str) -> String {
    format!("{}/{name}", kind.as_str())
}
