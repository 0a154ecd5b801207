//! `syscensus diff` and `syscensus merge` through the command line: the
//! text and JSON reports, exit statuses, and the one-line refusal to merge
//! profiles that disagree.
#![allow(clippy::unwrap_used, reason = "tests panic with context on failure")]
#![allow(
    unused_crate_dependencies,
    reason = "an integration test uses some of its package's dependencies"
)]

use std::{fs, path::Path, process::Output};

use serde_json::{Value, json};

fn run(args: &[&str]) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_syscensus"))
        .args(args)
        .output()
        .unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A syscensus-style profile: one rule per architecture, then the base set.
fn profile(arches: &[(&str, &[&str])], base: Option<(&str, &[&str])>) -> Value {
    let mut rules: Vec<Value> = arches
        .iter()
        .filter(|(_, names)| !names.is_empty())
        .map(|(arch, names)| {
            json!({"names": names, "action": "SCMP_ACT_ALLOW", "comment": format!("recorded: {arch}")})
        })
        .collect();
    if let Some((name, names)) = base {
        rules.push(json!({"names": names, "action": "SCMP_ACT_ALLOW", "comment": format!("runtime base set: {name}")}));
    }
    json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": 1,
        "architectures": arches.iter().map(|(a, _)| *a).collect::<Vec<_>>(),
        "syscalls": rules,
    })
}

fn write(path: &Path, value: &Value) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, serde_json::to_string_pretty(value).unwrap() + "\n").unwrap();
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

