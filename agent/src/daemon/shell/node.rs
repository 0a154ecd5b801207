//! The node's side of the actions: the kernel program (arm, disarm, mark),
//! cgroupfs (find, observe), the runtime (ask, the profile it holds).
use tracing::{info, warn};

use super::{
    super::{
        DaemonError,
        identity::Identity,
        machine::{Input, Observation, Place, WatchAnswer},
    },
    Shell, time_of,
};
use crate::{
    refusal::{
        self,
        report::{Counts, WatchedProfile},
        runtime::{RuntimeProfileError, StateRuntime},
    },
    syscalls::Arch,
};

impl Shell {
    /// Marks a running container with the cgroups below it and the
    /// processes in them (the kernel adds cgroups made below it later).
    pub(super) fn mark_running(&mut self, cgroup_id: u64, path: &str) -> Result<(), DaemonError> {
        let below = self.hierarchy.descendants(path);
        let mut pids = self.hierarchy.processes(path);
        for (child, _) in &below {
            pids.extend(self.hierarchy.processes(child));
        }
        pids.sort_unstable();
        self.tracer
            .mark_recording(cgroup_id, pids.first().copied().unwrap_or(0), &pids)?;
        for (_, child) in below {
            self.tracer.alias(child, cgroup_id)?;
        }
        Ok(())
    }

    /// Attaches `sys_enter` first, so that a container marked from now on
    /// loses nothing, then watches the roots, then says so.
    pub(super) fn arm(&mut self, roots: &[String]) -> Result<Input, DaemonError> {
        self.tracer.attach_sys_enter()?;
        let paths: Vec<&str> = roots.iter().map(String::as_str).collect();
        self.tracer.set_root_paths(&paths)?;
        let mut watched = Vec::new();
        for root in roots {
            match self.hierarchy.id_of(root) {
                Some(id) => {
                    self.tracer.watch(id)?;
                    watched.push((root.clone(), id));
                    info!(%root, "watching");
                }
                None => info!(%root, "not there yet; watched from when it is made"),
            }
        }
        // Either way every container made from now on is recorded.
        self.state.set_watching(Some(roots))?;
        Ok(Input::Armed { roots: watched })
    }

    /// Undoes [`arm`](Self::arm), for the roots the machine knows and
    /// whatever the roots' directories are now (a crashed run may have left
    /// them watched in the pinned maps).
    pub(super) fn disarm(&mut self, roots: &[u64]) -> Result<(), DaemonError> {
        self.state.set_watching(None)?;
        self.tracer.set_root_paths(&[])?;
        let now: Vec<u64> = self
            .roots
            .iter()
            .filter_map(|r| self.hierarchy.id_of(r))
            .collect();
        for id in roots.iter().chain(&now) {
            self.tracer.unwatch(*id)?;
        }
        self.tracer.detach_sys_enter()?;
        Ok(())
    }

    /// Where the cgroups of these rows are: below a root, or gone (with
    /// what their rows hold).
    pub(super) fn find(
        &self,
        roots: &[String],
        ids: Vec<u64>,
    ) -> Result<Vec<(u64, Place)>, DaemonError> {
        let by_id: std::collections::HashMap<u64, String> = roots
            .iter()
            .flat_map(|root| self.hierarchy.descendants(root))
            .map(|(path, id)| (id, path))
            .collect();
        let mut found = Vec::new();
        for id in ids {
            let place = match by_id.get(&id) {
                Some(path) => Place::Path(path.clone()),
                None => Place::Gone(self.tracer.snapshot(id)?),
            };
            found.push((id, place));
        }
        Ok(found)
    }

    /// Asks the runtime, in order, up to the first failure.
    pub(super) async fn ask_runtime(&mut self, containers: Vec<(u64, String)>) -> Input {
        let mut answers = Vec::new();
        if let Some(cri) = self.cri.as_mut() {
            for (cgroup_id, container) in containers {
                let answer = cri.lookup(&container).await.map_err(|e| e.to_string());
                let failed = answer.is_err();
                answers.push((cgroup_id, answer));
                if failed {
                    break;
                }
            }
        }
        Input::RuntimeAnswers(answers)
    }

