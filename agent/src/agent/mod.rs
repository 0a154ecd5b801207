//! `syscensus agent`: the node agent. It records every container that a
//! runtime starts on this node (see [`node`]) and writes each one's result to
//! the state directory.
//!
//! One task owns the loaded kernel program for the whole run; the event loop
//! wakes on cgroups the kernel marked, on a timer, and on signals:
//! SIGUSR1 writes a snapshot of every running container (`syscensus
//! snapshot` sends it), SIGTERM and SIGINT write the state of every running
//! container and stop.
use std::{path::Path, process::ExitCode, time::Duration};

use tokio::{
    io::{Interest, unix::AsyncFd},
    signal::unix::{SignalKind, signal},
};
use tracing::{info, warn};

use crate::{
    Error,
    bpf::{Tracer, TracerOptions},
    cgroup::Hierarchy,
    cli::{AgentArgs, SnapshotArgs},
    cri::Cri,
    error::Result,
};

pub mod http;
pub mod kube;
pub mod node;
pub mod state;

use node::{BaseSetChoice, NodeOptions, NodeRecorder};
use state::StateDir;

/// How often the agent looks at the containers it records.
const TICK: Duration = Duration::from_millis(250);

/// Runs the agent until SIGTERM or SIGINT.
pub fn agent(args: AgentArgs) -> Result<ExitCode> {
    crate::record::require_root("syscensus agent")?;
    let base_set = match args.base_set.as_str() {
        "auto" => BaseSetChoice::Auto {
            runtime: args.runtime.clone(),
        },
        name => BaseSetChoice::Fixed(crate::basesets::find(name)?),
    };
    if let BaseSetChoice::Auto { runtime } = &base_set {
        crate::basesets::find(runtime)?;
    }
    let node_name = match (&args.node_name, args.no_kube) {
        (Some(name), _) => Some(name.clone()),
        (None, true) => None,
        (None, false) => {
            return Err(Error::Usage {
                message: "the node's name is needed to watch its Pods: set NODE_NAME (the downward API's spec.nodeName) or --node-name, or run with --no-kube".into(),
            });
        }
    };
    let hierarchy = crate::preflight::check(args.cgroup_mount.as_deref(), args.pin_dir.as_deref())?;
    let state = StateDir::open(&args.state_dir).map_err(|e| Error::State(Box::new(e)))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|source| Error::System {
            what: "cannot start the async runtime".into(),
            source,
        })?;
    runtime.block_on(async move {
        let tracer = Tracer::load(&TracerOptions {
            rows_capacity: args.max_cgroups,
            attach_sys_enter: false,
            cgroup_id_helper: false,
            pin_dir: args.pin_dir.clone(),
        })?;
        let cri = match &args.cri_socket {
            Some(socket) => Some(Cri::connect(socket.clone()).map_err(|e| Error::Cri(Box::new(e)))?),
            None => None,
        };
        let kube = if args.no_kube {
            None
        } else {
            let client = ::kube::Client::try_default().await.map_err(|e| Error::Usage {
                message: format!(
                    "cannot reach the Kubernetes API: {e}: run in a Pod with a service account, set KUBECONFIG, or use --no-kube"
                ),
            })?;
            let options = kube::KubeOptions {
                node: node_name.clone().unwrap_or_default(),
                flush_interval: Duration::from_secs(args.flush_interval),
                poll_interval: Duration::from_secs(args.poll_interval),
                kubelet_root: (!args.no_install).then(|| args.kubelet_root.clone()),
                state: Some(state.clone()),
            };
            Some(kube::KubeSide::start(client, options).map_err(|e| Error::Install(Box::new(e)))?)
        };
        let options = NodeOptions {
            roots: args.cgroup_roots.clone(),
            base_set,
            include_running: args.include_running,
            poll_interval: Duration::from_secs(args.poll_interval),
            node_name,
            require_decision: kube.is_some(),
            // Without Kubernetes every container is recorded, from now on;
            // with it, only while a recording is active.
            active: kube.is_none(),
        };
        let metrics: http::Shared = std::sync::Arc::default();
        if let Some(addr) = args.listen {
            http::serve(addr, metrics.clone()).await.map_err(|source| Error::System {
                what: format!("cannot listen on {addr}"),
                source,
            })?;
            info!(%addr, "serving /metrics, /healthz, /readyz");
        }
        run(tracer, hierarchy, state, cri, options, kube, metrics, args.max_cgroups).await
    })?;
    Ok(ExitCode::SUCCESS)
}

