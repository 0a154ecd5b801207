//! The seccomp filter compiler against libseccomp itself (the C library,
//! through a helper built with gcc), on random profiles and on real ones
//! (Docker's, containers-common's). The verdicts are the kernel's: both
//! filters are loaded into a child process and every probe syscall is made
//! under each (tests/src/judge.rs: nothing they allow runs), so a bug shared
//! by syscensus's compiler and its interpreter cannot hide. The interpreter
//! is checked against the kernel on the way, and still compares what the
//! kernel cannot be asked here: aarch64, and the data of TRACE.
#![allow(clippy::unwrap_used, reason = "tests")]
#![cfg(target_arch = "x86_64")]
#![allow(
    unused_crate_dependencies,
    reason = "an integration test uses some of its package's dependencies"
)]

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
    process::{Command, Output},
};

use syscensus::{
    profile::{Action, Arg, Op, Profile, Rule},
    seccomp::{self, SeccompData},
    syscalls::Arch,
};
use syscensus_tests::{
    judge::{Entry, Judge, Probe, Verdict},
    require_program, workspace_root,
};

fn third_party(name: &str) -> PathBuf {
    workspace_root().join("tests/data/third-party").join(name)
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// How a probe of `data` enters the kernel here, if it can: x86_64 and x32
/// numbers through `syscall`, ia32 through `int $0x80` (with the arguments'
/// low 32 bits, which is all the kernel passes on).
fn probe_of(data: &SeccompData) -> Option<(Probe, SeccompData)> {
    let arch = Arch::ALL
        .into_iter()
        .find(|a| a.audit_arch() == data.arch)?;
    // The kernel runs no filter on uretprobe (335) and uprobe (336) from
    // the 64-bit entry: they are meant for the uprobe trampolines only
    // (kernel/seccomp.c, the uprobe exception, since 6.11 and 6.16).
    if arch != Arch::X86 && matches!(data.nr, 335 | 336) {
        return None;
    }
    let (entry, args) = match arch {
        Arch::X86_64 | Arch::X32 => (Entry::Syscall64, data.args),
        Arch::X86 => (Entry::Int80, data.args.map(|a| a & 0xffff_ffff)),
        _ => return None,
    };
    let probe = Probe {
        entry,
        nr: data.nr,
        args,
    };
    Some((probe, SeccompData { args, ..*data }))
}

/// Judges `ours` and `theirs` on every probe the kernel can take: their
/// verdicts must agree, and the interpreter's verdict on `ours` must be the
/// kernel's.
fn kernel_agrees(
    judge: &Judge,
    ours: &[libc::sock_filter],
    theirs: &[libc::sock_filter],
    cases: &[SeccompData],
    context: &dyn Fn(&SeccompData) -> String,
) -> usize {
    let probes: Vec<(Probe, SeccompData)> = cases.iter().filter_map(probe_of).collect();
    let list: Vec<Probe> = probes.iter().map(|(p, _)| *p).collect();
    let our_verdicts = judge.judge(ours, &list);
    let their_verdicts = judge.judge(theirs, &list);
    for (((_, data), ours_k), theirs_k) in probes.iter().zip(&our_verdicts).zip(&their_verdicts) {
        assert_eq!(
            ours_k,
            theirs_k,
            "the kernel judged the filters apart: {}",
            context(data)
        );
        let interpreted = Verdict::of_action(seccomp::evaluate(ours, data).unwrap());
        assert_eq!(
            &interpreted,
            ours_k,
            "the interpreter is not the kernel: {}",
            context(data)
        );
    }
    probes.len()
}

/// Builds a libseccomp filter from lines on stdin and writes its BPF to
/// stdout. Lines: `default <action>`, `arch <x86|x32>`, `rule <action>
/// <name> <n> [<index> <op> <a> <b>]...` (libseccomp's SCMP_CMP_* numbers).
/// Exits 2 when libseccomp rejects a rule; names it does not know are
/// skipped and listed on stderr (`unknown <name>`). `resolve <name>` lists
/// libseccomp's numbers for a name on stderr (`resolved <name> <x86_64>
/// <x86> <x32>`, negative where it has none).
const HELPER: &str = r#"
#include <seccomp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
int main(void) {
    char word[64];
    scmp_filter_ctx ctx = NULL;
    while (scanf("%63s", word) == 1) {
        if (!strcmp(word, "default")) {
            unsigned int action;
            if (scanf("%u", &action) != 1) return 3;
            ctx = seccomp_init(action);
            if (!ctx) return 3;
        } else if (!strcmp(word, "arch")) {
            char arch[16];
            if (scanf("%15s", arch) != 1) return 3;
            uint32_t token = !strcmp(arch, "x86") ? SCMP_ARCH_X86 : SCMP_ARCH_X32;
            if (seccomp_arch_add(ctx, token) < 0) return 3;
        } else if (!strcmp(word, "resolve")) {
            char name[64];
            if (scanf("%63s", name) != 1) return 3;
            fprintf(stderr, "resolved %s %d %d %d\n", name,
                    seccomp_syscall_resolve_name_arch(SCMP_ARCH_X86_64, name),
                    seccomp_syscall_resolve_name_arch(SCMP_ARCH_X86, name),
                    seccomp_syscall_resolve_name_arch(SCMP_ARCH_X32, name));
        } else if (!strcmp(word, "rule")) {
            unsigned int action, n;
            char name[64];
            struct scmp_arg_cmp args[6];
            if (scanf("%u %63s %u", &action, name, &n) != 3 || n > 6) return 3;
            for (unsigned int i = 0; i < n; i++) {
                unsigned int index, op;
                unsigned long long a, b;
                if (scanf("%u %u %llu %llu", &index, &op, &a, &b) != 4) return 3;
                args[i].arg = index;
                args[i].op = op;
                args[i].datum_a = a;
                args[i].datum_b = b;
            }
            int nr = seccomp_syscall_resolve_name(name);
            if (nr == __NR_SCMP_ERROR) {
                /* Newer than this libseccomp: runc skips it too. */
                fprintf(stderr, "unknown %s\n", name);
                continue;
            }
            int rc = seccomp_rule_add_array(ctx, action, nr, n, args);
            if (rc < 0) {
                fprintf(stderr, "rule %s: %d\n", name, rc);
                return 2;
            }
        }
    }
    return seccomp_export_bpf(ctx, STDOUT_FILENO) < 0 ? 3 : 0;
}
"#;

fn build_helper(dir: &Path) -> PathBuf {
    require_program("gcc", "gcc");
    assert!(
        Path::new("/usr/include/seccomp.h").exists(),
        "seccomp.h not found: install the Debian package libseccomp-dev (scripts/setup does)"
    );
    let source = dir.join("scmp-export.c");
    std::fs::write(&source, HELPER).unwrap();
    let binary = dir.join("scmp-export");
    let status = Command::new("gcc")
        .arg("-O1")
        .arg("-o")
        .arg(&binary)
        .arg(&source)
        .arg("-lseccomp")
        .status()
        .unwrap();
    assert!(
        status.success(),
        "gcc failed to build the libseccomp helper"
    );
    binary
}

fn op_number(op: Op) -> u32 {
    match op {
        Op::Ne => 1,
        Op::Lt => 2,
        Op::Le => 3,
        Op::Eq => 4,
        Op::Ge => 5,
        Op::Gt => 6,
        Op::MaskedEq => 7,
    }
}

/// The input runc would give libseccomp for `profile`: rules whose action
/// is the default dropped, one libseccomp rule per name, and one per
/// condition when a rule repeats an argument index.
fn libseccomp_input(profile: &Profile) -> String {
    let default = seccomp::action_value(profile.default_action, profile.default_errno_ret).unwrap();
    let mut text = format!("default {default}\n");
    for arch in &profile.architectures {
        match arch.as_str() {
            "SCMP_ARCH_X86" => text.push_str("arch x86\n"),
            "SCMP_ARCH_X32" => text.push_str("arch x32\n"),
            _ => {}
        }
    }
    for rule in &profile.syscalls {
        let value = seccomp::action_value(rule.action, rule.errno_ret).unwrap();
        if value == default {
            continue;
        }
        let mut indexes: Vec<u32> = rule.args.iter().map(|a| a.index).collect();
        indexes.sort_unstable();
        let groups: Vec<Vec<Arg>> = if indexes.windows(2).any(|w| w[0] == w[1]) {
            rule.args.iter().map(|a| vec![*a]).collect()
        } else {
            vec![rule.args.clone()]
        };
        for name in &rule.names {
            for group in &groups {
                text.push_str(&format!("rule {value} {name} {}", group.len()));
                for arg in group {
                    text.push_str(&format!(
                        " {} {} {} {}",
                        arg.index,
                        op_number(arg.op),
                        arg.value,
                        arg.value_two
                    ));
                }
                text.push('\n');
            }
        }
    }
    text
}

/// libseccomp's filter for `input`, and what it answered to `resolve`
/// lines; `None` if it rejected a rule.
fn libseccomp_filter(helper: &Path, input: &str) -> Option<(Vec<libc::sock_filter>, Vec<String>)> {
    use std::io::Write as _;
    let mut child = Command::new(helper)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    match output.status.code() {
        Some(0) => {}
        Some(2) => return None,
        _ => panic!("libseccomp helper failed on:\n{input}\n{}", stderr(&output)),
    }
    let filter = output
        .stdout
        .chunks_exact(8)
        .map(|c| libc::sock_filter {
            code: u16::from_ne_bytes([c[0], c[1]]),
            jt: c[2],
            jf: c[3],
            k: u32::from_ne_bytes([c[4], c[5], c[6], c[7]]),
        })
        .collect();
    let resolved = stderr(&output)
        .lines()
        .filter_map(|l| l.strip_prefix("resolved "))
        .map(str::to_owned)
        .collect();
    Some((filter, resolved))
}

/// xorshift: deterministic, so a failure repeats.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }
}

