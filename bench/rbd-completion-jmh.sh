#!/usr/bin/env bash
# JMH comparison of the rbd driver's two completion paths (RbdCompletionBench: eventfd vs callback, 4k random
# reads and writes at QD 32), on one one-node cluster (contrib/ceph-one-node.sh) shared by every fork, the forks
# interleaved: each round runs one fork per path, in reverse order every other round, so both see the same
# background on average. Prints each fork's scores, then per-round ratios eventfd/callback and their median.
# usage: bench/rbd-completion-jmh.sh [ROUNDS] [JMH OPTIONS...]   (default 3 rounds; -wi 2 -w 3s -i 3 -r 4s)
# needs bench/target/benchmarks.jar: mvn -o -B -pl bench -am package -DskipTests
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
rounds=${1:-3}
shift $(( $# > 0 ? 1 : 0 ))
jmh_opts=("$@")
[ ${#jmh_opts[@]} -gt 0 ] || jmh_opts=(-wi 2 -w 3s -i 3 -r 4s)
jar=$here/bench/target/benchmarks.jar
[ -f "$jar" ] || { echo "no $jar: mvn -o -B -pl bench -am package -DskipTests" >&2; exit 2; }
work=$(mktemp -d /tmp/vblk-rbd-jmh.XXXXXX)
cl=$work/cluster
cleanup() { "$here/contrib/ceph-one-node.sh" stop "$cl" || true; rm -rf "$work"; }
trap cleanup EXIT
"$here/contrib/ceph-one-node.sh" start "$cl" --watch $$ >/dev/null
for r in $(seq 1 "$rounds"); do
  order=(eventfd callback)
  (( r % 2 == 0 )) && order=(callback eventfd)
  for c in "${order[@]}"; do
    if ! java --enable-native-access=ALL-UNNAMED -jar "$jar" 'io.vblk.bench.block.RbdCompletionBench' \
         -p completion="$c" -f 1 "${jmh_opts[@]}" -jvmArgsAppend "-Dvblk.bench.rbd.conf=$cl/ceph.conf" \
         -rf json -rff "$work/r$r-$c.json" >"$work/r$r-$c.txt" 2>&1; then
      tail -40 "$work/r$r-$c.txt" >&2
      exit 1
    fi
    python3 - "$work/r$r-$c.json" "$r" <<'EOF'
import json, sys
for b in json.load(open(sys.argv[1])):
    m = b["primaryMetric"]
    err = m["scoreError"]
    err = f"{err:.0f}" if isinstance(err, (int, float)) else str(err)
    print(f"round {sys.argv[2]} {b['params']['completion']:8} {b['params']['rw']:9} {m['score']:8.0f} ops/s "
          f"(+- {err}, iterations {[round(x) for x in m['rawData'][0]]})")
EOF
  done
done | tee "$work/lines.txt"
python3 - "$work/lines.txt" <<'EOF'
import sys, statistics
s = {}
for line in open(sys.argv[1]):
    f = line.split()
    s[(f[1], f[2], f[3])] = float(f[4])
for rw in ("randread", "randwrite"):
    rounds = sorted({k[0] for k in s})
    ratios = [s[(r, "eventfd", rw)] / s[(r, "callback", rw)] for r in rounds
              if (r, "eventfd", rw) in s and (r, "callback", rw) in s]
    if ratios:
        print(f"{rw}: eventfd/callback per round {[round(x, 2) for x in ratios]}, median {statistics.median(ratios):.2f}")
EOF
