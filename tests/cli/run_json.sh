#!/usr/bin/env bash
# `moeinfer run --json` output contract, `--echo` prompt logprobs, streaming mode summary line, `info`, and
# `bench -b` (several sequences decoded together).
set -euo pipefail
BIN=$1
export MOEINFER_BF16_GEMM=0  # held to HF's fp32 goldens: the exact fp32 products, not the default bf16 ones
G=tests/data/goldens/llama
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
PROMPT=$(python3 -c "import json; print(','.join(map(str, json.load(open('$G/golden.json'))['prompts'][1])))")

"$BIN" run --model $G --prompt-tokens "$PROMPT" -n 24 --temperature 0 --logprobs 3 --echo --json --threads 2 >"$T/out.json" 2>"$T/err"
python3 - "$T/out.json" "$G/golden.json" "$PROMPT" <<'PY'
import json, sys
out = json.loads(open(sys.argv[1]).read())
gold = json.load(open(sys.argv[2]))
prompt = [int(x) for x in sys.argv[3].split(',')]
assert set(out) == {"prompt_tokens", "tokens", "text", "logprobs", "prompt_logprobs"}, out.keys()
assert out["prompt_tokens"] == prompt
assert out["tokens"] == gold["greedy"][1], (out["tokens"], gold["greedy"][1])
assert len(out["logprobs"]) == 24
for tok, lp in zip(out["tokens"], out["logprobs"]):
    assert lp["token"] == tok and lp["logprob"] <= 0
    assert len(lp["top"]) == 3 and lp["top"][0][0] == tok  # greedy: the chosen token is the best
    assert all(a[1] >= b[1] for a, b in zip(lp["top"], lp["top"][1:]))
pl = out["prompt_logprobs"]
assert len(pl) == len(prompt) and pl[0] is None
for tok, lp in zip(prompt[1:], pl[1:]):
    assert lp["token"] == tok and len(lp["top"]) == 3
print("json contract ok")
PY
grep -q "generation: 24 tokens" "$T/err"

# Without --json: tokens stream to stdout, the summary goes to stderr only.
"$BIN" run --model $G --prompt-tokens 1,2,3 -n 5 --temperature 0.7 --seed 3 >"$T/out" 2>"$T/err"
[ "$(wc -w <"$T/out")" -eq 5 ]
grep -q "tokens/s" "$T/err"
# Same seed, same output.
"$BIN" run --model $G --prompt-tokens 1,2,3 -n 5 --temperature 0.7 --seed 3 >"$T/out2" 2>/dev/null
cmp "$T/out" "$T/out2"

"$BIN" info --model tests/data/goldens/qwen2_moe >"$T/info"
grep -q "architecture: qwen2_moe" "$T/info"
grep -q "experts:      8, top-4" "$T/info"
grep -q "KV cache:" "$T/info"
echo "run/info ok"

# `bench -b 3`: three sequences decode together; the JSON line names the batch and both rates are positive.
"$BIN" bench --model $G -p 4 -n 3 -r 1 -b 3 -t 2 --json >"$T/bench.json"
python3 - "$T/bench.json" <<'PY'
import json, sys
o = json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])
assert o["n_batch"] == 3 and o["n_gen"] == 3 and o["pp_tokens_per_s"] > 0 and o["tg_tokens_per_s"] > 0, o
print("bench -b ok")
PY
