//! What this node recorded for each workload container, and how it merges
//! into the cluster's ContainerProfile: the union of syscalls over replicas
//! and nodes, never losing one. Pure: no I/O.
use std::collections::{BTreeMap, BTreeSet, VecDeque};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use syscensus_api::{BaseSetRef, ContainerProfileSpec, NodeContribution, WorkloadRef};

use crate::profile::BaseSet;

/// Pods named per node in a ContainerProfile.
pub const MAX_PODS: usize = 50;

/// A workload container of a recording: one ContainerProfile.
#[derive(
    Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct Key {
    pub namespace: String,
    pub recording: String,
    pub workload: WorkloadRef,
    pub container: String,
}

impl Key {
    /// The ContainerProfile's name.
    pub fn object_name(&self) -> String {
        syscensus_api::object_name(
            &self.recording,
            self.workload.kind.as_str(),
            &self.workload.name,
            &self.container,
        )
    }
}

/// This node's contribution to one ContainerProfile.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Contribution {
    pub init_container: bool,
    pub syscalls: BTreeMap<String, BTreeSet<String>>,
    pub base_set: Option<BaseSetRef>,
    /// Pod names, most recent last.
    pub pods: VecDeque<String>,
    /// Container ids recorded.
    pub containers: BTreeSet<String>,
    pub first_seen: jiff::Timestamp,
    pub last_seen: jiff::Timestamp,
    pub last_new_syscall: Option<jiff::Timestamp>,
    pub warnings: BTreeSet<String>,
    /// Changed since the last write to the cluster.
    pub dirty: bool,
}

impl Contribution {
    /// An empty contribution, first seen `now`.
    pub fn new(init_container: bool, now: jiff::Timestamp) -> Contribution {
        Contribution {
            init_container,
            syscalls: BTreeMap::new(),
            base_set: None,
            pods: VecDeque::new(),
            containers: BTreeSet::new(),
            first_seen: now,
            last_seen: now,
            last_new_syscall: None,
            warnings: BTreeSet::new(),
            dirty: true,
        }
    }

    /// Adds what a container of Pod `pod` did so far: syscall names per
    /// architecture, and the base set its profile uses.
    pub fn add(
        &mut self,
        container_id: &str,
        pod: &str,
        syscalls: &BTreeMap<String, Vec<String>>,
        base_set: Option<&BaseSet>,
        warnings: &[String],
        now: jiff::Timestamp,
    ) {
        let mut grew = false;
        for (arch, names) in syscalls {
            let known = self.syscalls.entry(arch.clone()).or_default();
            for name in names {
                grew |= known.insert(name.clone());
            }
        }
        if grew {
            self.last_new_syscall = Some(now);
            self.dirty = true;
        }
        if let Some(base) = base_set {
            let merged = merge_base_sets(
                self.base_set.as_ref(),
                Some(&BaseSetRef {
                    name: base.name.clone(),
                    syscalls: base.syscalls.iter().cloned().collect(),
                }),
            );
            if merged != self.base_set {
                self.base_set = merged;
                self.dirty = true;
            }
        }
        if !self.pods.iter().any(|p| p == pod) {
            self.pods.push_back(pod.to_owned());
            while self.pods.len() > MAX_PODS {
                self.pods.pop_front();
            }
            self.dirty = true;
        }
        self.dirty |= self.containers.insert(container_id.to_owned());
        for warning in warnings {
            self.dirty |= self.warnings.insert(warning.clone());
        }
        self.last_seen = now;
    }

