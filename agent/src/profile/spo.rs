//! Writing Security Profiles Operator `SeccompProfile` objects.
//!
//! The schema is SPO's `api/seccompprofile/v1` (the storage version; v1beta1
//! is served for old objects): `spec` holds `defaultAction`,
//! `architectures`, `flags` and `syscalls` like the OCI profile, but has no
//! `defaultErrnoRet` (the operator's profiles fail with EPERM), no per-rule
//! `comment`, `errnoRet` 1 to 4095 (0 means unset) and argument values that
//! fit a signed 64-bit integer. Rule comments go to the annotation
//! [`RULE_COMMENTS_ANNOTATION`]. Since SPO 0.9 SeccompProfile is
//! cluster-scoped: a namespace, if given, is written for older operators and
//! ignored by the API server of newer ones.
use std::collections::BTreeMap;

use serde::Serialize;

use super::{Action, Op, Profile, ProfileError, error::SpoProblem, names::SPO_GROUP};

/// The annotation that carries rule comments, one `syscalls[N]: comment` per
/// line.
pub const RULE_COMMENTS_ANNOTATION: &str = "syscensus.io/rule-comments";

/// Architectures SPO's `Arch` enum accepts.
const SPO_ARCHES: [&str; 20] = [
    "SCMP_ARCH_NATIVE",
    "SCMP_ARCH_X86",
    "SCMP_ARCH_X86_64",
    "SCMP_ARCH_X32",
    "SCMP_ARCH_ARM",
    "SCMP_ARCH_AARCH64",
    "SCMP_ARCH_MIPS",
    "SCMP_ARCH_MIPS64",
    "SCMP_ARCH_MIPS64N32",
    "SCMP_ARCH_MIPSEL",
    "SCMP_ARCH_MIPSEL64",
    "SCMP_ARCH_MIPSEL64N32",
    "SCMP_ARCH_PPC",
    "SCMP_ARCH_PPC64",
    "SCMP_ARCH_PPC64LE",
    "SCMP_ARCH_S390",
    "SCMP_ARCH_S390X",
    "SCMP_ARCH_PARISC",
    "SCMP_ARCH_PARISC64",
    "SCMP_ARCH_RISCV64",
];

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Object<'a> {
    api_version: String,
    kind: &'static str,
    metadata: Metadata<'a>,
    spec: Spec<'a>,
}

#[derive(Serialize)]
struct Metadata<'a> {
    name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    namespace: Option<&'a str>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    annotations: BTreeMap<&'static str, String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Spec<'a> {
    default_action: Action,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    architectures: &'a [String],
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    flags: &'a [String],
    #[serde(skip_serializing_if = "Vec::is_empty")]
    syscalls: Vec<Syscall<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Syscall<'a> {
    action: Action,
    names: Vec<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    errno_ret: Option<u32>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    args: Vec<SpoArg>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SpoArg {
    index: u32,
    value: u64,
    #[serde(skip_serializing_if = "is_zero")]
    value_two: u64,
    op: Op,
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

fn spo_error(problem: SpoProblem) -> ProfileError {
    ProfileError::Spo { problem }
}

impl Profile {
    /// The profile as an SPO `SeccompProfile` object (YAML) named `name`:
    /// deterministic, and the same rules as [`to_oci_json`](Self::to_oci_json)
    /// in the same order. Fails if `name` (or `namespace`) is not a valid
    /// Kubernetes name, or if the profile uses something SPO's schema cannot
    /// hold (a default errno other than EPERM, errno 0, argument values above
    /// `i64::MAX`, more than 6 conditions in a rule).
    pub fn to_spo_yaml(&self, name: &str, namespace: Option<&str>) -> Result<String, ProfileError> {
        self.to_spo_yaml_as(name, namespace, "v1")
    }

    /// [`to_spo_yaml`](Self::to_spo_yaml) for another version of SPO's API
    /// (`v1beta1` for operators before 1.0: the same schema).
    pub fn to_spo_yaml_as(
        &self,
        name: &str,
        namespace: Option<&str>,
        version: &str,
    ) -> Result<String, ProfileError> {
        validate_object_name(name)?;
        if let Some(namespace) = namespace {
            validate_namespace(namespace)?;
        }
        if self.default_action == Action::Notify {
            return Err(spo_error(SpoProblem::NotifyDefault));
        }
        if matches!(self.default_action, Action::Errno | Action::Trace)
            && let Some(errno) = self.default_errno_ret.filter(|e| *e != libc::EPERM as u32)
        {
            return Err(spo_error(SpoProblem::DefaultErrno { errno }));
        }
        if let Some(arch) = self
            .architectures
            .iter()
            .find(|a| !SPO_ARCHES.contains(&a.as_str()))
        {
            return Err(spo_error(SpoProblem::Architecture { arch: arch.clone() }));
        }

        let mut syscalls = Vec::new();
        let mut comments = Vec::new();
        for (index, rule) in self.syscalls.iter().enumerate() {
            match rule.errno_ret {
                Some(0) => return Err(spo_error(SpoProblem::ZeroErrno { index })),
                Some(errno) if errno > 4095 => {
                    return Err(spo_error(SpoProblem::ErrnoRange { index, errno }));
                }
                _ => {}
            }
            if rule.args.len() > 6 {
                return Err(spo_error(SpoProblem::TooManyArgs {
                    index,
                    count: rule.args.len(),
                }));
            }
            let max = i64::MAX as u64;
            if let Some(value) = rule
                .args
                .iter()
                .flat_map(|a| [a.value, a.value_two])
                .find(|v| *v > max)
            {
                return Err(spo_error(SpoProblem::ArgValue { index, value, max }));
            }
            // `names` is a set in SPO's schema: no duplicates.
            let mut names: Vec<&str> = Vec::with_capacity(rule.names.len());
            for name in &rule.names {
                if !names.contains(&name.as_str()) {
                    names.push(name);
                }
            }
            if names.is_empty() {
                continue;
            }
            if let Some(comment) = &rule.comment {
                comments.push(format!("syscalls[{}]: {comment}", syscalls.len()));
            }
            syscalls.push(Syscall {
                action: rule.action,
                names,
                errno_ret: rule.errno_ret,
                args: rule
                    .args
                    .iter()
                    .map(|a| SpoArg {
                        index: a.index,
                        value: a.value,
                        value_two: a.value_two,
                        op: a.op,
                    })
                    .collect(),
            });
        }
        let mut annotations = BTreeMap::new();
        if !comments.is_empty() {
            annotations.insert(RULE_COMMENTS_ANNOTATION, comments.join("\n"));
        }
        let object = Object {
            api_version: format!("{SPO_GROUP}/{version}"),
            kind: "SeccompProfile",
            metadata: Metadata {
                name,
                namespace,
                annotations,
            },
            spec: Spec {
                default_action: self.default_action,
                architectures: &self.architectures,
                flags: &self.flags,
                syscalls,
            },
        };
        #[expect(
            clippy::unwrap_used,
            reason = "serializing plain data to a String cannot fail"
        )]
        Ok(serde_norway::to_string(&object).unwrap())
    }
}

