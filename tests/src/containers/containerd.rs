//! A private containerd with its CRI plugin, started by the test and
//! stopped by PID on drop.
//!
//! Its root, state, socket, CNI and opt directories are in a temporary
//! directory; the CRI plugin uses the cgroupfs driver (no systemd here),
//! `restrict_oom_score_adj` (root lacks CAP_SYS_RESOURCE), and the locally
//! built [`PAUSE_IMAGE`](super::PAUSE_IMAGE) as sandbox image (no registry
//! is reachable). Pods use the host's network, so no CNI plugin is needed.

use std::{
    ffi::CString,
    fs::File,
    os::unix::ffi::OsStrExt,
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    sync::Mutex,
    time::{Duration, Instant},
};

use tempfile::TempDir;

use super::{
    PAUSE_IMAGE, cleanup_failed,
    cri::Cri,
    image::ImageTar,
    runtime::{Runtime, wait_timeout},
    wait_for,
};
use crate::require_program;

/// How long containerd may take to serve CRI after it starts.
const START_TIMEOUT: Duration = Duration::from_secs(15);

/// A running containerd. Drop stops and removes every pod it still has,
/// stops the daemon (SIGTERM, then SIGKILL) and its shims by PID, unmounts
/// what it left mounted under its directories, and removes them.
#[derive(Debug)]
pub struct Containerd {
    // Dropped by hand in `Drop`, before the directory.
    cri: Option<Cri>,
    child: Child,
    dir: TempDir,
    _run_dir: RunDir,
}

impl Containerd {
    /// Writes the configuration and starts containerd; returns once its CRI
    /// plugin reports the runtime ready.
    pub fn start() -> Self {
        Self::start_with(Runtime::Runc)
    }

