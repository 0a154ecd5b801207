//! Which rule of a profile holds what: the syscalls recorded for one
//! architecture, the runtime base set, or anything else; the profile of a
//! census, and the union of profiles.
//! Pure: no I/O.
use std::collections::{BTreeMap, BTreeSet};

use super::{Action, Arg, BaseSet, BuildOptions, Profile, Rule};
use crate::{census::Census, syscalls::Arch};

/// Comment prefix of a rule that holds what was recorded on one
/// architecture (`recorded: SCMP_ARCH_X86_64`).
pub const RECORDED_COMMENT: &str = "recorded: ";
/// Comment prefix of the rule that holds the runtime base set
/// (`runtime base set: runc-1.1`).
pub const BASE_SET_COMMENT: &str = "runtime base set: ";

/// What a rule is for, as syscensus writes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RuleRole<'a> {
    /// Syscalls recorded on the named architecture.
    Recorded(&'a str),
    /// The runtime base set with this name (several joined by `+`).
    BaseSet(&'a str),
    /// Any other rule.
    Other,
}

impl Rule {
    /// What the rule is for: only unconditional allow rules with a
    /// syscensus comment are recorded or base-set rules.
    pub fn role(&self) -> RuleRole<'_> {
        if self.action != Action::Allow || !self.args.is_empty() || self.errno_ret.is_some() {
            return RuleRole::Other;
        }
        match self.comment.as_deref() {
            Some(c) if c.starts_with(RECORDED_COMMENT) => {
                RuleRole::Recorded(&c[RECORDED_COMMENT.len()..])
            }
            Some(c) if c.starts_with(BASE_SET_COMMENT) => {
                RuleRole::BaseSet(&c[BASE_SET_COMMENT.len()..])
            }
            _ => RuleRole::Other,
        }
    }
}

/// Sort key of an architecture name: the ones with syscall tables in
/// [`Arch::ALL`] order (the order [`Profile::from_census`] writes), then the
/// others by name.
fn arch_rank(name: &str) -> (usize, &str) {
    let rank = Arch::ALL
        .iter()
        .position(|a| a.scmp_name() == name)
        .unwrap_or(Arch::ALL.len());
    (rank, name)
}

/// The architectures a profile of `recorded` architectures lists: those,
/// and the native architecture of each compat ABI (x86_64 for ia32 and
/// x32), since the recorder only runs on x86_64 and aarch64.
fn listed_architectures<'a>(recorded: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let mut names: BTreeSet<&str> = BTreeSet::new();
    for name in recorded {
        names.insert(name);
        if let Some(arch) = Arch::from_scmp_name(name) {
            for native in [Arch::X86_64, Arch::Aarch64] {
                if native.with_sub_arches().contains(&arch) {
                    names.insert(native.scmp_name());
                }
            }
        }
    }
    let mut names: Vec<&str> = names.into_iter().collect();
    names.sort_by_key(|n| arch_rank(n));
    names.into_iter().map(str::to_owned).collect()
}

/// The rule of the syscalls every profile allows because a recording can
/// miss them by timing alone ([`crate::always_allowed`]), for a profile that
/// lists `architectures`; `None` when none applies.
fn always_allowed_rule<'a>(architectures: impl IntoIterator<Item = &'a str>) -> Option<Rule> {
    let names = crate::always_allowed::names_for(architectures);
    (!names.is_empty()).then(|| allow_rule(names, crate::always_allowed::COMMENT.to_owned()))
}

fn allow_rule(names: Vec<String>, comment: String) -> Rule {
    Rule {
        names,
        action: Action::Allow,
        errno_ret: None,
        args: Vec::new(),
        comment: Some(comment),
    }
}

