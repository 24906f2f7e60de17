#!/usr/bin/env bash
# Serving benchmark driver: starts `moeinfer serve` on a free loopback port, waits for /health, runs
# bench_serve.mjs over the concurrency levels, and stops the server on every exit path. Builds nothing.
# usage: bench/serve/run.sh BIN MODEL [--threads N] [--serve-args "..."] [-- bench_serve.mjs args...]
set -euo pipefail
[ $# -ge 2 ] || { sed -n 4p "$0" >&2; exit 64; }
BIN=$(realpath "$1")
MODEL=$2
shift 2
THREADS=2
SERVE_ARGS=""
while [ $# -gt 0 ]; do
    case $1 in
        --threads) THREADS=$2; shift 2 ;;
        --serve-args) SERVE_ARGS=$2; shift 2 ;;
        --) shift; break ;;
        *) echo "run.sh: unknown option $1" >&2; exit 64 ;;
    esac
done
HERE=$(cd "$(dirname "$0")" && pwd)
LOG=$(mktemp /tmp/bench_serve.XXXXXX.log)
PID=""
CLIENT=""
stop_server() {
    # The client first: it would otherwise keep sending to a server that is going away.
    if [ -n "$CLIENT" ]; then kill -TERM "$CLIENT" 2>/dev/null || true; wait "$CLIENT" 2>/dev/null || true; CLIENT=""; fi
    # SIGTERM drains (nothing should be in flight by then); SIGKILL if it does not exit within 10 s.
    if [ -n "$PID" ] && kill -0 "$PID" 2>/dev/null; then
        kill -TERM "$PID" 2>/dev/null || true
        for _ in $(seq 100); do kill -0 "$PID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$PID" 2>/dev/null || true
        wait "$PID" 2>/dev/null || true
    fi
    PID=""
}
trap stop_server EXIT
trap 'exit 130' INT TERM

# The kernel picks a free port; the tiny window before the server binds it is acceptable on a dev machine.
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
# --quiet: no per-request log line, so the server's stderr is not extra work during the measurement.
# shellcheck disable=SC2086  # SERVE_ARGS is a flag list meant to split
"$BIN" serve --model "$MODEL" --host 127.0.0.1 --port "$PORT" --threads "$THREADS" --quiet $SERVE_ARGS 2>"$LOG" &
PID=$!
for i in $(seq 600); do
    curl -sf "http://127.0.0.1:$PORT/health" >/dev/null 2>&1 && break
    kill -0 "$PID" 2>/dev/null || { echo "run.sh: server exited at start:" >&2; cat "$LOG" >&2; exit 1; }
    [ "$i" = 600 ] && { echo "run.sh: server not healthy after 60 s" >&2; cat "$LOG" >&2; exit 1; }
    sleep 0.1
done
head -1 "$LOG" >&2
RC=0
# In the background + wait: bash runs a trap only after a foreground child exits, so a SIGINT/SIGTERM would
# otherwise wait for the whole level to finish.
node "$HERE/bench_serve.mjs" --url "http://127.0.0.1:$PORT" "$@" &
CLIENT=$!
wait "$CLIENT" || RC=$?
CLIENT=""
# Server-side counters after the run: a 5xx or a still-busy KV pool would show here.
curl -s "http://127.0.0.1:$PORT/metrics" | grep -E '^moeinfer_(requests_total|kv_blocks_in_use|preemptions_total|prefix_cache_hit_ratio|engine_steps_total)' >&2 || true
stop_server
rm -f "$LOG"
exit $RC
