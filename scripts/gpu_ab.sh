#!/usr/bin/env bash
# Same-call A/B on the GPU machine: the working tree ("after") against the tree with ab.patch reversed ("before";
# make it with `git diff BASE > ab.patch` before the call). Both are built at once (the device has no git history),
# the after build's GPU tests run (AB_TESTS=0 skips them), then every benchmark in AB_BENCH runs on both binaries,
# alternating, AB_ROUNDS times. Everything goes to $OUT/ab.txt, logs beside it.
#   AB_BENCH="qwen3-30b-a3b:-p 512 -n 0 -r 3;llama-3.1-8b:-p 4096 -n 0 -r 2" scripts/gpu_ab.sh
# Carry .deps (GoogleTest sources) where the machine has no GoogleTest installed.
set -uo pipefail
source "$(dirname "$0")/gpu_report.sh" ab.txt
[ -f ab.patch ] || { say "gpu_ab: no ab.patch in the tree"; exit 1; }

say "gpu_ab $(date -u +%FT%TZ)"
say "$(nvidia-smi --query-gpu=name,memory.total,clocks.sm,clocks.mem --format=csv,noheader 2>&1)"

before=/tmp/ab-before
rm -rf "$before" && mkdir -p "$before"
tar --exclude=./build --exclude=./build-cuda --exclude=./.git -cf - . | tar -xf - -C "$before"
(cd "$before" && git apply -R ab.patch) || { say "gpu_ab: ab.patch does not reverse cleanly"; exit 1; }

start=$(date +%s)
tests=(moeinfer_cuda_tests)
[ "${AB_TESTS:-1}" = 0 ] && tests=()
build_cuda "$before" 8 moeinfer >"$OUT/build-before.log" 2>&1 &
pid=$!
build_cuda "$PWD" 8 moeinfer "${tests[@]}" >"$OUT/build-after.log" 2>&1
after_rc=$?
wait $pid
before_rc=$?
say "builds: before exit $before_rc, after exit $after_rc, $(( $(date +%s) - start )) s"
if [ $before_rc -ne 0 ] || [ $after_rc -ne 0 ]; then
  tail -30 "$OUT/build-before.log" "$OUT/build-after.log" | tee -a "$report"
  exit 1
fi

[ "${AB_TESTS:-1}" != 0 ] && run_gpu_tests

IFS=';' read -ra benches <<<"${AB_BENCH:-qwen3-30b-a3b:-p 512 -n 128 -r 3;llama-3.1-8b:-p 512 -n 128 -r 3}"
for round in $(seq "${AB_ROUNDS:-2}"); do
  for b in "${benches[@]}"; do
    cfg=${b%%:*} args=${b#*:}
    for side in before after; do
      bin=build-cuda/moeinfer
      [ $side = before ] && bin=$before/build-cuda/moeinfer
      say "round $round $cfg [$args] $side: $(bench_line "$bin" "$cfg" "$args")"
    done
  done
done
