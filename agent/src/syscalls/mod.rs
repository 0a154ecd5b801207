//! Syscall names and numbers per architecture, with libseccomp's names (the
//! names that seccomp profiles use). The tables in `tables.rs` are generated
//! by `cargo xtask gen-syscalls` from libseccomp's `src/syscalls.csv`.
use std::fmt;

use syscensus_common::{abi, audit_arch};

mod tables;

/// A seccomp architecture this crate has a syscall table for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Arch {
    X86_64,
    /// i386, and ia32 compat syscalls on x86_64.
    X86,
    /// x32: the x86_64 kernel's ILP32 ABI.
    X32,
    Aarch64,
    /// AArch32 (32-bit ARM EABI), and compat syscalls on aarch64.
    Arm,
}

impl Arch {
    /// Every architecture, in profile order.
    pub const ALL: [Arch; 5] = [Arch::X86_64, Arch::X86, Arch::X32, Arch::Aarch64, Arch::Arm];

    /// The name profiles use (`SCMP_ARCH_X86_64`).
    pub const fn scmp_name(self) -> &'static str {
        match self {
            Arch::X86_64 => "SCMP_ARCH_X86_64",
            Arch::X86 => "SCMP_ARCH_X86",
            Arch::X32 => "SCMP_ARCH_X32",
            Arch::Aarch64 => "SCMP_ARCH_AARCH64",
            Arch::Arm => "SCMP_ARCH_ARM",
        }
    }

    /// The architecture with this `SCMP_ARCH_*` name, if there is a table for it.
    pub fn from_scmp_name(name: &str) -> Option<Arch> {
        Arch::ALL.into_iter().find(|a| a.scmp_name() == name)
    }

    /// The architecture this binary runs on.
    pub const fn native() -> Arch {
        #[cfg(target_arch = "x86_64")]
        {
            Arch::X86_64
        }
        #[cfg(target_arch = "aarch64")]
        {
            Arch::Aarch64
        }
    }

    /// The architecture of a row recorded under `abi` (a
    /// `syscensus_common::abi` constant) on the native architecture.
    pub const fn for_abi(abi_id: u32) -> Option<Arch> {
        Arch::for_abi_on(Arch::native(), abi_id)
    }

    /// The architecture of a row recorded under `abi` on a kernel of
    /// architecture `native`: ia32 and x32 on x86_64, AArch32 on aarch64
    /// (never under the 64-bit names that share their numbers).
    pub const fn for_abi_on(native: Arch, abi_id: u32) -> Option<Arch> {
        match (native, abi_id) {
            (native, abi::NATIVE) => Some(native),
            (Arch::X86_64, abi::COMPAT) => Some(Arch::X86),
            (Arch::X86_64, abi::X32) => Some(Arch::X32),
            (Arch::Aarch64, abi::COMPAT) => Some(Arch::Arm),
            _ => None,
        }
    }

    /// `AUDIT_ARCH_*`: what a seccomp filter sees in `seccomp_data.arch`
    /// (x32 shares x86_64's value and sets the x32 bit in the number instead).
    pub const fn audit_arch(self) -> u32 {
        match self {
            Arch::X86_64 | Arch::X32 => audit_arch::X86_64,
            Arch::X86 => audit_arch::I386,
            Arch::Aarch64 => audit_arch::AARCH64,
            Arch::Arm => audit_arch::ARM,
        }
    }

    /// The architectures whose syscalls a process on `self` can make: the
    /// native ABI first, then the compat ones.
    pub const fn with_sub_arches(self) -> &'static [Arch] {
        match self {
            Arch::X86_64 => &[Arch::X86_64, Arch::X86, Arch::X32],
            Arch::X86 => &[Arch::X86],
            Arch::X32 => &[Arch::X32],
            Arch::Aarch64 => &[Arch::Aarch64, Arch::Arm],
            Arch::Arm => &[Arch::Arm],
        }
    }

    fn table(self) -> &'static tables::Table {
        match self {
            Arch::X86_64 => &tables::X86_64,
            Arch::X86 => &tables::X86,
            Arch::X32 => &tables::X32,
            Arch::Aarch64 => &tables::AARCH64,
            Arch::Arm => &tables::ARM,
        }
    }

    /// The name of syscall `nr` on this architecture. x32 numbers are given
    /// without the x32 bit.
    pub fn name(self, nr: u32) -> Option<&'static str> {
        let by_number = self.table().by_number;
        by_number
            .binary_search_by_key(&nr, |&(n, _)| n)
            .ok()
            .map(|i| by_number[i].1)
    }

    /// The number of syscall `name` on this architecture (x32: without the
    /// x32 bit).
    pub fn number(self, name: &str) -> Option<u32> {
        let by_name = self.table().by_name;
        by_name
            .binary_search_by_key(&name, |&(n, _)| n)
            .ok()
            .map(|i| by_name[i].1)
    }

    /// Every (number, name) pair of this architecture, by number.
    pub fn syscalls(self) -> &'static [(u32, &'static str)] {
        self.table().by_number
    }
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.scmp_name())
    }
}

/// Whether `name` is a syscall on any architecture libseccomp knows (not only
/// the four with tables here): a profile may list, say, an s390 syscall, and
/// that is not an error.
pub fn is_known(name: &str) -> bool {
    tables::ALL_NAMES.binary_search(&name).is_ok()
}

/// The libseccomp commit and kernel version the tables were generated from.
pub const SOURCE: &str = tables::SOURCE;

#[cfg(test)]
mod tests;
