#!/usr/bin/env python3
"""Measures a runtime base set: the syscalls an OCI runtime makes after it
has loaded the container's seccomp filter and before the entrypoint's exec.

Creates and starts a container with RUNTIME (runc, crun, or a path to one)
RUNS times on a busybox root filesystem, `create` under `strace -f`, with a seccomp filter that allows everything
(so nothing fails and every call is seen), and prints, per syscall, in how
many runs a filtered task made it. A filtered task is the one that loaded
the filter and whatever it cloned afterwards (filters are inherited); its
syscalls count from the load up to and including its exec of the
entrypoint. Other threads of the runtime (Go's, without TSYNC) are not
filtered and are left out.

Needs root, strace and /bin/busybox (busybox-static). Run it under the
root-test lock:

    flock /work/.roottest.lock python3 agent/basesets/measure.py runc --runs 30
    flock /work/.roottest.lock python3 agent/basesets/measure.py runc --nnp --runs 30
    flock /work/.roottest.lock python3 agent/basesets/measure.py crun --runs 30

crun runs with --cgroup-manager=disabled (its cgroup set-up comes before
the filter); crun 1.8 refuses a hybrid layout whose cgroup2 hierarchy holds
controllers even then, so on such a host they are moved to v1 mounts for the
run and given back after.
"""

import argparse
import collections
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

LINE = re.compile(r"^(\d+)\s+(?:<\.\.\. (\w+) resumed>|(\w+)\()")
RESULT = re.compile(r"=\s+(-?\d+|\?)")
ENTRYPOINT = "/bin/true"


def rootfs(dir):
    os.makedirs(os.path.join(dir, "bin"))
    for sub in ("proc", "dev", "sys", "tmp", "etc"):
        os.makedirs(os.path.join(dir, sub))
    shutil.copy("/bin/busybox", os.path.join(dir, "bin/busybox"))
    for applet in ("sh", "true", "sleep"):
        os.symlink("busybox", os.path.join(dir, "bin", applet))


def config(root, nnp, uid, args=None):
    caps = ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD",
            "CAP_NET_RAW", "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP",
            "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE"]
    return {
        "ociVersion": "1.0.2-dev",
        "process": {
            "terminal": False,
            "user": {"uid": uid, "gid": uid, "additionalGids": [uid + 10]},
            "args": args or [ENTRYPOINT],
            "env": ["PATH=/bin"],
            "cwd": "/",
            "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": nnp,
            "oomScoreAdj": 0,
        },
        "root": {"path": root, "readonly": False},
        "hostname": "basesets",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs",
             "options": ["nosuid", "noexec", "nodev", "ro"]},
        ],
        "linux": {
            "namespaces": [{"type": t} for t in ("pid", "ipc", "uts", "mount", "network")],
            "maskedPaths": ["/proc/kcore", "/proc/keys", "/sys/firmware"],
            "readonlyPaths": ["/proc/bus", "/proc/sys", "/proc/sysrq-trigger"],
            "seccomp": {
                "defaultAction": "SCMP_ACT_ALLOW",
                "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"],
                "syscalls": [{"names": ["kexec_load"], "action": "SCMP_ACT_ERRNO"}],
            },
        },
    }


def filtered_syscalls(trace):
    """The syscalls of filtered tasks, from the filter's load to the
    entrypoint's exec, in a `strace -f` log."""
    filtered = set()
    done = set()
    seen = set()
    pending = {}
    for line in trace.splitlines():
        m = LINE.match(line)
        if not m:
            continue
        pid = int(m.group(1))
        name = m.group(2) or m.group(3)
        if "<unfinished ...>" in line:
            pending[pid] = line
            continue
        if m.group(2):
            line = pending.pop(pid, "") + line
        r = RESULT.search(line.rsplit(")", 1)[-1]) if ")" in line else None
        ok = r is not None and not r.group(1).startswith("-")
        if pid in filtered and pid not in done:
            seen.add(name)
            if name in ("clone", "clone3", "fork", "vfork") and ok:
                filtered.add(int(r.group(1)))
            if name in ("execve", "execveat") and ok and ENTRYPOINT in line:
                done.add(pid)
        elif pid not in done and ok and (
            (name == "seccomp" and "SECCOMP_SET_MODE_FILTER" in line)
            or (name == "prctl" and "PR_SET_SECCOMP" in line)
        ):
            filtered.add(pid)
    return filtered, seen


