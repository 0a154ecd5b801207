//! The scale harness of the cluster writes (`cargo xtask bench --cluster`,
//! the `bench-cluster` binary): N simulated nodes in one process, each
//! with the agent's own ContainerProfile writer and merge, and its own
//! writer of the recordings' status and of its Lease
//! (`syscensus::daemon::kube::harness`), against the test API server. A
//! recording covers D Deployments whose Pods spread over the nodes (one
//! Pod of each Deployment per node); each node contributes its Pods'
//! syscalls to each Deployment's ContainerProfile. Nodes' syscall sets
//! overlap without being equal, so merges really merge; after the first
//! merge a late node brings a syscall nobody had.
//!
//! Every figure of load comes from the server's counters
//! ([`apiserver::Counters`]), not from the writers. What the harness
//! simulates, and what it does not:
//! - each node flushes every flush interval (its first flush at a phase of
//!   its own within the interval, from its name), writing its dirty
//!   contributions in order and stopping at a contended one, with the
//!   agent's flush backoff (1 s doubling to 60 s) after it;
//! - after each flush the node runs its status writer (ProfileRecording
//!   status where it differs from the spec, the node's Lease on change)
//!   with the recordings as one ProfileRecording watch shows them: that
//!   watch stands for every node's;
//! - `watchers` nodes hold the agent's Pod watch (its node's Pods, by
//!   field selector): the events the server sent on one of those and on
//!   the ProfileRecording watch are the events one agent receives;
//! - not simulated: the workload lookups (a Pod's owner chain, cached by
//!   the agent), Events, and the kernel side.
//!
//! Writes after convergence are measured with every contribution marked
//! changed (as after a restart of every agent), the strongest case: each
//! node reads and merges every profile again and must write nothing.
use std::{
    collections::{BTreeMap, BTreeSet},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use futures::StreamExt as _;
use kube::{
    Api, Client,
    runtime::{WatchStreamExt as _, reflector, watcher},
};
use serde_json::{Value, json};
use syscensus::{
    census::Census,
    daemon::{
        contribution::{Contribution, Key},
        kube::harness::{NodeStatus, write_contribution},
        machine::{RecordingSummary, StatusReport},
    },
    syscalls::Arch,
};
use syscensus_api::{ContainerProfile, ProfileRecording, WorkloadKind, WorkloadRef};

use crate::apiserver::{Counters, FakeApiServer, Gvr};

/// The namespace of the recorded workloads.
const NAMESPACE: &str = "shop";
/// The recording.
const RECORDING: &str = "rec";
/// The container of every Pod.
const CONTAINER: &str = "app";
/// Syscalls every node's containers make.
const COMMON: usize = 12;
/// Syscalls a node adds to each Deployment's profile beyond the common
/// ones, from a window of the pool that depends on the node.
const WINDOW: usize = 6;

/// What to run.
#[derive(Debug, Clone)]
pub struct Options {
    pub nodes: usize,
    pub deployments: usize,
    /// The agents' flush interval (the agent's default is 5 s).
    pub flush_interval: Duration,
    /// Flush intervals measured after convergence.
    pub converged_rounds: usize,
    /// Nodes that hold the agent's Pod watch.
    pub watchers: usize,
    /// The longest the first merge may take before the run gives up.
    pub limit: Duration,
}

/// The counters of one phase.
#[derive(Debug, Clone)]
pub struct Phase {
    pub elapsed: Duration,
    pub counters: Counters,
}

impl Phase {
    /// Writes per second.
    pub fn writes_per_second(&self) -> f64 {
        self.counters.writes() as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// Writes by resource.
    pub fn writes_by_resource(&self) -> BTreeMap<String, u64> {
        let mut out = BTreeMap::new();
        for (kind, n) in &self.counters.requests {
            if kind.is_write() && kind.succeeded() {
                *out.entry(kind.resource.clone()).or_default() += n;
            }
        }
        out
    }
}

/// Events the server sent on one agent's watches.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AgentEvents {
    /// Of the starting state (the first list).
    pub initial: u64,
    /// Of changes.
    pub changes: u64,
}

/// What one run measured.
#[derive(Debug, Clone)]
pub struct Report {
    pub nodes: usize,
    pub deployments: usize,
    /// Until every node's contributions were written and the recording's
    /// status was written.
    pub first: Phase,
    /// From the start until the last node's first contributions were in
    /// all profiles.
    pub first_merge: Duration,
    /// Flushes that gave up on a contended profile and were retried after
    /// the flush backoff (the writers' say; every other figure is the
    /// server's).
    pub contended_flushes: usize,
    /// The late node's arrival, until its new syscall was in.
    pub late: Phase,
    /// The window after convergence.
    pub converged: Phase,
    /// The most events one watching agent received over the first phase
    /// and the late node, and over the window after convergence.
    pub agent_events: AgentEvents,
    pub agent_events_converged: AgentEvents,
    /// The largest object of each kind: (bytes of its JSON, name).
    pub largest: BTreeMap<&'static str, (usize, String)>,
    /// Syscalls of some node's contribution missing from the merged
    /// profiles, as `profile: arch/name`.
    pub lost: Vec<String>,
    /// (node, pod, container) counts of the merged profiles that are not
    /// the number of nodes, Pods and containers that contributed.
    pub miscounted: Vec<String>,
    /// Whether the recording's status was written (derived from its spec).
    pub status_written: bool,
}

/// The pool of syscall names the nodes draw from (x86_64's, sorted), and
/// the one the late node brings, which is not in it.
fn pool() -> (Vec<&'static str>, &'static str) {
    let mut names: Vec<&'static str> = Arch::X86_64.syscalls().iter().map(|(_, n)| *n).collect();
    names.sort_unstable();
    names.dedup();
    let late = names.pop().unwrap();
    (names, late)
}

/// The syscalls node `node`'s container of Deployment `deployment` makes:
/// the common ones, and a window of the pool shifted by node and
/// Deployment.
fn syscalls_of(pool: &[&'static str], node: usize, deployment: usize) -> Census {
    let mut census = Census::default();
    census.extend(Arch::X86_64, pool[..COMMON].iter().copied());
    let span = pool.len() - COMMON - WINDOW;
    let start = COMMON + (node * 7 + deployment * 13) % span;
    census.extend(Arch::X86_64, pool[start..start + WINDOW].iter().copied());
    census
}

fn node_name(i: usize) -> String {
    format!("node-{i:04}")
}

fn key_of(deployment: usize) -> Key {
    Key {
        namespace: NAMESPACE.to_owned(),
        recording: RECORDING.to_owned(),
        workload: WorkloadRef {
            kind: WorkloadKind::Deployment,
            name: format!("web-{deployment}"),
        },
        container: CONTAINER.to_owned(),
    }
}

fn pod_name(deployment: usize, node: usize) -> String {
    format!("web-{deployment}-{node:04}")
}

/// A node: its contributions (one per Deployment), its status writer.
struct Node {
    name: String,
    contributions: Vec<(Key, Contribution)>,
    status: NodeStatus,
    report: StatusReport,
}

impl Node {
    fn new(client: &Client, pool: &[&'static str], i: usize, deployments: usize) -> Node {
        let now = jiff::Timestamp::now();
        let name = node_name(i);
        let mut summary = RecordingSummary::default();
        let mut union = Census::default();
        let contributions: Vec<(Key, Contribution)> = (0..deployments)
            .map(|d| {
                let census = syscalls_of(pool, i, d);
                union.merge(&census);
                let key = key_of(d);
                let mut c = Contribution::new(false, now);
                c.add(
                    &format!("containerd://{name}-{d}"),
                    &pod_name(d, i),
                    &census,
                    None,
                    &[],
                    now,
                );
                summary.recording_containers += 1;
                summary
                    .workloads
                    .entry(key.workload.clone())
                    .or_default()
                    .insert(CONTAINER.to_owned());
                (key, c)
            })
            .collect();
        summary.syscalls = union.len() as i64;
        let report = StatusReport {
            recordings: [((NAMESPACE.to_owned(), RECORDING.to_owned()), summary)].into(),
            lost: 0,
        };
        Node {
            status: NodeStatus::new(client.clone(), name.clone()),
            name,
            contributions,
            report,
        }
    }
}

/// What the nodes share with the run.
struct Shared {
    client: Client,
    recordings: reflector::Store<ProfileRecording>,
    start: Instant,
    interval: Duration,
    /// Contributions written at least once.
    written: AtomicUsize,
    contended: AtomicUsize,
    /// Every node marks every contribution changed at its next flush.
    rewrite: Mutex<BTreeSet<String>>,
    stop: AtomicBool,
}

/// A node's flush loop, until the run stops.
async fn run_node(shared: Arc<Shared>, mut node: Node) {
    let phase = {
        let hash = syscensus::localhost::sha256_hex(node.name.as_bytes());
        let ms = u64::from_str_radix(&hash[..8], 16).unwrap_or(0);
        Duration::from_millis(ms % shared.interval.as_millis().max(1) as u64)
    };
    let mut next = Instant::now() + phase;
    let mut backoff = Duration::ZERO;
    let mut first = vec![true; node.contributions.len()];
    loop {
        tokio::time::sleep_until(next.into()).await;
        if shared.stop.load(Ordering::Relaxed) {
            return;
        }
        if shared.rewrite.lock().unwrap().remove(&node.name) {
            for (_, c) in &mut node.contributions {
                c.dirty = true;
            }
        }
        let mut contended = false;
        for (i, (key, contribution)) in node.contributions.iter_mut().enumerate() {
            if !contribution.dirty {
                continue;
            }
            match write_contribution(&shared.client, key, &node.name, contribution).await {
                Ok(Some(written)) => {
                    contribution.counted = written.counted;
                    contribution.dirty = false;
                    if std::mem::take(&mut first[i]) {
                        shared.written.fetch_add(1, Ordering::Relaxed);
                    }
                }
                Ok(None) => {
                    shared.contended.fetch_add(1, Ordering::Relaxed);
                    contended = true;
                    break;
                }
                Err(error) => panic!("{}: writing {}: {error}", node.name, key.object_name()),
            }
        }
        backoff = if contended {
            (backoff * 2).clamp(Duration::from_secs(1), Duration::from_secs(60))
        } else {
            Duration::ZERO
        };
        let recordings = shared.recordings.state();
        node.status.update(&recordings, &node.report).await;
        next = Instant::now().max(next) + shared.interval.max(backoff);
    }
}

/// The recordings' watch, as every agent holds it.
fn watch_recordings(client: &Client) -> reflector::Store<ProfileRecording> {
    let (store, writer) = reflector::store();
    let stream = watcher(
        Api::<ProfileRecording>::all(client.clone()),
        watcher::Config::default(),
    )
    .default_backoff()
    .reflect(writer)
    .applied_objects();
    tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        while stream.next().await.is_some() {}
    });
    store
}

/// Waits up to `limit` for `done`, checking every 50 ms; whether it came.
async fn wait_for(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let until = Instant::now() + limit;
    while Instant::now() < until {
        if done() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    done()
}

/// The most events one watching agent received: the Pod watch of each
/// watching node, plus the ProfileRecording watch.
fn agent_events(counters: &Counters) -> AgentEvents {
    let recordings: Vec<AgentEvents> = counters
        .watches
        .iter()
        .filter(|w| w.resource == "profilerecordings.syscensus.io")
        .map(|w| AgentEvents {
            initial: w.initial,
            changes: w.changes,
        })
        .collect();
    let recording = recordings.first().copied().unwrap_or_default();
    counters
        .watches
        .iter()
        .filter(|w| w.resource == "pods")
        .map(|w| AgentEvents {
            initial: w.initial + recording.initial,
            changes: w.changes + recording.changes,
        })
        .max_by_key(|e| (e.changes, e.initial))
        .unwrap_or(recording)
}

/// Sets up the cluster's objects (through the store: not counted).
fn populate(server: &FakeApiServer, nodes: usize, deployments: usize) {
    let ns = Some(NAMESPACE);
    server
        .create(
            &Gvr::new("", "v1", "namespaces"),
            None,
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "default"}}),
        )
        .ok();
    for i in 0..=nodes {
        server
            .create(
                &Gvr::new("", "v1", "nodes"),
                None,
                json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": node_name(i)}}),
            )
            .unwrap();
    }
    server
        .create(
            &Gvr::of::<ProfileRecording>(),
            ns,
            json!({
                "apiVersion": "syscensus.io/v1alpha1",
                "kind": "ProfileRecording",
                "metadata": {"name": RECORDING, "namespace": NAMESPACE},
                "spec": {"podSelector": {"matchLabels": {"tier": "web"}}},
            }),
        )
        .unwrap();
    for d in 0..deployments {
        for i in 0..nodes {
            server
                .create(
                    &Gvr::new("", "v1", "pods"),
                    ns,
                    json!({
                        "apiVersion": "v1",
                        "kind": "Pod",
                        "metadata": {
                            "name": pod_name(d, i),
                            "namespace": NAMESPACE,
                            "labels": {"tier": "web", "app": format!("web-{d}")},
                        },
                        "spec": {
                            "nodeName": node_name(i),
                            "containers": [{"name": CONTAINER, "image": "web"}],
                        },
                    }),
                )
                .unwrap();
        }
    }
}

