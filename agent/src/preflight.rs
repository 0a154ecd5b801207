//! What the node must give the agent, checked once at its start: a node that
//! cannot run it fails with one line naming everything missing, instead of
//! an error from deep inside loading the kernel program.
//!
//! - **BTF** (`CONFIG_DEBUG_INFO_BTF`, /sys/kernel/btf/vmlinux): struct
//!   offsets and the BTF tracepoints.
//! - **`bpf_get_current_task_btf`** (Linux 5.11): the program reads the
//!   current task through it. Looked up by name in the kernel's own list of
//!   helpers (`enum bpf_func_id` in its BTF), so kernels with the helper
//!   backported pass and the kernel version is only reported.
//! - **cgroup v2**, mounted (on hybrid hosts below /sys/fs/cgroup).
//! - **bpffs** under the pin directory, writable: a Linux security module
//!   (containerd's default AppArmor profile) refuses writes under
//!   /sys/fs/bpf.
//!
//! tracefs is not needed: every program is a BTF tracepoint (`tp_btf`).
//!
//! [`missing`] decides from [`HostFacts`] without I/O; [`check`] gathers
//! the facts.
use std::{
    io,
    path::{Path, PathBuf},
};

use crate::cgroup::{CgroupError, Hierarchy};

/// The kernel's name of the helper the program needs (`enum bpf_func_id`).
pub const HELPER: &str = "BPF_FUNC_get_current_task_btf";

/// The Linux release that added [`HELPER`].
pub const HELPER_SINCE: &str = "5.11";

/// `BPF_FS_MAGIC` (include/uapi/linux/magic.h).
const BPF_FS_MAGIC: i64 = 0xcafe_4a11;

/// What was found on this node.
#[derive(Debug)]
pub struct HostFacts {
    /// `uname -r`.
    pub kernel_release: String,
    /// The BTF file read, and its bytes or why it could not be read.
    pub btf: (PathBuf, Result<Vec<u8>, io::Error>),
    /// The cgroup v2 hierarchy, or why none was found.
    pub cgroup2: Result<Hierarchy, CgroupError>,
    /// The pin directory, if one is configured, and what was found there.
    pub pins: Option<(PathBuf, PinDir)>,
}

/// The pin directory as found.
#[derive(Debug)]
pub enum PinDir {
    /// On bpffs, and a directory could be made in it.
    Usable,
    /// Its nearest existing ancestor is on another file system.
    NotBpffs,
    /// The file system of its nearest existing ancestor could not be told.
    Unknown(io::Error),
    /// Making a directory in it failed.
    NotWritable(io::Error),
}

