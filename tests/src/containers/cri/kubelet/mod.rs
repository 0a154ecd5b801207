//! A Pod object run through CRI the way the kubelet runs it, for tests of
//! manifests as they are written (deploy/): nothing of the Pod is re-typed
//! by the test.
//!
//! As the kubelet (pkg/kubelet/kuberuntime) and the admission plugins before
//! it do:
//! - a sandbox in its QoS class's cgroup (from requests and limits), with
//!   the Pod's labels; init containers one at a time, each to exit 0, then
//!   the containers;
//! - each container's securityContext (the Pod's merged under it) mapped as
//!   `determineEffectiveSecurityContext` maps it: capabilities as written
//!   (containerd adds `CAP_`), privileged, runAsUser and runAsGroup,
//!   readOnlyRootFilesystem, no_new_privs from `allowPrivilegeEscalation:
//!   false`, the default masked and read-only /proc and /sys paths, seccomp
//!   (`Localhost`: `<kubelet root>/seccomp/<localhostProfile>`, the file
//!   containerd reads), AppArmor and SELinux options;
//! - resources: CPU shares from the request, CFS quota and memory limit
//!   from the limits, the OOM score adjustment of the QoS class (-997 for
//!   `system-node-critical` Pods, whose priority admission sets);
//! - environment: the `kubernetes` Service's variables, then the
//!   container's own with `fieldRef` and `resourceFieldRef` filled in;
//! - volumes: `hostPath` (its `type` checked as the kubelet checks it),
//!   `emptyDir`, and the projected service account volume the
//!   ServiceAccount admission plugin adds (token, ca.crt, namespace) at
//!   /var/run/secrets/kubernetes.io/serviceaccount; the termination
//!   message file;
//! - `httpGet` probes against the Pod's IP, ports by name.
//!
//! Where it differs, because this machine cannot do otherwise:
//! - the sandbox uses the node's network namespace (no CNI plugin may make
//!   Pod networks here), so the Pod's IP is the node's, 127.0.0.1;
//! - host paths are the stand-ins the test names in [`Node::host_paths`]
//!   (a path the Pod mounts that the test did not name fails the run);
//! - images are imported beforehand (no registry).
//!
//! Anything of a Pod it does not know how to run (other volume kinds,
//! `subPath`, `$(VAR)` references, env from ConfigMaps or Secrets) fails
//! with a message naming it, never silently.

mod config;
mod http;
mod volumes;

use std::{
    collections::{BTreeMap, HashMap},
    path::PathBuf,
    time::{Duration, Instant},
};

use k8s_cri::v1::{
    ContainerConfig, ContainerMetadata, CreateContainerRequest, ExecSyncRequest, ImageSpec,
    KeyValue, LinuxContainerConfig, Mount,
};
use k8s_openapi::api::core::v1::{
    Container, HTTPGetAction, Pod as PodObject, PodSpec as PodObjectSpec, ServiceAccount,
};
use tempfile::TempDir;

pub use self::{
    config::{bytes, millicores},
    http::{http_get, http_get_body},
};
use self::{
    config::{env, no_references, qos, resources, security_context},
    volumes::Volumes,
};
use super::{Cri, CriContainer, Pod, PodSpec};

/// Where service account credentials are mounted in every container.
pub const SERVICE_ACCOUNT_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// What the kubelet knows of its node and cluster.
#[derive(Debug, Clone)]
pub struct Node {
    /// `spec.nodeName` of the Pods it runs.
    pub name: String,
    /// The node's (and, with the node's network, the Pod's) IP.
    pub ip: String,
    /// The kubelet's root directory (`--root-dir`); Localhost seccomp
    /// profiles are looked up in its `seccomp/`.
    pub kubelet_root: PathBuf,
    /// Each `hostPath` path a Pod may mount, and the path on this machine
    /// that stands in for it (the same path where the real one is used).
    pub host_paths: BTreeMap<String, PathBuf>,
    /// The API server as Pods reach it (the `kubernetes` Service), and the
    /// credentials of service accounts.
    pub api_server: Option<ApiServer>,
    /// The node's memory capacity, for the OOM score of Burstable Pods.
    pub memory_bytes: u64,
}

