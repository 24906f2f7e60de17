#!/usr/bin/env bash
# Bad input to `moeinfer run`: each case must exit non-zero with ONE clear error line naming the problem, never crash.
set -u
BIN=$1
G=tests/data/goldens/qwen3_moe
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fails=0

# expect NAME PATTERN -- ARGS...: non-zero exit below 128 (no signal), one stderr line, containing PATTERN.
expect() {
  local name=$1 pattern=$2
  shift 3
  "$BIN" "$@" >"$T/out" 2>"$T/err"
  local rc=$?
  local lines
  lines=$(wc -l <"$T/err")
  if [ $rc -eq 0 ] || [ $rc -ge 128 ] || [ "$lines" -ne 1 ] || ! grep -q -- "$pattern" "$T/err"; then
    echo "FAIL $name: rc=$rc lines=$lines stderr: $(cat "$T/err")"
    fails=$((fails + 1))
  else
    echo "ok   $name: $(cat "$T/err")"
  fi
}

model_copy() {  # fresh copy of the golden model in $T/$1
  rm -rf "$T/$1" && mkdir -p "$T/$1" && cp $G/config.json $G/model.safetensors "$T/$1/"
}

expect missing_file "does not exist" -- run --model "$T/nope" --prompt-tokens 1,2
expect no_model_flag "missing required flag --model" -- run --prompt-tokens 1,2
expect unknown_flag "unknown flag" -- run --model $G --prompt-tokens 1 --bogus
expect bad_token_list "not a valid token id" -- run --model $G --prompt-tokens 1,x,3
expect token_out_of_range "out of range (vocab size 512)" -- run --model $G --prompt-tokens 1,512
expect prompt_too_long "more than the context length" -- run --model $G --prompt-tokens "$(seq -s, 1 5000 | sed 's/[0-9]*/7/g')"
expect bad_temperature "temperature must be >= 0" -- run --model $G --prompt-tokens 1 --temperature -1
expect bad_top_p "top_p must be in (0, 1]" -- run --model $G --prompt-tokens 1 --top-p 1.5

model_copy arch
sed -i 's/"model_type": "qwen3_moe"/"model_type": "gpt_bigcode"/' "$T/arch/config.json"
expect unknown_arch "unsupported architecture 'gpt_bigcode'" -- run --model "$T/arch" --prompt-tokens 1

model_copy heads
sed -i 's/"num_attention_heads": 4/"num_attention_heads": 0/' "$T/heads/config.json"
expect config_range "num_attention_heads = 0 must be positive" -- run --model "$T/heads" --prompt-tokens 1

model_copy kvheads
sed -i 's/"num_key_value_heads": 2/"num_key_value_heads": 3/' "$T/kvheads/config.json"
expect config_divisible "does not divide num_attention_heads" -- run --model "$T/kvheads" --prompt-tokens 1

model_copy badjson
printf '{"model_type": "qwen3_moe", ' >"$T/badjson/config.json"
expect config_json "config.json" -- run --model "$T/badjson" --prompt-tokens 1

model_copy trunc_st
truncate -s 100000 "$T/trunc_st/model.safetensors"
expect safetensors_truncated "model.safetensors" -- run --model "$T/trunc_st" --prompt-tokens 1

model_copy hdr_st
printf '\xff\xff\xff\xff\x00\x00\x00\x00' | dd of="$T/hdr_st/model.safetensors" conv=notrunc status=none
expect safetensors_header_len "header" -- run --model "$T/hdr_st" --prompt-tokens 1

model_copy shape_st
# Change one tensor's declared shape so its byte size no longer matches its offsets (header length unchanged).
/usr/bin/env python3 - "$T/shape_st/model.safetensors" <<'PY'
import sys, struct, json
p = sys.argv[1]
b = bytearray(open(p, 'rb').read())
n = struct.unpack('<Q', b[:8])[0]
h = b[8:8 + n].decode()
h2 = h.replace('"shape":[8,64]', '"shape":[9,64]', 1)
assert h2 != h and len(h2) == len(h)
b[8:8 + n] = h2.encode()
open(p, 'wb').write(b)
PY
expect safetensors_dtype_size "bytes" -- run --model "$T/shape_st" --prompt-tokens 1

"$BIN" convert --model $G --out "$T/m.gguf" --type BF16 >/dev/null || { echo "FAIL convert"; fails=$((fails + 1)); }
cp "$T/m.gguf" "$T/trunc.gguf" && truncate -s 5000 "$T/trunc.gguf"
expect gguf_truncated "GGUF" -- run --model "$T/trunc.gguf" --prompt-tokens 1
cp "$T/m.gguf" "$T/magic.gguf" && printf 'XXXX' | dd of="$T/magic.gguf" conv=notrunc status=none
expect gguf_magic "magic" -- run --model "$T/magic.gguf" --prompt-tokens 1
cp "$T/m.gguf" "$T/count.gguf" && printf '\xff\xff\xff\xff\xff\xff\xff\x0f' | dd of="$T/count.gguf" bs=1 seek=8 conv=notrunc status=none
expect gguf_tensor_count "tensor" -- run --model "$T/count.gguf" --prompt-tokens 1

# Devices: an unknown name, CUDA where this build or machine has none, random weights without a GPU.
expect device_unknown "expected cpu, cuda or cuda:N" -- run --model $G --prompt-tokens 1 --device tpu
expect device_cuda_absent "CUDA" -- run --model $G --prompt-tokens 1 --device cuda
expect random_weights_cpu "GPU only" -- run --model bench/configs/llama-3.1-8b.json --random-weights --prompt-tokens 1
expect random_weights_no_config "does not exist" -- bench --model "$T/none.json" --random-weights --device cuda
expect bench_batch_range "-b must be in 1..4096" -- bench --model $G -b 0

[ $fails -eq 0 ] && echo "all bad-input cases behaved" || { echo "$fails case(s) failed"; exit 1; }
