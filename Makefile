# The two commands: `make run` and `make test` (each installs what is missing, then builds).
BUILD ?= build
BUILD_ASAN ?= build-asan
BUILD_CUDA ?= build-cuda
CMAKE_FLAGS ?=
THREADS ?= 2
DEMO_MODEL ?= models/demo
DEMO_ARGS ?= --prompt "The old man looked at the" -n 96 --temperature 0.8 --top-p 0.95 --seed 42

.PHONY: all deps build build-cuda run test test-asan test-kernel-levels test-emulated bench clean

all: build

deps:
	@bash scripts/install_deps.sh

build: deps
	@cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=Release $(CMAKE_FLAGS) \
	  $$(command -v ccache >/dev/null && echo -DCMAKE_CXX_COMPILER_LAUNCHER=ccache) >/dev/null
	@cmake --build $(BUILD)

# The CUDA backend's library, parity tests (they skip without a GPU) and cuda_roofline; needs nvcc (/usr/local/cuda).
build-cuda: deps
	@cmake -S . -B $(BUILD_CUDA) -G Ninja -DCMAKE_BUILD_TYPE=Release -DMOEINFER_CUDA=ON $(CMAKE_FLAGS) \
	  $$(command -v ccache >/dev/null && echo -DCMAKE_CXX_COMPILER_LAUNCHER=ccache) >/dev/null
	@cmake --build $(BUILD_CUDA) --target moeinfer moeinfer_cuda_tests cuda_roofline

run: build
	$(BUILD)/moeinfer run --model $(DEMO_MODEL) $(DEMO_ARGS) --threads $(THREADS)
	@echo
	$(BUILD)/moeinfer perplexity --model $(DEMO_MODEL) --file models/demo/heldout.txt --ctx 256 --chunks 8 --threads $(THREADS)

test: build
	@if [ -f scripts/fetch_tokenizers.sh ]; then bash scripts/fetch_tokenizers.sh; fi
	ctest --test-dir $(BUILD) --output-on-failure -j2 --timeout 600

test-asan: deps
	@cmake -S . -B $(BUILD_ASAN) -G Ninja -DCMAKE_BUILD_TYPE=Debug -DMOEINFER_SANITIZE=ON \
	  -DCMAKE_CXX_FLAGS_DEBUG="-O1 -g" $$(command -v ccache >/dev/null && echo -DCMAKE_CXX_COMPILER_LAUNCHER=ccache) >/dev/null
	@cmake --build $(BUILD_ASAN)
	@if [ -f scripts/fetch_tokenizers.sh ]; then bash scripts/fetch_tokenizers.sh; fi
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  ctest --test-dir $(BUILD_ASAN) --output-on-failure -j2 --timeout 900

# The whole suite again at each lower CPU kernel level this CPU runs (src/backends/cpu/kernel_isa.h: generic, avx2,
# avx512vnni; `make test` ran the best one), so every level's kernels stay tested without another build.
test-kernel-levels: build
	@if [ -f scripts/fetch_tokenizers.sh ]; then bash scripts/fetch_tokenizers.sh; fi
	@for level in avx512vnni avx2 generic; do \
	  if ! MOEINFER_CPU_KERNELS=$$level $(BUILD)/moeinfer info --model $(DEMO_MODEL) >/dev/null 2>&1; then \
	    echo "test-kernel-levels: this CPU does not run the $$level kernels; skipped"; continue; fi; \
	  echo "test-kernel-levels: MOEINFER_CPU_KERNELS=$$level"; \
	  MOEINFER_CPU_KERNELS=$$level ctest --test-dir $(BUILD) --output-on-failure -j2 --timeout 600 || exit 1; \
	done

# The unit suite on an emulated CPU without AVX-512 (qemu-x86_64 -cpu Haswell): the avx2 kernels chosen at run time,
# and proof that no AVX-512 instruction runs outside the avx512 level (the emulator has none: it would be SIGILL).
test-emulated: build
	@if [ -f scripts/fetch_tokenizers.sh ]; then bash scripts/fetch_tokenizers.sh; fi
	qemu-x86_64 -cpu Haswell $(BUILD)/moeinfer_tests --gtest_brief=1

clean:
	rm -rf $(BUILD) $(BUILD_ASAN) $(BUILD_CUDA)
