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
# Configures and builds DIR/build-cuda (a Release build with the CUDA backend) for the targets named.
build_cuda() {  # dir jobs targets...
  local dir=$1 jobs=$2
  shift 2
  cmake -S "$dir" -B "$dir/build-cuda" -G Ninja -DCMAKE_BUILD_TYPE=Release -DMOEINFER_CUDA=ON "${gtest_arg[@]}" &&
    cmake --build "$dir/build-cuda" -j"$jobs" --target "$@"
}
# build-cuda's GPU tests (a hang ends after 120 s, exit 124): log in $OUT/tests.log, the summary and the first
# failures in the report.
run_gpu_tests() {
  timeout 120 build-cuda/moeinfer_cuda_tests --gtest_brief=1 >"$OUT/tests.log" 2>&1
  say "moeinfer_cuda_tests: exit $?; $(grep -E '^\[  (PASSED|FAILED|SKIPPED) ' "$OUT/tests.log" | tr '\n' ' ')"
  grep -E '^\[  FAILED|Failure' "$OUT/tests.log" | head -30 | tee -a "$report"
}
# The JSON line of one `moeinfer bench` of a random-weight shape: binary, config name (bench/configs/NAME.json),
# bench arguments (one string, split into words). Its stderr goes to $OUT/bench.log.
bench_line() {
  # shellcheck disable=SC2086
  timeout 120 "$1" bench --model "bench/configs/$2.json" --random-weights --device cuda $3 --json \
    2>>"$OUT/bench.log" | tail -1
}