#[expect(clippy::too_many_arguments, reason = "the agent's parts, wired once")]
async fn run(
    mut tracer: Tracer,
    hierarchy: Hierarchy,
    state: StateDir,
    cri: Option<Cri>,
    options: NodeOptions,
    mut kube: Option<kube::KubeSide>,
    metrics: http::Shared,
    capacity: u32,
) -> Result<()> {
    let Some(events) = tracer.take_events() else {
        return Err(Error::Usage {
            message: "the kernel event buffer is already taken".into(),
        });
    };
    // SAFETY: the ring buffer owns its file descriptor for as long as the
    // AsyncFd owns the ring buffer, and always returns the same one.
    let events =
        unsafe { AsyncFd::register_with_interest(events, Interest::READABLE) }.map_err(|e| {
            Error::System {
                what: "cannot poll the kernel event buffer".into(),
                source: e.into(),
            }
        })?;
    let mut recorder =
        NodeRecorder::start(tracer, hierarchy, state.clone(), cri, options).map_err(node_error)?;
    let signal_error = |source| Error::System {
        what: "cannot handle signals".into(),
        source,
    };
    let mut usr1 = signal(SignalKind::user_defined1()).map_err(signal_error)?;
    let mut term = signal(SignalKind::terminate()).map_err(signal_error)?;
    let mut int = signal(SignalKind::interrupt()).map_err(signal_error)?;
    state.write_pid().map_err(|e| Error::State(Box::new(e)))?;
    let mut snapshots = 0u64;
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    info!(state_dir = %state.root().display(), kubernetes = kube.is_some(), "agent running");
    let mut events = events;
    let result = loop {
        tokio::select! {
            ready = events.readable_mut() => {
                let mut guard = match ready {
                    Ok(guard) => guard,
                    Err(source) => break Err(Error::System { what: "kernel event buffer".into(), source }),
                };
                let drained = guard.get_inner_mut().drain();
                guard.clear_ready();
                recorder.take_events(drained).await;
            }
            _ = tick.tick() => {
                // Events waiting first, so the tick reads their containers
                // at once. A row whose event comes later still (behind a
                // slow runtime call) is not taken for a lost one: the tick
                // waits for a second look before naming it by its id.
                recorder.take_events(events.get_mut().drain()).await;
                if let Err(error) = recorder.tick().await {
                    warn!(%error, "periodic work failed");
                }
                if let Some(kube) = kube.as_mut()
                    && let Err(error) = kube.tick(&mut recorder).await
                {
                    warn!(%error, "periodic Kubernetes work failed");
                }
                update_metrics(&metrics, &recorder, kube.as_ref(), capacity);
            }
            _ = usr1.recv() => {
                snapshots += 1;
                let done = recorder.snapshot_all().map_err(node_error)
                    .and_then(|()| state.write_snapshot_count(snapshots).map_err(|e| Error::State(Box::new(e))));
                match done {
                    Ok(()) => info!(round = snapshots, "snapshot written"),
                    Err(error) => warn!(%error, "snapshot failed"),
                }
            }
            _ = term.recv() => break Ok(()),
            _ = int.recv() => break Ok(()),
        }
    };
    // Whatever ended meanwhile, then what still runs.
    let drained = events.get_mut().drain();
    let mut flushed = recorder
        .on_events(drained)
        .map_err(node_error)
        .and_then(|()| recorder.flush().map_err(node_error));
    if let Some(kube) = kube.as_mut() {
        if let Err(error) = kube.flush_now(&mut recorder).await {
            flushed = flushed.and(Err(node_error(error)));
        }
        if kube.pending() > 0 {
            warn!(
                pending = kube.pending(),
                "results not written to the cluster before stopping"
            );
        }
    }
    recorder.release();
    if let Err(error) = state.set_watching(None) {
        warn!(%error, "cannot remove the watching file");
    }
    state.remove_pid();
    info!(written = recorder.written(), "agent stopped");
    result.and(flushed)
}

