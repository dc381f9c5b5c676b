"""Interleaved wall-clock timing of compared commands (standard library only).

Absolute times on a shared 2-core machine drift from one minute to the next, so the
commands being compared run in rounds: every round runs each variant once, and the order
rotates from round to round, so drift touches all of them alike. Each variant may have an
untimed setup (bring the tree to the state the measurement starts from).

Used in-process on the host (`interleave()` with Python callables) and, as a script, inside
the test containers (`python3 timer.py SPEC.json`), where it reads a JSON spec whose setups
and runs are argument lists or HTTP GETs, and prints the timings as JSON. It runs under
Python 3.6 and later.
"""
import json
import os
import subprocess
import sys
import time

try:
    from urllib.request import urlopen
except ImportError:  # pragma: no cover - Python 2 is not a target
    urlopen = None


def interleave(variants, rounds):
    """Times each variant `rounds` times, rotating the order every round.

    `variants` is a list of dicts: name, run (callable), setup (optional callable).
    Returns {name: [seconds, ...]}. A run that raises stops the whole measurement: a number
    for a command that failed would be a lie. A run may also return {name: seconds} of
    times it measured itself (e.g. a program's in-process time): those are recorded as well,
    and one under the variant's own name replaces the wall-clock time.
    """
    times = dict((v["name"], []) for v in variants)
    count = len(variants)
    for index in range(rounds):
        shift = index % count
        for variant in variants[shift:] + variants[:shift]:
            if variant.get("setup"):
                variant["setup"]()
            start = time.perf_counter()
            reported = variant["run"]()
            elapsed = time.perf_counter() - start
            reported = dict(reported) if isinstance(reported, dict) else {}
            reported.setdefault(variant["name"], elapsed)
            for name, seconds in reported.items():
                times.setdefault(name, []).append(seconds)
    return times


def run_argv(argv, env=None, cwd=None, ok_codes=(0,)):
    """Runs an argument list, output discarded; raises with its output when it fails."""
    proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, cwd=cwd, check=False)
    if proc.returncode not in ok_codes:
        raise RuntimeError("%s exited %d:\n%s" % (argv, proc.returncode,
                                                  proc.stdout.decode("utf-8", "replace")[-3000:]))
    return proc


def http_get(url, expect):
    """One GET; the body must contain `expect` (a failed CGI request must not be timed)."""
    with urlopen(url, timeout=60) as response:
        body = response.read().decode("utf-8", "replace")
    if expect and expect not in body:
        raise RuntimeError("%s answered without %r: %s" % (url, expect, body[:2000]))


def _callable(step, base_env):
    if "http" in step:
        return lambda: http_get(step["http"], step.get("expect", ""))
    env = dict(base_env)
    for key in step.get("unset_env", []):
        env.pop(key, None)
    env.update(step.get("env", {}))
    argv = step["argv"]
    ok_codes = tuple(step.get("ok_codes", [0]))
    return lambda: run_argv(argv, env=env, cwd=step.get("cwd"), ok_codes=ok_codes)


def _sequence(steps, base_env):
    calls = [_callable(step, base_env) for step in steps]

    def run_all():
        for call in calls:
            call()
    return run_all


def run_spec(spec):
    """spec: {rounds, variants: [{name, run: [step...], setup: [step...]}]} where a step is
    {argv, env?, unset_env?, cwd?, ok_codes?} or {http, expect?}."""
    base_env = dict(os.environ)
    variants = []
    for variant in spec["variants"]:
        variants.append({
            "name": variant["name"],
            "setup": _sequence(variant.get("setup", []), base_env) if variant.get("setup") else None,
            "run": _sequence(variant["run"], base_env),
        })
    for _round in range(spec.get("warmup", 0)):
        for variant in variants:
            if variant["setup"]:
                variant["setup"]()
            variant["run"]()
    return interleave(variants, spec["rounds"])


def main(argv):
    with open(argv[1]) as handle:
        spec = json.load(handle)
    json.dump(run_spec(spec), sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
