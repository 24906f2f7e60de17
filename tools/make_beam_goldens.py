#!/usr/bin/env python3
# Beam-search goldens: HF transformers `generate(num_beams=W, do_sample=False, ...)` on the golden models
# (tests/data/goldens/<family>, reloaded from their bf16 files, float32 CPU, eager attention) -> beams.json.
# Run on the GPU machine (CPU only, no network): python3 tools/make_beam_goldens.py --out $OUT/beams.json
import argparse
import inspect
import json
import os
import sys

import torch
import transformers
from transformers import AutoModelForCausalLM, GenerationConfig

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
FAMILIES = ["llama", "mistral", "qwen2", "qwen3", "mixtral", "qwen2_moe", "qwen3_moe", "olmoe"]
# (num_beams, length_penalty, early_stopping, num_return_sequences, max_new_tokens, eos ids from greedy positions)
# The EOS ids are tokens greedy decoding emits early, so beams finish at different lengths and the
# length-penalty / early-stopping rules decide the winners; two EOS ids widen HF's candidate pool to 3W.
CASES = [
    (4, 1.0, False, 4, 10, []),
    (3, 1.0, True, 3, 16, [2]),
    (4, 0.5, False, 2, 16, [2]),
    (5, 2.0, "never", 5, 16, [2, 7]),
    (2, -0.5, False, 1, 12, [4]),
]


def load(family):
    d = os.path.join(ROOT, "tests", "data", "goldens", family)
    try:
        m = AutoModelForCausalLM.from_pretrained(d, attn_implementation="eager", dtype=torch.float32)
    except TypeError:  # transformers 4.x spelling
        m = AutoModelForCausalLM.from_pretrained(d, attn_implementation="eager", torch_dtype=torch.float32)
    m = m.float().eval()
    m.generation_config = GenerationConfig(do_sample=False, eos_token_id=None, bos_token_id=None, pad_token_id=None)
    with open(os.path.join(d, "golden.json")) as f:
        return m, json.load(f)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--source-out", help="also write HF's beam-search source here (for reading, not copying)")
    args = ap.parse_args()
    torch.set_num_threads(8)
    cases = []
    for family in FAMILIES:
        model, g = load(family)
        for pi, prompt in enumerate(g["prompts"]):
            for (W, lp, es, nrs, new, eos_pos) in CASES:
                eos = sorted({g["greedy"][pi][k] for k in eos_pos})
                ids = torch.tensor([prompt], dtype=torch.long)
                kw = dict(input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=False, num_beams=W,
                          length_penalty=lp, early_stopping=es, num_return_sequences=nrs, max_new_tokens=new,
                          return_dict_in_generate=True, output_scores=True)
                if eos:
                    kw.update(eos_token_id=eos, pad_token_id=eos[0])
                else:
                    kw.update(eos_token_id=None, pad_token_id=None)
                with torch.no_grad():
                    out = model.generate(**kw)
                seqs = []
                for row in out.sequences.tolist():
                    gen = row[len(prompt):]
                    for k, t in enumerate(gen):
                        if t in eos:
                            gen = gen[: k + 1]
                            break
                    seqs.append(gen)
                cases.append(dict(family=family, prompt_index=pi, prompt=prompt, num_beams=W, length_penalty=lp,
                                  early_stopping=es, num_return_sequences=nrs, max_new_tokens=new,
                                  eos_token_ids=eos, sequences=seqs,
                                  scores=[float(s) for s in out.sequences_scores.tolist()]))
                print(family, pi, W, lp, es, nrs, [len(s) for s in seqs], cases[-1]["scores"], flush=True)
    with open(args.out, "w") as f:
        json.dump(dict(transformers_version=transformers.__version__, torch_version=torch.__version__,
                       python=sys.version.split()[0], made_by="tools/make_beam_goldens.py", cases=cases), f)
        f.write("\n")
    if args.source_out:
        from transformers.generation import utils as gu
        parts = []
        for name in dir(gu.GenerationMixin):
            if "beam" in name.lower():
                try:
                    parts.append(inspect.getsource(getattr(gu.GenerationMixin, name)))
                except (TypeError, OSError):
                    pass
        with open(args.source_out, "w") as f:
            f.write("\n\n".join(parts))
    print("cases:", len(cases))


if __name__ == "__main__":
    main()
