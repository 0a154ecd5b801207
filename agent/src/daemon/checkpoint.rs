//! The file of what the daemon keeps across restarts (`checkpoint.json` in
//! the state directory; its content is [`Checkpoint`], which the state
//! machine makes and takes back): the containers being recorded (their
//! rows survive in the pinned maps; this names them, says who they are and
//! what was decided about them), the containers that ended before a
//! decision, and the results not yet written to the cluster.
//!
//! Written atomically whenever it changed (at most once a second), and
//! always before the rows of an ended container are dropped, so that a
//! crash at any moment finds every result in the checkpoint or the kernel.
//! The files of earlier versions (`tracked.json`, `kube.json`) are read
//! when there is no checkpoint yet.
use serde::Deserialize;
use tracing::warn;

use super::{
    contribution::{Contribution, Key},
    identity::{ContainerMeta, Identity},
    machine::{Checkpoint, ContainerState, Ended},
    state::{StateDir, StateError},
};
use crate::container_recording::{ContainerRecording, Start};

/// The checkpoint's file in the state directory.
pub const FILE: &str = "checkpoint.json";

/// Earlier versions' files: the tracked containers, and Kubernetes mode's
/// results and undecided containers.
const LEGACY_TRACKED: &str = "tracked.json";
const LEGACY_KUBE: &str = "kube.json";

/// The checkpoint in `state`, or what earlier versions left there; none
/// when there is neither or it cannot be read (said in the log).
pub fn load(state: &StateDir) -> Option<Checkpoint> {
    if let Some(text) = state.read_file(FILE) {
        return parse(FILE, &text);
    }
    let mut checkpoint = Checkpoint::default();
    let mut found = false;
    if let Some(text) = state.read_file(LEGACY_TRACKED) {
        found = true;
        checkpoint.containers = parse::<Vec<LegacyTracked>>(LEGACY_TRACKED, &text)
            .unwrap_or_default()
            .into_iter()
            .filter_map(LegacyTracked::upgrade)
            .collect();
    }
    if let Some(text) = state.read_file(LEGACY_KUBE) {
        found = true;
        if let Some(kube) = parse::<LegacyKube>(LEGACY_KUBE, &text) {
            checkpoint.contributions = kube.contributions;
            checkpoint.ended = kube
                .undecided
                .into_iter()
                .filter_map(LegacyFinished::upgrade)
                .collect();
        }
    }
    found.then_some(checkpoint)
}

/// Saves `checkpoint` atomically (and removes earlier versions' files).
pub fn save(checkpoint: &Checkpoint, state: &StateDir) -> Result<(), StateError> {
    #[expect(
        clippy::unwrap_used,
        reason = "serializing plain data to a String cannot fail"
    )]
    let text = serde_json::to_string(checkpoint).unwrap();
    state.write_file(FILE, text.as_bytes())?;
    for legacy in [LEGACY_TRACKED, LEGACY_KUBE] {
        state.remove_file(legacy);
    }
    Ok(())
}

fn parse<T: serde::de::DeserializeOwned>(file: &str, text: &str) -> Option<T> {
    match serde_json::from_str(text) {
        Ok(value) => Some(value),
        Err(error) => {
            warn!(%error, file, "unreadable checkpoint ignored");
            None
        }
    }
}

/// A tracked container as `tracked.json` held it.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LegacyTracked {
    cgroup_id: u64,
    path: String,
    start: Start,
    first_seen: jiff::Timestamp,
    last_seen: jiff::Timestamp,
    last_new_syscall: Option<jiff::Timestamp>,
    known: usize,
}

impl LegacyTracked {
    fn upgrade(self) -> Option<ContainerState> {
        Some(ContainerState {
            cgroup_id: self.cgroup_id,
            identity: Identity::of_cgroup(&self.path)?,
            start: self.start,
            first_seen: self.first_seen,
            last_seen: self.last_seen,
            last_new_syscall: self.last_new_syscall,
            known: self.known,
            base_set_decided: false,
            base_set: None,
            chosen: None,
        })
    }
}

/// `kube.json`.
#[derive(Deserialize)]
struct LegacyKube {
    contributions: Vec<(Key, Contribution)>,
    undecided: Vec<LegacyFinished>,
}

/// An ended, undecided container as `kube.json` held it.
#[derive(Deserialize)]
struct LegacyFinished {
    pod_uid: String,
    recording: ContainerRecording,
}

impl LegacyFinished {
    fn upgrade(self) -> Option<Ended> {
        let recording = self.recording;
        let pod = recording.pod.clone();
        let runtime = recording.container_name.clone().map(|name| ContainerMeta {
            name,
            pod_name: pod.as_ref().and_then(|p| p.name.clone()),
            pod_namespace: pod.as_ref().and_then(|p| p.namespace.clone()),
            pod_uid: pod.as_ref().map(|p| p.uid.clone()),
            labels: recording.labels.clone(),
            image: recording.image.clone().unwrap_or_default(),
        });
        let base_set = recording.base_set();
        Some(Ended {
            identity: Identity {
                container_id: recording.container_id.clone(),
                pod_uid: self.pod_uid,
                cgroup: recording.cgroup.clone(),
                runtime,
            },
            recording,
            base_set,
            since: None,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    const ID: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    const UID: &str = "5f0c3a1e-2b7d-4c9a-8e21-6d4f0b3c9a17";

    #[test]
    fn saved_and_loaded_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::open(dir.path()).unwrap();
        assert_eq!(load(&state), None);
        let checkpoint = Checkpoint {
            containers: vec![ContainerState {
                cgroup_id: 7,
                identity: Identity::of_cgroup(&format!("/kubepods/pod{UID}/{ID}")).unwrap(),
                start: Start::Exec,
                first_seen: jiff::Timestamp::UNIX_EPOCH,
                last_seen: jiff::Timestamp::UNIX_EPOCH,
                last_new_syscall: None,
                known: 3,
                base_set_decided: true,
                base_set: crate::basesets::find("runc").unwrap(),
                chosen: None,
            }],
            ended: Vec::new(),
            unwritten: Vec::new(),
            contributions: Vec::new(),
        };
        save(&checkpoint, &state).unwrap();
        assert_eq!(load(&state), Some(checkpoint));
    }

    #[test]
    fn earlier_versions_files_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::open(dir.path()).unwrap();
        let tracked = format!(
            r#"[{{"cgroupId":7,"path":"/kubepods/pod{UID}/{ID}","start":"Exec","firstSeen":"2026-01-01T00:00:00Z","lastSeen":"2026-01-01T00:00:05Z","lastNewSyscall":null,"known":4}}]"#
        );
        state
            .write_file(LEGACY_TRACKED, tracked.as_bytes())
            .unwrap();
        let loaded = load(&state).unwrap();
        assert_eq!(loaded.containers.len(), 1);
        assert_eq!(loaded.containers[0].identity.container_id, ID);
        assert_eq!(loaded.containers[0].known, 4);
        // Saving the new file removes the old ones.
        save(&loaded, &state).unwrap();
        assert!(state.read_file(LEGACY_TRACKED).is_none());
        assert_eq!(load(&state), Some(loaded));
    }
}
