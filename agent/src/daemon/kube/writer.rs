//! Writing a ContainerProfile: read, merge, then create (if absent) or
//! server-side apply with the read resourceVersion as a precondition; on a
//! conflict (another node wrote meanwhile) read and merge again. Nothing is
//! written when the merge changes nothing but when things were last seen.
use std::time::Duration;

use kube::{
    Api, Client,
    api::{Patch, PatchParams, PostParams},
};
use serde_json::json;
use syscensus_api::{ContainerProfile, FIELD_MANAGER, annotations, labels};

use crate::daemon::{
    contribution::{Contribution, Counted, Key, merge},
    machine::Learned,
};

/// A ContainerProfile could not be written.
#[derive(Debug, thiserror::Error)]
pub(crate) enum WriteError {
    #[error(transparent)]
    Api(#[from] kube::Error),
    #[error("other writers kept changing it ({ATTEMPTS} attempts)")]
    Contended,
}

/// Whether two specs differ only in when they were last seen.
fn same_but_last_seen(
    a: &syscensus_api::ContainerProfileSpec,
    b: &syscensus_api::ContainerProfileSpec,
) -> bool {
    let strip = |s: &syscensus_api::ContainerProfileSpec| {
        let mut s = s.clone();
        s.last_seen = s.first_seen.clone();
        for n in &mut s.contributors.sample {
            n.last_seen = n.first_seen.clone();
        }
        s
    };
    strip(a) == strip(b)
}

/// Attempts before giving up until the next flush: with the waits between
/// them, up to about a minute and a half when many nodes write one profile.
const ATTEMPTS: usize = 12;

/// The longest wait after a conflict before merging again; the first waits
/// up to 20 ms, each next one up to twice as long, up to this. Random within
/// it, so that the nodes that lost a race do not meet again in the next,
/// and growing without a low cap, so that many nodes writing one profile at
/// once (a DaemonSet's first merge) slow down to what the API server can
/// take one after the other instead of flooding it with writes that
/// conflict.
const MAX_CONFLICT_WAIT: Duration = Duration::from_secs(30);

/// A random wait of up to 10 ms × 2^`conflicts`, at most
/// [`MAX_CONFLICT_WAIT`].
fn conflict_wait(conflicts: usize) -> Duration {
    use std::hash::{BuildHasher as _, Hasher as _};
    let bound = Duration::from_millis(10)
        .saturating_mul(1 << conflicts.min(16))
        .min(MAX_CONFLICT_WAIT);
    // A fresh RandomState is keyed anew: enough randomness for a jitter,
    // without a crate for it.
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_usize(conflicts);
    let fraction = (hasher.finish() % 1_000_000) as u32;
    bound.mul_f64(f64::from(fraction) / 1_000_000.0)
}

/// The labels of a ContainerProfile.
fn labels_of(key: &Key) -> std::collections::BTreeMap<String, String> {
    [
        (
            labels::RECORDING,
            syscensus_api::label_value(&key.recording),
        ),
        (
            labels::WORKLOAD_KIND,
            key.workload.kind.as_str().to_ascii_lowercase(),
        ),
        (
            labels::WORKLOAD_NAME,
            syscensus_api::label_value(&key.workload.name),
        ),
        (labels::CONTAINER, key.container.clone()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

fn is_conflict(error: &kube::Error) -> bool {
    matches!(error, kube::Error::Api(status) if status.code == 409)
}

/// What `spec`, written over `existing`, added to it.
fn learned(
    key: &Key,
    existing: &ContainerProfile,
    spec: &syscensus_api::ContainerProfileSpec,
) -> Learned {
    let added = spec
        .syscalls
        .iter()
        .filter_map(|(arch, names)| {
            let known: std::collections::BTreeSet<&String> = existing
                .spec
                .syscalls
                .get(arch)
                .into_iter()
                .flatten()
                .collect();
            let new: Vec<String> = names
                .iter()
                .filter(|n| !known.contains(n))
                .cloned()
                .collect();
            (!new.is_empty()).then(|| (arch.clone(), new))
        })
        .collect();
    Learned {
        key: key.clone(),
        uid: existing.metadata.uid.clone(),
        added,
        quiet_since: Some(
            existing
                .spec
                .last_new_syscall
                .as_ref()
                .unwrap_or(&existing.spec.first_seen)
                .0,
        ),
    }
}

/// What a write did: what it added to the profile when it existed, what
/// the profile now counts of this node, and the attempts that met a
/// conflict.
#[derive(Debug)]
pub(crate) struct Written {
    pub(crate) learned: Option<Learned>,
    pub(crate) counted: Option<Counted>,
    pub(crate) conflicts: usize,
}

/// Writes this node's contribution to the ContainerProfile of `key`; says
/// what it added to the profile when it existed.
pub(crate) async fn write(
    client: &Client,
    key: &Key,
    node: &str,
    ours: &Contribution,
) -> Result<Written, WriteError> {
    let api: Api<ContainerProfile> = Api::namespaced(client.clone(), &key.namespace);
    let name = key.object_name();
    let mut conflicts = 0;
    for _ in 0..ATTEMPTS {
        let existing = api.get_opt(&name).await?;
        let (spec, (pods, containers)) = merge(
            existing
                .as_ref()
                .map(|e| (&e.spec, e.metadata.uid.as_deref())),
            key,
            node,
            ours,
        );
        let counted = |uid: Option<String>| {
            uid.map(|uid| Counted {
                uid,
                pods,
                containers,
            })
        };
        let result = match &existing {
            None => {
                let mut object = ContainerProfile::new(&name, spec);
                object.metadata.namespace = Some(key.namespace.clone());
                object.metadata.labels = Some(labels_of(key));
                let params = PostParams {
                    field_manager: Some(FIELD_MANAGER.to_owned()),
                    ..PostParams::default()
                };
                api.create(&params, &object).await.map(|created| Written {
                    learned: None,
                    counted: counted(created.metadata.uid),
                    conflicts,
                })
            }
            Some(existing) => {
                if same_but_last_seen(&existing.spec, &spec) {
                    return Ok(Written {
                        learned: None,
                        counted: counted(existing.metadata.uid.clone()),
                        conflicts,
                    });
                }
                // An approved profile says whether its spec is still the
                // one approved: `kubectl get cprof` shows it, and
                // `-l syscensus.io/approval=changed` lists what awaits
                // review.
                let mut labels = labels_of(key);
                let approved = existing
                    .metadata
                    .annotations
                    .as_ref()
                    .and_then(|a| a.get(annotations::APPROVED_SHA256));
                if let Some(label) =
                    crate::localhost::approval_label(&spec, approved.map(String::as_str))
                {
                    labels.insert(labels::APPROVAL.to_owned(), label.to_owned());
                }
                let patch = json!({
                    "apiVersion": "syscensus.io/v1alpha1",
                    "kind": "ContainerProfile",
                    "metadata": {
                        "name": name,
                        "namespace": key.namespace,
                        "resourceVersion": existing.metadata.resource_version,
                        "labels": labels,
                    },
                    "spec": spec,
                });
                api.patch(
                    &name,
                    &PatchParams::apply(FIELD_MANAGER).force(),
                    &Patch::Apply(&patch),
                )
                .await
                .map(|_| Written {
                    learned: Some(learned(key, existing, &spec)),
                    counted: counted(existing.metadata.uid.clone()),
                    conflicts,
                })
            }
        };
        match result {
            Ok(written) => return Ok(written),
            // AlreadyExists or a stale resourceVersion: another node wrote
            // meanwhile; read and merge again.
            Err(error) if is_conflict(&error) => {
                conflicts += 1;
                tokio::time::sleep(conflict_wait(conflicts)).await;
            }
            Err(error) => return Err(error.into()),
        }
    }
    Err(WriteError::Contended)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use std::{collections::BTreeSet, time::Instant};

    use syscensus_api::{WorkloadKind, WorkloadRef};
    use syscensus_fake_apiserver::{FakeApiServer, Gvr};

    use super::*;
    use crate::{census::Census, syscalls::Arch};

    /// Every (architecture, syscall) pair the tables know.
    fn pairs() -> Vec<(Arch, &'static str)> {
        Arch::ALL
            .into_iter()
            .flat_map(|arch| arch.syscalls().iter().map(move |(_, name)| (arch, *name)))
            .collect()
    }

    /// 1,000 nodes write their contributions to one ContainerProfile at
    /// once, through the writer the agents use, against the test API
    /// server: each brings syscalls no other node has, the first writes of
    /// all come within one flush interval and conflict, and each node
    /// retries as the agent does (the writer's own attempts, then the
    /// flush's backoff). The profile ends with the union of every
    /// contribution, not one syscall lost; every node counted once; and
    /// the object stays small.
    #[tokio::test]
    #[allow(clippy::print_stderr, reason = "the test prints what it measured")]
    async fn a_thousand_writers_lose_no_syscall() {
        const NODES: usize = 1000;
        let server = FakeApiServer::start_with_syscensus("shop");
        // Nobody watches: keep the server's memory to what it serves.
        server.set_history_limit(100);
        let client = server.client();
        let key = Key {
            namespace: "shop".into(),
            recording: "rec".into(),
            workload: WorkloadRef {
                kind: WorkloadKind::DaemonSet,
                name: "agent".into(),
            },
            container: "app".into(),
        };
        let all = pairs();
        assert!(all.len() > NODES, "fewer pairs than nodes: {}", all.len());
        let now = jiff::Timestamp::now();
        let contributions: Vec<Contribution> = (0..NODES)
            .map(|i| {
                let mut census = Census::default();
                census.extend(Arch::X86_64, ["read", "write"]);
                // Pair i, and the pairs beyond the thousandth spread over
                // the nodes: together every pair, each from one node only.
                for (arch, name) in all.iter().skip(i).step_by(NODES) {
                    census.extend(*arch, [*name]);
                }
                let mut c = Contribution::new(false, now);
                c.add(
                    &format!("container-{i}"),
                    &format!("agent-{i}"),
                    &census,
                    None,
                    &[],
                    now,
                );
                c
            })
            .collect();
        let start = Instant::now();
        let mut tasks = Vec::new();
        for (i, contribution) in contributions.iter().cloned().enumerate() {
            let (client, key) = (client.clone(), key.clone());
            tasks.push(tokio::spawn(async move {
                let node = format!("node-{i:04}");
                // The agents' flushes are not in step: each node's first
                // write comes somewhere in the flush interval (5 s).
                let phase = crate::localhost::sha256_hex(node.as_bytes());
                let phase = u64::from_str_radix(&phase[..8], 16).unwrap() % 5000;
                tokio::time::sleep(Duration::from_millis(phase)).await;
                // The flush's backoff after a failed write: 1 s, doubling.
                let mut backoff = Duration::from_secs(1);
                let mut contended = 0;
                loop {
                    match write(&client, &key, &node, &contribution).await {
                        Ok(written) => return (written.conflicts, contended, written.counted),
                        Err(WriteError::Contended) => {
                            contended += 1;
                            tokio::time::sleep(backoff).await;
                            backoff = (backoff * 2).min(Duration::from_secs(60));
                        }
                        Err(error) => panic!("node {node}: {error}"),
                    }
                }
            }));
        }
        let mut conflicts = 0;
        let mut contended = 0;
        let mut counted = Vec::new();
        for task in tasks {
            let (c, f, n) = task.await.unwrap();
            conflicts += c;
            contended += f;
            counted.push(n);
        }
        let settled = start.elapsed();
        let object = server
            .get(
                &Gvr::of::<ContainerProfile>(),
                Some("shop"),
                &key.object_name(),
            )
            .unwrap();
        let bytes = serde_json::to_vec(&object).unwrap().len();
        let spec: syscensus_api::ContainerProfileSpec =
            serde_json::from_value(object["spec"].clone()).unwrap();
        let mut want = Census::default();
        for c in &contributions {
            want.merge(&c.syscalls);
        }
        let got = Census::from_spec(&spec.syscalls);
        let lost: BTreeSet<(String, String)> = want
            .difference(&got)
            .iter()
            .flat_map(|(arch, names)| names.iter().map(move |n| (arch.to_owned(), n.clone())))
            .collect();
        assert!(lost.is_empty(), "{} syscalls lost: {lost:?}", lost.len());
        assert_eq!(got, want);
        // read and write are among the pairs.
        assert_eq!(spec.syscall_count, all.len() as i64);
        assert_eq!(spec.contributors.nodes, NODES as i64);
        assert_eq!(spec.contributors.containers, NODES as i64);
        assert_eq!(spec.contributors.pods, NODES as i64);
        assert_eq!(spec.contributors.sample.len(), crate::localhost::MAX_SAMPLE);
        assert!(bytes < 256 * 1024, "the object is {bytes} bytes");
        // Converged: every node writes again (as after a restart, which
        // marks every contribution changed) with nothing new; nothing is
        // written, only read.
        server.clear_requests();
        for (i, (contribution, counted)) in contributions.into_iter().zip(counted).enumerate() {
            let contribution = Contribution {
                counted,
                ..contribution
            };
            let node = format!("node-{i:04}");
            let api: Api<ContainerProfile> = Api::namespaced(client.clone(), "shop");
            let before = api.get(&key.object_name()).await.unwrap();
            let written = write(&client, &key, &node, &contribution).await.unwrap();
            if written.learned.is_some() {
                let (merged, _) = merge(
                    Some((&before.spec, before.metadata.uid.as_deref())),
                    &key,
                    &node,
                    &contribution,
                );
                let (a, b) = (
                    serde_json::to_value(&before.spec).unwrap(),
                    serde_json::to_value(&merged).unwrap(),
                );
                let changed: Vec<String> = a
                    .as_object()
                    .unwrap()
                    .iter()
                    .filter(|(k, v)| b.get(k.as_str()) != Some(v))
                    .map(|(k, v)| format!("{k}: {v} -> {}", b[k.as_str()]))
                    .collect();
                panic!("{node} wrote again: {changed:?}");
            }
        }
        let writes: Vec<String> = server
            .requests()
            .iter()
            .filter(|r| r.method != "GET")
            .map(|r| format!("{} {}", r.method, r.path))
            .collect();
        assert!(writes.is_empty(), "writes after convergence: {writes:?}");
        eprintln!(
            "{NODES} writers settled in {settled:?}: {conflicts} conflicts, \
             {contended} flushes contended, object {bytes} bytes"
        );
    }
}
