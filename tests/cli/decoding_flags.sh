#!/usr/bin/env bash
# `moeinfer run` decoding flags on the demo model: a stop string ends generation and is not printed, stop token
# ids end it, --n returns n candidates with candidate i equal to a plain run seeded seed + i.
set -euo pipefail
BIN=$1
M=models/demo
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
run() { "$BIN" run --model $M --prompt "And God said" --temperature 0 --json "$@" 2>/dev/null; }

run -n 60 >"$T/plain.json"
run -n 60 --stop "Philistines" >"$T/stop.json"
python3 - "$T/plain.json" "$T/stop.json" <<'PY'
import json, sys
plain, stop = (json.load(open(p)) for p in sys.argv[1:3])
assert "Philistines" in plain["text"], "the greedy continuation must contain the stop string for this test"
cut = plain["text"].index("Philistines")
assert stop["text"] == plain["text"][:cut], (stop["text"], plain["text"][:cut])
assert len(stop["tokens"]) < len(plain["tokens"]) and stop["tokens"] == plain["tokens"][:len(stop["tokens"])]
print("stop string ok")
PY
third=$(python3 -c "import json; print(json.load(open('$T/plain.json'))['tokens'][2])")
run -n 60 --stop-token-ids "$third" >"$T/ids.json"
python3 -c "
import json; d = json.load(open('$T/ids.json')); p = json.load(open('$T/plain.json'))
k = p['tokens'].index($third)
assert d['tokens'] == p['tokens'][:k + 1], (d['tokens'], p['tokens'][:k + 1])
print('stop token ids ok')"
"$BIN" run --model $M --prompt "And God said" --temperature 0.9 --seed 5 -n 16 --n 3 --json 2>/dev/null >"$T/n.json"
"$BIN" run --model $M --prompt "And God said" --temperature 0.9 --seed 6 -n 16 --json 2>/dev/null >"$T/s6.json"
python3 -c "
import json; n = json.load(open('$T/n.json')); s = json.load(open('$T/s6.json'))
assert len(n['choices']) == 3, n
assert n['choices'][1]['tokens'] == s['tokens'], (n['choices'][1]['tokens'], s['tokens'])
print('--n ok')"
