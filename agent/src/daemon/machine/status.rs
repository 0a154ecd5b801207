//! What the machine reports of this node in the recordings' status.
use std::collections::{BTreeMap, BTreeSet};

use syscensus_api::WorkloadRef;

use super::{
    Action, Decision, Machine,
    round::{Flow, Step},
};

/// This node's part of each recording's status, as the machine knows it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StatusReport {
    /// By (namespace, recording).
    pub recordings: BTreeMap<(String, String), RecordingSummary>,
    /// Containers that could not be recorded (the kernel map was full).
    pub lost: u64,
}

/// One recording's numbers on this node.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecordingSummary {
    /// Containers being recorded now.
    pub recording_containers: i64,
    /// Containers recorded to their end.
    pub recorded_containers: i64,
    /// Distinct syscalls across its workload containers.
    pub syscalls: i64,
    /// Workload containers whose results are incomplete.
    pub incomplete: i64,
    /// Its workloads and their containers.
    pub workloads: BTreeMap<WorkloadRef, BTreeSet<String>>,
}

impl Machine {
    /// This node's part of the recordings' status.
    pub(super) fn step_report(&mut self, out: &mut Vec<Action>) -> Flow {
        if self.round.as_ref().and_then(|r| r.cluster()).is_some() {
            out.push(Action::ReportStatus(self.status_report()));
        }
        Flow::Next(Step::Save)
    }

    /// What each recording's status says of this node.
    pub fn status_report(&self) -> StatusReport {
        let mut report = StatusReport {
            recordings: BTreeMap::new(),
            lost: self.lost,
        };
        let Some(kube) = self.kube.as_ref() else {
            return report;
        };
        for c in self.containers.values() {
            if let Decision::Chosen(chosen) = &c.decision {
                for key in &chosen.keys {
                    report
                        .recordings
                        .entry((key.namespace.clone(), key.recording.clone()))
                        .or_default()
                        .recording_containers += 1;
                }
            }
        }
        for (id, count) in &kube.recorded {
            report
                .recordings
                .entry(id.clone())
                .or_default()
                .recorded_containers = *count;
        }
        for (key, contribution) in &kube.contributions {
            let summary = report
                .recordings
                .entry((key.namespace.clone(), key.recording.clone()))
                .or_default();
            summary.syscalls += contribution.len() as i64;
            if !contribution.warnings.is_empty() {
                summary.incomplete += 1;
            }
            summary
                .workloads
                .entry(key.workload.clone())
                .or_default()
                .insert(key.container.clone());
        }
        report
    }
}
