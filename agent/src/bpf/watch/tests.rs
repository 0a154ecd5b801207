#![allow(clippy::unwrap_used, reason = "tests")]
use syscensus_common::SYSCALL_SLOTS;

use super::*;

#[test]
fn the_object_has_the_watch_maps_and_programs() {
    let object = aya_obj::Object::parse(super::super::OBJECT).unwrap();
    for name in PINNED_MAPS {
        assert!(object.maps.contains_key(name), "no map {name}");
    }
    for name in PROGRAMS {
        assert!(object.programs.contains_key(name), "no program {name}");
    }
    let sizes = |name: &str| {
        let map = &object.maps[name];
        (map.key_size() as usize, map.value_size() as usize)
    };
    assert_eq!(
        sizes(POLICIES_MAP),
        (size_of::<RowKey>(), size_of::<Policy>())
    );
    assert_eq!(
        sizes(REFUSED_MAP),
        (size_of::<RefusalKey>(), size_of::<RefusalCount>())
    );
}

/// This machine's kernel has what the watch needs.
#[test]
fn the_running_kernel_has_what_the_watch_needs() {
    let (config, unavailable) = kernel_config(&KernelBtf::from_kernel().unwrap());
    assert_eq!(unavailable, None);
    assert!(config.regs_nr > 0);
    // include/uapi/asm-generic/siginfo.h: three ints, then the union
    // (aligned to 8 on 64-bit); _sigsys: a pointer, then two ints.
    assert_eq!(
        (
            config.siginfo_code,
            config.siginfo_syscall,
            config.siginfo_arch
        ),
        (8, 24, 28)
    );
    assert_eq!(config.native_audit_arch, AUDIT_ARCHES.0);
    assert!(config.task_seccomp_mode > 0 && config.task_exit_code > 0);
}

#[test]
fn verdicts_encode_as_the_kernel_reads_them() {
    assert_eq!(Verdict::Allowed.encode(), 0);
    assert_eq!(Verdict::Errno(1).encode(), 0x8001);
    // The kernel caps a filter's errno at MAX_ERRNO.
    assert_eq!(Verdict::Errno(9999).encode(), 0x8fff);
    assert_eq!(Verdict::ErrnoOrEnosys(13).encode(), 0x900d);
    assert_eq!(Verdict::Log.encode(), 0x4000);
    assert_eq!(Verdict::Signal.encode(), 0x2000);
    let mut policy = WatchPolicy::new();
    policy
        .cover(abi::NATIVE, Verdict::Errno(1))
        .set(abi::NATIVE, 3, Verdict::Allowed)
        .set(abi::NATIVE, SYSCALL_SLOTS as u32, Verdict::Log)
        .set(abi::COMPAT, 5, Verdict::Log);
    let native = policy.to_kernel(abi::NATIVE).unwrap();
    assert_eq!(native.verdicts[3], 0);
    assert_eq!(native.verdicts[4], 0x8001);
    assert_eq!(native.flags, [0; policy_flag::COUNT]);
    // Covered by `set`, everything else allowed.
    let compat = policy.to_kernel(abi::COMPAT).unwrap();
    assert_eq!((compat.verdicts[5], compat.verdicts[6]), (0x4000, 0));
    assert!(policy.to_kernel(abi::X32).is_none());
    assert_eq!(policy.get(abi::NATIVE, SYSCALL_SLOTS as u32), None);
}
