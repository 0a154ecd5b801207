//! The generated syscall tables agree with libseccomp's own resolver,
//! `scmp_sys_resolver`. The installed libseccomp is older than the vendored
//! table, so it does not know the newest syscalls: those are counted, every
//! syscall it does know must have our number, and it must know most of each
//! table so that the comparison means something.
#![allow(
    unused_crate_dependencies,
    reason = "an integration test uses some of its package's dependencies"
)]
use std::{
    collections::{BTreeMap, BTreeSet},
    path::Path,
    process::Command,
    thread,
};

use syscensus::syscalls::Arch;

mod support;
use support::require_program;

/// The x32 bit the resolver includes in x32 numbers; the tables do not.
const X32_SYSCALL_BIT: i64 = 0x4000_0000;

/// Share of a table the resolver must know.
const MIN_KNOWN: f64 = 0.9;

/// Resolves every name in one shell loop (one resolver process per name, one
/// `sh` per architecture), returning the resolver's answer for each: a
/// negative number means it does not know the syscall on that architecture.
fn resolve(resolver: &Path, arch: &str, names: &[&str]) -> BTreeMap<String, i64> {
    const LOOP: &str = r#"resolver=$1; arch=$2; shift 2
for name in "$@"; do
    printf '%s %s\n' "$name" "$("$resolver" -a "$arch" "$name" 2>&1)"
done"#;
    let output = Command::new("sh")
        .args(["-c", LOOP, "sh"])
        .arg(resolver)
        .arg(arch)
        .args(names)
        .output()
        .unwrap_or_else(|e| panic!("failed to run sh for scmp_sys_resolver -a {arch}: {e}"));
    assert!(
        output.status.success(),
        "resolver loop for {arch} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8(output.stdout).expect("resolver output is UTF-8");
    let answers: BTreeMap<String, i64> = stdout
        .lines()
        .map(|line| {
            let (name, value) = line
                .split_once(' ')
                .unwrap_or_else(|| panic!("unexpected resolver output line {line:?}"));
            let value = value.trim().parse().unwrap_or_else(|e| {
                panic!("scmp_sys_resolver -a {arch} {name} printed {value:?}: {e}")
            });
            (name.to_owned(), value)
        })
        .collect();
    assert_eq!(answers.len(), names.len(), "one answer per name for {arch}");
    answers
}

/// libseccomp's name for the architecture.
fn resolver_arch(arch: Arch) -> &'static str {
    match arch {
        Arch::X86_64 => "x86_64",
        Arch::X86 => "x86",
        Arch::X32 => "x32",
        Arch::Aarch64 => "aarch64",
        Arch::Arm => "arm",
    }
}

#[derive(Debug, Default)]
struct Report {
    table: usize,
    known: usize,
    unknown: Vec<String>,
    mismatches: Vec<String>,
    missing: Vec<String>,
}

fn compare(arch: Arch, answers: &BTreeMap<String, i64>) -> Report {
    let mut report = Report {
        table: arch.syscalls().len(),
        ..Report::default()
    };
    for &(nr, name) in arch.syscalls() {
        let answer = answers[name];
        if answer < 0 {
            report.unknown.push(name.to_owned());
            continue;
        }
        report.known += 1;
        let theirs = if arch == Arch::X32 {
            if answer & X32_SYSCALL_BIT == 0 {
                report.mismatches.push(format!(
                    "{name}: resolver gave {answer}, without the x32 bit"
                ));
                continue;
            }
            answer & !X32_SYSCALL_BIT
        } else {
            answer
        };
        if theirs != i64::from(nr) {
            report
                .mismatches
                .push(format!("{name}: table {nr}, resolver {theirs}"));
        }
    }
    // Names from the other tables that this architecture's table lacks: the
    // resolver must not know them here either.
    for (name, &answer) in answers {
        if answer >= 0 && arch.number(name).is_none() {
            report.missing.push(format!("{name} (resolver {answer})"));
        }
    }
    report
}

#[test]
fn tables_agree_with_scmp_sys_resolver() {
    let resolver = require_program("scmp_sys_resolver", "seccomp");

    // Every name of any table, asked of every architecture.
    let names: BTreeSet<&str> = Arch::ALL
        .iter()
        .flat_map(|arch| arch.syscalls().iter().map(|&(_, name)| name))
        .collect();
    let names: Vec<&str> = names.into_iter().collect();

    let reports: Vec<(Arch, Report)> = thread::scope(|s| {
        let handles: Vec<_> = Arch::ALL
            .iter()
            .map(|&arch| {
                let (resolver, names) = (&resolver, &names);
                s.spawn(move || {
                    let answers = resolve(resolver, resolver_arch(arch), names);
                    (arch, compare(arch, &answers))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("resolver thread panicked"))
            .collect()
    });

    let mut failures = Vec::new();
    for (arch, r) in &reports {
        #[expect(clippy::print_stdout, reason = "the counts are this test's report")]
        {
            println!(
                "{arch}: {} in table, {} known to scmp_sys_resolver, {} unknown to it ({})",
                r.table,
                r.known,
                r.unknown.len(),
                r.unknown.join(" ")
            );
        }
        if !r.mismatches.is_empty() {
            failures.push(format!(
                "{arch}: numbers differ: {}",
                r.mismatches.join("; ")
            ));
        }
        if !r.missing.is_empty() {
            failures.push(format!(
                "{arch}: resolver knows syscalls the table lacks: {}",
                r.missing.join(", ")
            ));
        }
        #[expect(clippy::cast_precision_loss, reason = "table sizes are a few hundred")]
        let share = r.known as f64 / r.table as f64;
        if share < MIN_KNOWN {
            failures.push(format!(
                "{arch}: the resolver knows only {} of {} syscalls ({:.0}%), below {:.0}%",
                r.known,
                r.table,
                share * 100.0,
                MIN_KNOWN * 100.0
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
