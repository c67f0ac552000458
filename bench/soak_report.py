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


def print_by_class(tests):
    classes = {}
    for (module, cls, name), t in tests.items():
        c = classes.setdefault((module, cls), {'cases': 0, 'runs': 0, 'failures': 0, 'first': None})
        c['cases'] += 1
        c['runs'] += t['runs']
        c['failures'] += t['failures']
        if t['first'] and c['first'] is None:
            c['first'] = f"{name}: {one_line(t['first'])}" + (f" (seed {t['seed']})" if t['seed'] else '')
    print('| module | test class | test cases | runs (all cases) | failures | first failure (seed) |')
    print('| --- | --- | ---: | ---: | ---: | --- |')
    for (module, cls), c in sorted(classes.items()):
        print(f"| {module} | {cls.split('.')[-1]} | {c['cases']} | {c['runs']} | {c['failures']} | "
              f"{(c['first'] or '').replace('|', '/')} |")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('out')
    ap.add_argument('--root', required=True)
    ap.add_argument('--runs', type=int, required=True)
    ap.add_argument('--hogs', default='?')
    ap.add_argument('--one-core', default='0')
    ap.add_argument('--wall', default='?')
    ap.add_argument('--divisor', type=int, default=1, help='the soak\'s vblk.soak.divisor (the rerun commands repeat it)')
    ap.add_argument('--by-class', action='store_true', help='one row per test class (its test cases summed)')
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
          f"{a.wall} s wall; {len(tests)} tests"
          f"{f'; storm loops 1/{a.divisor} per run' if a.divisor > 1 else ''}")
    print()
    if not a.by_class:
        print('| test | runs | failures | first failure (seed) |')
        print('| --- | ---: | ---: | --- |')
    failing = [k for k in tests if tests[k]['failures']]
    if a.by_class:
        print_by_class(tests)
    for key in ([] if a.by_class else sorted(tests, key=lambda k: (-tests[k]['failures'], k))):
        t = tests[key]
        module, cls, name = key
        first = one_line(t['first']) if t['first'] else ''
        if t['seed']:
            first += f" (seed {t['seed']})"
        print(f"| {cls.split('.')[-1]}.{name} | {t['runs']} | {t['failures']} | {first.replace('|', '/')} |")
    failing.sort()
    total = sum(t['failures'] for t in tests.values())
    print()
    print(f"{total} failure(s) in {len(failing)} of {len(tests)} test(s); {len(bad_runs)} iteration(s) not clean")
    for run, why in bad_runs:
        print(f"  {run}: {why}")
    for key in failing:
        module, cls, name = key
        t = tests[key]
        method = name.split('(')[0].split('[')[0]
        prop = seed_property(a.root, module, cls)
        seed = f" -D{prop}={t['seed']}" if prop and t['seed'] else ''
        if a.divisor > 1:
            seed += f" -Dvblk.soak.divisor={a.divisor}"
        print(f"rerun {cls.split('.')[-1]}.{name} (failed in {', '.join(t['failed_in'])}):")
        print(f"  mvn -B -o test -pl {module} -am -Dsurefire.failIfNoSpecifiedTests=false "
              f"-Dtest='{cls.split('.')[-1]}#{method}'{seed}")
    return 1 if total or bad_runs else 0


if __name__ == '__main__':
    sys.exit(main())
