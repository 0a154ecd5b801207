//! The census: which syscalls a workload made, by name per architecture.
//! The one shape of a recording's result, from the kernel's numbers (named
//! here, [`census_of`]) through the profile, the ContainerRecording and this
//! node's contribution to the ContainerProfile, whose spec holds the same
//! map ([`Census::from_spec`], [`Census::to_spec`]).
//!
//! Architectures are keyed by libseccomp's names (`SCMP_ARCH_X86_64`), so a
//! census read from outside (a ContainerProfile) keeps architectures this
//! build has no table for; rendering a profile refuses them
//! (`localhost::check`). Names are libseccomp's, sorted.
use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use tracing::warn;

use crate::{bpf::Snapshot, syscalls::Arch};

/// Syscall names per architecture. Serialized as a map of sorted arrays
/// (`{"SCMP_ARCH_X86_64": ["read", "write"]}`), as recordings and
/// ContainerProfiles hold it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(from = "NameMap", into = "NameMap")]
pub struct Census {
    by_arch: NameMap,
}

type NameMap = BTreeMap<String, BTreeSet<String>>;

impl From<NameMap> for Census {
    fn from(mut by_arch: NameMap) -> Census {
        by_arch.retain(|_, names| !names.is_empty());
        Census { by_arch }
    }
}

impl From<Census> for NameMap {
    fn from(census: Census) -> NameMap {
        census.by_arch
    }
}

impl Census {
    /// Adds `names` made on `arch`; returns whether any was new.
    pub fn extend<S: Into<String>>(
        &mut self,
        arch: Arch,
        names: impl IntoIterator<Item = S>,
    ) -> bool {
        self.extend_named(arch.scmp_name(), names)
    }

    /// [`extend`](Self::extend) for an architecture by its `SCMP_ARCH_*`
    /// name.
    pub fn extend_named<S: Into<String>>(
        &mut self,
        arch: &str,
        names: impl IntoIterator<Item = S>,
    ) -> bool {
        let mut names = names.into_iter().map(Into::into).peekable();
        if names.peek().is_none() {
            return false;
        }
        let set = self.by_arch.entry(arch.to_owned()).or_default();
        let mut grew = false;
        for name in names {
            grew |= set.insert(name);
        }
        grew
    }

    /// Adds everything `other` saw; returns whether anything was new.
    pub fn merge(&mut self, other: &Census) -> bool {
        let mut grew = false;
        for (arch, names) in &other.by_arch {
            grew |= self.extend_named(arch, names.iter().cloned());
        }
        grew
    }

    /// The names per architecture (none empty), in name order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &BTreeSet<String>)> {
        self.by_arch.iter().map(|(a, n)| (a.as_str(), n))
    }

    /// The names made on `arch`.
    pub fn names(&self, arch: &str) -> Option<&BTreeSet<String>> {
        self.by_arch.get(arch)
    }

    /// What this holds that `other` does not.
    pub fn difference(&self, other: &Census) -> Census {
        let mut out = Census::default();
        for (arch, names) in &self.by_arch {
            let theirs = other.by_arch.get(arch);
            out.extend_named(
                arch,
                names
                    .iter()
                    .filter(|n| !theirs.is_some_and(|t| t.contains(*n)))
                    .cloned(),
            );
        }
        out
    }

    /// Number of distinct (architecture, syscall) pairs.
    pub fn len(&self) -> usize {
        self.by_arch.values().map(BTreeSet::len).sum()
    }

    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The census a ContainerProfile's spec (or any such map) holds; empty
    /// architectures are left out.
    pub fn from_spec(syscalls: &BTreeMap<String, Vec<String>>) -> Census {
        let mut census = Census::default();
        for (arch, names) in syscalls {
            census.extend_named(arch, names.iter().cloned());
        }
        census
    }

    /// The map a ContainerProfile's spec holds.
    pub fn to_spec(&self) -> BTreeMap<String, Vec<String>> {
        self.by_arch
            .iter()
            .map(|(arch, names)| (arch.clone(), names.iter().cloned().collect()))
            .collect()
    }
}

/// The census of a snapshot: numbers turned into names. A number without a
/// name (a syscall newer than the tables) is reported and left out.
pub fn census_of(snapshot: &Snapshot) -> Census {
    census_of_seen(&snapshot.seen)
}