def hybrid_controllers():
    path = "/sys/fs/cgroup/unified/cgroup.controllers"
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return f.read().split()


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("runtime")
    p.add_argument("--nnp", action="store_true", help="process.noNewPrivileges: true")
    p.add_argument("--uid", type=int, default=0, help="process.user.uid (and gid)")
    p.add_argument("--runs", type=int, default=10)
    p.add_argument("--exec", action="store_true",
                   help="measure `exec` into a running container (probes, kubectl exec) instead of its start")
    args = p.parse_args()
    counts = collections.Counter()
    with tempfile.TemporaryDirectory(prefix="basesets-") as tmp:
        root = os.path.join(tmp, "rootfs")
        rootfs(root)
        with open(os.path.join(tmp, "config.json"), "w") as f:
            entry = ["/bin/sleep", "30"] if args.exec else None
            json.dump(config(root, args.nnp, args.uid, entry), f)
        extra, mounts = [], []
        if "crun" in os.path.basename(args.runtime):
            extra = ["--cgroup-manager=disabled"]
            for controller in hybrid_controllers():
                mount = os.path.join(tmp, "cgroup-" + controller)
                os.mkdir(mount)
                subprocess.run(["mount", "-t", "cgroup", "-o", controller, "none", mount], check=True)
                mounts.append(mount)
        try:
            (measure_exec if args.exec else measure)(args, tmp, extra, counts)
        finally:
            for mount in mounts:
                subprocess.run(["umount", mount], check=True)
    print(json.dumps({"runtime": args.runtime, "nnp": args.nnp, "uid": args.uid, "exec": args.exec,
                      "runs": args.runs, "syscalls": dict(sorted(counts.items()))}, indent=1))


def measure(args, tmp, extra, counts):
    """`create` under strace, then `start` and `delete`, as containerd and
    CRI-O drive a runtime (`run` skips crun's exec fifo)."""
    for i in range(args.runs):
        log = os.path.join(tmp, "strace.log")
        cid = f"basesets-{os.getpid()}-{i}"
        runtime = [args.runtime, *extra]
        pid_file = os.path.join(tmp, "pid")
        if os.path.exists(pid_file):
            os.remove(pid_file)
        traced = subprocess.Popen(
            ["strace", "-f", "-qq", "-s", "64", "-o", log, *runtime, "create", "--bundle", tmp,
             "--pid-file", pid_file, cid],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            # The pid file is written when `create` is done.
            for _ in range(200):
                if os.path.exists(pid_file) and os.path.getsize(pid_file) > 0:
                    break
                if traced.poll() is not None:
                    sys.exit(f"run {i}: create failed: {traced.stderr.read().strip()}")
                time.sleep(0.05)
            else:
                sys.exit(f"run {i}: the container was not created within 10 s")
            start = subprocess.run([*runtime, "start", cid], capture_output=True, text=True)
            if start.returncode != 0:
                sys.exit(f"run {i}: start failed: {start.stderr.strip()}")
            traced.wait(timeout=30)
        finally:
            # A failed run: `create` may still be finishing; delete what it
            # made once it is done, then stop strace.
            for _ in range(200):
                if os.path.exists(pid_file) or traced.poll() is not None:
                    break
                time.sleep(0.05)
            subprocess.run([*runtime, "delete", "--force", cid], capture_output=True)
            if traced.poll() is None:
                traced.kill()
            traced.wait()
        with open(log) as f:
            filtered, seen = filtered_syscalls(f.read())
        if not filtered:
            sys.exit(f"run {i}: no seccomp filter load seen in the trace")
        counts.update(seen)


def measure_exec(args, tmp, extra, counts):
    """`exec` of the entrypoint into a running container, under strace."""
    runtime = [args.runtime, *extra]
    cid = f"basesets-{os.getpid()}-exec"
    subprocess.run([*runtime, "run", "--detach", "--bundle", tmp, cid], check=True,
                   stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for i in range(args.runs):
            log = os.path.join(tmp, "strace.log")
            run = subprocess.run(["strace", "-f", "-qq", "-s", "64", "-o", log, *runtime, "exec", cid,
                                  ENTRYPOINT], capture_output=True, text=True)
            if run.returncode != 0:
                sys.exit(f"exec {i} failed: {run.stderr.strip()}")
            with open(log) as f:
                filtered, seen = filtered_syscalls(f.read())
            if not filtered:
                sys.exit(f"exec {i}: no seccomp filter load seen in the trace")
            counts.update(seen)
    finally:
        subprocess.run([*runtime, "delete", "--force", cid], capture_output=True)


if __name__ == "__main__":
    main()
