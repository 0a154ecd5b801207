//! Installs the LocalhostProfiles on this node, so that a Pod patched to
//! use a Localhost profile finds it wherever it lands, and reports what the
//! node has in its own NodeProfileStatus.
//!
//! Each LocalhostProfile is checked (`localhost::object::check`: its path
//! is made again from its namespace, workload and container, which must be
//! valid names; its bytes must match its SHA-256 and parse as a profile)
//! and its bytes written, unchanged, to
//! `<kubelet-root>/seccomp/syscensus/<namespace>/<kind>-<workload>/<container>.json`
//! (the kubelet's seccomp directory; `localhostProfile` paths are relative
//! to it): atomically (a temporary file, synced, renamed, the directory
//! synced), only when its bytes change.
//!
//! A file whose object is deleted stays while anything may still start a
//! container with it: a Pod on this node that names it (the kubelet reads
//! the file again at each container start, restarts included), or the pod
//! template of the workload its path names (read when the file is about to
//! go, and again from time to time while it stays). It goes when nothing
//! does. A file whose object is refused keeps what was installed before.
//!
//! The node's NodeProfileStatus (named after the node, owned by its Node)
//! lists every file with its SHA-256, and the refusals; it is written only
//! when that changes, and nothing but `syscensus apply` reads it.
use std::{
    collections::BTreeMap,
    fs,
    path::{Component, Path, PathBuf},
    time::{Duration, Instant},
};

use k8s_openapi::{api::core::v1::Pod, apimachinery::pkg::apis::meta::v1::OwnerReference};
use kube::{
    Api, Client, ResourceExt as _,
    runtime::{reflector, watcher},
};
use serde_json::{Value, json};
use syscensus_api::LocalhostProfile;
use tracing::{info, warn};

use self::plan::{Template, Want};
use super::watch::{is_ready, watched};
use crate::daemon::machine::{
    Installation,
    events::{Kind, Regarding},
};
use crate::{
    localhost::{
        self, LOCALHOST_DIR, object,
        usage::{self, named_in_annotations, named_in_pod_spec},
    },
    output::write_atomic,
};

mod cluster;
mod plan;

/// A profile could not be installed.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
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

/// How long a file kept for a workload's template waits before the
/// template is read again; doubled each time up to [`TEMPLATE_RECHECK_MAX`],
/// so that a file kept for long costs the API server little.
const TEMPLATE_RECHECK: Duration = Duration::from_secs(30);
const TEMPLATE_RECHECK_MAX: Duration = Duration::from_secs(3600);

/// What was learnt of a workload's template, and when to ask again.
#[derive(Clone, Debug)]
struct Learnt {
    answer: Template,
    next: Instant,
    interval: Duration,
}

/// Installs LocalhostProfiles under `<kubelet-root>/seccomp/syscensus`.
pub struct Installer {
    client: Client,
    node: String,
    dir: PathBuf,
    objects: reflector::Store<LocalhostProfile>,
    pods: reflector::Store<Pod>,
    /// Installed files (relative path → sha256), as on disk.
    installed: BTreeMap<PathBuf, String>,
    /// What the templates said of files nothing else holds.
    templates: BTreeMap<PathBuf, Learnt>,
    /// Refusals logged (object → reason), to log each once.
    logged: BTreeMap<String, String>,
    /// The report last written (or found at start), without its time.
    reported: Option<Value>,
    /// Whether the node's NodeProfileStatus was read at start.
    read_back: bool,
    /// The Node, as the owner of the NodeProfileStatus.
    owner: Option<OwnerReference>,
    /// Report writes that failed.
    pub errors: u64,
    /// Refusals with a reason not given before (object, reason), for the
    /// Events.
    fresh: Vec<(String, String)>,
}

impl std::fmt::Debug for Installer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Installer")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

/// Whether `relative` is a plain relative path (no `..`, no root).
fn is_plain_relative(relative: &Path) -> bool {
    relative
        .components()
        .all(|c| matches!(c, Component::Normal(_)))
}

