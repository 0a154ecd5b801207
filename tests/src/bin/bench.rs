//! The per-syscall overhead benchmark behind `cargo xtask bench`.
//!
//! A pinned loop of `getppid` (and of 1-byte reads from /dev/zero) is timed
//! under several configurations, interleaved round by round so that drift of
//! the machine hits every configuration alike; the median of the rounds is
//! reported, with the overhead over no program at all and its ratio to the
//! floor's overhead (an empty program attached to `sys_enter`). The
//! refusal watch is measured the same way: its `sys_exit` hook with the
//! loop's cgroup watched, and with another cgroup watched, beside an empty
//! program on `sys_exit`.
#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a benchmark that prints its figures"
)]
#![allow(
    unused_crate_dependencies,
    reason = "a binary of the package uses some of its dependencies"
)]

use std::{
    collections::BTreeMap,
    os::{fd::AsRawFd as _, unix::process::CommandExt as _},
    path::PathBuf,
    process::Command,
};

use anyhow::{Context as _, bail};
use syscensus::{
    bpf::{Tracer, TracerOptions, Verdict, WatchPolicy},
    cgroup::{Hierarchy, OwnedCgroup},
    syscalls::Arch,
};
use syscensus_common::abi;

/// A configuration of the machine during one measurement.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Config {
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
    const ALL: [Config; 11] = [
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

    fn name(self) -> &'static str {
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

    fn key(self) -> &'static str {
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

struct Options {
    rounds: usize,
    iterations: u64,
    cpu: usize,
    json: Option<PathBuf>,
    loop_binary: PathBuf,
    /// Also measure the variants that read the cgroup id with the helper.
    helper: bool,
}

fn parse_args() -> anyhow::Result<Options> {
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

/// An empty program (`r0 = 0; exit`) loaded and attached to `sys_enter` with
/// raw bpf(2) calls: the cheapest program possible, as a raw tracepoint or as
/// a BTF tracepoint.
struct EmptyProgram {
    prog: std::os::fd::OwnedFd,
    link: Option<std::os::fd::OwnedFd>,
}

fn bpf(cmd: libc::c_long, attr: &mut [u8; 128]) -> std::io::Result<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd as _;
    // SAFETY: `attr` is a zero-padded bpf_attr of the size passed.
    let fd = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr.as_mut_ptr(), attr.len()) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: bpf(2) returned a new file descriptor that we now own.
    Ok(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd as i32) })
}

impl EmptyProgram {
    /// `btf_id`: the vmlinux BTF id of `btf_trace_sys_enter` for a BTF
    /// tracepoint; `None` for a raw tracepoint.
    fn load(btf_id: Option<u32>) -> anyhow::Result<EmptyProgram> {
        const BPF_PROG_LOAD: libc::c_long = 5;
        const BPF_PROG_TYPE_RAW_TRACEPOINT: u32 = 17;
        const BPF_PROG_TYPE_TRACING: u32 = 26;
        const BPF_TRACE_RAW_TP: u32 = 23;
        // mov r0, 0; exit
        let insns: [u64; 2] = [0x0000_0000_0000_00b7, 0x0000_0000_0000_0095];
        let license = c"GPL";
        let mut attr = [0u8; 128];
        let prog_type = if btf_id.is_some() {
            BPF_PROG_TYPE_TRACING
        } else {
            BPF_PROG_TYPE_RAW_TRACEPOINT
        };
        attr[0..4].copy_from_slice(&prog_type.to_ne_bytes());
        attr[4..8].copy_from_slice(&(insns.len() as u32).to_ne_bytes());
        if let Some(id) = btf_id {
            // expected_attach_type at 68, attach_btf_id at 108 (union bpf_attr).
            attr[68..72].copy_from_slice(&BPF_TRACE_RAW_TP.to_ne_bytes());
            attr[108..112].copy_from_slice(&id.to_ne_bytes());
        }
        attr[8..16].copy_from_slice(&(insns.as_ptr() as u64).to_ne_bytes());
        attr[16..24].copy_from_slice(&(license.as_ptr() as u64).to_ne_bytes());
        let prog = bpf(BPF_PROG_LOAD, &mut attr).context("loading the empty program")?;
        Ok(EmptyProgram { prog, link: None })
    }

