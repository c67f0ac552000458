#!/usr/bin/env bash
# RBD race on one one-node cluster (contrib/ceph-one-node.sh), same run, interleaved:
#   fio --ioengine=rbd           the floor: librbd with nothing in between
#   vblk bench --backend rbd:    in-process: simulated guest -> virtio-blk -> rbd driver
#   vblk serve  + vhost-user     vblk's rbd driver behind vhost-user-blk
#   qsd rbd     + vhost-user     qemu-storage-daemon's driver=rbd behind vhost-user-blk
#   vblk-nbd / qsd-nbd           vblk daemon's / qsd's driver=rbd behind an NBD export, fio --ioengine=nbd as client
# The front-end of both vhost-user rows is vblk bench's simulated Linux guest. Every daemon row runs without
# librbd's cache: qsd's and the NBD rows with cache.direct=on, vblk's filename rows with rbd_cache=false (the same
# setting; librbd's cache cost vblk serve 8 % of its reads in an A/B here).
# (fio's nbd engine prints "fio: connected to NBD server" on stdout before its JSON.)
# Each line also gives CPU by process group in the measurement window (bench/cpu-window.py, % of one core):
# the OSD, the race's own processes ("client": fio, vblk, qsd and the simulated guest), and the machine's idle.
# usage: [RAMP=S] bench/rbd-race.sh [REPEATS] [SECONDS] [WHO...]   (prints one line per measurement, then the medians)
#   WHO: fio inproc vblk qsd vblk-nbd qsd-nbd (default the first four), and inproc-callback / inproc-eventfd for the in-process driver
#   with its completion path forced (-Dvblk.rbd.completion=...)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
reps=${1:-3}
secs=${2:-8}
ramp=${RAMP:-2}   # seconds before each measurement; a JVM row needs ~10 s for its JIT to settle on 2 cores
shift $(( $# > 2 ? 2 : $# ))
who_list=("$@")
[ ${#who_list[@]} -gt 0 ] || who_list=(fio inproc vblk qsd)
jar=$here/cli/target/vblk.jar
java=(java --enable-native-access=ALL-UNNAMED -jar "$jar")
work=$(mktemp -d /tmp/vblk-rbd-race.XXXXXX)
cl=$work/cluster
"$here/contrib/ceph-one-node.sh" start "$cl" --watch $$ >/dev/null
conf=$cl/ceph.conf
export CEPH_CONF=$conf
sampler=
cleanup() {
  [ -z "$sampler" ] || kill "$sampler" 2>/dev/null || true
  "$here/contrib/ceph-one-node.sh" stop "$cl" || true
  [ -n "${KEEP_WORK:-}" ] || rm -rf "$work"
}
trap cleanup EXIT
rbd create --size 256M rbd/race
rbd bench --io-type write --io-pattern seq --io-size 4M --io-total 256M rbd/race >/dev/null  # every object exists
results=$work/results.txt

iops_vblk() { sed -n 's/^  IOPS *\([0-9,]*\).*/\1/p' | tr -d ,; }

run_fio() { # pattern
  fio --name=floor --ioengine=rbd --clientname=admin --pool=rbd --rbdname=race --rw="$1" --bs=4k --iodepth=32 \
      --direct=1 --time_based --runtime="$secs" --ramp_time="$ramp" --output-format=json 2>/dev/null \
    | python3 -c 'import json,sys; j=json.load(sys.stdin)["jobs"][0]; print(int(j["read"]["iops"]+j["write"]["iops"]))'
}

run_inproc() { # pattern [completion mode]
  local opts=()
  [ -n "${2:-}" ] && opts=("-Dvblk.rbd.completion=$2")
  java --enable-native-access=ALL-UNNAMED "${opts[@]}" -jar "$jar" bench --backend "rbd:rbd/race:conf=$conf:rbd_cache=false" --rw "$1" --qd 32 --runtime "${secs}s" --ramp "${ramp}s" \
    2>/dev/null | iops_vblk
}

wait_sock() { local s=$1 i; for i in $(seq 1 600); do [ -S "$s" ] && return 0; sleep 0.1; done; return 1; }

run_vblk_serve() {
  local s=$work/vblk.sock
  "${java[@]}" serve --socket "$s" --image "rbd:rbd/race:conf=$conf:rbd_cache=false" >"$work/serve.log" 2>&1 &
  local pid=$!
  wait_sock "$s"
  "${java[@]}" bench --vhost-user "$s" --rw "$1" --qd 32 --runtime "${secs}s" --ramp "${ramp}s" 2>/dev/null | iops_vblk
  kill -TERM $pid; wait $pid 2>/dev/null || true
}

run_qsd() {
  local s=$work/qsd.sock
  qemu-storage-daemon --object iothread,id=io0 \
    --blockdev "driver=rbd,node-name=disk0,pool=rbd,image=race,conf=$conf,cache.direct=on" \
    --export "type=vhost-user-blk,id=exp0,node-name=disk0,addr.type=unix,addr.path=$s,writable=on,iothread=io0" \
    >"$work/qsd.log" 2>&1 &
  local pid=$!
  wait_sock "$s"
  "${java[@]}" bench --vhost-user "$s" --rw "$1" --qd 32 --runtime "${secs}s" --ramp "${ramp}s" 2>/dev/null | iops_vblk
  kill -TERM $pid; wait $pid 2>/dev/null || true
}

# Both NBD exports run in the main loop: qsd 7.2 aborts when a client of an NBD export with iothread= disconnects
# (nbd_blockdev_client_closed: "Assertion `qemu_in_main_thread() && nbd_server' failed").
run_nbd() { # pattern daemon-command...
  local rw=$1 s=$work/nbd.sock; shift
  "$@" --blockdev "driver=rbd,node-name=disk0,pool=rbd,image=race,conf=$conf,cache.direct=on" \
    --nbd-server "addr.type=unix,addr.path=$s" \
    --export "type=nbd,id=exp0,node-name=disk0,name=disk,writable=on" >"$work/nbd.log" 2>&1 &
  local pid=$!
  wait_sock "$s"
  fio --name=nbd --ioengine=nbd --uri="nbd+unix:///disk?socket=$s" --rw="$rw" --bs=4k --iodepth=32 \
      --time_based --runtime="$secs" --ramp_time="$ramp" --output-format=json 2>/dev/null \
    | python3 -c 'import json,sys; t=sys.stdin.read(); j=json.JSONDecoder().raw_decode(t[t.index("{"):])[0]["jobs"][0]; print(int(j["read"]["iops"]+j["write"]["iops"]))'
  kill -TERM $pid; wait $pid 2>/dev/null || true
  rm -f "$s"
}

for r in $(seq 1 "$reps"); do
  for rw in randread randwrite; do
    order=("${who_list[@]}")
    if (( r % 2 == 0 )); then # every other round the other way round
      order=(); for (( i=${#who_list[@]}-1; i>=0; i-- )); do order+=("${who_list[i]}"); done
    fi
    for who in "${order[@]}"; do
      # the profile: CPU by process group from 3 s after the ramp's start (two JVM starts or a socket wait are
      # behind it, then the ramp) until 1 s before the measurement's end
      python3 "$here/bench/cpu-window.py" $(( ramp + 3 )) $(( secs > 4 ? secs - 4 : 1 )) >"$work/cpu.txt" 2>/dev/null &
      sampler=$!
      case $who in
        fio) v=$(run_fio "$rw") ;;
        inproc) v=$(run_inproc "$rw") ;;
        inproc-callback) v=$(run_inproc "$rw" callback) ;;
        inproc-eventfd) v=$(run_inproc "$rw" eventfd) ;;
        vblk) v=$(run_vblk_serve "$rw") ;;
        qsd) v=$(run_qsd "$rw") ;;
        vblk-nbd) v=$(run_nbd "$rw" "${java[@]}" daemon) ;;
        qsd-nbd) v=$(run_nbd "$rw" qemu-storage-daemon) ;;
      esac
      wait "$sampler" 2>/dev/null || true
      echo "rep=$r rw=$rw who=$who iops=$v $(cat "$work/cpu.txt" 2>/dev/null)" | tee -a "$results"
    done
  done
done
python3 - "$results" <<'PY'
import sys, statistics, collections
d = collections.defaultdict(list)
cpu = collections.defaultdict(list)
for line in open(sys.argv[1]):
    f = dict(kv.split("=") for kv in line.split())
    d[(f["rw"], f["who"])].append(int(f["iops"] or 0))
    for k in ("osd", "client", "idle"):
        if k in f:
            cpu[(f["rw"], f["who"], k)].append(float(f[k]))
whos = []
for (rw, who) in d:
    if who not in whos:
        whos.append(who)
base = whos[0]
for rw in ("randread", "randwrite"):
    b = statistics.median(d[(rw, base)])
    for who in whos:
        v = d[(rw, who)]; m = statistics.median(v)
        prof = "  ".join(f"{k} {statistics.median(cpu[(rw, who, k)]):4.0f}%" for k in ("osd", "client", "idle")
                         if cpu[(rw, who, k)])
        print(f"{rw:9} {who:16} median {m:8.0f} IOPS  min {min(v):6} max {max(v):6}  x {base} {m/b:5.2f}  {prof}")
PY