fn update_metrics(
    metrics: &http::Shared,
    recorder: &NodeRecorder,
    kube: Option<&kube::KubeSide>,
    capacity: u32,
) {
    let tracer = recorder.tracer();
    let counters = tracer.counters().unwrap_or_default();
    let rows = tracer.marked().map(|m| m.len()).unwrap_or(0);
    if let Ok(mut m) = metrics.lock() {
        m.containers_tracked = recorder.tracked() as u64;
        m.results_written = recorder.written();
        m.rows_used = rows as u64;
        m.rows_capacity = u64::from(capacity);
        m.map_bytes = tracer.map_bytes();
        m.sys_enter_attached = tracer.sys_enter_attached();
        m.out_of_range = counters.out_of_range;
        m.row_map_full = counters.row_map_full;
        m.containers_lost = recorder.lost();
        m.events_lost = counters.events_lost;
        m.outsider_syscalls = counters.outsider_syscalls;
        m.members_full = counters.members_full;
        m.last_tick = Some(std::time::Instant::now());
        match kube {
            Some(kube) => {
                m.api_errors = kube.api_errors_total();
                m.results_pending = kube.pending() as u64;
                m.recordings_active = kube.active_count() as u64;
                m.syscalls_recorded = kube.syscalls() as u64;
                m.ready = kube.ready();
            }
            None => m.ready = true,
        }
    }
}

fn node_error(error: node::NodeError) -> Error {
    match error {
        node::NodeError::Bpf(e) => Error::Kernel(e),
        node::NodeError::State(e) => Error::State(Box::new(e)),
    }
}

/// The agent's own profile, recorded by syscensus running the agent through
/// everything it does (tests/tests/own_profile.rs runs the agent under it).
pub const AGENT_PROFILE: &str = include_str!("../../profiles/syscensus-agent.json");

/// `syscensus install-agent-profile`: writes the agent's own profile where
/// the kubelet looks up Localhost profiles.
pub fn install_agent_profile(args: crate::cli::InstallAgentProfileArgs) -> Result<ExitCode> {
    let dir = args
        .kubelet_root
        .join("seccomp")
        .join(crate::export::LOCALHOST_DIR);
    let path = dir.join("syscensus-agent.json");
    std::fs::create_dir_all(&dir)
        .and_then(|()| crate::output::write_atomic(&path, AGENT_PROFILE.as_bytes()))
        .map_err(|source| Error::Output {
            path: path.clone(),
            source,
        })?;
    info!(path = %path.display(), "agent profile installed");
    Ok(ExitCode::SUCCESS)
}

/// `syscensus snapshot`: asks the agent of a state directory to write what
/// its running containers did so far, and waits until it has.
pub fn snapshot(args: SnapshotArgs) -> Result<ExitCode> {
    let pid_file = StateDir::pid_file(&args.state_dir);
    let pid: i32 = std::fs::read_to_string(&pid_file)
        .ok()
        .and_then(|t| t.trim().parse().ok())
        .ok_or_else(|| Error::Usage {
            message: format!(
                "no agent runs with state directory {}: {} is missing",
                args.state_dir.display(),
                pid_file.display()
            ),
        })?;
    let count = || read_count(&StateDir::snapshots_file(&args.state_dir));
    let before = count();
    // SAFETY: kill(2) with a signal number has no memory preconditions.
    if unsafe { libc::kill(pid, libc::SIGUSR1) } != 0 {
        return Err(Error::System {
            what: format!("cannot signal the agent (PID {pid})"),
            source: std::io::Error::last_os_error(),
        });
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(args.timeout);
    while count() == before {
        if std::time::Instant::now() > deadline {
            return Err(Error::Usage {
                message: format!(
                    "the agent (PID {pid}) did not write a snapshot within {}s",
                    args.timeout
                ),
            });
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(ExitCode::SUCCESS)
}

fn read_count(path: &Path) -> u64 {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|t| t.trim().parse().ok())
        .unwrap_or(0)
}
