//! The daemon's settings.
use std::time::Duration;

use crate::{container_recording::SessionPolicy, profile::BaseSet};

/// How the agent picks each container's runtime base set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BaseSetChoice {
    /// From the runtime (`runc` or `crun`) and whether the container's first
    /// process has `no_new_privs` set.
    Auto { runtime: String },
    /// This set for every container (`None`: no base set).
    Fixed(Option<BaseSet>),
}

/// The daemon's settings.
#[derive(Clone, Debug)]
pub struct Config {
    /// kubelet roots, from the cgroup2 root (`/kubepods`, `/kubepods.slice`).
    pub roots: Vec<String>,
    pub base_set: BaseSetChoice,
    /// Record containers already running at start (flagged as late).
    pub include_running: bool,
    /// Which exec sessions go into the profiles.
    pub sessions: SessionPolicy,
    /// How often running containers' progress is taken.
    pub poll_interval: Duration,
    /// This node's name, for the results.
    pub node_name: Option<String>,
    /// Whether a container runtime answers CRI calls.
    pub runtime: bool,
    /// Kubernetes mode: only what a ProfileRecording selects is recorded,
    /// and results go to ContainerProfiles. Otherwise every container is
    /// recorded, from the start.
    pub kube: Option<KubeConfig>,
}

/// Settings of Kubernetes mode.
#[derive(Clone, Debug)]
pub struct KubeConfig {
    /// This node's name, in the ContainerProfiles.
    pub node: String,
    /// How often changed results are written to the cluster.
    pub flush_interval: Duration,
}
