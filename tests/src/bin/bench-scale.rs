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
    io::{Read as _, Write as _},
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
    syscalls::Arch,
};

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

/// `GET /metrics` of the agent, as name → value.
fn metrics(port: u16) -> anyhow::Result<std::collections::BTreeMap<String, f64>> {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")?;
    let mut text = String::new();
    stream.read_to_string(&mut text)?;
    Ok(text
        .lines()
        .filter(|l| l.starts_with("syscensus_"))
        .filter_map(|l| {
            let (name, value) = l.split_once(' ')?;
            Some((name.to_owned(), value.trim().parse().ok()?))
        })
        .collect())
}

/// `VmRSS` and `VmHWM` of a process, in KiB.
fn memory_kib(pid: u32) -> anyhow::Result<(u64, u64)> {
    let status = fs::read_to_string(format!("/proc/{pid}/status"))?;
    let field = |name: &str| -> anyhow::Result<u64> {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .with_context(|| format!("no {name} in /proc/{pid}/status"))
    };
    Ok((field("VmRSS:")?, field("VmHWM:")?))
}

/// CPU time (user + system) of a process, in clock ticks.
fn cpu_ticks(pid: u32) -> anyhow::Result<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name (which may hold spaces): state is 3,
    // utime 14, stime 15.
    let rest = stat.rsplit_once(')').context("bad /proc/PID/stat")?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    Ok(fields[11].parse::<u64>()? + fields[12].parse::<u64>()?)
}

/// The BPF maps a process holds (from its file descriptors), with what
/// `bpftool map show` says each costs in kernel memory.
fn maps_of(pid: u32) -> anyhow::Result<Vec<Value>> {
    let mut ids = BTreeSet::new();
    for entry in fs::read_dir(format!("/proc/{pid}/fdinfo"))? {
        let Ok(text) = fs::read_to_string(entry?.path()) else {
            continue;
        };
        if let Some(id) = text
            .lines()
            .find_map(|l| l.strip_prefix("map_id:"))
            .and_then(|v| v.trim().parse::<u64>().ok())
        {
            ids.insert(id);
        }
    }
    let all = bpftool(&["map", "show"])?;
    Ok(all
        .as_array()
        .into_iter()
        .flatten()
        .filter(|m| m["id"].as_u64().is_some_and(|id| ids.contains(&id)))
        .map(|m| {
            json!({
                "name": m["name"],
                "type": m["type"],
                "max_entries": m["max_entries"],
                "bytes_key": m["bytes_key"],
                "bytes_value": m["bytes_value"],
                "bytes_memlock": m["bytes_memlock"],
            })
        })
        .collect())
}

/// A running agent; stopped (SIGTERM, then SIGKILL) on drop.
struct AgentProcess {
    child: Child,
}