#[test]
fn filters_agree_with_libseccomp() {
    let dir = tempfile::tempdir().unwrap();
    let helper = build_helper(dir.path());
    let judge = Judge::build(dir.path());
    let mut rng = Rng(0x0123_4567_89ab_cdef);
    let mut judged = 0;
    // At most one conditional rule per syscall, on distinct arguments:
    // libseccomp 2.5.4 (Debian 12) loses track of the accumulator between
    // two argument chains of one syscall, so that its BPF disagrees with
    // its own pseudo-code (e.g. `a1 >= 1<<32` and `a1 < 16` as two rules:
    // the second compares the low word where it means the high one).
    // x86's socketcall is such a shared syscall, so only one socket call is
    // in the pool.
    let pool = [
        "read",
        "write",
        "openat",
        "personality",
        "socket",
        "semget",
        "mmap",
        "clone",
        "getpid",
        "mkdir",
        "ioctl",
    ];
    let actions = [
        (Action::Allow, None),
        (Action::Errno, Some(13)),
        (Action::Errno, None),
        (Action::Log, None),
        (Action::Trap, None),
        (Action::KillProcess, None),
        (Action::Trace, Some(3)),
    ];
    let ops = [Op::Eq, Op::Ne, Op::Lt, Op::Le, Op::Gt, Op::Ge, Op::MaskedEq];
    let values = [
        0u64,
        1,
        2,
        16,
        40,
        0xffff_ffff,
        0x1_0000_0000,
        0x1_0000_0028,
        0x7e02_0000,
        u64::MAX,
    ];
    let (mut compared, mut rejected) = (0, 0);
    for case in 0..400 {
        let arches: &[Arch] = match rng.below(4) {
            0 => &[],
            1 => &[Arch::X86_64, Arch::X86],
            2 => &[Arch::X86_64, Arch::X32],
            _ => &[Arch::X86_64, Arch::X86, Arch::X32],
        };
        // Defaults runc's -ENOSYS stub leaves alone, so that the filters
        // differ only where libseccomp and syscensus would.
        let (default_action, default_errno_ret) = if arches.is_empty() {
            rng.pick(&[
                (Action::Errno, None),
                (Action::KillThread, None),
                (Action::Log, None),
                (Action::Allow, None),
            ])
        } else {
            rng.pick(&[
                (Action::Errno, Some(38)),
                (Action::Log, None),
                (Action::Allow, None),
            ])
        };
        let mut has_conditional = [false; 11];
        let syscalls = (0..rng.below(10))
            .map(|_| {
                let which = rng.below(pool.len());
                let conditional = rng.below(3) != 0 && !has_conditional[which];
                has_conditional[which] |= conditional;
                let mut indexes = vec![0u32, 1, 2];
                let args: Vec<Arg> = if conditional {
                    (0..1 + rng.below(3))
                        .map(|_| Arg {
                            index: indexes.remove(rng.below(indexes.len())),
                            value: rng.pick(&values),
                            value_two: rng.pick(&values),
                            op: rng.pick(&ops),
                        })
                        .collect()
                } else {
                    Vec::new()
                };
                let (action, errno_ret) = rng.pick(&actions);
                Rule {
                    names: vec![pool[which].to_owned()],
                    action,
                    errno_ret,
                    args,
                    comment: None,
                }
            })
            .collect();
        let profile = Profile {
            default_action,
            default_errno_ret,
            architectures: arches.iter().map(|a| a.scmp_name().to_owned()).collect(),
            flags: Vec::new(),
            syscalls,
        };
        let ours = seccomp::compile(&profile, Arch::X86_64).unwrap();
        let input = libseccomp_input(&profile);
        let Some((theirs, _)) = libseccomp_filter(&helper, &input) else {
            rejected += 1;
            continue;
        };
        compared += 1;
        let mut cases = Vec::new();
        for _ in 0..200 {
            let arch = rng.pick(&[Arch::X86_64, Arch::X86, Arch::X32, Arch::Aarch64]);
            let name = rng.pick(&pool);
            let nr = match rng.below(5) {
                0 => rng.next() as u32 % 500,
                1 => u32::MAX,
                2 => arch
                    .number("socketcall")
                    .or(arch.number("ipc"))
                    .unwrap_or(0),
                _ => arch.number(name).map_or(7, |n| {
                    if arch == Arch::X32 {
                        n | seccomp::X32_SYSCALL_BIT
                    } else {
                        n
                    }
                }),
            };
            let args = std::array::from_fn(|_| match rng.below(4) {
                0 => rng.pick(&values),
                1 => rng.pick(&values).wrapping_add(1),
                2 => rng.pick(&[1u64, 2, 8, 16]),
                _ => rng.next(),
            });
            let data = SeccompData {
                nr,
                arch: arch.audit_arch(),
                instruction_pointer: 0,
                args,
            };
            let expected = seccomp::evaluate(&theirs, &data).unwrap();
            let actual = seccomp::evaluate(&ours, &data).unwrap();
            assert_eq!(
                seccomp::describe(actual),
                seccomp::describe(expected),
                "case {case}, {arch} {data:?}\nlibseccomp input:\n{input}\nprofile:\n{}",
                profile.to_oci_json()
            );
            cases.push(data);
        }
        judged += kernel_agrees(&judge, &ours, &theirs, &cases, &|data| {
            format!(
                "case {case}, {data:?}\nlibseccomp input:\n{input}\nprofile:\n{}",
                profile.to_oci_json()
            )
        });
    }
    assert!(judged > 40_000, "only {judged} probes judged by the kernel");
    assert!(
        compared > 300,
        "libseccomp rejected {rejected} of {} random profiles",
        compared + rejected
    );
}

