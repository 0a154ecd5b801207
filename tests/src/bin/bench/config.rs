//! The configurations measured and the command line.
use std::path::PathBuf;

use anyhow::{Context as _, bail};

/// A configuration of the machine during one measurement.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Config {
    /// Nothing attached to `sys_enter`.
    None,
    /// An empty `raw_tracepoint` program attached to `sys_enter`.
    Floor,
    /// An empty BTF tracepoint program (the kind syscensus uses).
    FloorBtf,
    /// syscensus loaded, no recording: `sys_enter` is not attached.
    Idle,
    /// syscensus recording another cgroup; the loop is not recorded.
    Other,
    /// syscensus recording the loop's cgroup.
    Recorded,
    /// As `Other`, reading the cgroup id with the helper.
    OtherHelper,
    /// As `Recorded`, reading the cgroup id with the helper.
    RecordedHelper,
    /// An empty BTF tracepoint program on `sys_exit` (the watch's hook).
    FloorExit,
    /// syscensus watching another cgroup for refusals; the loop is not
    /// watched.
    WatchOther,
    /// syscensus watching the loop's cgroup under a profile that allows its
    /// syscalls (the cost every syscall of a watched container pays).
    Watched,
}

impl Config {
    pub(crate) const ALL: [Config; 11] = [
        Config::None,
        Config::Floor,
        Config::FloorBtf,
        Config::Idle,
        Config::Other,
        Config::Recorded,
        Config::OtherHelper,
        Config::RecordedHelper,
        Config::FloorExit,
        Config::WatchOther,
        Config::Watched,
    ];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Config::None => "no program",
            Config::Floor => "empty raw tracepoint",
            Config::FloorBtf => "empty BTF tracepoint",
            Config::Idle => "syscensus idle",
            Config::Other => "syscensus, loop not recorded",
            Config::Recorded => "syscensus, loop recorded",
            Config::OtherHelper => "not recorded, id by helper",
            Config::RecordedHelper => "recorded, id by helper",
            Config::FloorExit => "empty BTF tracepoint, sys_exit",
            Config::WatchOther => "watching refusals elsewhere",
            Config::Watched => "loop watched for refusals",
        }
    }

    pub(crate) fn key(self) -> &'static str {
        match self {
            Config::None => "none",
            Config::Floor => "floor_raw_tp",
            Config::FloorBtf => "floor_tp_btf",
            Config::Idle => "idle",
            Config::Other => "other",
            Config::Recorded => "recorded",
            Config::OtherHelper => "other_helper",
            Config::RecordedHelper => "recorded_helper",
            Config::FloorExit => "floor_sys_exit",
            Config::WatchOther => "watch_other",
            Config::Watched => "watched",
        }
    }
}

pub(crate) struct Options {
    pub(crate) rounds: usize,
    pub(crate) iterations: u64,
    pub(crate) cpu: usize,
    pub(crate) json: Option<PathBuf>,
    pub(crate) loop_binary: PathBuf,
    /// Also measure the variants that read the cgroup id with the helper.
    pub(crate) helper: bool,
}

pub(crate) fn parse_args() -> anyhow::Result<Options> {
    let mut options = Options {
        rounds: 9,
        iterations: 2_000_000,
        cpu: 1,
        json: None,
        loop_binary: PathBuf::new(),
        helper: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().with_context(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--rounds" => options.rounds = value()?.parse()?,
            "--iterations" => options.iterations = value()?.parse()?,
            "--cpu" => options.cpu = value()?.parse()?,
            "--json" => options.json = Some(value()?.into()),
            "--loop" => options.loop_binary = value()?.into(),
            "--helper" => options.helper = true,
            other => bail!("unknown argument {other}"),
        }
    }
    anyhow::ensure!(
        options.loop_binary.is_file(),
        "--loop must name the syscall_loop binary"
    );
    Ok(options)
}