    fn attach(&mut self, by_name: bool) -> anyhow::Result<()> {
        const BPF_RAW_TRACEPOINT_OPEN: libc::c_long = 17;
        let name = c"sys_enter";
        let mut attr = [0u8; 128];
        // A BTF tracepoint attaches by its BTF id: no name.
        if by_name {
            attr[0..8].copy_from_slice(&(name.as_ptr() as u64).to_ne_bytes());
        }
        attr[8..12].copy_from_slice(&self.prog.as_raw_fd().to_ne_bytes());
        self.link =
            Some(bpf(BPF_RAW_TRACEPOINT_OPEN, &mut attr).context("attaching the empty program")?);
        Ok(())
    }

    fn detach(&mut self) {
        self.link = None;
    }
}

/// Runs the loop in `cgroup` and returns its ns per call: the mean over
/// all calls, and the 10th percentile of its chunks' means (see
/// tests/programs/syscall_loop.c).
fn measure(options: &Options, cgroup: &OwnedCgroup, syscall: &str) -> anyhow::Result<(f64, f64)> {
    let procs = std::fs::OpenOptions::new()
        .write(true)
        .open(cgroup.procs_file())?;
    let fd = procs.as_raw_fd();
    let mut cmd = Command::new(&options.loop_binary);
    cmd.args([
        syscall,
        &options.iterations.to_string(),
        &options.cpu.to_string(),
    ]);
    // SAFETY: only write(2) between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            let pid = b"0\n";
            if libc::write(fd, pid.as_ptr().cast(), pid.len()) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let output = cmd.output()?;
    anyhow::ensure!(
        output.status.success(),
        "syscall loop failed: {:?}",
        output.status
    );
    let text = String::from_utf8(output.stdout)?;
    let (mean, low) = text
        .trim()
        .split_once(' ')
        .context("syscall loop printed no figures")?;
    Ok((mean.parse()?, low.parse()?))
}

/// Calls per timed chunk of the loop (CHUNK in syscall_loop.c).
const CHUNK: u64 = 2000;

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    if values.len().is_multiple_of(2) {
        (values[mid - 1] + values[mid]) / 2.0
    } else {
        values[mid]
    }
}

/// The links attached to `sys_enter` (through bpftool), by id; `None` when
/// bpftool cannot tell.
fn sys_enter_links() -> Option<BTreeMap<u64, String>> {
    links_to("sys_enter")
}

/// The links attached to `tracepoint` (through bpftool), by id; `None`
/// when bpftool cannot tell.
fn links_to(tracepoint: &str) -> Option<BTreeMap<u64, String>> {
    let output = Command::new("bpftool")
        .args(["-j", "link", "list"])
        .output()
        .ok()?;
    let links = serde_json::from_slice::<serde_json::Value>(&output.stdout).ok()?;
    Some(
        links
            .as_array()
            .into_iter()
            .flatten()
            .filter(|l| l["tp_name"] == tracepoint || l["attach_btf_name"] == tracepoint)
            .filter_map(|l| {
                Some((
                    l["id"].as_u64()?,
                    format!("link {} prog {}", l["id"], l["prog_id"]),
                ))
            })
            .collect(),
    )
}

