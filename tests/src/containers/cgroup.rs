//! Kubelet-shaped cgroup paths, and leases that remove the cgroup
//! directories a test created from every hierarchy.
//!
//! The machine has the hybrid layout: v1 controllers (and `name=systemd`)
//! under `/sys/fs/cgroup/<controller>`, cgroup2 at `/sys/fs/cgroup/unified`.
//! runc and crun create a container's path in each of them, with the parents
//! (`/kubepods`, the QoS class, the pod) that do not exist yet; deleting the
//! container removes only its own directory.

use std::{
    collections::BTreeMap,
    io::ErrorKind,
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
    sync::Mutex,
    time::{Duration, Instant},
};

use super::cleanup_failed;

/// How the kubelet names cgroups: its `--cgroup-driver`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CgroupStyle {
    /// `/kubepods/besteffort/pod<uid>/<id>`.
    Cgroupfs,
    /// `/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod<uid_>.slice/cri-containerd-<id>.scope`.
    /// Without systemd the cgroupfs driver of runc and crun takes this path
    /// literally, which is how tests exercise parsing of that layout.
    Systemd,
}

/// A pod's QoS class, which names the kubelet's middle cgroup level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Qos {
    /// Directly under `kubepods`.
    Guaranteed,
    /// Under `kubepods/burstable`.
    Burstable,
    /// Under `kubepods/besteffort`.
    BestEffort,
}

impl Qos {
    fn name(self) -> Option<&'static str> {
        match self {
            Self::Guaranteed => None,
            Self::Burstable => Some("burstable"),
            Self::BestEffort => Some("besteffort"),
        }
    }
}

/// The pod-level cgroup the kubelet makes for `pod_uid`.
pub fn pod_cgroup(style: CgroupStyle, qos: Qos, pod_uid: &str) -> String {
    match (style, qos.name()) {
        (CgroupStyle::Cgroupfs, None) => format!("/kubepods/pod{pod_uid}"),
        (CgroupStyle::Cgroupfs, Some(q)) => format!("/kubepods/{q}/pod{pod_uid}"),
        (CgroupStyle::Systemd, None) => {
            format!(
                "/kubepods.slice/kubepods-pod{}.slice",
                pod_uid.replace('-', "_")
            )
        }
        (CgroupStyle::Systemd, Some(q)) => format!(
            "/kubepods.slice/kubepods-{q}.slice/kubepods-{q}-pod{}.slice",
            pod_uid.replace('-', "_")
        ),
    }
}

/// The cgroup of container `id` in pod `pod_uid`, as containerd places it
/// under the kubelet's pod cgroup.
pub fn container_cgroup(style: CgroupStyle, qos: Qos, pod_uid: &str, id: &str) -> String {
    let pod = pod_cgroup(style, qos, pod_uid);
    match style {
        CgroupStyle::Cgroupfs => format!("{pod}/{id}"),
        CgroupStyle::Systemd => format!("{pod}/cri-containerd-{id}.scope"),
    }
}

/// The mount points of every cgroup hierarchy in this mount namespace: each
/// v1 hierarchy and the cgroup2 one.
pub fn hierarchies() -> Vec<PathBuf> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_else(|e| panic!("failed to read /proc/self/mountinfo: {e}"));
    mountinfo
        .lines()
        .filter_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            let fstype = right.split_whitespace().next()?;
            let fields: Vec<&str> = left.split_whitespace().collect();
            // Field 4 is the root of the mount within its file system: only
            // mounts of a hierarchy's root show the whole tree.
            let (root, mount_point) = (fields.get(3)?, fields.get(4)?);
            (matches!(fstype, "cgroup" | "cgroup2") && *root == "/")
                .then(|| PathBuf::from(mount_point))
        })
        .collect()
}

/// Where cgroup2 is mounted: `/sys/fs/cgroup/unified` on the hybrid layout,
/// `/sys/fs/cgroup` on a unified one.
pub fn unified_root() -> PathBuf {
    let unified = Path::new("/sys/fs/cgroup/unified");
    if unified.join("cgroup.controllers").exists() {
        unified.to_path_buf()
    } else {
        PathBuf::from("/sys/fs/cgroup")
    }
}

/// The id the kernel gives cgroup `path` (absolute, as in `cgroupsPath`):
/// the inode of its cgroup2 directory, which is what
/// `bpf_get_current_cgroup_id()` returns inside it. Only while it exists.
pub fn cgroup_id(path: &str) -> u64 {
    let dir = unified_root().join(path.trim_start_matches('/'));
    std::fs::metadata(&dir)
        .unwrap_or_else(|e| panic!("cgroup {} not found: {e}", dir.display()))
        .ino()
}

/// The cgroup2 path of process `pid` (the `0::` line of /proc/<pid>/cgroup).
pub fn process_cgroup(pid: u32) -> String {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
        .unwrap_or_else(|e| panic!("failed to read /proc/{pid}/cgroup: {e}"));
    text.lines()
        .find_map(|l| l.strip_prefix("0::"))
        .unwrap_or_else(|| panic!("no cgroup2 line in /proc/{pid}/cgroup:\n{text}"))
        .to_owned()
}

