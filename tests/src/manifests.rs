//! The project's manifests and image as a node gets them: `kubectl
//! kustomize` renderings of deploy/, the image `cargo xtask image` wrote,
//! and what a Pod test mounts for itself.
use std::{
    path::{Path, PathBuf},
    process::Command,
};

use serde_json::Value;

use crate::{require_program, workspace_root};

/// `kubectl kustomize DIR` (DIR relative to the workspace), as JSON values.
pub fn render(dir: &str) -> Vec<Value> {
    render_path(&workspace_root().join(dir), dir)
}

/// `kubectl kustomize` of the kustomization in `dir`, as JSON values;
/// `what` names it in a failure.
pub fn render_path(dir: &Path, what: &str) -> Vec<Value> {
    require_program("kubectl", "kubectl");
    let output = Command::new("kubectl")
        .arg("kustomize")
        .arg(dir)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "kubectl kustomize {what}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8(output.stdout).unwrap();
    serde_norway::Deserializer::from_str(&text)
        .map(|doc| {
            let v: serde_norway::Value = serde::Deserialize::deserialize(doc).unwrap();
            serde_json::to_value(v).unwrap()
        })
        .collect()
}

/// The image `cargo xtask image` wrote (`$SYSCENSUS_IMAGE`, set by `cargo
/// xtask test`).
pub fn image_archive() -> PathBuf {
    let path = std::env::var_os("SYSCENSUS_IMAGE").map_or_else(
        || workspace_root().join("target/image/syscensus.oci.tar"),
        PathBuf::from,
    );
    assert!(
        path.exists(),
        "the agent's image {} is missing: build it with `cargo xtask image` (cargo xtask test does)",
        path.display()
    );
    path
}

/// A file system mounted for the test (bpffs standing in for the node's
/// /sys/fs/bpf, a small tmpfs for a state directory); lazily unmounted,
/// with what it holds, when dropped.
#[derive(Debug)]
pub struct Mount(PathBuf);

impl Mount {
    /// Mounts a file system of `kind` with `options` (`-o`) at `dir`, made
    /// first.
    pub fn new(kind: &str, options: &str, dir: &Path) -> Self {
        std::fs::create_dir_all(dir).unwrap();
        let status = Command::new("mount")
            .args(["-t", kind, "-o", options, kind])
            .arg(dir)
            .status()
            .unwrap();
        assert!(status.success(), "mount -t {kind} {}", dir.display());
        Self(dir.to_path_buf())
    }
}

impl Mount {
    /// Where it is mounted.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// The machine's memory (`MemTotal`), in bytes.
pub fn mem_total() -> u64 {
    let text = std::fs::read_to_string("/proc/meminfo").unwrap();
    let kib: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap();
    kib * 1024
}