/// One thing the node lacks.
#[derive(Debug, thiserror::Error)]
pub enum Missing {
    #[error(
        "no kernel BTF at {} ({source}): the kernel needs CONFIG_DEBUG_INFO_BTF=y",
        path.display()
    )]
    Btf {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("kernel BTF at {} is not BTF", path.display())]
    BadBtf { path: PathBuf },
    #[error(
        "the kernel ({release}) has no bpf_get_current_task_btf helper: Linux {HELPER_SINCE} or later is needed"
    )]
    Helper { release: String },
    #[error(transparent)]
    Cgroup2(CgroupError),
    #[error(
        "the pin directory {} is not on a BPF file system: mount bpffs on the node (mount -t bpf bpf /sys/fs/bpf) and the node's /sys/fs/bpf into the agent's container",
        path.display()
    )]
    Bpffs { path: PathBuf },
    #[error("cannot tell the file system of the pin directory {} ({source})", path.display())]
    PinsUnknown {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "cannot write in the pin directory {} ({source}): on AppArmor nodes the agent needs appArmorProfile Unconfined (containerd's default profile denies writes under /sys/fs/bpf), on SELinux nodes seLinuxOptions type spc_t; or run with --no-pin, and lose recordings on a crash",
        path.display()
    )]
    PinsNotWritable {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// The node cannot run the agent.
#[derive(Debug, thiserror::Error)]
#[error("this node cannot run the agent: {}", list(.missing))]
pub struct PreflightError {
    pub missing: Vec<Missing>,
}

fn list(missing: &[Missing]) -> String {
    missing
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// Everything `facts` says the node lacks, in a fixed order; empty when
/// the agent can run. Returns the cgroup hierarchy when there is one.
pub fn missing(facts: HostFacts) -> Result<Hierarchy, Vec<Missing>> {
    let mut missing = Vec::new();
    let (path, btf) = facts.btf;
    match btf {
        Err(source) => missing.push(Missing::Btf { path, source }),
        Ok(bytes) => match btf_has_string(&bytes, HELPER) {
            None => missing.push(Missing::BadBtf { path }),
            Some(false) => missing.push(Missing::Helper {
                release: facts.kernel_release,
            }),
            Some(true) => {}
        },
    }
    let hierarchy = facts
        .cgroup2
        .map_err(|error| missing.push(Missing::Cgroup2(error)))
        .ok();
    match facts.pins {
        None | Some((_, PinDir::Usable)) => {}
        Some((path, PinDir::NotBpffs)) => missing.push(Missing::Bpffs { path }),
        Some((path, PinDir::Unknown(source))) => {
            missing.push(Missing::PinsUnknown { path, source });
        }
        Some((path, PinDir::NotWritable(source))) => {
            missing.push(Missing::PinsNotWritable { path, source });
        }
    }
    match hierarchy {
        Some(hierarchy) if missing.is_empty() => Ok(hierarchy),
        _ => Err(missing),
    }
}

/// Whether the string section of the BTF blob `bytes` holds `name`; `None`
/// if `bytes` is not BTF (`include/uapi/linux/btf.h`: magic, version,
/// flags, header length, then the type and string sections' offsets and
/// lengths, from the end of the header).
pub fn btf_has_string(bytes: &[u8], name: &str) -> Option<bool> {
    let u32_at = |at: usize| -> Option<usize> {
        let raw: [u8; 4] = bytes.get(at..at + 4)?.try_into().ok()?;
        usize::try_from(u32::from_ne_bytes(raw)).ok()
    };
    if bytes.get(0..2)? != 0xeb9f_u16.to_ne_bytes() {
        return None;
    }
    let header_len = u32_at(4)?;
    let (str_off, str_len) = (u32_at(16)?, u32_at(20)?);
    let start = header_len.checked_add(str_off)?;
    let strings = bytes.get(start..start.checked_add(str_len)?)?;
    Some(
        strings
            .split(|b| *b == 0)
            .any(|entry| entry == name.as_bytes()),
    )
}

/// Checks this node, and returns the cgroup v2 hierarchy: the one at or
/// below `cgroup_mount` when given (see [`Hierarchy::at_or_below`]), else
/// this mount namespace's.
pub fn check(
    cgroup_mount: Option<&Path>,
    pin_dir: Option<&Path>,
) -> Result<Hierarchy, PreflightError> {
    let btf_path = crate::btf::kernel_btf_path();
    let facts = HostFacts {
        kernel_release: kernel_release(),
        btf: (btf_path.clone(), std::fs::read(&btf_path)),
        cgroup2: match cgroup_mount {
            Some(mount) => Hierarchy::at_or_below(mount),
            None => Hierarchy::find(),
        },
        pins: pin_dir.map(|dir| (dir.to_path_buf(), probe_pin_dir(dir))),
    };
    missing(facts).map_err(|missing| PreflightError { missing })
}

fn kernel_release() -> String {
    // SAFETY: utsname is plain data; uname fills it.
    let mut uts: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: `uts` is a valid, writable utsname.
    if unsafe { libc::uname(&mut uts) } != 0 {
        return "unknown".into();
    }
    // SAFETY: uname NUL-terminates the release.
    unsafe { std::ffi::CStr::from_ptr(uts.release.as_ptr()) }
        .to_string_lossy()
        .into_owned()
}

/// Whether `dir` (or its nearest existing ancestor) is on bpffs, and a
/// directory can be made there: `dir` itself, which loading makes anyway.
fn probe_pin_dir(dir: &Path) -> PinDir {
    let existing = dir.ancestors().find(|d| d.exists()).unwrap_or(dir);
    match statfs_type(existing) {
        Ok(BPF_FS_MAGIC) => {}
        Ok(_) => return PinDir::NotBpffs,
        Err(error) => return PinDir::Unknown(error),
    }
    match std::fs::create_dir_all(dir) {
        Ok(()) => PinDir::Usable,
        Err(error) => PinDir::NotWritable(error),
    }
}

/// Whether a BPF file system is mounted at `dir`.
pub fn is_bpffs(dir: &Path) -> bool {
    matches!(statfs_type(dir), Ok(BPF_FS_MAGIC))
}

fn statfs_type(path: &Path) -> io::Result<i64> {
    use std::os::unix::ffi::OsStrExt as _;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: statfs is plain data that statfs fills.
    let mut buf: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: a NUL-terminated path and a valid, writable buffer.
    if unsafe { libc::statfs(c.as_ptr(), &mut buf) } != 0 {
        return Err(io::Error::last_os_error());
    }
    #[allow(
        clippy::unnecessary_cast,
        reason = "f_type's integer type differs between architectures"
    )]
    Ok(buf.f_type as i64)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    /// A BTF blob with no types and `strings` as its string section.
    fn btf(strings: &[&str]) -> Vec<u8> {
        let mut section = vec![0u8];
        for s in strings {
            section.extend_from_slice(s.as_bytes());
            section.push(0);
        }
        let mut out = Vec::new();
        out.extend_from_slice(&0xeb9f_u16.to_ne_bytes());
        out.extend_from_slice(&[1, 0]);
        for field in [24u32, 0, 0, 0, u32::try_from(section.len()).unwrap()] {
            out.extend_from_slice(&field.to_ne_bytes());
        }
        out.extend_from_slice(&section);
        out
    }

    fn facts(btf_bytes: Result<Vec<u8>, io::Error>) -> HostFacts {
        HostFacts {
            kernel_release: "5.10.0-28-amd64".into(),
            btf: (PathBuf::from("/sys/kernel/btf/vmlinux"), btf_bytes),
            cgroup2: Ok(Hierarchy::at("/sys/fs/cgroup")),
            pins: Some((PathBuf::from("/sys/fs/bpf/syscensus"), PinDir::Usable)),
        }
    }

    #[test]
    fn finds_the_helper_by_its_whole_name() {
        let with = btf(&["task_struct", HELPER, "BPF_FUNC_get_current_task"]);
        assert_eq!(btf_has_string(&with, HELPER), Some(true));
        let without = btf(&[
            "BPF_FUNC_get_current_task",
            "BPF_FUNC_get_current_task_btf_x",
        ]);
        assert_eq!(btf_has_string(&without, HELPER), Some(false));
        assert_eq!(btf_has_string(b"not btf at all", HELPER), None);
        let mut cut = with.clone();
        cut.truncate(30);
        assert_eq!(btf_has_string(&cut, HELPER), None);
    }

    #[test]
    fn a_node_with_everything_passes() {
        let hierarchy = missing(facts(Ok(btf(&[HELPER])))).unwrap();
        assert_eq!(hierarchy.mount(), Path::new("/sys/fs/cgroup"));
    }

    #[test]
    fn everything_missing_is_named_in_one_line() {
        let mut node = facts(Err(io::Error::from(io::ErrorKind::NotFound)));
        node.cgroup2 = Err(CgroupError::NoCgroup2);
        node.pins = Some((
            PathBuf::from("/sys/fs/bpf/syscensus"),
            PinDir::NotWritable(io::Error::from_raw_os_error(libc::EACCES)),
        ));
        let error = PreflightError {
            missing: missing(node).unwrap_err(),
        };
        let text = error.to_string();
        assert!(!text.contains('\n'), "{text}");
        assert!(
            text.starts_with(
                "this node cannot run the agent: no kernel BTF at /sys/kernel/btf/vmlinux"
            ),
            "{text}"
        );
        assert!(text.contains("no cgroup v2 hierarchy"), "{text}");
        assert!(text.contains("appArmorProfile Unconfined"), "{text}");
    }

    #[test]
    fn an_old_kernel_is_named_with_the_release_it_needs() {
        let error = missing(facts(Ok(btf(&["BPF_FUNC_get_current_task"])))).unwrap_err();
        assert_eq!(error.len(), 1);
        assert_eq!(
            error[0].to_string(),
            "the kernel (5.10.0-28-amd64) has no bpf_get_current_task_btf helper: Linux 5.11 or later is needed"
        );
        let mut node = facts(Ok(btf(&[HELPER])));
        node.pins = Some((PathBuf::from("/var/lib/x"), PinDir::NotBpffs));
        let error = missing(node).unwrap_err();
        assert!(matches!(error[..], [Missing::Bpffs { .. }]), "{error:?}");
    }

    /// This machine's kernel has BTF and the helper (the tests load the
    /// program on it).
    #[test]
    fn this_kernel_has_the_helper() {
        let bytes = std::fs::read(crate::btf::kernel_btf_path()).unwrap();
        assert_eq!(btf_has_string(&bytes, HELPER), Some(true));
    }
}
