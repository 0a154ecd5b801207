//! The per-syscall overhead benchmark behind `cargo xtask bench`.
//!
//! A pinned loop of `getppid` (and of 1-byte reads from /dev/zero) is timed
//! under several configurations, interleaved round by round so that drift of
//! the machine hits every configuration alike; the median of the rounds is
//! reported, with the overhead over no program at all and its ratio to the
//! floor's overhead (an empty program attached to `sys_enter`).
#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a benchmark that prints its figures"
)]

use std::{
    collections::BTreeMap,
    os::{fd::AsRawFd as _, unix::process::CommandExt as _},
    path::PathBuf,
    process::Command,
};

use anyhow::{Context as _, bail};
use syscensus::{
    bpf::{Tracer, TracerOptions},
    cgroup::{Hierarchy, OwnedCgroup},
};

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
}

impl Config {
    const ALL: [Config; 8] = [
        Config::None,
        Config::Floor,
        Config::FloorBtf,
        Config::Idle,
        Config::Other,
        Config::Recorded,
        Config::OtherHelper,
        Config::RecordedHelper,
    ];

    fn name(self) -> &'static str {
        match self {
            Config::None => "no program",
            Config::Floor => "empty raw tracepoint",
            Config::FloorBtf => "empty BTF tracepoint",
            Config::Idle => "syscensus idle",
            Config::Other => "syscensus, loop not recorded",
            Config::Recorded => "syscensus, loop recorded",
            Config::OtherHelper => "  (cgroup id by helper) not rec.",
            Config::RecordedHelper => "  (cgroup id by helper) recorded",
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
        }
    }
}

struct Options {
    rounds: usize,
    iterations: u64,
    cpu: usize,
    json: Option<PathBuf>,
    loop_binary: PathBuf,
}

fn parse_args() -> anyhow::Result<Options> {
    let mut options = Options {
        rounds: 9,
        iterations: 2_000_000,
        cpu: 1,
        json: None,
        loop_binary: PathBuf::new(),
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

/// Runs the loop in `cgroup` and returns its mean ns per call.
fn measure(options: &Options, cgroup: &OwnedCgroup, syscall: &str) -> anyhow::Result<f64> {
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
    Ok(String::from_utf8(output.stdout)?.trim().parse()?)
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    if values.len().is_multiple_of(2) {
        (values[mid - 1] + values[mid]) / 2.0
    } else {
        values[mid]
    }
}

/// Programs other than ours attached to `sys_enter` (through bpftool).
fn other_sys_enter_programs() -> Vec<String> {
    let Ok(output) = Command::new("bpftool")
        .args(["-j", "link", "list"])
        .output()
    else {
        return vec!["(bpftool not found: cannot check)".into()];
    };
    let Ok(links) = serde_json::from_slice::<serde_json::Value>(&output.stdout) else {
        return Vec::new();
    };
    links
        .as_array()
        .into_iter()
        .flatten()
        .filter(|l| l["tp_name"] == "sys_enter" || l["attach_btf_name"] == "sys_enter")
        .map(|l| format!("link {} prog {}", l["id"], l["prog_id"]))
        .collect()
}

fn main() -> anyhow::Result<()> {
    let options = parse_args()?;
    let before = other_sys_enter_programs();
    if !before.is_empty() {
        eprintln!(
            "warning: other programs are attached to sys_enter, figures are unreliable: {before:?}"
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
    let mut empty = EmptyProgram::load(None)?;
    let btf_id = syscensus::btf::Btf::from_kernel()?
        .typedef_id("btf_trace_sys_enter")
        .context("no btf_trace_sys_enter in the kernel's BTF")?;
    let mut empty_btf = EmptyProgram::load(Some(btf_id))?;

    let syscalls = ["getppid", "read"];
    let mut samples: BTreeMap<(&str, Config), Vec<f64>> = BTreeMap::new();
    for round in 0..options.rounds {
        // Rotate the order so that no configuration always runs first.
        let mut order = Config::ALL.to_vec();
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
                            snapshot.len() > 3 && !snapshot.exec_sessions,
                            "the recorded loop was not recorded as the workload: {snapshot:?}"
                        );
                    }
                }
                empty.detach();
                empty_btf.detach();
                for t in [&mut tracer, &mut helper_tracer] {
                    t.unmark(loop_cgroup.id())?;
                    t.unmark(other_cgroup.id())?;
                    t.detach_sys_enter()?;
                }
            }
        }
        eprint!("\rround {}/{}", round + 1, options.rounds);
    }
    eprintln!();

    let mut report = serde_json::Map::new();
    println!(
        "{} rounds of {} calls, pinned to CPU {}; medians",
        options.rounds, options.iterations, options.cpu
    );
    for syscall in syscalls {
        let mut med = BTreeMap::new();
        for config in Config::ALL {
            med.insert(
                config,
                median(samples.get_mut(&(syscall, config)).context("no samples")?),
            );
        }
        let none = med[&Config::None];
        // The floor is the cheaper of the two empty programs.
        let floor = med[&Config::Floor].min(med[&Config::FloorBtf]) - none;
        println!("\n{syscall}:");
        println!(
            "  {:<32} {:>9} {:>10} {:>14}",
            "configuration", "ns/call", "overhead", "x floor's"
        );
        let mut rows = serde_json::Map::new();
        for config in Config::ALL {
            let ns = med[&config];
            let overhead = ns - none;
            let ratio = if floor > 0.0 {
                overhead / floor
            } else {
                f64::NAN
            };
            println!(
                "  {:<32} {:>9.1} {:>+10.1} {:>14.2}",
                config.name(),
                ns,
                overhead,
                ratio
            );
            rows.insert(
                config.key().into(),
                serde_json::json!({
                    "ns_per_call": ns,
                    "overhead_ns": overhead,
                    "ratio_to_floor_overhead": ratio,
                    "samples": samples[&(syscall, config)],
                }),
            );
        }
        report.insert(syscall.into(), rows.into());
    }
    let after = other_sys_enter_programs();
    if !after.is_empty() {
        eprintln!("warning: other programs were attached to sys_enter during the run: {after:?}");
    }
    report.insert(
        "machine".into(),
        serde_json::json!({
            "kernel": std::fs::read_to_string("/proc/sys/kernel/osrelease")?.trim(),
            "cpus": std::thread::available_parallelism()?.get(),
            "other_sys_enter_programs": after,
        }),
    );
    if let Some(path) = &options.json {
        std::fs::write(path, serde_json::to_string_pretty(&report)? + "\n")?;
        println!("\nwritten to {}", path.display());
    }
    Ok(())
}
