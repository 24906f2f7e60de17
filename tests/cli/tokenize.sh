#!/usr/bin/env bash
# `moeinfer tokenize / detokenize / chat-template` on a real tokenizer (fetched by scripts/fetch_tokenizers.sh).
set -euo pipefail
BIN=$1
TOK=build/tokenizers/qwen3
if [ ! -f $TOK/tokenizer.json ]; then echo "skipped: $TOK not fetched"; exit 0; fi
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
[ "$("$BIN" tokenize --model $TOK "Hello world")" = "[9707,1879]" ]
[ "$(printf 'Hello world' | "$BIN" tokenize --model $TOK -)" = "[9707,1879]" ]
[ "$("$BIN" detokenize --model $TOK 9707,1879)" = "Hello world" ]
echo '{"messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"Hi!"}]}' >"$T/m.json"
"$BIN" chat-template --model $TOK --messages "$T/m.json" --add-generation-prompt >"$T/out"
printf '<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi!<|im_end|>\n<|im_start|>assistant\n' >"$T/want"
cmp "$T/out" "$T/want"
# Errors are one line, non-zero.
if "$BIN" detokenize --model $TOK 99999999 2>"$T/err"; then exit 1; fi
[ "$(wc -l <"$T/err")" -eq 1 ]
if "$BIN" tokenize --model tests/data/goldens/llama "x" 2>"$T/err"; then exit 1; fi
grep -q "needs the model's tokenizer" "$T/err"
echo "tokenize CLI ok"
