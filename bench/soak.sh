#!/usr/bin/env bash
# Soak (issue 21): runs every test tagged @Tag("concurrency") N times while the machine is starved, and
# reports each test's failures. A race that a quiet machine hides shows up here as a failure with its message
# (and seed) and the command that reruns that test alone.
#
#   bench/soak.sh [--short] [--runs N] [--hogs K] [--one-core] [--tests PATTERN] [--forks N] [--divisor D]
#                  [--timeout SECONDS] [--for MINUTES] [--out DIR]
#
#   --short         CI's short soak: 3 runs under one hog of the seed and historic-bug scenarios and the core
#                   event-loop, drain and job-cancel tests, never past 5 minutes (later options override it)
#   --runs N        iterations (default 50)
#   --hogs K        busy-loop CPU hogs, same nice level as the tests (default: one per core, `nproc`)
#   --one-core      pins the hogs and the whole Maven run (tests included) to CPU 0 with taskset
#   --tests PATTERN surefire -Dtest pattern, ANDed with the tag (default: every class that names the tag, so
#                   a module with none forks no test JVM)
#   --forks N       test JVMs per module at once (surefire forkCount, default 2): a class that waits out a
#                   watchdog's deadline overlaps one that works, and the classes starve each other as well
#   --divisor D     storm tests run 1/D of their inner loop per run (vblk.soak.divisor, default 10; 1 = full)
#   --timeout S     per-iteration bound; a hung iteration is killed and counted as a failure (default 1200)
#   --for MINUTES   starts no iteration that the last one's duration says would end after MINUTES (default: none)
#   --out DIR       where each iteration's surefire XML reports and Maven log go (default target/soak/DATE)
#
# It builds once (online, no install), then each iteration is `mvn -B -o test -Dgroups=concurrency` over the
# reactor with failures ignored (so every module runs every time); the table is made by bench/soak_report.py.
# Interrupted (Ctrl-C, TERM) or cut short by --for, it kills the running iteration and reports the completed ones.
# Exit status: 0 when every run of every test passed, 1 otherwise, 2 on bad usage or a failed build.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

runs=50 hogs=$(nproc) one_core=0 tests='' iter_timeout=1200 out='' for_min=0 forks=2 divisor=10
while [ $# -gt 0 ]; do
  case "$1" in
    --short) runs=3 hogs=1 for_min=5
             tests='Seed*Test,Bug*Test,JobCancelTest,AioWaitTest,NotifyTest,DrainTest,IOThreadStopTest,BottomHalfTest'
             shift ;;
    --runs) runs=$2; shift 2 ;;
    --hogs) hogs=$2; shift 2 ;;
    --one-core) one_core=1; shift ;;
    --tests) tests=$2; shift 2 ;;
    --forks) forks=$2; shift 2 ;;
    --divisor) divisor=$2; shift 2 ;;
    --timeout) iter_timeout=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --for) for_min=$2; shift 2 ;;
    -h|--help) sed -n '2,26p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "vblk soak: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
[[ $runs =~ ^[0-9]+$ && $runs -ge 1 && $hogs =~ ^[0-9]+$ && $iter_timeout =~ ^[0-9]+$ && $for_min =~ ^[0-9]+$
   && $forks =~ ^[0-9]+$ && $forks -ge 1 && $divisor =~ ^[0-9]+$ && $divisor -ge 1 ]] \
  || { echo "vblk soak: --runs, --forks and --divisor >= 1, --hogs >= 0 and --timeout must be integers" >&2; exit 2; }
[ -n "$out" ] || out="$here/target/soak/$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$out"
out=$(cd "$out" && pwd)

pin=()
if [ $one_core -eq 1 ]; then
  command -v taskset >/dev/null || { echo "vblk soak: --one-core needs taskset (util-linux)" >&2; exit 2; }
  pin=(taskset -c 0)
fi

mvn_=(mvn -B -o -Dstyle.color=never)
if [ -z "$tests" ]; then
  # Every class that names the tag: surefire then forks no JVM for a module without one.
  tests=$({ grep -rlE --include='*Test.java' '@Tag\((value *= *)?"concurrency"\)' "$here"/*/src/test \
              "$here"/*/*/src/test 2>/dev/null || true; } | sed 's|.*/||; s|\.java$||' | sort -u | paste -sd, -)
  [ -n "$tests" ] || { echo "vblk soak: no test class is tagged @Tag(\"concurrency\")" >&2; exit 2; }
fi
test_props=(-Dgroups=concurrency -Dsurefire.failIfNoSpecifiedTests=false -Dmaven.test.failure.ignore=true
            -Dsurefire.timeout="$iter_timeout" -DforkCount="$forks" -Dvblk.soak.divisor="$divisor" "-Dtest=$tests")

