//! OCI image tarballs built locally (no registry is reachable), for
//! `ctr images import`: the sandbox image and a busybox test image.
//!
//! The tarball is an OCI image layout (`oci-layout`, `index.json`,
//! `blobs/sha256/...`) with one uncompressed layer; the index names the
//! image with the `io.containerd.image.name` annotation, which `ctr` uses
//! as the image's name on import.

use std::{
    fs,
    io::Write,
    path::{Path, PathBuf},
};

use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tempfile::TempDir;

use super::Rootfs;
use crate::program;

/// The sandbox image containerd's CRI plugin is configured with; the
/// kubelet's default for containerd 1.6.
pub const PAUSE_IMAGE: &str = "registry.k8s.io/pause:3.6";

/// The busybox image the tests run.
pub const BUSYBOX_IMAGE: &str = "localhost/syscensus-test/busybox:1";

/// An image tarball on disk, removed on drop.
#[derive(Debug)]
pub struct ImageTar {
    dir: TempDir,
    name: String,
}

impl ImageTar {
    /// Packs root filesystem `rootfs` as image `name`; `config` is the
    /// image config's `config` object (`Entrypoint`, `Cmd`, `Env`, ...).
    pub fn build(name: &str, rootfs: &Path, config: Value) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("syscensus-image-")
            .tempdir()
            .unwrap_or_else(|e| panic!("failed to create a directory for image {name}: {e}"));
        let layer = layer_tar(rootfs);
        let layer_digest = digest(&layer);
        let image_config = json!({
            "architecture": oci_arch(),
            "os": "linux",
            "config": config,
            "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
        });
        let config_bytes = serde_json::to_vec(&image_config).unwrap_or_default();
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": digest(&config_bytes),
                "size": config_bytes.len(),
            },
            "layers": [{
                "mediaType": "application/vnd.oci.image.layer.v1.tar",
                "digest": layer_digest,
                "size": layer.len(),
            }],
        });
        let manifest_bytes = serde_json::to_vec(&manifest).unwrap_or_default();
        let tag = name.rsplit_once(':').map_or("latest", |(_, t)| t);
        let index = json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [{
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": digest(&manifest_bytes),
                "size": manifest_bytes.len(),
                "platform": {"architecture": oci_arch(), "os": "linux"},
                "annotations": {
                    "io.containerd.image.name": name,
                    "org.opencontainers.image.ref.name": tag,
                },
            }],
        });

        let file = fs::File::create(dir.path().join("image.tar"))
            .unwrap_or_else(|e| panic!("failed to create image.tar for {name}: {e}"));
        let mut tar = tar::Builder::new(file);
        let mut add = |path: &str, data: &[u8]| {
            let mut header = tar::Header::new_gnu();
            header.set_size(data.len() as u64);
            header.set_mode(0o644);
            header.set_entry_type(tar::EntryType::Regular);
            tar.append_data(&mut header, path, data)
                .unwrap_or_else(|e| panic!("failed to add {path} to image {name}: {e}"));
        };
        add("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#);
        add(
            "index.json",
            &serde_json::to_vec(&index).unwrap_or_default(),
        );
        for blob in [&layer, &config_bytes, &manifest_bytes] {
            let hex = digest(blob).trim_start_matches("sha256:").to_owned();
            add(&format!("blobs/sha256/{hex}"), blob);
        }
        tar.into_inner()
            .and_then(|mut f| f.flush())
            .unwrap_or_else(|e| panic!("failed to write image.tar for {name}: {e}"));
        Self {
            dir,
            name: name.to_owned(),
        }
    }

    /// The sandbox image [`PAUSE_IMAGE`]: `tests/programs/pause.c`, static,
    /// as `/pause`.
    pub fn pause() -> Self {
        let root =
            tempfile::tempdir().unwrap_or_else(|e| panic!("failed to create a directory: {e}"));
        let pause = program("pause", &[]);
        fs::copy(&pause, root.path().join("pause"))
            .unwrap_or_else(|e| panic!("failed to copy {}: {e}", pause.display()));
        Self::build(PAUSE_IMAGE, root.path(), json!({"Entrypoint": ["/pause"]}))
    }

    /// A busybox image named `name` (see [`Rootfs::busybox`]), with the
    /// static executables `extra` copied in as `(host path, image path)`;
    /// runs `sh` unless the container says otherwise.
    pub fn busybox(name: &str, extra: &[(&Path, &str)]) -> Self {
        let rootfs = Rootfs::busybox();
        for (src, dest) in extra {
            rootfs.add_program(src, dest);
        }
        Self::build(
            name,
            rootfs.path(),
            json!({
                "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
                "Cmd": ["sh"],
                "WorkingDir": "/",
            }),
        )
    }

    /// The tarball.
    pub fn path(&self) -> PathBuf {
        self.dir.path().join("image.tar")
    }

    /// The image's name (`registry/repository:tag`).
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// The GOARCH-style name of this machine's architecture.
fn oci_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        other => other,
    }
}

fn digest(data: &[u8]) -> String {
    let hash = Sha256::digest(data);
    let hex: String = hash.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

/// An uncompressed layer holding everything under `root`, owned by root,
/// symlinks kept as symlinks.
fn layer_tar(root: &Path) -> Vec<u8> {
    let mut tar = tar::Builder::new(Vec::new());
    tar.follow_symlinks(false);
    tar.mode(tar::HeaderMode::Complete);
    let mut entries: Vec<_> = fs::read_dir(root)
        .unwrap_or_else(|e| panic!("failed to list {}: {e}", root.display()))
        .flatten()
        .collect();
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let name = entry.file_name();
        let path = entry.path();
        let result = if entry.file_type().is_ok_and(|t| t.is_dir()) {
            tar.append_dir_all(&name, &path)
        } else {
            tar.append_path_with_name(&path, &name)
        };
        result.unwrap_or_else(|e| panic!("failed to add {} to a layer: {e}", path.display()));
    }
    tar.into_inner()
        .unwrap_or_else(|e| panic!("failed to finish a layer of {}: {e}", root.display()))
}
