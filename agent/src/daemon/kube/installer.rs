//! Installs approved profiles on this node, so that a Pod patched to use a
//! Localhost profile finds it wherever it lands.
//!
//! A ContainerProfile labelled `syscensus.io/approved=true` is rendered
//! exactly as `syscensus export` renders it, and written to
//! `<kubelet-root>/seccomp/syscensus/<namespace>/<kind>-<workload>/<container>.json`
//! (the kubelet's seccomp directory; `localhostProfile` paths are relative to
//! it): atomically (a temporary file, synced, renamed, the directory
//! synced), only when its bytes change. A profile that is deleted or no
//! longer approved is removed. Each node reports what it installed in the
//! ContainerProfile's `status.installed`, its own entry under its own field
//! manager.
//!
//! Paths are built only from validated Kubernetes names (see
//! `localhost::profile_path`), and checked to stay inside the directory.
use std::{
    collections::{BTreeMap, BTreeSet},
    fs,
    path::{Component, Path, PathBuf},
    sync::Arc,
};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::{
    Api, Client, ResourceExt as _,
    api::{Patch, PatchParams},
    runtime::{reflector, watcher},
};
use serde_json::json;
use sha2::{Digest as _, Sha256};
use syscensus_api::{ContainerProfile, ContainerProfileSpec, labels};
use tracing::{info, warn};

use super::watch::{is_ready, watched};
use crate::{
    daemon::machine::{
        Installation,
        events::{Kind, Regarding},
    },
    localhost::{self, LOCALHOST_DIR},
    output::write_atomic,
};

/// A profile could not be installed.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error("refusing to install ContainerProfile {namespace}/{name}: {reason}")]
    Refused {
        namespace: String,
        name: String,
        reason: String,
    },
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The file that lists what the installer wrote, so that it removes only
/// its own files.
const MANIFEST: &str = ".syscensus-installed";

/// What one file should hold.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Wanted {
    bytes: String,
    sha256: String,
    /// The ContainerProfiles (namespace, name) it comes from.
    from: BTreeSet<(String, String)>,
}

/// This node's entry in a ContainerProfile's status.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Entry {
    /// `status.installed`: the `localhostProfile` path and the file's sha256.
    Installed { path: String, sha256: String },
    /// `status.refused`: why the spec cannot be installed.
    Refused { reason: String },
}

/// Installs approved profiles under `<kubelet-root>/seccomp/syscensus`.
pub struct Installer {
    client: Client,
    node: String,
    dir: PathBuf,
    approved: reflector::Store<ContainerProfile>,
    /// Installed files (relative path → sha256), as last written.
    installed: BTreeMap<PathBuf, String>,
    /// Status entries written, per ContainerProfile.
    reported: BTreeMap<(String, String), Entry>,
    /// Approved ContainerProfiles refused at the last sync, and why.
    refused: BTreeMap<(String, String), String>,
}

impl std::fmt::Debug for Installer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Installer")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Whether `relative` is a plain relative path (no `..`, no root).
fn is_plain_relative(relative: &Path) -> bool {
    relative
        .components()
        .all(|c| matches!(c, Component::Normal(_)))
}

impl Installer {
    /// Starts watching approved ContainerProfiles. `kubelet_root` is the
    /// kubelet's root directory (`/var/lib/kubelet`).
    pub fn start(
        client: Client,
        node: String,
        kubelet_root: &Path,
    ) -> Result<Installer, InstallError> {
        let dir = kubelet_root.join("seccomp").join(LOCALHOST_DIR);
        fs::create_dir_all(&dir).map_err(|source| InstallError::Io {
            action: "create",
            path: dir.clone(),
            source,
        })?;
        let approved = watched(
            Api::<ContainerProfile>::all(client.clone()),
            watcher::Config::default().labels(&format!("{}=true", labels::APPROVED)),
            "approved ContainerProfiles",
        );
        let mut installer = Installer {
            client,
            node,
            dir,
            approved,
            installed: BTreeMap::new(),
            reported: BTreeMap::new(),
            refused: BTreeMap::new(),
        };
        installer.recover();
        Ok(installer)
    }

