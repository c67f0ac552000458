#!/usr/bin/env bash
# A throw-away one-node Ceph cluster that lives entirely inside one directory:
# one monitor on 127.0.0.1 (a free port), one OSD (BlueStore on a sparse file
# in DIR, or memstore), pool "rbd" of size 1 initialised for RBD. No systemd,
# no containers, no network beyond loopback. For vblk's RBD tests and for
# trying `rbd:` disks.
#
#   contrib/ceph-one-node.sh start DIR [--watch PID] [--store bluestore|memstore]
#                                                      prints DIR/ceph.conf when the pool is usable
#   contrib/ceph-one-node.sh restart-osd DIR           SIGKILLs the OSD (if it runs) and starts it again on
#                                                      its data; returns when every PG of pool rbd is active
#   contrib/ceph-one-node.sh stop DIR                  kills the daemons by pid and deletes DIR
#
# --watch PID: a watcher stops the cluster (and deletes DIR) when process PID
# exits, so a test JVM that dies never leaves daemons behind (a restarted OSD
# included: the watcher kills by the pid files at the time it runs).
#
# --store bluestore (the default): the OSD keeps its objects in DIR/osd/0/block,
# a sparse file of 4 GiB (BLUESTORE_BLOCK_SIZE), with a fixed 64 MiB cache and
# osd_memory_target at its minimum, so it survives a SIGKILL and restart-osd.
# --store memstore: objects in the OSD's memory; a killed OSD loses the pool, so
# restart-osd refuses it. (Start-up times and memory: README, "Disks on Ceph".)
#
# Needs Debian's ceph-mon, ceph-osd and ceph-common (apt-get install
# --no-install-recommends ceph-mon ceph-osd ceph-common). Every wait is bounded
# (CEPH_ONE_NODE_TIMEOUT seconds, default 180): the commands block until the
# cluster answers and `timeout` ends them if it never does.
set -euo pipefail

usage() {
  echo "usage: $0 start DIR [--watch PID] [--store bluestore|memstore] | restart-osd DIR | stop DIR" >&2
  exit 2
}

[ $# -ge 2 ] || usage
cmd=$1
dir=$2
shift 2
limit=${CEPH_ONE_NODE_TIMEOUT:-180}
self=$(cd "$(dirname "$0")" && pwd)/$(basename "$0")   # the watcher runs it from anywhere

log() { echo "ceph-one-node: $*" >&2; }

alive() { # running, not a zombie (an init that does not reap leaves those behind)
  [ -r "/proc/$1/stat" ] && [ "$(cut -d' ' -f3 "/proc/$1/stat" 2>/dev/null)" != Z ]
}

stop_cluster() {
  local d=$1 pidfile pid pids=() i
  for pidfile in "$d"/run/mon.*.pid "$d"/run/osd.*.pid; do
    [ -e "$pidfile" ] || continue
    pid=$(cat "$pidfile" 2>/dev/null || true)
    [ -n "$pid" ] || continue
    kill -KILL "$pid" 2>/dev/null || true
    pids+=("$pid")
  done
  # SIGKILL is asynchronous: a dying daemon may still create files, so wait (bounded) before deleting
  for pid in "${pids[@]}"; do
    for i in $(seq 1 100); do alive "$pid" || break; sleep 0.1; done
  done
  # the watcher of a `start --watch` ends here too (it is what may be calling us)
  if [ -e "$d/run/watcher.pid" ]; then
    pid=$(cat "$d/run/watcher.pid")
    # its own session and process group (setsid): the group takes its `tail` along
    [ "$pid" != "$$" ] && [ "$pid" != "${BASHPID:-$$}" ] && kill -TERM -- "-$pid" 2>/dev/null || true
  fi
  rm -rf "$d" 2>/dev/null || rm -rf "$d"
}

free_port() {
  # a port nobody listens on: ask the kernel for one (bind to port 0), then release it
  python3 - <<'EOF'
import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()
EOF
}

# The [osd] section's object store: BlueStore on a sparse file, DIR/osd/0/block
# (bluestore_block_path left empty: BlueStore then creates "block" in the OSD's
# data directory; pointing the path there makes a symlink to itself), sized by
# BLUESTORE_BLOCK_SIZE, with a fixed cache, kept small for a 2-core VM.
store_conf() {
  case "$1" in
    bluestore)
      cat <<EOF
osd objectstore = bluestore
bluestore block create = true
bluestore block size = ${BLUESTORE_BLOCK_SIZE:-4294967296}
bluestore block preallocate file = false
bluestore fsck on mkfs = false
bluestore cache autotune = false
bluestore cache size = 67108864
EOF
      ;;
    memstore)
      cat <<EOF
osd objectstore = memstore
memstore device bytes = 2147483648
EOF
      ;;
    *)
      log "unknown store '$1' (bluestore or memstore)"
      exit 2
      ;;
  esac
}

# Starts osd.0 on its data directory (daemonizes; writes run/osd.0.pid).
start_osd() {
  ceph-osd -c "$1/ceph.conf" -i 0 2>>"$1/log/setup.log"
}

# Returns once every PG of pool rbd is active: `rados ls` lists each PG in turn,
# and an operation on an inactive PG waits until it peers.
await_pool() {
  timeout "$limit" rados -c "$1/ceph.conf" -p rbd ls >/dev/null
}

