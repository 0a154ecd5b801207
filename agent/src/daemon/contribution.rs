//! What this node recorded for each workload container, and how it merges
//! into the cluster's ContainerProfile: the union of syscalls over replicas
//! and nodes, never losing one (the merge is `localhost::merge`'s, the one
//! set of rules for ContainerProfile specs). Pure: no I/O.
use std::collections::{BTreeSet, VecDeque};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use syscensus_api::{ContainerProfileSpec, NodeContribution, SessionSummary, WorkloadRef};

use crate::{
    census::Census,
    localhost::{self, MAX_PODS},
    profile::BaseSet,
    recording::SessionRecord,
};

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
    pub syscalls: Census,
    pub base_set: Option<BaseSet>,
    /// Pod names, most recent last.
    pub pods: VecDeque<String>,
    /// Container ids recorded.
    pub containers: BTreeSet<String>,
    pub first_seen: jiff::Timestamp,
    pub last_seen: jiff::Timestamp,
    pub last_new_syscall: Option<jiff::Timestamp>,
    pub warnings: BTreeSet<String>,
    /// What the workloads made (not only their sessions).
    #[serde(default)]
    pub workload: Census,
    /// What only sessions made.
    #[serde(default)]
    pub session_only: Census,
    /// The sessions seen, per type and command line.
    #[serde(default)]
    pub sessions: Vec<SessionSummary>,
    /// Changed since the last write to the cluster.
    pub dirty: bool,
}

impl Contribution {
    /// An empty contribution, first seen `now`.
    pub fn new(init_container: bool, now: jiff::Timestamp) -> Contribution {
        Contribution {
            init_container,
            syscalls: Census::default(),
            base_set: None,
            pods: VecDeque::new(),
            containers: BTreeSet::new(),
            first_seen: now,
            last_seen: now,
            last_new_syscall: None,
            warnings: BTreeSet::new(),
            workload: Census::default(),
            session_only: Census::default(),
            sessions: Vec::new(),
            dirty: true,
        }
    }

    /// Adds a container's sessions, with the syscalls of its profile and
    /// those of them that only its sessions made (after [`add`](Self::add)
    /// of the same syscalls). A syscall stays session-only until the
    /// workload of some container makes it.
    pub fn add_sessions(
        &mut self,
        sessions: &[SessionRecord],
        syscalls: &Census,
        session_only: &Census,
    ) {
        let summaries: Vec<SessionSummary> = sessions.iter().map(SessionRecord::summary).collect();
        let before = (self.sessions.clone(), self.session_only.clone());
        localhost::merge_sessions(&mut self.sessions, &summaries);
        self.workload.merge(&syscalls.difference(session_only));
        self.session_only = self.syscalls.difference(&self.workload);
        self.dirty |= before != (self.sessions.clone(), self.session_only.clone());
    }