#[test]
fn diff_of_files_reports_per_architecture_and_exits_1() {
    let tmp = tempfile::tempdir().unwrap();
    let a = tmp.path().join("a.json");
    let b = tmp.path().join("b.json");
    write(
        &a,
        &profile(
            &[
                ("SCMP_ARCH_X86_64", &["read", "write"]),
                ("SCMP_ARCH_X86", &["exit"]),
            ],
            Some(("runc-1.1", &["execve"])),
        ),
    );
    write(
        &b,
        &profile(
            &[
                ("SCMP_ARCH_X86_64", &["openat", "read"]),
                ("SCMP_ARCH_X86", &["exit"]),
            ],
            Some(("runc-1.1", &["execve"])),
        ),
    );
    let same = run(&["diff", p(&a), p(&a)]);
    assert_eq!(same.status.code(), Some(0), "{}", stderr(&same));
    assert_eq!(stdout(&same), "");

    let o = run(&["diff", p(&a), p(&b)]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert_eq!(
        stdout(&o),
        format!("~ {}\n    SCMP_ARCH_X86_64: +openat -write\n", p(&b))
    );

    let o = run(&["diff", "--json", p(&a), p(&b)]);
    assert_eq!(o.status.code(), Some(1));
    let report: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(
        report,
        json!({
            "schema": "syscensus.io/diff/v1",
            "equal": false,
            "profiles": [{
                "path": p(&b),
                "a": p(&a),
                "b": p(&b),
                "status": "changed",
                "syscalls": {"SCMP_ARCH_X86_64": {"added": ["openat"], "removed": ["write"]}},
                "changes": [],
            }],
        })
    );
}

#[test]
fn diff_of_directories_matches_relative_paths() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    let x86 = |names: &'static [&'static str]| profile(&[("SCMP_ARCH_X86_64", names)], None);
    write(&a.join("shop/deployment-web/nginx.json"), &x86(&["read"]));
    write(&b.join("shop/deployment-web/nginx.json"), &x86(&["read"]));
    write(&a.join("shop/job-x/main.json"), &x86(&["write"]));
    write(&b.join("shop/pod-y/main.json"), &x86(&["openat"]));
    // Not profiles: JSON patches and hidden files.
    fs::write(b.join("shop/pod-y/patch.rfc6902.json"), "[]\n").unwrap();
    fs::create_dir_all(b.join(".git")).unwrap();
    fs::write(b.join(".git/config.json"), "{}\n").unwrap();
    let mut logged = x86(&["read"]);
    logged["defaultAction"] = json!("SCMP_ACT_LOG");
    logged.as_object_mut().unwrap().remove("defaultErrnoRet");
    write(&b.join("shop/deployment-web/nginx.json"), &logged);

    let o = run(&["diff", p(&a), p(&b)]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert_eq!(
        stdout(&o),
        "~ shop/deployment-web/nginx.json\n    defaultAction: SCMP_ACT_ERRNO -> SCMP_ACT_LOG\n\
         - shop/job-x/main.json\n    SCMP_ARCH_X86_64: -write\n\
         + shop/pod-y/main.json\n    SCMP_ARCH_X86_64: +openat\n"
    );
    let report: Value =
        serde_json::from_str(&stdout(&run(&["diff", "--json", p(&a), p(&b)]))).unwrap();
    let statuses: Vec<&str> = report["profiles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["changed", "removed", "added"]);
    assert_eq!(report["profiles"][1]["b"], Value::Null);

    let o = run(&["diff", p(&a), p(&a)]);
    assert_eq!(o.status.code(), Some(0));
}

#[test]
fn diff_of_other_profiles_compares_allowed_names() {
    let tmp = tempfile::tempdir().unwrap();
    let a = tmp.path().join("docker.json");
    let b = tmp.path().join("docker2.json");
    let docker = |names: &[&str]| {
        json!({"defaultAction": "SCMP_ACT_ERRNO", "architectures": ["SCMP_ARCH_X86_64"],
               "syscalls": [{"names": names, "action": "SCMP_ACT_ALLOW"}]})
    };
    write(&a, &docker(&["read", "write"]));
    write(&b, &docker(&["read"]));
    let o = run(&["diff", p(&a), p(&b)]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stdout(&o).contains("    allowed: -write\n"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn diff_errors_use_the_exit_statuses() {
    let tmp = tempfile::tempdir().unwrap();
    let good = tmp.path().join("good.json");
    write(&good, &profile(&[("SCMP_ARCH_X86_64", &["read"])], None));
    let missing = tmp.path().join("missing.json");
    let o = run(&["diff", p(&missing), p(&good)]);
    assert_eq!(o.status.code(), Some(66), "{}", stderr(&o));
    let broken = tmp.path().join("broken.json");
    fs::write(&broken, "{\"defaultAction\": \"SCMP_ACT_NOPE\"}\n").unwrap();
    let o = run(&["diff", p(&good), p(&broken)]);
    assert_eq!(o.status.code(), Some(65), "{}", stderr(&o));
    let o = run(&["diff", p(tmp.path()), p(&good)]);
    assert_eq!(o.status.code(), Some(64), "{}", stderr(&o));
    assert!(stderr(&o).contains("give two profile files or two directories"));
}

#[test]
fn merge_unites_and_is_deterministic() {
    let tmp = tempfile::tempdir().unwrap();
    let a = tmp.path().join("a.json");
    let b = tmp.path().join("b.json");
    write(
        &a,
        &profile(
            &[("SCMP_ARCH_X86_64", &["read", "write"])],
            Some(("runc-1.1", &["execve"])),
        ),
    );
    write(
        &b,
        &profile(
            &[("SCMP_ARCH_X86_64", &["openat", "read"])],
            Some(("crun-1.8", &["execve"])),
        ),
    );
    let ab = run(&["merge", p(&a), p(&b)]);
    assert_eq!(ab.status.code(), Some(0), "{}", stderr(&ab));
    let ba = run(&["merge", p(&b), p(&a)]);
    assert_eq!(stdout(&ab), stdout(&ba));
    let merged: Value = serde_json::from_str(&stdout(&ab)).unwrap();
    assert_eq!(
        merged["syscalls"][0]["names"],
        json!(["openat", "read", "write"])
    );
    assert_eq!(
        merged["syscalls"][1]["comment"],
        "runtime base set: crun-1.8+runc-1.1"
    );
    assert!(stdout(&ab).ends_with("}\n"));

    let out = tmp.path().join("merged.json");
    let o = run(&["merge", p(&a), p(&b), "-o", p(&out)]);
    assert!(o.status.success());
    assert_eq!(fs::read_to_string(&out).unwrap(), stdout(&ab));
    // The merge contains both: diffing it against either adds only.
    let o = run(&["diff", "--json", p(&a), p(&out)]);
    let report: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(
        report["profiles"][0]["syscalls"]["SCMP_ARCH_X86_64"]["removed"],
        json!([])
    );

    let o = run(&["merge", "--format", "spo", "--name", "web", p(&a), p(&b)]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("kind: SeccompProfile"));
}

#[test]
fn merge_refuses_mismatches_naming_both_files() {
    let tmp = tempfile::tempdir().unwrap();
    let a = tmp.path().join("a.json");
    let b = tmp.path().join("b.json");
    let c = tmp.path().join("c.json");
    write(&a, &profile(&[("SCMP_ARCH_X86_64", &["read"])], None));
    write(
        &b,
        &profile(
            &[
                ("SCMP_ARCH_X86_64", &["read"]),
                ("SCMP_ARCH_X86", &["exit"]),
            ],
            None,
        ),
    );
    let mut logged = profile(&[("SCMP_ARCH_X86_64", &["read"])], None);
    logged["defaultErrnoRet"] = json!(38);
    write(&c, &logged);

    let o = run(&["merge", p(&a), p(&b)]);
    assert_eq!(o.status.code(), Some(65));
    let err = stderr(&o);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains(&format!("cannot merge {} and {}", p(&a), p(&b)))
            && err.contains(
                "architectures differ ([SCMP_ARCH_X86_64] vs [SCMP_ARCH_X86_64, SCMP_ARCH_X86])"
            ),
        "{err}"
    );
    let o = run(&["merge", p(&a), p(&a), p(&c)]);
    assert_eq!(o.status.code(), Some(65));
    let err = stderr(&o);
    assert!(
        err.contains(&format!("cannot merge {} and {}", p(&a), p(&c)))
            && err.contains("default errnos differ (1 vs 38)"),
        "{err}"
    );
    assert!(stdout(&o).is_empty());
}
