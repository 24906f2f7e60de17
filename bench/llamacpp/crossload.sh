#!/bin/bash
# Issue 6 items 2 and 5: quantize each F16/BF16 GGUF with both moeinfer and llama-quantize, check the type mixes,
# run each engine on the other's files, compare dequantized values, and measure perplexity on the demo model.
# Usage: bench/llamacpp/crossload.sh MOEINFER_BIN OUT_DIR F16.gguf...   (LLAMA_DIR=/work/llamacpp; numpy in /usr/bin/python3)
set -uo pipefail
OURS=$1 OUT=$2; shift 2
L=${LLAMA_DIR:-/work/llamacpp}/build/bin
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
PY=/usr/bin/python3
mkdir -p "$OUT"
fail=0
chk() { local what=$1; shift; if "$@" > "$OUT/last.log" 2>&1; then echo "ok    $what"; else echo "FAIL  $what: $(tail -3 "$OUT/last.log" | tr '\n' ' ')"; fail=1; fi; }
for src in "$@"; do
  b=$(basename "$src" .gguf); b=${b%-f16}; b=${b%-bf16}
  for t in Q8_0 Q4_K_M Q4_0; do
    o=$OUT/$b-$t.ours.gguf l=$OUT/$b-$t.llama.gguf
    [ -f "$o" ] || chk "moeinfer quantize $b $t" "$OURS" quantize "$src" "$o" --type $t
    [ -f "$l" ] || chk "llama-quantize $b $t" "$L/llama-quantize" "$src" "$l" $t 2
    $PY "$HERE/compare_types.py" "$o" "$l" | sed 's/^/      /'
    chk "llama-bench on $(basename "$o")" "$L/llama-bench" -m "$o" -t 2 -p 16 -n 4 -r 1
    chk "moeinfer info on $(basename "$l")" "$OURS" info --model "$l"
    chk "moeinfer run on $(basename "$l")" "$OURS" run --model "$l" --prompt-tokens 1,2,3,4 -n 4 --json
    chk "moeinfer convert F32 of $(basename "$l")" "$OURS" convert --model "$l" --out "$OUT/x.f32.gguf" --type F32
    chk "dequant($(basename "$l")) == gguf-py" $PY "$HERE/compare_dequant.py" "$l" "$OUT/x.f32.gguf"
    rm -f "$OUT/x.f32.gguf"
  done
done
# Perplexity (item 5) on the demo model with both tools; pass models/demo/demo-bf16.gguf among the inputs.
if [ -f "$OUT/demo-Q8_0.ours.gguf" ]; then
  for f in "$REPO/models/demo/demo-bf16.gguf" "$OUT"/demo-*.ours.gguf "$OUT"/demo-*.llama.gguf; do
    p1=$("$OURS" perplexity --model "$f" --file "$REPO/models/demo/heldout.txt" --ctx 256 --chunks 8 --threads 2 2>&1 | grep Final)
    p2=$("$L/llama-perplexity" -m "$f" -f "$REPO/models/demo/heldout.txt" -c 256 --chunks 8 -t 2 2>&1 | grep Final | sed 's/.*I //')
    echo "ppl $(basename "$f"): moeinfer [$p1] llama.cpp [$p2]"
  done
fi
exit $fail
