//! What pods and containers are: the parts of the CRI configs a test picks.

use std::{collections::BTreeMap, path::PathBuf};

use crate::containers::{Qos, pod_uid};

/// What a pod is: its metadata as the API server would give it.
#[derive(Debug, Clone)]
pub struct PodSpec {
    /// `metadata.name`.
    pub name: String,
    /// `metadata.namespace`: `default` unless set.
    pub namespace: String,
    /// `metadata.uid`: fresh.
    pub uid: String,
    /// QoS class, which places the pod's cgroup.
    pub qos: Qos,
    /// The pod's own labels (the kubelet adds its `io.kubernetes.pod.*`).
    pub labels: BTreeMap<String, String>,
}

impl PodSpec {
    /// A best-effort pod named `name` in namespace `default` with a fresh
    /// UID.
    pub fn new(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            namespace: "default".to_owned(),
            uid: pod_uid(),
            qos: Qos::BestEffort,
            labels: BTreeMap::new(),
        }
    }

    /// Sets the namespace.
    pub fn namespace(mut self, namespace: &str) -> Self {
        namespace.clone_into(&mut self.namespace);
        self
    }

    /// Adds a pod label.
    pub fn label(mut self, key: &str, value: &str) -> Self {
        self.labels.insert(key.to_owned(), value.to_owned());
        self
    }
}

/// How a container's seccomp profile reaches containerd.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seccomp {
    /// No filter (the Kubernetes default without a seccompProfile).
    Unconfined,
    /// containerd's default profile.
    RuntimeDefault,
    /// A profile file on the node, in the `seccomp` `SecurityProfile`
    /// field as a current kubelet sends it: type `Localhost`,
    /// `localhost_ref` the absolute path.
    Localhost(PathBuf),
    /// The same, in the deprecated `seccomp_profile_path` field
    /// (`localhost/<absolute path>`) as older kubelets sent it.
    LocalhostProfilePath(PathBuf),
}

/// What a container runs and how.
#[derive(Debug, Clone)]
pub struct ContainerSpec {
    /// `metadata.name`, which becomes `io.kubernetes.container.name`.
    pub name: String,
    /// The image (already imported).
    pub image: String,
    /// The entrypoint override (`command` in a Pod spec).
    pub command: Vec<String>,
    /// `args` in a Pod spec.
    pub args: Vec<String>,
    /// Environment variables.
    pub env: Vec<(String, String)>,
    /// The seccomp profile; unconfined if `None`.
    pub seccomp: Option<Seccomp>,
    /// `no_new_privs` (what `allowPrivilegeEscalation: false` sets).
    pub no_new_privs: bool,
    /// Extra container labels beside the kubelet's.
    pub labels: BTreeMap<String, String>,
}

impl ContainerSpec {
    /// Container `name` running `command` in `image`.
    pub fn new(name: &str, image: &str, command: &[&str]) -> Self {
        Self {
            name: name.to_owned(),
            image: image.to_owned(),
            command: command.iter().map(|c| (*c).to_owned()).collect(),
            args: Vec::new(),
            env: Vec::new(),
            seccomp: None,
            no_new_privs: false,
            labels: BTreeMap::new(),
        }
    }

    /// Sets the seccomp profile.
    pub fn seccomp(mut self, seccomp: Seccomp) -> Self {
        self.seccomp = Some(seccomp);
        self
    }

    /// Sets `no_new_privs`.
    pub fn no_new_privs(mut self, on: bool) -> Self {
        self.no_new_privs = on;
        self
    }
}
