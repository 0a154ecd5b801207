//! The kernel as the judge of a seccomp filter: a helper built with gcc
//! loads the filter into a child process and makes each syscall asked of
//! it, so the verdict is the kernel's, not an interpreter's.
//!
//! Nothing the filter allows ever runs. The child loads two filters, both
//! wrapped to act only on syscalls made from the helper's two probe
//! instructions (a 64-bit `syscall` and an ia32 `int $0x80`, told apart by
//! `seccomp_data.instruction_pointer`) and to allow everything else, so
//! that the helper's own calls are never filtered. The older filter
//! answers every probe with `ERRNO(4095)`; the newer one is the filter
//! judged. The kernel takes the most restrictive of the two actions and,
//! between two ERRNOs, the newer filter's data (kernel/seccomp.c,
//! `seccomp_run_filters`, v6.18): a probe the judged filter lets through
//! (`ALLOW`, `LOG`, `TRACE`, `USER_NOTIF`) fails with errno 4095 instead of
//! running. Each probe runs on a thread of its own, so that `KILL_THREAD`
//! and `KILL_PROCESS` can be told apart; a `TRAP` is caught by a SIGSYS
//! handler, which reads the filter's data from `si_errno`.
use std::{
    io::Write as _,
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use crate::require_program;

/// What the kernel did with one probe.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The filter let it through (`ALLOW`, `LOG`, `TRACE` or `USER_NOTIF`).
    Pass,
    /// It failed with this errno (`ERRNO`).
    Errno(u32),
    /// SIGSYS was sent with this `si_errno` (`TRAP`).
    Trap(u32),
    /// The thread was killed (`KILL_THREAD`).
    KillThread,
    /// The process was killed (`KILL_PROCESS`).
    KillProcess,
}

impl Verdict {
    /// The verdict the kernel gives for a filter's return `value`, as the
    /// judge can observe it.
    pub fn of_action(value: u32) -> Verdict {
        let data = value & libc::SECCOMP_RET_DATA;
        match value & libc::SECCOMP_RET_ACTION_FULL {
            libc::SECCOMP_RET_KILL_PROCESS => Verdict::KillProcess,
            libc::SECCOMP_RET_KILL_THREAD => Verdict::KillThread,
            libc::SECCOMP_RET_TRAP => Verdict::Trap(data),
            // The kernel caps the errno at MAX_ERRNO.
            libc::SECCOMP_RET_ERRNO => Verdict::Errno(data.min(4095)),
            _ => Verdict::Pass,
        }
    }
}

/// How a probe enters the kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Entry {
    /// The 64-bit `syscall` instruction (x86_64, and x32 numbers).
    Syscall64,
    /// `int $0x80` from a 64-bit process: the ia32 ABI; arguments are the
    /// low 32 bits.
    Int80,
}

/// One syscall to make under the filter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Probe {
    pub entry: Entry,
    pub nr: u32,
    pub args: [u64; 6],
}

/// The helper, built once per test.
#[derive(Debug)]
pub struct Judge {
    binary: PathBuf,
}

const SOURCE: &str = r#"
#define _GNU_SOURCE
#include <errno.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

struct probe { int entry; unsigned long nr; unsigned long args[6]; };
extern char judge_ip64[], judge_ip32[];

static long probe64(const struct probe *p) {
    register long r10 __asm__("r10") = p->args[3];
    register long r8 __asm__("r8") = p->args[4];
    register long r9 __asm__("r9") = p->args[5];
    long ret;
    __asm__ volatile("syscall\n.globl judge_ip64\njudge_ip64:"
                     : "=a"(ret)
                     : "a"(p->nr), "D"(p->args[0]), "S"(p->args[1]), "d"(p->args[2]),
                       "r"(r10), "r"(r8), "r"(r9)
                     : "rcx", "r11", "memory");
    return ret;
}

