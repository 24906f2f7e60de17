#!/usr/bin/env bash
# The one command for the GPU machine: builds build-cuda from scratch (-DMOEINFER_CUDA=ON), runs the CUDA parity
# tests and cuda_roofline, and writes a summary to $OUT/gpu_check.txt (build and test logs beside it).
# Where the machine has no GoogleTest, carry a source tree at .deps/googletest (cp -r /usr/src/googletest .deps/).
set -uo pipefail
source "$(dirname "$0")/gpu_report.sh" gpu_check.txt

say "gpu_check $(date -u +%FT%TZ) commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
say "$(nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.mem --format=csv,noheader 2>&1)"
say "nvcc: $(/usr/local/cuda/bin/nvcc --version | tail -1); cmake: $(cmake --version | head -1); $(g++ --version | head -1)"

if [ ${#gtest_arg[@]} -gt 0 ] && [ ! -d .deps/googletest ]; then
  say "gpu_check: no GoogleTest here and no .deps/googletest carried"; exit 1
fi

start=$(date +%s)
if ! cmake -S . -B build-cuda -G Ninja -DCMAKE_BUILD_TYPE=Release -DMOEINFER_CUDA=ON "${gtest_arg[@]}" \
     >"$OUT/build.log" 2>&1 ||
   ! cmake --build build-cuda -j16 --target moeinfer moeinfer_cuda_tests cuda_roofline >>"$OUT/build.log" 2>&1; then
  say "BUILD FAILED (last lines of $OUT/build.log):"
  tail -40 "$OUT/build.log" | tee -a "$report"
  exit 1
fi
say "build: $(( $(date +%s) - start )) s"

build-cuda/moeinfer_cuda_tests --gtest_brief=1 >"$OUT/tests.log" 2>&1
tests_rc=$?
say "moeinfer_cuda_tests: exit $tests_rc; $(grep -E '^\[  (PASSED|FAILED|SKIPPED) ' "$OUT/tests.log" | tr '\n' ' ')"
grep -E '^\[  FAILED|Failure|error' "$OUT/tests.log" | head -40 | tee -a "$report"

say "--- cuda_roofline"
timeout 240 build-cuda/cuda_roofline 2>&1 | tee -a "$report"
roof_rc=${PIPESTATUS[0]}
say "cuda_roofline: exit $roof_rc"

# Model benchmarks on random-weight shapes (bench/configs): batch-1 prefill and decode through `moeinfer bench`.
# GPU_CHECK_BENCH=0 skips them (parity only).
bench_rc=0
if [ "${GPU_CHECK_BENCH:-1}" != 0 ]; then
  for cfg in llama-3.1-8b qwen3-30b-a3b; do
    for shape in "-p 512 -n 128 -r 3" "-p 4096 -n 0 -r 2"; do
      say "--- bench $cfg $shape"
      # shellcheck disable=SC2086
      timeout 300 build-cuda/moeinfer bench --model "bench/configs/$cfg.json" --random-weights --device cuda \
        $shape --json 2>&1 | tee -a "$report"
      [ "${PIPESTATUS[0]}" -eq 0 ] || bench_rc=1
    done
  done
fi
[ "$tests_rc" -eq 0 ] && [ "$roof_rc" -eq 0 ] && [ "$bench_rc" -eq 0 ]
