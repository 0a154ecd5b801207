//! Who a container is. Three sources, in this order of trust:
//!
//! 1. its cgroup path ([`cgroup_path`]): the container id and its Pod's UID,
//!    known from the moment the kernel marks the cgroup;
//! 2. the container runtime over CRI ([`RuntimeAnswer`]): the container's
//!    name in its Pod, the Pod's name and namespace, labels, image; or that
//!    the id is a Pod sandbox;
//! 3. the Pod's status ([`PodView`]): which container of the Pod has that id,
//!    for containers the runtime no longer knows (removed with their Pod).
//!
//! Pure: no I/O. The CRI client (`daemon::cri`) and the Pod watch
//! (`daemon::kube`) bring the answers in.
use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::{
    api::core::v1::{Container, ContainerStatus, Pod, PodSpec, SeccompProfile},
    apimachinery::pkg::apis::meta::v1::OwnerReference,
};
use serde::{Deserialize, Serialize};

use crate::container_recording::{ExecCommand, PodRef};

pub mod cgroup_path;

pub use cgroup_path::{KubeCgroup, classify};

/// The kubelet's CRI labels on every container it creates
/// (pkg/kubelet/types/labels.go).
pub mod label {
    /// The Pod's name.
    pub const POD_NAME: &str = "io.kubernetes.pod.name";
    /// The Pod's namespace.
    pub const POD_NAMESPACE: &str = "io.kubernetes.pod.namespace";
    /// The Pod's UID.
    pub const POD_UID: &str = "io.kubernetes.pod.uid";
    /// The container's name in its Pod.
    pub const CONTAINER_NAME: &str = "io.kubernetes.container.name";
}

/// What the runtime says about a container.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerMeta {
    /// The container's name in its Pod.
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_namespace: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_uid: Option<String>,
    /// Every CRI label of the container.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// The image as the runtime names it.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub image: String,
}

/// What the runtime knows about an id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RuntimeAnswer {
    Container(ContainerMeta),
    /// The id is a Pod sandbox (its pause container), not a workload.
    Sandbox,
    /// The runtime does not know the id (yet, or any more).
    Unknown,
}

/// A container's name in its Pod, and whether it is an init container.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainerName {
    pub name: String,
    pub init: bool,
}

/// Who a container is, as far as known.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Identity {
    /// The runtime's id of the container, from its cgroup path.
    pub container_id: String,
    /// Its Pod's UID, from its cgroup path.
    pub pod_uid: String,
    /// Its cgroup v2 path.
    pub cgroup: String,
    /// What the runtime said, once it said it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime: Option<ContainerMeta>,
}

impl Identity {
    /// The identity a container's cgroup path gives; `None` for a path that
    /// is not a container's (a Pod's, a QoS class's, anything else).
    pub fn of_cgroup(path: &str) -> Option<Identity> {
        match classify(path)? {
            KubeCgroup::Container {
                container_id,
                pod_uid,
                ..
            } => Some(Identity {
                container_id,
                pod_uid,
                cgroup: path.to_owned(),
                runtime: None,
            }),
            _ => None,
        }
    }

    /// The container's name as the runtime gave it, if it did.
    pub fn runtime_name(&self) -> Option<&str> {
        self.runtime
            .as_ref()
            .map(|m| m.name.as_str())
            .filter(|n| !n.is_empty())
    }

    /// The Pod as the runtime's labels name it; the UID from the cgroup
    /// path when the runtime did not say.
    pub fn pod(&self) -> PodRef {
        let meta = self.runtime.as_ref();
        PodRef {
            namespace: meta.and_then(|m| m.pod_namespace.clone()),
            name: meta.and_then(|m| m.pod_name.clone()),
            uid: meta
                .and_then(|m| m.pod_uid.clone())
                .unwrap_or_else(|| self.pod_uid.clone()),
        }
    }

    /// The container's name in `pod` and whether it is an init container:
    /// the runtime's name (looked up in the Pod's spec), else the name the
    /// Pod's status gives its id. `None` while neither knows it.
    pub fn name_in(&self, pod: &PodView) -> Option<ContainerName> {
        match self.runtime_name() {
            Some(name) => Some(ContainerName {
                name: name.to_owned(),
                init: pod.init_containers.contains(name),
            }),
            None => pod.container_with_id(&self.container_id),
        }
    }
}

