//! The seccomp profile a container runs under, read from what its runtime
//! holds, with no configuration:
//!
//! - containerd's CRI `ContainerStatus` with `verbose`: its `info` holds
//!   the OCI runtime spec the container was created with
//!   (`runtimeSpec.linux.seccomp`), the profile containerd resolved from
//!   the Pod's `seccompProfile` (a Localhost file, RuntimeDefault);
//! - runc's state directory (`<root>/<id>/state.json`): libcontainer's
//!   config, whose `seccomp` is the spec's profile in libcontainer's own
//!   format (numbered actions and operators, Go architecture names, one rule
//!   per name); checked against runc 1.1.5 and its source at v1.1.5
//!   (libcontainer/configs/config.go, libcontainer/seccomp/config.go);
//! - crun's state directory (`<root>/<id>/config.json`): the OCI spec
//!   itself, which crun copies there when it creates the container
//!   (src/libcrun/container.c, `libcrun_copy_config_file`, at 1.8.1).
//!
//! `None` means the container runs without a seccomp profile.
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

use crate::{
    profile::{Action, Arg, Host, KernelVersion, Op, Profile, ProfileError, Rule},
    syscalls::Arch,
};

/// Where runc keeps its state: runc's own default, and the roots
/// containerd's runc shim uses per namespace (`k8s.io` for Kubernetes,
/// `moby` for Docker, `default` for `ctr`).
pub const RUNC_ROOTS: [&str; 4] = [
    "/run/runc",
    "/run/containerd/runc/k8s.io",
    "/run/containerd/runc/moby",
    "/run/containerd/runc/default",
];

/// Where crun keeps its state when run as root.
pub const CRUN_ROOT: &str = "/run/crun";

/// The profile a runtime holds could not be read.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeProfileError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{origin} is not JSON ({source}): is it a {what}?")]
    Json {
        origin: String,
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },
    #[error("{origin} has no {field}: is it a {what}?")]
    Missing {
        origin: String,
        field: &'static str,
        what: &'static str,
    },
    #[error("the seccomp profile in {origin}: {source}")]
    Profile {
        origin: String,
        #[source]
        source: ProfileError,
    },
    #[error(
        "the seccomp profile in {origin}: {problem}; this runtime's format is not known to syscensus"
    )]
    Libcontainer { origin: String, problem: String },
    #[error("{id:?} is not a container id: ids are letters, digits, '_', '-' and '.'")]
    Id { id: String },
}

/// The profile in containerd's `ContainerStatus(verbose)` info: the JSON
/// text under the `info` key of the response's info map.
pub fn from_cri_info(info: &str) -> Result<Option<Profile>, RuntimeProfileError> {
    const WHAT: &str = "CRI ContainerStatus verbose info";
    let origin = "the CRI ContainerStatus info".to_owned();
    let value: Value = serde_json::from_str(info).map_err(|source| RuntimeProfileError::Json {
        origin: origin.clone(),
        what: WHAT,
        source,
    })?;
    let spec = value
        .get("runtimeSpec")
        .ok_or_else(|| RuntimeProfileError::Missing {
            origin: origin.clone(),
            field: "runtimeSpec",
            what: WHAT,
        })?;
    seccomp_of_spec(spec, &origin)
}

/// The profile in an OCI runtime spec (`config.json`: a bundle's, or the
/// copy crun keeps in its state directory).
pub fn from_oci_config(config: &str, origin: &str) -> Result<Option<Profile>, RuntimeProfileError> {
    let spec: Value = serde_json::from_str(config).map_err(|source| RuntimeProfileError::Json {
        origin: origin.to_owned(),
        what: "OCI runtime spec",
        source,
    })?;
    seccomp_of_spec(&spec, origin)
}

