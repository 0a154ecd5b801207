//! A minimal root filesystem from busybox-static, in a temporary directory.

use std::{
    fs,
    os::unix::fs::{PermissionsExt, symlink},
    path::{Path, PathBuf},
    process::Command,
};

use tempfile::TempDir;

use crate::require_program;

/// A root filesystem: `/bin/busybox` with a symlink for each of its applets
/// in `/bin`, empty `/proc /dev /sys /tmp /etc /root` mount points, and
/// `/etc/passwd` and `/etc/group` naming root. Removed on drop.
#[derive(Debug)]
pub struct Rootfs {
    dir: TempDir,
}

impl Rootfs {
    /// Builds the busybox root filesystem.
    pub fn busybox() -> Self {
        let busybox = require_program("busybox", "busybox-static");
        let dir = tempfile::Builder::new()
            .prefix("syscensus-rootfs-")
            .tempdir()
            .unwrap_or_else(|e| panic!("failed to create a rootfs directory: {e}"));
        let root = dir.path();
        fs::set_permissions(root, fs::Permissions::from_mode(0o755))
            .unwrap_or_else(|e| panic!("failed to chmod the rootfs: {e}"));
        for d in ["bin", "proc", "dev", "sys", "tmp", "etc", "root"] {
            fs::create_dir(root.join(d))
                .unwrap_or_else(|e| panic!("failed to create /{d} in the rootfs: {e}"));
        }
        fs::set_permissions(root.join("tmp"), fs::Permissions::from_mode(0o1777))
            .unwrap_or_else(|e| panic!("failed to chmod /tmp in the rootfs: {e}"));
        fs::copy(&busybox, root.join("bin/busybox")).unwrap_or_else(|e| {
            panic!("failed to copy {} into the rootfs: {e}", busybox.display())
        });
        let list = Command::new(&busybox)
            .arg("--list")
            .output()
            .unwrap_or_else(|e| panic!("failed to run busybox --list: {e}"));
        assert!(list.status.success(), "busybox --list failed: {list:?}");
        for applet in String::from_utf8_lossy(&list.stdout).lines() {
            if applet != "busybox" && !applet.contains('/') {
                symlink("busybox", root.join("bin").join(applet))
                    .unwrap_or_else(|e| panic!("failed to link /bin/{applet}: {e}"));
            }
        }
        // Tests and the recorder's users rely on these applets.
        for applet in ["sh", "ls", "cat", "mkdir", "sleep", "echo", "true", "false"] {
            assert!(
                root.join("bin").join(applet).exists(),
                "{} has no `{applet}` applet",
                busybox.display()
            );
        }
        fs::write(root.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n")
            .unwrap_or_else(|e| panic!("failed to write /etc/passwd: {e}"));
        fs::write(root.join("etc/group"), "root:x:0:\n")
            .unwrap_or_else(|e| panic!("failed to write /etc/group: {e}"));
        Self { dir }
    }

    /// The directory, for `root.path` in a bundle.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Copies the (static) executable `src` to `dest` inside the rootfs,
    /// e.g. a program built with [`crate::program`] to `/bin/mkdir-test`,
    /// and returns the host path of the copy.
    pub fn add_program(&self, src: &Path, dest: &str) -> PathBuf {
        let target = self.path().join(dest.trim_start_matches('/'));
        if let Some(parent) = target.parent() {
            fs::create_dir_all(parent)
                .unwrap_or_else(|e| panic!("failed to create {}: {e}", parent.display()));
        }
        fs::copy(src, &target).unwrap_or_else(|e| {
            panic!(
                "failed to copy {} to {}: {e}",
                src.display(),
                target.display()
            )
        });
        fs::set_permissions(&target, fs::Permissions::from_mode(0o755))
            .unwrap_or_else(|e| panic!("failed to chmod {}: {e}", target.display()));
        target
    }
}
