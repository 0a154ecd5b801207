//! The agent that only installs (`syscensus agent --install-only`): for
//! production nodes that receive reviewed profiles from git. It loads no
//! kernel program, reads no cgroup and no runtime socket: it watches the
//! LocalhostProfiles and its node's Pods, installs the profiles into the
//! kubelet's seccomp directory and reports them in its NodeProfileStatus.
use std::{net::SocketAddr, path::PathBuf, sync::Arc};

use tokio::signal::unix::{SignalKind, signal};
use tracing::info;

use super::{
    DaemonError, http,
    kube::{INSTALL_INTERVAL, installer::Installer, node_pods},
    metrics,
};
use crate::cluster::Connection;

/// What the installing agent needs.
#[derive(Clone, Debug)]
pub struct InstallOnlyOptions {
    /// This node's name.
    pub node: String,
    /// The kubelet's root directory (`<root>/seccomp/syscensus/...`).
    pub kubelet_root: PathBuf,
    /// Where to serve /metrics, /healthz and /readyz.
    pub listen: Option<SocketAddr>,
    /// Where the cluster is.
    pub connection: Connection,
}

/// Installs profiles until SIGTERM or SIGINT.
pub fn run_install_only(options: InstallOnlyOptions) -> Result<(), DaemonError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|source| DaemonError::System {
            what: "cannot start the async runtime".into(),
            source,
        })?;
    runtime.block_on(async move {
        let client = options
            .connection
            .client()
            .await
            .map_err(|source| DaemonError::Kube { source })?;
        let pods = node_pods(&client, &options.node);
        let mut installer =
            Installer::start(client, options.node.clone(), &options.kubelet_root, pods)?;
        let metrics: metrics::Shared = Arc::default();
        if let Some(addr) = options.listen {
            let exposition = metrics::Exposition::new(metrics.clone(), metrics::Build::current());
            http::serve(addr, metrics.clone(), exposition)
                .await
                .map_err(|source| DaemonError::System {
                    what: format!("cannot listen on {addr}"),
                    source,
                })?;
            info!(%addr, "serving /metrics, /healthz, /readyz");
        }
        let signal_error = |source| DaemonError::System {
            what: "cannot handle signals".into(),
            source,
        };
        let mut term = signal(SignalKind::terminate()).map_err(signal_error)?;
        let mut int = signal(SignalKind::interrupt()).map_err(signal_error)?;
        let mut tick = tokio::time::interval(INSTALL_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        info!(
            node = %options.node,
            dir = %installer.dir().display(),
            "installing profiles; recording nothing"
        );
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    // No Events: the installing agent has no recorder to
                    // send them through; its NodeProfileStatus says it all.
                    let _installed = installer.sync().await;
                    if let Ok(mut m) = metrics.lock() {
                        m.ready = installer.ready();
                        m.api_errors = installer.errors;
                        m.last_tick = Some(std::time::Instant::now());
                    }
                }
                _ = term.recv() => break,
                _ = int.recv() => break,
            }
        }
        info!("installer stopped");
        Ok(())
    })
}
