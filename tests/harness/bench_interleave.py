#!/usr/bin/env python3
"""Times whole processes side by side, interleaved: every round runs each
command once, in an order rotated from round to round, so load from other
work falls on all of them alike (hyperfine runs one command's runs back to
back). Prints median, min, max and the spread of each, then the ratios asked
for, each with its goal and verdict.

    bench_interleave.py [--runs N] [--warmup N] [--ratio 'A/B<=1.3'] ... \\
        NAME 'shell command' NAME 'shell command' ...

A command's output is discarded; a command that fails stops the benchmark.
`--json FILE` also writes every sample (seconds) by name.
"""
import argparse
import json
import re
import statistics
import subprocess
import sys
import time


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--runs", type=int, default=15)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--ratio", action="append", default=[])
    p.add_argument("--json")
    p.add_argument("pairs", nargs="+")
    a = p.parse_args()
    if len(a.pairs) % 2:
        sys.exit("bench_interleave: NAME COMMAND pairs expected")
    names = a.pairs[0::2]
    commands = dict(zip(names, a.pairs[1::2]))

    def once(name):
        started = time.perf_counter()
        r = subprocess.run(commands[name], shell=True, stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE)
        elapsed = time.perf_counter() - started
        if r.returncode != 0:
            sys.exit(f"bench_interleave: {name} failed ({r.returncode}): "
                     f"{r.stderr.decode(errors='replace')[-500:]}")
        return elapsed

    for _ in range(a.warmup):
        for n in names:
            once(n)
    samples = {n: [] for n in names}
    for i in range(a.runs):
        k = i % len(names)
        for n in names[k:] + names[:k]:
            samples[n].append(once(n))

    width = max(len(n) for n in names) + 2
    print(f"{'ms (' + str(a.runs) + ' runs each, interleaved)':<{width + 8}}"
          f"{'median':>9}{'min':>9}{'max':>9}{'IQR':>9}")
    med = {}
    for n in names:
        s = sorted(samples[n])
        med[n] = statistics.median(s)
        q = statistics.quantiles(s, n=4) if len(s) >= 2 else [s[0]] * 3
        print(f"  {n:<{width + 6}}{med[n] * 1e3:>9.1f}{s[0] * 1e3:>9.1f}"
              f"{s[-1] * 1e3:>9.1f}{(q[2] - q[0]) * 1e3:>9.1f}")
    for spec in a.ratio:
        m = re.fullmatch(r"\s*([^/]+)/([^<>=]+?)\s*(?:(<=|<)\s*([0-9.]+))?\s*", spec)
        if not m or m.group(1).strip() not in med or m.group(2).strip() not in med:
            sys.exit(f"bench_interleave: bad --ratio {spec!r}")
        x, y, op = m.group(1).strip(), m.group(2).strip(), m.group(3)
        r = med[x] / med[y]
        fast = min(samples[x]) / min(samples[y])
        line = f"ratio {x} / {y} = {r:.2f} (medians; fastest of each {fast:.2f})"
        if op:
            goal = float(m.group(4))
            met = r <= goal if op == "<=" else r < goal
            line += f"; goal {op} {goal:g}: {'MET' if met else 'MISSED'}"
        print(line)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(samples, f)


if __name__ == "__main__":
    main()