    /// As [`start`](Self::start), with the runc shim driving `runtime`
    /// (crun speaks runc's command line), as nodes that run crun under
    /// containerd configure it.
    pub fn start_with(runtime: Runtime) -> Self {
        let containerd = require_program("containerd", "containerd");
        let runc = runtime.binary();
        require_program("containerd-shim-runc-v2", "containerd");
        let dir = tempfile::Builder::new()
            .prefix("syscensus-containerd-")
            .tempdir()
            .unwrap_or_else(|e| panic!("failed to create a containerd directory: {e}"));
        let d = dir.path();
        for sub in ["root", "state", "opt", "cni/bin", "cni/conf"] {
            std::fs::create_dir_all(d.join(sub))
                .unwrap_or_else(|e| panic!("failed to create {sub} for containerd: {e}"));
        }
        let config = config_toml(d, &runc);
        std::fs::write(d.join("config.toml"), config)
            .unwrap_or_else(|e| panic!("failed to write containerd's config: {e}"));
        let log = File::create(d.join("containerd.log"))
            .unwrap_or_else(|e| panic!("failed to create containerd.log: {e}"));
        let run_dir = RunDir::acquire();
        let child = Command::new(containerd)
            .arg("--config")
            .arg(d.join("config.toml"))
            .stdin(Stdio::null())
            .stdout(
                log.try_clone()
                    .unwrap_or_else(|e| panic!("failed to share containerd.log: {e}")),
            )
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("failed to start containerd: {e}"));
        let mut this = Self {
            cri: None,
            child,
            dir,
            _run_dir: run_dir,
        };
        let socket = this.socket();
        wait_for(START_TIMEOUT, "containerd's socket", || {
            if let Ok(Some(status)) = this.child.try_wait() {
                panic!(
                    "containerd exited ({status}) before serving:\n{}",
                    this.log()
                );
            }
            socket.exists().then_some(())
        });
        let cri = Cri::connect(&socket);
        wait_for(
            START_TIMEOUT,
            "containerd's CRI runtime to be ready",
            || cri.runtime_ready().then_some(()),
        );
        this.cri = Some(cri);
        this
    }

    /// The PID of the containerd process.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The runtime's state directory for the CRI's containers (`--root` of
    /// runc or crun: the shim's `Root` and the namespace `k8s.io`), where
    /// `<runtime> --root <this> list` finds the containers it runs.
    pub fn runtime_root(&self) -> PathBuf {
        self.dir.path().join("runc/k8s.io")
    }

    /// The gRPC socket (containerd's API and CRI).
    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("containerd.sock")
    }

    /// containerd's root directory (content, snapshots, metadata).
    pub fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    /// The CRI client.
    pub fn cri(&self) -> &Cri {
        self.cri
            .as_ref()
            .unwrap_or_else(|| panic!("containerd's CRI client is gone"))
    }

    /// What containerd logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("containerd.log")).unwrap_or_default()
    }

    /// Runs `ctr -a <socket> -n k8s.io args`.
    pub fn ctr(&self, args: &[&str]) -> Output {
        let ctr = require_program("ctr", "containerd");
        Command::new(ctr)
            .arg("-a")
            .arg(self.socket())
            .args(["-n", "k8s.io"])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("failed to run ctr {args:?}: {e}"))
    }

    /// Imports `image` into the `k8s.io` namespace (unpacked for the CRI
    /// plugin's snapshotter) and waits until the CRI image service has it:
    /// the CRI plugin learns of imported images from events.
    pub fn import(&self, image: &ImageTar) {
        let path = image.path();
        let output = self.ctr(&["images", "import", &path.display().to_string()]);
        assert!(
            output.status.success(),
            "ctr images import {} ({}) failed: {}\n{}",
            path.display(),
            image.name(),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        wait_for(
            Duration::from_secs(10),
            &format!("the CRI plugin to list image {}", image.name()),
            || self.cri().image_present(image.name()).then_some(()),
        );
    }

    /// Imports the OCI archive at `path` (such as `cargo xtask image`
    /// writes) and waits until the CRI image service knows it as `name`.
    pub fn import_archive(&self, path: &Path, name: &str) {
        let output = self.ctr(&["images", "import", &path.display().to_string()]);
        assert!(
            output.status.success(),
            "ctr images import {} failed: {}\n{}",
            path.display(),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        wait_for(
            Duration::from_secs(10),
            &format!(
                "the CRI plugin to list image {name} from {} (ctr named it: {})",
                path.display(),
                String::from_utf8_lossy(&output.stdout).trim()
            ),
            || self.cri().image_present(name).then_some(()),
        );
    }

    /// Imports the sandbox image and a busybox image named
    /// [`BUSYBOX_IMAGE`](super::BUSYBOX_IMAGE) with `extra` static
    /// executables (host path, image path).
    pub fn import_test_images(&self, extra: &[(&Path, &str)]) {
        self.import(&ImageTar::pause());
        self.import(&ImageTar::busybox(super::BUSYBOX_IMAGE, extra));
    }
}

fn config_toml(dir: &Path, runc: &Path) -> String {
    let d = dir.display();
    format!(
        r#"version = 2
root = "{d}/root"
state = "{d}/state"
# Plugins that cannot work here and only slow the start down.
disabled_plugins = [
  "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.zfs",
  "io.containerd.tracing.processor.v1.otlp",
  "io.containerd.internal.v1.tracing",
]

[grpc]
  address = "{d}/containerd.sock"

[ttrpc]
  address = "{d}/containerd.sock.ttrpc"

[debug]
  address = ""
  level = "info"

[metrics]
  address = ""

[plugins."io.containerd.internal.v1.opt"]
  path = "{d}/opt"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{PAUSE_IMAGE}"
  restrict_oom_score_adj = true
  disable_apparmor = true
  enable_selinux = false
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"

  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"

    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"

      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        BinaryName = "{runc}"
        Root = "{d}/runc"
        SystemdCgroup = false

  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{d}/cni/bin"
    conf_dir = "{d}/cni/conf"
"#,
        runc = runc.display()
    )
}

impl Drop for Containerd {
    fn drop(&mut self) {
        let mut failures = Vec::new();
        if let Some(cri) = self.cri.take() {
            // Pods dropped normally are gone already; these leaked.
            if matches!(self.child.try_wait(), Ok(None)) {
                match cri.try_pods() {
                    Ok(pods) => {
                        for pod in pods {
                            if let Err(status) = cri.stop_and_remove_pod(&pod.id) {
                                failures.push(format!("removing pod {}: {status}", pod.id));
                            }
                        }
                    }
                    Err(status) => failures.push(format!("listing pods: {status}")),
                }
            }
        }
        let pid = self.child.id();
        terminate(&mut self.child, &mut failures);
        // A shim outlives containerd while its pod exists; it serves only
        // this containerd, found by the socket address it was given. The
        // shim of a pod removed a moment ago may still be on its way out.
        let socket = self.socket();
        let deadline = Instant::now() + Duration::from_secs(2);
        while !shims_of(&socket).is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        for shim in shims_of(&socket) {
            // SAFETY: kill has no memory-safety preconditions.
            unsafe { libc::kill(shim, libc::SIGKILL) };
            failures.push(format!("killed shim {shim} left by containerd {pid}"));
        }
        let root = self.dir.path().to_path_buf();
        for mount in mounts_under(&root) {
            let c = CString::new(mount.as_os_str().as_bytes()).unwrap_or_default();
            // SAFETY: the path is a NUL-terminated string that outlives the call.
            if unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) } != 0 {
                failures.push(format!(
                    "umount {}: {}",
                    mount.display(),
                    std::io::Error::last_os_error()
                ));
            } else {
                failures.push(format!("unmounted {} left by containerd", mount.display()));
            }
        }
        if !failures.is_empty() {
            cleanup_failed(&format!(
                "containerd {pid}: {}\ncontainerd's log:\n{}",
                failures.join("; "),
                self.log()
            ));
        }
    }
}

