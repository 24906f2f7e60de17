#!/usr/bin/python3
# Issue 6 item 2: do llama.cpp's quantized files dequantize here to the same values? Compares every tensor of
# QUANT.gguf (dequantized by llama.cpp's gguf-py) with the same-named tensor of OURS_F32.gguf (`moeinfer convert --type F32`).
# Usage: /usr/bin/python3 bench/llamacpp/compare_dequant.py QUANT.gguf OURS_F32.gguf  (needs numpy; LLAMA_DIR=/work/llamacpp)
import os, sys
import numpy as np
sys.path.insert(0, os.path.join(os.environ.get("LLAMA_DIR", "/work/llamacpp"), "gguf-py"))
from gguf import GGUFReader
from gguf.quants import dequantize

qpath, fpath = sys.argv[1], sys.argv[2]
q, f = GGUFReader(qpath), GGUFReader(fpath)
ours = {t.name: t for t in f.tensors}
by_type, bad, missing = {}, [], []
for t in q.tensors:
    tname = t.tensor_type.name
    o = ours.get(t.name)
    if o is None:
        missing.append(t.name); continue
    ref = dequantize(t.data, t.tensor_type).astype(np.float32).reshape(-1)
    got = np.asarray(o.data).view(np.float32).reshape(-1) if o.tensor_type.name == "F32" else \
          dequantize(o.data, o.tensor_type).astype(np.float32).reshape(-1)
    s = by_type.setdefault(tname, [0, 0, 0, 0.0])  # tensors, elements, differing elements, max |diff|
    s[0] += 1; s[1] += ref.size
    if got.size != ref.size:
        bad.append(f"{t.name} {tname}: {ref.size} vs {got.size} elements"); continue
    neq = np.count_nonzero(ref.view(np.uint32) != got.view(np.uint32))
    if neq:
        d = float(np.max(np.abs(ref - got)))
        s[2] += neq; s[3] = max(s[3], d)
        bad.append(f"{t.name} {tname}: {neq}/{ref.size} elements differ, max |diff| {d:.3g}")
extra = sorted(set(ours) - {t.name for t in q.tensors})
print(f"{os.path.basename(qpath)} vs {os.path.basename(fpath)}")
for tname, (n, e, neq, d) in sorted(by_type.items()):
    print(f"  {tname:6s} {n:4d} tensors {e:12d} values: " + ("bit-identical" if neq == 0 else f"{neq} differ, max |diff| {d:.3g}"))
for m in bad[:20]: print("  DIFF", m)
if len(bad) > 20: print(f"  ... {len(bad) - 20} more")
for m in missing: print("  MISSING in ours:", m)
for m in extra: print("  EXTRA in ours:", m)
sys.exit(1 if bad or missing or extra else 0)
