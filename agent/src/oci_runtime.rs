//! Which OCI runtime, at which version, started a container: parsed from
//! what a node can read about it (the runtime's `--version` banner, its
//! `features` JSON, containerd's CRI container info, an executable's path,
//! a task's comm, the bytes of the binary). Pure: no I/O; the daemon reads,
//! this module decides. What it cannot tell is `None`, and the base sets
//! then fall back to a set that covers every version ([`crate::basesets`]).
use std::{cmp::Ordering, fmt};

/// An OCI runtime syscensus knows by name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Runtime {
    /// runc (opencontainers/runc), containerd's default.
    Runc,
    /// crun (containers/crun), CRI-O's default on many distributions.
    Crun,
    /// youki (youki-dev/youki).
    Youki,
    /// gVisor's runsc: the workload runs on gVisor's kernel, so the host's
    /// syscalls are the sandbox's, not the workload's.
    Runsc,
    /// Kata Containers: the workload runs in a virtual machine, out of
    /// sight of the host's kernel.
    Kata,
}

impl Runtime {
    /// Every runtime, in a fixed order.
    pub const ALL: [Runtime; 5] = [
        Runtime::Runc,
        Runtime::Crun,
        Runtime::Youki,
        Runtime::Runsc,
        Runtime::Kata,
    ];

    /// The name base sets and recordings use (`runc`, `crun`, ...).
    pub const fn name(self) -> &'static str {
        match self {
            Runtime::Runc => "runc",
            Runtime::Crun => "crun",
            Runtime::Youki => "youki",
            Runtime::Runsc => "runsc",
            Runtime::Kata => "kata",
        }
    }

    /// The runtime called `name` ([`Runtime::name`], case-insensitive).
    pub fn from_name(name: &str) -> Option<Runtime> {
        Runtime::ALL
            .into_iter()
            .find(|r| r.name().eq_ignore_ascii_case(name))
    }

    /// Whether the host kernel sees the workload's own syscalls: false for
    /// sandboxes (gVisor, Kata), whose recordings say nothing about what the
    /// workload needs.
    pub const fn host_sees_workload(self) -> bool {
        matches!(self, Runtime::Runc | Runtime::Crun | Runtime::Youki)
    }
}

impl fmt::Display for Runtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A runtime's version: `major.minor.patch`, a missing patch read as 0
/// (crun's `1.8`), a pre-release (`1.4.0-rc.1`) ordered before its
/// release, build metadata (`+ds1`, a distribution's suffix) ignored.
/// Runtime versions are not all semver (crun's `1.14`), hence this small
/// parser rather than the `semver` crate.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Version {
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
    /// The pre-release part (`rc.1`), if any.
    pub pre: Option<String>,
}

impl Version {
    /// A release version.
    pub const fn new(major: u32, minor: u32, patch: u32) -> Version {
        Version {
            major,
            minor,
            patch,
            pre: None,
        }
    }

    /// Parses `1.2.8`, `v1.2.8`, `1.8`, `1.1.5+ds1`, `1.4.0-rc.1`.
    pub fn parse(text: &str) -> Option<Version> {
        let text = text.trim();
        let text = text.strip_prefix('v').unwrap_or(text);
        let text = text.split('+').next().unwrap_or(text);
        let (numbers, pre) = match text.split_once('-') {
            Some((numbers, pre)) if !pre.is_empty() => (numbers, Some(pre.to_owned())),
            Some(_) => return None,
            None => (text, None),
        };
        let mut parts = numbers.split('.');
        let number = |part: Option<&str>| -> Option<u32> {
            let part = part?;
            if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) || part.len() > 9 {
                return None;
            }
            part.parse().ok()
        };
        let major = number(parts.next())?;
        let minor = number(parts.next())?;
        let patch = match parts.next() {
            Some(part) => number(Some(part))?,
            None => 0,
        };
        if parts.next().is_some() {
            return None;
        }
        Some(Version {
            major,
            minor,
            patch,
            pre,
        })
    }
}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.major, self.minor, self.patch)
            .cmp(&(other.major, other.minor, other.patch))
            .then_with(|| match (&self.pre, &other.pre) {
                (None, None) => Ordering::Equal,
                (None, Some(_)) => Ordering::Greater,
                (Some(_), None) => Ordering::Less,
                (Some(a), Some(b)) => a.cmp(b),
            })
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)?;
        if let Some(pre) = &self.pre {
            write!(f, "-{pre}")?;
        }
        Ok(())
    }
}