/// The shims' socket directory, `/run/containerd/s`, which containerd 1.6
/// does not let a configuration move. Removed (if empty) when the last
/// [`Containerd`] of the process stops, unless `/run/containerd` existed
/// before the first started.
#[derive(Debug)]
struct RunDir {
    _private: (),
}

/// Live [`RunDir`]s, and whether this process made `/run/containerd`.
static RUN_DIR: Mutex<(usize, bool)> = Mutex::new((0, false));

const RUN_CONTAINERD: &str = "/run/containerd";

impl RunDir {
    fn acquire() -> Self {
        let mut state = RUN_DIR.lock().unwrap_or_else(|e| e.into_inner());
        if state.0 == 0 {
            state.1 = !Path::new(RUN_CONTAINERD).exists();
        }
        state.0 += 1;
        Self { _private: () }
    }
}

impl Drop for RunDir {
    fn drop(&mut self) {
        let mut state = RUN_DIR.lock().unwrap_or_else(|e| e.into_inner());
        state.0 -= 1;
        if state.0 == 0 && state.1 {
            // Only empty directories go: a shim of another containerd would
            // keep its socket there.
            let _ = std::fs::remove_dir(Path::new(RUN_CONTAINERD).join("s"));
            let _ = std::fs::remove_dir(RUN_CONTAINERD);
        }
    }
}

/// SIGTERM, up to 5 s to exit, then SIGKILL.
fn terminate(child: &mut Child, failures: &mut Vec<String>) {
    if let Ok(Some(_)) = child.try_wait() {
        return;
    }
    let pid = child.id() as libc::pid_t;
    // SAFETY: kill has no memory-safety preconditions; the child is not
    // reaped yet, so the PID is still ours.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    if wait_timeout(child, Duration::from_secs(5)).is_none() {
        let _ = child.kill();
        let _ = child.wait();
        failures.push(format!("containerd {pid} ignored SIGTERM for 5 s"));
    }
}

/// PIDs of `containerd-shim-*` processes started with `-address <socket>`.
fn shims_of(socket: &Path) -> Vec<libc::pid_t> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| {
            let pid: libc::pid_t = e.file_name().to_str()?.parse().ok()?;
            let cmdline = std::fs::read(e.path().join("cmdline")).ok()?;
            let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
            let is_shim = args
                .first()
                .is_some_and(|a| a.windows(15).any(|w| w == b"containerd-shim"));
            let ours = args
                .windows(2)
                .any(|w| w[0] == b"-address" && w[1] == socket.as_os_str().as_bytes());
            (is_shim && ours).then_some(pid)
        })
        .collect()
}

/// Mount points under `dir` in this mount namespace, deepest first.
pub fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut mounts: Vec<PathBuf> = mountinfo
        .lines()
        .filter_map(|l| l.split_whitespace().nth(4))
        .map(PathBuf::from)
        .filter(|m| m.starts_with(dir))
        .collect();
    mounts.sort_by_key(|m| std::cmp::Reverse(m.components().count()));
    mounts.dedup();
    mounts
}
