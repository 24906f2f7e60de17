#!/usr/bin/env bash
# Serving benchmark on the GPU machine: `moeinfer serve --device cuda` on a random-weight model shape
# (bench/configs), driven by bench/serve/bench_serve.py (the machine has Python + aiohttp, no Node).
# Usage: [KV_MIB=8000] scripts/gpu_serve_bench.sh CONFIG.json [LEVELS] [extra bench_serve.py flags]; needs
# build-cuda/moeinfer. KV_MIB sizes the KV cache (weights + cache must fit the card: 8B 16 GB, 30B-A3B 61 GB);
# SERVE_FLAGS adds `moeinfer serve` flags (e.g. --no-overlap).
set -uo pipefail
cd "$(dirname "$0")/.."
cfg=${1:?config.json}
levels=${2:-1,16,64,256}
shift $(( $# >= 2 ? 2 : 1 ))
port=$(( 20000 + RANDOM % 20000 ))
build-cuda/moeinfer serve --model "$cfg" --random-weights --device cuda --port "$port" --quiet \
  --max-num-seqs 256 --max-num-batched-tokens 8192 --kv-cache-mib "${KV_MIB:-8000}" ${SERVE_FLAGS:-} &
pid=$!
trap 'kill $pid 2>/dev/null; sleep 1; kill -9 $pid 2>/dev/null' EXIT
for _ in $(seq 1 120); do
  curl -sf "http://127.0.0.1:$port/health" >/dev/null 2>&1 && break
  kill -0 $pid 2>/dev/null || { echo "server exited"; exit 1; }
  sleep 1
done
python3 bench/serve/bench_serve.py --url "http://127.0.0.1:$port" --levels "$levels" "$@"
rc=$?
# The engine's step counters: device idle between consecutive steps (overlapped steps remove it).
curl -sf "http://127.0.0.1:$port/metrics" | grep -E "^moeinfer_(engine_steps|engine_overlapped_steps|device_step_gap)" || true
exit $rc