    /// Distinct (architecture, syscall) pairs.
    pub fn len(&self) -> usize {
        self.syscalls.values().map(BTreeSet::len).sum()
    }

    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn merge_base_sets(a: Option<&BaseSetRef>, b: Option<&BaseSetRef>) -> Option<BaseSetRef> {
    match (a, b) {
        (None, None) => None,
        (Some(x), None) | (None, Some(x)) => Some(x.clone()),
        (Some(a), Some(b)) => {
            let names: BTreeSet<&str> = a.name.split('+').chain(b.name.split('+')).collect();
            let syscalls: BTreeSet<&String> = a.syscalls.iter().chain(&b.syscalls).collect();
            Some(BaseSetRef {
                name: names.into_iter().collect::<Vec<_>>().join("+"),
                syscalls: syscalls.into_iter().cloned().collect(),
            })
        }
    }
}

fn min_time(a: &Time, b: &Time) -> Time {
    if a.0 <= b.0 { a.clone() } else { b.clone() }
}

fn max_time(a: &Time, b: &Time) -> Time {
    if a.0 >= b.0 { a.clone() } else { b.clone() }
}

fn max_opt(a: Option<&Time>, b: Option<&Time>) -> Option<Time> {
    match (a, b) {
        (Some(a), Some(b)) => Some(max_time(a, b)),
        (Some(x), None) | (None, Some(x)) => Some(x.clone()),
        (None, None) => None,
    }
}

/// The ContainerProfile spec after merging `ours` (this node's
/// contribution) into `existing` (what the cluster holds, from any node):
/// the union of everything, with this node's entry updated. Nothing in
/// `existing` is ever dropped. `lastNewSyscall` moves to `now` only when the
/// union grows.
pub fn merge(
    existing: Option<&ContainerProfileSpec>,
    key: &Key,
    node: &str,
    ours: &Contribution,
    now: jiff::Timestamp,
) -> ContainerProfileSpec {
    let mut syscalls: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    if let Some(existing) = existing {
        for (arch, names) in &existing.syscalls {
            syscalls
                .entry(arch.clone())
                .or_default()
                .extend(names.iter().cloned());
        }
    }
    let before: usize = syscalls.values().map(BTreeSet::len).sum();
    for (arch, names) in &ours.syscalls {
        syscalls
            .entry(arch.clone())
            .or_default()
            .extend(names.iter().cloned());
    }
    let count: usize = syscalls.values().map(BTreeSet::len).sum();
    let grew = existing.is_none() || count > before;

    let mine = NodeContribution {
        node: node.to_owned(),
        pods: ours.pods.iter().cloned().collect(),
        containers: ours.containers.len() as i64,
        first_seen: Time(ours.first_seen),
        last_seen: Time(ours.last_seen),
        last_new_syscall: ours.last_new_syscall.map(Time),
    };
    let mut nodes: BTreeMap<String, NodeContribution> = existing
        .map(|e| {
            e.nodes
                .iter()
                .map(|n| (n.node.clone(), n.clone()))
                .collect()
        })
        .unwrap_or_default();
    let merged_mine = match nodes.remove(node) {
        None => mine,
        Some(old) => {
            let mut pods: Vec<String> = old
                .pods
                .into_iter()
                .filter(|p| !mine.pods.contains(p))
                .collect();
            pods.extend(mine.pods.iter().cloned());
            let excess = pods.len().saturating_sub(MAX_PODS);
            pods.drain(..excess);
            NodeContribution {
                node: node.to_owned(),
                pods,
                containers: old.containers.max(mine.containers),
                first_seen: min_time(&old.first_seen, &mine.first_seen),
                last_seen: max_time(&old.last_seen, &mine.last_seen),
                last_new_syscall: max_opt(
                    old.last_new_syscall.as_ref(),
                    mine.last_new_syscall.as_ref(),
                ),
            }
        }
    };
    nodes.insert(node.to_owned(), merged_mine);
    let nodes: Vec<NodeContribution> = nodes.into_values().collect();

    let first_seen = nodes
        .iter()
        .map(|n| n.first_seen.clone())
        .min_by(|a, b| a.0.cmp(&b.0))
        .unwrap_or(Time(now));
    let last_seen = nodes
        .iter()
        .map(|n| n.last_seen.clone())
        .max_by(|a, b| a.0.cmp(&b.0))
        .unwrap_or(Time(now));
    let last_new_syscall = if grew {
        Some(Time(now))
    } else {
        existing.and_then(|e| e.last_new_syscall.clone())
    };
    let mut warnings: BTreeSet<String> = existing
        .map(|e| e.warnings.iter().cloned().collect())
        .unwrap_or_default();
    warnings.extend(ours.warnings.iter().cloned());

    ContainerProfileSpec {
        recording: key.recording.clone(),
        workload: key.workload.clone(),
        container: key.container.clone(),
        init_container: ours.init_container || existing.is_some_and(|e| e.init_container),
        syscall_count: count as i64,
        syscalls: syscalls
            .into_iter()
            .map(|(arch, names)| (arch, names.into_iter().collect()))
            .collect(),
        runtime_base_set: merge_base_sets(
            existing.and_then(|e| e.runtime_base_set.as_ref()),
            ours.base_set.as_ref(),
        ),
        nodes,
        first_seen,
        last_seen,
        last_new_syscall,
        warnings: warnings.into_iter().collect(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use syscensus_api::WorkloadKind;

    use super::*;

    fn key() -> Key {
        Key {
            namespace: "default".into(),
            recording: "rec".into(),
            workload: WorkloadRef {
                kind: WorkloadKind::Deployment,
                name: "web".into(),
            },
            container: "nginx".into(),
        }
    }

    fn census(names: &[&str]) -> BTreeMap<String, Vec<String>> {
        let mut c = BTreeMap::new();
        c.insert(
            "SCMP_ARCH_X86_64".to_owned(),
            names.iter().map(|n| (*n).to_owned()).collect(),
        );
        c
    }

    fn t(s: i64) -> jiff::Timestamp {
        jiff::Timestamp::from_second(1_700_000_000 + s).expect("valid")
    }

    fn contribution(names: &[&str], pod: &str, at: i64) -> Contribution {
        let mut c = Contribution::new(false, t(at));
        c.add(&format!("id-{pod}"), pod, &census(names), None, &[], t(at));
        c
    }

    #[test]
    fn two_nodes_merge_to_the_union() {
        let a = contribution(&["read", "write"], "web-1", 0);
        let b = contribution(&["read", "openat"], "web-2", 5);
        let first = merge(None, &key(), "node-a", &a, t(1));
        let second = merge(Some(&first), &key(), "node-b", &b, t(6));
        assert_eq!(
            second.syscalls["SCMP_ARCH_X86_64"],
            vec!["openat", "read", "write"]
        );
        assert_eq!(second.syscall_count, 3);
        let nodes: Vec<_> = second.nodes.iter().map(|n| n.node.as_str()).collect();
        assert_eq!(nodes, vec!["node-a", "node-b"]);
        assert_eq!(second.first_seen, Time(t(0)));
        assert_eq!(second.last_new_syscall, Some(Time(t(6))));
        // Node a writes again without knowing b's syscall: nothing is lost,
        // and nothing new appeared.
        let third = merge(Some(&second), &key(), "node-a", &a, t(9));
        assert_eq!(third.syscalls, second.syscalls);
        assert_eq!(third.last_new_syscall, Some(Time(t(6))));
    }

    #[test]
    fn a_node_entry_keeps_what_an_earlier_write_had() {
        let a1 = contribution(&["read"], "web-1", 0);
        let first = merge(None, &key(), "node-a", &a1, t(1));
        // The agent restarted and lost its memory: its entry is merged, not
        // replaced.
        let a2 = contribution(&["read"], "web-3", 20);
        let second = merge(Some(&first), &key(), "node-a", &a2, t(21));
        let entry = &second.nodes[0];
        assert_eq!(entry.pods, vec!["web-1", "web-3"]);
        assert_eq!(entry.first_seen, Time(t(0)));
    }

    #[test]
    fn contribution_tracks_newness_and_caps_pods() {
        let mut c = Contribution::new(false, t(0));
        c.add("c1", "p1", &census(&["read"]), None, &[], t(1));
        c.dirty = false;
        c.add("c1", "p1", &census(&["read"]), None, &[], t(2));
        assert!(!c.dirty, "nothing new");
        assert_eq!(c.last_new_syscall, Some(t(1)));
        for i in 0..60 {
            c.add(
                &format!("c{i}"),
                &format!("p{i}"),
                &census(&["read"]),
                None,
                &[],
                t(3),
            );
        }
        assert_eq!(c.pods.len(), MAX_PODS);
        assert_eq!(c.pods.back().map(String::as_str), Some("p59"));
    }

    #[test]
    fn base_sets_merge_by_union() {
        let a = BaseSetRef {
            name: "runc-1.1-nnp".into(),
            syscalls: vec!["execve".into(), "write".into()],
        };
        let b = BaseSetRef {
            name: "runc-1.1".into(),
            syscalls: vec!["execve".into(), "setuid".into()],
        };
        let m = merge_base_sets(Some(&a), Some(&b)).expect("both");
        assert_eq!(m.name, "runc-1.1+runc-1.1-nnp");
        assert_eq!(m.syscalls, vec!["execve", "setuid", "write"]);
    }
}
