//! A small CRI client: what the container runtime knows about a container
//! (its name and the kubelet's labels naming its Pod), over the runtime's
//! unix socket. The answers' types are in [`super::identity`].
use std::{collections::BTreeMap, path::PathBuf, time::Duration};

use super::identity::{ContainerMeta, RuntimeAnswer, label};
use hyper_util::rt::TokioIo;
use k8s_cri::v1::{
    ContainerStatusRequest, PodSandboxStatusRequest, runtime_service_client::RuntimeServiceClient,
};
use tonic::{
    Code,
    transport::{Channel, Endpoint, Uri},
};

/// A CRI call failed.
#[derive(Debug, thiserror::Error)]
pub enum CriError {
    #[error("cannot connect to the CRI socket {}: {source}: check --cri-socket", socket.display())]
    Connect {
        socket: PathBuf,
        #[source]
        source: tonic::transport::Error,
    },
    #[error("CRI call {call} failed: {source}")]
    Call {
        call: &'static str,
        #[source]
        source: Box<tonic::Status>,
    },
}

/// A connected CRI client.
#[derive(Clone, Debug)]
pub struct Cri {
    client: RuntimeServiceClient<Channel>,
}

/// How long a CRI call may take.
const TIMEOUT: Duration = Duration::from_secs(5);

impl Cri {
    /// Connects to the runtime's socket (e.g. /run/containerd/containerd.sock).
    /// The connection is made lazily, so this succeeds while the runtime is
    /// still starting.
    pub fn connect(socket: PathBuf) -> Result<Cri, CriError> {
        let path = socket.clone();
        let endpoint = Endpoint::try_from("http://[::]:50051")
            .map_err(|source| CriError::Connect {
                socket: socket.clone(),
                source,
            })?
            .timeout(TIMEOUT)
            .connect_timeout(TIMEOUT);
        let channel = endpoint.connect_with_connector_lazy(tower::service_fn(move |_: Uri| {
            let path = path.clone();
            async move {
                Ok::<_, std::io::Error>(TokioIo::new(tokio::net::UnixStream::connect(path).await?))
            }
        }));
        Ok(Cri {
            client: RuntimeServiceClient::new(channel),
        })
    }

    /// What the runtime knows about `id`.
    pub async fn lookup(&mut self, id: &str) -> Result<RuntimeAnswer, CriError> {
        let status = self
            .client
            .container_status(ContainerStatusRequest {
                container_id: id.to_owned(),
                verbose: false,
            })
            .await;
        match status {
            Ok(response) => {
                let Some(status) = response.into_inner().status else {
                    return Ok(RuntimeAnswer::Unknown);
                };
                let labels: BTreeMap<String, String> = status.labels.into_iter().collect();
                let name = status
                    .metadata
                    .map(|m| m.name)
                    .or_else(|| labels.get(label::CONTAINER_NAME).cloned())
                    .unwrap_or_default();
                Ok(RuntimeAnswer::Container(ContainerMeta {
                    name,
                    pod_name: labels.get(label::POD_NAME).cloned(),
                    pod_namespace: labels.get(label::POD_NAMESPACE).cloned(),
                    pod_uid: labels.get(label::POD_UID).cloned(),
                    image: status.image.map(|i| i.image).unwrap_or_default(),
                    labels,
                }))
            }
            Err(status) if status.code() == Code::NotFound => self.sandbox(id).await,
            Err(source) => Err(CriError::Call {
                call: "ContainerStatus",
                source: Box::new(source),
            }),
        }
    }

    /// The `info` of the runtime's verbose status of container `id`
    /// (containerd: JSON with the `runtimeSpec` it runs under); `None` when
    /// the runtime does not know the id or gives no such info.
    pub async fn verbose_info(&mut self, id: &str) -> Result<Option<String>, CriError> {
        let status = self
            .client
            .container_status(ContainerStatusRequest {
                container_id: id.to_owned(),
                verbose: true,
            })
            .await;
        match status {
            Ok(response) => Ok(response.into_inner().info.remove("info")),
            Err(status) if status.code() == Code::NotFound => Ok(None),
            Err(source) => Err(CriError::Call {
                call: "ContainerStatus",
                source: Box::new(source),
            }),
        }
    }

    async fn sandbox(&mut self, id: &str) -> Result<RuntimeAnswer, CriError> {
        let status = self
            .client
            .pod_sandbox_status(PodSandboxStatusRequest {
                pod_sandbox_id: id.to_owned(),
                verbose: false,
            })
            .await;
        match status {
            Ok(_) => Ok(RuntimeAnswer::Sandbox),
            Err(status) if status.code() == Code::NotFound => Ok(RuntimeAnswer::Unknown),
            Err(source) => Err(CriError::Call {
                call: "PodSandboxStatus",
                source: Box::new(source),
            }),
        }
    }
}
