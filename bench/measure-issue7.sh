#!/usr/bin/env bash
# The end-to-end measurements of bench/RESULTS.md ("vblk bench" sections).
#
# Usage: bench/measure-issue7.sh OUTDIR JAR [BEFORE_JAR]
#   OUTDIR      where each run's table (NAME.txt), JSON (NAME.json) and wrapper line (NAME.err) go
#   JAR         the vblk.jar to measure (cli/target/vblk.jar)
#   BEFORE_JAR  optional: an older build; the configurations marked "b" below are run with it
#               right after the same configuration on JAR (NAME-before.*), so both see the same machine
#
# Every run goes through bench/quiet-run.py: it waits up to MAX_WAIT s (default 60) for 10 s of
# quiet, runs, and reports the CPU other processes used meanwhile ("foreign CPU"). A run with
# more than 3 foreign CPU-seconds is repeated, up to RETRIES times (default 2); every attempt is
# kept (NAME.aN.*), and the least disturbed one is the one to report.
set -uo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
out=$1
jar=$2
before=${3:-}
mkdir -p "$out"
qr="$here/quiet-run.py --settle 10 --max-foreign 3 --max-wait ${MAX_WAIT:-60}"
retries=${RETRIES:-2}
only=${ONLY:-}

attempts() { # NAME CMD...: run CMD under quiet-run, retrying while noisy
    local name=$1
    shift
    for attempt in $(seq 1 "$retries"); do
        date -u +"%F %T UTC start $name (attempt $attempt)" >>"$out/log.txt"
        $qr -- "$@" >"$out/$name.txt" 2>"$out/$name.err"
        rc=$?
        tail -1 "$out/$name.err" >>"$out/log.txt"
        cp "$out/$name.txt" "$out/$name.a$attempt.txt"
        cp "$out/$name.err" "$out/$name.a$attempt.err"
        [ -f "$out/$name.json" ] && cp "$out/$name.json" "$out/$name.a$attempt.json"
        [ $rc -ne 75 ] && return
    done
}

# run FLAGS NAME ARGS...: FLAGS "a" = this build only, "b" = also the before build
run() {
    local flags=$1 name=$2
    shift 2
    if [ -n "$only" ] && [[ ! " $only " == *" $name "* ]]; then
        return
    fi
    echo "vblk bench $*" >"$out/$name.cmd"
    attempts "$name" java --enable-native-access=ALL-UNNAMED -jar "$jar" bench --quiet --json "$out/$name.json" "$@"
    if [ "$flags" = b ] && [ -n "$before" ]; then
        attempts "$name-before" java --enable-native-access=ALL-UNNAMED -jar "$before" bench --quiet \
            --json "$out/$name-before.json" "$@"
    fi
}

c=(--runtime 8s --ramp 2s)
img=${FIO_IMAGE:-/tmp/vblk-fio-image.raw}

run b g1-qd64            "${c[@]}" --qd 64 --bs 4k --rw randread --backend null --queues 1 --iothreads 1
run b g2-qd1-iopoll      "${c[@]}" --qd 1 --bs 4k --rw randread --backend null --queues 1 --iothreads 1
run b g2-qd1-guestpoll   "${c[@]}" --qd 1 --bs 4k --rw randread --backend null --queues 1 --iothreads 1 --guest-poll on
run a g2-qd1-nopoll      "${c[@]}" --qd 1 --bs 4k --rw randread --backend null --poll-max-ns 0
run b g3-64k-qd64        "${c[@]}" --qd 64 --bs 64k --rw read --backend null
run a g3-64k-qd16        "${c[@]}" --qd 16 --bs 64k --rw read --backend null
run b g4-dp-on-1io       "${c[@]}" --qd 32 --queues 2 --iothreads 1 --dataplane on
run b g4-dp-on-2io       "${c[@]}" --qd 32 --queues 2 --iothreads 2 --dataplane on
run b g4-dp-off          "${c[@]}" --qd 32 --queues 2 --dataplane off
run a i5-stop-start      "${c[@]}" --qd 32 --stop-start
run b i8-raw-randread    "${c[@]}" --qd 32 --backend file --rw randread
run b i8-qcow2-randread  "${c[@]}" --qd 32 --backend qcow2 --rw randread
run a i8-raw-randwrite   "${c[@]}" --qd 32 --backend file --rw randwrite
run a i8-qcow2-randwrite "${c[@]}" --qd 32 --backend qcow2 --rw randwrite

if [ -z "$only" ] || [[ " $only " == *" g5 "* ]]; then
    if [ ! -f "$img" ]; then
        dd if=/dev/zero of="$img" bs=1M count=1024 status=none && sync
    fi
    cat "$img" >/dev/null # in the page cache, as the runner's own image is
    ONLY_SAVE=$only only=
    run a g5-vblk-file "${c[@]}" --qd 32 --bs 4k --rw randread --image "$img" --format raw
    for eng in psync pvsync2; do
        for nj in 1 2; do
            echo "fio ... --ioengine=$eng --numjobs=$nj" >"$out/g5-fio-$eng-nj$nj.cmd"
            attempts "g5-fio-$eng-nj$nj" fio --name=randread --filename="$img" --rw=randread --bs=4k \
                --ioengine=$eng --numjobs=$nj --runtime=8 --ramp_time=2 --time_based --group_reporting \
                --norandommap --invalidate=0
        done
    done
    only=$ONLY_SAVE
fi
if [ -z "$only" ] || [[ " $only " == *" jmh "* ]]; then
    attempts jmh-copy64k java --enable-native-access=ALL-UNNAMED -jar "${BENCH_JAR:-$here/target/benchmarks.jar}" \
        'io.vblk.bench.mem.Copy64kBench' -p buffers=16,64
fi
date -u +"%F %T UTC done" >>"$out/log.txt"
