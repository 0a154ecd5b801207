#![allow(clippy::unwrap_used, reason = "tests")]
use super::*;

fn set(name: &str) -> &'static Known {
    all()
        .iter()
        .find(|k| k.set.name == name)
        .unwrap_or_else(|| panic!("no set {name}"))
}

#[test]
fn embedded_files_load() {
    let sets = load().unwrap();
    assert_eq!(sets.len(), FILES.len() + 2 * RUNTIMES.len() + 2);
    for known in &sets {
        assert!(
            known.set.syscalls.contains("execve"),
            "{} must allow the exec",
            known.set.name
        );
    }
}

#[test]
fn hook_calls_are_known_syscalls_of_known_sets() {
    let file = hooks_file();
    let names: Vec<&str> = all().iter().map(|k| k.set.name.as_str()).collect();
    for (set, calls) in &file.sets {
        assert!(
            names.contains(&set.as_str()),
            "hooks.json names unknown base set {set}"
        );
        assert!(
            calls.windows(2).all(|w| w[0] < w[1]),
            "{set}: sort the names"
        );
        for call in calls {
            assert!(crate::syscalls::is_known(call), "{set}: {call}");
        }
    }
    let runc = with_hooks(&set("runc-1.1").set);
    assert_eq!(runc.name, "runc-1.1+hooks");
    assert!(runc.syscalls.contains("clone") && runc.syscalls.contains("capset"));
    // The name resolves to the same set.
    assert_eq!(find("runc-1.1+hooks").unwrap().unwrap(), runc);
    // A covering set gets every runtime's hook calls.
    let any = find("runc-any+hooks").unwrap().unwrap();
    assert!(any.syscalls.contains("wait4") && any.syscalls.contains("madvise"));
    // An unmeasured runtime gets every runtime's hook calls.
    let other = with_hooks(&BaseSet {
        name: "youki-0.4".into(),
        syscalls: ["execve".to_owned()].into(),
    });
    assert!(other.syscalls.contains("wait4") && other.syscalls.contains("rt_sigprocmask"));
}

#[test]
fn covering_sets_include_every_set_they_cover() {
    for known in all().iter().filter(|k| !k.covers.is_empty()) {
        for member in &known.covers {
            let member = set(member);
            assert!(
                member.set.syscalls.is_subset(&known.set.syscalls),
                "{} lacks {:?} of {}",
                known.set.name,
                member
                    .set
                    .syscalls
                    .difference(&known.set.syscalls)
                    .collect::<Vec<_>>(),
                member.set.name
            );
        }
    }
    // Each runtime's covering set covers each of its sets; `any` every set.
    for runtime in RUNTIMES {
        let any = set(&format!("{runtime}-any"));
        let any_nnp = set(&format!("{runtime}-any-nnp"));
        for k in all()
            .iter()
            .filter(|k| k.runtime == runtime.name() && k.covers.is_empty())
        {
            assert!(any.covers.contains(&k.set.name), "{}", k.set.name);
            assert_eq!(any_nnp.covers.contains(&k.set.name), k.no_new_privs);
        }
    }
    let any = set(ANY);
    let measured = all().iter().filter(|k| k.covers.is_empty()).count();
    assert_eq!(any.covers.len(), measured);
}

#[test]
fn a_set_without_no_new_privs_covers_its_counterpart_with_it() {
    // A container whose no_new_privs is unknown is given the set
    // without it; that is only safe if it holds the other.
    for known in all()
        .iter()
        .filter(|k| k.no_new_privs && k.covers.is_empty())
    {
        let Some(base) = known.set.name.strip_suffix("-nnp") else {
            continue;
        };
        let without = set(base);
        assert!(
            known.set.syscalls.is_subset(&without.set.syscalls),
            "{base} lacks {:?} of {}",
            known
                .set
                .syscalls
                .difference(&without.set.syscalls)
                .collect::<Vec<_>>(),
            known.set.name
        );
        assert_eq!(without.versions, known.versions, "{base}");
    }
}

#[test]
fn version_ranges_do_not_overlap() {
    let measured: Vec<&Known> = all().iter().filter(|k| k.versions.is_some()).collect();
    for a in &measured {
        for b in &measured {
            if a.set.name == b.set.name
                || a.runtime != b.runtime
                || a.no_new_privs != b.no_new_privs
            {
                continue;
            }
            let ((a1, a2), (b1, b2)) = (a.versions.clone().unwrap(), b.versions.clone().unwrap());
            assert!(
                a2 < b1 || b2 < a1,
                "{} and {} overlap",
                a.set.name,
                b.set.name
            );
        }
    }
}

#[test]
fn every_name_resolves() {
    for known in all() {
        assert_eq!(find(&known.set.name).unwrap().unwrap(), known.set);
    }
    for (alias, full) in ALIASES {
        assert_eq!(
            find(alias).unwrap().unwrap().syscalls,
            set(full).set.syscalls
        );
    }
    assert!(find("none").unwrap().is_none());
    let err = find("podman").unwrap_err().to_string();
    assert!(
        err.contains("runc-1.2") && err.contains("runc-any") && err.contains("none"),
        "{err}"
    );
    // The names merged profiles carry resolve to the union.
    let merged = find("crun-1.8+runc-1.1").unwrap().unwrap();
    assert_eq!(merged.name, "crun-1.8+runc-1.1");
    assert!(set("crun-1.8").set.syscalls.is_subset(&merged.syscalls));
    assert!(set("runc-1.1").set.syscalls.is_subset(&merged.syscalls));
    assert!(find("runc-1.1+podman").is_err());
}

