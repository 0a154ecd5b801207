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
    process::Command,
};

use anyhow::{Context as _, bail};
use syscensus::{
    bpf::{Tracer, TracerOptions, Verdict, WatchPolicy},
    cgroup::{Hierarchy, OwnedCgroup},
    syscalls::Arch,
};
use syscensus_common::abi;

mod config;
mod empty;

use config::{Config, Options, parse_args};
use empty::EmptyProgram;

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