    /// Adds what a container of Pod `pod` did so far, and the base set its
    /// profile uses.
    pub fn add(
        &mut self,
        container_id: &str,
        pod: &str,
        syscalls: &Census,
        base_set: Option<&BaseSet>,
        warnings: &[String],
        now: jiff::Timestamp,
    ) {
        if self.syscalls.merge(syscalls) {
            self.last_new_syscall = Some(now);
            self.dirty = true;
        }
        if let Some(base) = base_set {
            let merged = match &self.base_set {
                Some(known) => known.union(base),
                None => base.clone(),
            };
            if Some(&merged) != self.base_set.as_ref() {
                self.base_set = Some(merged);
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
        self.syscalls.len()
    }

    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The contribution as a ContainerProfile spec of its own: this node
    /// its only entry.
    pub fn spec(&self, key: &Key, node: &str) -> ContainerProfileSpec {
        ContainerProfileSpec {
            recording: key.recording.clone(),
            workload: key.workload.clone(),
            container: key.container.clone(),
            init_container: self.init_container,
            syscall_count: self.syscalls.len() as i64,
            syscalls: self.syscalls.to_spec(),
            runtime_base_set: self.base_set.as_ref().map(Into::into),
            nodes: vec![NodeContribution {
                node: node.to_owned(),
                pods: self.pods.iter().cloned().collect(),
                containers: self.containers.len() as i64,
                first_seen: Time(self.first_seen),
                last_seen: Time(self.last_seen),
                last_new_syscall: self.last_new_syscall.map(Time),
            }],
            first_seen: Time(self.first_seen),
            last_seen: Time(self.last_seen),
            last_new_syscall: self.last_new_syscall.map(Time),
            warnings: self.warnings.iter().cloned().collect(),
            session_only_syscalls: self.session_only.to_spec(),
            sessions: self.sessions.clone(),
        }
    }
}

/// The ContainerProfile spec after merging `ours` (this node's
/// contribution) into `existing` (what the cluster holds, from any node).
/// Nothing in `existing` is ever dropped.
pub fn merge(
    existing: Option<&ContainerProfileSpec>,
    key: &Key,
    node: &str,
    ours: &Contribution,
) -> ContainerProfileSpec {
    let ours = ours.spec(key, node);
    let Some(existing) = existing else {
        return ours;
    };
    let mut spec = existing.clone();
    localhost::merge(&mut spec, &ours);
    spec.recording = key.recording.clone();
    spec.workload = key.workload.clone();
    spec.container = key.container.clone();
    spec
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

    fn census(names: &[&str]) -> Census {
        let mut c = Census::default();
        c.extend(crate::syscalls::Arch::X86_64, names.iter().copied());
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
        let first = merge(None, &key(), "node-a", &a);
        let second = merge(Some(&first), &key(), "node-b", &b);
        assert_eq!(
            second.syscalls["SCMP_ARCH_X86_64"],
            vec!["openat", "read", "write"]
        );
        assert_eq!(second.syscall_count, 3);
        let nodes: Vec<_> = second.nodes.iter().map(|n| n.node.as_str()).collect();
        assert_eq!(nodes, vec!["node-a", "node-b"]);
        assert_eq!(second.first_seen, Time(t(0)));
        // When node b saw openat, not when it wrote it.
        assert_eq!(second.last_new_syscall, Some(Time(t(5))));
        // Node a writes again without knowing b's syscall: nothing is lost,
        // and nothing new appeared.
        let third = merge(Some(&second), &key(), "node-a", &a);
        assert_eq!(third.syscalls, second.syscalls);
        assert_eq!(third.last_new_syscall, Some(Time(t(5))));
    }

    #[test]
    fn a_node_entry_keeps_what_an_earlier_write_had() {
        let a1 = contribution(&["read"], "web-1", 0);
        let first = merge(None, &key(), "node-a", &a1);
        // The agent restarted and lost its memory: its entry is merged, not
        // replaced.
        let a2 = contribution(&["read"], "web-3", 20);
        let second = merge(Some(&first), &key(), "node-a", &a2);
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
    fn base_sets_are_united() {
        let set = |name: &str, calls: &[&str]| BaseSet {
            name: name.into(),
            syscalls: calls.iter().map(|c| (*c).to_owned()).collect(),
        };
        let mut c = Contribution::new(false, t(0));
        let nnp = set("runc-1.1-nnp", &["execve", "write"]);
        c.add("c1", "p1", &census(&["read"]), Some(&nnp), &[], t(1));
        c.dirty = false;
        c.add("c1", "p1", &census(&["read"]), Some(&nnp), &[], t(2));
        assert!(!c.dirty);
        let plain = set("runc-1.1", &["execve", "setuid"]);
        c.add("c2", "p2", &census(&["read"]), Some(&plain), &[], t(3));
        let base = c.base_set.unwrap();
        assert_eq!(base.name, "runc-1.1+runc-1.1-nnp");
        assert_eq!(base.syscalls.len(), 3);
    }
}
