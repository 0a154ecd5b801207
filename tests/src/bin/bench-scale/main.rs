//! The memory and scale benchmark behind `cargo xtask bench`: what an idle
//! node has attached, how fast a new container cgroup is recorded, what the
//! node agent costs with 10, 100 and 1,000 containers, and how long an
//! export of 1,000 workload profiles takes. Everything is real: the kernel
//! program, the agent binary, cgroups with processes in them, the export
//! command.
//!
//! `bench-scale --syscensus target/release/syscensus [--counts 10,100,1000]
//! [--latency-cgroups 200] [--profiles 1000] [--export-runs 5] [--json FILE]`
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
    collections::BTreeSet,
    fs,
    os::{
        fd::AsRawFd as _,
        unix::{fs::MetadataExt as _, process::CommandExt as _},
    },
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use serde_json::{Value, json};
use syscensus::{
    bpf::{Tracer, TracerOptions},
    cgroup::Hierarchy,
};

mod agent;
mod export;

use agent::{agent_scale, memory_kib};
use export::export;

struct Options {
    syscensus: PathBuf,
    counts: Vec<usize>,
    latency_cgroups: usize,
    profiles: usize,
    export_runs: usize,
    json: Option<PathBuf>,
}

fn parse_args() -> anyhow::Result<Options> {
    let mut options = Options {
        syscensus: PathBuf::from("target/release/syscensus"),
        counts: vec![10, 100, 1000],
        latency_cgroups: 200,
        profiles: 1000,
        export_runs: 5,
        json: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().with_context(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--syscensus" => options.syscensus = value()?.into(),
            "--counts" => {
                options.counts = value()?
                    .split(',')
                    .filter(|s| !s.is_empty())
                    .map(str::parse)
                    .collect::<Result<_, _>>()?;
            }
            "--latency-cgroups" => options.latency_cgroups = value()?.parse()?,
            "--profiles" => options.profiles = value()?.parse()?,
            "--export-runs" => options.export_runs = value()?.parse()?,
            "--json" => options.json = Some(value()?.into()),
            other => bail!("unknown argument {other}"),
        }
    }
    anyhow::ensure!(
        options.syscensus.is_file(),
        "--syscensus must name the syscensus binary (build it with cargo build --release -p syscensus)"
    );
    Ok(options)
}

/// A small deterministic generator (xorshift64*): the same names and
/// profiles every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// A Pod UID (RFC 4122 text form).
    fn uuid(&mut self) -> String {
        let (a, b) = (self.next(), self.next());
        format!(
            "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
            a >> 32,
            (a >> 16) & 0xffff,
            a & 0xfff,
            b >> 52,
            b & 0xffff_ffff_ffff
        )
    }

    /// A container id: 64 lowercase hex digits.
    fn container_id(&mut self) -> String {
        (0..4).map(|_| format!("{:016x}", self.next())).collect()
    }
}