fn seccomp_of_spec(spec: &Value, origin: &str) -> Result<Option<Profile>, RuntimeProfileError> {
    let Some(seccomp) = spec.get("linux").and_then(|l| l.get("seccomp")) else {
        return Ok(None);
    };
    if seccomp.is_null() {
        return Ok(None);
    }
    let text = seccomp.to_string();
    // A runtime spec holds a plain OCI profile: Docker's conditions were
    // resolved before it was written, so the host only names the
    // architecture.
    let host = Host {
        arch: Arch::native(),
        capabilities: 0,
        kernel: KernelVersion { major: 0, minor: 0 },
    };
    Profile::parse_for_host(&text, Path::new(origin), None, &host)
        .map(Some)
        .map_err(|source| RuntimeProfileError::Profile {
            origin: origin.to_owned(),
            source,
        })
}

/// runc's `state.json`.
#[derive(Deserialize)]
struct RuncState {
    config: RuncConfig,
}

#[derive(Deserialize)]
struct RuncConfig {
    #[serde(default)]
    seccomp: Option<RuncSeccomp>,
}

/// libcontainer's `configs.Seccomp`.
#[derive(Deserialize)]
struct RuncSeccomp {
    default_action: i64,
    #[serde(default)]
    architectures: Option<Vec<String>>,
    #[serde(default)]
    flags: Option<Vec<String>>,
    #[serde(default)]
    syscalls: Option<Vec<RuncSyscall>>,
    #[serde(default)]
    default_errno_ret: Option<u32>,
}

/// libcontainer's `configs.Syscall`.
#[derive(Deserialize)]
struct RuncSyscall {
    name: String,
    action: i64,
    #[serde(default, rename = "errnoRet")]
    errno_ret: Option<u32>,
    #[serde(default)]
    args: Option<Vec<RuncArg>>,
}

/// libcontainer's `configs.Arg`.
#[derive(Deserialize)]
struct RuncArg {
    index: u32,
    value: u64,
    #[serde(default)]
    value_two: u64,
    op: i64,
}

/// libcontainer's `configs.Action`, numbered from 1 (`Kill Action = iota +
/// 1`); `Kill` is libseccomp's `SCMP_ACT_KILL`, which kills the thread.
fn runc_action(value: i64) -> Option<Action> {
    Some(match value {
        1 => Action::KillThread,
        2 => Action::Errno,
        3 => Action::Trap,
        4 => Action::Allow,
        5 => Action::Trace,
        6 => Action::Log,
        7 => Action::Notify,
        8 => Action::KillThread,
        9 => Action::KillProcess,
        _ => return None,
    })
}

/// libcontainer's `configs.Operator`, numbered from 1.
fn runc_op(value: i64) -> Option<Op> {
    Some(match value {
        1 => Op::Eq,
        2 => Op::Ne,
        3 => Op::Gt,
        4 => Op::Ge,
        5 => Op::Lt,
        6 => Op::Le,
        7 => Op::MaskedEq,
        _ => return None,
    })
}

/// libcontainer's architecture names (Go's), back to `SCMP_ARCH_*`.
const RUNC_ARCHES: [(&str, &str); 18] = [
    ("x86", "SCMP_ARCH_X86"),
    ("amd64", "SCMP_ARCH_X86_64"),
    ("x32", "SCMP_ARCH_X32"),
    ("arm", "SCMP_ARCH_ARM"),
    ("arm64", "SCMP_ARCH_AARCH64"),
    ("mips", "SCMP_ARCH_MIPS"),
    ("mips64", "SCMP_ARCH_MIPS64"),
    ("mips64n32", "SCMP_ARCH_MIPS64N32"),
    ("mipsel", "SCMP_ARCH_MIPSEL"),
    ("mipsel64", "SCMP_ARCH_MIPSEL64"),
    ("mipsel64n32", "SCMP_ARCH_MIPSEL64N32"),
    ("ppc", "SCMP_ARCH_PPC"),
    ("ppc64", "SCMP_ARCH_PPC64"),
    ("ppc64le", "SCMP_ARCH_PPC64LE"),
    ("riscv64", "SCMP_ARCH_RISCV64"),
    ("s390", "SCMP_ARCH_S390"),
    ("s390x", "SCMP_ARCH_S390X"),
    ("loong64", "SCMP_ARCH_LOONGARCH64"),
];

