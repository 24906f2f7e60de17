# Sourced by the device scripts (gpu_check.sh, gpu_ab.sh) with the report's file name: moves to the repository root
# and opens $OUT/<name> (OUT defaults to build-cuda/out), which say() prints to and appends to.
cd "$(dirname "${BASH_SOURCE[0]}")/.."
OUT=${OUT:-build-cuda/out}
mkdir -p "$OUT"
report="$OUT/$1"
: >"$report"
say() { echo "$*" | tee -a "$report"; }
