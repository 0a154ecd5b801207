//! A blocking CRI (v1) client over containerd's unix socket, used the way a
//! kubelet uses it: host-network pods under kubelet-shaped cgroup parents,
//! containers with the kubelet's labels, seccomp through the security
//! context, logs in the CRI file format.
//!
//! containerd 1.6 takes a container's seccomp profile from the
//! `LinuxContainerSecurityContext.seccomp` field (`SecurityProfile`, type
//! `Localhost`, `localhost_ref` an absolute path); only when that field is
//! unset does it read the deprecated `seccomp_profile_path`
//! (`localhost/<absolute path>`). [`Seccomp`] can send either.

mod container;
pub mod kubelet;
mod pod;
mod spec;

use std::{collections::HashMap, future::Future, path::Path, time::Duration};

use hyper_util::rt::TokioIo;
use k8s_cri::v1::{
    ImageSpec, ImageStatusRequest, LinuxPodSandboxConfig, LinuxSandboxSecurityContext,
    ListPodSandboxRequest, NamespaceMode, NamespaceOption, PodSandbox, PodSandboxConfig,
    PodSandboxMetadata, RemovePodSandboxRequest, RunPodSandboxRequest, StatusRequest,
    StopPodSandboxRequest, VersionRequest, VersionResponse,
    image_service_client::ImageServiceClient, runtime_service_client::RuntimeServiceClient,
};
use tonic::transport::{Channel, Endpoint, Uri};

pub use self::{
    container::{CriContainer, CriLogs, parse_cri_log},
    pod::Pod,
    spec::{ContainerSpec, PodSpec, Seccomp},
};
use super::{
    CgroupLease,
    cgroup::{self, CgroupStyle},
};

/// How long one CRI call may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// A CRI connection with its own single-threaded tokio runtime; every call
/// blocks until containerd answers and panics with the gRPC status on error.
#[derive(Debug)]
pub struct Cri {
    rt: tokio::runtime::Runtime,
    channel: Channel,
}

