//! `syscensus agent`: the node daemon's options, checked and handed to
//! [`crate::daemon`].
use std::{path::PathBuf, process::ExitCode, time::Duration};

use clap::Args;
use tracing::{info, warn};

use super::{ClusterArgs, NotRoot};
use crate::{
    basesets::{self, UnknownBaseSet},
    container_recording::SessionPolicy,
    daemon::{self, BaseSetChoice, Config, DaemonError, InstallOnlyOptions, KubeConfig, Options},
};

/// `syscensus agent` failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    NotRoot(#[from] NotRoot),
    #[error(transparent)]
    BaseSet(#[from] UnknownBaseSet),
    /// The options do not go together.
    #[error("{message}")]
    Usage { message: String },
    #[error(transparent)]
    Daemon(#[from] DaemonError),
}

/// Where agents pin when told nothing else, and where `syscensus
/// uninstall` looks by default.
pub const DEFAULT_PIN_DIR: &str = "/sys/fs/bpf/syscensus";

/// Options of `syscensus agent`; each also read from the environment
/// variable named in its help.
#[derive(Debug, Args)]
pub struct AgentArgs {
    /// Record every container on this node, without the Kubernetes API.
    /// Otherwise the agent records the containers that ProfileRecordings
    /// select and writes ContainerProfiles (in a Pod: its service account;
    /// elsewhere: KUBECONFIG).
    #[arg(long, env = "SYSCENSUS_NO_KUBE")]
    pub no_kube: bool,
    /// Where results go: containers/<id>.json (the recording with its Pod
    /// and labels) and profiles/<id>.json (the OCI profile alone).
    #[arg(
        long,
        env = "SYSCENSUS_STATE_DIR",
        default_value = "/var/lib/syscensus"
    )]
    pub state_dir: PathBuf,
    /// The container runtime's CRI socket, to name each container's Pod and
    /// container from the kubelet's labels, and to leave Pod sandboxes out
    /// (e.g. /run/containerd/containerd.sock).
    #[arg(long, env = "SYSCENSUS_CRI_SOCKET")]
    pub cri_socket: Option<PathBuf>,
    /// The kubelet's cgroup roots, from the cgroup v2 root: every cgroup made
    /// below one is recorded from its first exec.
    #[arg(
        long = "cgroup-root",
        env = "SYSCENSUS_CGROUP_ROOTS",
        value_delimiter = ',',
        default_values_t = [String::from("/kubepods"), String::from("/kubepods.slice")]
    )]
    pub cgroup_roots: Vec<String>,
    /// Where the host's cgroup v2 hierarchy is mounted (found in
    /// /proc/self/mountinfo when absent; in a container, mount the host's
    /// and name it here). A directory that is not a cgroup v2 mount itself,
    /// such as a hybrid host's /sys/fs/cgroup, is searched for the one
    /// mounted below it (`unified/`).
    #[arg(long, env = "SYSCENSUS_CGROUP_MOUNT")]
    pub cgroup_mount: Option<PathBuf>,
    /// Runtime base set for the profiles: `auto` (from --runtime, and
    /// whether the container runs with no_new_privs), or a set's name
    /// (`runc`, `runc-nnp`, `crun`, `none`).
    #[arg(long, env = "SYSCENSUS_BASE_SET", default_value = "auto")]
    pub base_set: String,
    /// The OCI runtime that starts containers on this node, for `--base-set
    /// auto`: `runc` or `crun`.
    #[arg(long, env = "SYSCENSUS_RUNTIME", default_value = "runc")]
    pub runtime: String,
    /// Also record the containers already running when the agent starts;
    /// their recordings miss what they did before and say so.
    #[arg(long, env = "SYSCENSUS_INCLUDE_RUNNING")]
    pub include_running: bool,
    /// Leave exec sessions (`kubectl exec`, `runc exec`, exec probes) out of
    /// the profiles; they are still listed in the recordings. Without
    /// Kubernetes they are in the profiles by default. With it this changes
    /// nothing: the container's exec probes and lifecycle hooks are in, the
    /// other sessions only where a ProfileRecording sets
    /// includeExecSessions. OCI hooks are always in.
    #[arg(long, env = "SYSCENSUS_EXCLUDE_EXEC_SESSIONS")]
    pub exclude_exec_sessions: bool,
    /// How often, in seconds, running containers are read to tell when a
    /// syscall last appeared.
    #[arg(long, env = "SYSCENSUS_POLL_INTERVAL", default_value_t = 10)]
    pub poll_interval: u64,
    /// Most cgroups recorded at once (the kernel map's capacity; about 650
    /// bytes of kernel memory each).
    #[arg(long, env = "SYSCENSUS_MAX_CGROUPS", default_value_t = 4096)]
    pub max_cgroups: u32,
    /// This node's name: the agent records the containers of the Pods
    /// scheduled here (from the downward API's spec.nodeName in a DaemonSet).
    #[arg(long, env = "NODE_NAME")]
    pub node_name: Option<String>,
    /// How often, in seconds, changed results are written to the cluster.
    #[arg(long, env = "SYSCENSUS_FLUSH_INTERVAL", default_value_t = 5)]
    pub flush_interval: u64,
    /// The kubelet's root directory: approved ContainerProfiles are
    /// installed into its seccomp directory (<root>/seccomp/syscensus/...),
    /// where Localhost seccomp profiles are looked up.
    #[arg(
        long,
        env = "SYSCENSUS_KUBELET_ROOT",
        default_value = "/var/lib/kubelet"
    )]
    pub kubelet_root: PathBuf,
    /// The directory on a BPF file system to pin the kernel program's maps
    /// and links in: after a crash the programs keep recording, and the
    /// restarted agent carries on with what they recorded. A graceful stop
    /// (SIGTERM) leaves them attached too (see --detach-on-stop), and
    /// `syscensus uninstall` removes them. When absent, the agent pins in
    /// /sys/fs/bpf/syscensus if a BPF file system is mounted at
    /// /sys/fs/bpf, and otherwise warns and runs unpinned.
    #[arg(long, env = "SYSCENSUS_PIN_DIR")]
    pub pin_dir: Option<PathBuf>,
    /// Pin nothing: everything the kernel program recorded goes with the
    /// agent's process, on a crash as on a stop, and containers started
    /// while no agent runs are not recorded.
    #[arg(long, env = "SYSCENSUS_NO_PIN", conflicts_with = "pin_dir")]
    pub no_pin: bool,
    /// On SIGTERM, detach the programs and unpin them (the maps stay).
    /// Without it, a stopping agent with --pin-dir leaves its programs
    /// attached and pinned, so that the next agent (a DaemonSet's rolling
    /// update) loses nothing of what happens in between; `syscensus
    /// uninstall` removes them.
    #[arg(long, env = "SYSCENSUS_DETACH_ON_STOP")]
    pub detach_on_stop: bool,
    /// Do not install LocalhostProfiles on this node.
    #[arg(long, env = "SYSCENSUS_NO_INSTALL", conflicts_with = "install_only")]
    pub no_install: bool,
    /// Only install LocalhostProfiles on this node, and record nothing: no
    /// kernel program is loaded, no cgroup or runtime socket read, so no
    /// capability is needed beyond writing the kubelet's seccomp directory.
    /// For production nodes that receive reviewed profiles from git.
    #[arg(long, env = "SYSCENSUS_INSTALL_ONLY", conflicts_with = "no_kube")]
    pub install_only: bool,
    /// Where to serve /metrics, /healthz and /readyz (e.g. 0.0.0.0:9808);
    /// not served when absent.
    #[arg(long, env = "SYSCENSUS_LISTEN")]
    pub listen: Option<std::net::SocketAddr>,
    #[command(flatten)]
    pub cluster: ClusterArgs,
}