/// What is known of the runtime that started a container.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    pub runtime: Runtime,
    /// `None` when the source does not tell.
    pub version: Option<Version>,
}

/// From a runtime's `--version` output: `runc version 1.1.5+ds1`, `crun
/// version 1.8.1`, `youki version 0.5.0`, `runsc version release-...`,
/// `kata-runtime  : 3.2.0`. Only the first line is read.
pub fn from_version_output(text: &str) -> Option<Identity> {
    let first = text.lines().next()?.trim();
    if let Some((name, version)) = first.split_once(" version ") {
        let runtime = from_exe_name(name.trim())?;
        // runsc's versions are release dates, not comparable with others.
        let version = (runtime != Runtime::Runsc)
            .then(|| Version::parse(version.split_whitespace().next().unwrap_or("")))
            .flatten();
        return Some(Identity { runtime, version });
    }
    let (name, version) = first.split_once(':')?;
    let runtime = from_exe_name(name.trim())?;
    Some(Identity {
        runtime,
        version: Version::parse(version),
    })
}

/// From a runtime's `features` JSON (`runc features`, `crun features`; the
/// OCI runtime features document, also what containerd 2's introspection
/// reports for a runtime): its annotations name the runtime and version
/// (`org.opencontainers.runc.version`, `run.oci.crun.version`).
pub fn from_features_json(text: &str) -> Option<Identity> {
    let value: serde_json::Value = serde_json::from_str(text).ok()?;
    let annotations = value.get("annotations")?.as_object()?;
    let keys = [
        ("org.opencontainers.runc.version", Runtime::Runc),
        ("run.oci.crun.version", Runtime::Crun),
    ];
    keys.into_iter().find_map(|(key, runtime)| {
        let version = annotations.get(key)?.as_str()?;
        Some(Identity {
            runtime,
            version: Version::parse(version),
        })
    })
}

/// From containerd's CRI container info (`ContainerStatus` with `verbose`,
/// the `info` entry): its `runtimeType` (`io.containerd.runc.v2`) and the
/// runtime options' binary name (`BinaryName`, `binary_name`: crun is
/// usually run through containerd's runc shim with `BinaryName` set). No
/// version: containerd does not report it there.
pub fn from_containerd_info(text: &str) -> Option<Identity> {
    let value: serde_json::Value = serde_json::from_str(text).ok()?;
    let runtime_type = value.get("runtimeType").and_then(|v| v.as_str());
    let options = value.get("runtimeOptions");
    let binary = ["BinaryName", "binary_name"]
        .iter()
        .find_map(|key| options?.get(*key)?.as_str())
        .filter(|b| !b.is_empty());
    let runtime = match (runtime_type, binary) {
        (_, Some(binary)) => from_exe_path(binary)?,
        (Some(t), None) if t.starts_with("io.containerd.runc.") => Runtime::Runc,
        (Some(t), None) if t.starts_with("io.containerd.runsc.") => Runtime::Runsc,
        (Some(t), None) if t.starts_with("io.containerd.kata") => Runtime::Kata,
        (Some(t), None) if t.starts_with("io.containerd.youki.") => Runtime::Youki,
        _ => return None,
    };
    Some(Identity {
        runtime,
        version: None,
    })
}

/// From an executable's name (`runc`, `crun`, `kata-runtime`,
/// `containerd-shim-runsc-v1`, ...).
fn from_exe_name(name: &str) -> Option<Runtime> {
    let name = name.to_ascii_lowercase();
    let name = name.strip_suffix(".amd64").unwrap_or(&name);
    let name = name.strip_suffix(".arm64").unwrap_or(name);
    match name {
        "runc" | "docker-runc" => Some(Runtime::Runc),
        "crun" => Some(Runtime::Crun),
        "youki" => Some(Runtime::Youki),
        "runsc" | "containerd-shim-runsc-v1" => Some(Runtime::Runsc),
        "kata-runtime" | "containerd-shim-kata-v2" => Some(Runtime::Kata),
        _ => None,
    }
}

