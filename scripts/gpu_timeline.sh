#!/usr/bin/env bash
# Where a decode step's time goes with CUDA graphs on (as `bench` and the server run): `moeinfer bench` under Nsight
# Systems with graph nodes traced one by one, then scripts/timeline_table.py: per kernel, busy µs per step and the
# idle µs before it, then the chain (each kernel's start and end against the end of the kernel before it: a negative
# start is a kernel resident early through programmatic dependent launch). (scripts/gpu_profile.sh, on ncu, runs without graphs and serializes kernels: it gives each
# kernel's own duration, not the gaps.) Without nsys (the GPU machines here have none), the same trace comes from
# tools/cupti_trace.cpp, a CUPTI injection library built on the spot with the CUDA of nvcc (or /usr/local/cuda) and
# g++ (first run 2026-11-27 on H200: ~20k kernel records of a 40-step run, graph nodes one by one). The busy time of
# kernels that overlap (programmatic dependent launch) goes to the one that started first.
#   scripts/gpu_timeline.sh BINARY CONFIG [PROMPT_TOKENS] [BATCH] [LAST_STEPS]
#   e.g. scripts/gpu_timeline.sh build-cuda/moeinfer bench/configs/qwen3-30b-a3b.json 512 1 16
set -euo pipefail
bin=$1 cfg=$2 prompt=${3:-512} batch=${4:-1} last=${5:-16}
here=$(dirname "$0")
first() { for f in "$@"; do [ -e "$f" ] && { echo "$f"; return; }; done; true; }  # first path that exists, or none
bench=("$bin" bench --model "$cfg" --random-weights --device cuda -p "$prompt" -n $((last + 8)) -r 1 -b "$batch")
nsys=$(command -v nsys || first /usr/local/cuda/bin/nsys /usr/local/cuda/nsight-systems-*/bin/nsys \
       /opt/nvidia/nsight-systems/*/bin/nsys)
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
if [ -n "$nsys" ]; then
  "$nsys" profile --trace=cuda --cuda-graph-trace=node --sample=none --cpuctxsw=none -o "$dir/trace" \
    "${bench[@]}" >/dev/null
  "$nsys" stats --report cuda_gpu_trace --format csv --output "$dir/gpu" "$dir/trace.nsys-rep" >/dev/null
else
  echo "gpu_timeline: no nsys (Nsight Systems) found: tracing kernels with CUPTI (tools/cupti_trace.cpp)" >&2
  nvcc=$(command -v nvcc || true)
  cuda=/usr/local/cuda
  [ -z "$nvcc" ] || cuda=$(dirname "$(dirname "$(readlink -f "$nvcc")")")  # .../cuda-13.0/bin/nvcc: the toolkit root
  inc=$(first "$cuda"/include/cupti.h "$cuda"/extras/CUPTI/include/cupti.h)
  lib=$(first "$cuda"/lib64/libcupti.so "$cuda"/extras/CUPTI/lib64/libcupti.so "$cuda"/lib/libcupti.so \
        "$cuda"/targets/*/lib/libcupti.so)
  [[ -n $inc && -n $lib ]] || { echo "gpu_timeline: no CUPTI (cupti.h, libcupti.so) under $cuda" >&2; exit 1; }
  g++ -std=c++20 -O2 -fPIC -shared "$here/../tools/cupti_trace.cpp" -I"$(dirname "$inc")" -L"$(dirname "$lib")" \
    -lcupti -o "$dir/libcupti_trace.so"
  # The driver loads the library at cuInit; libcupti.so comes from LD_LIBRARY_PATH, as the tracer has no rpath.
  CUDA_INJECTION64_PATH="$dir/libcupti_trace.so" CUPTI_TRACE_CSV="$dir/gpu_cuda_gpu_trace.csv" \
    LD_LIBRARY_PATH="$(dirname "$lib")${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" "${bench[@]}" >/dev/null
fi
python3 "$here/timeline_table.py" "$dir"/gpu*cuda_gpu_trace*.csv "$last"
