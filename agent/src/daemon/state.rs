//! The agent's state directory: results per container, the agent's PID, and
//! a counter of completed snapshots.
//!
//! ```text
//! <state-dir>/agent.pid                     PID of the running agent
//! <state-dir>/snapshots                     completed snapshot rounds
//! <state-dir>/watching                      present while new containers are
//!                                           recorded: the roots are armed
//! <state-dir>/checkpoint.json               what survives a restart (see
//!                                           `daemon::checkpoint`)
//! <state-dir>/containers/<id>.json          ContainerRecording documents
//! <state-dir>/profiles/<id>.json            the OCI profile alone
//! <state-dir>/refusals/<id>.json            ContainerRefusals: what the
//!                                           profile a container runs under
//!                                           refused it (`syscensus denials`)
//! ```
use std::{
    fs, io,
    path::{Path, PathBuf},
};

use crate::{
    container_recording::ContainerRecording, output::write_atomic,
    refusal::report::ContainerRefusals,
};

/// The state directory could not be used.
#[derive(Debug, thiserror::Error)]
#[error("cannot {action} {}: {source}: check --state-dir", path.display())]
pub struct StateError {
    pub action: &'static str,
    pub path: PathBuf,
    #[source]
    pub source: io::Error,
}

fn err(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> StateError {
    let path = path.to_path_buf();
    move |source| StateError {
        action,
        path,
        source,
    }
}

/// Whether `name` is safe as a file name: a container id or a `cgroup-<n>`
/// name, never a path.
fn safe_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The agent's state directory.
#[derive(Clone, Debug)]
pub struct StateDir {
    root: PathBuf,
}

impl StateDir {
    /// Opens (and creates) the state directory.
    pub fn open(root: &Path) -> Result<StateDir, StateError> {
        for dir in [
            root.to_path_buf(),
            root.join("containers"),
            root.join("profiles"),
            root.join("refusals"),
        ] {
            fs::create_dir_all(&dir).map_err(err("create", &dir))?;
        }
        Ok(StateDir {
            root: root.to_path_buf(),
        })
    }

    /// The directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where the agent's PID is written.
    pub fn pid_file(root: &Path) -> PathBuf {
        root.join("agent.pid")
    }

    /// Where the count of completed snapshot rounds is written.
    pub fn snapshots_file(root: &Path) -> PathBuf {
        root.join("snapshots")
    }

    /// Writes this process's PID.
    pub fn write_pid(&self) -> Result<(), StateError> {
        let path = Self::pid_file(&self.root);
        write_atomic(&path, format!("{}\n", std::process::id()).as_bytes())
            .map_err(err("write", &path))
    }

    /// Removes the PID file.
    pub fn remove_pid(&self) {
        let _ = fs::remove_file(Self::pid_file(&self.root));
    }

    /// Where the agent says that it records new containers: the cgroup
    /// roots are watched, or armed to be watched when they are made.
    pub fn watching_file(root: &Path) -> PathBuf {
        root.join("watching")
    }

    /// Says whether new containers are recorded (see
    /// [`watching_file`](Self::watching_file)); `roots` are written in it.
    pub fn set_watching(&self, roots: Option<&[String]>) -> Result<(), StateError> {
        let path = Self::watching_file(&self.root);
        match roots {
            Some(roots) => write_atomic(&path, format!("{}\n", roots.join("\n")).as_bytes())
                .map_err(err("write", &path)),
            None => match fs::remove_file(&path) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => Err(err("remove", &path)(e)),
                _ => Ok(()),
            },
        }
    }

    /// Records that snapshot round `n` is complete.
    pub fn write_snapshot_count(&self, n: u64) -> Result<(), StateError> {
        let path = Self::snapshots_file(&self.root);
        write_atomic(&path, format!("{n}\n").as_bytes()).map_err(err("write", &path))
    }

    /// Writes a file of the agent's own (a checkpoint) atomically.
    pub fn write_file(&self, name: &str, bytes: &[u8]) -> Result<(), StateError> {
        let path = self.root.join(name);
        write_atomic(&path, bytes).map_err(err("write", &path))
    }

    /// Removes a file of the agent's own, if there.
    pub fn remove_file(&self, name: &str) {
        let _ = fs::remove_file(self.root.join(name));
    }

    /// Reads a file of the agent's own, if there.
    pub fn read_file(&self, name: &str) -> Option<String> {
        fs::read_to_string(self.root.join(name)).ok()
    }

    /// Writes a container's recording and its profile, each atomically.
    pub fn write(&self, name: &str, recording: &ContainerRecording) -> Result<(), StateError> {
        if !safe_name(name) {
            return Err(StateError {
                action: "name a result after",
                path: PathBuf::from(name),
                source: io::Error::new(io::ErrorKind::InvalidInput, "not a container id"),
            });
        }
        let profile = self.root.join("profiles").join(format!("{name}.json"));
        write_atomic(&profile, recording.profile.to_oci_json().as_bytes())
            .map_err(err("write", &profile))?;
        let document = self.root.join("containers").join(format!("{name}.json"));
        write_atomic(&document, recording.to_json().as_bytes()).map_err(err("write", &document))
    }

    /// Where the refusal reports are.
    pub fn refusals_dir(root: &Path) -> PathBuf {
        root.join("refusals")
    }

    /// Writes a container's refusal report atomically.
    pub fn write_refusals(&self, name: &str, report: &ContainerRefusals) -> Result<(), StateError> {
        if !safe_name(name) {
            return Err(StateError {
                action: "name a refusal report after",
                path: PathBuf::from(name),
                source: io::Error::new(io::ErrorKind::InvalidInput, "not a container id"),
            });
        }
        let path = Self::refusals_dir(&self.root).join(format!("{name}.json"));
        write_atomic(&path, report.to_json().as_bytes()).map_err(err("write", &path))
    }

    /// Every recording in the directory.
    pub fn read_all(&self) -> Result<Vec<ContainerRecording>, StateError> {
        let dir = self.root.join("containers");
        let mut out = Vec::new();
        let entries = fs::read_dir(&dir).map_err(err("read", &dir))?;
        for entry in entries {
            let path = entry.map_err(err("read", &dir))?.path();
            if path.extension().is_none_or(|e| e != "json") {
                continue;
            }
            let text = fs::read_to_string(&path).map_err(err("read", &path))?;
            let recording = serde_json::from_str(&text)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
                .map_err(err("parse", &path))?;
            out.push(recording);
        }
        out.sort_by(|a: &ContainerRecording, b| a.container_id.cmp(&b.container_id));
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    #[test]
    fn names_are_ids_never_paths() {
        assert!(safe_name("0123abcdef"));
        assert!(safe_name("cgroup-1234"));
        for bad in ["", "../x", "a/b", ".", "..", "x y", &"a".repeat(200)] {
            assert!(!safe_name(bad), "{bad:?}");
        }
    }
}
