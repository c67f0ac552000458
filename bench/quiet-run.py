#!/usr/bin/env python3
"""Run a benchmark command on a quiet machine and report how quiet it stayed.

Other engineers build and test on this 2-vCPU machine. This wrapper waits
until the whole machine has been nearly idle for --settle seconds (busy CPU
below --idle-cpu CPU-seconds per second, from /proc/stat), then runs the
command and measures the *foreign* CPU during the run: the machine's busy
CPU time (/proc/stat: user+nice+system+irq+softirq) minus the CPU time of the
command's own process tree (/proc/PID/stat utime+stime, children included
once they are reaped, threads always). It prints one summary line to stderr:

    quiet-run: foreign CPU 0.42 s over 12.3 s (limit 3.0): OK

and exits with the command's status, or 75 (EX_TEMPFAIL) when the foreign
CPU exceeded --max-foreign, so a script can retry the run.

Usage: bench/quiet-run.py [--settle 15] [--idle-cpu 0.15] [--max-foreign 3]
                          [--max-wait 1800] -- COMMAND ARGS...
"""
import argparse
import os
import subprocess
import sys
import time

CLK = os.sysconf("SC_CLK_TCK")


def busy_seconds():
    with open("/proc/stat") as f:
        parts = f.readline().split()
    # cpu user nice system idle iowait irq softirq steal guest guest_nice
    v = [int(x) for x in parts[1:]]
    busy = v[0] + v[1] + v[2] + v[5] + v[6]
    return busy / CLK


def tree_pids(root):
    children = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                s = f.read()
        except OSError:
            continue
        rest = s[s.rfind(")") + 2:].split()
        children.setdefault(int(rest[1]), []).append(int(d))
    out, todo = [], [root]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def proc_cpu(pid):
    """utime+stime+cutime+cstime of one process, in seconds (0 if gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            s = f.read()
    except OSError:
        return None
    rest = s[s.rfind(")") + 2:].split()
    return (int(rest[11]) + int(rest[12]) + int(rest[13]) + int(rest[14])) / CLK


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--settle", type=float, default=15)
    ap.add_argument("--idle-cpu", type=float, default=0.15)
    ap.add_argument("--max-foreign", type=float, default=3.0)
    ap.add_argument("--max-wait", type=float, default=1800)
    ap.add_argument("cmd", nargs=argparse.REMAINDER)
    a = ap.parse_args()
    cmd = a.cmd[1:] if a.cmd and a.cmd[0] == "--" else a.cmd
    if not cmd:
        ap.error("no command")
    deadline = time.time() + a.max_wait
    quiet_since = time.time()
    last = busy_seconds()
    while True:
        time.sleep(1)
        now = busy_seconds()
        if now - last > a.idle_cpu:
            quiet_since = time.time()
        last = now
        if time.time() - quiet_since >= a.settle:
            break
        if time.time() > deadline:
            print("quiet-run: the machine never became quiet; running anyway", file=sys.stderr)
            break
    start_busy = busy_seconds()
    t0 = time.time()
    p = subprocess.Popen(cmd)
    own = {}  # pid -> last seen cpu of every process of the tree
    while p.poll() is None:
        for pid in tree_pids(p.pid):
            c = proc_cpu(pid)
            if c is not None:
                own[pid] = c
        time.sleep(0.2)
    wall = time.time() - t0
    end_busy = busy_seconds()
    # the child was reaped by poll(): its final times are in our cutime/cstime
    t = os.times()
    own_total = t.children_user + t.children_system
    own_total = max(own_total, sum(own.values()))
    foreign = (end_busy - start_busy) - own_total
    verdict = "OK" if foreign <= a.max_foreign else "NOISY"
    print(f"quiet-run: foreign CPU {foreign:.2f} s over {wall:.1f} s (limit {a.max_foreign}): {verdict}",
          file=sys.stderr)
    if verdict != "OK":
        sys.exit(75)
    sys.exit(p.returncode)


if __name__ == "__main__":
    main()
