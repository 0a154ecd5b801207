//! Which workload a Pod belongs to, through its controllers:
//! ReplicaSet → Deployment, Job → CronJob, StatefulSet, DaemonSet, or the
//! bare Pod. ReplicaSets and Jobs are read once each and cached.
use std::collections::HashMap;

use k8s_openapi::{
    api::{apps::v1::ReplicaSet, batch::v1::Job},
    apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference},
};
use kube::{Api, Client};
use syscensus_api::{WorkloadKind, WorkloadRef};

use crate::daemon::identity::PodView;

/// The controller among an object's owners.
pub fn controller_of(meta: &ObjectMeta) -> Option<&OwnerReference> {
    meta.owner_references
        .iter()
        .flatten()
        .find(|o| o.controller == Some(true))
}

/// The workload a Pod's own controller stands for, when that takes no
/// lookup; `Err(owner)` when the owner (a ReplicaSet or a Job) must be read.
pub fn direct_workload(pod: &PodView) -> Result<WorkloadRef, OwnerReference> {
    let name = pod.name.clone();
    let Some(owner) = pod.controller.as_ref() else {
        return Ok(WorkloadRef {
            kind: WorkloadKind::Pod,
            name,
        });
    };
    match owner.kind.as_str() {
        "ReplicaSet" | "Job" => Err(owner.clone()),
        "StatefulSet" => Ok(WorkloadRef {
            kind: WorkloadKind::StatefulSet,
            name: owner.name.clone(),
        }),
        "DaemonSet" => Ok(WorkloadRef {
            kind: WorkloadKind::DaemonSet,
            name: owner.name.clone(),
        }),
        // Static Pods (owned by their Node) and Pods of controllers syscensus
        // does not patch are recorded as themselves.
        _ => Ok(WorkloadRef {
            kind: WorkloadKind::Pod,
            name,
        }),
    }
}

/// The workload an owner (a ReplicaSet or a Job) stands for, given the
/// owner's own controller.
pub fn owner_workload(
    owner: &OwnerReference,
    owners_controller: Option<&OwnerReference>,
) -> WorkloadRef {
    match (
        owner.kind.as_str(),
        owners_controller.map(|c| c.kind.as_str()),
    ) {
        ("ReplicaSet", Some("Deployment")) => WorkloadRef {
            kind: WorkloadKind::Deployment,
            name: owners_controller
                .map(|c| c.name.clone())
                .unwrap_or_default(),
        },
        ("Job", Some("CronJob")) => WorkloadRef {
            kind: WorkloadKind::CronJob,
            name: owners_controller
                .map(|c| c.name.clone())
                .unwrap_or_default(),
        },
        ("Job", _) => WorkloadRef {
            kind: WorkloadKind::Job,
            name: owner.name.clone(),
        },
        _ => WorkloadRef {
            kind: WorkloadKind::ReplicaSet,
            name: owner.name.clone(),
        },
    }
}

/// Resolves Pods to workloads, reading ReplicaSets and Jobs as needed.
#[derive(Clone)]
pub struct Resolver {
    client: Client,
    cache: HashMap<(String, String, String), WorkloadRef>,
}

impl std::fmt::Debug for Resolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resolver")
            .field("cached", &self.cache.len())
            .finish()
    }
}

impl Resolver {
    pub fn new(client: Client) -> Resolver {
        Resolver {
            client,
            cache: HashMap::new(),
        }
    }

    /// The workload of `pod`.
    pub async fn workload(&mut self, pod: &PodView) -> Result<WorkloadRef, kube::Error> {
        let owner = match direct_workload(pod) {
            Ok(workload) => return Ok(workload),
            Err(owner) => owner,
        };
        let namespace = pod.namespace.clone();
        let key = (namespace.clone(), owner.kind.clone(), owner.name.clone());
        if let Some(workload) = self.cache.get(&key) {
            return Ok(workload.clone());
        }
        let read = match owner.kind.as_str() {
            "ReplicaSet" => Api::<ReplicaSet>::namespaced(self.client.clone(), &namespace)
                .get_opt(&owner.name)
                .await
                .map(|o| o.map(|o| o.metadata)),
            _ => Api::<Job>::namespaced(self.client.clone(), &namespace)
                .get_opt(&owner.name)
                .await
                .map(|o| o.map(|o| o.metadata)),
        };
        let meta = match read {
            Ok(meta) => meta,
            // The API server is away: a Deployment's ReplicaSet is named
            // after it and its Pods' template hash, which is enough.
            Err(error) => return deployment_by_name(pod, &owner).ok_or(error),
        };
        // An owner already deleted: its own name is the best left.
        let workload = owner_workload(&owner, meta.as_ref().and_then(controller_of));
        self.cache.insert(key, workload.clone());
        Ok(workload)
    }
}

