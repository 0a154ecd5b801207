//! The census of a recording: the kernel's syscall numbers per ABI, named
//! per architecture with libseccomp's names. The one place numbers become
//! names; everything after (profiles, recordings, ContainerProfiles) works
//! with names.
use tracing::warn;

use crate::{bpf::Snapshot, profile::Census, syscalls::Arch};

/// The census of a snapshot: numbers turned into names. A number without a
/// name (a syscall newer than the tables) is reported and left out.
pub fn census_of(snapshot: &Snapshot) -> Census {
    let mut census = Census::default();
    for (&abi_id, numbers) in &snapshot.seen {
        let Some(arch) = Arch::for_abi(abi_id) else {
            warn!(
                abi = abi_id,
                count = numbers.len(),
                "syscalls of an ABI without a table were made"
            );
            continue;
        };
        let names = census.syscalls.entry(arch).or_default();
        for &nr in numbers {
            match arch.name(nr) {
                Some(name) => {
                    names.insert(name);
                }
                None => {
                    warn!(arch = %arch, nr, "syscall number has no name in the tables; left out")
                }
            }
        }
    }
    census.syscalls.retain(|_, names| !names.is_empty());
    census
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn census_names_numbers_per_abi() {
        let mut snapshot = Snapshot::default();
        let read = Arch::native().number("read").expect("read exists");
        snapshot
            .seen
            .insert(syscensus_common::abi::NATIVE, vec![read, 100_000]);
        let census = census_of(&snapshot);
        let names: Vec<_> = census.syscalls[&Arch::native()].iter().copied().collect();
        assert_eq!(names, vec!["read"]);
    }
}
