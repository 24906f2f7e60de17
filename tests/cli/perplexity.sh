#!/usr/bin/env bash
# `moeinfer perplexity` on the shipped demo model agrees with PyTorch's fp32 figure (models/demo/results.json)
# within 1%, from safetensors, from the committed GGUF and from a fresh export; the GGUF tokenizers encode like it.
set -euo pipefail
BIN=$1
D=models/demo
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
# ctx 256 x 8 chunks: the slice PyTorch also scored, small enough to keep this test to a few seconds.
REF=$(python3 -c "import json; print(next(p['ppl'] for p in json.load(open('$D/results.json'))['ppl'] if p['ctx'] == 256))")
"$BIN" convert --model $D --out "$T/fresh.gguf" --type BF16 >/dev/null
for M in $D $D/demo-bf16.gguf "$T/fresh.gguf"; do
    "$BIN" perplexity --model "$M" --file $D/heldout.txt --ctx 256 --chunks 8 --threads 2 >"$T/out" 2>"$T/err"
    grep -q "tokens/s" "$T/out"
    PPL=$(sed -n 's/^Final estimate: PPL = \([0-9.]*\).*/\1/p' "$T/out")
    python3 -c "import sys; a, b = float('$PPL'), $REF; sys.exit(0 if abs(a - b) <= 0.01 * b else f'$M: PPL {a} vs PyTorch {b}')"
    echo "$M: PPL $PPL (PyTorch $REF)"
done
# The whole held-out file encodes to the same ids through tokenizer.json and through each GGUF's vocabulary.
"$BIN" tokenize --model $D - <$D/heldout.txt >"$T/ids.json"
for G in $D/demo-bf16.gguf "$T/fresh.gguf"; do
    "$BIN" tokenize --model "$G" - <$D/heldout.txt | cmp -s - "$T/ids.json" || { echo "$G: token ids differ"; exit 1; }
done
# A missing file is one clear error line.
if "$BIN" perplexity --model $D --file /nonexistent 2>"$T/err"; then exit 1; fi
grep -q "nonexistent" "$T/err"
echo "perplexity ok"