#[test]
fn lookups_of_known_versions() {
    let v = |s: &str| Version::parse(s).unwrap();
    let cases = [
        (Runtime::Runc, "1.1.5+ds1", false, "runc-1.1"),
        (Runtime::Runc, "1.1.5", true, "runc-1.1-nnp"),
        (Runtime::Runc, "1.2.8", false, "runc-1.2"),
        (Runtime::Runc, "1.2.0", true, "runc-1.2-nnp"),
        (Runtime::Runc, "1.3.3", false, "runc-1.3"),
        (Runtime::Runc, "1.4.3", true, "runc-1.4-nnp"),
        (Runtime::Runc, "1.5.1", false, "runc-1.5"),
        (Runtime::Crun, "1.8.1", false, "crun-1.8"),
        (Runtime::Crun, "1.14.4", true, "crun-1.8-nnp"),
        (Runtime::Crun, "1.15", false, "crun-1.15"),
        (Runtime::Crun, "1.29.1", true, "crun-1.15-nnp"),
    ];
    for (runtime, version, nnp, name) in cases {
        let choice = choose(Some(runtime), Some(&v(version)), nnp);
        assert_eq!(choice.set.name, name, "{runtime} {version} nnp={nnp}");
        assert_eq!(choice.reason, Reason::Version(v(version)));
    }
}

#[test]
fn lookups_of_unknown_versions_and_runtimes_cover_everything() {
    let v = |s: &str| Version::parse(s).unwrap();
    let runc = choose(Some(Runtime::Runc), None, false);
    assert_eq!(runc.set.name, "runc-any");
    assert_eq!(runc.reason, Reason::VersionUnknown);
    for (version, name) in [
        ("1.6.0", "runc-any"),
        ("1.0.3", "runc-any"),
        ("1.4.0-rc.3", "runc-any"),
    ] {
        let choice = choose(Some(Runtime::Runc), Some(&v(version)), false);
        assert_eq!(choice.set.name, name, "{version}");
        assert_eq!(choice.reason, Reason::VersionNotCovered(v(version)));
    }
    assert_eq!(
        choose(Some(Runtime::Crun), Some(&v("1.30")), true).set.name,
        "crun-any-nnp"
    );
    assert_eq!(
        choose(Some(Runtime::Crun), Some(&v("1.7.2")), false)
            .set
            .name,
        "crun-any"
    );
    let youki = choose(Some(Runtime::Youki), Some(&v("0.5.0")), false);
    assert_eq!(youki.set.name, "any");
    assert_eq!(youki.reason, Reason::RuntimeUnknown(Some(Runtime::Youki)));
    assert_eq!(choose(None, None, true).set.name, "any-nnp");
    // A chosen covering set holds the sets of every version it stands for.
    for runtime in RUNTIMES {
        for nnp in [false, true] {
            let cover = choose(Some(runtime), None, nnp).set;
            let any = choose(None, None, nnp).set;
            for k in all().iter().filter(|k| {
                k.runtime == runtime.name() && k.no_new_privs == nnp && k.covers.is_empty()
            }) {
                assert!(k.set.syscalls.is_subset(&cover.syscalls), "{}", k.set.name);
                assert!(k.set.syscalls.is_subset(&any.syscalls), "{}", k.set.name);
            }
        }
    }
    assert!(runc.to_string().contains("version unknown"), "{runc}");
}

#[test]
fn the_names_that_broke_published_base_profiles_are_there() {
    // runc 1.2.8 and 1.3.3 reopen the exec fifo and list /proc's fds
    // through a verified procfs handle after the filter (openat2,
    // statx); a base set without them failed every container.
    for name in [
        "runc-1.2",
        "runc-1.2-nnp",
        "runc-1.3",
        "runc-1.3-nnp",
        "runc-1.4-nnp",
    ] {
        let s = &set(name).set.syscalls;
        assert!(s.contains("openat2") && s.contains("statx"), "{name}");
    }
    // crun without no_new_privs waits on its exec fifo after the filter
    // when started by `create` and `start`, as containerd and CRI-O do.
    let crun = &set("crun-1.8").set.syscalls;
    assert!(crun.contains("pselect6") && crun.contains("read"));
}

#[test]
fn broken_files_are_refused() {
    let good = r#"{"name": "runc-9.9", "runtime": "runc", "versions": {"first": "9.9.0", "last": "9.9.1"},
        "noNewPrivs": false, "description": "d", "syscalls": ["close", "execve"], "sources": ["s"]}"#;
    assert!(load_file("runc-9.9.json", good).is_ok());
    let cases = [
        ("runc-9.8.json", good.to_owned(), "does not match"),
        (
            "runc-9.9.json",
            good.replace("\"close\"", "\"clsoe\""),
            "not a syscall",
        ),
        (
            "runc-9.9.json",
            good.replace("\"close\", \"execve\"", "\"execve\", \"close\""),
            "sorted",
        ),
        ("runc-9.9.json", good.replace("[\"s\"]", "[]"), "no sources"),
        (
            "runc-9.9.json",
            good.replace("\"runtime\": \"runc\"", "\"runtime\": \"podman\""),
            "unknown runtime",
        ),
        (
            "runc-9.9.json",
            good.replace("9.9.1", "9.8.0"),
            "9.9.0 > 9.8.0",
        ),
        ("runc-9.9.json", good.replace("9.9.1", "x"), "bad version"),
        (
            "runc-9.9.json",
            good.replace("\"description\"", "\"extra\": 1, \"description\""),
            "unknown field",
        ),
    ];
    for (file, text, expected) in cases {
        let err = load_file(file, &text).unwrap_err().to_string();
        assert!(err.contains(expected), "{err}");
    }
}
