//! What a LocalhostProfile's RefusalReport says its profile refused in
//! production, and how one node adds what it saw to it. Many nodes write
//! the same object, so the report stays bounded whatever their number: one
//! entry per refused syscall ([`MAX_REFUSED_SYSCALLS`]) with counts summed
//! over nodes, and a sample of [`MAX_REPORTERS`] (node, Pod, container)
//! that reported it.
use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use syscensus_api::{
    MAX_REFUSED_SYSCALLS, MAX_REPORTERS, RefusalReportSpec, RefusalReporter, RefusedSyscall,
};

use super::report::{self, ContainerRefusals, How, Refused, WatchedProfile};
use crate::container_recording::{PodRef, State};

/// `kind` of [`ProfileRefusals`].
pub const PROFILE_REFUSALS_KIND: &str = "LocalhostProfileRefusals";

/// What one LocalhostProfile's RefusalReport says its profile refused, as
/// `syscensus denials --cluster -o json` prints it (and `export
/// --with-denials` reads it).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProfileRefusals {
    pub api_version: String,
    pub kind: String,
    pub namespace: String,
    pub name: String,
    pub localhost_profile: String,
    pub workload: syscensus_api::WorkloadRef,
    pub container: String,
    pub refused: Vec<RefusedSyscall>,
    /// Refused syscalls the report could not list (it was full).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub refused_not_listed: i64,
}

fn is_zero(n: &i64) -> bool {
    *n == 0
}

impl ProfileRefusals {
    /// The same refusals as a container report of the workload container,
    /// for what reads those (`export --with-denials`).
    pub fn as_container_refusals(&self) -> ContainerRefusals {
        ContainerRefusals {
            api_version: report::API_VERSION.to_owned(),
            kind: report::KIND.to_owned(),
            container_id: format!("{}/{}", self.namespace, self.name),
            container_name: Some(self.container.clone()),
            pod: Some(PodRef {
                namespace: Some(self.namespace.clone()),
                name: None,
                uid: String::new(),
            }),
            workload: Some(self.workload.clone()),
            node: None,
            cgroup: String::new(),
            profile: WatchedProfile {
                source: self.localhost_profile.clone(),
                default_action: String::new(),
                unknown_names: Vec::new(),
            },
            state: State::Running,
            watched_since: String::new(),
            incomplete: self.refused_not_listed > 0,
            syscalls: self
                .refused
                .iter()
                .map(|r| Refused {
                    arch: r.architecture.clone(),
                    name: r.syscall.clone(),
                    count: u64::try_from(r.count).unwrap_or(0),
                    first_seen: Some(r.first_seen.0.to_string()),
                    last_seen: r.last_seen.0.to_string(),
                    process: None,
                    how: None,
                })
                .collect(),
        }
    }
}

/// What one node saw of one syscall since its last write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delta {
    /// Refusals counted since the last write.
    pub count: u64,
    pub how: Option<How>,
    pub first: jiff::Timestamp,
    pub last: jiff::Timestamp,
    /// Who saw it, at most [`MAX_REPORTERS`], the most recent last.
    pub reporters: Vec<RefusalReporter>,
}

impl Delta {
    /// `count` more refusals, seen by `reporter` between `first` and `last`.
    pub fn add(
        &mut self,
        count: u64,
        how: Option<How>,
        first: jiff::Timestamp,
        last: jiff::Timestamp,
        reporter: RefusalReporter,
    ) {
        self.count += count;
        self.how = self.how.or(how);
        self.first = self.first.min(first);
        self.last = self.last.max(last);
        add_reporter(&mut self.reporters, reporter);
    }
}

/// Per (architecture, syscall), what one node adds to one object.
pub type Deltas = BTreeMap<(String, String), Delta>;

/// `how` as the report spells it.
pub fn how_name(how: How) -> &'static str {
    match how {
        How::Errno => "errno",
        How::Log => "log",
        How::Signal => "signal",
    }
}

/// Puts `reporter` last, once, keeping the [`MAX_REPORTERS`] most recent.
fn add_reporter(reporters: &mut Vec<RefusalReporter>, reporter: RefusalReporter) {
    reporters.retain(|r| r != &reporter);
    reporters.push(reporter);
    if reporters.len() > MAX_REPORTERS {
        let extra = reporters.len() - MAX_REPORTERS;
        reporters.drain(..extra);
    }
}

