//! Why the kernel program could not be loaded or used.
use aya::{maps::MapError, programs::ProgramError};
use syscensus_common::{ROOT_PATH_BYTES, ROOT_PATHS};

use crate::btf::BtfError;

/// The kernel program could not be loaded or used.
#[derive(Debug, thiserror::Error)]
pub enum BpfError {
    #[error(transparent)]
    Btf(#[from] BtfError),
    #[error("cannot read kernel BTF for the BPF loader: {0}")]
    LoaderBtf(#[source] aya::BtfError),
    #[error(
        "failed to load the kernel program: {0}: syscensus needs root (CAP_BPF, CAP_PERFMON) and a kernel with BTF tracepoints (5.5+)"
    )]
    Load(#[source] aya::EbpfError),
    #[error(
        "kernel program has no {what} {name}: the embedded object is broken; rebuild syscensus"
    )]
    Missing {
        what: &'static str,
        name: &'static str,
    },
    #[error("failed to {action} program {name}: {source}")]
    Program {
        action: &'static str,
        name: &'static str,
        #[source]
        source: ProgramError,
    },
    #[error("failed to access map {name}: {source}")]
    Map {
        name: &'static str,
        #[source]
        source: MapError,
    },
    #[error("cannot map the prefilter into memory: {0}")]
    MapFilter(#[source] std::io::Error),
    #[error(
        "cannot use the pin directory {}: {source}: it must be on a BPF file system (mount -t bpf bpf /sys/fs/bpf)",
        path.display()
    )]
    PinDir {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot pin the link of {name} at {}: {message}", path.display())]
    Pin {
        name: &'static str,
        path: std::path::PathBuf,
        message: String,
    },
    #[error("cannot record cgroup {cgroup_id}: {capacity} rows are in use (raise --max-cgroups)")]
    Full { cgroup_id: u64, capacity: u32 },
    #[error(
        "cannot record cgroup {cgroup_id} as part of {owner}: {} cgroups below recorded ones are tracked already",
        syscensus_common::ALIAS_CAPACITY
    )]
    AliasFull { cgroup_id: u64, owner: u64 },
    #[error(
        "too many root paths or a path too long ({path:?}): at most {ROOT_PATHS} paths of {} bytes",
        ROOT_PATH_BYTES - 1
    )]
    RootPath { path: String },
}