/// Runs the agent until SIGTERM or SIGINT.
pub fn agent(args: AgentArgs) -> Result<ExitCode, Error> {
    if args.install_only {
        let Some(node) = args.node_name else {
            return Err(Error::Usage {
                message: "the node's name is needed to install its profiles: set NODE_NAME (the downward API's spec.nodeName) or --node-name".into(),
            });
        };
        daemon::run_install_only(InstallOnlyOptions {
            node,
            kubelet_root: args.kubelet_root,
            listen: args.listen,
            connection: args.cluster.connection(),
        })?;
        return Ok(ExitCode::SUCCESS);
    }
    super::require_root("syscensus agent")?;
    let base_set = match args.base_set.as_str() {
        "auto" => {
            basesets::find(&args.runtime)?;
            BaseSetChoice::Auto {
                runtime: args.runtime.clone(),
            }
        }
        name => BaseSetChoice::Fixed(basesets::find(name)?),
    };
    let kube = match (&args.node_name, args.no_kube) {
        (_, true) => None,
        (Some(node), false) => Some(KubeConfig {
            node: node.clone(),
            flush_interval: Duration::from_secs(args.flush_interval),
        }),
        (None, false) => {
            return Err(Error::Usage {
                message: "the node's name is needed to watch its Pods: set NODE_NAME (the downward API's spec.nodeName) or --node-name, or run with --no-kube".into(),
            });
        }
    };
    // Without Kubernetes nothing tells a probe from a person: exec sessions
    // are in the profile unless asked otherwise. With it, they are left out
    // (and listed).
    let sessions = if args.exclude_exec_sessions || kube.is_some() {
        SessionPolicy::ExcludeExec
    } else {
        SessionPolicy::IncludeAll
    };
    let options = Options {
        config: Config {
            sessions,
            roots: args.cgroup_roots,
            base_set,
            include_running: args.include_running,
            poll_interval: Duration::from_secs(args.poll_interval),
            node_name: args.node_name,
            runtime: args.cri_socket.is_some(),
            kube,
        },
        state_dir: args.state_dir,
        cri_socket: args.cri_socket,
        cgroup_mount: args.cgroup_mount,
        max_cgroups: args.max_cgroups,
        pin_dir: pin_dir(args.pin_dir, args.no_pin),
        detach_on_stop: args.detach_on_stop,
        kubelet_root: (!args.no_install).then_some(args.kubelet_root),
        listen: args.listen,
        connection: args.cluster.connection(),
    };
    daemon::run(options)?;
    Ok(ExitCode::SUCCESS)
}

/// The pin directory: the one given, none with `--no-pin`, else the default
/// one when a BPF file system is mounted at its parent (with a warning when
/// none is).
fn pin_dir(given: Option<PathBuf>, no_pin: bool) -> Option<PathBuf> {
    if no_pin {
        info!("pinning nothing (--no-pin): a crash or stop loses what was not yet written");
        return None;
    }
    if given.is_some() {
        return given;
    }
    let default = PathBuf::from(DEFAULT_PIN_DIR);
    let bpffs = default.parent().unwrap_or(&default);
    if crate::preflight::is_bpffs(bpffs) {
        return Some(default);
    }
    warn!(
        path = %bpffs.display(),
        "no BPF file system mounted: running unpinned, so a crash or restart loses what the programs recorded and what containers do until the next agent runs (mount one with `mount -t bpf bpf {}`, or give --pin-dir on one)",
        bpffs.display()
    );
    None
}