    /// Reads what an earlier run installed, and removes temporary files a
    /// crash left behind (never a partial profile: profiles are renamed into
    /// place whole).
    fn recover(&mut self) {
        if let Ok(text) = fs::read_to_string(self.dir.join(MANIFEST)) {
            for line in text.lines() {
                let relative = PathBuf::from(line);
                if !is_plain_relative(&relative) {
                    continue;
                }
                if let Ok(bytes) = fs::read(self.dir.join(&relative)) {
                    self.installed.insert(relative, sha256_hex(&bytes));
                }
            }
        }
        remove_temporaries(&self.dir);
    }

    /// Brings the directory in line with the approved profiles, and reports
    /// it. Waits for the first list of approved profiles. Returns what it
    /// installed (new bytes) and refused (a new reason), for the Events.
    pub async fn sync(&mut self) -> Vec<Installation> {
        if !is_ready(&self.approved) {
            return Vec::new();
        }
        let profiles = self.approved.state();
        let (wanted, mut installations) = self.wanted(&profiles);
        for (relative, want) in &wanted {
            if self.installed.get(relative) == Some(&want.sha256) {
                continue;
            }
            let path = self.dir.join(relative);
            let written = path
                .parent()
                .map_or(Ok(()), fs::create_dir_all)
                .and_then(|()| write_atomic(&path, want.bytes.as_bytes()));
            match written {
                Ok(()) => {
                    info!(profile = %relative.display(), sha256 = %want.sha256, "profile installed");
                    self.installed.insert(relative.clone(), want.sha256.clone());
                    let path = format!("{LOCALHOST_DIR}/{}", relative.display());
                    installations.extend(want.from.iter().map(|(namespace, name)| {
                        Installation::Installed {
                            profile: regarding(&profiles, namespace, name),
                            path: path.clone(),
                        }
                    }));
                }
                Err(error) => warn!(profile = %path.display(), %error, "cannot install a profile"),
            }
        }
        let stale: Vec<PathBuf> = self
            .installed
            .keys()
            .filter(|p| !wanted.contains_key(*p))
            .cloned()
            .collect();
        for relative in stale {
            let path = self.dir.join(&relative);
            match fs::remove_file(&path) {
                Ok(()) => info!(profile = %relative.display(), "profile removed"),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(error) => {
                    warn!(profile = %path.display(), %error, "cannot remove a profile");
                    continue;
                }
            }
            self.installed.remove(&relative);
            remove_empty_parents(&self.dir, &relative);
        }
        let manifest: String = self
            .installed
            .keys()
            .map(|p| format!("{}\n", p.display()))
            .collect();
        if let Err(error) = write_atomic(&self.dir.join(MANIFEST), manifest.as_bytes()) {
            warn!(%error, "cannot write the list of installed profiles");
        }
        self.report(&wanted).await;
        installations
    }

