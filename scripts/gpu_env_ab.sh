#!/usr/bin/env bash
# Same-call comparison of run-time settings on the GPU machine: one build of the working tree, its GPU tests
# (ENV_AB_TESTS=0 skips them), then every benchmark of ENV_AB_BENCH under every variant of ENV_AB_VARIANTS,
# alternating, ENV_AB_ROUNDS times. A variant is "label:NAME=value NAME=value" (environment of that run). Report in
# $OUT/env_ab.txt, logs beside it. Carry .deps where the machine has no GoogleTest.
#   ENV_AB_VARIANTS="off:X=0;on:X=1" ENV_AB_BENCH="qwen3-30b-a3b:-p 512 -n 128 -r 3" scripts/gpu_env_ab.sh
set -uo pipefail
source "$(dirname "$0")/gpu_report.sh" env_ab.txt
say "gpu_env_ab $(date -u +%FT%TZ)"
say "$(nvidia-smi --query-gpu=name,memory.total,clocks.sm,clocks.mem --format=csv,noheader 2>&1)"
targets=(moeinfer moeinfer_cuda_tests)
[ "${ENV_AB_TESTS:-1}" = 0 ] && targets=(moeinfer)
start=$(date +%s)
if ! cmake -S . -B build-cuda -G Ninja -DCMAKE_BUILD_TYPE=Release -DMOEINFER_CUDA=ON "${gtest_arg[@]}" \
     >"$OUT/build.log" 2>&1 || ! cmake --build build-cuda -j16 --target "${targets[@]}" >>"$OUT/build.log" 2>&1; then
  say "BUILD FAILED"; tail -40 "$OUT/build.log" | tee -a "$report"; exit 1
fi
say "build: $(( $(date +%s) - start )) s"
if [ "${ENV_AB_TESTS:-1}" != 0 ]; then
  build-cuda/moeinfer_cuda_tests --gtest_brief=1 >"$OUT/tests.log" 2>&1
  say "moeinfer_cuda_tests: exit $?; $(grep -E '^\[  (PASSED|FAILED|SKIPPED) ' "$OUT/tests.log" | tr '\n' ' ')"
  grep -E '^\[  FAILED|Failure' "$OUT/tests.log" | head -30 | tee -a "$report"
fi
IFS=';' read -ra variants <<<"${ENV_AB_VARIANTS:?name the variants}"
IFS=';' read -ra benches <<<"${ENV_AB_BENCH:-qwen3-30b-a3b:-p 512 -n 128 -r 3;llama-3.1-8b:-p 512 -n 128 -r 3}"
for round in $(seq "${ENV_AB_ROUNDS:-2}"); do
  for b in "${benches[@]}"; do
    cfg=${b%%:*} args=${b#*:}
    for v in "${variants[@]}"; do
      label=${v%%:*} envs=${v#*:}
      # shellcheck disable=SC2086
      line=$(env $envs timeout 300 build-cuda/moeinfer bench --model "bench/configs/$cfg.json" --random-weights \
             --device cuda $args --json 2>>"$OUT/bench.log" | tail -1)
      say "round $round $cfg [$args] $label: $line"
    done
  done
done
