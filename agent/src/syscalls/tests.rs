//! Tests of the generated syscall tables and the `Arch` API over them.
use syscensus_common::abi;

use super::{Arch, SOURCE, is_known, tables};

/// A compat row is recorded under the compat ABI's own table, never under
/// the native one whose numbers it shares: AArch32 syscalls on an aarch64
/// kernel are SCMP_ARCH_ARM's (3 is `read` there, `lsetxattr` on aarch64).
#[test]
fn compat_rows_are_named_by_their_own_table() {
    assert_eq!(
        Arch::for_abi_on(Arch::X86_64, abi::NATIVE),
        Some(Arch::X86_64)
    );
    assert_eq!(Arch::for_abi_on(Arch::X86_64, abi::COMPAT), Some(Arch::X86));
    assert_eq!(Arch::for_abi_on(Arch::X86_64, abi::X32), Some(Arch::X32));
    assert_eq!(
        Arch::for_abi_on(Arch::Aarch64, abi::NATIVE),
        Some(Arch::Aarch64)
    );
    assert_eq!(
        Arch::for_abi_on(Arch::Aarch64, abi::COMPAT),
        Some(Arch::Arm)
    );
    // aarch64 has no x32.
    assert_eq!(Arch::for_abi_on(Arch::Aarch64, abi::X32), None);
    let arm = Arch::for_abi_on(Arch::Aarch64, abi::COMPAT).unwrap_or(Arch::Aarch64);
    assert_eq!(arm.name(3), Some("read"));
    assert_ne!(Arch::Aarch64.name(3), Some("read"));
    // A profile recorded on aarch64 lists ARM beside it, and the filter
    // covers it.
    assert_eq!(Arch::Aarch64.with_sub_arches(), &[Arch::Aarch64, Arch::Arm]);
    assert_eq!(Arch::from_scmp_name("SCMP_ARCH_ARM"), Some(Arch::Arm));
    assert_eq!(Arch::Arm.audit_arch(), 0x4000_0028);
}

#[test]
fn well_known_numbers() {
    let cases = [
        (Arch::X86_64, "read", 0),
        (Arch::X86_64, "execve", 59),
        (Arch::X86_64, "openat", 257),
        (Arch::X86_64, "mremap", 25),
        (Arch::X86, "read", 3),
        (Arch::X86, "execve", 11),
        (Arch::X86, "socketcall", 102),
        (Arch::X86, "mmap2", 192),
        (Arch::X32, "read", 0),
        // x32's own entry points start at 512.
        (Arch::X32, "rt_sigaction", 512),
        (Arch::X32, "execve", 520),
        (Arch::X32, "openat", 257),
        (Arch::Aarch64, "openat", 56),
        (Arch::Aarch64, "execve", 221),
        (Arch::Aarch64, "read", 63),
        // AArch32 (ARM EABI): its own numbers.
        (Arch::Arm, "read", 3),
        (Arch::Arm, "execve", 11),
        (Arch::Arm, "openat", 322),
        (Arch::Arm, "mmap2", 192),
    ];
    for (arch, name, nr) in cases {
        assert_eq!(arch.number(name), Some(nr), "{arch} {name}");
        assert_eq!(arch.name(nr), Some(name), "{arch} {nr}");
    }
}

#[test]
fn syscalls_an_arch_lacks_are_absent() {
    let absent = [
        (Arch::X86_64, "socketcall"),
        (Arch::X86_64, "mmap2"),
        (Arch::X32, "epoll_ctl_old"),
        (Arch::X86, "newfstatat"),
        (Arch::X86, "accept"),
        (Arch::Aarch64, "open"),
        (Arch::Aarch64, "fork"),
    ];
    for (arch, name) in absent {
        assert_eq!(arch.number(name), None, "{arch} should not have {name}");
        assert!(is_known(name), "{name} exists on some architecture");
    }
}

#[test]
fn names_and_numbers_round_trip() {
    for arch in Arch::ALL {
        for &(nr, name) in arch.syscalls() {
            assert_eq!(arch.number(name), Some(nr), "{arch} {name}");
            assert_eq!(arch.name(nr), Some(name), "{arch} {nr}");
            assert!(is_known(name), "{name} of {arch} is not in ALL_NAMES");
        }
    }
}

#[test]
fn tables_are_sorted_without_duplicates() {
    for arch in Arch::ALL {
        let table = arch.table();
        assert!(
            table.by_number.windows(2).all(|w| w[0].0 < w[1].0),
            "{arch}: by_number is not strictly increasing"
        );
        assert!(
            table.by_name.windows(2).all(|w| w[0].0 < w[1].0),
            "{arch}: by_name is not strictly increasing"
        );
        assert_eq!(table.by_number.len(), table.by_name.len(), "{arch}");
        let mut swapped: Vec<(&str, u32)> = table.by_number.iter().map(|&(n, s)| (s, n)).collect();
        swapped.sort_unstable();
        assert_eq!(swapped, table.by_name, "{arch}: the two views differ");
    }
    assert!(
        tables::ALL_NAMES.windows(2).all(|w| w[0] < w[1]),
        "ALL_NAMES is not strictly increasing"
    );
}

#[test]
fn tables_are_full_sized() {
    // A truncated table would still be sorted and consistent.
    for arch in Arch::ALL {
        let n = arch.syscalls().len();
        assert!((300..600).contains(&n), "{arch} has {n} syscalls");
    }
    assert!(tables::ALL_NAMES.len() > 450, "{}", tables::ALL_NAMES.len());
}

#[test]
fn x32_numbers_have_no_x32_bit() {
    for &(nr, name) in Arch::X32.syscalls() {
        assert!(nr < 0x4000_0000, "x32 {name} = {nr:#x}");
    }
}

#[test]
fn other_architectures_syscalls_are_known() {
    // s390-only and powerpc-only syscalls: no table here has them, but a
    // profile may name them.
    for name in ["s390_runtime_instr", "spu_run", "subpage_prot"] {
        assert!(is_known(name), "{name}");
        for arch in Arch::ALL {
            assert_eq!(arch.number(name), None, "{arch} {name}");
        }
    }
    assert!(!is_known("not_a_syscall"));
    assert!(!is_known(""));
    assert!(!is_known("READ"));
}

#[test]
fn lookups_miss_cleanly() {
    for arch in Arch::ALL {
        assert_eq!(arch.number("not_a_syscall"), None);
        assert_eq!(arch.name(u32::MAX), None);
        assert_eq!(arch.name(0x4000_0000), None);
    }
}

#[test]
fn source_names_libseccomp_and_the_kernel() {
    assert!(SOURCE.starts_with("libseccomp "), "{SOURCE}");
    assert!(SOURCE.contains("(kernel v"), "{SOURCE}");
}
