#!/usr/bin/env bash
# The end-to-end measurements of bench/RESULTS.md ("vblk bench" sections):
# every run goes through bench/quiet-run.py, which waits for a quiet machine
# and rejects (then retries) a run that other processes disturbed.
#
# Usage: bench/measure-issue7.sh JAR OUTDIR [SET]
#   JAR     the vblk.jar to measure (cli/target/vblk.jar, or an older build)
#   OUTDIR  where each run's table (NAME.txt) and JSON (NAME.json) go
#   SET     all (default), before (the subset measured on the old build), fio, jmh
set -uo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
jar=$1
out=$2
set_=${3:-all}
mkdir -p "$out"
# quiet-run waits up to MAX_WAIT s for 10 s of quiet, then runs anyway and reports the foreign CPU;
# a run with more than 3 foreign CPU-seconds is repeated up to RETRIES times, every attempt kept
# (NAME.txt is the last; NAME.aN.txt each attempt), so the least disturbed one can be reported.
qr="$here/quiet-run.py --settle 10 --max-foreign 3 --max-wait ${MAX_WAIT:-300}"
retries=${RETRIES:-3}

# run NAME ARGS...: one vblk bench run, retried while the machine was noisy
run() {
    local name=$1
    shift
    for attempt in $(seq 1 "$retries"); do
        date -u +"%F %T UTC start $name (attempt $attempt)" >>"$out/log.txt"
        $qr -- java --enable-native-access=ALL-UNNAMED -jar "$jar" bench --quiet --json "$out/$name.json" "$@" \
            >"$out/$name.txt" 2>"$out/$name.err"
        rc=$?
        tail -1 "$out/$name.err" >>"$out/log.txt"
        cp "$out/$name.txt" "$out/$name.a$attempt.txt"
        cp "$out/$name.err" "$out/$name.a$attempt.err"
        cp "$out/$name.json" "$out/$name.a$attempt.json" 2>/dev/null
        if [ $rc -ne 75 ]; then
            echo "vblk bench $*" >"$out/$name.cmd"
            date -u +"%F %T UTC end $name rc=$rc" >>"$out/log.txt"
            return
        fi
    done
    echo "$name: still noisy after $retries attempts" >>"$out/log.txt"
}

common=(--runtime 8s --ramp 2s)

if [ "$set_" = all ] || [ "$set_" = before ]; then
    run g1-qd64            "${common[@]}" --qd 64 --bs 4k --rw randread --backend null --queues 1 --iothreads 1
    run g2-qd1-iopoll      "${common[@]}" --qd 1 --bs 4k --rw randread --backend null --queues 1 --iothreads 1
    run g2-qd1-guestpoll   "${common[@]}" --qd 1 --bs 4k --rw randread --backend null --queues 1 --iothreads 1 --guest-poll on
    run g3-64k-qd64        "${common[@]}" --qd 64 --bs 64k --rw read --backend null
    run g4-dp-on-1io       "${common[@]}" --qd 32 --queues 2 --iothreads 1 --dataplane on
    run g4-dp-on-2io       "${common[@]}" --qd 32 --queues 2 --iothreads 2 --dataplane on
    run g4-dp-off          "${common[@]}" --qd 32 --queues 2 --dataplane off
    run i8-raw-randread    "${common[@]}" --qd 32 --backend file --rw randread
    run i8-qcow2-randread  "${common[@]}" --qd 32 --backend qcow2 --rw randread
fi
if [ "$set_" = all ]; then
    run g2-qd1-nopoll      "${common[@]}" --qd 1 --bs 4k --rw randread --backend null --poll-max-ns 0
    run g3-64k-qd16        "${common[@]}" --qd 16 --bs 64k --rw read --backend null
    run i5-stop-start      "${common[@]}" --qd 32 --stop-start
    run i8-raw-randwrite   "${common[@]}" --qd 32 --backend file --rw randwrite
    run i8-qcow2-randwrite "${common[@]}" --qd 32 --backend qcow2 --rw randwrite
fi
if [ "$set_" = all ] || [ "$set_" = fio ]; then
    img=${FIO_IMAGE:-/tmp/vblk-fio-image.raw}
    if [ ! -f "$img" ]; then
        dd if=/dev/zero of="$img" bs=1M count=1024 status=none && sync
    fi
    cat "$img" >/dev/null # in the page cache, as the runner's own image is
    run g5-vblk-file "${common[@]}" --qd 32 --bs 4k --rw randread --image "$img" --format raw
    for eng in psync pvsync2; do
        for nj in 1 2; do
            name=g5-fio-$eng-nj$nj
            for attempt in $(seq 1 "$retries"); do
                date -u +"%F %T UTC start $name (attempt $attempt)" >>"$out/log.txt"
                $qr -- fio --name=randread --filename="$img" --rw=randread --bs=4k --ioengine=$eng \
                    --numjobs=$nj --runtime=8 --ramp_time=2 --time_based --group_reporting --norandommap \
                    --invalidate=0 >"$out/$name.txt" 2>"$out/$name.err"
                rc=$?
                tail -1 "$out/$name.err" >>"$out/log.txt"
                cp "$out/$name.txt" "$out/$name.a$attempt.txt"
                cp "$out/$name.err" "$out/$name.a$attempt.err"
                [ $rc -ne 75 ] && break
            done
        done
    done
fi
if [ "$set_" = all ] || [ "$set_" = jmh ]; then
    bjar=${BENCH_JAR:-$here/target/benchmarks.jar}
    for attempt in $(seq 1 "$retries"); do
        $qr -- java --enable-native-access=ALL-UNNAMED -jar "$bjar" 'io.vblk.bench.mem.Copy64kBench' \
            -p buffers=16,64 >"$out/jmh-copy64k.txt" 2>"$out/jmh-copy64k.err"
        rc=$?
        tail -1 "$out/jmh-copy64k.err" >>"$out/log.txt"
        [ $rc -ne 75 ] && break
    done
fi
date -u +"%F %T UTC done" >>"$out/log.txt"