    /// Reads the profile a container runs under from its runtime (CRI's
    /// verbose status, else runc's or crun's state directory) and watches
    /// what it refuses.
    pub(super) async fn watch_refusals(&mut self, cgroup_id: u64, container: &str) -> WatchAnswer {
        let mut found = None;
        let mut cri_error = None;
        if let Some(cri) = self.cri.as_mut() {
            match cri.verbose_info(container).await {
                Ok(Some(info)) => {
                    found = Some(("cri", refusal::runtime::from_cri_info(&info)));
                }
                Ok(None) => {}
                // The state directories may still say.
                Err(error) => cri_error = Some(error.to_string()),
            }
        }
        let (source, profile) = match found {
            Some(found) => found,
            None => match refusal::runtime::from_default_state_dirs(container) {
                Ok(None) => {
                    return cri_error.map_or(WatchAnswer::NotFound, WatchAnswer::RuntimeFailed);
                }
                Ok(Some((runtime, profile))) => (
                    match runtime {
                        StateRuntime::Runc => "runc",
                        StateRuntime::Crun => "crun",
                    },
                    Ok::<_, RuntimeProfileError>(profile),
                ),
                Err(error) => return WatchAnswer::Failed(error.to_string()),
            },
        };
        let profile = match profile {
            Ok(Some(profile)) => profile,
            Ok(None) => return WatchAnswer::Unconfined,
            Err(error) => return WatchAnswer::Failed(error.to_string()),
        };
        let build = match refusal::watch_policy(&profile, Arch::native()) {
            Ok(build) => build,
            Err(error) => return WatchAnswer::Failed(error.to_string()),
        };
        if let Err(error) = self.tracer.watch_refusals(cgroup_id, &build.policy) {
            return WatchAnswer::Failed(error.to_string());
        }
        WatchAnswer::Watched(WatchedProfile {
            source: source.to_owned(),
            default_action: serde_json::to_value(profile.default_action)
                .ok()
                .and_then(|v| v.as_str().map(ToOwned::to_owned))
                .unwrap_or_default(),
            unknown_names: build.unknown_names.into_iter().collect(),
        })
    }

    /// The cgroups below `roots` of the containers with runtime ids `ids`
    /// (their paths end in the id): runtime id, cgroup id, path.
    pub(super) fn find_containers(
        &self,
        roots: &[String],
        ids: &[String],
    ) -> Vec<(String, u64, String)> {
        roots
            .iter()
            .flat_map(|root| self.hierarchy.descendants(root))
            .filter_map(|(path, cgroup_id)| {
                let identity = Identity::of_cgroup(&path)?;
                ids.contains(&identity.container_id).then_some((
                    identity.container_id,
                    cgroup_id,
                    path,
                ))
            })
            .collect()
    }

    /// Reads containers: whether their cgroups hold processes, and their
    /// rows. A container whose rows cannot be read is left out (and looked
    /// at again next time).
    pub(super) fn observe(&self, containers: Vec<(u64, String)>) -> Vec<Observation> {
        let mut observations = Vec::new();
        for (cgroup_id, path) in containers {
            let populated = self.hierarchy.is_populated(&path);
            let refusals = match self.tracer.refusals(cgroup_id) {
                Ok(refusals) => refusals.map(|r| Counts::of(&r, time_of)),
                Err(error) => {
                    warn!(%error, cgroup_id, "cannot read a container's refusals");
                    None
                }
            };
            match self.tracer.snapshot(cgroup_id) {
                Ok(snapshot) => observations.push(Observation {
                    cgroup_id,
                    populated,
                    snapshot,
                    refusals,
                }),
                Err(error) => warn!(%error, cgroup_id, "cannot read a container's rows"),
            }
        }
        observations
    }
}