/// The profile in runc's `state.json` (`text`, read from `origin`).
pub fn from_runc_state(text: &str, origin: &str) -> Result<Option<Profile>, RuntimeProfileError> {
    let state: RuncState =
        serde_json::from_str(text).map_err(|source| RuntimeProfileError::Json {
            origin: origin.to_owned(),
            what: "runc state.json",
            source,
        })?;
    let Some(seccomp) = state.config.seccomp else {
        return Ok(None);
    };
    let problem = |problem: String| RuntimeProfileError::Libcontainer {
        origin: origin.to_owned(),
        problem,
    };
    let default_action = runc_action(seccomp.default_action)
        .ok_or_else(|| problem(format!("unknown default action {}", seccomp.default_action)))?;
    let mut architectures = Vec::new();
    for arch in seccomp.architectures.unwrap_or_default() {
        let name = RUNC_ARCHES
            .iter()
            .find(|(go, _)| *go == arch)
            .map(|(_, scmp)| *scmp)
            .ok_or_else(|| problem(format!("unknown architecture {arch:?}")))?;
        architectures.push(name.to_owned());
    }
    let mut syscalls = Vec::new();
    for (index, call) in seccomp.syscalls.unwrap_or_default().into_iter().enumerate() {
        let action = runc_action(call.action).ok_or_else(|| {
            problem(format!(
                "syscalls[{index}] has unknown action {}",
                call.action
            ))
        })?;
        let mut args = Vec::new();
        for arg in call.args.unwrap_or_default() {
            let op = runc_op(arg.op).ok_or_else(|| {
                problem(format!("syscalls[{index}] has unknown operator {}", arg.op))
            })?;
            args.push(Arg {
                index: arg.index,
                value: arg.value,
                value_two: arg.value_two,
                op,
            });
        }
        // One rule per name, in order: libcontainer's own shape, which the
        // filter is built from.
        syscalls.push(Rule {
            names: vec![call.name],
            action,
            errno_ret: call.errno_ret,
            args,
            comment: None,
        });
    }
    Ok(Some(Profile {
        default_action,
        default_errno_ret: seccomp.default_errno_ret,
        architectures,
        flags: seccomp.flags.unwrap_or_default(),
        syscalls,
    }))
}

/// A container id safe to join to a state root: the runtimes' own rule.
fn check_id(id: &str) -> Result<(), RuntimeProfileError> {
    let ok = !id.is_empty()
        && id != "."
        && id != ".."
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if ok {
        Ok(())
    } else {
        Err(RuntimeProfileError::Id { id: id.to_owned() })
    }
}

fn read(path: &Path) -> Result<Option<String>, RuntimeProfileError> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(RuntimeProfileError::Read {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Which runtime holds a container's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StateRuntime {
    Runc,
    Crun,
}

/// The profile of container `id` from the state directories of runc (each
/// of `runc_roots`) and crun (`crun_root`): `Ok(None)` if no runtime holds
/// the container, `Ok(Some((runtime, None)))` if it runs without a profile.
pub fn from_state_dirs(
    id: &str,
    runc_roots: &[&Path],
    crun_root: &Path,
) -> Result<Option<(StateRuntime, Option<Profile>)>, RuntimeProfileError> {
    check_id(id)?;
    for root in runc_roots {
        let path = root.join(id).join("state.json");
        if let Some(text) = read(&path)? {
            let profile = from_runc_state(&text, &path.display().to_string())?;
            return Ok(Some((StateRuntime::Runc, profile)));
        }
    }
    let path = crun_root.join(id).join("config.json");
    if let Some(text) = read(&path)? {
        let profile = from_oci_config(&text, &path.display().to_string())?;
        return Ok(Some((StateRuntime::Crun, profile)));
    }
    Ok(None)
}

/// [`from_state_dirs`] with the runtimes' default roots ([`RUNC_ROOTS`],
/// [`CRUN_ROOT`]).
pub fn from_default_state_dirs(
    id: &str,
) -> Result<Option<(StateRuntime, Option<Profile>)>, RuntimeProfileError> {
    let roots: Vec<&Path> = RUNC_ROOTS.iter().map(Path::new).collect();
    from_state_dirs(id, &roots, Path::new(CRUN_ROOT))
}