/// The census of syscall numbers seen per ABI (`syscensus_common::abi`), as
/// a snapshot or one of its sessions holds them.
pub fn census_of_seen(seen: &BTreeMap<u32, Vec<u32>>) -> Census {
    let mut census = Census::default();
    for (&abi_id, numbers) in seen {
        let Some(arch) = Arch::for_abi(abi_id) else {
            warn!(
                abi = abi_id,
                count = numbers.len(),
                "syscalls of an ABI without a table were made"
            );
            continue;
        };
        let names = numbers.iter().filter_map(|&nr| {
            let name = arch.name(nr);
            if name.is_none() {
                warn!(arch = %arch, nr, "syscall number has no name in the tables; left out");
            }
            name
        });
        census.extend(arch, names);
    }
    census
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    #[test]
    fn census_names_numbers_per_abi() {
        let mut snapshot = Snapshot::default();
        let read = Arch::native().number("read").expect("read exists");
        snapshot
            .seen
            .insert(syscensus_common::abi::NATIVE, vec![read, 100_000]);
        let census = census_of(&snapshot);
        let names: Vec<_> = census
            .names(Arch::native().scmp_name())
            .unwrap()
            .iter()
            .collect();
        assert_eq!(names, ["read"]);
    }

    /// This kernel has no x32 support, so x32 is unit-tested here: ids as
    /// `sys_enter` receives them from an x32 task (numbers with
    /// `__X32_SYSCALL_BIT`) are recorded under the x32 ABI, without the bit,
    /// and named from the x32 table, where numbers from 512 differ from
    /// x86_64's; ia32 (a compat task) goes to the i386 table. The kernel
    /// program classifies with the same function.
    #[test]
    fn x32_ids_are_named_from_the_x32_table() {
        use syscensus_common::{X32_SYSCALL_BIT, abi, classify_syscall};
        let mut snapshot = Snapshot::default();
        let ids = [
            (0, false),
            (1, false),
            (257, false),
            (512, false),
            (520, false),
            (547, false),
        ];
        for (nr, compat) in ids {
            let (abi_id, slot) = classify_syscall(nr | X32_SYSCALL_BIT, || compat);
            assert_eq!((abi_id, slot), (abi::X32, nr));
            snapshot
                .seen
                .entry(abi_id)
                .or_default()
                .push(u32::try_from(slot).unwrap());
        }
        // The compat test is not what makes x32 x32.
        assert_eq!(
            classify_syscall(X32_SYSCALL_BIT | 3, || true),
            (abi::X32, 3)
        );
        // ia32 and native ids keep their numbers.
        assert_eq!(classify_syscall(11, || true), (abi::COMPAT, 11));
        assert_eq!(classify_syscall(59, || false), (abi::NATIVE, 59));
        let (compat, nr) = classify_syscall(11, || true);
        snapshot
            .seen
            .insert(compat, vec![u32::try_from(nr).unwrap()]);

        let census = census_of(&snapshot);
        let x32: Vec<&str> = census
            .names("SCMP_ARCH_X32")
            .unwrap()
            .iter()
            .map(String::as_str)
            .collect();
        // 512 and 520 are x32's own rt_sigaction and execve (x86_64's 13
        // and 59); 547 is x32's pwritev2.
        assert_eq!(
            x32,
            [
                "execve",
                "openat",
                "pwritev2",
                "read",
                "rt_sigaction",
                "write"
            ]
        );
        assert_eq!(
            census
                .names("SCMP_ARCH_X86")
                .unwrap()
                .iter()
                .collect::<Vec<_>>(),
            ["execve"]
        );
        assert!(census.names("SCMP_ARCH_X86_64").is_none(), "{census:?}");
    }

    #[test]
    fn the_spec_form_round_trips_and_serializes_the_same() {
        let spec: BTreeMap<String, Vec<String>> = [
            (
                "SCMP_ARCH_X86_64".to_owned(),
                vec!["read".into(), "write".into()],
            ),
            ("SCMP_ARCH_X86".to_owned(), vec![]),
        ]
        .into();
        let census = Census::from_spec(&spec);
        assert_eq!(census.len(), 2);
        assert!(census.names("SCMP_ARCH_X86").is_none(), "empty left out");
        assert_eq!(
            serde_json::to_string(&census).unwrap(),
            r#"{"SCMP_ARCH_X86_64":["read","write"]}"#
        );
        let back: Census = serde_json::from_str(
            r#"{"SCMP_ARCH_X86_64":["write","read","read"],"SCMP_ARCH_X86":[]}"#,
        )
        .unwrap();
        assert_eq!(back, census);
        assert_eq!(back.to_spec()["SCMP_ARCH_X86_64"], ["read", "write"]);
    }

    #[test]
    fn merging_says_whether_it_grew() {
        let mut a = Census::default();
        assert!(a.extend(Arch::X86_64, ["read"]));
        assert!(!a.extend(Arch::X86_64, ["read"]));
        let mut b = Census::default();
        b.extend(Arch::X86, ["read"]);
        assert!(a.merge(&b));
        assert!(!a.merge(&b));
        assert_eq!(a.len(), 2);
    }
}