restart_osd() {
  local d pid i
  d=$(cd "$1" && pwd)
  [ -e "$d/ceph.conf" ] || { log "$d holds no cluster"; exit 1; }
  if grep -q '^osd objectstore = memstore' "$d/ceph.conf"; then
    log "the OSD of $d runs on memstore: a restarted one would have lost the pool (start with --store bluestore)"
    exit 1
  fi
  pid=$(cat "$d/run/osd.0.pid" 2>/dev/null || true)
  if [ -n "$pid" ] && alive "$pid"; then
    kill -KILL "$pid" 2>/dev/null || true
  fi
  # the dying OSD holds its block file's lock until it is gone
  if [ -n "$pid" ]; then
    for i in $(seq 1 300); do alive "$pid" || break; sleep 0.1; done
    if alive "$pid"; then log "OSD pid $pid did not die"; exit 1; fi
  fi
  start_osd "$d" || return 1
  await_pool "$d"
}

start_cluster() {
  local d=$1 watch=${2:-} store=${3:-bluestore}
  case "$store" in bluestore|memstore) ;; *) log "unknown store '$store' (bluestore or memstore)"; exit 2 ;; esac
  for tool in ceph-mon ceph-osd ceph monmaptool ceph-authtool rbd rados python3 timeout; do
    command -v "$tool" >/dev/null 2>&1 || {
      log "missing $tool: apt-get install --no-install-recommends ceph-mon ceph-osd ceph-common"
      exit 3
    }
  done
  mkdir -p "$d"
  d=$(cd "$d" && pwd)
  if [ -e "$d/ceph.conf" ]; then
    log "$d already holds a cluster (stop it first)"
    exit 1
  fi
  mkdir -p "$d/run" "$d/log" "$d/mon/a" "$d/osd/0"
  local fsid port osd_uuid
  fsid=$(python3 -c 'import uuid; print(uuid.uuid4())')
  port=$(free_port)
  osd_uuid=$(python3 -c 'import uuid; print(uuid.uuid4())')
  cat >"$d/ceph.conf" <<EOF
[global]
fsid = $fsid
mon host = v2:127.0.0.1:$port
public network = 127.0.0.0/8
ms bind ipv6 = false
ms bind msgr1 = false
auth cluster required = none
auth service required = none
auth client required = none
keyring = $d/keyring
run dir = $d/run
admin socket = $d/run/\$name.asok
pid file = $d/run/\$name.pid
log file = $d/log/\$name.log
crash dir = $d/crash
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd crush chooseleaf type = 0
mon allow pool size one = true
mon allow pool delete = true
mon warn on pool no redundancy = false
mon data avail warn = 1
mon data avail crit = 0
client mount timeout = 60
rados mon op timeout = 120
rados osd op timeout = 300

[mon]
mon data = $d/mon/\$id
mon cluster log file = $d/log/cluster.log

[osd]
osd data = $d/osd/\$id
osd memory target = 939524096
osd op num shards = 1
osd op num threads per shard = 2
$(store_conf "$store" "$d")
EOF
  ceph-authtool --create-keyring "$d/keyring" --gen-key -n mon. --cap mon 'allow *' >/dev/null
  ceph-authtool "$d/keyring" --gen-key -n client.admin --cap mon 'allow *' --cap osd 'allow *' \
    --cap mgr 'allow *' >/dev/null
  monmaptool --create --fsid "$fsid" --addv a "[v2:127.0.0.1:$port]" "$d/monmap" >/dev/null
  ceph-mon -c "$d/ceph.conf" --mkfs -i a --monmap "$d/monmap" --keyring "$d/keyring" 2>>"$d/log/setup.log" || return 1
  ceph-mon -c "$d/ceph.conf" -i a 2>>"$d/log/setup.log" || return 1   # daemonizes; writes run/mon.a.pid

  if [ -n "$watch" ]; then
    # the watcher: when $watch exits, stop the cluster. setsid: it outlives this script.
    setsid bash -c 'tail --pid="$1" -f /dev/null; exec "$2" stop "$3"' watcher "$watch" "$self" "$d" \
      </dev/null >/dev/null 2>&1 &
    echo $! >"$d/run/watcher.pid"
  fi

  local c=(timeout "$limit" ceph -c "$d/ceph.conf")
  # (called in an `if`, set -e is off here: each step that can fail says so)
  "${c[@]}" osd new "$osd_uuid" 0 >/dev/null || return 1
  ceph-osd -c "$d/ceph.conf" -i 0 --mkfs --osd-uuid "$osd_uuid" 2>>"$d/log/setup.log" || return 1
  start_osd "$d" || return 1
  "${c[@]}" osd pool create rbd 8 8 >/dev/null 2>&1 || return 1
  # rbd pool init writes the pool's first objects: it returns once the OSD is up and the PGs are active
  timeout "$limit" rbd -c "$d/ceph.conf" pool init rbd
  echo "$d/ceph.conf"
}

case "$cmd" in
  start)
    watch=
    store=bluestore
    while [ $# -gt 0 ]; do
      case "$1" in
        --watch) [ $# -ge 2 ] || usage; watch=$2; shift 2 ;;
        --store) [ $# -ge 2 ] || usage; store=$2; shift 2 ;;
        *) usage ;;
      esac
    done
    if ! start_cluster "$dir" "$watch" "$store"; then
      log "start failed; logs in $dir/log (kept until stop)"
      for f in "$dir"/log/*.log; do [ -e "$f" ] && { echo "== $f" >&2; tail -20 "$f" >&2; }; done
      exit 1
    fi
    ;;
  restart-osd)
    if ! restart_osd "$dir"; then
      log "restart-osd failed; logs in $dir/log"
      for f in "$dir"/log/osd.*.log; do [ -e "$f" ] && { echo "== $f" >&2; tail -20 "$f" >&2; }; done
      exit 1
    fi
    ;;
  stop)
    stop_cluster "$dir"
    ;;
  *)
    usage
    ;;
esac