impl Installer {
    /// Starts watching the LocalhostProfiles. `kubelet_root` is the
    /// kubelet's root directory (`/var/lib/kubelet`); `pods` the watched
    /// Pods of this node.
    pub fn start(
        client: Client,
        node: String,
        kubelet_root: &Path,
        pods: reflector::Store<Pod>,
    ) -> Result<Installer, InstallError> {
        let dir = kubelet_root.join("seccomp").join(LOCALHOST_DIR);
        fs::create_dir_all(&dir).map_err(|source| InstallError::Io {
            action: "create",
            path: dir.clone(),
            source,
        })?;
        let objects = watched(
            Api::<LocalhostProfile>::all(client.clone()),
            watcher::Config::default(),
            "LocalhostProfiles",
        );
        let mut installer = Installer {
            client,
            node,
            dir,
            objects,
            pods,
            installed: BTreeMap::new(),
            templates: BTreeMap::new(),
            logged: BTreeMap::new(),
            reported: None,
            read_back: false,
            owner: None,
            errors: 0,
            fresh: Vec::new(),
        };
        installer.recover();
        Ok(installer)
    }

    /// Whether the first lists of LocalhostProfiles and Pods arrived.
    pub fn ready(&self) -> bool {
        is_ready(&self.objects) && is_ready(&self.pods)
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
                    self.installed
                        .insert(relative, localhost::sha256_hex(&bytes));
                }
            }
        }
        remove_temporaries(&self.dir);
    }

    /// Brings the directory in line with the LocalhostProfiles, and reports
    /// it. Waits for the first lists, so that nothing is removed for
    /// having not been seen yet.
    pub async fn sync(&mut self) -> Vec<Installation> {
        if !self.ready() {
            return Vec::new();
        }
        let mut installations = Vec::new();
        let (wanted, held, refused) = self.wanted();
        let pods = self.used_by_pods();
        let now = Instant::now();
        // Templates are read only for files that would otherwise go, and
        // read again once their answer is due.
        let candidates: Vec<PathBuf> = self
            .installed
            .keys()
            .filter(|p| {
                !wanted.contains_key(*p) && !held.contains_key(*p) && !pods.contains_key(*p)
            })
            .cloned()
            .collect();
        self.templates.retain(|p, _| candidates.contains(p));
        for path in candidates {
            let due = self.templates.get(&path).is_none_or(|l| l.next <= now);
            if due {
                let answer = self.template(&path).await;
                let interval = self.templates.get(&path).map_or(TEMPLATE_RECHECK, |l| {
                    (l.interval * 2).min(TEMPLATE_RECHECK_MAX)
                });
                self.templates.insert(
                    path,
                    Learnt {
                        answer,
                        next: now + interval,
                        interval,
                    },
                );
            }
        }
        let templates = self
            .templates
            .iter()
            .map(|(p, l)| (p.clone(), l.answer.clone()))
            .collect();
        let plan = plan::plan(&wanted, &self.installed, &held, &pods, &templates);
        let changed = !plan::changed(&plan).is_empty();
        for relative in &plan.write {
            let want = &wanted[relative];
            let path = self.dir.join(relative);
            let written = path
                .parent()
                .map_or(Ok(()), fs::create_dir_all)
                .and_then(|()| write_atomic(&path, want.bytes.as_bytes()));
            match written {
                Ok(()) => {
                    info!(profile = %relative.display(), sha256 = %want.sha256, from = %want.source, "profile installed");
                    self.installed.insert(relative.clone(), want.sha256.clone());
                    installations.push(Installation::Installed {
                        profile: self.regarding(&want.source),
                        path: plan::localhost_profile(relative),
                    });
                }
                Err(error) => warn!(profile = %path.display(), %error, "cannot install a profile"),
            }
        }
        for relative in &plan.remove {
            let path = self.dir.join(relative);
            match fs::remove_file(&path) {
                Ok(()) => info!(profile = %relative.display(), "profile removed: nothing uses it"),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(error) => {
                    warn!(profile = %path.display(), %error, "cannot remove a profile");
                    continue;
                }
            }
            self.installed.remove(relative);
            self.templates.remove(relative);
            remove_empty_parents(&self.dir, relative);
        }
        if changed {
            let manifest: String = self
                .installed
                .keys()
                .map(|p| format!("{}\n", p.display()))
                .collect();
            if let Err(error) = write_atomic(&self.dir.join(MANIFEST), manifest.as_bytes()) {
                warn!(%error, "cannot write the list of installed profiles");
            }
        }
        let (installed, refused_list) = plan::report(&self.installed, &plan.keep, &refused);
        let spec = json!({
            "node": self.node,
            "installedCount": installed.len(),
            "refusedCount": refused.len(),
            "installed": installed,
            "refused": refused_list,
        });
        self.report(spec).await;
        for (source, reason) in std::mem::take(&mut self.fresh) {
            installations.push(Installation::Refused {
                profile: self.regarding(&source),
                reason,
            });
        }
        installations
    }

    /// The LocalhostProfile `<namespace>/<name>`, as an Event names it.
    fn regarding(&self, source: &str) -> Regarding {
        let (namespace, name) = source.split_once('/').unwrap_or(("", source));
        let uid = self
            .objects
            .state()
            .iter()
            .find(|p| p.namespace().as_deref() == Some(namespace) && p.name_any() == name)
            .and_then(|p| p.uid());
        Regarding {
            kind: Kind::LocalhostProfile,
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            uid,
        }
    }

    /// The files the LocalhostProfiles ask for; the paths of refused
    /// objects (whose installed file stays); and the refusals.
    #[allow(
        clippy::type_complexity,
        reason = "three maps, each named in the doc comment"
    )]
    fn wanted(
        &mut self,
    ) -> (
        BTreeMap<PathBuf, Want>,
        BTreeMap<PathBuf, String>,
        BTreeMap<String, String>,
    ) {
        let mut wanted = BTreeMap::new();
        let mut held = BTreeMap::new();
        let mut refused = BTreeMap::new();
        for profile in self.objects.state() {
            let namespace = profile.namespace().unwrap_or_default();
            let name = profile.name_any();
            let source = format!("{namespace}/{name}");
            match object::check(&namespace, &name, &profile.spec) {
                Ok(relative) if is_plain_relative(&relative) => {
                    wanted.insert(
                        relative,
                        Want {
                            bytes: profile.spec.profile.clone(),
                            sha256: localhost::sha256_hex(profile.spec.profile.as_bytes()),
                            source,
                        },
                    );
                }
                result => {
                    let reason = match result {
                        Err(error) => error,
                        Ok(p) => format!("{} is not a plain relative path", p.display()),
                    };
                    if self.logged.get(&source) != Some(&reason) {
                        warn!(profile = %source, %reason, "refusing to install a LocalhostProfile");
                        self.logged.insert(source.clone(), reason.clone());
                        self.fresh.push((source.clone(), reason.clone()));
                    }
                    // What an earlier, valid version installed stays.
                    if let Ok(relative) = localhost::profile_path(
                        &namespace,
                        profile.spec.workload.kind,
                        &profile.spec.workload.name,
                        &profile.spec.container,
                    ) {
                        held.insert(relative, source.clone());
                    }
                    refused.insert(source, reason);
                }
            }
        }
        self.logged.retain(|k, _| refused.contains_key(k));
        (wanted, held, refused)
    }

    /// The syscensus profiles the node's Pods name (relative path → Pod),
    /// for Pods whose containers may still start (not Succeeded or Failed).
    fn used_by_pods(&self) -> BTreeMap<PathBuf, String> {
        let mut out = BTreeMap::new();
        for pod in self.pods.state() {
            let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
            if matches!(phase, Some("Succeeded" | "Failed")) {
                continue;
            }
            let who = format!("{}/{}", pod.namespace().unwrap_or_default(), pod.name_any());
            let mut named: Vec<String> = pod
                .spec
                .as_ref()
                .map(|s| named_in_pod_spec(s).into_keys().collect())
                .unwrap_or_default();
            named.extend(named_in_annotations(pod.annotations()));
            for path in named {
                if let Some(relative) = usage::syscensus_relative(&path) {
                    out.insert(PathBuf::from(relative), who.clone());
                }
            }
        }
        out
    }

    /// Where profiles are installed.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
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
mod tests;
