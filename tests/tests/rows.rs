//! The kernel program's rows, seen through its pinned maps: nothing is left
//! behind when a recording ends, and what `sys_enter` caches about them
//! never hides a syscall from a row.
#![allow(clippy::unwrap_used, reason = "tests")]
#![allow(
    unused_crate_dependencies,
    reason = "an integration test uses some of its package's dependencies"
)]

use std::{
    os::{fd::AsRawFd as _, unix::process::CommandExt as _},
    path::PathBuf,
    process::{Child, Command},
    time::{Duration, Instant},
};

use aya::maps::{HashMap, Map, MapData};
use syscensus::bpf::{PIN_LAYOUT, Tracer, TracerOptions};
use syscensus_common::{ROWS_MAP, Row, RowKey, abi};
use syscensus_tests::{
    containers::{cgroup::unified_root, random_hex},
    require_root,
};

/// A pin directory of its own on the BPF file system, removed afterwards.
struct PinDir(PathBuf);

impl Drop for PinDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A compat row that a `sys_enter` racing an unmark made after its
/// cgroup's rows were removed (it found the workload's row just before,
/// and made the compat one just after): the next unmark removes it, so it
/// neither holds a row of the map nor keeps its prefilter slot set.
#[test]
fn rows_left_without_their_cgroup_are_removed() {
    require_root();
    assert!(
        std::path::Path::new("/sys/fs/bpf").join(".").exists(),
        "/sys/fs/bpf is not mounted: scripts/setup mounts it"
    );
    let pins = PinDir(PathBuf::from(format!(
        "/sys/fs/bpf/syscensus-test-{}",
        random_hex(8)
    )));
    let mut tracer = Tracer::load(&TracerOptions {
        attach_sys_enter: false,
        pin_dir: Some(pins.0.clone()),
        ..TracerOptions::default()
    })
    .unwrap();
    let data = MapData::from_pin(pins.0.join(PIN_LAYOUT).join(ROWS_MAP)).unwrap();
    let mut rows: HashMap<MapData, RowKey, Row> = HashMap::try_from(Map::HashMap(data)).unwrap();
    // cgroup ids are inode numbers: these two are no cgroup's.
    let (gone, other) = (u64::MAX - 7, u64::MAX - 8);
    let orphan = RowKey::new(gone, abi::COMPAT);
    rows.insert(orphan, Row::new(0), 0).unwrap();
    tracer.mark(other).unwrap();
    tracer.unmark(other).unwrap();
    assert!(
        rows.get(&orphan, 0).is_err(),
        "the compat row of an unmarked cgroup is still there"
    );
    assert!(tracer.marked().unwrap().is_empty());
    drop(tracer);
}

/// cgroups of their own and a process in them, removed afterwards.
struct Cgroups {
    dirs: Vec<PathBuf>,
    child: Option<Child>,
}

impl Drop for Cgroups {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
        for dir in &self.dirs {
            let _ = std::fs::remove_dir(dir);
        }
    }
}

/// `read`, `openat` and `close`: what `read x < /dev/null` makes in a loop.
const LOOP_SYSCALLS: [u32; 3] = [0, 257, 3];

/// Waits (10 s at most) until `cgroup_id`'s native row holds every syscall
/// of the shell's loop.
fn wait_for_loop(tracer: &Tracer, cgroup_id: u64, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let seen = tracer
            .snapshot(cgroup_id)
            .unwrap()
            .and_then(|s| s.seen.get(&abi::NATIVE).cloned())
            .unwrap_or_default();
        if LOOP_SYSCALLS.iter().all(|nr| seen.contains(nr)) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: after 10 s the row holds {seen:?}, not all of {LOOP_SYSCALLS:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `sys_enter` remembers, per thread and cgroup, the syscalls it set in the
/// row they go to, and skips the row's lookup for them: a cgroup recorded
/// again after its rows were freed, and a cgroup the same thread moves to,
/// get every syscall the thread goes on making, though the thread made them
/// all before.
#[test]
fn a_thread_recorded_again_or_elsewhere_fills_the_new_row() {
    require_root();
    let root = unified_root();
    let name = format!("syscensus-test-{}", random_hex(8));
    let mut cgroups = Cgroups {
        dirs: vec![
            root.join(format!("{name}-a")),
            root.join(format!("{name}-b")),
        ],
        child: None,
    };
    for dir in &cgroups.dirs {
        std::fs::create_dir(dir).unwrap();
    }
    let id = |dir: &PathBuf| std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(dir).unwrap());
    let (a, b) = (id(&cgroups.dirs[0]), id(&cgroups.dirs[1]));
    let mut tracer = Tracer::load(&TracerOptions {
        attach_sys_enter: true,
        ..TracerOptions::default()
    })
    .unwrap();
    let procs = std::fs::OpenOptions::new()
        .write(true)
        .open(cgroups.dirs[0].join("cgroup.procs"))
        .unwrap();
    let fd = procs.as_raw_fd();
    let mut shell = Command::new("sh");
    shell.args(["-c", "while :; do read x < /dev/null; done"]);
    // SAFETY: only write(2) and sched_setaffinity(2) between fork and exec.
    unsafe {
        shell.pre_exec(move || {
            if libc::write(fd, b"0".as_ptr().cast(), 1) != 1 {
                return Err(std::io::Error::last_os_error());
            }
            // On one CPU: the cache is per CPU, and a thread that moved to
            // another would fill the row from there.
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            libc::CPU_SET(0, &mut set);
            if libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &set) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = shell.spawn().unwrap();
    let pid = child.id();
    cgroups.child = Some(child);
    drop(procs);

    tracer.mark_recording(a, pid, &[]).unwrap();
    wait_for_loop(&tracer, a, "recorded");
    tracer.unmark(a).unwrap();
    tracer.mark_recording(a, pid, &[]).unwrap();
    wait_for_loop(&tracer, a, "recorded again after its rows were freed");

    tracer.mark_recording(b, pid, &[]).unwrap();
    std::fs::write(cgroups.dirs[1].join("cgroup.procs"), pid.to_string()).unwrap();
    wait_for_loop(&tracer, b, "moved to another recorded cgroup");
    tracer.unmark(a).unwrap();
    tracer.unmark(b).unwrap();
    drop(tracer);
}
