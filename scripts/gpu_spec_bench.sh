#!/usr/bin/env bash
# Speculative decoding and engine-loop timing on the GPU machine (issue 8): models/demo with bench/spec/prompt.txt,
# 256 new tokens, plain vs prompt lookup vs draft model (the demo itself: the only model with its tokenizer), greedy
# and T = 0.8; then the engine loop's time outside the forward per step for the Llama-3.1-8B shape (random weights).
# Prints `moeinfer run --timing` lines. Needs build-cuda/moeinfer.
set -uo pipefail
cd "$(dirname "$0")/.."
BIN=build-cuda/moeinfer
PROMPT=$(cat bench/spec/prompt.txt)
for temp in "--temperature 0" "--temperature 0.8 --seed 3"; do
  for mode in "" "--spec-ngram 4" "--draft-model models/demo --spec-draft 4"; do
    echo "== demo $temp ${mode:-plain}"
    # shellcheck disable=SC2086
    $BIN run --model models/demo --device cuda --prompt "$PROMPT" -n 256 --ignore-eos --json --timing $temp $mode \
      2>&1 >/dev/null | grep -E "generation|engine loop|speculative"
  done
done
ids=$(python3 -c 'print(",".join(str(3 + (i * 7919) % 100000) for i in range(128)))')
for cfg in llama-3.1-8b qwen3-30b-a3b; do
  echo "== $cfg random weights, 128-token prompt, greedy"
  $BIN run --model "bench/configs/$cfg.json" --random-weights --device cuda --prompt-tokens "$ids" -n 256 \
    --ignore-eos --json --timing --temperature 0 2>&1 >/dev/null | grep -E "generation|engine loop"
done