impl Cri {
    /// A client of the CRI socket at `socket`; it dials on the first call,
    /// and again on each call until one connects.
    pub fn connect(socket: &Path) -> Self {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("failed to build a tokio runtime: {e}"));
        let path = socket.to_path_buf();
        // Lazy: containerd creates its socket a moment before it listens, so
        // the first calls may be refused; every call dials again until one
        // connects (callers poll `runtime_ready` first).
        let channel = rt.block_on(async {
            // The URI is a placeholder: the connector dials the socket.
            Endpoint::from_static("http://[::1]:1").connect_with_connector_lazy(tower::service_fn(
                move |_: Uri| {
                    let path = path.clone();
                    async move {
                        Ok::<_, std::io::Error>(TokioIo::new(
                            tokio::net::UnixStream::connect(path).await?,
                        ))
                    }
                },
            ))
        });
        Self { rt, channel }
    }

    pub(super) fn runtime(&self) -> RuntimeServiceClient<Channel> {
        RuntimeServiceClient::new(self.channel.clone())
    }

    fn images(&self) -> ImageServiceClient<Channel> {
        ImageServiceClient::new(self.channel.clone())
    }

    /// Runs one call, returning its result or the gRPC status.
    fn try_call<T>(
        &self,
        what: &str,
        call: impl Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    ) -> Result<T, tonic::Status> {
        self.rt.block_on(async {
            match tokio::time::timeout(CALL_TIMEOUT, call).await {
                Ok(result) => result.map(tonic::Response::into_inner),
                Err(_) => Err(tonic::Status::deadline_exceeded(format!(
                    "{what} took longer than {CALL_TIMEOUT:?}"
                ))),
            }
        })
    }

    /// Runs one call and panics with `what` and the status on error.
    pub(super) fn call<T>(
        &self,
        what: &str,
        call: impl Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    ) -> T {
        self.try_call(what, call)
            .unwrap_or_else(|s| panic!("CRI {what} failed: {}: {}", s.code(), s.message()))
    }

    /// `Version`: the runtime's name and version.
    pub fn version(&self) -> VersionResponse {
        self.call("Version", self.runtime().version(VersionRequest::default()))
    }

    /// Whether `Status` reports the runtime ready (the network condition
    /// is ignored: pods here use the host's network).
    pub fn runtime_ready(&self) -> bool {
        self.try_call("Status", self.runtime().status(StatusRequest::default()))
            .ok()
            .and_then(|s| s.status)
            .is_some_and(|s| {
                s.conditions
                    .iter()
                    .any(|c| c.r#type == "RuntimeReady" && c.status)
            })
    }

    /// Whether the image service knows image `name`.
    pub fn image_present(&self, name: &str) -> bool {
        let request = ImageStatusRequest {
            image: Some(ImageSpec {
                image: name.to_owned(),
                ..Default::default()
            }),
            verbose: false,
        };
        self.call("ImageStatus", self.images().image_status(request))
            .image
            .is_some()
    }

    /// `ListPodSandbox`: every pod sandbox the runtime has.
    pub fn pods(&self) -> Vec<PodSandbox> {
        self.try_pods()
            .unwrap_or_else(|s| panic!("CRI ListPodSandbox failed: {}: {}", s.code(), s.message()))
    }

    /// `ListPodSandbox`, or the gRPC status.
    pub fn try_pods(&self) -> Result<Vec<PodSandbox>, tonic::Status> {
        self.try_call(
            "ListPodSandbox",
            self.runtime()
                .list_pod_sandbox(ListPodSandboxRequest::default()),
        )
        .map(|r| r.items)
    }

    /// Stops and removes pod sandbox `id` with its containers.
    pub fn stop_and_remove_pod(&self, id: &str) -> Result<(), tonic::Status> {
        let id = id.to_owned();
        self.try_call(
            "StopPodSandbox",
            self.runtime().stop_pod_sandbox(StopPodSandboxRequest {
                pod_sandbox_id: id.clone(),
            }),
        )?;
        self.try_call(
            "RemovePodSandbox",
            self.runtime()
                .remove_pod_sandbox(RemovePodSandboxRequest { pod_sandbox_id: id }),
        )?;
        Ok(())
    }

    /// `RunPodSandbox` for `spec`: a host-network pod whose cgroup parent is
    /// the kubelet's cgroupfs path for its UID and QoS class.
    pub fn run_pod(&self, spec: PodSpec) -> Pod<'_> {
        let log_dir = tempfile::Builder::new()
            .prefix("syscensus-pod-logs-")
            .tempdir()
            .unwrap_or_else(|e| panic!("failed to create a pod log directory: {e}"));
        // containerd 1.6 turns a `.slice` parent into runc's systemd form
        // (`slice:prefix:id`), which the cgroupfs driver cannot use: pods go
        // under the cgroupfs path. Systemd-shaped paths are for runc/crun.
        let cgroup_parent = cgroup::pod_cgroup(CgroupStyle::Cgroupfs, spec.qos, &spec.uid);
        let mut labels: HashMap<String, String> = spec.labels.clone().into_iter().collect();
        labels.extend([
            ("io.kubernetes.pod.name".to_owned(), spec.name.clone()),
            (
                "io.kubernetes.pod.namespace".to_owned(),
                spec.namespace.clone(),
            ),
            ("io.kubernetes.pod.uid".to_owned(), spec.uid.clone()),
        ]);
        let config = PodSandboxConfig {
            metadata: Some(PodSandboxMetadata {
                name: spec.name.clone(),
                uid: spec.uid.clone(),
                namespace: spec.namespace.clone(),
                attempt: 0,
            }),
            // A host-network pod has the host's UTS namespace: the kubelet
            // sets no hostname for it.
            log_directory: log_dir.path().display().to_string(),
            labels,
            annotations: HashMap::from([
                ("kubernetes.io/config.source".to_owned(), "api".to_owned()),
                (
                    "kubernetes.io/config.seen".to_owned(),
                    "2024-01-01T00:00:00Z".to_owned(),
                ),
            ]),
            linux: Some(LinuxPodSandboxConfig {
                cgroup_parent: cgroup_parent.clone(),
                security_context: Some(LinuxSandboxSecurityContext {
                    namespace_options: Some(host_network_namespaces()),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        let lease = CgroupLease::acquire(&cgroup_parent);
        let response = self.call(
            "RunPodSandbox",
            self.runtime().run_pod_sandbox(RunPodSandboxRequest {
                config: Some(config.clone()),
                runtime_handler: String::new(),
            }),
        );
        Pod {
            cri: self,
            id: response.pod_sandbox_id,
            spec,
            config,
            cgroup_parent,
            log_dir,
            lease: Some(lease),
        }
    }
}

/// The kubelet's namespace options for a `hostNetwork` pod.
pub(super) fn host_network_namespaces() -> NamespaceOption {
    NamespaceOption {
        network: NamespaceMode::Node as i32,
        pid: NamespaceMode::Container as i32,
        ipc: NamespaceMode::Pod as i32,
        ..Default::default()
    }
}
