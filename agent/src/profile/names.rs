//! The names a profile may use (actions, operators, architectures, flags,
//! syscalls) and the deserializers that check them while parsing, so that an
//! unknown name is reported at its line and column.
use std::{fmt, marker::PhantomData};

use serde::{
    Deserialize, Deserializer,
    de::{self, Visitor},
};

use super::{Action, Op};
use crate::syscalls;

/// The API group of Security Profiles Operator objects.
pub const SPO_GROUP: &str = "security-profiles-operator.x-k8s.io";

/// Every `SCMP_ARCH_*` name libseccomp and the runtime spec know.
pub const ARCH_NAMES: [&str; 24] = [
    "SCMP_ARCH_NATIVE",
    "SCMP_ARCH_X86",
    "SCMP_ARCH_X86_64",
    "SCMP_ARCH_X32",
    "SCMP_ARCH_ARM",
    "SCMP_ARCH_AARCH64",
    "SCMP_ARCH_LOONGARCH64",
    "SCMP_ARCH_M68K",
    "SCMP_ARCH_MIPS",
    "SCMP_ARCH_MIPS64",
    "SCMP_ARCH_MIPS64N32",
    "SCMP_ARCH_MIPSEL",
    "SCMP_ARCH_MIPSEL64",
    "SCMP_ARCH_MIPSEL64N32",
    "SCMP_ARCH_PPC",
    "SCMP_ARCH_PPC64",
    "SCMP_ARCH_PPC64LE",
    "SCMP_ARCH_RISCV64",
    "SCMP_ARCH_S390",
    "SCMP_ARCH_S390X",
    "SCMP_ARCH_PARISC",
    "SCMP_ARCH_PARISC64",
    "SCMP_ARCH_SH",
    "SCMP_ARCH_SHEB",
];

/// The `seccomp(2)` flags the runtime spec names.
pub const FLAG_NAMES: [&str; 4] = [
    "SECCOMP_FILTER_FLAG_TSYNC",
    "SECCOMP_FILTER_FLAG_LOG",
    "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
    "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV",
];

const ACTION_NAMES: [(&str, Action); 9] = [
    ("SCMP_ACT_ALLOW", Action::Allow),
    ("SCMP_ACT_ERRNO", Action::Errno),
    ("SCMP_ACT_LOG", Action::Log),
    ("SCMP_ACT_KILL_THREAD", Action::KillThread),
    ("SCMP_ACT_KILL", Action::KillThread),
    ("SCMP_ACT_KILL_PROCESS", Action::KillProcess),
    ("SCMP_ACT_TRAP", Action::Trap),
    ("SCMP_ACT_TRACE", Action::Trace),
    ("SCMP_ACT_NOTIFY", Action::Notify),
];

const OP_NAMES: [(&str, Op); 7] = [
    ("SCMP_CMP_NE", Op::Ne),
    ("SCMP_CMP_LT", Op::Lt),
    ("SCMP_CMP_LE", Op::Le),
    ("SCMP_CMP_EQ", Op::Eq),
    ("SCMP_CMP_GE", Op::Ge),
    ("SCMP_CMP_GT", Op::Gt),
    ("SCMP_CMP_MASKED_EQ", Op::MaskedEq),
];

/// The largest errno the kernel returns (`MAX_ERRNO`).
pub(super) const MAX_ERRNO: u64 = 4095;

/// Deserializes a string through `check`, so that the error it returns is
/// reported at the string's position.
fn checked_string<'de, D, T>(
    deserializer: D,
    expecting: &'static str,
    check: fn(&str) -> Result<T, String>,
) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
{
    struct Checked<T> {
        expecting: &'static str,
        check: fn(&str) -> Result<T, String>,
        marker: PhantomData<T>,
    }
    impl<T> Visitor<'_> for Checked<T> {
        type Value = T;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.expecting)
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<T, E> {
            (self.check)(v).map_err(E::custom)
        }
    }
    deserializer.deserialize_str(Checked {
        expecting,
        check,
        marker: PhantomData,
    })
}

fn one_of<T: Copy>(table: &[(&str, T)], name: &str) -> Option<T> {
    table.iter().find(|(n, _)| *n == name).map(|(_, v)| *v)
}

fn names_of<T>(table: &[(&str, T)]) -> String {
    table.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
}

pub(super) struct RawAction(pub(super) Action);

