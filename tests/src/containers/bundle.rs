//! OCI bundles: a `config.json` shaped like the one `runc spec` writes,
//! adjusted to look like a Kubernetes container (kubelet-like cgroup path,
//! containerd's default capabilities, no terminal, writable root).

use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use tempfile::TempDir;

use super::{
    cgroup::{self, CgroupStyle, Qos},
    container_id, pod_uid,
};

/// The capabilities containerd's CRI plugin gives a container by default
/// (the Docker set), so runtime behaviour matches a Kubernetes pod's.
pub const DEFAULT_CAPABILITIES: [&str; 14] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// What a container runs and how: the variable parts of `config.json`.
#[derive(Debug, Clone)]
pub struct Spec {
    /// The container id, fresh and random (64 hex digits).
    pub id: String,
    /// The UID of the pod the container pretends to belong to (fresh).
    pub pod_uid: String,
    /// `process.args`.
    pub args: Vec<String>,
    /// `process.env`: a PATH by default.
    pub env: Vec<String>,
    /// `process.cwd`: `/` by default.
    pub cwd: String,
    /// `process.noNewPrivileges`: false by default, as for a Kubernetes
    /// container unless `allowPrivilegeEscalation: false`.
    pub no_new_privileges: bool,
    /// `process.capabilities` (bounding, effective, permitted).
    pub capabilities: Vec<String>,
    /// `linux.cgroupsPath`: by default the kubelet's cgroupfs path for a
    /// best-effort pod, `/kubepods/besteffort/pod<uid>/<id>`.
    pub cgroups_path: Option<String>,
    /// `linux.seccomp`: an OCI seccomp object (a profile file's JSON).
    pub seccomp: Option<Value>,
    /// Share the host's network namespace, like a `hostNetwork` pod.
    pub host_network: bool,
    /// The UTS namespace's hostname.
    pub hostname: String,
    /// `hooks`: OCI hooks (`createContainer`, `startContainer`, ...).
    pub hooks: Option<Value>,
    /// `annotations`, such as crun's `run.oci.delegate-cgroup`.
    pub annotations: Vec<(String, String)>,
    /// `linux.resources.devices` denies every device (as containerd's do).
    /// On cgroup v2 the runtime then loads a device program, which crun
    /// cannot do here: it raises RLIMIT_MEMLOCK first, and root lacks
    /// CAP_SYS_RESOURCE on this machine.
    pub deny_devices: bool,
}

impl Spec {
    /// A spec running `args`, with a fresh id and pod UID and the cgroupfs
    /// path of a best-effort pod.
    pub fn new(args: &[&str]) -> Self {
        let id = container_id();
        let pod_uid = pod_uid();
        let cgroups_path =
            cgroup::container_cgroup(CgroupStyle::Cgroupfs, Qos::BestEffort, &pod_uid, &id);
        Self {
            id,
            pod_uid,
            args: args.iter().map(|a| (*a).to_owned()).collect(),
            env: vec![
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_owned(),
            ],
            cwd: "/".to_owned(),
            no_new_privileges: false,
            capabilities: DEFAULT_CAPABILITIES
                .iter()
                .map(|c| (*c).to_owned())
                .collect(),
            cgroups_path: Some(cgroups_path),
            seccomp: None,
            host_network: false,
            hostname: "syscensus-test".to_owned(),
            hooks: None,
            annotations: Vec::new(),
            deny_devices: true,
        }
    }

    /// Sets whether `linux.resources.devices` denies every device.
    pub fn deny_devices(mut self, on: bool) -> Self {
        self.deny_devices = on;
        self
    }

    /// Sets `hooks` (an OCI hooks object).
    pub fn hooks(mut self, hooks: Value) -> Self {
        self.hooks = Some(hooks);
        self
    }

    /// Adds an annotation.
    pub fn annotation(mut self, key: &str, value: &str) -> Self {
        self.annotations.push((key.to_owned(), value.to_owned()));
        self
    }

    /// Places the container where the kubelet's `style` driver would for a
    /// pod of class `qos`.
    pub fn cgroup(mut self, style: CgroupStyle, qos: Qos) -> Self {
        self.cgroups_path = Some(cgroup::container_cgroup(
            style,
            qos,
            &self.pod_uid,
            &self.id,
        ));
        self
    }

