//! The node side of the agent: which cgroups on this node are containers,
//! what each has done so far, and its result when it ends.
//!
//! The kernel marks every cgroup made below a watched kubelet root as it is
//! made (see the `cgroup_mkdir` hook), so that no container can start before
//! it is recorded, however late this code runs. This code then classifies
//! each marked cgroup by its path: containers are kept, everything else (Pod
//! and QoS cgroups) is unmarked. A container's recording starts at its
//! entrypoint's exec and ends when its cgroup is empty or gone; the result is
//! written to the state directory.
use std::{
    collections::{BTreeMap, HashMap, HashSet},
    fs,
    os::unix::fs::MetadataExt as _,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use tracing::{debug, info, warn};

use super::state::{StateDir, StateError};
use crate::{
    basesets,
    bpf::{BpfError, MarkedCgroup, Snapshot, Tracer},
    cgroup::Hierarchy,
    cri::{Cri, Lookup},
    kubepath::{self, KubeCgroup},
    profile::{BaseSet, BuildOptions, Profile},
    recording::{
        API_VERSION, ContainerRecording, KIND, Parts, PodRef, SessionPolicy, Start, State,
    },
};

/// How the agent picks each container's runtime base set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BaseSetChoice {
    /// From the runtime (`runc` or `crun`) and whether the container's first
    /// process has `no_new_privs` set.
    Auto { runtime: String },
    /// This set for every container (`None`: no base set).
    Fixed(Option<BaseSet>),
}

/// The node recorder's settings.
#[derive(Clone, Debug)]
pub struct NodeOptions {
    /// kubelet roots, from the cgroup2 root (`/kubepods`, `/kubepods.slice`).
    pub roots: Vec<String>,
    pub base_set: BaseSetChoice,
    /// Record containers already running at start (flagged as late).
    pub include_running: bool,
    /// How often running containers are read for progress.
    pub poll_interval: Duration,
    /// This node's name, for the results.
    pub node_name: Option<String>,
    /// Record a container only once told to ([`NodeRecorder::decide`]):
    /// results of containers nobody decided on are not written.
    pub require_decision: bool,
    /// Watch the roots and record from the start (else only after
    /// [`NodeRecorder::set_active`]).
    pub active: bool,
    /// Which exec sessions go into the profiles.
    pub sessions: SessionPolicy,
}

/// A container as the kube side sees it.
#[derive(Clone, Debug)]
pub struct ContainerView {
    pub cgroup_id: u64,
    pub container_id: String,
    pub pod_uid: String,
    /// What the runtime said, if asked.
    pub meta: Option<crate::cri::ContainerMeta>,
    pub keep: Option<bool>,
    pub start: Start,
}

/// A container whose recording ended.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Finished {
    pub cgroup_id: u64,
    pub pod_uid: String,
    pub keep: Option<bool>,
    pub recording: ContainerRecording,
}

/// A container being recorded.
#[derive(Debug)]
struct Tracked {
    path: String,
    container_id: String,
    pod_uid: String,
    start: Start,
    first_seen: jiff::Timestamp,
    last_seen: jiff::Timestamp,
    last_new_syscall: Option<jiff::Timestamp>,
    /// Distinct syscalls at the last read.
    known: usize,
    /// The runtime's answer, once asked.
    lookup: Option<Lookup>,
    base_set: Option<BaseSet>,
    base_set_decided: bool,
    last_poll: Option<Instant>,
    /// Whether to record it (None: not decided yet).
    keep: Option<bool>,
}

/// What survives a restart of a tracked container (`tracked.json` in the
/// state directory): the kernel's rows survive in pinned maps, and this
/// names them.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct Checkpoint {
    cgroup_id: u64,
    path: String,
    start: Start,
    first_seen: jiff::Timestamp,
    last_seen: jiff::Timestamp,
    last_new_syscall: Option<jiff::Timestamp>,
    known: usize,
}

/// How long the runtime is left alone after a failed CRI call. Containers
/// that end meanwhile are written without a name (with Kubernetes, the Pod's
/// status names them).
const CRI_QUIET: Duration = Duration::from_secs(5);