impl<'de> Deserialize<'de> for RawAction {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        checked_string(d, "an action such as SCMP_ACT_ALLOW", |s| {
            one_of(&ACTION_NAMES, s).map(RawAction).ok_or_else(|| {
                format!(
                    "unknown action {s:?}: use one of {}",
                    names_of(&ACTION_NAMES)
                )
            })
        })
    }
}

pub(super) struct RawOp(pub(super) Op);

impl<'de> Deserialize<'de> for RawOp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        checked_string(d, "an operator such as SCMP_CMP_EQ", |s| {
            one_of(&OP_NAMES, s).map(RawOp).ok_or_else(|| {
                format!("unknown operator {s:?}: use one of {}", names_of(&OP_NAMES))
            })
        })
    }
}

pub(super) struct RawArch(pub(super) String);

impl<'de> Deserialize<'de> for RawArch {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        checked_string(d, "an architecture such as SCMP_ARCH_X86_64", |s| {
            if ARCH_NAMES.contains(&s) {
                Ok(RawArch(s.to_owned()))
            } else {
                Err(format!(
                    "unknown architecture {s:?}: use one of {}",
                    ARCH_NAMES.join(", ")
                ))
            }
        })
    }
}

pub(super) struct RawFlag(pub(super) String);

impl<'de> Deserialize<'de> for RawFlag {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        checked_string(d, "a flag such as SECCOMP_FILTER_FLAG_LOG", |s| {
            if FLAG_NAMES.contains(&s) {
                Ok(RawFlag(s.to_owned()))
            } else {
                Err(format!(
                    "unknown flag {s:?}: use one of {}",
                    FLAG_NAMES.join(", ")
                ))
            }
        })
    }
}

pub(super) struct RawSyscallName(pub(super) String);

impl<'de> Deserialize<'de> for RawSyscallName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        checked_string(d, "a syscall name", |s| {
            if syscalls::is_known(s) {
                Ok(RawSyscallName(s.to_owned()))
            } else {
                Err(format!(
                    "unknown syscall {s:?}: libseccomp knows no syscall of that name on any architecture; check the spelling (profiles use libseccomp's names)"
                ))
            }
        })
    }
}

/// An errno: a number, or (SPO v1beta1) a string holding one.
pub(super) struct RawErrno(pub(super) u32);

impl<'de> Deserialize<'de> for RawErrno {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct ErrnoVisitor;
        fn check<E: de::Error>(v: u64) -> Result<RawErrno, E> {
            u32::try_from(v)
                .ok()
                .filter(|v| u64::from(*v) <= MAX_ERRNO)
                .map(RawErrno)
                .ok_or_else(|| {
                    E::custom(format!("errno {v} is out of range: use 0 to {MAX_ERRNO}"))
                })
        }
        impl Visitor<'_> for ErrnoVisitor {
            type Value = RawErrno;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an errno number")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<RawErrno, E> {
                check(v)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<RawErrno, E> {
                u64::try_from(v)
                    .map_err(|_| {
                        E::custom(format!("errno {v} is out of range: use 0 to {MAX_ERRNO}"))
                    })
                    .and_then(check)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawErrno, E> {
                v.trim()
                    .parse::<u64>()
                    .map_err(|_| {
                        E::custom(format!(
                            "invalid errno {v:?}: expected a number such as 1 (EPERM)"
                        ))
                    })
                    .and_then(check)
            }
        }
        d.deserialize_any(ErrnoVisitor)
    }
}

/// A syscall argument index: 0 to 5.
pub(super) struct RawArgIndex(pub(super) u32);

impl<'de> Deserialize<'de> for RawArgIndex {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct IndexVisitor;
        impl Visitor<'_> for IndexVisitor {
            type Value = RawArgIndex;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an argument index from 0 to 5")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<RawArgIndex, E> {
                u32::try_from(v)
                    .ok()
                    .filter(|v| *v < 6)
                    .map(RawArgIndex)
                    .ok_or_else(|| {
                        E::custom(format!(
                            "argument index {v} is out of range: syscalls have arguments 0 to 5"
                        ))
                    })
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<RawArgIndex, E> {
                u64::try_from(v)
                    .map_err(|_| {
                        E::custom(format!(
                            "argument index {v} is out of range: syscalls have arguments 0 to 5"
                        ))
                    })
                    .and_then(|v| self.visit_u64(v))
            }
        }
        d.deserialize_u64(IndexVisitor)
    }
}
