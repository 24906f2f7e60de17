#!/usr/bin/python3
# Weight bytes a batch-1 decode step reads, from a GGUF's tensor table (issue 6: generation as a fraction of bandwidth).
# Counts every tensor once, the routed experts (`*_exps`) at expert_used_count/expert_count, and token_embd only when it
# doubles as the output matrix (no output.weight); otherwise its one looked-up row is negligible.
# Usage: /usr/bin/python3 bench/llamacpp/active_bytes.py FILE.gguf...   (LLAMA_DIR=/work/llamacpp for gguf-py)
import os, sys
sys.path.insert(0, os.path.join(os.environ.get("LLAMA_DIR", "/work/llamacpp"), "gguf-py"))
from gguf import GGUFReader

for path in sys.argv[1:]:
    r = GGUFReader(path)
    arch = bytes(r.fields["general.architecture"].parts[-1]).decode()
    def u(k, d):
        f = r.fields.get(f"{arch}.{k}")
        return int(f.parts[-1][0]) if f else d
    n_exp, n_used = u("expert_count", 0), u("expert_used_count", 0)
    names = {t.name for t in r.tensors}
    total = active = params = active_params = 0
    for t in r.tensors:
        total += t.n_bytes; params += t.n_elements
        w = 1.0
        if "_exps." in t.name: w = n_used / n_exp
        if t.name == "token_embd.weight" and "output.weight" in names: w = 0.0
        active += w * t.n_bytes; active_params += w * t.n_elements
    print(f"{os.path.basename(path)}: {params/1e9:.3f} B params, {total/1e9:.3f} GB tensors; per token "
          f"{active_params/1e9:.3f} B params, {active/1e9:.4f} GB ({active/active_params:.4f} bytes/param)")