impl AgentProcess {
    fn stop(&mut self) {
        // SAFETY: kill(2) with a signal number.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for AgentProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.stop();
        }
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// The agent with `count` running containers: its memory, CPU and maps.
fn agent_scale(options: &Options, hierarchy: &Hierarchy, count: usize) -> anyhow::Result<Value> {
    let state = tempfile::tempdir()?;
    let mut cgroups = Cgroups::new();
    let path = format!("/syscensus-bench-{}-agent{count}", std::process::id());
    cgroups.mkdir(&hierarchy.dir(&path))?;
    let root = format!("{path}/kubepods");
    let kubepods = hierarchy.dir(&root);
    cgroups.mkdir(&kubepods)?;
    let qos = kubepods.join("besteffort");
    cgroups.mkdir(&qos)?;
    let port = free_port()?;
    let log = fs::File::create(state.path().join("agent.log"))?;
    let mut cmd = Command::new(&options.syscensus);
    // Only the flags given here: no setting inherited from the environment.
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("SYSCENSUS_") || name == "NODE_NAME" {
            cmd.env_remove(name);
        }
    }
    let child = cmd
        // Nothing pinned: its SIGTERM would leave the programs attached.
        .args([
            "agent",
            "--no-kube",
            "--no-pin",
            "--cgroup-root",
            &root,
            "--listen",
        ])
        .arg(format!("127.0.0.1:{port}"))
        .arg("--state-dir")
        .arg(state.path().join("state"))
        .env("SYSCENSUS_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .context("cannot start the agent")?;
    let mut agent = AgentProcess { child };
    let pid = agent.child.id();
    let agent_log = || fs::read_to_string(state.path().join("agent.log")).unwrap_or_default();
    let started = Instant::now();
    let mut last = loop {
        if let Ok(m) = metrics(port)
            && m.get("syscensus_sys_enter_attached") == Some(&1.0)
        {
            break m;
        }
        if let Ok(Some(status)) = agent.child.try_wait() {
            bail!("the agent exited ({status}):\n{}", agent_log());
        }
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(30),
            "the agent did not serve /metrics:\n{}",
            agent_log()
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let (rss_empty, _) = memory_kib(pid)?;

    let mut rng = Rng(0xc0ff_ee00 ^ count as u64);
    let creating = Instant::now();
    for _ in 0..count {
        let pod = qos.join(format!("pod{}", rng.uuid()));
        cgroups.mkdir(&pod)?;
        let dir = pod.join(rng.container_id());
        cgroups.mkdir(&dir)?;
        let child = start_sleeper(&dir)?;
        cgroups.sleepers.push(child);
    }
    let created_s = creating.elapsed().as_secs_f64();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Ok(m) = metrics(port) {
            last = m;
        }
        if last.get("syscensus_containers_tracked") == Some(&(count as f64)) {
            break;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "the agent tracks {:?} of {count} containers:\n{}",
            last.get("syscensus_containers_tracked"),
            agent_log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let tracked_after_s = creating.elapsed().as_secs_f64();
    // Steady state: every container read at least once, then CPU over a
    // window.
    std::thread::sleep(Duration::from_secs(1));
    let window = Duration::from_secs(4);
    let ticks_before = cpu_ticks(pid)?;
    std::thread::sleep(window);
    let ticks = cpu_ticks(pid)? - ticks_before;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let cpu_percent = ticks as f64 / hz / window.as_secs_f64() * 100.0;
    let (rss, hwm) = memory_kib(pid)?;
    if let Ok(m) = metrics(port) {
        last = m;
    }
    let maps = maps_of(pid)?;
    let kernel_bytes: u64 = maps
        .iter()
        .filter_map(|m| m["bytes_memlock"].as_u64())
        .sum();
    let rows = maps.iter().find(|m| m["name"] == "ROWS");
    let per_row = rows.and_then(|m| {
        Some(m["bytes_memlock"].as_u64()? as f64 / m["max_entries"].as_u64()? as f64)
    });
    let metric = |name: &str| last.get(name).copied().unwrap_or(f64::NAN);

    cgroups.stop_sleepers();
    agent.stop();
    cgroups.remove();

    println!(
        "agent with {count:>5} containers: RSS {:>6.1} MiB (peak {:.1}, {:.1} with none), CPU {cpu_percent:.1}%, kernel maps {:.2} MiB ({} rows in use of {}; {:.0} B per row)",
        rss as f64 / 1024.0,
        hwm as f64 / 1024.0,
        rss_empty as f64 / 1024.0,
        kernel_bytes as f64 / (1024.0 * 1024.0),
        metric("syscensus_map_rows_used"),
        metric("syscensus_map_rows_capacity"),
        per_row.unwrap_or(f64::NAN),
    );
    Ok(json!({
        "containers": count,
        "tracked": metric("syscensus_containers_tracked"),
        "rss_kib": rss,
        "hwm_kib": hwm,
        "rss_kib_no_containers": rss_empty,
        "cpu_percent": cpu_percent,
        "cpu_window_s": window.as_secs_f64(),
        "create_s": created_s,
        "all_tracked_after_s": tracked_after_s,
        "metrics_map_bytes": metric("syscensus_map_bytes"),
        "rows_used": metric("syscensus_map_rows_used"),
        "rows_capacity": metric("syscensus_map_rows_capacity"),
        "events_lost": metric("syscensus_events_lost_total"),
        "kernel_map_bytes": kernel_bytes,
        "rows_map_bytes_per_row": per_row,
        "maps": maps,
    }))
}

/// Names a workload of this kind is plausibly called, and the syscalls it
/// plausibly makes.
const KINDS: [&str; 7] = [
    "Deployment",
    "StatefulSet",
    "DaemonSet",
    "Job",
    "CronJob",
    "ReplicaSet",
    "Pod",
];

/// A ContainerProfile object of one workload: 60 to 120 syscalls drawn from
/// the x86_64 table, most of them common to every workload (as the runtime
/// and libc make them) and the rest its own.
fn container_profile(index: usize, rng: &mut Rng) -> Value {
    let table = Arch::X86_64.syscalls();
    let count = 60 + rng.below(61) as usize;
    // The first 40 syscall numbers (read, write, open, mmap, ...) are made by
    // nearly every program; the rest vary by workload.
    let mut names: BTreeSet<&str> = table
        .iter()
        .take(40)
        .filter(|_| rng.below(10) < 9)
        .map(|&(_, name)| name)
        .collect();
    while names.len() < count {
        names.insert(table[rng.below(table.len() as u64) as usize].1);
    }
    let names: Vec<&str> = names.into_iter().collect();
    let kind = KINDS[index % KINDS.len()];
    let namespace = format!("team-{:02}", index % 25);
    let workload = format!("svc-{index:04}");
    let container = ["app", "server", "worker"][index % 3];
    let recording = "bench";
    json!({
        "apiVersion": "syscensus.io/v1alpha1",
        "kind": "ContainerProfile",
        "metadata": {
            "name": syscensus_api::object_name(recording, kind, &workload, container),
            "namespace": namespace,
            "labels": {
                "syscensus.io/recording": recording,
                "syscensus.io/workload-kind": kind.to_ascii_lowercase(),
                "syscensus.io/workload-name": workload,
                "syscensus.io/container": container,
            },
        },
        "spec": {
            "recording": recording,
            "workload": {"kind": kind, "name": workload},
            "container": container,
            "initContainer": false,
            "syscalls": {"SCMP_ARCH_X86_64": names},
            "syscallCount": names.len(),
            "runtimeBaseSet": {"name": "runc-1.1", "syscalls": ["capget", "capset", "execve", "futex", "rt_sigreturn"]},
            "nodes": [{
                "node": format!("node-{}", index % 12),
                "pods": [format!("svc-{index:04}-{:05x}", rng.below(1 << 20))],
                "containers": 1 + rng.below(5),
                "firstSeen": "2025-01-10T08:00:00Z",
                "lastSeen": "2025-01-10T09:00:00Z",
            }],
            "firstSeen": "2025-01-10T08:00:00Z",
            "lastSeen": "2025-01-10T09:00:00Z",
            "lastNewSyscall": "2025-01-10T08:05:00Z",
        },
    })
}

/// `syscensus export --to DIR --from PROFILES`, timed.
fn time_export(options: &Options, from: &Path, to: &Path) -> anyhow::Result<f64> {
    let start = Instant::now();
    let output = Command::new(&options.syscensus)
        .args(["export", "--to"])
        .arg(to)
        .arg("--from")
        .arg(from)
        .output()?;
    let elapsed = start.elapsed().as_secs_f64() * 1000.0;
    anyhow::ensure!(
        output.status.success(),
        "syscensus export failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(elapsed)
}

fn count_files(dir: &Path, extension: &str) -> usize {
    let Ok(entries) = fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| {
            let path = e.path();
            if path.is_dir() {
                count_files(&path, extension)
            } else {
                usize::from(path.extension().is_some_and(|x| x == extension))
            }
        })
        .sum()
}

/// Export of `options.profiles` workload profiles from files.
fn export(options: &Options) -> anyhow::Result<Value> {
    let dir = tempfile::tempdir()?;
    let from = dir.path().join("profiles");
    fs::create_dir(&from)?;
    let mut rng = Rng(0xe4a0_7e11);
    let mut syscalls = Vec::new();
    let mut input_bytes = 0;
    for index in 0..options.profiles {
        let profile = container_profile(index, &mut rng);
        syscalls.push(profile["spec"]["syscallCount"].as_f64().unwrap_or(0.0));
        let text = serde_json::to_string_pretty(&profile)? + "\n";
        input_bytes += text.len();
        fs::write(from.join(format!("cprof-{index:04}.json")), text)?;
    }
    let mut fresh = Vec::new();
    for run in 0..options.export_runs {
        let to = dir.path().join(format!("out-{run}"));
        fresh.push(time_export(options, &from, &to)?);
    }
    let out = dir.path().join("out-0");
    let written = count_files(&out, "json");
    anyhow::ensure!(
        written == options.profiles,
        "the export wrote {written} profiles, not {}",
        options.profiles
    );
    // Again into an export that is up to date: every file compared, none
    // rewritten.
    let mut unchanged = Vec::new();
    for _ in 0..options.export_runs {
        unchanged.push(time_export(options, &from, &out)?);
    }
    let report = json!({
        "profiles": options.profiles,
        "syscalls_per_profile": summary(&syscalls),
        "input_bytes": input_bytes,
        "fresh_ms": summary(&fresh),
        "unchanged_ms": summary(&unchanged),
        "runs": options.export_runs,
    });
    println!(
        "export of {} profiles: median {:.0} ms into an empty directory, {:.0} ms into an up-to-date one",
        options.profiles,
        report["fresh_ms"]["median"].as_f64().unwrap_or(f64::NAN),
        report["unchanged_ms"]["median"]
            .as_f64()
            .unwrap_or(f64::NAN),
    );
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
