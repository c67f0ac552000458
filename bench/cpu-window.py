#!/usr/bin/env python3
"""CPU use by process group over a window, for bench/rbd-race.sh's profile rows.

usage: cpu-window.py DELAY_S WINDOW_S
Samples /proc after DELAY_S and again WINDOW_S later, and prints one line:
  osd=PCT mon=PCT client=PCT other=PCT idle=PCT
as percent of one core. client: processes running vblk.jar, fio or qemu-storage-daemon
(the race's clients and servers); osd/mon: ceph-osd, ceph-mon + ceph-mgr; other: the rest
(including the kernel's own threads). idle: from /proc/stat, in cores x 100.
"""
import os
import sys
import time

HZ = os.sysconf('SC_CLK_TCK')


def group(pid):
    try:
        with open(f'/proc/{pid}/cmdline', 'rb') as f:
            cmd = f.read().replace(b'\0', b' ').decode(errors='replace')
    except OSError:
        return None
    if 'ceph-osd' in cmd:
        return 'osd'
    if 'ceph-mon' in cmd or 'ceph-mgr' in cmd:
        return 'mon'
    argv0 = os.path.basename(cmd.split(' ', 1)[0])
    if 'vblk.jar' in cmd or argv0 == 'fio' or argv0 == 'qemu-storage-daemon':
        return 'client'
    return 'other'


def sample():
    ticks = {}
    for d in os.listdir('/proc'):
        if not d.isdigit():
            continue
        try:
            with open(f'/proc/{d}/stat') as f:
                s = f.read()
        except OSError:
            continue
        fields = s[s.rindex(')') + 2:].split()
        ticks[int(d)] = int(fields[11]) + int(fields[12])  # utime + stime
    with open('/proc/stat') as f:
        cpu = [int(x) for x in f.readline().split()[1:]]
    return ticks, cpu[3] + cpu[4], time.monotonic()


def main():
    delay, window = float(sys.argv[1]), float(sys.argv[2])
    time.sleep(delay)
    t0, idle0, m0 = sample()
    time.sleep(window)
    t1, idle1, m1 = sample()
    secs = m1 - m0
    use = {'osd': 0, 'mon': 0, 'client': 0, 'other': 0}
    for pid, t in t1.items():
        g = group(pid)
        if g is None:
            continue
        use[g] += t - t0.get(pid, t)  # only processes alive at both samples count (the race's run the whole window)
    pct = {k: 100.0 * v / HZ / secs for k, v in use.items()}
    idle = 100.0 * (idle1 - idle0) / HZ / secs
    print(' '.join(f'{k}={pct[k]:.0f}' for k in ('osd', 'mon', 'client', 'other')) + f' idle={idle:.0f}')


if __name__ == '__main__':
    main()
