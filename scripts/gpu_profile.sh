#!/usr/bin/env bash
# Where a decode step's time goes, kernel by kernel: runs `moeinfer bench` on a random-weight shape under ncu
# (graphs off, so every kernel is its own launch; caches left as the previous kernel left them, clocks untouched)
# and prints each kernel's mean duration per decode step (scripts/kernel_table.py).
#   scripts/gpu_profile.sh BINARY CONFIG [PROMPT_TOKENS] [BATCH]   e.g. build-cuda/moeinfer bench/configs/qwen3-30b-a3b.json 512
# BATCH (default 1): sequences decoded together per step (`moeinfer bench -b`).
# Needs ncu (Nsight Compute) on the PATH or under /opt/nvidia or /usr/local/cuda.
set -euo pipefail
bin=$1 cfg=$2 prompt=${3:-512} batch=${4:-1}
ncu=$(command -v ncu || ls /usr/local/cuda/bin/ncu /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -1)
[ -n "$ncu" ] || { echo "gpu_profile: no ncu found" >&2; exit 1; }
csv=$(mktemp)
MOEINFER_CUDA_GRAPHS=0 "$ncu" --csv --page raw --metrics gpu__time_duration.sum --print-units base --cache-control none \
  --clock-control none "$bin" bench --model "$cfg" --random-weights --device cuda -p "$prompt" -n 6 -r 1 -b "$batch" >"$csv" 2>/dev/null
python3 "$(dirname "$0")/kernel_table.py" "$csv" 4
rm -f "$csv"