/// Adds one node's `deltas` to a report. A syscall that does not fit any
/// more is counted in `refusedNotListed`, never dropped silently.
pub fn merge(status: &mut RefusalReportSpec, deltas: &Deltas) {
    for ((arch, syscall), delta) in deltas {
        let full = status.refused.len() >= MAX_REFUSED_SYSCALLS;
        let existing = status
            .refused
            .iter_mut()
            .find(|r| &r.architecture == arch && &r.syscall == syscall);
        match existing {
            Some(entry) => {
                entry.count = entry
                    .count
                    .saturating_add(i64::try_from(delta.count).unwrap_or(i64::MAX));
                if entry.how.is_none() {
                    entry.how = delta.how.map(|h| how_name(h).to_owned());
                }
                entry.first_seen = Time(entry.first_seen.0.min(delta.first));
                entry.last_seen = Time(entry.last_seen.0.max(delta.last));
                for reporter in &delta.reporters {
                    add_reporter(&mut entry.reported_by, reporter.clone());
                }
            }
            None if full => {
                status.refused_not_listed += 1;
            }
            None => status.refused.push(RefusedSyscall {
                architecture: arch.clone(),
                syscall: syscall.clone(),
                how: delta.how.map(|h| how_name(h).to_owned()),
                count: i64::try_from(delta.count).unwrap_or(i64::MAX),
                first_seen: Time(delta.first),
                last_seen: Time(delta.last),
                reported_by: delta.reporters.clone(),
            }),
        }
    }
    status
        .refused
        .sort_by(|a, b| (&a.architecture, &a.syscall).cmp(&(&b.architecture, &b.syscall)));
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    fn at(s: i64) -> jiff::Timestamp {
        jiff::Timestamp::from_second(1_700_000_000 + s).unwrap()
    }

    fn reporter(node: usize) -> RefusalReporter {
        RefusalReporter {
            node: format!("node-{node}"),
            pod: format!("web-{node}"),
            container: "app".into(),
        }
    }

    fn delta(count: u64, node: usize, s: i64) -> Deltas {
        let mut d = Deltas::new();
        d.insert(
            ("SCMP_ARCH_X86_64".into(), "mkdir".into()),
            Delta {
                count,
                how: Some(How::Errno),
                first: at(s),
                last: at(s + 1),
                reporters: vec![reporter(node)],
            },
        );
        d
    }

    #[test]
    fn nodes_add_their_counts_to_one_entry_per_syscall_with_a_bounded_sample() {
        let mut status = RefusalReportSpec::default();
        for node in 0..5000 {
            merge(&mut status, &delta(2, node, i64::try_from(node).unwrap()));
        }
        assert_eq!(status.refused.len(), 1);
        let entry = &status.refused[0];
        assert_eq!(entry.count, 10_000);
        assert_eq!(entry.first_seen, Time(at(0)));
        assert_eq!(entry.last_seen, Time(at(5000)));
        assert_eq!(entry.how.as_deref(), Some("errno"));
        // The most recent ten, the latest last.
        assert_eq!(entry.reported_by.len(), MAX_REPORTERS);
        assert_eq!(entry.reported_by.last(), Some(&reporter(4999)));
        assert_eq!(entry.reported_by.first(), Some(&reporter(4990)));
        // A node that reports again moves last, once.
        merge(&mut status, &delta(1, 4990, 6000));
        let entry = &status.refused[0];
        assert_eq!(entry.reported_by.len(), MAX_REPORTERS);
        assert_eq!(entry.reported_by.last(), Some(&reporter(4990)));
        assert_eq!(entry.count, 10_001);
    }

    #[test]
    fn a_full_status_counts_the_syscalls_it_cannot_list() {
        let mut status = RefusalReportSpec::default();
        let mut deltas = Deltas::new();
        for nr in 0..MAX_REFUSED_SYSCALLS + 3 {
            deltas.insert(
                ("SCMP_ARCH_X86_64".into(), format!("#{nr:04}")),
                Delta {
                    count: 1,
                    how: None,
                    first: at(0),
                    last: at(0),
                    reporters: vec![reporter(0)],
                },
            );
        }
        merge(&mut status, &deltas);
        assert_eq!(status.refused.len(), MAX_REFUSED_SYSCALLS);
        assert_eq!(status.refused_not_listed, 3);
        // The status serializes with the bound's names.
        let json = serde_json::to_value(&status).unwrap();
        assert_eq!(json["refusedNotListed"], 3);
        assert_eq!(json["refused"][0]["reportedBy"][0]["node"], "node-0");
    }
}