/// The commands `container`'s spec has the runtime exec in it: exec probes
/// and lifecycle hooks (the kubelet runs both through CRI `ExecSync`).
fn exec_commands(container: &Container) -> Vec<ExecCommand> {
    let probes = [
        ("livenessProbe", &container.liveness_probe),
        ("readinessProbe", &container.readiness_probe),
        ("startupProbe", &container.startup_probe),
    ]
    .into_iter()
    .filter_map(|(source, probe)| Some((source, probe.as_ref()?.exec.as_ref()?)));
    let lifecycle = container.lifecycle.as_ref();
    let hooks = [
        ("postStart", lifecycle.and_then(|l| l.post_start.as_ref())),
        ("preStop", lifecycle.and_then(|l| l.pre_stop.as_ref())),
    ]
    .into_iter()
    .filter_map(|(source, handler)| Some((source, handler?.exec.as_ref()?)));
    probes
        .chain(hooks)
        .filter_map(|(source, exec)| {
            let command = exec.command.clone().filter(|c| !c.is_empty())?;
            Some(ExecCommand {
                source: source.to_owned(),
                command,
            })
        })
        .collect()
}

/// One container id a Pod's status names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatusEntry {
    /// The runtime's id, without its scheme (`containerd://`).
    pub id: String,
    pub name: String,
    pub init: bool,
}

/// What the daemon needs of a Pod: a trimmed copy of the watched object.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PodView {
    pub uid: String,
    pub namespace: String,
    pub name: String,
    pub labels: BTreeMap<String, String>,
    /// The names of the spec's init containers.
    pub init_containers: BTreeSet<String>,
    /// Every container id the status names: current, last terminated.
    pub statuses: Vec<StatusEntry>,
    /// The Pod's controller, if it has one.
    pub controller: Option<OwnerReference>,
    /// Per container (and init container) name: the commands its spec runs
    /// in it through the runtime (exec probes, lifecycle hooks).
    pub exec_commands: BTreeMap<String, Vec<ExecCommand>>,
    /// The containers the status shows running: name and runtime id.
    pub running: Vec<StatusEntry>,
    /// Per container (and init container) name: the `localhostProfile` it
    /// runs under, its own or else the Pod's.
    pub localhost_profiles: BTreeMap<String, String>,
}

/// The `localhostProfile` of a Localhost seccomp profile.
fn localhost_of(profile: Option<&SeccompProfile>) -> Option<&str> {
    profile
        .filter(|p| p.type_ == "Localhost")
        .and_then(|p| p.localhost_profile.as_deref())
}

/// Per container name, the `localhostProfile` it runs under: a container's
/// own seccomp profile wins over the Pod's.
fn localhost_profiles(spec: &PodSpec) -> BTreeMap<String, String> {
    let pod = spec
        .security_context
        .as_ref()
        .and_then(|s| s.seccomp_profile.as_ref());
    spec.containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .filter_map(|c| {
            let own = c
                .security_context
                .as_ref()
                .and_then(|s| s.seccomp_profile.as_ref());
            let path = match own {
                Some(own) => localhost_of(Some(own)),
                None => localhost_of(pod),
            }?;
            Some((c.name.clone(), path.to_owned()))
        })
        .collect()
}

impl PodView {
    /// The parts of `pod` the daemon uses.
    pub fn of(pod: &Pod) -> PodView {
        let meta = &pod.metadata;
        let mut statuses = Vec::new();
        let mut running = Vec::new();
        if let Some(status) = &pod.status {
            for (list, init) in [
                (&status.container_statuses, false),
                (&status.init_container_statuses, true),
            ] {
                for s in list.iter().flatten() {
                    if s.state.as_ref().is_some_and(|st| st.running.is_some())
                        && let Some((_, id)) =
                            s.container_id.as_deref().and_then(|i| i.split_once("://"))
                        && !id.is_empty()
                    {
                        running.push(StatusEntry {
                            id: id.to_owned(),
                            name: s.name.clone(),
                            init,
                        });
                    }
                    for id in status_ids(s) {
                        statuses.push(StatusEntry {
                            id,
                            name: s.name.clone(),
                            init,
                        });
                    }
                }
            }
        }
        PodView {
            uid: meta.uid.clone().unwrap_or_default(),
            namespace: meta.namespace.clone().unwrap_or_default(),
            name: meta.name.clone().unwrap_or_default(),
            labels: meta.labels.clone().unwrap_or_default(),
            init_containers: pod
                .spec
                .iter()
                .flat_map(|s| s.init_containers.iter().flatten())
                .map(|c| c.name.clone())
                .collect(),
            statuses,
            controller: meta
                .owner_references
                .iter()
                .flatten()
                .find(|o| o.controller == Some(true))
                .cloned(),
            exec_commands: pod
                .spec
                .iter()
                .flat_map(|s| {
                    s.containers
                        .iter()
                        .chain(s.init_containers.iter().flatten())
                })
                .map(|c| (c.name.clone(), exec_commands(c)))
                .filter(|(_, commands)| !commands.is_empty())
                .collect(),
            running,
            localhost_profiles: pod
                .spec
                .as_ref()
                .map(localhost_profiles)
                .unwrap_or_default(),
        }
    }

