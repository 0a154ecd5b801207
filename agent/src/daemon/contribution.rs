//! What this node recorded for each workload container, and how it merges
//! into the cluster's ContainerProfile: the union of syscalls over replicas
//! and nodes, never losing one (the merge is `localhost::merge`'s, the one
//! set of rules for ContainerProfile specs), each node counted once per
//! object, its Pods and containers as what it brings since its last write.
//! Pure: no I/O.
use std::collections::{BTreeSet, VecDeque};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use syscensus_api::{
    ContainerProfileSpec, Contributors, NodeContribution, SessionSummary, WorkloadRef,
};

use crate::{
    census::Census,
    container_recording::SessionRecord,
    localhost::{self, MAX_PODS},
    profile::BaseSet,
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

/// What a ContainerProfile (by uid) counts of this node: the node itself,
/// and these many of its Pods and containers.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Counted {
    pub uid: String,
    pub pods: i64,
    pub containers: i64,
}

/// This node's contribution to one ContainerProfile. Only what changes the
/// profile (syscalls, base set, warnings, sessions) makes it `dirty`: a
/// new Pod or container that brings nothing new is counted at the next
/// write, so that a converged recording writes nothing however its Pods
/// come and go.
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
    /// Distinct Pods added (`pods` keeps only the latest).
    #[serde(default)]
    pub pods_seen: i64,
    /// What the ContainerProfile counts of this node, as last written.
    #[serde(default)]
    pub counted: Option<Counted>,
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
            pods_seen: 0,
            counted: None,
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
            self.pods_seen += 1;
        }
        self.containers.insert(container_id.to_owned());
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

    /// What a ContainerProfile with uid `uid` that counted `counted` of this
    /// node lacks: (nodes, Pods, containers) to add.
    fn uncounted(&self, uid: Option<&str>) -> (i64, i64, i64) {
        let containers = self.containers.len() as i64;
        match &self.counted {
            Some(c) if Some(c.uid.as_str()) == uid => (
                0,
                (self.pods_seen - c.pods).max(0),
                (containers - c.containers).max(0),
            ),
            _ => (1, self.pods_seen, containers),
        }
    }

    /// The contribution as a ContainerProfile spec of its own: this node
    /// its only contributor. Times in whole seconds, as the API server
    /// keeps them: a finer time would look later than the same time read
    /// back, and make a write that changes nothing.
    pub fn spec(&self, key: &Key, node: &str) -> ContainerProfileSpec {
        ContainerProfileSpec {
            recording: key.recording.clone(),
            workload: key.workload.clone(),
            container: key.container.clone(),
            init_container: self.init_container,
            syscall_count: self.syscalls.len() as i64,
            syscalls: self.syscalls.to_spec(),
            runtime_base_set: self.base_set.as_ref().map(Into::into),
            contributors: Contributors {
                nodes: 1,
                pods: self.pods_seen,
                containers: self.containers.len() as i64,
                sample: vec![NodeContribution {
                    node: node.to_owned(),
                    pods: self.pods.iter().cloned().collect(),
                    containers: self.containers.len() as i64,
                    first_seen: stored(self.first_seen),
                    last_seen: stored(self.last_seen),
                    last_new_syscall: self.last_new_syscall.map(stored),
                }],
            },
            first_seen: stored(self.first_seen),
            last_seen: stored(self.last_seen),
            last_new_syscall: self.last_new_syscall.map(stored),
            warnings: self.warnings.iter().cloned().collect(),
            session_only_syscalls: self.session_only.to_spec(),
            sessions: self.sessions.clone(),
        }
    }
}

/// `t` in whole seconds, as a Kubernetes `Time` serializes it.
fn stored(t: jiff::Timestamp) -> Time {
    Time(jiff::Timestamp::from_second(t.as_second()).unwrap_or(t))
}

