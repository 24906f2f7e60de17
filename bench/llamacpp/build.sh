#!/bin/bash
# Fetch-free rebuild of the llama.cpp peer used in bench/RESULTS.md (issue 6): checks out a commit from a local
# mirror into $LLAMA_DIR (outside the repo) and builds llama-bench, llama-quantize, llama-perplexity, llama-simple.
# Never run by `make test`. Usage: bench/llamacpp/build.sh [MIRROR_GIT_DIR] [COMMIT]
set -euo pipefail
MIRROR=${1:-/work/.mirror/unslothai+llama.cpp/repo}   # fetch tool: github:unslothai/llama.cpp (upstream history)
COMMIT=${2:-34af94cd9ab277632e27caeec2d41de2fd091b31}  # = upstream ggml-org/llama.cpp 34af94cd9
LLAMA_DIR=${LLAMA_DIR:-/work/llamacpp}
CC=${CC:-clang-19} CXX=${CXX:-clang++-19}              # apt-get install clang-19 (Debian 12 bookworm-updates)
JOBS=${JOBS:-2}
command -v "$CC" >/dev/null || apt-get install -y clang-19
if [ ! -d "$LLAMA_DIR/.git" ]; then git clone --no-checkout "$MIRROR" "$LLAMA_DIR"; fi
# The fetched mirror lacks some large blobs (test vocab files under models/); checkout reports them and goes on.
git -C "$LLAMA_DIR" -c advice.detachedHead=false checkout --force "$COMMIT" || true
test "$(git -C "$LLAMA_DIR" rev-parse HEAD)" = "$(git -C "$LLAMA_DIR" rev-parse "$COMMIT^{commit}")"
if git -C "$LLAMA_DIR" status --porcelain | grep -v '^ D models/'; then echo "unexpected missing files" >&2; exit 1; fi
cmake -S "$LLAMA_DIR" -B "$LLAMA_DIR/build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_C_COMPILER="$CC" -DCMAKE_CXX_COMPILER="$CXX" \
  -DGGML_NATIVE=ON -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_SERVER=OFF -DBUILD_SHARED_LIBS=OFF
cmake --build "$LLAMA_DIR/build" -j"$JOBS" --target llama-bench llama-quantize llama-perplexity llama-simple
git -C "$LLAMA_DIR" rev-parse HEAD
"$CXX" --version | head -1
