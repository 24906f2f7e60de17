#!/usr/bin/env bash
# Overlapped steps (issue 8, asynchronous decoding) on the GPU machine, before/after in one call: the same binary with
# and without --no-overlap, alternating. `moeinfer run --timing` prints the device's idle time between consecutive
# steps (CUDA events: end of step N to start of step N+1) and the engine thread's time outside the forward.
# Runs: models/demo (a launch-bound 9M model, where host time between steps matters most), the Llama-3.1-8B and
# Qwen3-30B-A3B shapes (random weights) at batch 1, then serving the 8B shape at 64 and 256 clients.
# Needs build-cuda/moeinfer.
set -uo pipefail
cd "$(dirname "$0")/.."
BIN=build-cuda/moeinfer
PROMPT=$(cat bench/spec/prompt.txt)
ids=$(python3 -c 'print(",".join(str(3 + (i * 7919) % 100000) for i in range(128)))')
for rep in 1 2; do
  for mode in "--no-overlap" ""; do
    echo "== demo greedy ${mode:-overlap} (pass $rep)"
    # shellcheck disable=SC2086
    $BIN run --model models/demo --device cuda --prompt "$PROMPT" -n 256 --ignore-eos --json --timing \
      --temperature 0 $mode 2>&1 >/dev/null | grep -E "generation|engine loop|device idle"
  done
done
for cfg in llama-3.1-8b qwen3-30b-a3b; do
  for mode in "--no-overlap" ""; do
    echo "== $cfg random weights, 128-token prompt, greedy ${mode:-overlap}"
    # shellcheck disable=SC2086
    $BIN run --model "bench/configs/$cfg.json" --random-weights --device cuda --prompt-tokens "$ids" -n 256 \
      --ignore-eos --json --timing --temperature 0 $mode 2>&1 >/dev/null | grep -E "generation|engine loop|device idle"
  done
done
if [ "${OVERLAP_SERVE:-1}" != 0 ]; then
  for mode in "--no-overlap" ""; do
    echo "== serve llama-3.1-8b ${mode:-overlap}"
    SERVE_FLAGS="$mode" KV_MIB=24000 bash scripts/gpu_serve_bench.sh bench/configs/llama-3.1-8b.json 64,256 \
      --max-seconds 15 2>&1 | tail -8
  done
fi
