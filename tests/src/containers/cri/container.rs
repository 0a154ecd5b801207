//! Containers in a pod: status, exit, cgroup, logs.

use std::{collections::HashMap, path::PathBuf, time::Duration};

use k8s_cri::v1::{
    ContainerState, ContainerStatus, ContainerStatusRequest, ExecSyncRequest,
    RemoveContainerRequest, StartContainerRequest, StopContainerRequest,
};
use serde_json::Value;

use super::Pod;
use crate::containers::wait_for;

/// What a container wrote, from its CRI log file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CriLogs {
    /// The stdout lines, each ending in `\n`.
    pub stdout: String,
    /// The stderr lines, each ending in `\n`.
    pub stderr: String,
}

/// Parses a CRI log file: lines `<RFC 3339 time> <stream> <tag> <text>`,
/// where tag `P` marks a partial line continued by the next entry and `F`
/// a full (final) one.
pub fn parse_cri_log(text: &str) -> CriLogs {
    let mut logs = CriLogs::default();
    for line in text.lines() {
        let mut parts = line.splitn(4, ' ');
        let (_time, stream, tag) = (parts.next(), parts.next(), parts.next());
        let content = parts.next().unwrap_or_default();
        let out = match stream {
            Some("stdout") => &mut logs.stdout,
            Some("stderr") => &mut logs.stderr,
            _ => panic!("not a CRI log line: {line:?}"),
        };
        out.push_str(content);
        if tag.is_none_or(|t| t.split(':').next() != Some("P")) {
            out.push('\n');
        }
    }
    logs
}

/// A container in a [`Pod`]; removed with the pod.
#[derive(Debug)]
pub struct CriContainer<'p> {
    pub(super) pod: &'p Pod<'p>,
    pub(super) id: String,
    pub(super) name: String,
}

impl CriContainer<'_> {
    /// The container id (64 hex digits).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The container's name in its pod.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `StartContainer`.
    pub fn start(&self) {
        self.pod.cri.call(
            &format!("StartContainer {}", self.name),
            self.pod
                .cri
                .runtime()
                .start_container(StartContainerRequest {
                    container_id: self.id.clone(),
                }),
        );
    }

    /// `ExecSync` of `cmd`, as the kubelet runs an exec probe or lifecycle
    /// hook (and `kubectl exec` without a terminal): exit code, stdout.
    pub fn exec_sync(&self, cmd: &[&str], timeout: Duration) -> (i32, String) {
        let (code, stdout, _) = self.exec_sync_output(cmd, timeout);
        (code, stdout)
    }

    /// As [`exec_sync`](Self::exec_sync): exit code, stdout and stderr.
    pub fn exec_sync_output(&self, cmd: &[&str], timeout: Duration) -> (i32, String, String) {
        let response = self.pod.cri.call(
            &format!("ExecSync {cmd:?} in {}", self.name),
            self.pod.cri.runtime().exec_sync(ExecSyncRequest {
                container_id: self.id.clone(),
                cmd: cmd.iter().map(|c| (*c).to_owned()).collect(),
                timeout: i64::try_from(timeout.as_secs()).unwrap_or(i64::MAX),
            }),
        );
        (
            response.exit_code,
            String::from_utf8_lossy(&response.stdout).into_owned(),
            String::from_utf8_lossy(&response.stderr).into_owned(),
        )
    }

    /// `StopContainer` with a grace period of `timeout_s` seconds.
    pub fn stop(&self, timeout_s: i64) {
        self.pod.cri.call(
            &format!("StopContainer {}", self.name),
            self.pod.cri.runtime().stop_container(StopContainerRequest {
                container_id: self.id.clone(),
                timeout: timeout_s,
            }),
        );
    }

    /// `RemoveContainer`.
    pub fn remove(self) {
        self.pod.cri.call(
            &format!("RemoveContainer {}", self.name),
            self.pod
                .cri
                .runtime()
                .remove_container(RemoveContainerRequest {
                    container_id: self.id.clone(),
                }),
        );
    }

    fn status_response(&self, verbose: bool) -> (ContainerStatus, HashMap<String, String>) {
        let response = self.pod.cri.call(
            &format!("ContainerStatus {}", self.name),
            self.pod
                .cri
                .runtime()
                .container_status(ContainerStatusRequest {
                    container_id: self.id.clone(),
                    verbose,
                }),
        );
        let status = response
            .status
            .unwrap_or_else(|| panic!("ContainerStatus {} returned no status", self.name));
        (status, response.info)
    }

    /// `ContainerStatus`: state, exit code, labels, annotations, log path.
    pub fn status(&self) -> ContainerStatus {
        self.status_response(false).0
    }

    /// The container's state.
    pub fn state(&self) -> ContainerState {
        ContainerState::try_from(self.status().state).unwrap_or(ContainerState::ContainerUnknown)
    }

    /// The container's CRI labels.
    pub fn labels(&self) -> HashMap<String, String> {
        self.status().labels
    }

    /// containerd's verbose status info (`info` key): `pid`, `sandboxID`,
    /// `runtimeSpec` and more.
    pub fn info(&self) -> Value {
        let (_, info) = self.status_response(true);
        let text = info
            .get("info")
            .unwrap_or_else(|| panic!("verbose ContainerStatus {} has no info", self.name));
        serde_json::from_str(text)
            .unwrap_or_else(|e| panic!("container info is not JSON ({e}): {text}"))
    }

    /// The host PID of the container's process while it runs.
    pub fn pid(&self) -> u32 {
        let info = self.info();
        info["pid"]
            .as_u64()
            .and_then(|p| u32::try_from(p).ok())
            .filter(|p| *p != 0)
            .unwrap_or_else(|| panic!("container {} has no pid: {info}", self.name))
    }

    /// The container's cgroup path (`linux.cgroupsPath` of the spec
    /// containerd gave runc), e.g. `/kubepods/besteffort/pod<uid>/<id>`.
    /// Valid after the container exits too; the directory exists until the
    /// container is removed.
    pub fn cgroup(&self) -> String {
        let info = self.info();
        info["runtimeSpec"]["linux"]["cgroupsPath"]
            .as_str()
            .unwrap_or_else(|| panic!("container {} has no cgroupsPath: {info}", self.name))
            .to_owned()
    }

    /// Waits until the container has exited and returns its exit code.
    pub fn wait_exited(&self, timeout: Duration) -> i32 {
        wait_for(timeout, &format!("container {} to exit", self.name), || {
            let status = self.status();
            (status.state == ContainerState::ContainerExited as i32).then_some(status.exit_code)
        })
    }

    /// The container's CRI log file.
    pub fn log_path(&self) -> PathBuf {
        self.pod.log_dir().join(format!("{}/0.log", self.name))
    }

    /// What the container wrote so far.
    pub fn logs(&self) -> CriLogs {
        parse_cri_log(&std::fs::read_to_string(self.log_path()).unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cri_log_lines() {
        let logs = parse_cri_log(
            "2024-01-01T00:00:00.000000001Z stdout F hello\n\
             2024-01-01T00:00:00.000000002Z stderr P par\n\
             2024-01-01T00:00:00.000000003Z stderr F tial\n\
             2024-01-01T00:00:00.000000004Z stdout F \n",
        );
        assert_eq!(logs.stdout, "hello\n\n");
        assert_eq!(logs.stderr, "partial\n");
    }
}