impl Profile {
    /// The profile that allows exactly what `census` saw, plus `base`, plus
    /// the syscalls a recording can miss by timing alone
    /// ([`crate::always_allowed`]): one rule per architecture, with a
    /// `recorded:` comment, then the base set's rule, then the
    /// always-allowed rule.
    ///
    /// `architectures` lists the recorded architectures and the native
    /// architecture of any compat ABI (x86_64 for ia32 and x32); a syscall
    /// of an unlisted architecture then kills the thread (libseccomp's
    /// bad-architecture action). It does not depend on the machine that
    /// builds it. The OCI format has no per-architecture rule, so runtimes
    /// allow every listed name on every listed architecture; the rules are
    /// per architecture anyway so that a reviewer sees which ABI made which
    /// call.
    pub fn from_census(census: &Census, base: Option<&BaseSet>, options: &BuildOptions) -> Profile {
        let architectures = listed_architectures(census.iter().map(|(arch, _)| arch));
        let mut rules: Vec<Rule> = architectures
            .iter()
            .filter_map(|arch| {
                let names = census.names(arch)?;
                Some(allow_rule(
                    names.iter().cloned().collect(),
                    format!("{RECORDED_COMMENT}{arch}"),
                ))
            })
            .collect();
        if let Some(base) = base.filter(|b| !b.syscalls.is_empty()) {
            rules.push(allow_rule(
                base.syscalls.iter().cloned().collect(),
                format!("{BASE_SET_COMMENT}{}", base.name),
            ));
        }
        rules.extend(always_allowed_rule(
            architectures.iter().map(String::as_str),
        ));
        Profile {
            default_action: options.default_action,
            default_errno_ret: (options.default_action == Action::Errno)
                .then_some(options.errno_ret),
            architectures,
            flags: Vec::new(),
            syscalls: rules,
        }
    }

    /// The errno a blocked syscall fails with, when the default action
    /// returns one (EPERM when the profile leaves it out, as runtimes do).
    pub fn effective_default_errno(&self) -> Option<u32> {
        matches!(self.default_action, Action::Errno | Action::Trace)
            .then(|| self.default_errno_ret.unwrap_or(libc::EPERM as u32))
    }

    /// The profile that allows whatever `self` or any of `others` allows.
    ///
    /// All must agree on the default action, its errno, the set of
    /// architectures and the flags. Rules are merged by what they are:
    /// `recorded:` rules per architecture, the base-set rules into one (their
    /// names joined with `+`), other rules when action, errno, arguments and
    /// comment are equal. The result has the recorded rules in the order of
    /// `self`'s architectures, then the base set, then the other rules in
    /// the order they first appear; names are sorted.
    pub fn union(&self, others: &[Profile]) -> Result<Profile, UnionMismatch> {
        let sorted = |v: &[String]| v.iter().cloned().collect::<BTreeSet<_>>();
        for (index, other) in others.iter().enumerate() {
            let mismatch = if self.default_action != other.default_action {
                Some(Mismatch::DefaultAction {
                    a: self.default_action,
                    b: other.default_action,
                })
            } else if self.effective_default_errno() != other.effective_default_errno() {
                Some(Mismatch::DefaultErrno {
                    a: self.effective_default_errno(),
                    b: other.effective_default_errno(),
                })
            } else if sorted(&self.architectures) != sorted(&other.architectures) {
                Some(Mismatch::Architectures {
                    a: self.architectures.clone(),
                    b: other.architectures.clone(),
                })
            } else if sorted(&self.flags) != sorted(&other.flags) {
                Some(Mismatch::Flags {
                    a: self.flags.clone(),
                    b: other.flags.clone(),
                })
            } else {
                None
            };
            if let Some(mismatch) = mismatch {
                return Err(UnionMismatch { index, mismatch });
            }
        }

        let mut recorded: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        let mut base_names: BTreeSet<String> = BTreeSet::new();
        let mut base_syscalls: BTreeSet<String> = BTreeSet::new();
        let mut others_rules: Vec<(OtherKey, BTreeSet<String>)> = Vec::new();
        for profile in std::iter::once(self).chain(others) {
            for rule in &profile.syscalls {
                match rule.role() {
                    RuleRole::Recorded(arch) => recorded
                        .entry(arch.to_owned())
                        .or_default()
                        .extend(rule.names.iter().cloned()),
                    RuleRole::BaseSet(name) => {
                        base_names.extend(name.split('+').map(str::to_owned));
                        base_syscalls.extend(rule.names.iter().cloned());
                    }
                    RuleRole::Other => {
                        let key = OtherKey {
                            action: rule.action,
                            errno_ret: rule.errno_ret,
                            args: rule.args.clone(),
                            comment: rule.comment.clone(),
                        };
                        match others_rules.iter_mut().find(|(k, _)| *k == key) {
                            Some((_, names)) => names.extend(rule.names.iter().cloned()),
                            None => others_rules.push((key, rule.names.iter().cloned().collect())),
                        }
                    }
                }
            }
        }

        let position = |arch: &str| {
            self.architectures
                .iter()
                .position(|a| a == arch)
                .unwrap_or(self.architectures.len())
        };
        let mut recorded: Vec<(String, BTreeSet<String>)> = recorded.into_iter().collect();
        recorded.sort_by(|(a, _), (b, _)| (position(a), a).cmp(&(position(b), b)));
        let mut rules: Vec<Rule> = recorded
            .into_iter()
            .map(|(arch, names)| {
                allow_rule(
                    names.into_iter().collect(),
                    format!("{RECORDED_COMMENT}{arch}"),
                )
            })
            .collect();
        if !base_names.is_empty() {
            rules.push(allow_rule(
                base_syscalls.into_iter().collect(),
                format!(
                    "{BASE_SET_COMMENT}{}",
                    base_names.into_iter().collect::<Vec<_>>().join("+")
                ),
            ));
        }
        rules.extend(others_rules.into_iter().map(|(key, names)| Rule {
            names: names.into_iter().collect(),
            action: key.action,
            errno_ret: key.errno_ret,
            args: key.args,
            comment: key.comment,
        }));
        Ok(Profile {
            default_action: self.default_action,
            default_errno_ret: self.default_errno_ret,
            architectures: self.architectures.clone(),
            flags: self
                .flags
                .iter()
                .cloned()
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect(),
            syscalls: rules,
        })
    }
}

