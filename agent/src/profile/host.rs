//! What a Docker-format profile's conditions are evaluated against: the
//! machine's architecture, the calling process's capabilities and the running
//! kernel's version.
use std::ffi::CStr;

use crate::syscalls::Arch;

/// A kernel version as Docker's `minKernel` compares it: major and minor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct KernelVersion {
    pub major: u32,
    pub minor: u32,
}

impl KernelVersion {
    /// Parses the leading `major.minor` of a version such as `4.8` or a
    /// `uname -r` release such as `6.18.44-fc-v782`.
    pub fn parse(text: &str) -> Option<KernelVersion> {
        let mut parts = text.splitn(3, '.');
        let major = parts.next()?.parse().ok()?;
        let minor_text = parts.next()?;
        let digits = minor_text
            .find(|c: char| !c.is_ascii_digit())
            .map_or(minor_text, |end| &minor_text[..end]);
        let minor = digits.parse().ok()?;
        Some(KernelVersion { major, minor })
    }
}

/// The host a profile is resolved for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Host {
    /// The native architecture.
    pub arch: Arch,
    /// Effective capabilities, bit `n` for capability number `n`.
    pub capabilities: u64,
    pub kernel: KernelVersion,
}

impl Host {
    /// This machine and this process: the effective capabilities of the
    /// calling process (so `sudo syscensus run` resolves `caps` conditions
    /// for root, as Docker does for a container with those capabilities),
    /// and the kernel version from uname(2). Anything unreadable counts as
    /// absent: no capabilities, kernel 0.0.
    pub fn current() -> Host {
        Host {
            arch: Arch::native(),
            capabilities: effective_capabilities().unwrap_or(0),
            kernel: running_kernel().unwrap_or(KernelVersion { major: 0, minor: 0 }),
        }
    }

    /// Whether the host has the capability named `name` (`CAP_SYS_ADMIN`);
    /// an unknown name counts as absent.
    pub fn has_capability(&self, name: &str) -> bool {
        capability_number(name).is_some_and(|n| self.capabilities & (1u64 << n) != 0)
    }

    /// The names Docker's `includes.arches` / `excludes.arches` use for this
    /// host (Go's `GOARCH`, plus the spellings the moby profile uses).
    pub fn go_arch_names(&self) -> &'static [&'static str] {
        match self.arch {
            Arch::X86_64 => &["amd64"],
            Arch::X86 => &["386", "x86"],
            Arch::X32 => &["x32"],
            Arch::Aarch64 => &["arm64"],
            Arch::Arm => &["arm"],
        }
    }
}

/// Capability names and numbers from `linux/capability.h`.
const CAPABILITIES: [&str; 41] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// The number of capability `name`.
pub fn capability_number(name: &str) -> Option<u32> {
    CAPABILITIES
        .iter()
        .position(|c| *c == name)
        .and_then(|n| u32::try_from(n).ok())
}

/// The calling thread's effective capability set, from capget(2).
fn effective_capabilities() -> Option<u64> {
    // linux/capability.h: _LINUX_CAPABILITY_VERSION_3 takes two data structs
    // (capabilities 0-31 and 32-63).
    #[repr(C)]
    struct Header {
        version: u32,
        pid: i32,
    }
    #[repr(C)]
    #[derive(Clone, Copy, Default)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    const VERSION_3: u32 = 0x2008_0522;
    let mut header = Header {
        version: VERSION_3,
        pid: 0,
    };
    let mut data = [Data::default(); 2];
    // SAFETY: capget writes at most two `Data` structs for version 3, and both
    // pointers are valid for the call.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_capget,
            &mut header as *mut Header,
            data.as_mut_ptr(),
        )
    };
    (rc == 0).then(|| u64::from(data[0].effective) | (u64::from(data[1].effective) << 32))
}

/// The running kernel's version, from uname(2).
fn running_kernel() -> Option<KernelVersion> {
    // SAFETY: utsname is plain data; uname fills it in.
    let mut uts: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: `uts` is a valid, writable utsname.
    if unsafe { libc::uname(&mut uts) } != 0 {
        return None;
    }
    // SAFETY: uname NUL-terminates the release field.
    let release = unsafe { CStr::from_ptr(uts.release.as_ptr()) };
    KernelVersion::parse(&release.to_string_lossy())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    #[test]
    fn parses_kernel_versions() {
        assert_eq!(
            KernelVersion::parse("6.18.44-fc-v782"),
            Some(KernelVersion {
                major: 6,
                minor: 18
            })
        );
        assert_eq!(
            KernelVersion::parse("4.8"),
            Some(KernelVersion { major: 4, minor: 8 })
        );
        assert_eq!(
            KernelVersion::parse("5.10-rc1"),
            Some(KernelVersion {
                major: 5,
                minor: 10
            })
        );
        assert_eq!(KernelVersion::parse("four"), None);
        assert_eq!(KernelVersion::parse("5"), None);
    }

    #[test]
    fn capability_numbers_match_the_kernel() {
        assert_eq!(capability_number("CAP_CHOWN"), Some(0));
        assert_eq!(capability_number("CAP_SYS_ADMIN"), Some(21));
        assert_eq!(capability_number("CAP_CHECKPOINT_RESTORE"), Some(40));
        assert_eq!(capability_number("CAP_NOPE"), None);
    }

    #[test]
    fn current_host_reads_the_kernel_version() {
        assert!(Host::current().kernel.major >= 3);
    }
}