/// The `kubernetes` Service and what the projected service account volume
/// holds.
#[derive(Debug, Clone)]
pub struct ApiServer {
    /// `KUBERNETES_SERVICE_HOST`.
    pub host: String,
    /// `KUBERNETES_SERVICE_PORT`.
    pub port: u16,
    /// The cluster's CA (`ca.crt`, from the kube-root-ca.crt ConfigMap).
    pub ca_pem: String,
    /// The token the TokenRequest API would issue to the Pod's service
    /// account.
    pub token: String,
}

/// A Pod running through CRI; stopped (each container with its grace
/// period) and removed when dropped.
#[derive(Debug)]
pub struct KubeletPod<'c> {
    sandbox: Pod<'c>,
    object: PodObject,
    /// Container names and ids, init containers first.
    containers: Vec<(String, String)>,
    /// Projected volumes, termination message files, /etc/hosts.
    _dir: TempDir,
    ip: String,
}

/// Runs `pod` (as the API server hands it to the kubelet: defaults need not
/// be filled in) on `node` through `cri`. `service_accounts` are the
/// ServiceAccount objects the Pod may name (for
/// `automountServiceAccountToken`). Returns once every container has
/// started; init containers have exited 0 by then.
pub fn run_pod<'c>(
    cri: &'c Cri,
    node: &Node,
    pod: &PodObject,
    service_accounts: &[ServiceAccount],
) -> KubeletPod<'c> {
    let name = pod
        .metadata
        .name
        .clone()
        .unwrap_or_else(|| panic!("a Pod without a name"));
    let spec = pod
        .spec
        .as_ref()
        .unwrap_or_else(|| panic!("Pod {name} has no spec"));
    let namespace = pod
        .metadata
        .namespace
        .clone()
        .unwrap_or_else(|| "default".into());
    let uid = pod
        .metadata
        .uid
        .clone()
        .unwrap_or_else(crate::containers::pod_uid);
    let mut object = pod.clone();
    object.metadata.namespace = Some(namespace.clone());
    object.metadata.uid = Some(uid.clone());
    if let Some(spec) = object.spec.as_mut() {
        spec.node_name = Some(node.name.clone());
    }
    let dir = tempfile::Builder::new()
        .prefix("syscensus-kubelet-pod-")
        .tempdir()
        .unwrap_or_else(|e| panic!("failed to create a directory for Pod {name}: {e}"));
    let volumes = Volumes::prepare(node, &object, spec, service_accounts, dir.path());
    let mut pod_spec = PodSpec::new(&name).namespace(&namespace);
    pod_spec.uid = uid;
    pod_spec.qos = qos(spec);
    pod_spec.labels = pod.metadata.labels.clone().unwrap_or_default();
    let sandbox = cri.run_pod(pod_spec);
    let mut running = KubeletPod {
        sandbox,
        object,
        containers: Vec::new(),
        _dir: dir,
        ip: node.ip.clone(),
    };
    for container in spec.init_containers.iter().flatten() {
        let id = running.create(node, container, &volumes);
        running.containers.push((container.name.clone(), id));
        let started = running.container(&container.name);
        started.start();
        let code = started.wait_exited(Duration::from_secs(120));
        assert_eq!(
            code,
            0,
            "init container {} of Pod {name} exited {code}:\n{:?}",
            container.name,
            started.logs()
        );
    }
    for container in &spec.containers {
        let id = running.create(node, container, &volumes);
        running.containers.push((container.name.clone(), id));
        running.container(&container.name).start();
    }
    running
}

impl<'c> KubeletPod<'c> {
    /// The Pod object as run: namespace, UID and node filled in.
    pub fn object(&self) -> &PodObject {
        &self.object
    }