/// The directories of cgroup `path` that exist, in any hierarchy.
pub fn existing_dirs(path: &str) -> Vec<PathBuf> {
    hierarchies()
        .into_iter()
        .map(|h| h.join(path.trim_start_matches('/')))
        .filter(|d| d.is_dir())
        .collect()
}

/// Panics if cgroup `path` still exists in any hierarchy.
pub fn assert_gone(path: &str) {
    let left = existing_dirs(path);
    assert!(left.is_empty(), "cgroup {path} was left behind: {left:?}");
}

#[derive(Debug)]
struct Entry {
    leases: usize,
    /// The path did not exist in any hierarchy when first leased, so this
    /// process created it (through a runtime) and removes it.
    created: bool,
}

/// Every path leased in this process and each of its ancestors.
static LEASES: Mutex<BTreeMap<String, Entry>> = Mutex::new(BTreeMap::new());

/// A claim on a cgroup path (and its ancestors) that a runtime is about to
/// create. Take it before the runtime runs; dropping it after the container
/// is deleted removes every directory of the path, and of each ancestor that
/// did not exist when first leased and has no other lease in the process, in
/// every hierarchy. Removal takes only empty cgroups: cgroups that still hold
/// processes fail the cleanup.
#[derive(Debug)]
pub struct CgroupLease {
    path: String,
}

impl CgroupLease {
    /// Leases absolute cgroup `path`.
    pub fn acquire(path: &str) -> Self {
        assert!(
            path.starts_with('/'),
            "cgroup path {path:?} must be absolute"
        );
        let path = path.trim_end_matches('/').to_owned();
        let mut leases = LEASES.lock().unwrap_or_else(|e| e.into_inner());
        for p in ancestors(&path) {
            leases
                .entry(p.clone())
                .or_insert_with(|| Entry {
                    leases: 0,
                    created: existing_dirs(&p).is_empty(),
                })
                .leases += 1;
        }
        Self { path }
    }

    /// The leased path.
    pub fn path(&self) -> &str {
        &self.path
    }
}

impl Drop for CgroupLease {
    fn drop(&mut self) {
        let mut leases = LEASES.lock().unwrap_or_else(|e| e.into_inner());
        let mut failures = Vec::new();
        // Deepest first: a parent is empty only once its children are gone.
        for p in ancestors(&self.path).into_iter().rev() {
            let Some(entry) = leases.get_mut(&p) else {
                continue;
            };
            entry.leases -= 1;
            if entry.leases > 0 {
                continue;
            }
            let created = entry.created;
            leases.remove(&p);
            if created {
                for dir in existing_dirs(&p) {
                    remove_tree(&dir, &mut failures);
                }
            }
        }
        if !failures.is_empty() {
            cleanup_failed(&format!(
                "cgroup directories of {} could not be removed: {}",
                self.path,
                failures.join("; ")
            ));
        }
    }
}

/// `/a`, `/a/b`, `/a/b/c` for `/a/b/c`.
fn ancestors(path: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for part in path.split('/').filter(|p| !p.is_empty()) {
        current.push('/');
        current.push_str(part);
        out.push(current.clone());
    }
    out
}

/// Removes cgroup directory `dir` and the cgroups below it, deepest first.
/// A cgroup whose last process has just exited can refuse removal (EBUSY)
/// for a moment, so each removal is retried for up to two seconds.
fn remove_tree(dir: &Path, failures: &mut Vec<String>) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                remove_tree(&entry.path(), failures);
            }
        }
    }
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        match std::fs::remove_dir(dir) {
            Ok(()) => return,
            Err(e) if e.kind() == ErrorKind::NotFound => return,
            Err(e) if Instant::now() >= deadline => {
                let procs = std::fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
                failures.push(format!(
                    "{}: {e} (processes: {})",
                    dir.display(),
                    procs.split_whitespace().collect::<Vec<_>>().join(" ")
                ));
                return;
            }
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubelet_paths() {
        let uid = "0c4ba5a1-3c1d-4d1e-9f5e-2f7c8d9e0a1b";
        assert_eq!(
            container_cgroup(CgroupStyle::Cgroupfs, Qos::BestEffort, uid, "abc"),
            format!("/kubepods/besteffort/pod{uid}/abc")
        );
        assert_eq!(
            container_cgroup(CgroupStyle::Cgroupfs, Qos::Guaranteed, uid, "abc"),
            format!("/kubepods/pod{uid}/abc")
        );
        assert_eq!(
            container_cgroup(CgroupStyle::Systemd, Qos::Burstable, uid, "abc"),
            "/kubepods.slice/kubepods-burstable.slice/\
             kubepods-burstable-pod0c4ba5a1_3c1d_4d1e_9f5e_2f7c8d9e0a1b.slice/cri-containerd-abc.scope"
        );
        assert_eq!(ancestors("/a/b/"), ["/a", "/a/b"]);
    }
}
