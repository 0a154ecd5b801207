//! Real containers for the root tests: busybox root filesystems, OCI bundles
//! run by runc or crun, and pods driven through containerd's CRI like a
//! kubelet drives them.
//!
//! Everything here panics with a message on failure and cleans up on drop:
//! containers are deleted, and the cgroup directories a test created are
//! removed from every hierarchy of the hybrid layout (see [`cgroup`]).
//! Tests run in parallel threads, so every container gets a fresh random id
//! and pod UID, and shared parents (`/kubepods`, `/kubepods/besteffort`) are
//! reference-counted within the process.
//!
//! - [`rootfs`]: a root filesystem from `/bin/busybox` plus extra binaries.
//! - [`bundle`]: an OCI bundle (`config.json`) shaped like `runc spec`'s.
//! - [`runtime`]: `runc`/`crun` runs, to completion or detached.
//! - [`crun`]: the cgroup2 controller move crun needs on this layout.
//! - [`image`]: OCI image tarballs (pause and busybox) for containerd.
//! - [`containerd`]: a private containerd with its CRI plugin.
//! - [`cri`]: a blocking CRI client: pods, containers, status, logs.

pub mod bundle;
pub mod cgroup;
pub mod containerd;
pub mod cri;
pub mod crun;
pub mod image;
pub mod rootfs;
pub mod runtime;

pub use bundle::{Bundle, Spec};
pub use cgroup::{CgroupLease, CgroupStyle, Qos};
pub use containerd::Containerd;
pub use cri::{ContainerSpec, CriContainer, Pod, PodSpec, Seccomp};
pub use crun::CrunCgroups;
pub use image::{BUSYBOX_IMAGE, ImageTar, PAUSE_IMAGE};
pub use rootfs::Rootfs;
pub use runtime::{Detached, Runtime, run};

use std::time::{Duration, Instant};

/// `bytes` random bytes from the kernel, as lowercase hex.
pub fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    let mut filled = 0;
    while filled < bytes {
        // SAFETY: the pointer and length describe the unfilled tail of `buf`.
        let n = unsafe { libc::getrandom(buf[filled..].as_mut_ptr().cast(), bytes - filled, 0) };
        assert!(
            n > 0,
            "getrandom failed: {}",
            std::io::Error::last_os_error()
        );
        filled += n as usize;
    }
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

/// A fresh container id: 64 hex digits, as containerd and Docker make them.
pub fn container_id() -> String {
    random_hex(32)
}

/// A fresh pod UID in the Kubernetes (UUID v4) form.
pub fn pod_uid() -> String {
    let hex = random_hex(16);
    // Version 4, variant 10xx, as the API server generates them.
    let variant = ["8", "9", "a", "b"][usize::from_str_radix(&hex[16..17], 16).unwrap_or(0) % 4];
    format!(
        "{}-{}-4{}-{}{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[13..16],
        variant,
        &hex[17..20],
        &hex[20..32]
    )
}

/// Polls `check` every 20 ms until it returns `Some`, or panics after
/// `timeout` naming `what`.
pub(crate) fn wait_for<T>(
    timeout: Duration,
    what: &str,
    mut check: impl FnMut() -> Option<T>,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Reports a failure found while cleaning up in `drop`: a panic normally,
/// so that a leak fails the test, but only a message while the thread is
/// already unwinding (a second panic would abort the whole test binary).
pub(crate) fn cleanup_failed(message: &str) {
    if std::thread::panicking() {
        #[allow(clippy::print_stderr, reason = "the thread is already panicking")]
        {
            eprintln!("cleanup: {message}");
        }
    } else {
        panic!("cleanup: {message}");
    }
}