hog_pids=()
# The hogs and a running iteration never outlive the soak, whatever ends it.
cleanup() {
  local p
  for p in "${hog_pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${hog_pids[@]}"; do wait "$p" 2>/dev/null || true; done
  hog_pids=()
  if [ -n "${mvn_pid:-}" ]; then kill -- "-$mvn_pid" 2>/dev/null || kill "$mvn_pid" 2>/dev/null || true; fi
}
trap cleanup EXIT
stop=0
# A signal ends the soak after killing the running iteration; the completed iterations are still reported.
trap 'stop=1; if [ -n "${mvn_pid:-}" ]; then kill -- "-$mvn_pid" 2>/dev/null || true; fi' INT TERM

cd "$here"
# The build is online and runs surefire with a tag no test carries: every module's test JVM starts and runs
# nothing, so a fresh machine has every plugin and test provider before the offline iterations (test-compile
# alone, or a -Dtest pattern matching no class, leaves surefire's JUnit provider unresolved).
echo "vblk soak: building once (test-compile, and surefire's providers) ..." >&2
if ! mvn -B -Dstyle.color=never -q test -Dgroups=vblk-soak-none >"$out/build.log" 2>&1; then
  sed 's/\x1b\[[0-9;]*m//g' "$out/build.log" >&2
  echo "vblk soak: the build failed (log: $out/build.log)" >&2
  exit 2
fi

for ((i = 0; i < hogs; i++)); do
  "${pin[@]}" sh -c 'while :; do :; done' &
  hog_pids+=($!)
done
echo "vblk soak: $runs run(s), $hogs CPU hog(s)$([ $one_core -eq 1 ] && echo ', all on CPU 0'), $(nproc) core(s)," \
     "$forks test JVM(s) per module, storm loops /$divisor; reports in $out" >&2

start=$(date +%s)
done_runs=0 last=0
for ((r = 1; r <= runs; r++)); do
  [ "$stop" -eq 0 ] || break
  if [ "$for_min" -gt 0 ] && [ $(( $(date +%s) + last )) -gt $(( start + for_min * 60 )) ]; then
    echo "vblk soak: --for $for_min: no time for run $r (the last took ${last}s)" >&2
    break
  fi
  dir=$(printf '%s/run-%03d' "$out" "$r")
  mkdir -p "$dir"
  find "$here" -path '*/target/surefire-reports' -type d -prune -exec rm -rf {} + 2>/dev/null || true
  t0=$(date +%s)
  # setsid: the iteration (Maven and its forked test JVMs) is one process group the timeout and the trap can kill.
  set +e
  setsid timeout -k 30 "$iter_timeout" "${pin[@]}" "${mvn_[@]}" test "${test_props[@]}" >"$dir/mvn.log" 2>&1 &
  mvn_pid=$!
  wait "$mvn_pid"
  rc=$?
  # a trapped signal interrupts wait: wait again for the killed group's leader
  [ "$stop" -eq 0 ] || { wait "$mvn_pid" 2>/dev/null; rm -rf "$dir"; mvn_pid=; set -e; echo "vblk soak: interrupted in run $r" >&2; break; }
  mvn_pid=
  set -e
  echo "$rc" >"$dir/exit"
  # Each module's reports, kept under the module's path so the rerun command can name the module.
  while IFS= read -r rep; do
    mod=${rep#"$here"/}; mod=${mod%/target/surefire-reports}
    mkdir -p "$dir/$mod"
    cp "$rep"/TEST-*.xml "$dir/$mod/" 2>/dev/null || true
  done < <(find "$here" -path "$out" -prune -o -path '*/target/surefire-reports' -type d -print)
  last=$(( $(date +%s) - t0 )) done_runs=$r
  printf 'vblk soak: run %d/%d: %ds, maven exit %d%s\n' "$r" "$runs" $(( $(date +%s) - t0 )) "$rc" \
    "$([ "$rc" -eq 124 ] || [ "$rc" -eq 137 ] && echo ' (timed out)')" >&2
done
wall=$(( $(date +%s) - start ))
cleanup

echo "vblk soak: $done_runs of $runs run(s) in ${wall}s wall" >&2
[ "$done_runs" -gt 0 ] || { echo "vblk soak: no run completed" >&2; exit 1; }
python3 "$here/bench/soak_report.py" "$out" --root "$here" --runs "$done_runs" --hogs "$hogs" --one-core "$one_core" --divisor "$divisor" \
  --wall "$wall" | tee "$out/table.md"
exit "${PIPESTATUS[0]}"
