#!/usr/bin/env bash
# Where a decode step's time goes with CUDA graphs on (as `bench` and the server run): `moeinfer bench` under Nsight
# Systems with graph nodes traced one by one, then scripts/timeline_table.py: per kernel, busy µs per step and the
# idle µs before it. (scripts/gpu_profile.sh, on ncu, runs without graphs and serializes kernels: it gives each
# kernel's own duration, not the gaps.) Written 2026-11-27 without device time left to run it: check the first run.
#   scripts/gpu_timeline.sh BINARY CONFIG [PROMPT_TOKENS] [BATCH] [LAST_STEPS]
#   e.g. scripts/gpu_timeline.sh build-cuda/moeinfer bench/configs/qwen3-30b-a3b.json 512 1 16
set -euo pipefail
bin=$1 cfg=$2 prompt=${3:-512} batch=${4:-1} last=${5:-16}
nsys=$(command -v nsys || ls /usr/local/cuda/bin/nsys /usr/local/cuda/nsight-systems-*/bin/nsys \
       /opt/nvidia/nsight-systems/*/bin/nsys 2>/dev/null | head -1 || true)
[ -n "$nsys" ] || { echo "gpu_timeline: no nsys (Nsight Systems) found" >&2; exit 1; }
dir=$(mktemp -d)
"$nsys" profile --trace=cuda --cuda-graph-trace=node --sample=none --cpuctxsw=none -o "$dir/trace" \
  "$bin" bench --model "$cfg" --random-weights --device cuda -p "$prompt" -n $((last + 8)) -r 1 -b "$batch" >/dev/null
"$nsys" stats --report cuda_gpu_trace --format csv --output "$dir/gpu" "$dir/trace.nsys-rep" >/dev/null
python3 "$(dirname "$0")/timeline_table.py" "$dir"/gpu*cuda_gpu_trace*.csv "$last"
rm -rf "$dir"
