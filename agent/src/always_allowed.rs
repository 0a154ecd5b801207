//! Syscalls every syscensus profile allows although a recording may not
//! have seen them: the ones a correct recording can miss through timing
//! alone (a signal handler's return, a restarted sleep, contention, the
//! vDSO's clock fallbacks, a recording ended by a kill). They are data
//! (`agent/always-allowed.json`), each with its reason and the
//! architectures it applies to, and go into a rule of their own whose
//! comment says why, after the recorded rules and the runtime base set.
use std::{collections::BTreeSet, sync::OnceLock};

use serde::Deserialize;

use crate::syscalls::Arch;

/// The comment of the rule that holds them.
pub const COMMENT: &str = "always allowed: a recording can miss these by timing alone";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[expect(dead_code, reason = "documentation for reviewers of the data file")]
    description: String,
    syscalls: Vec<Entry>,
    considered: Vec<Considered>,
}

/// One syscall every profile allows, and why.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    pub name: String,
    /// `SCMP_ARCH_*` names of the architectures it is allowed on.
    pub architectures: Vec<String>,
    pub reason: String,
}

/// A candidate that was weighed and left out, and why.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Considered {
    pub name: String,
    pub reason: String,
}

/// The data file, embedded.
const TEXT: &str = include_str!("../always-allowed.json");

fn parse(text: &str) -> Result<File, String> {
    let file: File = serde_json::from_str(text).map_err(|e| e.to_string())?;
    for entry in &file.syscalls {
        if entry.architectures.is_empty() {
            return Err(format!("{}: no architectures", entry.name));
        }
        for arch in &entry.architectures {
            let Some(arch) = Arch::from_scmp_name(arch) else {
                return Err(format!("{}: unknown architecture {arch}", entry.name));
            };
            if arch.number(&entry.name).is_none() {
                return Err(format!("{} is not a syscall on {arch}", entry.name));
            }
        }
    }
    Ok(file)
}

fn file() -> &'static File {
    static FILE: OnceLock<File> = OnceLock::new();
    FILE.get_or_init(|| {
        #[expect(clippy::expect_used, reason = "embedded file, checked by a unit test")]
        parse(TEXT).expect("agent/always-allowed.json is valid")
    })
}

/// Every always-allowed syscall, with its reason.
pub fn entries() -> &'static [Entry] {
    &file().syscalls
}

/// The candidates left out, with the reason.
pub fn considered() -> &'static [Considered] {
    &file().considered
}

/// The always-allowed names for a profile that lists `architectures`
/// (`SCMP_ARCH_*` names; unknown ones add nothing), sorted.
pub fn names_for<'a>(architectures: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let architectures: BTreeSet<&str> = architectures.into_iter().collect();
    let names: BTreeSet<&str> = entries()
        .iter()
        .filter(|e| {
            e.architectures
                .iter()
                .any(|a| architectures.contains(a.as_str()))
        })
        .map(|e| e.name.as_str())
        .collect();
    names.into_iter().map(str::to_owned).collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    #[test]
    fn the_data_file_is_valid_and_sorted() {
        let file = parse(TEXT).unwrap();
        let names: Vec<&str> = file.syscalls.iter().map(|e| e.name.as_str()).collect();
        assert!(names.is_sorted_by(|a, b| a < b), "{names:?}");
        for entry in &file.syscalls {
            assert!(entry.reason.len() > 40, "{} needs a reason", entry.name);
        }
        for considered in &file.considered {
            assert!(
                !names.contains(&considered.name.as_str()),
                "{} is both allowed and left out",
                considered.name
            );
        }
    }

    #[test]
    fn names_per_architecture() {
        let native = names_for(["SCMP_ARCH_X86_64"]);
        for name in [
            "restart_syscall",
            "rt_sigreturn",
            "exit_group",
            "clock_gettime",
        ] {
            assert!(native.contains(&name.to_owned()), "{name}");
        }
        // ia32's own names only where ia32 is listed.
        assert!(!native.contains(&"sigreturn".to_owned()));
        let both = names_for(["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"]);
        for name in ["sigreturn", "futex_time64", "clock_gettime64"] {
            assert!(both.contains(&name.to_owned()), "{name}");
        }
        assert!(both.is_sorted());
        assert!(names_for(["SCMP_ARCH_S390X"]).is_empty());
        // Every name is a syscall of every architecture it is listed for.
        for arch in Arch::ALL {
            for name in names_for([arch.scmp_name()]) {
                assert!(arch.number(&name).is_some(), "{name} on {arch}");
            }
        }
    }

    #[test]
    fn refuses_names_an_architecture_lacks() {
        let text = r#"{"description": "", "considered": [], "syscalls": [
            {"name": "sigreturn", "architectures": ["SCMP_ARCH_X86_64"], "reason": "r"}]}"#;
        assert!(
            parse(text)
                .unwrap_err()
                .contains("not a syscall on SCMP_ARCH_X86_64")
        );
        let text = r#"{"description": "", "considered": [], "syscalls": [
            {"name": "exit", "architectures": ["SCMP_ARCH_PDP11"], "reason": "r"}]}"#;
        assert!(parse(text).unwrap_err().contains("unknown architecture"));
    }
}
