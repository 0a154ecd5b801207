//! cgroup v2.

/// A cgroup operation failed.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {}