    /// The files the approved profiles call for; several profiles of the
    /// same workload container (from different recordings) merge into one.
    /// Also the refusals to tell of: those with a reason this node has not
    /// given yet (at this run, or before a restart in the status).
    fn wanted(
        &mut self,
        profiles: &[Arc<ContainerProfile>],
    ) -> (BTreeMap<PathBuf, Wanted>, Vec<Installation>) {
        let mut specs: BTreeMap<PathBuf, (ContainerProfileSpec, BTreeSet<(String, String)>)> =
            BTreeMap::new();
        let mut refusals = Vec::new();
        let before = std::mem::take(&mut self.refused);
        for profile in profiles {
            let namespace = profile.namespace().unwrap_or_default();
            let name = profile.name_any();
            let checked = localhost::check(&profile.spec).and_then(|()| {
                localhost::spec_profile_path(&namespace, &profile.spec).map_err(|e| e.to_string())
            });
            let relative = match checked {
                Ok(p) if is_plain_relative(&p) => p,
                result => {
                    let reason = match result {
                        Err(error) => error,
                        Ok(p) => format!("{} is not a plain relative path", p.display()),
                    };
                    let key = (namespace.clone(), name.clone());
                    // Logged once, and again when the reason changes.
                    if before.get(&key) != Some(&reason) {
                        let refusal = InstallError::Refused {
                            namespace: namespace.clone(),
                            name: name.clone(),
                            reason: reason.clone(),
                        };
                        warn!(%refusal, "profile not installed");
                        if !refused_before(profile, &self.node, &reason) {
                            refusals.push(Installation::Refused {
                                profile: regarding(profiles, &namespace, &name),
                                reason: reason.clone(),
                            });
                        }
                    }
                    self.refused.insert(key, reason);
                    continue;
                }
            };
            match specs.get_mut(&relative) {
                Some((spec, from)) => {
                    localhost::merge(spec, &profile.spec);
                    from.insert((namespace, name));
                }
                None => {
                    specs.insert(relative, (profile.spec.clone(), [(namespace, name)].into()));
                }
            }
        }
        let wanted = specs
            .into_iter()
            .map(|(relative, (spec, from))| {
                let bytes = localhost::render(&spec);
                let sha256 = sha256_hex(bytes.as_bytes());
                (
                    relative,
                    Wanted {
                        bytes,
                        sha256,
                        from,
                    },
                )
            })
            .collect();
        (wanted, refusals)
    }

    /// Writes this node's entry of each approved profile's
    /// `status.installed` or `status.refused` (and takes it away where it no
    /// longer applies).
    async fn report(&mut self, wanted: &BTreeMap<PathBuf, Wanted>) {
        let mut now: BTreeMap<(String, String), Option<Entry>> = BTreeMap::new();
        for (relative, want) in wanted {
            if self.installed.get(relative) != Some(&want.sha256) {
                continue;
            }
            let path = format!("{LOCALHOST_DIR}/{}", relative.display());
            for key in &want.from {
                let entry = Entry::Installed {
                    path: path.clone(),
                    sha256: want.sha256.clone(),
                };
                now.insert(key.clone(), Some(entry));
            }
        }
        for (key, reason) in &self.refused {
            let reason = reason.clone();
            now.insert(key.clone(), Some(Entry::Refused { reason }));
        }
        for key in self.reported.keys() {
            now.entry(key.clone()).or_insert(None);
        }
        let manager = format!("syscensus-node-{}", self.node);
        for ((namespace, name), entry) in now {
            let key = (namespace.clone(), name.clone());
            if self.reported.get(&key) == entry.as_ref() {
                continue;
            }
            // This node's manager owns only its own entries: an empty list
            // takes its entry away and leaves the other nodes' alone.
            let time = Time(jiff::Timestamp::now());
            let (installed, refused) = match &entry {
                Some(Entry::Installed { path, sha256 }) => (
                    json!([{"node": self.node, "path": path, "sha256": sha256, "time": time}]),
                    json!([]),
                ),
                Some(Entry::Refused { reason }) => (
                    json!([]),
                    json!([{"node": self.node, "reason": reason, "time": time}]),
                ),
                None => (json!([]), json!([])),
            };
            let patch = json!({
                "apiVersion": "syscensus.io/v1alpha1",
                "kind": "ContainerProfile",
                "metadata": {"name": name, "namespace": namespace},
                "status": {"installed": installed, "refused": refused},
            });
            let api: Api<ContainerProfile> = Api::namespaced(self.client.clone(), &namespace);
            match api
                .patch_status(
                    &name,
                    &PatchParams::apply(&manager).force(),
                    &Patch::Apply(&patch),
                )
                .await
            {
                Ok(_) => match entry {
                    Some(entry) => {
                        self.reported.insert(key, entry);
                    }
                    None => {
                        self.reported.remove(&key);
                    }
                },
                // Deleted meanwhile: nothing to report on.
                Err(kube::Error::Api(status)) if status.code == 404 => {
                    self.reported.remove(&key);
                }
                Err(error) => {
                    warn!(%error, profile = %name, "cannot report on a profile; will retry")
                }
            }
        }
    }

