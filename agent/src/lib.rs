//! syscensus: records which syscalls each container really makes, with eBPF,
//! and turns that census into seccomp profiles.
pub mod always_allowed;
pub mod basesets;
pub mod bpf;
pub mod btf;
pub mod census;
pub mod cgroup;
pub mod cli;
pub mod commands;
pub mod daemon;
pub mod error;
pub mod export;
pub mod logging;
pub mod oci_runtime;
pub mod output;
pub mod profile;
pub mod record;
pub mod recording;
pub mod refusal;
pub mod run;
pub mod seccomp;
pub mod syscalls;

pub use error::{Error, Result};
