#!/usr/bin/env bash
# `moeinfer quantize`: every file type loads and runs; the per-tensor types follow llama.cpp's rules (rows of 64
# are not a multiple of 256, so K types fall back to Q5_0/Q5_1/Q8_0 as llama-quantize does); BF16 reproduces
# the HF greedy tokens and Q8_0 follows them until a near tie (golden top1-top2 margin < 0.1).
set -euo pipefail
BIN=$1
export MOEINFER_BF16_GEMM=0  # held to HF's fp32 goldens: the exact fp32 products, not the default bf16 ones
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT

# name -> type for every tensor of a GGUF file (reads the header only).
cat >"$T/types.py" <<'PY'
import struct, sys
NAMES = {0: "F32", 1: "F16", 2: "Q4_0", 6: "Q5_0", 7: "Q5_1", 8: "Q8_0", 12: "Q4_K", 13: "Q5_K", 14: "Q6_K", 30: "BF16"}
f = open(sys.argv[1], "rb")
def rd(fmt): return struct.unpack("<" + fmt, f.read(struct.calcsize("<" + fmt)))[0]
def rstr(): return f.read(rd("Q")).decode()
SIZES = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}
def skip(t):
    if t == 8: rstr()
    elif t == 9:
        et, n = rd("I"), rd("Q")
        for _ in range(n): skip(et)
    else: rd(SIZES[t])
assert f.read(4) == b"GGUF" and rd("I") == 3
nt, nkv = rd("Q"), rd("Q")
kv = {}
for _ in range(nkv):
    k, t = rstr(), rd("I")
    if t == 4: kv[k] = rd("I")
    else: skip(t)
print("file_type", kv.get("general.file_type"))
for _ in range(nt):
    name, nd = rstr(), rd("I")
    dims = [rd("Q") for _ in range(nd)]
    print(name, NAMES.get(rd("I"), "?"))
    rd("Q")
PY

G=tests/data/goldens/llama
for TYPE in Q4_K_M Q4_K_S Q5_K_M Q6_K Q8_0 Q4_0 F16 BF16; do
    "$BIN" quantize $G "$T/$TYPE.gguf" --type $TYPE >"$T/$TYPE.out" 2>"$T/$TYPE.err"
    grep -q "wrote $T/$TYPE.gguf ($TYPE; matrices:" "$T/$TYPE.out"
    python3 "$T/types.py" "$T/$TYPE.gguf" >"$T/$TYPE.types"
    for i in 0 1 2; do
        P=$(python3 -c "import json; print(','.join(map(str, json.load(open('$G/golden.json'))['prompts'][$i])))")
        "$BIN" run --model "$T/$TYPE.gguf" --prompt-tokens "$P" -n 24 --temperature 0 --json --threads 2 \
            >"$T/$TYPE.$i.json" 2>/dev/null
    done
done

expect() {  # expect FILE.types TENSOR TYPE
    grep -qx "$2 $3" "$T/$1.types" || { echo "$1: $2 is $(grep "^$2 " "$T/$1.types"), expected $3"; exit 1; }
}
# llama.cpp numbering of general.file_type.
for pair in Q4_K_M:15 Q4_K_S:14 Q5_K_M:17 Q6_K:18 Q8_0:7 Q4_0:2 F16:1 BF16:32; do
    grep -qx "file_type ${pair#*:}" "$T/${pair%:*}.types" || { echo "${pair%:*}: wrong general.file_type"; exit 1; }
