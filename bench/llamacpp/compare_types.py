#!/usr/bin/python3
# Issue 6 item 2: which GGML type each tensor got from `moeinfer quantize` vs `llama-quantize` (same input, same --type).
# Usage: /usr/bin/python3 bench/llamacpp/compare_types.py OURS.gguf LLAMA.gguf   (LLAMA_DIR=/work/llamacpp for gguf-py)
import os, re, sys
from collections import Counter
sys.path.insert(0, os.path.join(os.environ.get("LLAMA_DIR", "/work/llamacpp"), "gguf-py"))
from gguf import GGUFReader

ra, rb = (GGUFReader(p) for p in sys.argv[1:3])
a, b = ({t.name: t.tensor_type.name for t in r.tensors} for r in (ra, rb))
print("ours: ", dict(Counter(a.values())), os.path.getsize(sys.argv[1]), "bytes")
print("llama:", dict(Counter(b.values())), os.path.getsize(sys.argv[2]), "bytes")
diff = Counter()
for n in sorted(set(a) | set(b)):
    if a.get(n) != b.get(n):
        diff[(re.sub(r"blk\.\d+\.", "blk.*.", n), a.get(n), b.get(n))] += 1
for (n, x, y), c in sorted(diff.items()):
    print(f"  differs: {n} x{c}: ours {x}, llama.cpp {y}")
if not diff: print("  same type for every tensor")
da = {t.name: t.data for t in ra.tensors}
same = [t.name for t in rb.tensors if a.get(t.name) == t.tensor_type.name and da[t.name].tobytes() == t.data.tobytes()]
print(f"  byte-identical data: {len(same)}/{len(b)} tensors")
