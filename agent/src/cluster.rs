//! How syscensus reaches a Kubernetes API server: a kubeconfig file and
//! context when given (`--kubeconfig`, `--context`), else what kubectl
//! would use (KUBECONFIG, `~/.kube/config`), else the Pod's service
//! account.
use std::path::PathBuf;

use kube::config::{KubeConfigOptions, Kubeconfig};

/// Where the cluster is.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Connection {
    /// A kubeconfig file; KUBECONFIG or `~/.kube/config` when absent.
    pub kubeconfig: Option<PathBuf>,
    /// A context of the kubeconfig; its current context when absent.
    pub context: Option<String>,
}

/// The cluster cannot be reached as configured.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("cannot read the kubeconfig{}: {source}", file.as_ref().map(|f| format!(" {}", f.display())).unwrap_or_default())]
    Kubeconfig {
        file: Option<PathBuf>,
        #[source]
        source: kube::config::KubeconfigError,
    },
    #[error(
        "no Kubernetes configuration: {source}: set KUBECONFIG or --kubeconfig, or run in a Pod with a service account"
    )]
    Infer {
        #[source]
        source: kube::config::InferConfigError,
    },
    #[error("cannot make a Kubernetes client: {source}")]
    Client {
        #[source]
        source: Box<kube::Error>,
    },
}

impl Connection {
    /// A client for the cluster.
    pub async fn client(&self) -> Result<kube::Client, ConnectError> {
        let config = if self.kubeconfig.is_some() || self.context.is_some() {
            let file = self.kubeconfig.clone();
            let kubeconfig = match &file {
                Some(path) => Kubeconfig::read_from(path),
                None => Kubeconfig::read(),
            }
            .map_err(|source| ConnectError::Kubeconfig {
                file: file.clone(),
                source,
            })?;
            let options = KubeConfigOptions {
                context: self.context.clone(),
                ..KubeConfigOptions::default()
            };
            kube::Config::from_custom_kubeconfig(kubeconfig, &options)
                .await
                .map_err(|source| ConnectError::Kubeconfig { file, source })?
        } else {
            kube::Config::infer()
                .await
                .map_err(|source| ConnectError::Infer { source })?
        };
        kube::Client::try_from(config).map_err(|source| ConnectError::Client {
            source: Box::new(source),
        })
    }
}
