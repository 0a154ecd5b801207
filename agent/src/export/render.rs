//! A ContainerProfile's syscalls as the OCI seccomp profile file that
//! exports and the node agents' installer write, byte for byte.
use std::{collections::BTreeSet, path::Path};

use syscensus_api::{BaseSetRef, ContainerProfileSpec};

use crate::profile::{BaseSet, BuildOptions, Profile};

/// The profile of a ContainerProfile: its syscalls per architecture, each
/// in a `recorded:` rule, and its runtime base set in a rule of its own
/// (see [`Profile::from_syscall_names`]); the default action fails other
/// syscalls with EPERM. It depends on the spec's syscalls and base set
/// only, not on the machine that renders it.
pub fn spec_profile(spec: &ContainerProfileSpec) -> Profile {
    let base = spec.runtime_base_set.as_ref().map(|b| BaseSet {
        name: b.name.clone(),
        syscalls: b.syscalls.iter().cloned().collect(),
    });
    Profile::from_syscall_names(&spec.syscalls, base.as_ref(), &BuildOptions::default())
}

/// The file for a ContainerProfile: [`spec_profile`] as OCI JSON
/// (deterministic, trailing newline). Exports write it at
/// [`profile_path`](super::profile_path) and the installer at
/// `<kubelet-root>/seccomp/syscensus/<profile_path>`, so both hold the same
/// bytes and the same SHA-256.
pub fn render_profile(spec: &ContainerProfileSpec) -> String {
    spec_profile(spec).to_oci_json()
}

/// Checks that a ContainerProfile renders into a profile that runtimes and
/// `syscensus run` accept: known architectures, and names that are
/// syscalls of theirs. The CRD cannot say so, and an approved profile with
/// a wrong name would be installed on every node and fail every Pod that
/// uses it; exports and the installer refuse it instead.
pub fn check_spec(spec: &ContainerProfileSpec) -> Result<(), String> {
    if let Some(arch) = spec
        .syscalls
        .keys()
        .find(|a| crate::syscalls::Arch::from_scmp_name(a).is_none())
    {
        return Err(format!(
            "unknown architecture {arch:?} in spec.syscalls (use names such as SCMP_ARCH_X86_64)"
        ));
    }
    Profile::parse(&render_profile(spec), Path::new("spec.syscalls"), None)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// Merges `other` into `into`: both describe the same workload container
/// (say, from two recordings), and the profile must allow what either saw.
/// Syscalls and base sets are united (base-set names joined with `+`),
/// init-container-ness is kept if either says so, times widen.
pub fn merge_spec(into: &mut ContainerProfileSpec, other: &ContainerProfileSpec) {
    for (arch, names) in &other.syscalls {
        let mine = into.syscalls.entry(arch.clone()).or_default();
        let union: BTreeSet<String> = mine.iter().chain(names).cloned().collect();
        *mine = union.into_iter().collect();
    }
    into.syscall_count = into.syscalls.values().map(|n| n.len() as i64).sum();
    into.init_container |= other.init_container;
    into.runtime_base_set = match (into.runtime_base_set.take(), &other.runtime_base_set) {
        (None, None) => None,
        (Some(x), None) => Some(x),
        (None, Some(x)) => Some(x.clone()),
        (Some(a), Some(b)) => {
            let names: BTreeSet<&str> = a.name.split('+').chain(b.name.split('+')).collect();
            let syscalls: BTreeSet<&String> = a.syscalls.iter().chain(&b.syscalls).collect();
            Some(BaseSetRef {
                name: names.into_iter().collect::<Vec<_>>().join("+"),
                syscalls: syscalls.into_iter().cloned().collect(),
            })
        }
    };
    if other.first_seen.0 < into.first_seen.0 {
        into.first_seen = other.first_seen.clone();
    }
    if other.last_seen.0 > into.last_seen.0 {
        into.last_seen = other.last_seen.clone();
    }
    for warning in &other.warnings {
        if !into.warnings.contains(warning) {
            into.warnings.push(warning.clone());
        }
    }
    into.warnings.sort();
}
