#!/bin/bash
# Issue 6 item 4: llama.cpp vs moeinfer on the same GGUF files, same 2 threads, one session, alternating per file.
# Usage: bench/llamacpp/side_by_side.sh MOEINFER_BIN OUT_DIR FILE.gguf...   (LLAMA_DIR=/work/llamacpp, THREADS=2)
# Writes OUT_DIR/<file>.llama.json, .ours-p512.json, .ours-p128.json, .ours-tg.json, .membw (read bandwidth just
# before and after our generation runs: this VM's bandwidth swings by a third within minutes) and OUT_DIR/log (uptime
# before/after each pair). llama-bench's tg64 generates from an empty context; .ours-tg.json does the same (a
# one-token prompt), while the p128 / p512 runs' generation follows their prompts.
set -euo pipefail
OURS=$1 OUT=$2; shift 2
LLAMA_BENCH=${LLAMA_DIR:-/work/llamacpp}/build/bin/llama-bench
T=${THREADS:-2}
MEMBW=${MEMBW:-$(dirname "$OURS")/membw}
mkdir -p "$OUT"
log() { echo "$*" | tee -a "$OUT/log"; }
log "date: $(date -u '+%Y-%m-%d %H:%M:%S UTC')  threads: $T"
for i in 1 2 3; do log "membw before: $("$MEMBW" "$T" 2>&1 | tail -1)"; done
for f in "$@"; do
  b=$(basename "$f" .gguf)
  log "== $b  uptime before: $(uptime)"
  "$LLAMA_BENCH" -m "$f" -t "$T" -p 128,512 -n 64 -r 3 -o json > "$OUT/$b.llama.json" 2>>"$OUT/$b.llama.err"
  "$OURS" bench --model "$f" -p 512 -n 64 -t "$T" -r 3 --json > "$OUT/$b.ours-p512.json"
  "$OURS" bench --model "$f" -p 128 -n 64 -t "$T" -r 3 --json > "$OUT/$b.ours-p128.json"
  "$MEMBW" "$T" 2>&1 | tail -1 >"$OUT/$b.membw"  # the bandwidth in the same minute as this file's generation runs
  "$OURS" bench --model "$f" -p 1 -n 64 -t "$T" -r 3 --json > "$OUT/$b.ours-tg.json"
  "$MEMBW" "$T" 2>&1 | tail -1 >>"$OUT/$b.membw"
  log "   uptime after:  $(uptime)"
done
for i in 1 2 3; do log "membw after: $("$MEMBW" "$T" 2>&1 | tail -1)"; done