/// The file of the tracked containers' checkpoints.
const CHECKPOINT: &str = "tracked.json";

/// The agent could not record.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error(transparent)]
    Bpf(#[from] BpfError),
    #[error(transparent)]
    State(#[from] StateError),
}

/// Records the containers of this node.
#[derive(Debug)]
pub struct NodeRecorder {
    tracer: Tracer,
    hierarchy: Hierarchy,
    state: StateDir,
    cri: Option<Cri>,
    options: NodeOptions,
    tracked: BTreeMap<u64, Tracked>,
    /// Containers that ended since the kube side last looked.
    finished: Vec<Finished>,
    /// Whether the roots are watched and `sys_enter` attached.
    active: bool,
    /// The watched roots' cgroup ids, by path.
    roots: HashMap<String, u64>,
    /// Results written, for the logs and tests.
    written: u64,
    /// The checkpoint last written.
    checkpointed: String,
    /// Containers that could not be recorded (the kernel map was full).
    lost: u64,
    /// Containers whose cgroups were made since the runtime was last asked.
    fresh: Vec<u64>,
    /// After a failed CRI call, the runtime is not asked again before this:
    /// a runtime that hangs would otherwise hold the loop for the call's
    /// timeout once per container.
    cri_quiet_until: Option<Instant>,
    /// Rows the last tick found without an event. A row is taken as one
    /// whose event was lost only when two ticks in a row find it so: its
    /// event may still wait in the buffer behind a slow runtime call.
    unknown_before: HashSet<u64>,
}

fn is_populated(dir: &Path) -> Option<bool> {
    let text = fs::read_to_string(dir.join("cgroup.events")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("populated "))
        .map(|v| v.trim() == "1")
}

/// The processes in the cgroup at `dir`, lowest PID (the oldest, usually
/// the container's first process) first.
fn processes_in(dir: &Path) -> Vec<u32> {
    let mut pids: Vec<u32> = fs::read_to_string(dir.join("cgroup.procs"))
        .map(|t| t.lines().filter_map(|l| l.trim().parse().ok()).collect())
        .unwrap_or_default();
    pids.sort_unstable();
    pids
}

impl NodeRecorder {
    /// Starts recording: watches the roots and, if asked, marks the
    /// containers already running.
    pub fn start(
        tracer: Tracer,
        hierarchy: Hierarchy,
        state: StateDir,
        cri: Option<Cri>,
        options: NodeOptions,
    ) -> Result<NodeRecorder, NodeError> {
        let active = options.active;
        let mut recorder = NodeRecorder {
            tracer,
            hierarchy,
            state,
            cri,
            options,
            tracked: BTreeMap::new(),
            finished: Vec::new(),
            active: false,
            roots: HashMap::new(),
            written: 0,
            checkpointed: String::new(),
            lost: 0,
            fresh: Vec::new(),
            cri_quiet_until: None,
            unknown_before: HashSet::new(),
        };
        let restored = recorder.restore()?;
        if active || restored > 0 {
            // Containers recorded before a restart go on being recorded
            // (in Kubernetes mode until the recordings say otherwise).
            recorder.set_active(true)?;
            if active {
                recorder.scan_running()?;
            }
        } else {
            recorder.tracer.detach_sys_enter()?;
        }
        Ok(recorder)
    }

    /// Takes back the containers an earlier run tracked whose rows are
    /// still in the (pinned) maps; returns how many.
    fn restore(&mut self) -> Result<usize, NodeError> {
        let marked: HashSet<u64> = self.tracer.marked()?.into_iter().collect();
        let path = self.state.root().join(CHECKPOINT);
        let Ok(text) = fs::read_to_string(&path) else {
            return Ok(0);
        };
        let checkpoints: Vec<Checkpoint> = match serde_json::from_str(&text) {
            Ok(c) => c,
            Err(error) => {
                warn!(%error, file = %path.display(), "unreadable checkpoint ignored");
                return Ok(0);
            }
        };
        let mut restored = 0;
        for c in checkpoints
            .into_iter()
            .filter(|c| marked.contains(&c.cgroup_id))
        {
            let Some(KubeCgroup::Container {
                container_id,
                pod_uid,
                ..
            }) = kubepath::classify(&c.path)
            else {
                continue;
            };
            self.tracked.insert(
                c.cgroup_id,
                Tracked {
                    path: c.path,
                    container_id,
                    pod_uid,
                    start: c.start,
                    first_seen: c.first_seen,
                    last_seen: c.last_seen,
                    last_new_syscall: c.last_new_syscall,
                    known: c.known,
                    lookup: None,
                    base_set: None,
                    base_set_decided: false,
                    last_poll: None,
                    keep: None,
                },
            );
            restored += 1;
        }
        if restored > 0 {
            info!(
                containers = restored,
                "carrying on with the containers recorded before the restart"
            );
        }
        Ok(restored)
    }

    /// Writes the tracked containers' checkpoint when it changed.
    fn checkpoint(&mut self) -> Result<(), NodeError> {
        let checkpoints: Vec<Checkpoint> = self
            .tracked
            .iter()
            .map(|(id, t)| Checkpoint {
                cgroup_id: *id,
                path: t.path.clone(),
                start: t.start,
                first_seen: t.first_seen,
                last_seen: t.last_seen,
                last_new_syscall: t.last_new_syscall,
                known: t.known,
            })
            .collect();
        let text = serde_json::to_string(&checkpoints).unwrap_or_default();
        if text != self.checkpointed {
            self.state.write_file(CHECKPOINT, text.as_bytes())?;
            self.checkpointed = text;
        }
        Ok(())
    }

    /// Detaches the kernel program for a graceful stop (the maps stay).
    pub fn release(&mut self) {
        if let Err(error) = self.checkpoint() {
            warn!(%error, "cannot write the checkpoint");
        }
        self.tracer.release();
    }

    /// Starts or stops recording new containers: watches the roots and
    /// attaches `sys_enter`, or undoes both (an idle node then pays nothing
    /// per syscall). Containers being recorded stay recorded while active.
    pub fn set_active(&mut self, active: bool) -> Result<(), NodeError> {
        if active == self.active {
            return Ok(());
        }
        if active {
            // sys_enter first, so that a container marked from now on loses
            // nothing.
            self.tracer.attach_sys_enter()?;
            let roots: Vec<&str> = self.options.roots.iter().map(String::as_str).collect();
            self.tracer.set_root_paths(&roots)?;
            for root in &self.options.roots {
                let dir = self.hierarchy.dir(root);
                if let Ok(meta) = fs::metadata(&dir) {
                    self.tracer.watch(meta.ino())?;
                    self.roots.insert(root.clone(), meta.ino());
                    info!(root = %root, "watching");
                } else {
                    info!(root = %root, "not there yet; watched from when it is made");
                }
            }
            // Either way every container made from now on is recorded.
            self.state.set_watching(Some(&self.options.roots))?;
        } else {
            self.state.set_watching(None)?;
            self.tracer.set_root_paths(&[])?;
            for (_, id) in self.roots.drain() {
                self.tracer.unwatch(id)?;
            }
            let ids: Vec<u64> = self.tracked.keys().copied().collect();
            for id in ids {
                self.tracked.remove(&id);
                self.tracer.unmark(id)?;
            }
            self.tracer.detach_sys_enter()?;
            info!("idle: no cgroup watched, sys_enter detached");
        }
        self.active = active;
        Ok(())
    }

    /// Whether new containers are being recorded.
    pub fn is_active(&self) -> bool {
        self.active
    }

    /// The containers being recorded.
    pub fn containers(&self) -> Vec<ContainerView> {
        self.tracked
            .iter()
            .map(|(id, t)| ContainerView {
                cgroup_id: *id,
                container_id: t.container_id.clone(),
                pod_uid: t.pod_uid.clone(),
                meta: match &t.lookup {
                    Some(Lookup::Container(meta)) => Some(meta.clone()),
                    _ => None,
                },
                keep: t.keep,
                start: t.start,
            })
            .collect()
    }

    /// Records a container (`keep`), or stops recording it and forgets it.
    pub fn decide(&mut self, cgroup_id: u64, keep: bool) -> Result<(), NodeError> {
        if keep {
            if let Some(t) = self.tracked.get_mut(&cgroup_id) {
                t.keep = Some(true);
            }
        } else if self.tracked.remove(&cgroup_id).is_some() {
            self.tracer.unmark(cgroup_id)?;
        }
        Ok(())
    }

    /// Containers whose recording ended since the last call.
    pub fn take_finished(&mut self) -> Vec<Finished> {
        std::mem::take(&mut self.finished)
    }

    /// What a running container did so far, as a result document.
    pub fn running_recording(
        &self,
        cgroup_id: u64,
    ) -> Result<Option<ContainerRecording>, NodeError> {
        let Some(snapshot) = self.tracer.snapshot(cgroup_id)? else {
            return Ok(None);
        };
        if !snapshot.recording {
            return Ok(None);
        }
        Ok(self.recording_of(cgroup_id, &snapshot, State::Running))
    }

    /// Writes a result to the state directory.
    pub fn write_result(&mut self, recording: &ContainerRecording) -> Result<(), NodeError> {
        self.write(recording)
    }

    /// Starts recording a running container now (its earlier syscalls are
    /// missed). Returns whether its cgroup was found.
    pub fn mark_running(&mut self, container_id: &str) -> Result<bool, NodeError> {
        let mut found = Vec::new();
        for root in self.options.roots.clone() {
            walk(&self.hierarchy.dir(&root), &root, &mut found);
        }
        let Some((path, id)) = found
            .iter()
            .find(|(path, _)| {
                kubepath::classify(path)
                    .as_ref()
                    .and_then(KubeCgroup::container_id)
                    == Some(container_id)
            })
            .cloned()
        else {
            return Ok(false);
        };
        if self.tracked.contains_key(&id) {
            return Ok(true);
        }
        self.mark_late(id, &path, &found)?;
        self.track(id, &path, Start::Late);
        if let Some(t) = self.tracked.get_mut(&id) {
            t.keep = Some(true);
        }
        Ok(true)
    }

    /// Marks a container that already runs, with the cgroups below it
    /// (`found`: every cgroup under the roots) and the processes in them.
    fn mark_late(&mut self, id: u64, path: &str, found: &[(String, u64)]) -> Result<(), NodeError> {
        let prefix = format!("{}/", path.trim_end_matches('/'));
        let below: Vec<&(String, u64)> = found
            .iter()
            .filter(|(p, _)| p.starts_with(&prefix))
            .collect();
        let mut pids = processes_in(&self.hierarchy.dir(path));
        for (child, _) in &below {
            pids.extend(processes_in(&self.hierarchy.dir(child)));
        }
        pids.sort_unstable();
        self.tracer
            .mark_recording(id, pids.first().copied().unwrap_or(0), &pids)?;
        for (_, child) in below {
            self.tracer.alias(*child, id)?;
        }
        Ok(())
    }

    /// Containers already running when the agent starts.
    fn scan_running(&mut self) -> Result<(), NodeError> {
        let mut found = Vec::new();
        for root in self.options.roots.clone() {
            walk(&self.hierarchy.dir(&root), &root, &mut found);
        }
        let mut skipped = 0;
        for (path, id) in &found {
            let Some(KubeCgroup::Container { .. }) = kubepath::classify(path) else {
                continue;
            };
            if !self.options.include_running {
                skipped += 1;
                continue;
            }
            self.mark_late(*id, path, &found)?;
            self.track(*id, path, Start::Late);
        }
        if skipped > 0 {
            info!(
                containers = skipped,
                "containers already running are not recorded (see --include-running)"
            );
        }
        Ok(())
    }

    /// The tracer, for the metrics.
    pub fn tracer(&self) -> &Tracer {
        &self.tracer
    }

    /// Containers that could not be recorded because the kernel map was
    /// full.
    pub fn lost(&self) -> u64 {
        self.lost
    }

    /// Results written so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Containers being recorded.
    pub fn tracked(&self) -> usize {
        self.tracked.len()
    }

    fn track(&mut self, cgroup_id: u64, path: &str, start: Start) {
        let Some(KubeCgroup::Container {
            container_id,
            pod_uid,
            ..
        }) = kubepath::classify(path)
        else {
            return;
        };
        let now = jiff::Timestamp::now();
        debug!(cgroup_id, container = %container_id, "container recorded");
        self.tracked.insert(
            cgroup_id,
            Tracked {
                path: path.to_owned(),
                container_id,
                pod_uid,
                start,
                first_seen: now,
                last_seen: now,
                last_new_syscall: None,
                known: 0,
                lookup: None,
                base_set: None,
                base_set_decided: false,
                last_poll: None,
                keep: None,
            },
        );
    }

    /// Handles cgroups the kernel marked or started watching.
    pub fn on_events(&mut self, events: Vec<MarkedCgroup>) -> Result<(), NodeError> {
        for event in events {
            if event.lost {
                if matches!(
                    kubepath::classify(&event.path),
                    Some(KubeCgroup::Container { .. })
                ) {
                    self.lost += 1;
                    warn!(
                        cgroup = %event.path,
                        "a container cannot be recorded: the kernel map is full (raise --max-cgroups)"
                    );
                }
                continue;
            }
            if event.root {
                info!(root = %event.path, "root appeared; watching");
                // A root made again: forget the one it replaces.
                if let Some(old) = self.roots.insert(event.path.clone(), event.cgroup_id)
                    && old != event.cgroup_id
                {
                    self.tracer.unwatch(old)?;
                }
                continue;
            }
            match kubepath::classify(&event.path) {
                Some(KubeCgroup::Container { .. }) => {
                    self.track(event.cgroup_id, &event.path, Start::Exec);
                    self.fresh.push(event.cgroup_id);
                }
                _ => {
                    // A Pod or QoS cgroup, where nothing runs; or a cgroup
                    // made below a container while it was set up, which is
                    // part of it.
                    let tracked = &self.tracked;
                    self.tracer
                        .unmark_or_join(event.cgroup_id, |id| tracked.contains_key(&id))?;
                }
            }
        }
        Ok(())
    }

    /// Handles cgroups the kernel marked, then asks the runtime about the
    /// new containers among them at once rather than at the next tick: a
    /// container that ends within a tick may be removed with its Pod right
    /// away, and the runtime would not know it any more.
    pub async fn take_events(&mut self, events: Vec<MarkedCgroup>) {
        if let Err(error) = self.on_events(events) {
            warn!(%error, "cannot handle new cgroups");
        }
        for id in std::mem::take(&mut self.fresh) {
            self.resolve(id).await;
        }
    }

    /// Periodic work: asks the runtime about new containers, reads running
    /// ones, finishes the ones that ended, and picks up rows whose event was
    /// lost.
    pub async fn tick(&mut self) -> Result<(), NodeError> {
        self.tracer.reap()?;
        self.adopt_unknown_rows()?;
        let ids: Vec<u64> = self.tracked.keys().copied().collect();
        let mut first_error = None;
        for id in ids {
            self.resolve(id).await;
            // One container's failure (say, a full state directory) must not
            // hold up the others; it stays tracked and is tried again.
            if let Err(error) = self.poll(id, false) {
                first_error.get_or_insert(error);
            }
        }
        self.checkpoint()?;
        first_error.map_or(Ok(()), Err)
    }

    /// Rows the kernel made whose event never arrived (the ring buffer was
    /// full, or an agent killed between reading events and its checkpoint):
    /// resolved by walking the roots. A row counts only when the tick before
    /// found it without an event too.
    fn adopt_unknown_rows(&mut self) -> Result<(), NodeError> {
        let marked = self.tracer.marked()?;
        let (unknown, waiting): (HashSet<u64>, HashSet<u64>) = marked
            .into_iter()
            .filter(|id| !self.tracked.contains_key(id))
            .partition(|id| self.unknown_before.contains(id));
        self.unknown_before = waiting;
        if unknown.is_empty() {
            return Ok(());
        }
        let mut found = Vec::new();
        for root in self.options.roots.clone() {
            walk(&self.hierarchy.dir(&root), &root, &mut found);
        }
        let by_id: HashMap<u64, String> = found.into_iter().map(|(path, id)| (id, path)).collect();
        for id in unknown {
            match by_id.get(&id).map(|p| (p, kubepath::classify(p))) {
                Some((path, Some(KubeCgroup::Container { .. }))) => {
                    let path = path.clone();
                    self.track(id, &path, Start::Exec);
                }
                Some(_) => {
                    let tracked = &self.tracked;
                    self.tracer
                        .unmark_or_join(id, |owner| tracked.contains_key(&owner))?;
                }
                None => {
                    // Gone before it could be named: keep what it did.
                    if let Some(snapshot) = self.tracer.snapshot(id)?
                        && !snapshot.is_empty()
                    {
                        warn!(
                            cgroup_id = id,
                            "a cgroup ended before it could be named; its result is cgroup-<id>"
                        );
                        let recording = self.unnamed_recording(id, &snapshot);
                        self.state.write(&format!("cgroup-{id}"), &recording)?;
                        self.written += 1;
                    }
                    self.tracer.unmark(id)?;
                }
            }
        }
        Ok(())
    }

    fn unnamed_recording(&self, id: u64, snapshot: &Snapshot) -> ContainerRecording {
        let parts = Parts::of(snapshot, &self.options.sessions);
        let census = &parts.census;
        let now = jiff::Timestamp::now().to_string();
        let base = self.fallback_base_set().map(|b| {
            if parts.hooks {
                basesets::with_hooks(&b)
            } else {
                b
            }
        });
        ContainerRecording {
            api_version: API_VERSION.into(),
            kind: KIND.into(),
            container_id: format!("cgroup-{id}"),
            container_name: None,
            pod: None,
            node: self.options.node_name.clone(),
            cgroup: String::new(),
            labels: BTreeMap::new(),
            image: None,
            state: State::Exited,
            start: Start::Exec,
            first_seen: now.clone(),
            last_seen: now,
            last_new_syscall: None,
            runtime_base_set: base.as_ref().map(|b| b.name.clone()),
            syscalls: ContainerRecording::syscalls_of(census),
            exec_sessions_excluded: parts.exec_sessions_excluded,
            sessions: parts.sessions.clone(),
            session_only_syscalls: ContainerRecording::syscalls_of(&parts.session_only),
            warnings: warnings_of(snapshot, Start::Exec, &parts),
            profile: Profile::from_census(census, base.as_ref(), &BuildOptions::default()),
        }
    }

    /// Asks the runtime who a container is, until it knows: first when its
    /// cgroup is made (a Pod's sandbox is not known yet then; a container
    /// is), then at each tick, the last time just before the container's
    /// end is read.
    async fn resolve(&mut self, id: u64) {
        let Some(cri) = self.cri.as_mut() else {
            return;
        };
        let Some(tracked) = self.tracked.get_mut(&id) else {
            return;
        };
        if tracked.lookup.is_some() || self.cri_quiet_until.is_some_and(|t| Instant::now() < t) {
            return;
        }
        match cri.lookup(&tracked.container_id).await {
            Ok(Lookup::Sandbox) => {
                debug!(container = %tracked.container_id, "a Pod sandbox; not recorded");
                self.tracked.remove(&id);
                if let Err(error) = self.tracer.unmark(id) {
                    warn!(%error, "cannot unmark a sandbox");
                }
            }
            Ok(Lookup::Unknown) => {
                debug!(container = %tracked.container_id, "not known to the runtime yet")
            }
            Ok(lookup) => tracked.lookup = Some(lookup),
            Err(error) => {
                self.cri_quiet_until = Some(Instant::now() + CRI_QUIET);
                warn!(
                    %error,
                    container = %tracked.container_id,
                    "cannot ask the runtime about a container; asking again in {}s",
                    CRI_QUIET.as_secs()
                )
            }
        }
    }

    fn fallback_base_set(&self) -> Option<BaseSet> {
        match &self.options.base_set {
            BaseSetChoice::Fixed(set) => set.clone(),
            // Without no_new_privs runc needs more: the superset is safe.
            BaseSetChoice::Auto { runtime } => basesets::find(runtime).ok().flatten(),
        }
    }

    /// Reads a container: progress, base set, and whether it ended (then its
    /// result is written and its rows dropped). `force` writes a snapshot of
    /// a running container too.
    fn poll(&mut self, id: u64, force: bool) -> Result<(), NodeError> {
        let Some(tracked) = self.tracked.get(&id) else {
            return Ok(());
        };
        let dir = self.hierarchy.dir(&tracked.path);
        let populated = is_populated(&dir);
        let Some(snapshot) = self.tracer.snapshot(id)? else {
            self.tracked.remove(&id);
            return Ok(());
        };
        // Empty after it ran, or gone.
        let ended = (snapshot.recording && populated != Some(true)) || populated.is_none();
        let due = tracked
            .last_poll
            .is_none_or(|t| t.elapsed() >= self.options.poll_interval);
        if !(ended || force || due) {
            return Ok(());
        }
        let fallback = self.fallback_base_set();
        let Some(tracked) = self.tracked.get_mut(&id) else {
            return Ok(());
        };
        let now = jiff::Timestamp::now();
        tracked.last_poll = Some(Instant::now());
        tracked.last_seen = now;
        if snapshot.len() > tracked.known {
            tracked.known = snapshot.len();
            tracked.last_new_syscall = Some(now);
        }
        if !tracked.base_set_decided && snapshot.recording {
            tracked.base_set = match &self.options.base_set {
                BaseSetChoice::Fixed(set) => set.clone(),
                BaseSetChoice::Auto { runtime } => {
                    // The kernel saw whether the entrypoint had no_new_privs.
                    let name = if snapshot.no_new_privs {
                        format!("{runtime}-nnp")
                    } else {
                        runtime.clone()
                    };
                    basesets::find(&name).ok().flatten().or(fallback)
                }
            };
            tracked.base_set_decided = true;
        }
        let keep = self.tracked.get(&id).and_then(|t| t.keep);
        // With Kubernetes, only what a recording selected is written.
        let writable = !self.options.require_decision || keep == Some(true);
        if ended {
            if snapshot.recording {
                if let Some(recording) = self.recording_of(id, &snapshot, State::Exited) {
                    if writable {
                        self.write(&recording)?;
                    }
                    if self.options.require_decision {
                        let pod_uid = self
                            .tracked
                            .get(&id)
                            .map(|t| t.pod_uid.clone())
                            .unwrap_or_default();
                        self.finished.push(Finished {
                            cgroup_id: id,
                            pod_uid,
                            keep,
                            recording,
                        });
                    }
                }
            } else {
                debug!(
                    cgroup_id = id,
                    "a container cgroup ended before its entrypoint ran"
                );
            }
            self.tracked.remove(&id);
            self.tracer.unmark(id)?;
        } else if force
            && writable
            && snapshot.recording
            && let Some(recording) = self.recording_of(id, &snapshot, State::Running)
        {
            self.write(&recording)?;
        }
        Ok(())
    }

    fn write(&mut self, recording: &ContainerRecording) -> Result<(), NodeError> {
        self.state.write(&recording.container_id, recording)?;
        self.written += 1;
        info!(
            container = %recording.container_id,
            name = recording.container_name.as_deref().unwrap_or(""),
            pod = recording.pod.as_ref().and_then(|p| p.name.as_deref()).unwrap_or(""),
            state = ?recording.state,
            syscalls = recording.syscalls.values().map(Vec::len).sum::<usize>(),
            "recording written"
        );
        Ok(())
    }

    fn recording_of(
        &self,
        id: u64,
        snapshot: &Snapshot,
        state: State,
    ) -> Option<ContainerRecording> {
        let tracked = self.tracked.get(&id)?;
        let parts = Parts::of(snapshot, &self.options.sessions);
        let census = &parts.census;
        let base = if tracked.base_set_decided {
            tracked.base_set.clone()
        } else {
            self.fallback_base_set()
        };
        // A runtime that runs hooks makes more after loading the filter.
        let base = base.map(|b| {
            if parts.hooks {
                basesets::with_hooks(&b)
            } else {
                b
            }
        });
        let meta = match &tracked.lookup {
            Some(Lookup::Container(meta)) => Some(meta),
            _ => None,
        };
        Some(ContainerRecording {
            api_version: API_VERSION.into(),
            kind: KIND.into(),
            container_id: tracked.container_id.clone(),
            container_name: meta.map(|m| m.name.clone()).filter(|n| !n.is_empty()),
            pod: Some(PodRef {
                namespace: meta.and_then(|m| m.pod_namespace.clone()),
                name: meta.and_then(|m| m.pod_name.clone()),
                uid: meta
                    .and_then(|m| m.pod_uid.clone())
                    .unwrap_or_else(|| tracked.pod_uid.clone()),
            }),
            node: self.options.node_name.clone(),
            cgroup: tracked.path.clone(),
            labels: meta.map(|m| m.labels.clone()).unwrap_or_default(),
            image: meta.map(|m| m.image.clone()).filter(|i| !i.is_empty()),
            state,
            start: tracked.start,
            first_seen: tracked.first_seen.to_string(),
            last_seen: tracked.last_seen.to_string(),
            last_new_syscall: tracked.last_new_syscall.map(|t| t.to_string()),
            runtime_base_set: base.as_ref().map(|b| b.name.clone()),
            syscalls: ContainerRecording::syscalls_of(census),
            exec_sessions_excluded: parts.exec_sessions_excluded,
            sessions: parts.sessions.clone(),
            session_only_syscalls: ContainerRecording::syscalls_of(&parts.session_only),
            warnings: warnings_of(snapshot, tracked.start, &parts),
            profile: Profile::from_census(census, base.as_ref(), &BuildOptions::default()),
        })
    }

    /// Writes a snapshot of every running container.
    pub fn snapshot_all(&mut self) -> Result<(), NodeError> {
        let ids: Vec<u64> = self.tracked.keys().copied().collect();
        for id in ids {
            self.poll(id, true)?;
        }
        Ok(())
    }

    /// Writes the state of every running container before the agent stops.
    pub fn flush(&mut self) -> Result<(), NodeError> {
        self.snapshot_all()
    }
}

fn warnings_of(snapshot: &Snapshot, start: Start, parts: &Parts) -> Vec<String> {
    let mut warnings = Vec::new();
    if start == Start::Late {
        warnings
            .push("recording started after the container did: earlier syscalls are missing".into());
    }
    if snapshot.out_of_range {
        warnings
            .push("syscall numbers outside the recorded range were made and are missing".into());
    }
    if snapshot.row_lost {
        warnings.push("32-bit syscalls were lost: the kernel map was full".into());
    }
    if snapshot.member_lost {
        warnings
            .push("a process of the workload could not be tracked: the kernel map was full".into());
    }
    if snapshot.alias_lost {
        warnings.push(
            "a cgroup made below the container's could not be tracked: the kernel map was full"
                .into(),
        );
    }
    if parts.unnamed_sessions > 0 {
        warnings.push(format!(
            "the command lines of {} sessions are unknown: the kernel's event buffer was full",
            parts.unnamed_sessions
        ));
    }
    warnings
}

/// Every cgroup below `dir` (whose path is `path`), with its id.
fn walk(dir: &Path, path: &str, out: &mut Vec<(String, u64)>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let Ok(meta) = entry.metadata() else {
            continue;
        };
        if !meta.is_dir() {
            continue;
        }
        let name = entry.file_name().to_string_lossy().into_owned();
        let child = format!("{}/{name}", path.trim_end_matches('/'));
        out.push((child.clone(), meta.ino()));
        let child_dir: PathBuf = entry.path();
        walk(&child_dir, &child, out);
    }
}
