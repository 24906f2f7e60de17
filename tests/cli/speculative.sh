#!/usr/bin/env bash
# `moeinfer run --draft-model PATH` and `--spec-ngram K` print the same greedy tokens as plain decoding (a golden
# model drafted by another golden model of the same vocabulary), report acceptance, and reject bad flags.
set -euo pipefail
BIN=$1
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
G=tests/data/goldens
ARGS=(--model $G/llama --prompt-tokens 435,87,71 -n 24 --temperature 0 --json)
"$BIN" run "${ARGS[@]}" 2>/dev/null | python3 -c "import json, sys; print(json.load(sys.stdin)['tokens'])" >"$T/plain"
"$BIN" run "${ARGS[@]}" --draft-model $G/mixtral --spec-draft 3 2>"$T/err" |
    python3 -c "import json, sys; print(json.load(sys.stdin)['tokens'])" >"$T/draft"
grep -q "speculative (draft model)" "$T/err"
"$BIN" run "${ARGS[@]}" --draft-model $G/llama 2>"$T/err" | python3 -c "import json, sys; print(json.load(sys.stdin)['tokens'])" >"$T/self"
grep -q "(100.0%)" "$T/err"
cmp "$T/plain" "$T/draft"
cmp "$T/plain" "$T/self"
if "$BIN" run "${ARGS[@]}" --spec-draft 2 2>"$T/err"; then exit 1; fi
grep -q "draft-model" "$T/err"
if "$BIN" run "${ARGS[@]}" --draft-model $G/qwen3 2>"$T/err"; then exit 1; fi
grep -q "vocab size" "$T/err"
echo "speculative cli ok: $(cat "$T/plain")"
