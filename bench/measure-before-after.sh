#!/usr/bin/env bash
# Two builds of vblk measured in the same run, interleaved, so that the shared machine's noise hits
# both alike: `vblk bench` (in-process null backend, 1 IOThread, 1 queue, QD 32, 4 KiB randread) and
# the JMH virtio-blk request path (VirtioBlkRequestBench, with -prof gc).
#
# Usage: bench/measure-before-after.sh OUTDIR BEFORE_TREE AFTER_TREE [ROUNDS]
#   BEFORE_TREE, AFTER_TREE  checkouts built with `mvn -B -DskipTests package`
#                            (cli/target/vblk.jar and bench/target/benchmarks.jar)
#   ROUNDS                   pairs of `vblk bench` runs (default 6), in ABBA order; JMH runs ROUNDS/2 pairs
# Prints one line per run and, at the end, the medians, the per-pair ratios (after / before) and the
# spread of the before runs among themselves (the noise).
set -euo pipefail
out=$1
before=$2
after=$3
rounds=${4:-6}
mkdir -p "$out"
java=(java --enable-native-access=ALL-UNNAMED)

bench_run() { # TREE NAME
    local json="$out/$2.json"
    "${java[@]}" -jar "$1/cli/target/vblk.jar" bench --qd 32 --bs 4k --rw randread --backend null \
        --queues 1 --iothreads 1 --runtime 8s --ramp 2s --quiet --json "$json" >"$out/$2.txt" 2>&1
    python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(round(d["iops"]))' "$json"
}

jmh_run() { # TREE NAME
    "${java[@]}" -jar "$1/bench/target/benchmarks.jar" 'io.vblk.bench.virtio.VirtioBlkRequestBench' \
        -prof gc -f 1 -wi 3 -w 2s -i 5 -r 2s -rf json -rff "$out/$2.jmh.json" >"$out/$2.jmh.txt" 2>&1
    python3 - "$out/$2.jmh.json" <<'EOF'
import json, sys
for r in json.load(open(sys.argv[1])):
    name = r["benchmark"].rsplit(".", 1)[1] + "(" + ",".join(f"{k}={v}" for k, v in r.get("params", {}).items()) + ")"
    alloc = r["secondaryMetrics"].get("gc.alloc.rate.norm", {}).get("score", float("nan"))
    print(f"{name} {r['primaryMetric']['score']:.1f} {alloc:.3f}")
EOF
}

date -u +"start %F %T UTC" | tee "$out/log.txt"
for i in $(seq 1 "$rounds"); do
    if [ $((i % 2)) -eq 1 ]; then order="before after"; else order="after before"; fi
    for which in $order; do
        tree=$before; [ "$which" = after ] && tree=$after
        iops=$(bench_run "$tree" "bench-$which-$i")
        echo "bench $i $which $iops" | tee -a "$out/log.txt"
    done
done
for i in $(seq 1 $(( (rounds + 1) / 2 ))); do
    if [ $((i % 2)) -eq 1 ]; then order="before after"; else order="after before"; fi
    for which in $order; do
        tree=$before; [ "$which" = after ] && tree=$after
        jmh_run "$tree" "jmh-$which-$i" | sed "s/^/jmh $i $which /" | tee -a "$out/log.txt"
    done
done
date -u +"end %F %T UTC" | tee -a "$out/log.txt"

python3 - "$out/log.txt" <<'EOF'
import statistics, sys
from collections import defaultdict
bench = defaultdict(dict)
jmh = defaultdict(lambda: defaultdict(dict))
alloc = defaultdict(lambda: defaultdict(list))
for line in open(sys.argv[1]):
    f = line.split()
    if f[0] == "bench":
        bench[int(f[1])][f[2]] = float(f[3])
    elif f[0] == "jmh":
        jmh[f[3]][int(f[1])][f[2]] = float(f[4])
        alloc[f[3]][f[2]].append(float(f[5]))
def report(title, pairs, higher_is_better):
    b = [p["before"] for p in pairs.values()]
    a = [p["after"] for p in pairs.values()]
    ratios = [p["after"] / p["before"] for p in pairs.values()]
    print(f"{title}: before median {statistics.median(b):.1f} (min {min(b):.1f}, max {max(b):.1f}, "
          f"spread {100 * (max(b) - min(b)) / statistics.median(b):.0f} %), "
          f"after median {statistics.median(a):.1f} (min {min(a):.1f}, max {max(a):.1f}); "
          f"after/before per pair: median {statistics.median(ratios):.3f}, "
          f"range {min(ratios):.3f}-{max(ratios):.3f} ({'higher' if higher_is_better else 'lower'} is better)")
report("vblk bench null QD32 IOPS", bench, True)
for name, pairs in sorted(jmh.items()):
    report(f"JMH {name} ns/op", pairs, False)
    print(f"    B/op before {max(alloc[name]['before']):.3f} after {max(alloc[name]['after']):.3f} (max over runs)")
EOF