    /// The sandbox.
    pub fn sandbox(&self) -> &Pod<'c> {
        &self.sandbox
    }

    /// A container (or init container) of the Pod by name.
    pub fn container(&self, name: &str) -> CriContainer<'_> {
        let (_, id) = self
            .containers
            .iter()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("the Pod has no container {name}"));
        CriContainer {
            pod: &self.sandbox,
            id: id.clone(),
            name: name.to_owned(),
        }
    }

    /// `ExecSync` of `cmd` in container `name`, as `kubectl exec` without a
    /// terminal does it: exit code, stdout, stderr.
    pub fn exec(&self, name: &str, cmd: &[&str], timeout: Duration) -> (i32, String, String) {
        let container = self.container(name);
        let cri = self.sandbox.cri;
        let response = cri.call(
            &format!("ExecSync {cmd:?} in {name}"),
            cri.runtime().exec_sync(ExecSyncRequest {
                container_id: container.id().to_owned(),
                cmd: cmd.iter().map(|c| (*c).to_owned()).collect(),
                timeout: i64::try_from(timeout.as_secs()).unwrap_or(i64::MAX),
            }),
        );
        (
            response.exit_code,
            String::from_utf8_lossy(&response.stdout).into_owned(),
            String::from_utf8_lossy(&response.stderr).into_owned(),
        )
    }

    /// Runs container `name`'s `livenessProbe` or `readinessProbe` (an
    /// `httpGet` against the Pod's IP) once: `Ok` with the status for a
    /// success (200-399), else what went wrong.
    pub fn probe(&self, name: &str, which: Probe) -> Result<u16, String> {
        let container = self.spec_of(name);
        let probe = match which {
            Probe::Liveness => container.liveness_probe.as_ref(),
            Probe::Readiness => container.readiness_probe.as_ref(),
        }
        .unwrap_or_else(|| panic!("container {name} has no {which:?} probe"));
        let action = probe
            .http_get
            .as_ref()
            .unwrap_or_else(|| panic!("the {which:?} probe of {name} is not httpGet"));
        let port = self.port(container, action);
        let path = action.path.as_deref().unwrap_or("/");
        let host = action.host.clone().unwrap_or_else(|| self.ip.clone());
        assert!(
            action.scheme.as_deref().unwrap_or("HTTP") == "HTTP",
            "the {which:?} probe of {name} is not plain HTTP"
        );
        let status = http_get(&host, port, path)?;
        if (200..400).contains(&status) {
            Ok(status)
        } else {
            Err(format!("GET {path} answered {status}"))
        }
    }

    /// Waits until every container's readiness probe succeeds, as the
    /// kubelet marks the Pod Ready.
    pub fn wait_ready(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let names: Vec<String> = self
            .pod_spec()
            .containers
            .iter()
            .filter(|c| c.readiness_probe.is_some())
            .map(|c| c.name.clone())
            .collect();
        for name in names {
            loop {
                let container = self.container(&name);
                assert!(
                    container.state() != k8s_cri::v1::ContainerState::ContainerExited,
                    "container {name} exited ({}) before it was ready:\n{:?}",
                    container.status().exit_code,
                    container.logs()
                );
                match self.probe(&name, Probe::Readiness) {
                    Ok(_) => break,
                    Err(error) => assert!(
                        Instant::now() < deadline,
                        "container {name} did not become ready in {timeout:?}: {error}\n{:?}",
                        self.container(&name).logs()
                    ),
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        }
    }

    /// A container port by name or number, as a probe names it.
    fn port(&self, container: &Container, action: &HTTPGetAction) -> u16 {
        use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
        match &action.port {
            IntOrString::Int(n) => u16::try_from(*n).unwrap_or_else(|_| panic!("port {n}")),
            IntOrString::String(name) => container
                .ports
                .iter()
                .flatten()
                .find(|p| p.name.as_deref() == Some(name))
                .map(|p| u16::try_from(p.container_port).unwrap_or(0))
                .unwrap_or_else(|| panic!("container {} has no port named {name}", container.name)),
        }
    }

    fn pod_spec(&self) -> &PodObjectSpec {
        self.object
            .spec
            .as_ref()
            .unwrap_or_else(|| panic!("a Pod without a spec"))
    }

    fn spec_of(&self, name: &str) -> &Container {
        let spec = self.pod_spec();
        spec.containers
            .iter()
            .chain(spec.init_containers.iter().flatten())
            .find(|c| c.name == name)
            .unwrap_or_else(|| panic!("the Pod has no container {name}"))
    }

    /// Stops the containers with the Pod's grace period, as the kubelet
    /// does before it stops the sandbox, then removes the Pod.
    pub fn stop(self) {
        let grace = self
            .pod_spec()
            .termination_grace_period_seconds
            .unwrap_or(30);
        for (name, _) in self.containers.iter().rev() {
            let container = self.container(name);
            if container.state() == k8s_cri::v1::ContainerState::ContainerRunning {
                container.stop(grace);
            }
        }
        let KubeletPod { sandbox, .. } = self;
        sandbox.remove();
    }

    /// `CreateContainer` for `container` as the kubelet makes its config.
    fn create(&self, node: &Node, container: &Container, volumes: &Volumes) -> String {
        let cri = self.sandbox.cri;
        assert!(
            cri.image_present(container.image.as_deref().unwrap_or_default()),
            "image {:?} of container {} is not on the node (no registry here: import it first)",
            container.image,
            container.name
        );
        let pod = &self.object;
        let spec = self.pod_spec();
        let log_path = format!("{}/0.log", container.name);
        let _ = std::fs::create_dir_all(self.sandbox.log_dir().join(&container.name));
        let mut labels = HashMap::from([
            (
                "io.kubernetes.container.name".to_owned(),
                container.name.clone(),
            ),
            (
                "io.kubernetes.pod.name".to_owned(),
                self.sandbox.spec.name.clone(),
            ),
            (
                "io.kubernetes.pod.namespace".to_owned(),
                self.sandbox.spec.namespace.clone(),
            ),
            (
                "io.kubernetes.pod.uid".to_owned(),
                self.sandbox.spec.uid.clone(),
            ),
        ]);
        labels.retain(|_, v| !v.is_empty());
        let termination_path = container
            .termination_message_path
            .clone()
            .unwrap_or_else(|| "/dev/termination-log".into());
        let annotations = HashMap::from([
            (
                "io.kubernetes.container.restartCount".to_owned(),
                "0".to_owned(),
            ),
            (
                "io.kubernetes.container.terminationMessagePath".to_owned(),
                termination_path.clone(),
            ),
        ]);
        let mut mounts = volumes.mounts(container);
        let termination = volumes.file(&format!("termination-{}", container.name), "");
        mounts.push(Mount {
            container_path: termination_path,
            host_path: termination.display().to_string(),
            ..Default::default()
        });
        let config = ContainerConfig {
            metadata: Some(ContainerMetadata {
                name: container.name.clone(),
                attempt: 0,
            }),
            image: Some(ImageSpec {
                image: container.image.clone().unwrap_or_default(),
                ..Default::default()
            }),
            command: no_references(container.command.clone().unwrap_or_default()),
            args: no_references(container.args.clone().unwrap_or_default()),
            working_dir: container.working_dir.clone().unwrap_or_default(),
            envs: env(node, pod, container)
                .into_iter()
                .map(|(key, value)| KeyValue { key, value })
                .collect(),
            mounts,
            labels,
            annotations,
            log_path,
            stdin: container.stdin.unwrap_or(false),
            tty: container.tty.unwrap_or(false),
            linux: Some(LinuxContainerConfig {
                resources: Some(resources(node, spec, container)),
                security_context: Some(security_context(node, spec, container)),
            }),
            ..Default::default()
        };
        cri.call(
            &format!("CreateContainer {}", container.name),
            cri.runtime().create_container(CreateContainerRequest {
                pod_sandbox_id: self.sandbox.id.clone(),
                config: Some(config),
                sandbox_config: Some(self.sandbox.config.clone()),
            }),
        )
        .container_id
    }
}

/// A probe of a container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Probe {
    /// `livenessProbe`.
    Liveness,
    /// `readinessProbe`.
    Readiness,
}