done
# Q4_K_M, 2 layers: use_more_bits is true for layer 1 only; Q6_K there falls back to Q8_0, Q4_K to Q5_0,
# output.weight (row 64, not a multiple of 256) goes straight to Q8_0. Norms stay F32.
expect Q4_K_M output.weight Q8_0
expect Q4_K_M token_embd.weight Q5_0
expect Q4_K_M blk.0.attn_v.weight Q5_0
expect Q4_K_M blk.1.attn_v.weight Q8_0
expect Q4_K_M blk.0.ffn_down.weight Q5_0
expect Q4_K_M blk.1.ffn_down.weight Q8_0
expect Q4_K_M blk.1.attn_q.weight Q5_0
expect Q4_K_M blk.0.attn_norm.weight F32
# Q4_K_S: the first 4 attn_v get Q5_K (-> Q5_1); ffn_down of layer < n/8 (none of 2) stays Q4_K (-> Q5_0).
expect Q4_K_S blk.1.attn_v.weight Q5_1
expect Q4_K_S blk.0.ffn_down.weight Q5_0
# Q5_K_M: Q5_K -> Q5_1, the use_more_bits tensors Q6_K -> Q8_0.
expect Q5_K_M blk.0.attn_q.weight Q5_1
expect Q5_K_M blk.1.ffn_down.weight Q8_0
expect Q6_K blk.0.attn_q.weight Q8_0
# Q4_0: output.weight is promoted to Q6_K, which a row of 64 turns into Q8_0.
expect Q4_0 output.weight Q8_0
expect Q4_0 blk.0.attn_q.weight Q4_0
expect BF16 blk.0.attn_q.weight BF16
expect F16 output.weight F16
grep -q "fallback: blk.1.attn_v.weight: Q6_K -> Q8_0 (row 64)" "$T/Q4_K_M.err"

python3 - "$T" "$G/golden.json" <<'PY'
import json, sys
t, gold = sys.argv[1], json.load(open(sys.argv[2]))
for i in range(3):
    bf16 = json.load(open(f"{t}/BF16.{i}.json"))["tokens"]
    assert bf16 == gold["greedy"][i], (i, bf16, gold["greedy"][i])
    q8 = json.load(open(f"{t}/Q8_0.{i}.json"))["tokens"]
    for k, (a, b) in enumerate(zip(q8, bf16)):
        if a != b:
            assert gold["margins"][i][k] < 0.1, f"prompt {i}: Q8_0 differs at step {k} (margin {gold['margins'][i][k]})"
            break
    for typ in ["Q4_K_M", "Q4_K_S", "Q5_K_M", "Q6_K", "Q4_0", "F16"]:
        out = json.load(open(f"{t}/{typ}.{i}.json"))
        assert len(out["tokens"]) == 24 and all(0 <= x < gold["vocab_size"] for x in out["tokens"]), typ
print("quantized runs ok")
PY

# GGUF input (llama arch: q/k rows already in pair order, rope_freqs tensor passed through): requantizing the
# BF16 file gives the same tokens as quantizing the HF directory.
P=$(python3 -c "import json; print(','.join(map(str, json.load(open('$G/golden.json'))['prompts'][1])))")
for TYPE in BF16 Q8_0; do
    "$BIN" quantize "$T/BF16.gguf" "$T/re_$TYPE.gguf" --type $TYPE >/dev/null 2>&1
    "$BIN" run --model "$T/re_$TYPE.gguf" --prompt-tokens "$P" -n 24 --temperature 0 --json --threads 2 \
        2>/dev/null | python3 -c "import json,sys; print(json.load(sys.stdin)['tokens'])" >"$T/re_$TYPE.tok"
    python3 -c "import json; print(json.load(open('$T/$TYPE.1.json'))['tokens'])" | cmp - "$T/re_$TYPE.tok"
done

# MoE (8 experts, layer 1 sparse): the router stays F32, 8-expert files keep attn_v/attn_k at Q8_0 and bump
# attn_output to Q5_K (-> Q5_1 for rows of 128), as llama.cpp does for Mixtral-style models; the file runs.
M=tests/data/goldens/qwen3_moe
"$BIN" quantize $M "$T/moe.gguf" --type Q4_K_M >/dev/null 2>&1
python3 "$T/types.py" "$T/moe.gguf" >"$T/moe.types"
expect moe blk.1.ffn_gate_inp.weight F32
expect moe blk.1.ffn_down_exps.weight Q5_0
expect moe blk.0.attn_v.weight Q8_0
expect moe blk.0.attn_k.weight Q8_0
expect moe blk.0.attn_output.weight Q5_1
"$BIN" run --model "$T/moe.gguf" --prompt-tokens 1,2,3 -n 4 --temperature 0 --json --threads 2 >/dev/null 2>&1

# Bad input: unknown type and missing arguments are one-line errors.
! "$BIN" quantize $G "$T/x.gguf" --type Q3_K_L 2>"$T/err" && grep -q "Q3_K_L" "$T/err"
! "$BIN" quantize $G 2>"$T/err" && grep -q "IN and OUT" "$T/err"
echo "quantize ok"