/// The ContainerProfile spec after merging `ours` (this node's
/// contribution) into `existing` (what the cluster holds, from any node,
/// and the object's uid), and what it then counts of this node (its
/// [`Counted`] once the write succeeds). Nothing in `existing` is ever
/// dropped; the node is counted once per object, and its Pods and
/// containers by what it brings since it was last counted in it.
pub fn merge(
    existing: Option<(&ContainerProfileSpec, Option<&str>)>,
    key: &Key,
    node: &str,
    ours: &Contribution,
) -> (ContainerProfileSpec, (i64, i64)) {
    let tally = (ours.pods_seen, ours.containers.len() as i64);
    let spec = ours.spec(key, node);
    let Some((existing, uid)) = existing else {
        return (spec, tally);
    };
    let mut merged = existing.clone();
    localhost::merge(&mut merged, &spec);
    let (nodes, pods, containers) = ours.uncounted(uid);
    let counts = &existing.contributors;
    merged.contributors.nodes = counts.nodes + nodes;
    merged.contributors.pods = counts.pods + pods;
    merged.contributors.containers = counts.containers + containers;
    merged.recording = key.recording.clone();
    merged.workload = key.workload.clone();
    merged.container = key.container.clone();
    (merged, tally)
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
        let (first, _) = merge(None, &key(), "node-a", &a);
        let (second, _) = merge(Some((&first, Some("u"))), &key(), "node-b", &b);
        assert_eq!(
            second.syscalls["SCMP_ARCH_X86_64"],
            vec!["openat", "read", "write"]
        );
        assert_eq!(second.syscall_count, 3);
        let nodes: Vec<_> = second
            .contributors
            .sample
            .iter()
            .map(|n| n.node.as_str())
            .collect();
        assert_eq!(nodes, vec!["node-a", "node-b"]);
        assert_eq!(second.contributors.nodes, 2);
        assert_eq!(second.first_seen, Time(t(0)));
        // When node b saw openat, not when it wrote it.
        assert_eq!(second.last_new_syscall, Some(Time(t(5))));
        // Node a writes again without knowing b's syscall: nothing is lost,
        // and nothing new appeared.
        let (third, _) = merge(Some((&second, Some("u"))), &key(), "node-a", &a);
        assert_eq!(third.syscalls, second.syscalls);
        assert_eq!(third.last_new_syscall, Some(Time(t(5))));
    }

    #[test]
    fn a_node_entry_keeps_what_an_earlier_write_had() {
        let a1 = contribution(&["read"], "web-1", 0);
        let (first, _) = merge(None, &key(), "node-a", &a1);
        // The agent restarted and lost its memory: its entry is merged, not
        // replaced.
        let a2 = contribution(&["read"], "web-3", 20);
        let (second, _) = merge(Some((&first, Some("u"))), &key(), "node-a", &a2);
        let entry = &second.contributors.sample[0];
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
        c.add("c2", "p2", &census(&["read"]), None, &[], t(2));
        assert!(!c.dirty, "a new Pod without a new syscall waits");
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
        assert_eq!(c.pods_seen, 60);
    }

    /// Each node is counted once per object, however often it writes, and
    /// again in a new object of the same name; its Pods and containers by
    /// what it brought since it was counted.
    #[test]
    fn nodes_are_counted_once_per_object() {
        let mut a = contribution(&["read"], "web-1", 0);
        let (first, tally) = merge(None, &key(), "node-a", &a);
        assert_eq!(tally, (1, 1));
        a.counted = Some(Counted {
            uid: "u1".into(),
            pods: tally.0,
            containers: tally.1,
        });
        let b = contribution(&["write"], "web-2", 1);
        let (second, _) = merge(Some((&first, Some("u1"))), &key(), "node-b", &b);
        assert_eq!(second.contributors.nodes, 2);
        a.add("id-web-3", "web-3", &census(&["openat"]), None, &[], t(2));
        let (third, tally) = merge(Some((&second, Some("u1"))), &key(), "node-a", &a);
        assert_eq!(
            (
                third.contributors.nodes,
                third.contributors.pods,
                third.contributors.containers
            ),
            (2, 3, 3)
        );
        assert_eq!(tally, (2, 2));
        // Deleted and created again by another node: node a counts anew.
        let (fresh, _) = merge(None, &key(), "node-b", &b);
        let (again, _) = merge(Some((&fresh, Some("u2"))), &key(), "node-a", &a);
        assert_eq!(again.contributors.nodes, 2);
        assert_eq!(again.contributors.pods, 3);
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
