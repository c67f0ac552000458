#!/usr/bin/env bash
# The vhost-user race of issues 10 and 19: vblk serve against qemu-storage-daemon, both
# file engines (aio=io_uring, aio=threads) on each side, page cache and O_DIRECT rows,
# interleaved repeats, ratio to qemu-storage-daemon's best configuration per row.
# Arguments are passed to io.vblk.bench.vhost.VhostRace, e.g.
#   bench/race.sh --seconds 4 --warmup 2 --repeat 3 [--devices null,raw] [--queues 1,2]
#                 [--workloads QD1,QD32,64k] [--aio io_uring,threads] [--caches page,direct]
# Needs: mvn -B -q -DskipTests package -pl bench,cli -am; qemu-storage-daemon (qemu-system-common).
set -euo pipefail
cd "$(dirname "$0")/.."
for f in bench/target/benchmarks.jar cli/target/vblk.jar; do
    [ -r "$f" ] || { echo "race: $f missing: mvn -B -q -DskipTests package -pl bench,cli -am" >&2; exit 2; }
done
exec java --enable-native-access=ALL-UNNAMED -cp bench/target/benchmarks.jar io.vblk.bench.vhost.VhostRace \
    --vblk cli/target/vblk.jar "$@"
