#!/usr/bin/env bash
# Each kernel level's machine code uses only its own instructions — checked in the binary, since no emulator here
# runs AVX-512 without BF16 (Cascade Lake, Ice Lake): the functions of namespace moeinfer::cpu::<level> (objdump -d -C)
# must not contain what the level's CPUs lack. generic: no ymm / zmm register (no AVX at all); avx2: no zmm, no mask
# or upper-16 vector register (no AVX-512); avx512vnni: no AVX-512 BF16, VBMI or AMX instruction. The avx512 level
# must use VDPBF16PS, so a pattern that stopped matching could not pass unnoticed.
set -u
BIN=$1
command -v objdump >/dev/null || { echo "FAIL: objdump missing (binutils)"; exit 1; }
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
objdump -d -C --no-show-raw-insn "$BIN" >"$T/asm" || { echo "FAIL: objdump $BIN"; exit 1; }
# The instructions of each level's functions, one file per level.
awk -v dir="$T" '
  /^[0-9a-f]+ <.*>:$/ { level = ""; if (match($0, /moeinfer::cpu::(generic|avx2|avx512vnni|avx512)::/)) {
                          level = substr($0, RSTART + 15, RLENGTH - 17); n[level]++ } next }
  level != "" && /^ +[0-9a-f]+:/ { print > (dir "/" level) }
  END { for (l in n) print l, n[l] > (dir "/counts") }' "$T/asm"
fails=0
check() {  # level, forbidden regex, what
  local level=$1 re=$2 what=$3
  if ! [ -s "$T/$level" ]; then
    echo "FAIL: no functions of the $level level found in $BIN"
    fails=$((fails + 1))
    return
  fi
  local hits
  hits=$(grep -cE "$re" "$T/$level")
  if [ "$hits" -ne 0 ]; then
    echo "FAIL: the $level kernels hold $hits $what instructions, e.g.:"
    grep -E "$re" "$T/$level" | head -3
    fails=$((fails + 1))
  fi
}
check generic '%[yz]mm' "AVX"
check avx2 '%zmm|%k[0-7]|%[xy]mm(1[6-9]|2[0-9]|3[01])' "AVX-512"
bf16='vdpbf16ps|vcvtne2ps2bf16|vcvtneps2bf16' vbmi='vpermb|vpermi2b|vpermt2b|vpmultishiftqb'
amx='tdpbf16ps|ldtilecfg|tileloadd|tileloaddt1|tilestored'
check avx512vnni "\b($bf16|$vbmi|$amx)\b" "AVX-512 BF16 / VBMI / AMX"
if ! grep -qw vdpbf16ps "$T/avx512" 2>/dev/null; then
  echo "FAIL: the avx512 kernels show no vdpbf16ps: the patterns above may no longer match this objdump's output"
  fails=$((fails + 1))
fi
[ $fails -eq 0 ] && echo "kernel ISA guard: $(tr '\n' ' ' <"$T/counts")functions checked"
exit $fails
