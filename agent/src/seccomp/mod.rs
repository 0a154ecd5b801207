//! Compiles a profile into a classic-BPF seccomp filter and installs it.

/// A profile that cannot be turned into a filter.
#[derive(Debug, thiserror::Error)]
pub enum SeccompError {}
