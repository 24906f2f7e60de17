#!/usr/bin/env python3
"""Where a decode step's time goes inside CUDA graphs: per kernel, busy time and the idle gap before it.

usage: timeline_table.py NSYS_GPU_TRACE_CSV [LAST_STEPS]
Input: `nsys stats --report cuda_gpu_trace --format csv` of a run profiled with `--cuda-graph-trace=node` (each
graph node is its own record, with its real start and duration, unlike ncu, which serializes kernels). A step starts
at each embed_kernel. Prints, for the last LAST_STEPS steps (default 8), per kernel name: launches per step, busy
µs per step, and the µs per step the GPU spent with none of the step's kernels running just before it (launch
latency, dependency waits); then the step's wall time, busy time and idle time. Kernels that overlap (programmatic
dependent launch) count their overlap once in the busy time and leave no gap. Last, the chain: each kernel's start and
end relative to the end of the kernel before it.
"""
import csv
import io
import re
import sys
from collections import defaultdict


def short_name(name):
    name = name.strip()
    if name.endswith(")"):  # drop the parameter list: the balanced (...) at the end
        depth = 0
        for i in range(len(name) - 1, -1, -1):
            depth += {")": 1, "(": -1}.get(name[i], 0)
            if depth == 0:
                name = name[:i]
                break
    name = re.sub(r"^void ", "", name)
    return re.sub(r"moeinfer::(cuda::)?(<unnamed>::|\(anonymous namespace\)::)?", "", name)


def read_kernels(path):
    lines = open(path, errors="replace").read().splitlines()
    start = next((i for i, l in enumerate(lines) if "Start (ns)" in l and "Name" in l), None)
    if start is None:
        sys.exit("timeline_table: no nsys cuda_gpu_trace header in " + path)
    out = []
    for r in csv.DictReader(io.StringIO("\n".join(lines[start:]))):
        name = r.get("Name", "")
        if not name or name.startswith("[CUDA"):  # memcpy / memset records
            continue
        out.append((float(r["Start (ns)"].replace(",", "")), float(r["Duration (ns)"].replace(",", "")), short_name(name)))
    out.sort()
    return out


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    kernels = read_kernels(sys.argv[1])
    last = int(sys.argv[2]) if len(sys.argv) > 2 else 8
    steps, current = [], None
    for k in kernels:
        if k[2].startswith("embed_kernel") or k[2].startswith("embed_rows"):
            current = []
            steps.append(current)
        if current is not None:
            current.append(k)
    if len(steps) < 2:
        sys.exit("timeline_table: fewer than two steps (embed_kernel launches) in the trace")
    steps = steps[-last - 1:-1]  # the last step may be cut off by the end of the run
    per = defaultdict(lambda: [0, 0.0, 0.0])  # launches, busy ns, gap-before ns
    wall = busy = 0.0
    for step in steps:
        covered = step[0][0]  # end of the union of the kernels so far
        wall += max(s + d for s, d, _ in step) - step[0][0]
        for s, d, name in step:
            gap = max(0.0, s - covered)
            own = max(0.0, s + d - max(s, covered))  # busy time this kernel adds to the union
            per[name][0] += 1
            per[name][1] += own
            per[name][2] += gap
            busy += own
            covered = max(covered, s + d)
    n = len(steps)
    print(f"{'kernel':60s} {'per step':>8s} {'busy us':>9s} {'gap us':>8s}")
    for name, (cnt, b, g) in sorted(per.items(), key=lambda kv: -(kv[1][1] + kv[1][2])):
        print(f"{name[:60]:60s} {cnt / n:8.1f} {b / n / 1e3:9.1f} {g / n / 1e3:8.1f}")
    print(f"step wall {wall / n / 1e3:.1f} us = busy {busy / n / 1e3:.1f} + idle {(wall - busy) / n / 1e3:.1f} "
          f"(mean of {n} steps)")
    # The chain: each kernel (keyed by its name and the one before it, so a kernel used at two places of a layer is
    # two rows) relative to the end of the kernel before it in launch order: where it started (negative: resident
    # early, programmatic dependent launch), where it ended, and its own duration, in µs, means over every launch.
    chain = {}
    for step in steps:
        prev_end, prev_name = None, "-"
        for s, d, name in step:
            key = (name, prev_name)
            row = chain.setdefault(key, [0, 0.0, 0.0, 0.0])
            if prev_end is not None:
                row[0] += 1
                row[1] += s - prev_end
                row[2] += s + d - prev_end
                row[3] += d
            prev_end, prev_name = s + d, name
    print(f"\n{'kernel (after)':72s} {'count':>6s} {'start':>7s} {'end':>7s} {'dur':>7s}  (µs from the previous end)")
    for (name, before), (cnt, st, en, du) in chain.items():
        if cnt:
            label = f"{name[:44]} (after {before[:18]})"
            print(f"{label:72s} {cnt / n:6.1f} {st / cnt / 1e3:7.2f} {en / cnt / 1e3:7.2f} {du / cnt / 1e3:7.2f}")


if __name__ == "__main__":
    main()
