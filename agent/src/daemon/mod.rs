//! The node daemon (`syscensus agent`): records the containers that a
//! runtime starts on this node and writes each one's result to the state
//! directory and, in Kubernetes mode, to the cluster's ContainerProfiles.
//!
//! - [`machine`]: every decision, as a state machine without I/O: events
//!   and ticks in, actions out.
//! - [`shell`]: the I/O it asks for: the kernel program, cgroupfs, the
//!   runtime ([`cri`]), the cluster ([`kube`]), the [`state`] directory, and
//!   the loop that feeds the machine.
//! - [`identity`]: who a container is (cgroup path, runtime, Pod status).
//! - [`checkpoint`]: what survives a restart.
//! - [`contribution`] and [`selection`]: this node's results per workload
//!   container, and which recordings select a container (pure).
use std::{net::SocketAddr, path::PathBuf};

use tracing::info;

use crate::{
    bpf::{BpfError, Tracer, TracerOptions},
    cgroup::CgroupError,
};

pub mod checkpoint;
pub mod contribution;
pub mod cri;
pub mod http;
pub mod identity;
mod install_only;
pub mod kube;
pub mod machine;
pub mod metrics;
pub mod selection;
mod shell;
pub mod state;

pub use install_only::{InstallOnlyOptions, run_install_only};
pub use machine::{BaseSetChoice, Config, KubeConfig};

/// The daemon could not start or go on.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(transparent)]
    Kernel(#[from] BpfError),
    #[error(transparent)]
    Cgroup(#[from] CgroupError),
    #[error(transparent)]
    Preflight(#[from] crate::preflight::PreflightError),
    #[error(transparent)]
    State(#[from] state::StateError),
    #[error(transparent)]
    Cri(#[from] cri::CriError),
    #[error(transparent)]
    Install(#[from] kube::installer::InstallError),
    #[error("cannot reach the Kubernetes API: {source}; or use --no-kube")]
    Kube {
        #[source]
        source: crate::cluster::ConnectError,
    },
    #[error("{what}: {source}")]
    System {
        what: String,
        #[source]
        source: std::io::Error,
    },
}

/// Where the daemon runs and what it reaches.
#[derive(Clone, Debug)]
pub struct Options {
    /// Its decisions' settings.
    pub config: Config,
    /// Where results and the checkpoint go.
    pub state_dir: PathBuf,
    /// The runtime's CRI socket.
    pub cri_socket: Option<PathBuf>,
    /// Where the cgroup v2 hierarchy is mounted, or the directory it is
    /// mounted below (found when absent).
    pub cgroup_mount: Option<PathBuf>,
    /// The kernel map's capacity in rows.
    pub max_cgroups: u32,
    /// A directory on a BPF file system for the pinned maps and links.
    pub pin_dir: Option<PathBuf>,
    /// Detach the programs when stopping, even when they are pinned.
    pub detach_on_stop: bool,
    /// The kubelet's root directory, to install approved profiles in
    /// (Kubernetes mode); none: nothing is installed.
    pub kubelet_root: Option<PathBuf>,
    /// Where to serve /metrics, /healthz and /readyz.
    pub listen: Option<SocketAddr>,
    /// Where the cluster is (Kubernetes mode).
    pub connection: crate::cluster::Connection,
}

/// Runs the daemon until SIGTERM or SIGINT.
pub fn run(options: Options) -> Result<(), DaemonError> {
    let hierarchy =
        crate::preflight::check(options.cgroup_mount.as_deref(), options.pin_dir.as_deref())?;
    let state = state::StateDir::open(&options.state_dir)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|source| DaemonError::System {
            what: "cannot start the async runtime".into(),
            source,
        })?;
    runtime.block_on(async move {
        let tracer = Tracer::load(&TracerOptions {
            rows_capacity: options.max_cgroups,
            attach_sys_enter: false,
            cgroup_id_helper: false,
            pin_dir: options.pin_dir.clone(),
        })?;
        let cri = match &options.cri_socket {
            Some(socket) => Some(cri::Cri::connect(socket.clone())?),
            None => None,
        };
        let kube = match &options.config.kube {
            None => None,
            Some(config) => {
                let client = options
                    .connection
                    .client()
                    .await
                    .map_err(|source| DaemonError::Kube { source })?;
                Some(kube::Kube::start(
                    client,
                    config.node.clone(),
                    options.kubelet_root.clone(),
                )?)
            }
        };
        let shared: metrics::Shared = std::sync::Arc::default();
        if let Some(addr) = options.listen {
            let exposition = metrics::Exposition::new(shared.clone(), metrics::Build::current());
            http::serve(addr, shared.clone(), exposition)
                .await
                .map_err(|source| DaemonError::System {
                    what: format!("cannot listen on {addr}"),
                    source,
                })?;
            info!(%addr, "serving /metrics, /healthz, /readyz");
        }
        let parts = shell::Parts {
            tracer,
            hierarchy,
            state,
            cri,
            kube,
            metrics: shared,
            capacity: options.max_cgroups,
            detach_on_stop: options.detach_on_stop,
        };
        shell::Shell::start(options.config, parts)
            .await?
            .run()
            .await
    })
}
