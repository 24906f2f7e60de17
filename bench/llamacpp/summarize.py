#!/usr/bin/python3
# Markdown table from side_by_side.sh output folders: llama.cpp vs moeinfer tokens/s per file, ratio, and generation as
# a fraction of read bandwidth. With several folders (comma-separated), each cell is the best pass of each engine
# (interference from other jobs on a shared machine only slows a pass down), and the pass-to-pass range is listed.
# Usage: summarize.py OUT_DIR[,OUT_DIR...] BANDWIDTH_GB_S FILE.gguf...   (files: for active bytes per token)
# A second table checks issue 6's generation bar pass by pass.
import json, os, subprocess, sys

dirs, bw = sys.argv[1].split(","), float(sys.argv[2])
here = os.path.dirname(os.path.abspath(__file__))
active = {}
for line in subprocess.run(["/usr/bin/python3", os.path.join(here, "active_bytes.py"), *sys.argv[3:]],
                           capture_output=True, text=True, check=True).stdout.splitlines():
    name, rest = line.split(": ", 1)
    active[name[:-5]] = float(rest.split(" GB (")[0].split()[-1])

def passes(name):
    for d in dirs:
        try:
            L = {(r["n_prompt"], r["n_gen"]): (r["avg_ts"], r["stddev_ts"]) for r in json.load(open(f"{d}/{name}.llama.json"))}
            o512 = json.loads(open(f"{d}/{name}.ours-p512.json").read())
            o128 = json.loads(open(f"{d}/{name}.ours-p128.json").read())
        except (OSError, ValueError, KeyError):
            continue
        try:  # generation from an empty context, as llama-bench's tg (folders before 2026-11-27: after the p128 prompt)
            otg = json.loads(open(f"{d}/{name}.ours-tg.json").read())
        except (OSError, ValueError):
            otg = o128
        try:  # membw beside this file's generation runs (folders from 2026-11-27 05:00)
            bws = [float(l.split(":")[1].split()[0]) for l in open(f"{d}/{name}.membw") if ":" in l]
        except (OSError, ValueError, IndexError):
            bws = []
        yield {"dir": d, "bw": sum(bws) / len(bws) if bws else None, "l128": L[(128, 0)], "l512": L[(512, 0)], "ltg": L[(0, 64)],
               "o128": (o128["pp_tokens_per_s"], o128["pp_sd"]), "o512": (o512["pp_tokens_per_s"], o512["pp_sd"]),
               "otg": (otg["tg_tokens_per_s"], otg["tg_sd"]), "otg512": (o512["tg_tokens_per_s"], o512["tg_sd"])}

def best(ps, k): return max((p[k] for p in ps), key=lambda x: x[0])
def cell(ps, k):
    m, s = best(ps, k)
    lo = min(p[k][0] for p in ps)
    return f"{m:.1f} ± {s:.1f}" + (f" ({lo:.0f}–{m:.0f})" if len(ps) > 1 else "")

print(f"| file | passes | llama pp128 | ours pp128 | × | llama pp512 | ours pp512 | × | llama tg64 | ours tg64 | × "
      f"| ours tg64 after p512 | GB/token | llama tg GB/s (% of {bw:g}) | ours tg GB/s (% of {bw:g}) |")
print("|---|" + "---|" * 14)
for name, a in active.items():
    ps = list(passes(name))
    if not ps: continue
    r = lambda o, l: f"**{best(ps, o)[0] / best(ps, l)[0]:.2f}**"
    lt, ot = best(ps, "ltg")[0], best(ps, "otg")[0]
    cells = [str(len(ps)), cell(ps, "l128"), cell(ps, "o128"), r("o128", "l128"), cell(ps, "l512"), cell(ps, "o512"),
             r("o512", "l512"), cell(ps, "ltg"), cell(ps, "otg"), r("otg", "ltg"), cell(ps, "otg512"), f"{a:.3f}",
             f"{a * lt:.1f} ({100 * a * lt / bw:.0f} %)", f"{a * ot:.1f} ({100 * a * ot / bw:.0f} %)"]
    print(f"| {name} | " + " | ".join(cells) + " |")

# Issue 6's generation bar per pass and file: ours ≥ min(1.25 × llama.cpp, 0.9 × bandwidth / GB a token), with the
# bandwidth read beside that file where the pass has it (else the BANDWIDTH argument).
print("\n| pass | file | membw GB/s | ours tg64 | needed | % of membw | × llama.cpp | bar |")
print("|---|---|---|---|---|---|---|---|")
for name, a in active.items():
    for p in passes(name):
        b = p["bw"] or bw
        ot, lt = p["otg"][0], p["ltg"][0]
        need = min(1.25 * lt, 0.9 * b / a)
        print(f"| {os.path.basename(p['dir'])} | {name} | {b:.1f} | {ot:.1f} | {need:.1f} | {100 * a * ot / b:.0f} % | "
              f"{ot / lt:.2f} | {'met' if ot >= need else 'short'} |")