static long probe32(const struct probe *p) {
    long ret;
    register unsigned long a5 __asm__("r12") = (unsigned)p->args[5];
    /* ebp is the sixth argument: saved around the call, below the red
       zone the compiler may be using. */
    __asm__ volatile("lea -128(%%rsp), %%rsp\npush %%rbp\nmov %%r12d, %%ebp\n"
                     "int $0x80\n.globl judge_ip32\njudge_ip32:\n"
                     "pop %%rbp\nlea 128(%%rsp), %%rsp"
                     : "=a"(ret)
                     : "a"(p->nr), "b"((unsigned)p->args[0]), "c"((unsigned)p->args[1]),
                       "d"((unsigned)p->args[2]), "S"((unsigned)p->args[3]),
                       "D"((unsigned)p->args[4]), "r"(a5)
                     : "memory", "r8", "r9", "r10", "r11");
    return (int)ret;
}

static __thread sigjmp_buf trap_jump;
static __thread int trap_data;

static void on_sigsys(int sig, siginfo_t *info, void *ctx) {
    (void)sig; (void)ctx;
    trap_data = info->si_errno;
    siglongjmp(trap_jump, 1);
}

struct job { const struct probe *probe; char result[64]; };

static void *run_probe(void *arg) {
    struct job *job = arg;
    if (sigsetjmp(trap_jump, 1)) {
        snprintf(job->result, sizeof job->result, "trap %d", trap_data);
        return NULL;
    }
    long ret = job->probe->entry == 64 ? probe64(job->probe) : probe32(job->probe);
    if (ret <= 0 && ret >= -4095) {
        /* ERRNO(0) makes the call return 0 without running it. */
        if (ret == -4095) snprintf(job->result, sizeof job->result, "pass");
        else snprintf(job->result, sizeof job->result, "errno %ld", -ret);
    } else {
        snprintf(job->result, sizeof job->result, "ran %ld", ret);
    }
    return NULL;
}

/* A filter that runs `inner` on the probes and allows everything else. */
static struct sock_filter *wrap(const struct sock_filter *inner, unsigned n, unsigned *out) {
    uint64_t ip64 = (uint64_t)judge_ip64, ip32 = (uint64_t)judge_ip32;
    struct sock_filter head[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, 8),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (uint32_t)ip64, 2, 0),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (uint32_t)ip32, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, 12),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (uint32_t)(ip64 >> 32), 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    unsigned h = sizeof head / sizeof head[0];
    struct sock_filter *prog = calloc(h + n, sizeof *prog);
    memcpy(prog, head, sizeof head);
    memcpy(prog + h, inner, n * sizeof *prog);
    *out = h + n;
    return prog;
}

static void load(struct sock_filter *prog, unsigned n) {
    struct sock_fprog fprog = { .len = (unsigned short)n, .filter = prog };
    if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &fprog) != 0) {
        perror("seccomp");
        _exit(3);
    }
}

int main(void) {
    unsigned n, count;
    if (scanf("filter %u", &n) != 1 || n == 0 || n > 4000) return 3;
    struct sock_filter *filter = calloc(n, sizeof *filter);
    for (unsigned i = 0; i < n; i++) {
        unsigned code, jt, jf, k;
        if (scanf("%u %u %u %u", &code, &jt, &jf, &k) != 4) return 3;
        filter[i] = (struct sock_filter){ code, jt, jf, k };
    }
    if (scanf(" probes %u", &count) != 1) return 3;
    struct probe *probes = calloc(count ? count : 1, sizeof *probes);
    for (unsigned i = 0; i < count; i++) {
        struct probe *p = &probes[i];
        if (scanf("%d %lu %lu %lu %lu %lu %lu %lu", &p->entry, &p->nr, &p->args[0], &p->args[1],
                  &p->args[2], &p->args[3], &p->args[4], &p->args[5]) != 8) return 3;
    }
    /* The x86-64 ip's high half is checked once for both probes. */
    if (((uint64_t)judge_ip64 >> 32) != ((uint64_t)judge_ip32 >> 32)) return 4;
    unsigned next = 0;
    while (next < count) {
        int pipefd[2];
        if (pipe(pipefd)) return 3;
        pid_t child = fork();
        if (child < 0) return 3;
        if (child == 0) {
            close(pipefd[0]);
            struct sigaction sa = { 0 };
            sa.sa_sigaction = on_sigsys;
            sa.sa_flags = SA_SIGINFO | SA_NODEFER;
            sigaction(SIGSYS, &sa, NULL);
            /* KILL_PROCESS dumps core: not here. */
            struct rlimit none = { 0, 0 };
            setrlimit(RLIMIT_CORE, &none);
            if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)) _exit(3);
            struct sock_filter guard = BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | 4095);
            unsigned len;
            struct sock_filter *prog = wrap(&guard, 1, &len);
            load(prog, len);
            prog = wrap(filter, n, &len);
            load(prog, len);
            FILE *out = fdopen(pipefd[1], "w");
            for (unsigned i = next; i < count; i++) {
                struct job job = { .probe = &probes[i], .result = "killthread" };
                pthread_t thread;
                if (pthread_create(&thread, NULL, run_probe, &job)) _exit(3);
                pthread_join(thread, NULL);
                fprintf(out, "%s\n", job.result);
                fflush(out);
            }
            _exit(0);
        }
        close(pipefd[1]);
        FILE *in = fdopen(pipefd[0], "r");
        char line[64];
        while (fgets(line, sizeof line, in)) {
            fputs(line, stdout);
            next++;
        }
        fclose(in);
        int status;
        waitpid(child, &status, 0);
        if (WIFEXITED(status) && WEXITSTATUS(status) == 0) continue;
        if (WIFSIGNALED(status) && WTERMSIG(status) == SIGSYS) {
            printf("killprocess\n");
            next++;
            continue;
        }
        fprintf(stderr, "child failed: status %d\n", status);
        return 3;
    }
    return fflush(stdout) ? 3 : 0;
}
"#;

