#!/usr/bin/env python3
"""NBD race (issue 22): fio --ioengine=nbd against `vblk nbd` and qemu-storage-daemon's NBD export of the same
raw image, in the same run. Both servers run side by side for the whole race; every workload is first run once on
each (a warm-up, not recorded: a long-running server is warm), then the measurements alternate in pairs (vblk then
qsd, next repeat qsd then vblk) so both halves of a pair see the same background load. Prints a Markdown table:
per server the median IOPS, MiB/s, p50/p99 completion latency and server CPU per request (from /proc/PID/stat),
and per workload the median and spread (min-max) of the per-pair IOPS ratios vblk/qsd."""
import argparse
import json
import os
import statistics
import subprocess
import sys

WORKLOADS = [
    ('4k randread QD32', ['--rw=randread', '--bs=4k', '--iodepth=32']),
    ('64k seqread QD8', ['--rw=read', '--bs=64k', '--iodepth=8']),
]
CLK_TCK = os.sysconf('SC_CLK_TCK')


def cpu_seconds(pid):
    with open(f'/proc/{pid}/stat') as f:
        fields = f.read().rsplit(')', 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime + stime of every thread


def fio(uri, args, seconds, pid):
    cmd = ['fio', '--name=race', '--ioengine=nbd', f'--uri={uri}', f'--runtime={seconds}', '--time_based',
           '--output-format=json'] + args
    c0 = cpu_seconds(pid)
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=seconds + 120).stdout
    c1 = cpu_seconds(pid)
    r = json.loads(out[out.index('{'):])['jobs'][0]['read']
    pct = r['clat_ns']['percentile']
    return {'iops': r['iops'], 'mibs': r['bw'] / 1024, 'p50': pct['50.000000'] / 1000, 'p99': pct['99.000000'] / 1000,
            'cpu_per_mreq': (c1 - c0) / max(1, r['total_ios']) * 1e6}


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument('--vblk', default='cli/target/vblk.jar')
    ap.add_argument('--dir', default='/tmp/nbd-race')
    ap.add_argument('--size', default='512M')
    ap.add_argument('--seconds', type=int, default=10)
    ap.add_argument('--warmup', type=int, default=10)
    ap.add_argument('--repeat', type=int, default=3)
    a = ap.parse_args()
    os.makedirs(a.dir, exist_ok=True)
    img = os.path.join(a.dir, 'disk.raw')
    subprocess.run(['qemu-img', 'create', '-q', '-f', 'raw', img, a.size], check=True)
    subprocess.run(['qemu-io', '-f', 'raw', '-c', f'write -P 0x5a 0 {a.size}', img], check=True, capture_output=True)
    vsock, qsock, qpid = (os.path.join(a.dir, n) for n in ('vblk.sock', 'qsd.sock', 'qsd.pid'))
    vblk = subprocess.Popen(['java', '--enable-native-access=ALL-UNNAMED', '-jar', a.vblk, 'nbd', '--socket', vsock,
                             '--image', img, '--format', 'raw', '--name', 'disk'], stdout=subprocess.PIPE, text=True)
    line = vblk.stdout.readline()  # printed once the export is served
    if 'serving' not in line:
        sys.exit(f'vblk nbd did not start: {line!r}')
    subprocess.run(['qemu-storage-daemon', '--daemonize', '--pidfile', qpid,
                    '--blockdev', f'driver=file,filename={img},node-name=f0,read-only=on',
                    '--blockdev', 'driver=raw,file=f0,node-name=disk0,read-only=on',
                    '--nbd-server', f'addr.type=unix,addr.path={qsock}',
                    '--export', 'type=nbd,id=e0,node-name=disk0,name=disk'], check=True)
    qsd_pid = int(open(qpid).read())
    servers = {'vblk nbd': (f'nbd+unix:///disk?socket={vsock}', vblk.pid),
               'qemu-storage-daemon': (f'nbd+unix:///disk?socket={qsock}', qsd_pid)}
    try:
        for name, args in WORKLOADS:
            for s, (uri, pid) in servers.items():
                fio(uri, args, a.warmup, pid)
        results = {(w, s): [] for w, _ in WORKLOADS for s in servers}
        for rep in range(a.repeat):
            order = list(servers) if rep % 2 == 0 else list(reversed(servers))
            for name, args in WORKLOADS:
                for s in order:
                    uri, pid = servers[s]
                    r = fio(uri, args, a.seconds, pid)
                    results[(name, s)].append(r)
                    print(f'# rep {rep + 1} {name} {s}: {r["iops"]:.0f} IOPS', file=sys.stderr, flush=True)
    finally:
        vblk.terminate()
        vblk.wait(timeout=60)
        subprocess.run(['kill', str(qsd_pid)])
    print('| workload | server | IOPS | MiB/s | p50 µs | p99 µs | CPU s / M req | IOPS vblk/qsd (median, min–max) |')
    print('| --- | --- | ---: | ---: | ---: | ---: | ---: | --- |')
    for name, _ in WORKLOADS:
        v, q = results[(name, 'vblk nbd')], results[(name, 'qemu-storage-daemon')]
        ratios = [x['iops'] / y['iops'] for x, y in zip(v, q)]
        for s, rs in (('vblk nbd', v), ('qemu-storage-daemon', q)):
            med = {k: statistics.median(r[k] for r in rs) for k in rs[0]}
            ratio = (f'{statistics.median(ratios):.2f} ({min(ratios):.2f}–{max(ratios):.2f})'
                     if s == 'vblk nbd' else '')
            print(f'| {name} | {s} | {med["iops"]:.0f} | {med["mibs"]:.1f} | {med["p50"]:.1f} | {med["p99"]:.1f} '
                  f'| {med["cpu_per_mreq"]:.2f} | {ratio} |')
        print(f'<!-- {name} per-pair IOPS: vblk {[round(r["iops"]) for r in v]} qsd {[round(r["iops"]) for r in q]} -->')


if __name__ == '__main__':
    main()