    /// Where profiles are installed.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// The ContainerProfile (namespace, name) as an Event's object.
fn regarding(profiles: &[Arc<ContainerProfile>], namespace: &str, name: &str) -> Regarding {
    let uid = profiles
        .iter()
        .find(|p| p.namespace().as_deref() == Some(namespace) && p.name_any() == name)
        .and_then(|p| p.uid());
    Regarding {
        kind: Kind::ContainerProfile,
        namespace: namespace.to_owned(),
        name: name.to_owned(),
        uid,
    }
}

/// Whether `node` already said, in the profile's status, that it refuses
/// it for `reason` (before a restart).
fn refused_before(profile: &ContainerProfile, node: &str, reason: &str) -> bool {
    profile.status.as_ref().is_some_and(|status| {
        status
            .refused
            .iter()
            .any(|r| r.node == node && r.reason == reason)
    })
}

/// Removes `.*.tmp*` files (interrupted atomic writes) below `dir`.
fn remove_temporaries(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if path.is_dir() {
            remove_temporaries(&path);
        } else if name.starts_with('.') && name.contains(".tmp") {
            let _ = fs::remove_file(&path);
        }
    }
}

/// Removes the empty directories between `relative`'s file and `dir`.
fn remove_empty_parents(dir: &Path, relative: &Path) {
    let mut parent = relative.parent();
    while let Some(p) = parent.filter(|p| !p.as_os_str().is_empty()) {
        if fs::remove_dir(dir.join(p)).is_err() {
            break;
        }
        parent = p.parent();
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    #[test]
    fn a_refusal_in_the_status_is_not_told_again() {
        let mut profile: ContainerProfile = serde_json::from_value(serde_json::json!({
            "apiVersion": "syscensus.io/v1alpha1",
            "kind": "ContainerProfile",
            "metadata": {"name": "rec.deployment.web.app", "namespace": "shop", "uid": "u-1"},
            "spec": {
                "recording": "rec", "workload": {"kind": "Deployment", "name": "web"},
                "container": "app", "syscalls": {}, "syscallCount": 0, "firstSeen": "2026-01-01T00:00:00Z",
                "lastSeen": "2026-01-01T00:00:00Z"
            },
            "status": {"refused": [{"node": "node-a", "reason": "unknown syscall frob", "time": "2026-01-01T00:00:00Z"}]}
        }))
        .unwrap();
        assert!(refused_before(&profile, "node-a", "unknown syscall frob"));
        assert!(!refused_before(&profile, "node-b", "unknown syscall frob"));
        assert!(!refused_before(&profile, "node-a", "another reason"));
        profile.status = None;
        assert!(!refused_before(&profile, "node-a", "unknown syscall frob"));
        let profiles = vec![Arc::new(profile)];
        assert_eq!(
            regarding(&profiles, "shop", "rec.deployment.web.app")
                .uid
                .as_deref(),
            Some("u-1")
        );
        assert_eq!(regarding(&profiles, "shop", "other").uid, None);
    }

    #[test]
    fn only_plain_relative_paths() {
        assert!(is_plain_relative(Path::new("ns/deployment-web/app.json")));
        for bad in ["/etc/passwd", "../x", "a/../../b", "./x"] {
            assert!(!is_plain_relative(Path::new(bad)), "{bad}");
        }
    }

    #[test]
    fn interrupted_writes_are_cleaned_and_empty_dirs_removed() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("ns/deployment-web")).unwrap();
        fs::write(
            dir.path().join("ns/deployment-web/.app.json.tmp42"),
            b"{\"def",
        )
        .unwrap();
        fs::write(dir.path().join("ns/deployment-web/app.json"), b"{}").unwrap();
        remove_temporaries(dir.path());
        assert!(
            !dir.path()
                .join("ns/deployment-web/.app.json.tmp42")
                .exists()
        );
        assert!(dir.path().join("ns/deployment-web/app.json").exists());
        fs::remove_file(dir.path().join("ns/deployment-web/app.json")).unwrap();
        remove_empty_parents(dir.path(), Path::new("ns/deployment-web/app.json"));
        assert!(!dir.path().join("ns").exists());
        assert!(dir.path().exists());
    }
}