impl Judge {
    /// Builds the helper in `dir`.
    pub fn build(dir: &Path) -> Judge {
        require_program("gcc", "gcc");
        let source = dir.join("seccomp-judge.c");
        std::fs::write(&source, SOURCE).unwrap();
        let binary = dir.join("seccomp-judge");
        let status = Command::new("gcc")
            .args(["-O1", "-pthread", "-o"])
            .arg(&binary)
            .arg(&source)
            .status()
            .unwrap();
        assert!(status.success(), "gcc failed to build the seccomp judge");
        Judge { binary }
    }

    /// The kernel's verdict on each probe under `filter`.
    pub fn judge(&self, filter: &[libc::sock_filter], probes: &[Probe]) -> Vec<Verdict> {
        let mut input = format!("filter {}\n", filter.len());
        for insn in filter {
            input.push_str(&format!(
                "{} {} {} {}\n",
                insn.code, insn.jt, insn.jf, insn.k
            ));
        }
        input.push_str(&format!("probes {}\n", probes.len()));
        for p in probes {
            let entry = match p.entry {
                Entry::Syscall64 => 64,
                Entry::Int80 => 32,
            };
            input.push_str(&format!("{entry} {}", p.nr));
            for a in p.args {
                input.push_str(&format!(" {a}"));
            }
            input.push('\n');
        }
        let mut child = Command::new(&self.binary)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        let output = child.wait_with_output().unwrap();
        if !output.status.success() {
            let saved = std::env::temp_dir().join("seccomp-judge-input.txt");
            let _ = std::fs::write(&saved, &input);
            panic!(
                "the seccomp judge failed ({}): {}; its input is in {}",
                output.status,
                String::from_utf8_lossy(&output.stderr),
                saved.display()
            );
        }
        let verdicts: Vec<Verdict> = String::from_utf8_lossy(&output.stdout)
            .lines()
            .map(|line| {
                let (word, value) = line.split_once(' ').unwrap_or((line, ""));
                let number = || value.parse::<u32>().unwrap();
                match word {
                    "pass" => Verdict::Pass,
                    "errno" => Verdict::Errno(number()),
                    "trap" => Verdict::Trap(number()),
                    "killthread" => Verdict::KillThread,
                    "killprocess" => Verdict::KillProcess,
                    // The guard makes sure nothing runs; a probe that ran
                    // means the helper itself is broken.
                    _ => panic!("the seccomp judge let a probe run: {line}"),
                }
            })
            .collect();
        assert_eq!(
            verdicts.len(),
            probes.len(),
            "the judge answered every probe"
        );
        verdicts
    }
}