/// Distribution of a sample, in the sample's unit.
fn summary(values: &[f64]) -> Value {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    if sorted.is_empty() {
        return Value::Null;
    }
    let at =
        |q: f64| sorted[((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1];
    json!({
        "n": sorted.len(),
        "min": sorted[0],
        "median": at(0.5),
        "p99": at(0.99),
        "max": sorted[sorted.len() - 1],
    })
}

/// `bpftool -j ARGS` as JSON.
fn bpftool(args: &[&str]) -> anyhow::Result<Value> {
    let output = Command::new("bpftool")
        .arg("-j")
        .args(args)
        .output()
        .context("cannot run bpftool (Debian package bpftool; scripts/setup installs it)")?;
    anyhow::ensure!(
        output.status.success(),
        "bpftool {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(serde_json::from_slice(&output.stdout)?)
}

/// Ids of the BPF links attached to `sys_enter`, whoever made them.
fn sys_enter_links() -> anyhow::Result<BTreeSet<u64>> {
    Ok(bpftool(&["link", "list"])?
        .as_array()
        .into_iter()
        .flatten()
        .filter(|l| l["tp_name"] == "sys_enter" || l["attach_btf_name"] == "sys_enter")
        .filter_map(|l| l["id"].as_u64())
        .collect())
}

/// A directory tree of cgroups made by the benchmark, removed deepest first
/// on drop (after the processes in it were stopped).
struct Cgroups {
    dirs: Vec<PathBuf>,
    sleepers: Vec<Child>,
}

impl Cgroups {
    fn new() -> Cgroups {
        Cgroups {
            dirs: Vec::new(),
            sleepers: Vec::new(),
        }
    }

    fn mkdir(&mut self, dir: &Path) -> anyhow::Result<u64> {
        fs::create_dir(dir).with_context(|| format!("cannot create cgroup {}", dir.display()))?;
        self.dirs.push(dir.to_path_buf());
        Ok(fs::metadata(dir)?.ino())
    }

    fn stop_sleepers(&mut self) {
        for child in &mut self.sleepers {
            let _ = child.kill();
        }
        for mut child in self.sleepers.drain(..) {
            let _ = child.wait();
        }
    }

    fn remove(&mut self) {
        self.stop_sleepers();
        while let Some(dir) = self.dirs.pop() {
            // rmdir fails with EBUSY for a moment while a killed process is
            // still being torn down.
            for _ in 0..200 {
                match fs::remove_dir(&dir) {
                    Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                        eprintln!("warning: cannot remove {}: {e}", dir.display());
                        break;
                    }
                    _ => break,
                }
            }
        }
    }
}

impl Drop for Cgroups {
    fn drop(&mut self) {
        self.remove();
    }
}

/// Starts `sleep` in the cgroup at `dir` the way a runtime starts an
/// entrypoint: moved into the cgroup, then exec'd in a mount namespace of
/// its own (the kernel program starts recording at that exec).
fn start_sleeper(dir: &Path) -> anyhow::Result<Child> {
    let procs = fs::OpenOptions::new()
        .write(true)
        .open(dir.join("cgroup.procs"))?;
    let fd = procs.as_raw_fd();
    let mut cmd = Command::new("sleep");
    cmd.arg("3600")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // SAFETY: only write(2) and unshare(2) between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            let pid = b"0\n";
            if libc::write(fd, pid.as_ptr().cast(), pid.len()) < 0
                || libc::unshare(libc::CLONE_NEWNS) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    // spawn() returns once the exec succeeded.
    Ok(cmd.spawn()?)
}

/// With the program loaded but no recording, nothing is attached to
/// `sys_enter`; attaching and detaching show that the check sees ours.
/// Also measures what loading the program adds to this process's memory:
/// most of the agent's resident set is there before any container.
fn idle_check() -> anyhow::Result<Value> {
    let before = sys_enter_links()?;
    let own = std::process::id();
    let (rss_before, _) = memory_kib(own)?;
    let mut tracer = Tracer::load(&TracerOptions {
        attach_sys_enter: false,
        ..TracerOptions::default()
    })?;
    let (rss_loaded, _) = memory_kib(own)?;
    let idle = sys_enter_links()?;
    tracer.attach_sys_enter()?;
    let attached = sys_enter_links()?;
    tracer.detach_sys_enter()?;
    let detached = sys_enter_links()?;
    drop(tracer);
    let (rss_dropped, _) = memory_kib(own)?;
    let new = |set: &BTreeSet<u64>| set.difference(&before).count();
    println!(
        "loading the program: RSS {:.1} → {:.1} MiB ({:.1} after dropping it)",
        rss_before as f64 / 1024.0,
        rss_loaded as f64 / 1024.0,
        rss_dropped as f64 / 1024.0
    );
    let report = json!({
        "tracer_rss_kib": {
            "before_load": rss_before,
            "loaded": rss_loaded,
            "dropped": rss_dropped,
        },
        "other_links": before.len(),
        "links_loaded_idle": new(&idle),
        "links_recording": new(&attached),
        "links_after_detach": new(&detached),
        "ok": new(&idle) == 0 && new(&attached) == 1 && new(&detached) == 0,
    });
    println!(
        "idle: {} sys_enter link(s) with the program loaded and no recording; {} while recording; {} after the recording ends",
        new(&idle),
        new(&attached),
        new(&detached)
    );
    Ok(report)
}

/// Time from the mkdir of a container cgroup below a watched root to the
/// kernel's row for it, to the ring buffer event, and to a first exec
/// starting the recording.
fn start_latency(hierarchy: &Hierarchy, count: usize) -> anyhow::Result<Value> {
    let mut tracer = Tracer::load(&TracerOptions {
        attach_sys_enter: true,
        ..TracerOptions::default()
    })?;
    let mut events = tracer.take_events().context("no event buffer")?;
    let mut cgroups = Cgroups::new();
    let top = hierarchy.dir(&format!("/syscensus-bench-{}-latency", std::process::id()));
    cgroups.mkdir(&top)?;
    let kubepods = top.join("kubepods");
    let root_id = cgroups.mkdir(&kubepods)?;
    let qos = kubepods.join("besteffort");
    cgroups.mkdir(&qos)?;
    tracer.watch(root_id)?;
    let mut rng = Rng(0x5eed_1a7e ^ u64::from(std::process::id()));
    let (mut to_row, mut to_event, mut to_armed, mut mkdir_only) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut marked_at_return, mut armed_at_exec) = (0, 0);
    for _ in 0..count {
        let pod = qos.join(format!("pod{}", rng.uuid()));
        let pod_id = cgroups.mkdir(&pod)?;
        let _ = events.drain();
        tracer.unmark(pod_id)?;
        let dir = pod.join(rng.container_id());

        let start = Instant::now();
        let id = cgroups.mkdir(&dir)?;
        mkdir_only.push(start.elapsed().as_secs_f64() * 1e6);
        if tracer.snapshot(id)?.is_some() {
            marked_at_return += 1;
        }
        while tracer.snapshot(id)?.is_none() {
            anyhow::ensure!(
                start.elapsed() < Duration::from_secs(5),
                "cgroup {} never marked",
                dir.display()
            );
        }
        to_row.push(start.elapsed().as_secs_f64() * 1e6);
        'event: loop {
            for event in events.drain() {
                if event.cgroup_id == id {
                    break 'event;
                }
            }
            anyhow::ensure!(
                start.elapsed() < Duration::from_secs(5),
                "no event for cgroup {}",
                dir.display()
            );
            let mut fd = libc::pollfd {
                fd: events.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd.
            unsafe { libc::poll(&mut fd, 1, 100) };
        }
        to_event.push(start.elapsed().as_secs_f64() * 1e6);

        let child = start_sleeper(&dir)?;
        cgroups.sleepers.push(child);
        if tracer.snapshot(id)?.is_some_and(|s| s.recording) {
            armed_at_exec += 1;
        }
        while !tracer.snapshot(id)?.is_some_and(|s| s.recording) {
            anyhow::ensure!(
                start.elapsed() < Duration::from_secs(5),
                "the exec in {} did not start a recording",
                dir.display()
            );
            std::thread::sleep(Duration::from_micros(50));
        }
        to_armed.push(start.elapsed().as_secs_f64() * 1e6);
        cgroups.stop_sleepers();
        tracer.unmark(id)?;
    }
    cgroups.remove();
    let report = json!({
        "cgroups": count,
        "marked_when_mkdir_returned": marked_at_return,
        "armed_when_exec_returned": armed_at_exec,
        "mkdir_us": summary(&mkdir_only),
        "mkdir_to_row_us": summary(&to_row),
        "mkdir_to_event_us": summary(&to_event),
        "mkdir_to_recording_us": summary(&to_armed),
    });
    println!(
        "start latency over {count} cgroups: marked when mkdir returned {marked_at_return}/{count}, recording when the first exec returned {armed_at_exec}/{count}"
    );
    for (what, key) in [
        ("mkdir → row", "mkdir_to_row_us"),
        ("mkdir → event read", "mkdir_to_event_us"),
        ("mkdir → exec → recording", "mkdir_to_recording_us"),
    ] {
        println!(
            "  {what:<26} median {:>8.1} µs  p99 {:>8.1} µs",
            report[key]["median"].as_f64().unwrap_or(f64::NAN),
            report[key]["p99"].as_f64().unwrap_or(f64::NAN)
        );
    }
    Ok(report)
}

fn main() -> anyhow::Result<()> {
    let options = parse_args()?;
    let hierarchy = Hierarchy::find()?;
    let mut report = serde_json::Map::new();
    report.insert("idle".into(), idle_check()?);
    report.insert(
        "start_latency".into(),
        start_latency(&hierarchy, options.latency_cgroups)?,
    );
    let mut agent = Vec::new();
    for &count in &options.counts {
        agent.push(agent_scale(&options, &hierarchy, count)?);
    }
    report.insert("agent".into(), agent.into());
    report.insert("export".into(), export(&options)?);
    if let Some(path) = &options.json {
        fs::write(path, serde_json::to_string_pretty(&report)? + "\n")?;
        println!("written to {}", path.display());
    }
    Ok(())
}
