#!/usr/bin/env bash
# The CPU kernels on the GPU machine's host CPU (a Xeon with AMX, which the development VM lacks): builds the CPU
# targets, runs the unit suite with AMX and again with MOEINFER_AMX=0 for the product tests, then prefill and
# generation with and without AMX on random-weight GGUFs (GEN: path of make_random_gguf.py, carried into the tree).
# Everything goes to $OUT/cpu_check.txt, logs beside it.
#   GEN=make_random_gguf.py THREADS="2 16" scripts/device_cpu_check.sh
set -uo pipefail
source "$(dirname "$0")/gpu_report.sh" cpu_check.txt
say "device_cpu_check $(date -u +%FT%TZ)"
say "$(lscpu | grep -E 'Model name|^CPU\(s\)' | tr -s ' ' | tr '\n' ';') $(grep -o -w -E 'amx_bf16|amx_int8' /proc/cpuinfo | sort -u | tr '\n' ' ')"
start=$(date +%s)
if ! cmake -S . -B build-cpu -G Ninja -DCMAKE_BUILD_TYPE=Release "${gtest_arg[@]}" >"$OUT/build.log" 2>&1 ||
   ! cmake --build build-cpu -j16 --target moeinfer moeinfer_tests >>"$OUT/build.log" 2>&1; then
  say "BUILD FAILED"; tail -30 "$OUT/build.log" | tee -a "$report"; exit 1
fi
say "build: $(( $(date +%s) - start )) s; $(build-cpu/moeinfer info --model models/demo | grep 'CPU kernels')"
build-cpu/moeinfer_tests --gtest_brief=1 >"$OUT/tests.log" 2>&1
say "moeinfer_tests (AMX as available): exit $?; $(grep -E '^\[  (PASSED|FAILED|SKIPPED) ' "$OUT/tests.log" | tr '\n' ' ')"
grep -E '^\[  FAILED|Failure' "$OUT/tests.log" | head -20 | tee -a "$report"
MOEINFER_AMX=0 build-cpu/moeinfer_tests --gtest_brief=1 --gtest_filter='*Gemm*:*Matmul*:*KernelLevels*' >"$OUT/tests_noamx.log" 2>&1
say "product tests with MOEINFER_AMX=0: exit $?; $(grep -E '^\[  (PASSED|FAILED) ' "$OUT/tests_noamx.log" | tr '\n' ' ')"
[ -n "${GEN:-}" ] || exit 0
for preset in dense moe; do
  python3 "$GEN" --preset $preset -o /tmp/$preset-f16.gguf >/dev/null 2>&1 || say "generator failed for $preset"
done
for preset in dense moe; do
  for t in ${THREADS:-2 16}; do
    for round in 1 2; do
      for amx in 1 0; do
        line=$(MOEINFER_AMX=$amx build-cpu/moeinfer bench --model /tmp/$preset-f16.gguf -p 512 -n 16 -t $t -r 2 --json 2>&1 | tail -1)
        say "$preset-f16 t$t round $round AMX=$amx: $line"
      done
    done
  done
done
