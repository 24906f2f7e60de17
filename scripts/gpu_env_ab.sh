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
if ! build_cuda . 16 "${targets[@]}" >"$OUT/build.log" 2>&1; then
  say "BUILD FAILED"; tail -40 "$OUT/build.log" | tee -a "$report"; exit 1
fi
say "build: $(( $(date +%s) - start )) s"
[ "${ENV_AB_TESTS:-1}" != 0 ] && run_gpu_tests
IFS=';' read -ra variants <<<"${ENV_AB_VARIANTS:?name the variants}"
IFS=';' read -ra benches <<<"${ENV_AB_BENCH:-qwen3-30b-a3b:-p 512 -n 128 -r 3;llama-3.1-8b:-p 512 -n 128 -r 3}"
for round in $(seq "${ENV_AB_ROUNDS:-2}"); do
  for b in "${benches[@]}"; do
    cfg=${b%%:*} args=${b#*:}
    for v in "${variants[@]}"; do
      label=${v%%:*} envs=${v#*:}
      # shellcheck disable=SC2086
      say "round $round $cfg [$args] $label: $(export $envs; bench_line build-cuda/moeinfer "$cfg" "$args")"
    done
  done
done
