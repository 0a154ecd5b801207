//! What the machine writes: a container's recording, with the base set its
//! runtime needs.
use super::{BaseSetChoice, Config, Container, Decision, Machine, Now};
use crate::{
    basesets,
    bpf::Snapshot,
    container_recording::{ContainerRecording, RecordingParts, SessionPolicy, Start, State},
    profile::BaseSet,
};

/// The base set of a container whose entrypoint did (or did not) run with
/// `no_new_privs`.
pub(super) fn base_set_for(choice: &BaseSetChoice, no_new_privs: bool) -> Option<BaseSet> {
    match choice {
        BaseSetChoice::Fixed(set) => set.clone(),
        BaseSetChoice::Auto { runtime } => {
            let name = if no_new_privs {
                format!("{runtime}-nnp")
            } else {
                runtime.clone()
            };
            basesets::find(&name)
                .ok()
                .flatten()
                .or_else(|| fallback_base_set(choice))
        }
    }
}

/// The base set of a container whose entrypoint has not been seen: without
/// no_new_privs runc needs more, so that superset is the safe one.
pub(super) fn fallback_base_set(choice: &BaseSetChoice) -> Option<BaseSet> {
    match choice {
        BaseSetChoice::Fixed(set) => set.clone(),
        BaseSetChoice::Auto { runtime } => basesets::find(runtime).ok().flatten(),
    }
}

/// What a container did so far, as a result document.
pub(super) fn recording_of(
    config: &Config,
    c: &Container,
    snapshot: &Snapshot,
    state: State,
) -> ContainerRecording {
    let base = c
        .base_set
        .clone()
        .unwrap_or_else(|| fallback_base_set(&config.base_set));
    let meta = c.identity.runtime.as_ref();
    ContainerRecording::build(RecordingParts {
        container_id: c.identity.container_id.clone(),
        container_name: meta.map(|m| m.name.clone()),
        pod: Some(c.identity.pod()),
        node: config.node_name.clone(),
        cgroup: c.identity.cgroup.clone(),
        labels: meta.map(|m| m.labels.clone()).unwrap_or_default(),
        image: meta.map(|m| m.image.clone()),
        state,
        start: c.start,
        first_seen: c.first_seen,
        last_seen: c.last_seen,
        last_new_syscall: c.last_new_syscall,
        base_set: base.as_ref(),
        snapshot,
        sessions: &sessions_of(config, c),
    })
}

/// Which sessions go into a container's recording: without Kubernetes as
/// configured; with it, its probes and lifecycle hooks once its Pod is known
/// (until then none: decided again when it is).
fn sessions_of(config: &Config, c: &Container) -> SessionPolicy {
    match &c.decision {
        Decision::Record => config.sessions.clone(),
        Decision::Chosen(chosen) => chosen.sessions(None),
        Decision::Undecided { .. } => SessionPolicy::ExcludeExec,
    }
}

impl Machine {
    /// The result of a cgroup that ended before it could be named, named
    /// `cgroup-<id>`.
    pub(super) fn unnamed_recording(
        &self,
        cgroup_id: u64,
        snapshot: &Snapshot,
        now: Now,
    ) -> ContainerRecording {
        let base = fallback_base_set(&self.config.base_set);
        ContainerRecording::build(RecordingParts {
            container_id: format!("cgroup-{cgroup_id}"),
            container_name: None,
            pod: None,
            node: self.config.node_name.clone(),
            cgroup: String::new(),
            labels: Default::default(),
            image: None,
            state: State::Exited,
            start: Start::Exec,
            first_seen: now.time,
            last_seen: now.time,
            last_new_syscall: None,
            base_set: base.as_ref(),
            snapshot,
            sessions: &self.config.sessions,
        })
    }
}
