#!/usr/bin/env python3
# How far HF transformers itself moves from the fp32 goldens when it runs in bf16 on the GPU: the yardstick for
# our GPU backend's tolerance (tests/cuda/model_golden_test.cpp). For each golden family: the worst top-5 prompt
# logprob difference (HF's fp32 top-5 tokens) and the greedy tokens that equal the fp32 goldens, compared up to
# the first step where the fp32 top-1 margin is below --margin (the 1e-2 rule).
# Usage (GPU machine): python3 tools/bf16_reference.py [--margin 1e-2] [--out tests/data/goldens/bf16_reference.json]
import argparse
import json
import os

import numpy as np
import torch
from transformers import AutoModelForCausalLM

FAMILIES = ["llama", "mistral", "qwen2", "qwen3", "mixtral", "qwen2_moe", "qwen3_moe", "olmoe"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--margin", type=float, default=1e-2)
    ap.add_argument("--dtype", default="bfloat16")
    ap.add_argument("--out", default="", help="also write the results here as one JSON object keyed by family")
    args = ap.parse_args()
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data", "goldens")
    dtype = getattr(torch, args.dtype)
    results = {}
    for fam in FAMILIES:
        d = os.path.join(root, fam)
        g = json.load(open(os.path.join(d, "golden.json")))
        V = g["vocab_size"]
        ref = np.fromfile(os.path.join(d, g["logprobs_file"]), dtype="<f4")
        model = AutoModelForCausalLM.from_pretrained(d, dtype=dtype, attn_implementation="eager").cuda().eval()
        worst, at = 0.0, 0
        compared = equal = 0
        first_bad = None
        for p, prompt in enumerate(g["prompts"]):
            n = len(prompt)
            r = ref[at * V:(at + n) * V].reshape(n, V)
            at += n
            ids = torch.tensor([prompt]).cuda()
            with torch.no_grad():
                lp = torch.log_softmax(model(input_ids=ids).logits[0].float(), -1).cpu().numpy()
            top5 = np.argsort(-r, axis=1)[:, :5]
            worst = max(worst, float(np.abs(np.take_along_axis(lp, top5, 1) - np.take_along_axis(r, top5, 1)).max()))
            with torch.no_grad():
                out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=False,
                                     max_new_tokens=len(g["greedy"][p]), min_new_tokens=len(g["greedy"][p]),
                                     eos_token_id=None, pad_token_id=None)
            gen = out[0, n:].tolist()
            for k, (a, b) in enumerate(zip(gen, g["greedy"][p])):
                if g["margins"][p][k] < args.margin:
                    break
                compared += 1
                if a != b:
                    first_bad = first_bad or (p, k, g["margins"][p][k])
                    break
                equal += 1
        results[fam] = dict(dtype=args.dtype, worst_top5_logprob_diff=round(worst, 4), greedy_equal=equal,
                            greedy_compared=compared, margin_rule=args.margin, first_divergence=first_bad,
                            torch=torch.__version__, device=torch.cuda.get_device_name())
        print(json.dumps(dict(family=fam, **results[fam])))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(results, f, indent=1)
            f.write("\n")


if __name__ == "__main__":
    main()