    /// Sets `linux.seccomp`.
    pub fn seccomp(mut self, profile: Value) -> Self {
        self.seccomp = Some(profile);
        self
    }

    /// Sets `process.noNewPrivileges`.
    pub fn no_new_privileges(mut self, on: bool) -> Self {
        self.no_new_privileges = on;
        self
    }

    /// Shares the host's network namespace.
    pub fn host_network(mut self, on: bool) -> Self {
        self.host_network = on;
        self
    }

    /// The `config.json` for a bundle whose root filesystem is `rootfs`.
    pub fn to_config(&self, rootfs: &Path) -> Value {
        let mut namespaces = vec![
            json!({"type": "pid"}),
            json!({"type": "ipc"}),
            json!({"type": "uts"}),
            json!({"type": "mount"}),
        ];
        if !self.host_network {
            namespaces.push(json!({"type": "network"}));
        }
        let devices = if self.deny_devices {
            json!([{"allow": false, "access": "rwm"}])
        } else {
            json!([])
        };
        let mut linux = json!({
            "resources": {"devices": devices},
            "namespaces": namespaces,
            "maskedPaths": [
                "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys",
                "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
                "/proc/sched_debug", "/sys/firmware", "/proc/scsi"
            ],
            "readonlyPaths": [
                "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"
            ],
        });
        if let Some(path) = &self.cgroups_path {
            linux["cgroupsPath"] = json!(path);
        }
        if let Some(seccomp) = &self.seccomp {
            linux["seccomp"] = seccomp.clone();
        }
        let mut config = json!({
            "ociVersion": "1.0.2-dev",
            "process": {
                "terminal": false,
                "user": {"uid": 0, "gid": 0},
                "args": self.args,
                "env": self.env,
                "cwd": self.cwd,
                "capabilities": {
                    "bounding": self.capabilities,
                    "effective": self.capabilities,
                    "permitted": self.capabilities,
                },
                "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
                "noNewPrivileges": self.no_new_privileges,
            },
            "root": {"path": rootfs, "readonly": false},
            "hostname": self.hostname,
            "mounts": [
                {"destination": "/proc", "type": "proc", "source": "proc"},
                {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
                 "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
                {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
                 "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
                {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
                 "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
                {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
                 "options": ["nosuid", "noexec", "nodev"]},
                {"destination": "/sys", "type": "sysfs", "source": "sysfs",
                 "options": ["nosuid", "noexec", "nodev", "ro"]},
                {"destination": "/tmp", "type": "tmpfs", "source": "tmpfs",
                 "options": ["nosuid", "nodev", "mode=1777"]},
            ],
            "linux": linux,
        });
        if let Some(hooks) = &self.hooks {
            config["hooks"] = hooks.clone();
        }
        if !self.annotations.is_empty() {
            config["annotations"] = self
                .annotations
                .iter()
                .map(|(k, v)| (k.clone(), json!(v)))
                .collect::<serde_json::Map<String, Value>>()
                .into();
        }
        config
    }
}

/// A bundle directory holding `config.json`; its `root.path` points at a
/// [`super::Rootfs`] by absolute path, so the rootfs must outlive the runs.
/// Removed on drop.
#[derive(Debug)]
pub struct Bundle {
    dir: TempDir,
    spec: Spec,
}

impl Bundle {
    /// Writes the bundle for `spec` over the root filesystem at `rootfs`.
    pub fn new(rootfs: &Path, spec: Spec) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("syscensus-bundle-")
            .tempdir()
            .unwrap_or_else(|e| panic!("failed to create a bundle directory: {e}"));
        let config = spec.to_config(rootfs);
        std::fs::write(
            dir.path().join("config.json"),
            serde_json::to_vec_pretty(&config).unwrap_or_default(),
        )
        .unwrap_or_else(|e| panic!("failed to write config.json: {e}"));
        Self { dir, spec }
    }

    /// The bundle directory.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The spec the bundle was written from.
    pub fn spec(&self) -> &Spec {
        &self.spec
    }

    /// The container id the bundle's runs use.
    pub fn id(&self) -> &str {
        &self.spec.id
    }

    /// A file in the bundle directory, e.g. the detached container's
    /// `stdout.log`.
    pub fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}
