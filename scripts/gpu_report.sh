# Sourced by the device scripts (gpu_check.sh, gpu_ab.sh, device_cpu_check.sh) with the report's file name: moves to
# the repository root and opens $OUT/<name> (OUT defaults to build-cuda/out), which say() prints to and appends to.
cd "$(dirname "${BASH_SOURCE[0]}")/.."
OUT=${OUT:-build-cuda/out}
mkdir -p "$OUT"
report="$OUT/$1"
: >"$report"
say() { echo "$*" | tee -a "$report"; }
# GoogleTest for cmake (pass "${gtest_arg[@]}"): the installed package, else the source tree carried at .deps/googletest.
gtest_arg=()
ls /usr/include/gtest/gtest.h /usr/local/include/gtest/gtest.h >/dev/null 2>&1 ||
  gtest_arg=(-DMOEINFER_GTEST_SOURCE="$PWD/.deps/googletest")
