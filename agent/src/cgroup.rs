//! cgroup v2: finding the hierarchy, a process's place in it, and cgroups
//! of our own for the commands we record.
//!
//! A cgroup's id, as `bpf_get_current_cgroup_id()` returns it, is the inode
//! number of its directory in the cgroup2 filesystem.
use std::{
    fs,
    io::{self, Write as _},
    os::unix::fs::MetadataExt as _,
    path::{Path, PathBuf},
};

use tracing::{debug, warn};

/// A cgroup operation failed.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "no cgroup v2 hierarchy is mounted: mount one (mount -t cgroup2 none /sys/fs/cgroup/unified) or boot with systemd.unified_cgroup_hierarchy=1"
    )]
    NoCgroup2,
    #[error(
        "{} is not a cgroup v2 mount and holds none below it: name the host's cgroup v2 hierarchy (or the directory it is mounted below, such as the host's /sys/fs/cgroup) with --cgroup-mount",
        path.display()
    )]
    NotCgroup2Mount { path: PathBuf },
    #[error(
        "this process is in no cgroup v2 (no 0:: line in /proc/self/cgroup): is cgroup2 mounted?"
    )]
    NotInCgroup2,
    #[error("cannot create cgroup {}: {source}", path.display())]
    Create {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot move a process into cgroup {}: {source}", path.display())]
    Attach {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

fn read(path: &Path) -> Result<String, CgroupError> {
    fs::read_to_string(path).map_err(|source| CgroupError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// Undoes the escaping of spaces, tabs, newlines and backslashes in
/// /proc/*/mountinfo fields (`\040` and friends).
fn unescape_octal(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && i + 3 < bytes.len()
            && bytes[i + 1..i + 4]
                .iter()
                .all(|b| (b'0'..=b'7').contains(b))
                // The kernel writes at most \377; anything above is text.
                && bytes[i + 1] <= b'3'
        {
            let value =
                (bytes[i + 1] - b'0') * 64 + (bytes[i + 2] - b'0') * 8 + (bytes[i + 3] - b'0');
            out.push(value);
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The mount point of the first cgroup2 filesystem in a mountinfo text
/// (proc(5)): `36 35 98:0 / /mnt rw - cgroup2 none rw`.
pub fn cgroup2_mount_in(mountinfo: &str) -> Option<PathBuf> {
    mountinfo.lines().find_map(|line| {
        let (left, right) = line.split_once(" - ")?;
        // Fields are separated by single spaces; the kernel escapes the
        // spaces, tabs, newlines and backslashes inside them, and nothing
        // else (so a mount point may hold any other whitespace).
        let fstype = right.split(' ').next()?;
        let mut fields = left.split(' ');
        let root = fields.nth(3)?;
        let mount_point = fields.next()?;
        // A bind mount of a sub-tree would give wrong paths: only take the
        // hierarchy's root.
        (fstype == "cgroup2" && root == "/").then(|| PathBuf::from(unescape_octal(mount_point)))
    })
}

/// The mount point of the first cgroup2 filesystem at or below `dir` in a
/// mountinfo text, with the hierarchy's root mounted there. A node's
/// /sys/fs/cgroup mounted into a container holds the v2 hierarchy itself on
/// a unified host, and at `unified/` below it on a hybrid one.
pub fn cgroup2_mount_below(mountinfo: &str, dir: &Path) -> Option<PathBuf> {
    mountinfo.lines().find_map(|line| {
        let mount = cgroup2_mount_in(line)?;
        mount.starts_with(dir).then_some(mount)
    })
}

/// The cgroup v2 path of a process from its /proc/PID/cgroup text (the
/// `0::/path` line).
pub fn cgroup2_path_in(proc_cgroup: &str) -> Option<String> {
    proc_cgroup
        .lines()
        .find_map(|line| line.strip_prefix("0::"))
        .map(|path| path.trim_end_matches(" (deleted)").to_owned())
}

/// The mounted cgroup v2 hierarchy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hierarchy {
    mount: PathBuf,
}

impl Hierarchy {
    /// Finds the cgroup2 mount of this mount namespace.
    pub fn find() -> Result<Hierarchy, CgroupError> {
        let mountinfo = read(Path::new("/proc/self/mountinfo"))?;
        let mount = cgroup2_mount_in(&mountinfo).ok_or(CgroupError::NoCgroup2)?;
        Ok(Hierarchy { mount })
    }

    /// The hierarchy mounted at `dir`, or, when `dir` is not a cgroup v2
    /// mount, the first one mounted below it (the node's /sys/fs/cgroup
    /// mounted into the agent's container, on a hybrid host where cgroup v2
    /// is at /sys/fs/cgroup/unified).
    pub fn at_or_below(dir: &Path) -> Result<Hierarchy, CgroupError> {
        if dir.join("cgroup.controllers").exists() {
            return Ok(Hierarchy::at(dir));
        }
        let mountinfo = read(Path::new("/proc/self/mountinfo"))?;
        cgroup2_mount_below(&mountinfo, dir)
            .filter(|mount| mount.join("cgroup.controllers").exists())
            .map(Hierarchy::at)
            .ok_or_else(|| CgroupError::NotCgroup2Mount {
                path: dir.to_path_buf(),
            })
    }

    /// A hierarchy mounted at `mount` (for tests and unusual layouts).
    pub fn at(mount: impl Into<PathBuf>) -> Hierarchy {
        Hierarchy {
            mount: mount.into(),
        }
    }

    /// Where the hierarchy is mounted.
    pub fn mount(&self) -> &Path {
        &self.mount
    }

    /// The directory of the cgroup at `path` (`/a/b`, as in /proc/PID/cgroup).
    pub fn dir(&self, path: &str) -> PathBuf {
        self.mount.join(path.trim_start_matches('/'))
    }

    /// The cgroup v2 path of this process.
    pub fn own_path(&self) -> Result<String, CgroupError> {
        let text = read(Path::new("/proc/self/cgroup"))?;
        cgroup2_path_in(&text).ok_or(CgroupError::NotInCgroup2)
    }

    /// Whether the cgroup at `path` has processes (its `cgroup.events`
    /// says `populated 1`); `None` when it is gone or unreadable.
    pub fn is_populated(&self, path: &str) -> Option<bool> {
        let text = fs::read_to_string(self.dir(path).join("cgroup.events")).ok()?;
        text.lines()
            .find_map(|l| l.strip_prefix("populated "))
            .map(|v| v.trim() == "1")
    }

    /// The processes in the cgroup at `path`, lowest PID (the oldest,
    /// usually a container's first process) first; none when it is gone.
    pub fn processes(&self, path: &str) -> Vec<u32> {
        let mut pids: Vec<u32> = fs::read_to_string(self.dir(path).join("cgroup.procs"))
            .map(|t| t.lines().filter_map(|l| l.trim().parse().ok()).collect())
            .unwrap_or_default();
        pids.sort_unstable();
        pids
    }

    /// Every cgroup below the one at `path` (not itself), however deep, as
    /// (path, cgroup id); none when it is missing.
    pub fn descendants(&self, path: &str) -> Vec<(String, u64)> {
        let mut out = Vec::new();
        walk(&self.dir(path), path, &mut out);
        out
    }

    /// The cgroup id of the cgroup at `path` (its directory's inode), if it
    /// exists.
    pub fn id_of(&self, path: &str) -> Option<u64> {
        fs::metadata(self.dir(path)).ok().map(|m| m.ino())
    }

    /// Creates a new cgroup below this process's own, named `name`, for a
    /// command to be recorded in.
    pub fn create_child_of_own(&self, name: &str) -> Result<OwnedCgroup, CgroupError> {
        let parent = self.dir(&self.own_path()?);
        let path = parent.join(name);
        fs::create_dir(&path).map_err(|source| CgroupError::Create {
            path: path.clone(),
            source,
        })?;
        let id = match fs::metadata(&path) {
            Ok(meta) => meta.ino(),
            Err(source) => {
                let _ = fs::remove_dir(&path);
                return Err(CgroupError::Read { path, source });
            }
        };
        debug!(path = %path.display(), id, "cgroup created");
        Ok(OwnedCgroup { path, parent, id })
    }
}

/// Every cgroup below `dir` (whose path is `path`), with its id.
fn walk(dir: &Path, path: &str, out: &mut Vec<(String, u64)>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let Ok(meta) = entry.metadata() else {
            continue;
        };
        if !meta.is_dir() {
            continue;
        }
        let name = entry.file_name().to_string_lossy().into_owned();
        let child = format!("{}/{name}", path.trim_end_matches('/'));
        out.push((child.clone(), meta.ino()));
        walk(&entry.path(), &child, out);
    }
}

/// A cgroup created by syscensus; removed on drop. Processes still in it are
/// moved back to the parent first, so that nothing is left behind.
#[derive(Debug)]
pub struct OwnedCgroup {
    path: PathBuf,
    parent: PathBuf,
    id: u64,
}

impl OwnedCgroup {
    /// The cgroup id (`bpf_get_current_cgroup_id()` inside it).
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The cgroup's directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The `cgroup.procs` file: writing a PID (or `0` for the writer) moves
    /// that process in.
    pub fn procs_file(&self) -> PathBuf {
        self.path.join("cgroup.procs")
    }

    /// PIDs of the processes in the cgroup.
    pub fn pids(&self) -> Result<Vec<i32>, CgroupError> {
        let text = read(&self.procs_file())?;
        Ok(text.lines().filter_map(|l| l.trim().parse().ok()).collect())
    }

    fn evacuate(&self) -> Result<usize, CgroupError> {
        let pids = self.pids()?;
        let target = self.parent.join("cgroup.procs");
        for pid in &pids {
            let moved = fs::OpenOptions::new()
                .write(true)
                .open(&target)
                .and_then(|mut f| f.write_all(format!("{pid}\n").as_bytes()));
            match moved {
                Ok(()) => {}
                // The process exited meanwhile.
                Err(e) if e.raw_os_error() == Some(libc::ESRCH) => {}
                Err(source) => {
                    return Err(CgroupError::Attach {
                        path: self.parent.clone(),
                        source,
                    });
                }
            }
        }
        Ok(pids.len())
    }
}

impl Drop for OwnedCgroup {
    fn drop(&mut self) {
        match self.evacuate() {
            Ok(0) => {}
            Ok(n) => warn!(
                cgroup = %self.path.display(),
                processes = n,
                "processes outlived the recorded command; moved to the parent cgroup, they keep running"
            ),
            Err(e) => warn!(error = %e, "cannot empty the recording cgroup"),
        }
        // rmdir fails with EBUSY for a moment while an exiting process is
        // still being torn down.
        for _ in 0..100 {
            match fs::remove_dir(&self.path) {
                Ok(()) => return,
                Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                    std::thread::sleep(std::time::Duration::from_millis(5));
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => return,
                Err(e) => {
                    warn!(cgroup = %self.path.display(), error = %e, "cannot remove cgroup");
                    return;
                }
            }
        }
        warn!(cgroup = %self.path.display(), "cannot remove cgroup: still busy");
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    const HYBRID: &str = "\
25 1 0:23 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
30 25 0:26 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
31 30 0:27 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
40 30 0:36 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";

    #[test]
    fn finds_cgroup2_in_a_hybrid_layout() {
        assert_eq!(
            cgroup2_mount_in(HYBRID),
            Some(PathBuf::from("/sys/fs/cgroup/unified"))
        );
    }

    #[test]
    fn finds_unified_layout_and_unescapes() {
        let text = "29 23 0:26 / /sys/fs/cgroup rw shared:4 - cgroup2 cgroup2 rw,nsdelegate\n\
                    50 29 0:26 /sub /mnt/with\\040space rw - cgroup2 cgroup2 rw\n";
        assert_eq!(
            cgroup2_mount_in(text),
            Some(PathBuf::from("/sys/fs/cgroup"))
        );
        let only_sub = "50 29 0:26 / /mnt/with\\040space rw - cgroup2 cgroup2 rw\n";
        assert_eq!(
            cgroup2_mount_in(only_sub),
            Some(PathBuf::from("/mnt/with space"))
        );
    }

    #[test]
    fn no_cgroup2_means_none() {
        assert_eq!(
            cgroup2_mount_in("31 30 0:27 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu\n"),
            None
        );
        assert_eq!(cgroup2_mount_in(""), None);
        assert_eq!(cgroup2_mount_in("garbage without separator\n- \n"), None);
    }

    #[test]
    fn finds_cgroup2_below_a_mounted_directory() {
        // The node's /sys/fs/cgroup mounted at /host/cgroup in a container:
        // hybrid, cgroup2 at unified/ below it.
        let container = "\
700 650 0:26 / /host/cgroup ro,relatime - tmpfs tmpfs ro,mode=755
701 700 0:27 / /host/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
702 700 0:36 / /host/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
703 650 0:36 /kubepods/x /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw
";
        assert_eq!(
            cgroup2_mount_below(container, Path::new("/host/cgroup")),
            Some(PathBuf::from("/host/cgroup/unified"))
        );
        assert_eq!(
            cgroup2_mount_below(container, Path::new("/host/cgroup/unified")),
            Some(PathBuf::from("/host/cgroup/unified"))
        );
        // Components, not string prefixes; and a sub-tree bind is no
        // hierarchy.
        assert_eq!(cgroup2_mount_below(container, Path::new("/host/cg")), None);
        assert_eq!(
            cgroup2_mount_below(container, Path::new("/sys/fs/cgroup")),
            None
        );
        assert_eq!(
            cgroup2_mount_below(HYBRID, Path::new("/sys/fs/cgroup")),
            Some(PathBuf::from("/sys/fs/cgroup/unified"))
        );
    }

    /// On this machine (hybrid) /sys/fs/cgroup is no cgroup v2 mount, and the
    /// hierarchy is found below it; a directory with none is refused.
    #[test]
    fn at_or_below_this_machine() {
        let mountinfo = fs::read_to_string("/proc/self/mountinfo").unwrap();
        let mount = cgroup2_mount_in(&mountinfo).unwrap();
        let parent = mount.parent().unwrap();
        let found = Hierarchy::at_or_below(parent).unwrap();
        assert!(found.mount().join("cgroup.controllers").exists());
        assert_eq!(Hierarchy::at_or_below(&mount).unwrap().mount(), mount);
        let empty = std::env::temp_dir();
        let error = Hierarchy::at_or_below(&empty).unwrap_err();
        assert!(
            matches!(error, CgroupError::NotCgroup2Mount { .. }),
            "{error}"
        );
    }

    #[test]
    fn reads_the_v2_line_of_proc_cgroup() {
        let text =
            "12:pids:/user.slice\n1:name=systemd:/user.slice/x\n0::/user.slice/session-1.scope\n";
        assert_eq!(
            cgroup2_path_in(text).as_deref(),
            Some("/user.slice/session-1.scope")
        );
        assert_eq!(
            cgroup2_path_in("0::/gone (deleted)\n").as_deref(),
            Some("/gone")
        );
        assert_eq!(cgroup2_path_in("3:cpu:/\n"), None);
    }

    #[test]
    fn reads_cgroupfs_below_a_mount() {
        let dir = tempfile::tempdir().unwrap();
        let hierarchy = Hierarchy::at(dir.path());
        let pod = dir.path().join("kubepods/pod1");
        fs::create_dir_all(pod.join("c1/sub")).unwrap();
        fs::write(pod.join("c1/cgroup.events"), "populated 1\nfrozen 0\n").unwrap();
        fs::write(pod.join("c1/cgroup.procs"), "42\n7\n").unwrap();
        assert_eq!(hierarchy.is_populated("/kubepods/pod1/c1"), Some(true));
        assert_eq!(hierarchy.is_populated("/kubepods/gone"), None);
        assert_eq!(hierarchy.processes("/kubepods/pod1/c1"), [7, 42]);
        assert!(hierarchy.processes("/kubepods/gone").is_empty());
        let mut found: Vec<String> = hierarchy
            .descendants("/kubepods")
            .into_iter()
            .map(|(path, id)| {
                assert_eq!(hierarchy.id_of(&path), Some(id));
                path
            })
            .collect();
        found.sort();
        assert_eq!(
            found,
            [
                "/kubepods/pod1",
                "/kubepods/pod1/c1",
                "/kubepods/pod1/c1/sub"
            ]
        );
        assert!(hierarchy.descendants("/nowhere").is_empty());
    }

    /// The real files of this machine parse (no privileges needed).
    #[test]
    fn parses_this_machine() {
        let mountinfo = fs::read_to_string("/proc/self/mountinfo").unwrap();
        let mount = cgroup2_mount_in(&mountinfo).expect("this machine mounts cgroup2");
        assert!(mount.join("cgroup.controllers").exists());
        let own = cgroup2_path_in(&fs::read_to_string("/proc/self/cgroup").unwrap()).unwrap();
        assert!(Hierarchy::at(&mount).dir(&own).is_dir());
    }
}
