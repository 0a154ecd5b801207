//! What crun needs on the hybrid cgroup layout.
//!
//! crun 1.8 refuses a hybrid layout whose cgroup2 hierarchy still has
//! controllers ("cgroups in hybrid mode not supported, drop all controllers
//! from cgroupv2"). On this machine only `hugetlb` is left there (every other
//! controller has a v1 mount). Mounting a v1 hierarchy for it anywhere moves
//! it off cgroup2; crun then runs, joining v1 controllers through
//! `/sys/fs/cgroup/<controller>` only, so nothing is created in the private
//! mount. Unmounting it gives the controller back to cgroup2, which the
//! kernel does asynchronously once the emptied hierarchy is destroyed.

use std::{
    ffi::CString,
    os::unix::ffi::OsStrExt,
    path::{Path, PathBuf},
    sync::Mutex,
    time::{Duration, Instant},
};

use super::{cgroup::unified_root, cleanup_failed, wait_for};

#[derive(Debug)]
struct State {
    users: usize,
    /// The directory holding this process's mounts, and the mount points.
    dir: Option<PathBuf>,
    mounts: Vec<PathBuf>,
}

static STATE: Mutex<State> = Mutex::new(State {
    users: 0,
    dir: None,
    mounts: Vec::new(),
});

/// Keeps cgroup2's controllers on v1 mounts while any guard in the process
/// lives; the last drop unmounts them and waits until cgroup2 has them back.
/// A no-op where cgroup2 has no controllers (already moved, or another
/// process did it) or where the layout is not hybrid. Hold one across a
/// test's crun runs: each mount and unmount cycle costs up to a second.
#[derive(Debug)]
pub struct CrunCgroups {
    _private: (),
}

impl CrunCgroups {
    /// Moves the controllers off cgroup2 unless a guard already did.
    pub fn acquire() -> Self {
        let mut state = STATE.lock().unwrap_or_else(|e| e.into_inner());
        if state.users == 0 {
            mount_controllers(&mut state);
        }
        state.users += 1;
        Self { _private: () }
    }
}

impl Drop for CrunCgroups {
    fn drop(&mut self) {
        let mut state = STATE.lock().unwrap_or_else(|e| e.into_inner());
        state.users -= 1;
        if state.users == 0 {
            unmount_controllers(&mut state);
        }
    }
}

/// The controllers cgroup2 holds, on the hybrid layout; none on a unified
/// one (crun handles that).
fn cgroup2_controllers() -> Vec<String> {
    let root = unified_root();
    if root == Path::new("/sys/fs/cgroup") {
        return Vec::new();
    }
    std::fs::read_to_string(root.join("cgroup.controllers"))
        .unwrap_or_else(|e| panic!("failed to read {}/cgroup.controllers: {e}", root.display()))
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

fn c_path(path: &Path) -> CString {
    CString::new(path.as_os_str().as_bytes())
        .unwrap_or_else(|_| panic!("NUL in {}", path.display()))
}

fn mount_controllers(state: &mut State) {
    let controllers = cgroup2_controllers();
    if controllers.is_empty() {
        return;
    }
    let dir = tempfile::Builder::new()
        .prefix("syscensus-crun-cgroups-")
        .tempdir()
        .unwrap_or_else(|e| panic!("failed to create a directory for cgroup v1 mounts: {e}"))
        .keep();
    for controller in &controllers {
        let target = dir.join(controller);
        std::fs::create_dir(&target)
            .unwrap_or_else(|e| panic!("failed to create {}: {e}", target.display()));
        let (source, fstype) = (c"none", c"cgroup");
        let options = CString::new(controller.as_str()).unwrap_or_default();
        let target_c = c_path(&target);
        // A hierarchy unmounted a moment ago may still be dying: EBUSY until
        // the kernel has destroyed it.
        wait_for(
            Duration::from_secs(5),
            &format!("mounting cgroup v1 {controller}"),
            || {
                // SAFETY: all pointers are NUL-terminated strings that outlive the call.
                let rc = unsafe {
                    libc::mount(
                        source.as_ptr(),
                        target_c.as_ptr(),
                        fstype.as_ptr(),
                        0,
                        options.as_ptr().cast(),
                    )
                };
                let err = std::io::Error::last_os_error();
                match rc {
                    0 => Some(()),
                    _ if err.raw_os_error() == Some(libc::EBUSY) => None,
                    _ => panic!(
                        "failed to mount -t cgroup -o {controller} none {}: {err}",
                        target.display()
                    ),
                }
            },
        );
        state.mounts.push(target);
    }
    state.dir = Some(dir);
    let left = cgroup2_controllers();
    assert!(
        left.is_empty(),
        "cgroup2 still holds {left:?} after mounting {controllers:?} as v1: crun will refuse the hybrid layout"
    );
}

fn unmount_controllers(state: &mut State) {
    let mut failures = Vec::new();
    let mut moved = Vec::new();
    for target in state.mounts.drain(..).rev() {
        // SAFETY: the path is a NUL-terminated string that outlives the call.
        if unsafe { libc::umount2(c_path(&target).as_ptr(), 0) } != 0 {
            failures.push(format!(
                "umount {}: {}",
                target.display(),
                std::io::Error::last_os_error()
            ));
        }
        let _ = std::fs::remove_dir(&target);
        moved.extend(target.file_name().map(|n| n.to_string_lossy().into_owned()));
    }
    if let Some(dir) = state.dir.take() {
        let _ = std::fs::remove_dir(&dir);
    }
    if failures.is_empty() {
        // The controllers return once the hierarchies are destroyed; a test
        // that checks the machine right after must see them back.
        let back = || {
            let now = cgroup2_controllers();
            moved.iter().all(|c| now.contains(c))
        };
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline && !back() {
            std::thread::sleep(Duration::from_millis(20));
        }
        if !back() {
            failures.push(format!("cgroup2 did not get {moved:?} back within 5 s"));
        }
    }
    if !failures.is_empty() {
        cleanup_failed(&failures.join("; "));
    }
}
