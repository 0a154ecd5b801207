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
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    /// `runc --version` of Debian 12's runc package.
    const RUNC_VERSION: &str = "runc version 1.1.5+ds1\ncommit: 1.1.5+ds1-1+deb12u1\nspec: 1.0.2-dev\ngo: go1.19.8\nlibseccomp: 2.5.4\n";
    /// `runc --version` of runc built from the v1.2.8 tag with its Makefile's flags.
    const RUNC_128_VERSION: &str = "runc version 1.2.8\ncommit: eeb7e6024f9ee43876301b1d23c353384fa6dcdd\nspec: 1.2.0\ngo: go1.23.5\nlibseccomp: 2.5.4\n";
    /// `crun --version` of Debian 12's crun package.
    const CRUN_VERSION: &str = "crun version 1.8.1\ncommit: f8a096be060b22ccd3d5f3ebe44108517fbf6c30\nrundir: /run/crun\nspec: 1.0.0\n+SYSTEMD +SELINUX +APPARMOR +CAP +SECCOMP +EBPF +YAJL\n";
    /// The annotations of `runc features` of Debian 12's runc package.
    const RUNC_FEATURES: &str = r#"{"ociVersionMin": "1.0.0", "ociVersionMax": "1.0.2-dev",
        "annotations": {
            "io.github.seccomp.libseccomp.version": "2.5.4",
            "org.opencontainers.runc.checkpoint.enabled": "true",
            "org.opencontainers.runc.commit": "1.1.5+ds1-1+deb12u1",
            "org.opencontainers.runc.version": "1.1.5+ds1"
        }}"#;

    #[test]
    fn versions_parse_and_order() {
        assert_eq!(Version::parse("1.1.5+ds1"), Some(Version::new(1, 1, 5)));
        assert_eq!(Version::parse("v1.2.8"), Some(Version::new(1, 2, 8)));
        assert_eq!(Version::parse("1.8"), Some(Version::new(1, 8, 0)));
        assert_eq!(Version::parse("1.14"), Some(Version::new(1, 14, 0)));
        let rc = Version::parse("1.4.0-rc.3").unwrap();
        assert_eq!(rc.pre.as_deref(), Some("rc.3"));
        assert!(rc < Version::new(1, 4, 0) && rc > Version::new(1, 3, 6));
        assert_eq!(rc.to_string(), "1.4.0-rc.3");
        for bad in [
            "",
            "1",
            "x.y",
            "1.2.3.4",
            "1..2",
            "1.2-",
            "release-20240513.0",
            "1.2.3a",
        ] {
            assert_eq!(Version::parse(bad), None, "{bad:?}");
        }
        assert!(Version::new(1, 10, 0) > Version::new(1, 9, 9));
    }

    #[test]
    fn version_banners_of_the_installed_runtimes() {
        assert_eq!(
            from_version_output(RUNC_VERSION),
            Some(Identity {
                runtime: Runtime::Runc,
                version: Some(Version::new(1, 1, 5))
            })
        );
        assert_eq!(
            from_version_output(RUNC_128_VERSION).unwrap().version,
            Some(Version::new(1, 2, 8))
        );
        assert_eq!(
            from_version_output(CRUN_VERSION),
            Some(Identity {
                runtime: Runtime::Crun,
                version: Some(Version::new(1, 8, 1))
            })
        );
        let runsc = from_version_output("runsc version release-20240513.0\nspec: 1.1.0\n").unwrap();
        assert_eq!((runsc.runtime, runsc.version), (Runtime::Runsc, None));
        let kata = from_version_output("kata-runtime  : 3.2.0\n   commit   : abc\n").unwrap();
        assert_eq!(kata.runtime, Runtime::Kata);
        assert_eq!(kata.version, Some(Version::new(3, 2, 0)));
        assert_eq!(from_version_output("podman version 4.3.1"), None);
        assert_eq!(from_version_output(""), None);
    }

    #[test]
    fn features_annotations() {
        assert_eq!(
            from_features_json(RUNC_FEATURES),
            Some(Identity {
                runtime: Runtime::Runc,
                version: Some(Version::new(1, 1, 5))
            })
        );
        let crun =
            r#"{"annotations": {"run.oci.crun.version": "1.29.1", "run.oci.crun.commit": "x"}}"#;
        assert_eq!(
            from_features_json(crun).unwrap().version,
            Some(Version::new(1, 29, 1))
        );
        assert_eq!(from_features_json(r#"{"annotations": {}}"#), None);
        assert_eq!(from_features_json("unknown command features"), None);
    }

    #[test]
    fn containerd_info() {
        let runc = r#"{"sandboxID": "x", "pid": 1, "runtimeType": "io.containerd.runc.v2", "runtimeOptions": {"systemd_cgroup": true}}"#;
        assert_eq!(from_containerd_info(runc).unwrap().runtime, Runtime::Runc);
        let crun = r#"{"runtimeType": "io.containerd.runc.v2", "runtimeOptions": {"BinaryName": "/usr/bin/crun"}}"#;
        assert_eq!(from_containerd_info(crun).unwrap().runtime, Runtime::Crun);
        let runsc = r#"{"runtimeType": "io.containerd.runsc.v1"}"#;
        assert_eq!(from_containerd_info(runsc).unwrap().runtime, Runtime::Runsc);
        let kata = r#"{"runtimeType": "io.containerd.kata.v2"}"#;
        assert_eq!(from_containerd_info(kata).unwrap().runtime, Runtime::Kata);
        assert_eq!(
            from_containerd_info(r#"{"runtimeType": "io.example.v1"}"#),
            None
        );
        let odd = r#"{"runtimeType": "io.containerd.runc.v2", "runtimeOptions": {"BinaryName": "/opt/bin/myrt"}}"#;
        assert_eq!(
            from_containerd_info(odd),
            None,
            "an unknown binary is not runc"
        );
    }

    #[test]
    fn exe_paths_and_comms() {
        assert_eq!(from_exe_path("/usr/sbin/runc"), Some(Runtime::Runc));
        assert_eq!(
            from_exe_path("/usr/bin/crun (deleted)"),
            Some(Runtime::Crun)
        );
        assert_eq!(
            from_exe_path("/memfd:runc_cloned:/proc/self/exe (deleted)"),
            Some(Runtime::Runc)
        );
        assert_eq!(
            from_exe_path("/usr/local/bin/runc.amd64"),
            Some(Runtime::Runc)
        );
        assert_eq!(
            from_exe_path("/usr/bin/containerd-shim-kata-v2"),
            Some(Runtime::Kata)
        );
        assert_eq!(from_exe_path("/bin/sh"), None);
        assert_eq!(from_comm("runc:[2:INIT]"), Some(Runtime::Runc));
        assert_eq!(from_comm("runc:[0:PARENT]\n"), Some(Runtime::Runc));
        assert_eq!(from_comm("youki:[2:INIT]"), Some(Runtime::Youki));
        assert_eq!(from_comm("crun"), Some(Runtime::Crun));
        assert_eq!(from_comm("nginx"), None);
    }

    #[test]
    fn binaries() {
        // Go's build information as Debian 12's /usr/sbin/runc holds it
        // (runc's Makefile: no module version), and as `go install` writes it.
        let debian = b"\x00\xff Go buildinf:\x08\x02\x00go1.19.8\x00path\tgithub.com/opencontainers/runc\nbuild\t-compiler=gc\nbuild\t-tags=seccomp,urfave_cli_no_docs\n";
        assert_eq!(
            from_binary(debian),
            Some(Identity {
                runtime: Runtime::Runc,
                version: None
            })
        );
        let devel = b"\xff Go buildinf:path\tgithub.com/opencontainers/runc\nmod\tgithub.com/opencontainers/runc\t(devel)\t\nbuild\t-buildmode=pie\n";
        assert_eq!(from_binary(devel).unwrap().version, None);
        let installed = b"\xff Go buildinf:path\tgithub.com/opencontainers/runc\nmod\tgithub.com/opencontainers/runc\tv1.3.3\th1:abc=\n";
        assert_eq!(
            from_binary(installed).unwrap().version,
            Some(Version::new(1, 3, 3))
        );
        // Excerpts of Debian 12's /usr/bin/crun (1.8.1).
        let crun =
            b"tarting\x00[libcrun:%s]\x00exec co\x00%s version %s\n\x00spec: 1.0.0\n\x001.8.1\x00";
        assert_eq!(
            from_binary(crun),
            Some(Identity {
                runtime: Runtime::Crun,
                version: None
            })
        );
        assert_eq!(from_binary(b"\x7fELF nothing to see"), None);
        let other_go = b"\xff Go buildinf:path\tgithub.com/example/tool\n";
        assert_eq!(from_binary(other_go), None);
    }

    #[test]
    fn sandboxes_hide_the_workload() {
        assert!(Runtime::Runc.host_sees_workload());
        assert!(!Runtime::Runsc.host_sees_workload());
        assert!(!Runtime::Kata.host_sees_workload());
        assert_eq!(Runtime::from_name("CRUN"), Some(Runtime::Crun));
        assert_eq!(Runtime::from_name("podman"), None);
    }
}