/// What identifies an "other" rule for merging.
#[derive(PartialEq)]
struct OtherKey {
    action: Action,
    errno_ret: Option<u32>,
    args: Vec<Arg>,
    comment: Option<String>,
}

/// Profiles that cannot be merged: `others[index]` differs from the first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnionMismatch {
    pub index: usize,
    pub mismatch: Mismatch,
}

/// How two profiles differ where a union needs them equal.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Mismatch {
    #[error("their default actions differ ({} vs {})", action_name(*a), action_name(*b))]
    DefaultAction { a: Action, b: Action },
    #[error("their default errnos differ ({} vs {})", errno_name(*a), errno_name(*b))]
    DefaultErrno { a: Option<u32>, b: Option<u32> },
    #[error("their architectures differ ([{}] vs [{}])", a.join(", "), b.join(", "))]
    Architectures { a: Vec<String>, b: Vec<String> },
    #[error("their flags differ ([{}] vs [{}])", a.join(", "), b.join(", "))]
    Flags { a: Vec<String>, b: Vec<String> },
}

/// The name of an action as profiles write it (`SCMP_ACT_ERRNO`).
pub fn action_name(action: Action) -> String {
    serde_json::to_value(action)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_else(|| format!("{action:?}"))
}

fn errno_name(errno: Option<u32>) -> String {
    errno.map_or_else(|| "none".to_owned(), |e| e.to_string())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    fn census(pairs: &[(&str, &[&str])]) -> Census {
        let mut census = Census::default();
        for (arch, names) in pairs {
            census.extend_named(arch, names.iter().copied());
        }
        census
    }

    #[test]
    fn the_profile_lists_what_was_recorded_wherever_it_is_built() {
        let base = BaseSet {
            name: "runc-1.1".into(),
            syscalls: ["execve".to_owned()].into_iter().collect(),
        };
        // Recorded on an aarch64 node, built anywhere.
        let p = Profile::from_census(
            &census(&[("SCMP_ARCH_AARCH64", &["read", "write"])]),
            Some(&base),
            &BuildOptions::default(),
        );
        assert_eq!(p.architectures, ["SCMP_ARCH_AARCH64"]);
        assert_eq!(p.syscalls.len(), 3, "recorded, base set, always allowed");
        assert_eq!(
            p.syscalls[0].role(),
            RuleRole::Recorded("SCMP_ARCH_AARCH64")
        );
        assert_eq!(p.syscalls[1].role(), RuleRole::BaseSet("runc-1.1"));
    }

    #[test]
    fn compat_abis_bring_their_native_architecture() {
        let p = Profile::from_census(
            &census(&[("SCMP_ARCH_X86", &["read"]), ("SCMP_ARCH_X32", &[])]),
            None,
            &BuildOptions::default(),
        );
        assert_eq!(p.architectures, ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"]);
        assert_eq!(p.syscalls.len(), 2);
        assert_eq!(p.syscalls[0].role(), RuleRole::Recorded("SCMP_ARCH_X86"));
        // The always-allowed rule comes last, with ia32's own names.
        assert_eq!(
            p.syscalls[1].comment.as_deref(),
            Some(crate::always_allowed::COMMENT)
        );
        assert!(p.syscalls[1].names.contains(&"sigreturn".to_owned()));
    }

    #[test]
    fn every_profile_allows_what_timing_can_hide_in_a_rule_of_its_own() {
        let o = BuildOptions::default();
        let p = Profile::from_census(&census(&[("SCMP_ARCH_X86_64", &["read"])]), None, &o);
        let last = p.syscalls.last().unwrap();
        assert_eq!(last.role(), RuleRole::Other);
        assert_eq!(
            last.comment.as_deref(),
            Some(crate::always_allowed::COMMENT)
        );
        assert_eq!(
            last.names,
            crate::always_allowed::names_for(["SCMP_ARCH_X86_64"])
        );
        assert!(last.names.contains(&"rt_sigreturn".to_owned()));
        assert!(
            !last.names.contains(&"sigreturn".to_owned()),
            "x86_64 has no sigreturn"
        );
        // The union of a profile with itself is the profile: the rule merges.
        assert_eq!(p.union(std::slice::from_ref(&p)).unwrap(), p);
        // A profile with nothing recorded lists no architecture, and allows
        // nothing.
        let empty = Profile::from_census(&Census::default(), None, &o);
        assert_eq!(
            empty.syscalls.len(),
            usize::from(!empty.architectures.is_empty())
        );
    }

    #[test]
    fn union_merges_rules_by_role() {
        let base = |name: &str, calls: &[&str]| BaseSet {
            name: name.into(),
            syscalls: calls.iter().map(|c| (*c).to_owned()).collect(),
        };
        let o = BuildOptions::default();
        let a = Profile::from_census(
            &census(&[("SCMP_ARCH_X86_64", &["read", "write"])]),
            Some(&base("runc-1.1", &["execve"])),
            &o,
        );
        let b = Profile::from_census(
            &census(&[("SCMP_ARCH_X86_64", &["openat", "read"])]),
            Some(&base("crun-1.8", &["execve", "close"])),
            &o,
        );
        let u = a.union(std::slice::from_ref(&b)).unwrap();
        assert_eq!(u.syscalls[0].names, ["openat", "read", "write"]);
        assert_eq!(
            u.syscalls[1].comment.as_deref(),
            Some("runtime base set: crun-1.8+runc-1.1")
        );
        assert_eq!(u.syscalls[1].names, ["close", "execve"]);
        // Order does not matter for the content.
        let v = b.union(std::slice::from_ref(&a)).unwrap();
        assert_eq!(u, v);
    }

    #[test]
    fn union_refuses_mismatches() {
        let o = BuildOptions::default();
        let a = Profile::from_census(&census(&[("SCMP_ARCH_X86_64", &["read"])]), None, &o);
        let mut b = a.clone();
        b.default_action = Action::Log;
        b.default_errno_ret = None;
        let err = a.union(&[a.clone(), b]).unwrap_err();
        assert_eq!(err.index, 1);
        assert_eq!(
            err.mismatch.to_string(),
            "their default actions differ (SCMP_ACT_ERRNO vs SCMP_ACT_LOG)"
        );
        let mut c = a.clone();
        c.architectures.push("SCMP_ARCH_X86".into());
        assert!(matches!(
            a.union(&[c]).unwrap_err().mismatch,
            Mismatch::Architectures { .. }
        ));
        let mut d = a.clone();
        d.default_errno_ret = Some(38);
        assert!(matches!(
            a.union(&[d]).unwrap_err().mismatch,
            Mismatch::DefaultErrno { .. }
        ));
        // An errno left out is EPERM.
        let mut e = a.clone();
        e.default_errno_ret = None;
        assert!(a.union(&[e]).is_ok());
    }
}