    /// The container the status gives runtime id `id`.
    pub fn container_with_id(&self, id: &str) -> Option<ContainerName> {
        self.statuses
            .iter()
            .find(|s| s.id == id)
            .map(|s| ContainerName {
                name: s.name.clone(),
                init: s.init,
            })
    }

    /// The Pod, as a recording names it.
    pub fn pod_ref(&self) -> PodRef {
        PodRef {
            namespace: Some(self.namespace.clone()),
            name: Some(self.name.clone()),
            uid: self.uid.clone(),
        }
    }
}

/// The runtime ids a container status names: its current one, and the
/// ids of its running, terminated and last terminated states.
fn status_ids(s: &ContainerStatus) -> Vec<String> {
    let state = s.state.as_ref();
    let candidates = [
        s.container_id.clone(),
        state
            .and_then(|st| st.terminated.as_ref())
            .and_then(|t| t.container_id.clone()),
        s.last_state
            .as_ref()
            .and_then(|l| l.terminated.as_ref())
            .and_then(|t| t.container_id.clone()),
    ];
    let mut ids: Vec<String> = candidates
        .into_iter()
        .flatten()
        .filter_map(|id| id.split_once("://").map(|(_, rest)| rest.to_owned()))
        .filter(|id| !id.is_empty())
        .collect();
    ids.dedup();
    ids
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use k8s_openapi::api::core::v1::{
        Container, ContainerState, ContainerStateTerminated, PodSpec, PodStatus,
    };

    use super::*;

    const ID: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    const OLD: &str = "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210";
    const UID: &str = "5f0c3a1e-2b7d-4c9a-8e21-6d4f0b3c9a17";

    fn terminated(id: &str) -> ContainerState {
        ContainerState {
            terminated: Some(ContainerStateTerminated {
                container_id: Some(format!("containerd://{id}")),
                ..ContainerStateTerminated::default()
            }),
            ..ContainerState::default()
        }
    }

    fn pod() -> Pod {
        Pod {
            metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                name: Some("web-1".into()),
                namespace: Some("shop".into()),
                uid: Some(UID.into()),
                ..Default::default()
            },
            spec: Some(PodSpec {
                init_containers: Some(vec![Container {
                    name: "migrate".into(),
                    ..Container::default()
                }]),
                containers: vec![Container {
                    name: "app".into(),
                    ..Container::default()
                }],
                ..PodSpec::default()
            }),
            status: Some(PodStatus {
                container_statuses: Some(vec![ContainerStatus {
                    name: "app".into(),
                    container_id: Some(format!("containerd://{ID}")),
                    last_state: Some(terminated(OLD)),
                    ..ContainerStatus::default()
                }]),
                init_container_statuses: Some(vec![ContainerStatus {
                    name: "migrate".into(),
                    state: Some(terminated("abc")),
                    ..ContainerStatus::default()
                }]),
                ..PodStatus::default()
            }),
        }
    }

    #[test]
    fn the_pod_status_names_current_and_earlier_containers() {
        let view = PodView::of(&pod());
        let app = ContainerName {
            name: "app".into(),
            init: false,
        };
        assert_eq!(view.container_with_id(ID), Some(app.clone()));
        // A restarted container's earlier id is its last terminated state's.
        assert_eq!(view.container_with_id(OLD), Some(app));
        assert_eq!(
            view.container_with_id("abc"),
            Some(ContainerName {
                name: "migrate".into(),
                init: true
            })
        );
        assert_eq!(view.container_with_id("nope"), None);
    }

    #[test]
    fn the_runtime_name_comes_first_and_the_spec_tells_init_containers() {
        let view = PodView::of(&pod());
        let path = format!("/kubepods/besteffort/pod{UID}/{ID}");
        let mut identity = Identity::of_cgroup(&path).unwrap();
        assert_eq!(identity.pod_uid, UID);
        assert_eq!(identity.pod().uid, UID);
        assert_eq!(identity.name_in(&view).unwrap().name, "app");
        identity.runtime = Some(ContainerMeta {
            name: "migrate".into(),
            pod_name: Some("web-1".into()),
            ..ContainerMeta::default()
        });
        assert_eq!(
            identity.name_in(&view),
            Some(ContainerName {
                name: "migrate".into(),
                init: true
            })
        );
        assert_eq!(identity.pod().name.as_deref(), Some("web-1"));
        assert!(Identity::of_cgroup(&format!("/kubepods/besteffort/pod{UID}")).is_none());
    }
}
