//! /proc/*/mountinfo and /proc/*/cgroup text: the cgroup2 mount and a
//! process's cgroup, or nothing; never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use syscensus::cgroup::{cgroup2_mount_in, cgroup2_path_in};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Some(mount) = cgroup2_mount_in(&text) {
        assert!(!mount.as_os_str().is_empty() || text.contains(" / "));
    }
    if let Some(path) = cgroup2_path_in(&text) {
        assert!(!path.contains('\n'));
    }
});