#[test]
fn real_profiles_agree_with_libseccomp() {
    use syscensus::profile::{Host, KernelVersion};
    let dir = tempfile::tempdir().unwrap();
    let helper = build_helper(dir.path());
    let judge = Judge::build(dir.path());
    let mut rng = Rng(0x7777_1234_5678_9abc);
    let values = [
        0u64,
        1,
        2,
        8,
        16,
        38,
        39,
        40,
        41,
        0x2_0000,
        0x2_0008,
        0x7e02_0000,
        0x1000_0000,
        0xffff_ffff,
        u64::MAX,
    ];
    for name in [
        "moby-default.json",
        "containers-common-seccomp.json",
        "moby-default-old-format.json",
    ] {
        for capabilities in [0, u64::MAX] {
            let host = Host {
                arch: Arch::X86_64,
                capabilities,
                kernel: KernelVersion { major: 6, minor: 1 },
            };
            let path = third_party(name);
            let text = std::fs::read_to_string(&path).unwrap();
            let profile = Profile::parse_for_host(&text, &path, None, &host).unwrap();
            let ours = seccomp::compile(&profile, Arch::X86_64).unwrap();
            let names: BTreeSet<&str> = profile
                .syscalls
                .iter()
                .flat_map(|r| r.names.iter().map(String::as_str))
                .collect();
            let mut input = libseccomp_input(&profile);
            for name in &names {
                input.push_str(&format!("resolve {name}\n"));
            }
            let (theirs, resolved) = libseccomp_filter(&helper, &input)
                .unwrap_or_else(|| panic!("libseccomp rejected {name}"));
            // The installed libseccomp is older than syscensus's tables:
            // compare only where both number a syscall alike (x86's socket
            // calls, which libseccomp numbers as multiplexed, included).
            let mut comparable = BTreeSet::new();
            for line in &resolved {
                let fields: Vec<&str> = line.split_whitespace().collect();
                for (arch, theirs) in [Arch::X86_64, Arch::X86, Arch::X32]
                    .into_iter()
                    .zip(&fields[1..])
                {
                    let theirs: i64 = theirs.parse().unwrap();
                    let ours = arch.number(fields[0]).map(|n| {
                        i64::from(if arch == Arch::X32 {
                            n | seccomp::X32_SYSCALL_BIT
                        } else {
                            n
                        })
                    });
                    if ours == Some(theirs)
                        || (arch == Arch::X86 && (-224..=-100).contains(&theirs))
                    {
                        comparable.insert((arch, fields[0].to_owned()));
                    }
                }
            }
            assert!(
                comparable.len() > 700,
                "only {} syscalls to compare in {name}",
                comparable.len()
            );
            let mut mismatches = Vec::new();
            let mut cases = Vec::new();
            for arch in [Arch::X86_64, Arch::X86, Arch::X32] {
                for syscall in &names {
                    if !comparable.contains(&(arch, (*syscall).to_owned())) {
                        continue;
                    }
                    let Some(nr) = arch.number(syscall) else {
                        continue;
                    };
                    let nr = if arch == Arch::X32 {
                        nr | seccomp::X32_SYSCALL_BIT
                    } else {
                        nr
                    };
                    // runc's -ENOSYS stub, not libseccomp's doing.
                    if seccomp::enosys_above(&profile, Arch::X86_64, arch)
                        .unwrap()
                        .is_some_and(|max| nr > max)
                    {
                        continue;
                    }
                    for _ in 0..40 {
                        let args = std::array::from_fn(|_| rng.pick(&values));
                        let data = SeccompData {
                            nr,
                            arch: arch.audit_arch(),
                            instruction_pointer: 0,
                            args,
                        };
                        let expected = seccomp::evaluate(&theirs, &data).unwrap();
                        let actual = seccomp::evaluate(&ours, &data).unwrap();
                        // A sample for the kernel: forty calls of each
                        // syscall are many threads.
                        if cases.len() < 20_000 && rng.below(8) == 0 {
                            cases.push(data);
                        }
                        if expected != actual {
                            mismatches.push(format!(
                                "{arch} {syscall} {args:x?}: ours {} libseccomp {}",
                                seccomp::describe(actual),
                                seccomp::describe(expected)
                            ));
                        }
                    }
                }
            }
            assert!(
                mismatches.is_empty(),
                "{name} (capabilities {capabilities:#x}):\n{}",
                mismatches.join("\n")
            );
            let judged = kernel_agrees(&judge, &ours, &theirs, &cases, &|data| {
                format!("{name} (capabilities {capabilities:#x}): {data:x?}")
            });
            assert!(
                judged > 2_000,
                "only {judged} probes of {name} judged by the kernel"
            );
        }
    }
}