/// Checks that `name` can be a SeccompProfile's `metadata.name` (a
/// DNS-1123 subdomain), so that a command can refuse a bad `--name` before
/// it does any work.
pub fn validate_object_name(name: &str) -> Result<(), ProfileError> {
    check_object_name(name).map_err(spo_error)
}

/// Checks that `namespace` is a valid namespace name (a DNS-1123 label).
pub fn validate_namespace(namespace: &str) -> Result<(), ProfileError> {
    check_namespace(namespace).map_err(spo_error)
}

/// Checks a Kubernetes object name (a DNS-1123 subdomain).
fn check_object_name(name: &str) -> Result<(), SpoProblem> {
    let reason = if name.is_empty() {
        Some("it is empty")
    } else if name.len() > 253 {
        Some("it is longer than 253 characters")
    } else if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
    {
        Some("it has characters other than lowercase letters, digits, '-' and '.'")
    } else if name
        .split('.')
        .any(|label| label.is_empty() || label.starts_with('-') || label.ends_with('-'))
    {
        Some("each dot-separated part must start and end with a letter or digit")
    } else {
        None
    };
    match reason {
        None => Ok(()),
        Some(reason) => Err(SpoProblem::Name {
            name: name.to_owned(),
            reason,
            suggestion: suggest_object_name(name),
        }),
    }
}

/// Checks a namespace name (a DNS-1123 label).
fn check_namespace(namespace: &str) -> Result<(), SpoProblem> {
    let reason = if namespace.is_empty() {
        Some("it is empty")
    } else if namespace.len() > 63 {
        Some("it is longer than 63 characters")
    } else if !namespace
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        Some("it has characters other than lowercase letters, digits and '-'")
    } else if namespace.starts_with('-') || namespace.ends_with('-') {
        Some("it must start and end with a letter or digit")
    } else {
        None
    };
    match reason {
        None => Ok(()),
        Some(reason) => Err(SpoProblem::Namespace {
            namespace: namespace.to_owned(),
            reason,
        }),
    }
}

/// A valid object name close to `name`: lowercased, other characters
/// replaced by '-', trimmed to 253 characters.
pub fn suggest_object_name(name: &str) -> String {
    let mapped: String = name
        .chars()
        .map(|c| {
            let c = c.to_ascii_lowercase();
            if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' {
                c
            } else {
                '-'
            }
        })
        .collect();
    let labels: Vec<&str> = mapped
        .split('.')
        .map(|l| l.trim_matches('-'))
        .filter(|l| !l.is_empty())
        .collect();
    let mut joined = labels.join(".");
    joined.truncate(253);
    let trimmed = joined.trim_end_matches(['-', '.']);
    if trimmed.is_empty() {
        "profile".to_owned()
    } else {
        trimmed.to_owned()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    #[test]
    fn object_names_follow_dns_1123() {
        for good in ["a", "nginx", "nginx-1.23.2", "runc-v1.4.2", "a.b-c.d"] {
            assert!(check_object_name(good).is_ok(), "{good}");
        }
        for bad in ["", "Nginx", "my_app", "-a", "a-", "a..b", ".a", "a b"] {
            assert!(check_object_name(bad).is_err(), "{bad}");
        }
        assert!(check_object_name(&"a".repeat(254)).is_err());
        assert!(check_namespace("kube-system").is_ok());
        assert!(check_namespace("a.b").is_err());
    }

    #[test]
    fn suggestions_are_valid_names() {
        for name in ["My_App", "--x--", "python3.11", "", "...", "a..b", "ÄÖ"] {
            let suggestion = suggest_object_name(name);
            assert!(
                check_object_name(&suggestion).is_ok(),
                "{name} -> {suggestion}"
            );
        }
        assert_eq!(suggest_object_name("My_App"), "my-app");
    }
}