/// From an executable's path as `/proc/<pid>/exe` or a configuration names
/// it: `/usr/sbin/runc`, `/usr/bin/crun (deleted)`, and the sealed copies
/// runc and crun execute themselves from (`/memfd:runc_cloned:/proc/self/exe
/// (deleted)`, `/memfd:crun (deleted)`).
pub fn from_exe_path(path: &str) -> Option<Runtime> {
    let path = path.trim();
    let path = path.strip_suffix(" (deleted)").unwrap_or(path);
    if let Some(memfd) = path.strip_prefix("/memfd:") {
        let name = memfd.split([':', ' ']).next().unwrap_or("");
        return match name {
            "runc_cloned" => Some(Runtime::Runc),
            n if n.starts_with("crun") => Some(Runtime::Crun),
            _ => None,
        };
    }
    from_exe_name(path.rsplit('/').next().unwrap_or(path))
}

/// From a task's comm (`/proc/<pid>/comm`, or what a BPF program read with
/// `bpf_get_current_comm`) while the runtime still runs it: runc names its
/// stages `runc:[0:PARENT]`, `runc:[1:CHILD]`, `runc:[2:INIT]`, youki
/// `youki:[1:INTER]`, `youki:[2:INIT]`; crun keeps `crun`.
pub fn from_comm(comm: &str) -> Option<Runtime> {
    let comm = comm.trim_end_matches(['\0', '\n']);
    let name = comm.split(":[").next().unwrap_or(comm);
    from_exe_name(name)
}

/// Go's build information marker in a Go binary (`runtime/debug.BuildInfo`).
const GO_BUILDINFO: &[u8] = b"\xff Go buildinf:";

/// From the bytes of a runtime's executable: the runtime by the main
/// module path in Go's build information (runc: `path\tgithub.com/
/// opencontainers/runc`) or crun's `%s version %s` banner beside libcrun's
/// strings; the version only where the binary records it in a form
/// that cannot be mistaken: a Go module version (`mod\t<path>\tv1.2.8`, set
/// by `go install`, not by runc's Makefile, which leaves `(devel)`). A
/// version guessed from loose strings could name a smaller base set than
/// the runtime needs, so none is guessed.
pub fn from_binary(bytes: &[u8]) -> Option<Identity> {
    if find(bytes, GO_BUILDINFO).is_some() {
        let modules = [
            ("github.com/opencontainers/runc", Runtime::Runc),
            ("github.com/youki-dev/youki", Runtime::Youki),
            ("gvisor.dev/gvisor", Runtime::Runsc),
        ];
        for (module, runtime) in modules {
            let path_line = [b"path\t", module.as_bytes(), b"\n"].concat();
            let path_line_runsc = [b"path\t", module.as_bytes(), b"/"].concat();
            if find(bytes, &path_line).is_none() && find(bytes, &path_line_runsc).is_none() {
                continue;
            }
            let mod_line = [b"mod\t", module.as_bytes(), b"\t"].concat();
            let version = find(bytes, &mod_line).and_then(|at| {
                let rest = &bytes[at + mod_line.len()..];
                let end = rest.iter().position(|b| *b == b'\t' || *b == b'\n')?;
                std::str::from_utf8(&rest[..end])
                    .ok()
                    .filter(|v| v.starts_with('v'))
                    .and_then(Version::parse)
            });
            return Some(Identity { runtime, version });
        }
        return None;
    }
    // crun: the banner's format (`fprintf (stream, "%s version %s\n",
    // PACKAGE_NAME, PACKAGE_VERSION)`, src/crun.c) and libcrun's own strings.
    if find(bytes, b"%s version %s\n\0").is_some() && find(bytes, b"[libcrun:").is_some() {
        return Some(Identity {
            runtime: Runtime::Crun,
            version: None,
        });
    }
    None
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests;