/// The Deployment of a Pod whose ReplicaSet is `owner`, from names alone:
/// the Deployment controller names each ReplicaSet `<deployment>-<hash>`
/// and labels its Pods `pod-template-hash=<hash>`; nothing else does.
pub fn deployment_by_name(pod: &PodView, owner: &OwnerReference) -> Option<WorkloadRef> {
    if owner.kind != "ReplicaSet" {
        return None;
    }
    let hash = pod.labels.get("pod-template-hash")?;
    let name = owner.name.strip_suffix(hash.as_str())?.strip_suffix('-')?;
    (!name.is_empty()).then(|| WorkloadRef {
        kind: WorkloadKind::Deployment,
        name: name.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    fn owner(kind: &str, name: &str) -> OwnerReference {
        OwnerReference {
            api_version: "apps/v1".into(),
            kind: kind.into(),
            name: name.into(),
            uid: "u".into(),
            controller: Some(true),
            block_owner_deletion: None,
        }
    }

    fn pod(owners: Vec<OwnerReference>) -> PodView {
        PodView {
            name: "p-1".into(),
            namespace: "ns".into(),
            controller: owners.into_iter().find(|o| o.controller == Some(true)),
            ..PodView::default()
        }
    }

    /// Pods as the API serves them, owned by a StatefulSet, a DaemonSet, a
    /// Deployment's ReplicaSet and nothing: the agent names each Pod's
    /// ContainerProfile after the workload that owns it.
    #[tokio::test]
    async fn pods_from_the_api_name_the_profile_of_their_workload() {
        use k8s_openapi::api::core::v1::Pod;
        use syscensus_fake_apiserver::{FakeApiServer, Gvr};

        use crate::daemon::contribution::Key;

        let server = FakeApiServer::start_with_syscensus("shop");
        let owned = |kind: &str, name: &str| serde_json::json!([{"apiVersion": "apps/v1", "kind": kind, "name": name, "uid": format!("{name}-uid"), "controller": true}]);
        server
            .create(
                &Gvr::new("apps", "v1", "replicasets"),
                Some("shop"),
                serde_json::json!({
                    "apiVersion": "apps/v1", "kind": "ReplicaSet",
                    "metadata": {"name": "web-5d4f", "namespace": "shop", "ownerReferences": owned("Deployment", "web")},
                    "spec": {"selector": {"matchLabels": {"app": "web"}},
                             "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "app", "image": "x"}]}}}
                }),
            )
            .unwrap();
        let mut resolver = Resolver::new(server.client());
        for (pod, owners, profile) in [
            ("db-0", owned("StatefulSet", "db"), "rec.statefulset.db.app"),
            (
                "node-exporter-x7k2p",
                owned("DaemonSet", "node-exporter"),
                "rec.daemonset.node-exporter.app",
            ),
            (
                "web-5d4f-abcde",
                owned("ReplicaSet", "web-5d4f"),
                "rec.deployment.web.app",
            ),
            ("solo", serde_json::json!([]), "rec.pod.solo.app"),
        ] {
            let created = server
                .create(
                    &Gvr::new("", "v1", "pods"),
                    Some("shop"),
                    serde_json::json!({
                        "apiVersion": "v1", "kind": "Pod",
                        "metadata": {"name": pod, "namespace": "shop", "ownerReferences": owners},
                        "spec": {"containers": [{"name": "app", "image": "x"}]}
                    }),
                )
                .unwrap();
            let pod: Pod = serde_json::from_value(created).unwrap();
            let view = PodView::of(&pod);
            let workload = resolver.workload(&view).await.unwrap();
            let key = Key {
                namespace: "shop".into(),
                recording: "rec".into(),
                workload,
                container: "app".into(),
            };
            assert_eq!(key.object_name(), profile);
        }
    }

    #[test]
    fn direct_owners() {
        assert_eq!(
            direct_workload(&pod(vec![])).unwrap().kind,
            WorkloadKind::Pod
        );
        let sts = direct_workload(&pod(vec![owner("StatefulSet", "db")])).unwrap();
        assert_eq!(
            (sts.kind, sts.name.as_str()),
            (WorkloadKind::StatefulSet, "db")
        );
        assert_eq!(
            direct_workload(&pod(vec![owner("DaemonSet", "d")]))
                .unwrap()
                .kind,
            WorkloadKind::DaemonSet
        );
        assert_eq!(
            direct_workload(&pod(vec![owner("Node", "n1")]))
                .unwrap()
                .kind,
            WorkloadKind::Pod
        );
        assert!(direct_workload(&pod(vec![owner("ReplicaSet", "web-5d4")])).is_err());
        let mut not_controller = owner("StatefulSet", "x");
        not_controller.controller = None;
        assert_eq!(
            direct_workload(&pod(vec![not_controller])).unwrap().kind,
            WorkloadKind::Pod
        );
    }

    #[test]
    fn deployments_by_name_need_the_template_hash() {
        let mut p = pod(vec![owner("ReplicaSet", "web-5d4f")]);
        let rs = owner("ReplicaSet", "web-5d4f");
        assert_eq!(deployment_by_name(&p, &rs), None);
        p.labels = [("pod-template-hash".to_owned(), "5d4f".to_owned())].into();
        let dep = deployment_by_name(&p, &rs).unwrap();
        assert_eq!(
            (dep.kind, dep.name.as_str()),
            (WorkloadKind::Deployment, "web")
        );
        assert_eq!(
            deployment_by_name(&p, &owner("ReplicaSet", "other-1")),
            None
        );
        assert_eq!(deployment_by_name(&p, &owner("Job", "web-5d4f")), None);
    }

    #[test]
    fn owners_of_owners() {
        let rs = owner("ReplicaSet", "web-5d4");
        let dep = owner_workload(&rs, Some(&owner("Deployment", "web")));
        assert_eq!(
            (dep.kind, dep.name.as_str()),
            (WorkloadKind::Deployment, "web")
        );
        assert_eq!(owner_workload(&rs, None).kind, WorkloadKind::ReplicaSet);
        let job = owner("Job", "backup-123");
        let cron = owner_workload(&job, Some(&owner("CronJob", "backup")));
        assert_eq!(
            (cron.kind, cron.name.as_str()),
            (WorkloadKind::CronJob, "backup")
        );
        assert_eq!(owner_workload(&job, None).kind, WorkloadKind::Job);
    }
}
