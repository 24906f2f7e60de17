#!/usr/bin/env bash
# One binary on CPUs it was not built on: the CLI under qemu-x86_64 on an emulated Haswell (AVX2, no AVX-512: any
# AVX-512 instruction would be SIGILL there) and on qemu64 (x86-64 baseline, no AVX at all) picks the avx2 and the
# generic kernels, and greedy text equals the native run at the same level; asking for a level the CPU lacks is one
# clear error, as is a level name that does not exist. `make test-emulated` runs the whole unit suite on the
# emulated Haswell.
set -u
BIN=$1
unset MOEINFER_CPU_KERNELS  # each run below sets its own level
command -v qemu-x86_64 >/dev/null || { echo "FAIL: qemu-x86_64 missing (scripts/install_deps.sh installs qemu-user)"; exit 1; }
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fails=0
ARGS=(run --model models/demo --prompt "The old man looked at the" -n 24 --ignore-eos --temperature 0 --threads 2)

for case in "Haswell avx2" "qemu64 generic"; do
  set -- $case
  cpu=$1 level=$2
  qemu-x86_64 -cpu "$cpu" "$BIN" info --model models/demo >"$T/info" 2>/dev/null
  if ! grep -q "^CPU kernels:  $level " "$T/info"; then
    echo "FAIL $cpu: expected the $level kernels: $(grep 'CPU kernels' "$T/info")"
    fails=$((fails + 1))
  fi
  qemu-x86_64 -cpu "$cpu" "$BIN" "${ARGS[@]}" >"$T/emulated" 2>"$T/err"
  rc=$?
  MOEINFER_CPU_KERNELS=$level "$BIN" "${ARGS[@]}" >"$T/native" 2>/dev/null
  grep -v '^prompt:' "$T/emulated" >"$T/emulated_text"  # the last line is timings
  grep -v '^prompt:' "$T/native" >"$T/native_text"
  if [ $rc -ne 0 ] || ! [ -s "$T/native_text" ] || ! cmp -s "$T/emulated_text" "$T/native_text"; then
    echo "FAIL $cpu: rc=$rc, text '$(cat "$T/emulated_text")' vs native $level '$(cat "$T/native_text")' $(tail -2 "$T/err")"
    fails=$((fails + 1))
  else
    echo "ok   $cpu ($level): $(tr '\n' ' ' <"$T/emulated_text")"
  fi
done

MOEINFER_CPU_KERNELS=avx512 qemu-x86_64 -cpu Haswell "$BIN" "${ARGS[@]}" >/dev/null 2>"$T/err"
rc=$?
if [ $rc -eq 0 ] || [ $rc -ge 128 ] || ! grep -q "MOEINFER_CPU_KERNELS=avx512: not a kernel level this CPU runs (generic, avx2)" "$T/err"; then
  echo "FAIL avx512 on Haswell: rc=$rc $(grep -v '^qemu' "$T/err")"
  fails=$((fails + 1))
else
  echo "ok   avx512 on Haswell refused: $(grep -v '^qemu' "$T/err")"
fi
# A level name that is no level at all: the same one error line, natively.
MOEINFER_CPU_KERNELS=sse9 "$BIN" "${ARGS[@]}" >/dev/null 2>"$T/err"
rc=$?
if [ $rc -eq 0 ] || [ $rc -ge 128 ] || [ "$(wc -l <"$T/err")" -ne 1 ] ||
   ! grep -q "MOEINFER_CPU_KERNELS=sse9: not a kernel level this CPU runs (generic" "$T/err"; then
  echo "FAIL unknown level: rc=$rc $(cat "$T/err")"
  fails=$((fails + 1))
else
  echo "ok   unknown level refused: $(cat "$T/err")"
fi
exit $fails
