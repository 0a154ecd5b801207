//! The Pod's volumes as host paths: `hostPath` (checked as the kubelet
//! checks its `type`), `emptyDir`, and the projected service account
//! volume.

use std::{
    collections::HashMap,
    os::unix::fs::FileTypeExt as _,
    path::{Path, PathBuf},
};

use k8s_cri::v1::{Mount, MountPropagation};
use k8s_openapi::api::core::v1::{
    Container, Pod as PodObject, PodSpec as PodObjectSpec, ServiceAccount,
};

use super::{Node, SERVICE_ACCOUNT_DIR};

/// The Pod's volumes as host paths.
pub(super) struct Volumes {
    /// Volume name → host path.
    paths: HashMap<String, PathBuf>,
    /// The service account volume, mounted in every container.
    service_account: Option<PathBuf>,
    dir: PathBuf,
}

impl Volumes {
    pub(super) fn prepare(
        node: &Node,
        pod: &PodObject,
        spec: &PodObjectSpec,
        service_accounts: &[ServiceAccount],
        dir: &Path,
    ) -> Self {
        let mut paths = HashMap::new();
        for volume in spec.volumes.iter().flatten() {
            let path = if let Some(host) = &volume.host_path {
                let path = node.host_paths.get(&host.path).unwrap_or_else(|| {
                    panic!(
                        "volume {} mounts host path {}, which the test stands in for with nothing: name it in Node::host_paths",
                        volume.name, host.path
                    )
                });
                check_host_path(&volume.name, path, host.type_.as_deref().unwrap_or(""));
                path.clone()
            } else if volume.empty_dir.is_some() {
                let path = dir.join("empty-dir").join(&volume.name);
                std::fs::create_dir_all(&path)
                    .unwrap_or_else(|e| panic!("emptyDir {}: {e}", volume.name));
                path
            } else {
                panic!(
                    "volume {}: only hostPath and emptyDir volumes are supported here",
                    volume.name
                )
            };
            paths.insert(volume.name.clone(), path);
        }
        // The ServiceAccount admission plugin: unless the Pod or its
        // service account says no, a projected volume with a token, the
        // cluster's CA and the namespace.
        let account_name = spec
            .service_account_name
            .clone()
            .unwrap_or_else(|| "default".into());
        let account = service_accounts
            .iter()
            .find(|a| a.metadata.name.as_deref() == Some(&account_name));
        let automount = spec
            .automount_service_account_token
            .or_else(|| account.and_then(|a| a.automount_service_account_token))
            .unwrap_or(true);
        let service_account = match (&node.api_server, automount) {
            (Some(api), true) => {
                let projected = dir.join("kube-api-access");
                std::fs::create_dir_all(&projected).unwrap_or_else(|e| panic!("{e}"));
                let namespace = pod.metadata.namespace.clone().unwrap_or_default();
                for (file, content) in [
                    ("token", api.token.as_str()),
                    ("ca.crt", api.ca_pem.as_str()),
                    ("namespace", namespace.as_str()),
                ] {
                    std::fs::write(projected.join(file), content)
                        .unwrap_or_else(|e| panic!("failed to write {file}: {e}"));
                }
                Some(projected)
            }
            _ => None,
        };
        Self {
            paths,
            service_account,
            dir: dir.to_path_buf(),
        }
    }

    /// A file in the Pod's directory with `content`.
    pub(super) fn file(&self, name: &str, content: &str) -> PathBuf {
        let path = self.dir.join(name);
        std::fs::write(&path, content)
            .unwrap_or_else(|e| panic!("failed to write {}: {e}", path.display()));
        path
    }

    /// The container's mounts, in the order of its volumeMounts, then the
    /// service account volume.
    pub(super) fn mounts(&self, container: &Container) -> Vec<Mount> {
        let mut mounts = Vec::new();
        for mount in container.volume_mounts.iter().flatten() {
            assert!(
                mount.sub_path.is_none() && mount.sub_path_expr.is_none(),
                "{}: subPath is not supported here",
                container.name
            );
            let host = self.paths.get(&mount.name).unwrap_or_else(|| {
                panic!(
                    "container {} mounts volume {}, which the Pod does not have",
                    container.name, mount.name
                )
            });
            let propagation = match mount.mount_propagation.as_deref() {
                None | Some("None") => MountPropagation::PropagationPrivate,
                Some("HostToContainer") => MountPropagation::PropagationHostToContainer,
                Some("Bidirectional") => MountPropagation::PropagationBidirectional,
                Some(other) => panic!("mountPropagation {other}"),
            };
            mounts.push(Mount {
                container_path: mount.mount_path.clone(),
                host_path: host.display().to_string(),
                readonly: mount.read_only.unwrap_or(false),
                propagation: propagation as i32,
                ..Default::default()
            });
        }
        if let Some(projected) = &self.service_account
            && !mounts
                .iter()
                .any(|m| m.container_path == SERVICE_ACCOUNT_DIR)
        {
            mounts.push(Mount {
                container_path: SERVICE_ACCOUNT_DIR.to_owned(),
                host_path: projected.display().to_string(),
                readonly: true,
                ..Default::default()
            });
        }
        mounts
    }
}

/// The kubelet's check of a `hostPath` volume's `type` before the Pod
/// starts (pkg/volume/hostpath): fails as the Pod would fail to start.
fn check_host_path(volume: &str, path: &Path, kind: &str) {
    let meta = std::fs::metadata(path);
    let fail = |what: &str| -> ! {
        panic!(
            "hostPath volume {volume}: {} {what} (type {kind})",
            path.display()
        )
    };
    match kind {
        "" => {}
        "DirectoryOrCreate" => {
            if meta.is_err() {
                std::fs::create_dir_all(path)
                    .unwrap_or_else(|e| fail(&format!("cannot be made: {e}")));
            } else if !path.is_dir() {
                fail("is not a directory");
            }
        }
        "Directory" => {
            if !meta.is_ok_and(|m| m.is_dir()) {
                fail("is no directory");
            }
        }
        "FileOrCreate" => {
            if meta.is_err() {
                std::fs::write(path, b"").unwrap_or_else(|e| fail(&format!("cannot be made: {e}")));
            } else if !path.is_file() {
                fail("is not a file");
            }
        }
        "File" => {
            if !meta.is_ok_and(|m| m.is_file()) {
                fail("is no file");
            }
        }
        "Socket" => {
            if !meta.is_ok_and(|m| m.file_type().is_socket()) {
                fail("is no socket");
            }
        }
        "CharDevice" => {
            if !meta.is_ok_and(|m| m.file_type().is_char_device()) {
                fail("is no character device");
            }
        }
        "BlockDevice" => {
            if !meta.is_ok_and(|m| m.file_type().is_block_device()) {
                fail("is no block device");
            }
        }
        other => fail(&format!("has an unknown type {other}")),
    }
}