fn main() -> anyhow::Result<()> {
    let options = parse_args()?;
    let Some(before) = sys_enter_links() else {
        bail!("cannot list BPF links: install bpftool (scripts/setup does)");
    };
    if !before.is_empty() {
        eprintln!(
            "warning: other programs are attached to sys_enter, figures are unreliable: {:?}",
            before.values().collect::<Vec<_>>()
        );
    }
    let exit_before = links_to("sys_exit").context("cannot list BPF links")?;
    if !exit_before.is_empty() {
        eprintln!(
            "warning: other programs are attached to sys_exit, figures are unreliable: {:?}",
            exit_before.values().collect::<Vec<_>>()
        );
    }
    let hierarchy = Hierarchy::find()?;
    let loop_cgroup =
        hierarchy.create_child_of_own(&format!("syscensus-bench-loop-{}", std::process::id()))?;
    let other_cgroup =
        hierarchy.create_child_of_own(&format!("syscensus-bench-other-{}", std::process::id()))?;
    let mut tracer = Tracer::load(&TracerOptions {
        attach_sys_enter: false,
        ..TracerOptions::default()
    })?;
    let mut helper_tracer = Tracer::load(&TracerOptions {
        attach_sys_enter: false,
        cgroup_id_helper: true,
        ..TracerOptions::default()
    })?;
    // Loaded, no recording: nothing may be attached to sys_enter.
    let idle_links = sys_enter_links()
        .context("cannot list BPF links")?
        .keys()
        .filter(|id| !before.contains_key(id))
        .count();
    eprintln!("syscensus loaded and idle: {idle_links} sys_enter link(s) of its own");
    // Nothing watched: nothing may be attached to sys_exit either.
    let idle_exit_links = links_to("sys_exit")
        .context("cannot list BPF links")?
        .keys()
        .filter(|id| !exit_before.contains_key(id))
        .count();
    eprintln!("syscensus loaded and idle: {idle_exit_links} sys_exit link(s) of its own");
    // The watched loop's profile: its own syscalls allowed, the rest refused
    // with EPERM (what an enforced recorded profile looks like).
    let mut watch_policy = WatchPolicy::new();
    watch_policy.cover(abi::NATIVE, Verdict::Errno(libc::EPERM as u16));
    for name in [
        "getppid",
        "read",
        "write",
        "openat",
        "close",
        "exit_group",
        "sched_setaffinity",
        "brk",
        "mmap",
        "munmap",
        "execve",
        "arch_prctl",
        "set_tid_address",
        "set_robust_list",
        "rseq",
        "prlimit64",
        "readlinkat",
        "mprotect",
        "getrandom",
        "newfstatat",
        "fstat",
        "uname",
    ] {
        if let Some(nr) = Arch::native().number(name) {
            watch_policy.set(abi::NATIVE, nr, Verdict::Allowed);
        }
    }
    let mut empty = EmptyProgram::load(None)?;
    let btf_id = syscensus::btf::Btf::from_kernel()?
        .typedef_id("btf_trace_sys_enter")
        .context("no btf_trace_sys_enter in the kernel's BTF")?;
    let mut empty_btf = EmptyProgram::load(Some(btf_id))?;
    let exit_btf_id = syscensus::btf::Btf::from_kernel()?
        .typedef_id("btf_trace_sys_exit")
        .context("no btf_trace_sys_exit in the kernel's BTF")?;
    let mut empty_exit = EmptyProgram::load(Some(exit_btf_id))?;

    let configs: Vec<Config> = Config::ALL
        .into_iter()
        .filter(|c| options.helper || !matches!(c, Config::OtherHelper | Config::RecordedHelper))
        .collect();
    let syscalls = ["getppid", "read"];
    // Per round: (mean, 10th percentile of chunks) of each measurement.
    let mut samples: BTreeMap<(&str, Config), Vec<(f64, f64)>> = BTreeMap::new();
    // Links seen while none of ours is attached: someone else's.
    let mut foreign = before;
    let started = std::time::Instant::now();
    for round in 0..options.rounds {
        // Rotate the order so that no configuration always runs first.
        let mut order = configs.clone();
        let len = order.len();
        order.rotate_left(round % len);
        for config in order {
            // Set up afresh for each measurement: a second process exec'd
            // from outside into a recorded cgroup would count as an exec
            // session, which is not what is measured here.
            for syscall in syscalls {
                match config {
                    Config::None | Config::Idle => {}
                    Config::Floor => empty.attach(true)?,
                    Config::FloorBtf => empty_btf.attach(false)?,
                    Config::Other => {
                        tracer.attach_sys_enter()?;
                        tracer.mark_recording(other_cgroup.id(), 0, &[])?;
                    }
                    Config::Recorded => {
                        tracer.attach_sys_enter()?;
                        tracer.mark_recording(loop_cgroup.id(), 0, &[])?;
                    }
                    Config::OtherHelper => {
                        helper_tracer.attach_sys_enter()?;
                        helper_tracer.mark_recording(other_cgroup.id(), 0, &[])?;
                    }
                    Config::RecordedHelper => {
                        helper_tracer.attach_sys_enter()?;
                        helper_tracer.mark_recording(loop_cgroup.id(), 0, &[])?;
                    }
                    Config::FloorExit => empty_exit.attach(false)?,
                    Config::WatchOther => {
                        tracer.watch_refusals(other_cgroup.id(), &watch_policy)?
                    }
                    Config::Watched => tracer.watch_refusals(loop_cgroup.id(), &watch_policy)?,
                }
                let ns = measure(&options, &loop_cgroup, syscall)?;
                samples.entry((syscall, config)).or_default().push(ns);
                for (recorded, t) in [
                    (Config::Recorded, &tracer),
                    (Config::RecordedHelper, &helper_tracer),
                ] {
                    if config == recorded && std::env::var_os("SYSCENSUS_BENCH_NO_CHECK").is_none()
                    {
                        let snapshot = t
                            .snapshot(loop_cgroup.id())?
                            .context("loop cgroup not marked")?;
                        anyhow::ensure!(
                            snapshot.len() > 3
                                && !snapshot.outsiders
                                && snapshot.sessions.is_empty(),
                            "the recorded loop was not recorded as the workload: {snapshot:?}"
                        );
                    }
                }
                if config == Config::Watched {
                    let refusals = tracer
                        .refusals(loop_cgroup.id())?
                        .context("loop cgroup not watched")?;
                    anyhow::ensure!(
                        tracer.refusal_hooks_attached() && refusals.syscalls.is_empty(),
                        "the watched loop was refused something: {refusals:?}"
                    );
                }
                empty.detach();
                empty_btf.detach();
                empty_exit.detach();
                tracer.unwatch_refusals(loop_cgroup.id())?;
                tracer.unwatch_refusals(other_cgroup.id())?;
                anyhow::ensure!(
                    !tracer.refusal_hooks_attached(),
                    "the watch's hooks stayed attached with nothing watched"
                );
                for t in [&mut tracer, &mut helper_tracer] {
                    t.unmark(loop_cgroup.id())?;
                    t.unmark(other_cgroup.id())?;
                    t.detach_sys_enter()?;
                }
            }
        }
        if let Some(links) = sys_enter_links() {
            foreign.extend(links);
        }
        eprint!(
            "\rround {}/{} ({:.0} s)",
            round + 1,
            options.rounds,
            started.elapsed().as_secs_f64()
        );
    }
    eprintln!();

    let mut report = serde_json::Map::new();
    report.insert(
        "settings".into(),
        serde_json::json!({
            "rounds": options.rounds,
            "iterations": options.iterations,
            "cpu": options.cpu,
            "seconds": started.elapsed().as_secs_f64(),
        }),
    );
    report.insert(
        "configs".into(),
        configs
            .iter()
            .map(|c| serde_json::json!({"key": c.key(), "name": c.name()}))
            .collect(),
    );
    println!(
        "{} rounds of {} calls, pinned to CPU {}; the lowest round's 10th percentile of {}-call chunks (median of the rounds' means in brackets)",
        options.rounds, options.iterations, options.cpu, CHUNK
    );
    for syscall in syscalls {
        // The lowest figure of each configuration: what its calls cost
        // when the host lets the loop run (every configuration gets as
        // many rounds to meet that), and the median of its means, which
        // carries the host's noise.
        let mut best = BTreeMap::new();
        let mut med = BTreeMap::new();
        for &config in &configs {
            let figures = samples.get(&(syscall, config)).context("no samples")?;
            let mut means: Vec<f64> = figures.iter().map(|f| f.0).collect();
            let low = figures.iter().map(|f| f.1).fold(f64::INFINITY, f64::min);
            best.insert(config, low);
            med.insert(config, median(&mut means));
        }
        let none = best[&Config::None];
        let none_mean = med[&Config::None];
        // The floor is the cheaper of the two empty programs.
        let floor = best[&Config::Floor].min(best[&Config::FloorBtf]) - none;
        let floor_mean = med[&Config::Floor].min(med[&Config::FloorBtf]) - none_mean;
        // The watch's hook is sys_exit, which costs more than sys_enter even
        // empty (the exit work's slow path): its rows are judged against an
        // empty program there.
        let exit_floor = best[&Config::FloorExit] - none;
        let exit_floor_mean = med[&Config::FloorExit] - none_mean;
        println!("\n{syscall}:");
        println!(
            "  {:<32} {:>9} {:>10} {:>10} {:>16}",
            "configuration", "ns/call", "overhead", "x floor's", "(median of means)"
        );
        println!("  (the watch's rows: x the empty sys_exit program's)");
        let mut rows = serde_json::Map::new();
        rows.insert("floor_overhead_ns".into(), floor.into());
        rows.insert("floor_overhead_ns_of_means".into(), floor_mean.into());
        rows.insert("floor_sys_exit_overhead_ns".into(), exit_floor.into());
        rows.insert(
            "floor_sys_exit_overhead_ns_of_means".into(),
            exit_floor_mean.into(),
        );
        for &config in &configs {
            let ns = best[&config];
            let overhead = ns - none;
            let overhead_mean = med[&config] - none_mean;
            let (floor, floor_mean) = if matches!(config, Config::Watched | Config::WatchOther) {
                (exit_floor, exit_floor_mean)
            } else {
                (floor, floor_mean)
            };
            let ratio = if floor > 0.0 {
                overhead / floor
            } else {
                f64::NAN
            };
            println!(
                "  {:<32} {:>9.1} {:>+10.1} {:>10.2}   ({:>+6.1} ns, {:.2}x)",
                config.name(),
                ns,
                overhead,
                ratio,
                overhead_mean,
                overhead_mean / floor_mean
            );
            rows.insert(
                config.key().into(),
                serde_json::json!({
                    "ns_per_call": ns,
                    "overhead_ns": overhead,
                    "ratio_to_floor_overhead": ratio,
                    "median_of_means_ns": med[&config],
                    "overhead_of_means_ns": overhead_mean,
                    "ratio_of_means": overhead_mean / floor_mean,
                    "rounds": samples[&(syscall, config)]
                        .iter()
                        .map(|(mean, low)| serde_json::json!({"mean": mean, "p10": low}))
                        .collect::<Vec<_>>(),
                }),
            );
        }
        report.insert(syscall.into(), rows.into());
    }
    let foreign: Vec<&String> = foreign.values().collect();
    if !foreign.is_empty() {
        eprintln!(
            "warning: other programs were attached to sys_enter during the run, figures are unreliable: {foreign:?}"
        );
    }
    report.insert("idle_sys_enter_links".into(), idle_links.into());
    report.insert("idle_sys_exit_links".into(), idle_exit_links.into());
    report.insert(
        "other_sys_enter_programs".into(),
        serde_json::json!(foreign),
    );
    report.insert(
        "machine".into(),
        serde_json::json!({
            "kernel": std::fs::read_to_string("/proc/sys/kernel/osrelease")?.trim(),
            "cpus": std::thread::available_parallelism()?.get(),
        }),
    );
    if let Some(path) = &options.json {
        std::fs::write(path, serde_json::to_string_pretty(&report)? + "\n")?;
        println!("\nwritten to {}", path.display());
    }
    Ok(())
}