fn largest(server: &FakeApiServer) -> BTreeMap<&'static str, (usize, String)> {
    let kinds = [
        ("ContainerProfile", Gvr::of::<ContainerProfile>()),
        ("ProfileRecording", Gvr::of::<ProfileRecording>()),
        ("Lease", Gvr::new("coordination.k8s.io", "v1", "leases")),
    ];
    kinds
        .into_iter()
        .filter_map(|(kind, gvr)| {
            server
                .list(&gvr, None)
                .unwrap()
                .iter()
                .map(|o: &Value| {
                    (
                        serde_json::to_vec(o).unwrap().len(),
                        o["metadata"]["name"]
                            .as_str()
                            .unwrap_or_default()
                            .to_owned(),
                    )
                })
                .max()
                .map(|m| (kind, m))
        })
        .collect()
}

/// Runs the scenario once against a fresh test API server.
pub async fn run(options: &Options) -> Report {
    let server = FakeApiServer::start_with_syscensus(NAMESPACE);
    // Nobody reads the request log here: the counters count.
    server.set_request_log(false);
    let n = options.nodes;
    let d = options.deployments;
    populate(&server, n, d);
    let client = server.client();
    let (pool, late_syscall) = pool();

    // Counted from here: the agents' watches start with the first phase.
    server.reset_counters();
    let recordings = watch_recordings(&client);
    recordings.wait_until_ready().await.unwrap();
    // The agent's own Pod watch, on the first nodes.
    let pod_watches: Vec<_> = (0..options.watchers.min(n))
        .map(|i| syscensus::daemon::kube::node_pods(&client, &node_name(i)))
        .collect();
    for store in &pod_watches {
        store.wait_until_ready().await.unwrap();
    }
    let nodes: Vec<Node> = (0..n).map(|i| Node::new(&client, &pool, i, d)).collect();
    let want: Vec<Census> = (0..d)
        .map(|dep| {
            let mut all = Census::default();
            for node in &nodes {
                all.merge(&node.contributions[dep].1.syscalls);
            }
            all
        })
        .collect();

    let shared = Arc::new(Shared {
        client: client.clone(),
        recordings: recordings.clone(),
        start: Instant::now(),
        interval: options.flush_interval,
        written: AtomicUsize::new(0),
        contended: AtomicUsize::new(0),
        rewrite: Mutex::new(BTreeSet::new()),
        stop: AtomicBool::new(false),
    });
    let mut tasks: Vec<_> = nodes
        .into_iter()
        .map(|node| tokio::spawn(run_node(Arc::clone(&shared), node)))
        .collect();

    // First phase: every node's contributions in, and the recording's
    // status written.
    let merged = wait_for(options.limit, || {
        shared.written.load(Ordering::Relaxed) == n * d
    })
    .await;
    assert!(
        merged,
        "the first merge of {n} nodes did not finish within {:?}: {} of {} contributions written",
        options.limit,
        shared.written.load(Ordering::Relaxed),
        n * d
    );
    let first_merge = shared.start.elapsed();
    let status_written = wait_for(Duration::from_secs(30), || {
        recordings.state().iter().all(|r| r.status.is_some())
    })
    .await;
    let first = Phase {
        elapsed: shared.start.elapsed(),
        counters: server.counters(),
    };

    // A late node brings a syscall nobody had to the first Deployment.
    server.reset_counters();
    let late_start = Instant::now();
    let mut late = Node::new(&client, &pool, n, d);
    late.contributions[0]
        .1
        .syscalls
        .extend(Arch::X86_64, [late_syscall]);
    let mut want = want;
    for (dep, (_, c)) in late.contributions.iter().enumerate() {
        want[dep].merge(&c.syscalls);
    }
    tasks.push(tokio::spawn(run_node(Arc::clone(&shared), late)));
    let late_in = wait_for(options.limit, || {
        shared.written.load(Ordering::Relaxed) == (n + 1) * d
    })
    .await;
    assert!(late_in, "the late node's contributions were not written");
    // Its flush ends with its Lease.
    let lease_in = wait_for(Duration::from_secs(30), || {
        server
            .get(
                &Gvr::new("coordination.k8s.io", "v1", "leases"),
                Some("default"),
                &node_name(n),
            )
            .is_ok()
    })
    .await;
    assert!(lease_in, "the late node's Lease was not written");
    let late = Phase {
        elapsed: late_start.elapsed(),
        counters: server.counters(),
    };
    let events_first = {
        let mut both = first.counters.clone();
        // The watches are the same streams: add the late phase's counts.
        for (w, l) in both.watches.iter_mut().zip(&late.counters.watches) {
            w.initial += l.initial;
            w.changes += l.changes;
        }
        agent_events(&both)
    };

    // Converged: every node rewrites everything, for a window of flushes.
    // Wait out one interval first, so that writes still in flight are not
    // counted in the window.
    tokio::time::sleep(options.flush_interval).await;
    shared
        .rewrite
        .lock()
        .unwrap()
        .extend((0..=n).map(node_name));
    server.reset_counters();
    let window = options.flush_interval * options.converged_rounds as u32;
    let converged_start = Instant::now();
    tokio::time::sleep(window).await;
    let converged = Phase {
        elapsed: converged_start.elapsed(),
        counters: server.counters(),
    };
    let rewritten = shared.rewrite.lock().unwrap().len();
    assert_eq!(
        rewritten, 0,
        "{rewritten} nodes did not flush within the window after convergence"
    );
    shared.stop.store(true, Ordering::Relaxed);
    for task in tasks.drain(..) {
        task.abort();
    }

    // Every node's syscalls in every profile, every node counted once.
    let mut lost = Vec::new();
    let mut miscounted = Vec::new();
    for (dep, want) in want.iter().enumerate() {
        let key = key_of(dep);
        let object = server
            .get(
                &Gvr::of::<ContainerProfile>(),
                Some(NAMESPACE),
                &key.object_name(),
            )
            .unwrap();
        let spec: syscensus_api::ContainerProfileSpec =
            serde_json::from_value(object["spec"].clone()).unwrap();
        let got = Census::from_spec(&spec.syscalls);
        for (arch, names) in want.difference(&got).iter() {
            for name in names {
                lost.push(format!("{}: {arch}/{name}", key.object_name()));
            }
        }
        let c = &spec.contributors;
        let want_count = (n + 1) as i64;
        if (c.nodes, c.pods, c.containers) != (want_count, want_count, want_count) {
            miscounted.push(format!(
                "{}: nodes {}, pods {}, containers {} (want {want_count} each)",
                key.object_name(),
                c.nodes,
                c.pods,
                c.containers
            ));
        }
    }
    Report {
        nodes: n,
        deployments: d,
        first,
        first_merge,
        contended_flushes: shared.contended.load(Ordering::Relaxed),
        late,
        agent_events: events_first,
        agent_events_converged: agent_events(&converged.counters),
        converged,
        largest: largest(&server),
        lost,
        miscounted,
        status_written,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Three nodes through the harness's own code path: the counters count
    /// writes in the first phase and none after convergence, the merged
    /// profiles lose no syscall, and one agent's watches see events.
    #[tokio::test]
    async fn the_harness_counts_three_nodes() {
        let report = run(&Options {
            nodes: 3,
            deployments: 2,
            flush_interval: Duration::from_millis(500),
            converged_rounds: 2,
            watchers: 2,
            limit: Duration::from_secs(60),
        })
        .await;
        assert!(report.lost.is_empty(), "lost: {:?}", report.lost);
        assert!(report.miscounted.is_empty(), "{:?}", report.miscounted);
        let first = report.first.writes_by_resource();
        // 3 nodes x 2 profiles: at least one create and the others' patches.
        assert!(
            first.get("containerprofiles.syscensus.io").copied() >= Some(6),
            "{first:?}"
        );
        assert_eq!(
            first.get("leases.coordination.k8s.io"),
            Some(&3),
            "{first:?}"
        );
        assert_eq!(
            first.get("profilerecordings.syscensus.io/status"),
            Some(&1),
            "{first:?}"
        );
        assert!(report.status_written);
        // The late node: its 2 contributions and its Lease.
        let late = report.late.writes_by_resource();
        assert!(
            late.get("containerprofiles.syscensus.io").copied() >= Some(2),
            "{late:?}"
        );
        assert_eq!(late.get("leases.coordination.k8s.io"), Some(&1), "{late:?}");
        assert_eq!(
            report.converged.counters.writes(),
            0,
            "{:?}",
            report.converged.counters.requests
        );
        // The converged window read every profile again.
        assert!(
            report
                .converged
                .counters
                .count(|k| k.verb == "get" && k.resource == "containerprofiles.syscensus.io")
                >= 8
        );
        // One agent: the watches start from a list (the client's), so
        // the events are changes: the status written, seen on the
        // recordings' watch.
        assert_eq!(report.agent_events.initial, 0);
        assert!(
            report.agent_events.changes >= 1,
            "{:?}",
            report.agent_events
        );
        assert_eq!(report.agent_events_converged.changes, 0);
        assert!(report.largest["ContainerProfile"].0 > 0);
        // The Lease's owner was read: one get of each node's Node.
        assert_eq!(
            report
                .first
                .counters
                .count(|k| k.verb == "get" && k.resource == "nodes"),
            3
        );
    }
}
