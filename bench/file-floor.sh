#!/usr/bin/env bash
# vblk's in-process file path (`vblk bench --backend file`) with aio=threads and
# aio=io_uring, page cache and O_DIRECT, against fio's io_uring floor on the same
# file, block size and depth (issue 19). The runs are interleaved: each repetition
# runs every configuration once, in an order rotated per repetition, so all of
# them share the background load. Prints one CSV line per run, then per
# configuration the median IOPS, the spread (min..max) and the ratio of the
# medians to fio's of the same cache mode.
#
#   bench/file-floor.sh [--repeat N] [--runtime S] [--ramp S] [--qd D] [--bs SIZE] [--rw randread|randwrite]
#                       [--image FILE] [--size SIZE]
# --ramp (default 1 s) is the unmeasured start of every run, fio's and vblk's; vblk's JIT
# compiler needs several seconds of it on a small machine (issue 19 profile).
# Needs cli/target/vblk.jar (mvn -B -q -DskipTests package -pl cli -am) and fio.
set -euo pipefail
cd "$(dirname "$0")/.."
REPEAT=3 RUNTIME=5 RAMP=1 QD=32 BS=4k RW=randread IMG=/var/tmp/vblk-floor.raw SIZE=1g
while [ $# -gt 0 ]; do
    case "$1" in
        --repeat) REPEAT=$2;; --runtime) RUNTIME=$2;; --ramp) RAMP=$2;; --qd) QD=$2;; --bs) BS=$2;; --rw) RW=$2;;
        --image) IMG=$2;; --size) SIZE=$2;;
        *) echo "file-floor: unknown option $1" >&2; exit 2;;
    esac
    shift 2
done
JAR=cli/target/vblk.jar
[ -r "$JAR" ] || { echo "file-floor: $JAR missing: mvn -B -q -DskipTests package -pl cli -am" >&2; exit 2; }
command -v fio >/dev/null || { echo "file-floor: fio missing: apt-get install -y fio" >&2; exit 2; }
if [ ! -s "$IMG" ]; then
    fio --name=fill --filename="$IMG" --size="$SIZE" --rw=write --bs=1m --ioengine=psync --refill_buffers \
        --end_fsync=1 >/dev/null
fi
cat /proc/loadavg >&2
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
CONFIGS=(fio:0 threads:0 io_uring:0 fio:1 threads:1 io_uring:1)
echo "rep,engine,direct,iops,p50_us,p99_us"
for ((rep = 0; rep < REPEAT; rep++)); do
    n=${#CONFIGS[@]}
    for ((k = 0; k < n; k++)); do
        c=${CONFIGS[$(((k + rep) % n))]}
        engine=${c%%:*} direct=${c##*:}
        if [ "$engine" = fio ]; then
            fio --name=floor --filename="$IMG" --ioengine=io_uring --direct="$direct" --rw="$RW" --bs="$BS" \
                --iodepth="$QD" --runtime="$RUNTIME" --ramp_time="$RAMP" --time_based --numjobs=1 \
                --output-format=json >"$OUT/r.json"
            sel=$([ "${RW#rand}" = write ] && echo write || echo read)
            read -r iops p50 p99 < <(jq -r ".jobs[0].$sel | \"\\(.iops) \\(.clat_ns.percentile[\"50.000000\"]/1000) \\(.clat_ns.percentile[\"99.000000\"]/1000)\"" "$OUT/r.json")
        else
            flags=(--aio "$engine")
            [ "$direct" = 1 ] && flags+=(--cache-direct)
            java --enable-native-access=ALL-UNNAMED -jar "$JAR" bench --backend file --image "$IMG" --format raw \
                "${flags[@]}" --qd "$QD" --bs "$BS" --rw "$RW" --runtime "${RUNTIME}s" --ramp "${RAMP}s" --quiet \
                --json "$OUT/r.json" >/dev/null
            read -r iops p50 p99 < <(jq -r '"\(.iops) \(.latency_ns.p50/1000) \(.latency_ns.p99/1000)"' "$OUT/r.json")
        fi
        printf '%d,%s,%s,%.0f,%.1f,%.1f\n' "$rep" "$engine" "$direct" "$iops" "$p50" "$p99" | tee -a "$OUT/all.csv"
    done
done
cat /proc/loadavg >&2
echo
echo "| cache | engine | median IOPS | min..max | p50 µs (median) | p99 µs (median) | vs fio io_uring |"
echo "| --- | --- | ---: | --- | ---: | ---: | ---: |"
python3 - "$OUT/all.csv" <<'PY'
import csv, statistics, sys
rows = list(csv.reader(open(sys.argv[1])))
by = {}
for rep, eng, d, iops, p50, p99 in rows:
    by.setdefault((d, eng), []).append((float(iops), float(p50), float(p99)))
for d in ("0", "1"):
    floor = statistics.median(x[0] for x in by[(d, "fio")])
    for eng in ("fio", "threads", "io_uring"):
        v = by[(d, eng)]
        m = statistics.median(x[0] for x in v)
        print("| %s | %s | %.0f | %.0f..%.0f | %.1f | %.1f | %.2f |" % (
            "O_DIRECT" if d == "1" else "page cache", "fio --ioengine=io_uring" if eng == "fio" else "vblk aio=" + eng,
            m, min(x[0] for x in v), max(x[0] for x in v), statistics.median(x[1] for x in v),
            statistics.median(x[2] for x in v), m / floor))
PY
