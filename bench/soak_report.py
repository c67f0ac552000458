#!/usr/bin/env python3
"""The table of a soak (bench/soak.sh, issue 21): one row per test that ran, with its runs, its failures, the
first failure's message and seed, and the command that reruns it alone; then one line per iteration that did
not end cleanly (timed out, crashed fork, build error). Reads run-NNN/<module>/TEST-*.xml and run-NNN/exit.
Exit status 1 when anything failed, 0 otherwise."""
import argparse
import glob
import os
import re
import sys
import xml.etree.ElementTree as ET

SEED_RE = re.compile(r'\bseed[ =:]+(-?(?:0x)?[0-9a-fA-F_]+)\b', re.I)


def seed_property(root, module, classname):
    """The system property the test reads its seed from (Long.getLong("...seed...")), if it has one."""
    path = os.path.join(root, module, 'src/test/java', classname.split('$')[0].replace('.', '/') + '.java')
    try:
        m = re.search(r'getLong\("([^"]*seed[^"]*)"', open(path, encoding='utf-8').read())
        return m.group(1) if m else None
    except OSError:
        return None


def one_line(s, limit=160):
    s = ' '.join((s or '').split())
    return s if len(s) <= limit else s[:limit - 3] + '...'


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('out')
    ap.add_argument('--root', required=True)
    ap.add_argument('--runs', type=int, required=True)
    ap.add_argument('--hogs', default='?')
    ap.add_argument('--one-core', default='0')
    ap.add_argument('--wall', default='?')
    a = ap.parse_args()

    tests = {}  # (module, class, name) -> dict
    bad_runs = []
    for run_dir in sorted(glob.glob(os.path.join(a.out, 'run-*'))):
        run = os.path.basename(run_dir)
        try:
            rc = int(open(os.path.join(run_dir, 'exit')).read().strip())
        except (OSError, ValueError):
            rc = -1
        failed_here = 0
        for rep in sorted(glob.glob(os.path.join(run_dir, '**', 'TEST-*.xml'), recursive=True)):
            module = os.path.relpath(os.path.dirname(rep), run_dir)
            try:
                suite = ET.parse(rep).getroot()
            except ET.ParseError as e:
                bad_runs.append((run, f'unreadable report {os.path.relpath(rep, run_dir)}: {e}'))
                continue
            for tc in suite.iter('testcase'):
                key = (module, tc.get('classname', '?'), tc.get('name', '?'))
                t = tests.setdefault(key, {'runs': 0, 'failures': 0, 'first': None, 'seed': None, 'failed_in': []})
                if tc.find('skipped') is not None:
                    continue
                t['runs'] += 1
                bad = tc.find('failure')
                if bad is None:
                    bad = tc.find('error')
                if bad is None:
                    continue
                t['failures'] += 1
                failed_here += 1
                t['failed_in'].append(run)
                if t['first'] is None:
                    msg = bad.get('message') or (bad.text or '').strip().split('\n')[0]
                    t['first'] = f"{run}: {bad.get('type', '').split('.')[-1]}: {msg}"
                    out = ' '.join((x.text or '') for x in tc.iter() if x.tag in ('system-out', 'system-err'))
                    m = SEED_RE.search(msg or '') or SEED_RE.search(bad.text or '') or SEED_RE.search(out)
                    t['seed'] = m.group(1) if m else None
        if rc == 124 or rc == 137:
            bad_runs.append((run, f'timed out (exit {rc}); see {run}/mvn.log'))
        elif rc != 0:
            bad_runs.append((run, f'maven exit {rc} with {failed_here} failed test(s); see {run}/mvn.log'))

    print(f"soak: {a.runs} run(s), {a.hogs} CPU hog(s){', one core' if a.one_core == '1' else ''}, "
          f"{a.wall} s wall; {len(tests)} tests")
    print()
    print('| test | runs | failures | first failure (seed) |')
    print('| --- | ---: | ---: | --- |')
    failing = []
    for key in sorted(tests, key=lambda k: (-tests[k]['failures'], k)):
        t = tests[key]
        module, cls, name = key
        first = one_line(t['first']) if t['first'] else ''
        if t['seed']:
            first += f" (seed {t['seed']})"
        print(f"| {cls.split('.')[-1]}.{name} | {t['runs']} | {t['failures']} | {first.replace('|', '/')} |")
        if t['failures']:
            failing.append(key)
    total = sum(t['failures'] for t in tests.values())
    print()
    print(f"{total} failure(s) in {len(failing)} test(s); {len(bad_runs)} iteration(s) not clean")
    for run, why in bad_runs:
        print(f"  {run}: {why}")
    for key in failing:
        module, cls, name = key
        t = tests[key]
        method = name.split('(')[0].split('[')[0]
        prop = seed_property(a.root, module, cls)
        seed = f" -D{prop}={t['seed']}" if prop and t['seed'] else ''
        print(f"rerun {cls.split('.')[-1]}.{name} (failed in {', '.join(t['failed_in'])}):")
        print(f"  mvn -B -o test -pl {module} -am -Dsurefire.failIfNoSpecifiedTests=false "
              f"-Dtest='{cls.split('.')[-1]}#{method}'{seed}")
    return 1 if total or bad_runs else 0


if __name__ == '__main__':
    sys.exit(main())
