//! Pod sandboxes and `CreateContainer` as the kubelet calls it.

use std::{collections::HashMap, path::Path};

use k8s_cri::v1::{
    ContainerConfig, ContainerMetadata, CreateContainerRequest, ImageSpec, KeyValue,
    LinuxContainerConfig, LinuxContainerSecurityContext, PodSandboxConfig, SecurityProfile,
    security_profile::ProfileType,
};
use tempfile::TempDir;

use super::{ContainerSpec, Cri, CriContainer, PodSpec, Seccomp, host_network_namespaces};
use crate::containers::{CgroupLease, cleanup_failed};

/// A pod sandbox; dropping it stops and removes it with its containers and
/// removes the pod's cgroups.
#[derive(Debug)]
pub struct Pod<'c> {
    pub(super) cri: &'c Cri,
    pub(super) id: String,
    pub(super) spec: PodSpec,
    pub(super) config: PodSandboxConfig,
    pub(super) cgroup_parent: String,
    pub(super) log_dir: TempDir,
    pub(super) lease: Option<CgroupLease>,
}

impl<'c> Pod<'c> {
    /// The sandbox id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The pod's metadata.
    pub fn spec(&self) -> &PodSpec {
        &self.spec
    }

    /// The pod UID.
    pub fn uid(&self) -> &str {
        &self.spec.uid
    }

    /// The pod-level cgroup (`/kubepods/besteffort/pod<uid>`), parent of
    /// the sandbox's and every container's cgroup.
    pub fn cgroup_parent(&self) -> &str {
        &self.cgroup_parent
    }

    /// The sandbox (pause) container's cgroup: `<cgroup parent>/<pod id>`.
    pub fn sandbox_cgroup(&self) -> String {
        format!("{}/{}", self.cgroup_parent, self.id)
    }

    /// The pod's CRI log directory.
    pub fn log_dir(&self) -> &Path {
        self.log_dir.path()
    }

    /// `CreateContainer` in this pod, as the kubelet would for `spec`.
    pub fn create_container(&self, spec: &ContainerSpec) -> CriContainer<'_> {
        let log_path = format!("{}/0.log", spec.name);
        let _ = std::fs::create_dir_all(self.log_dir().join(&spec.name));
        let mut labels: HashMap<String, String> = spec.labels.clone().into_iter().collect();
        labels.extend([
            ("io.kubernetes.container.name".to_owned(), spec.name.clone()),
            ("io.kubernetes.pod.name".to_owned(), self.spec.name.clone()),
            (
                "io.kubernetes.pod.namespace".to_owned(),
                self.spec.namespace.clone(),
            ),
            ("io.kubernetes.pod.uid".to_owned(), self.spec.uid.clone()),
        ]);
        let (seccomp, seccomp_profile_path) = match &spec.seccomp {
            None | Some(Seccomp::Unconfined) => {
                (profile(ProfileType::Unconfined, ""), String::new())
            }
            Some(Seccomp::RuntimeDefault) => {
                (profile(ProfileType::RuntimeDefault, ""), String::new())
            }
            Some(Seccomp::Localhost(path)) => (
                profile(ProfileType::Localhost, &path.display().to_string()),
                String::new(),
            ),
            Some(Seccomp::LocalhostProfilePath(path)) => {
                (None, format!("localhost/{}", path.display()))
            }
        };
        #[allow(
            deprecated,
            reason = "older kubelets send seccomp_profile_path; tests use it"
        )]
        let security_context = LinuxContainerSecurityContext {
            namespace_options: Some(host_network_namespaces()),
            no_new_privs: spec.no_new_privs,
            seccomp,
            seccomp_profile_path,
            ..Default::default()
        };
        let config = ContainerConfig {
            metadata: Some(ContainerMetadata {
                name: spec.name.clone(),
                attempt: 0,
            }),
            image: Some(ImageSpec {
                image: spec.image.clone(),
                ..Default::default()
            }),
            command: spec.command.clone(),
            args: spec.args.clone(),
            envs: spec
                .env
                .iter()
                .map(|(key, value)| KeyValue {
                    key: key.clone(),
                    value: value.clone(),
                })
                .collect(),
            labels,
            annotations: HashMap::from([
                (
                    "io.kubernetes.container.restartCount".to_owned(),
                    "0".to_owned(),
                ),
                (
                    "io.kubernetes.container.terminationMessagePath".to_owned(),
                    "/dev/termination-log".to_owned(),
                ),
            ]),
            log_path,
            linux: Some(LinuxContainerConfig {
                resources: None,
                security_context: Some(security_context),
            }),
            ..Default::default()
        };
        let response = self.cri.call(
            &format!("CreateContainer {}", spec.name),
            self.cri.runtime().create_container(CreateContainerRequest {
                pod_sandbox_id: self.id.clone(),
                config: Some(config),
                sandbox_config: Some(self.config.clone()),
            }),
        );
        CriContainer {
            pod: self,
            id: response.container_id,
            name: spec.name.clone(),
        }
    }

    /// Creates and starts a container.
    pub fn run_container(&self, spec: &ContainerSpec) -> CriContainer<'_> {
        let container = self.create_container(spec);
        container.start();
        container
    }

    /// Stops and removes the pod now, panicking on failure.
    pub fn remove(mut self) {
        self.remove_inner(true);
    }

    fn remove_inner(&mut self, strict: bool) {
        let Some(lease) = self.lease.take() else {
            return;
        };
        let result = self.cri.stop_and_remove_pod(&self.id);
        drop(lease);
        if let Err(status) = result {
            let message = format!("removing pod {} failed: {status}", self.spec.name);
            if strict {
                panic!("{message}");
            }
            cleanup_failed(&message);
        }
    }
}

impl Drop for Pod<'_> {
    fn drop(&mut self) {
        self.remove_inner(false);
    }
}

fn profile(kind: ProfileType, localhost_ref: &str) -> Option<SecurityProfile> {
    Some(SecurityProfile {
        profile_type: kind as i32,
        localhost_ref: localhost_ref.to_owned(),
    })
}
