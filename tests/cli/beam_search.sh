#!/usr/bin/env bash
# `moeinfer run --beam-width W --num-return-sequences N --json` prints HF's beams (tokens, sequences_scores) best
# first for golden models (tests/data/goldens/beams.json cases without EOS), and rejects bad beam flags.
set -euo pipefail
BIN=$1
export MOEINFER_BF16_GEMM=0  # held to HF's fp32 goldens: the exact fp32 products, not the default bf16 ones
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
for FAMILY in llama qwen3_moe; do
    read -r PROMPT <<<"$(python3 -c "import json; c = [c for c in json.load(open('tests/data/goldens/beams.json'))['cases'] if c['family'] == '$FAMILY' and not c['eos_token_ids']][1]; print(','.join(map(str, c['prompt'])))")"
    "$BIN" run --model tests/data/goldens/$FAMILY --prompt-tokens "$PROMPT" -n 10 --beam-width 4 --num-return-sequences 4 \
        --json >"$T/out.json" 2>"$T/err"
    grep -q "KV blocks shared by 4 beams" "$T/err"
    python3 - "$T/out.json" "$FAMILY" <<'PY'
import json, sys
out = json.load(open(sys.argv[1]))
case = [c for c in json.load(open('tests/data/goldens/beams.json'))['cases'] if c['family'] == sys.argv[2] and not c['eos_token_ids']][1]
got = [ch['tokens'] for ch in out['choices']]
assert got == case['sequences'], (got, case['sequences'])
for ch, s in zip(out['choices'], case['scores']):
    assert abs(ch['score'] - s) < 2e-4, (ch['score'], s)
assert out['prompt_tokens'] == case['prompt']
print(sys.argv[2], 'beams ok', [round(ch['score'], 5) for ch in out['choices']])
PY
done
if "$BIN" run --model tests/data/goldens/llama --prompt-tokens 1,2 --beam-width 2 --num-return-sequences 3 2>"$T/err"; then exit 1; fi
grep -q "num-return-sequences" "$T/err"
if "$BIN" run --model tests/data/goldens/llama --prompt-tokens 1,2 --beam-width 2 --early-stopping maybe 2>"$T/err"; then exit 1; fi
grep -q "early-stopping" "$T/err"
echo "beam search cli ok"
