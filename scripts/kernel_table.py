#!/usr/bin/env python3
"""Per-kernel time of the last N forward steps from an `ncu --csv --page raw --metrics gpu__time_duration.sum` log.

usage: kernel_table.py NCU_CSV [LAST_STEPS]
A step starts at each embed_kernel launch. Prints, per kernel (name with template arguments), launches and
microseconds per step, its share, and the step total.
"""
import csv
import io
import re
import sys
from collections import defaultdict


def short_name(name):
    name = re.sub(r"\(.*\)$", "", name)               # drop the parameter list
    return re.sub(r"moeinfer::(cuda::)?(<unnamed>::|\(anonymous namespace\)::)?", "", name)


def main():
    path = sys.argv[1]
    last = int(sys.argv[2]) if len(sys.argv) > 2 else 4
    lines = open(path, errors="replace").read().splitlines()
    start = next((i for i, l in enumerate(lines) if l.startswith('"ID"')), None)
    if start is None:
        sys.exit("kernel_table: no ncu CSV header in " + path)
    rows = list(csv.DictReader(io.StringIO("\n".join(lines[start:]))))
    rows = [r for r in rows if r.get("ID", "").isdigit()]  # skip the units row
    steps, current = [], None
    for r in rows:
        name = short_name(r["Kernel Name"])
        if name.startswith("embed_kernel"):
            current = []
            steps.append(current)
        if current is not None:
            current.append((name, float(r["gpu__time_duration.sum"].replace(",", ""))))
    if not steps:
        sys.exit("kernel_table: no embed_kernel launch found")
    steps = steps[-last:]
    per = defaultdict(lambda: [0, 0.0])
    for step in steps:
        for name, ns in step:
            per[name][0] += 1
            per[name][1] += ns
    total = sum(v[1] for v in per.values()) / len(steps)
    print(f"{len(steps)} steps, {total / 1000:.1f} us of kernel time per step")
    print(f"{'us/step':>9} {'share':>6} {'calls':>6} {'us/call':>8}  kernel")
    for name, (calls, ns) in sorted(per.items(), key=lambda kv: -kv[1][1]):
        us = ns / len(steps) / 1000
        print(f"{us:9.1f} {100 * us * 1000 / total:5.1f}% {calls / len(steps):6.0f} {ns / calls / 1000:8.2f}  {name[:110]}")


if __name__ == "__main__":
    main()
