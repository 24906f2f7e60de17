// The last include of a kernel file (kernel_table.h lists the kernels): the file is compiled once per instruction-
// set level (CMakeLists.txt: MOEINFER_KERNEL_NS names the level's namespace, MOEINFER_KERNEL_LEVEL its rank), and
// from here on its code is built for that level. The level is set with #pragma GCC target, not -march on the file:
// the standard library's templates are declared above it, so the copies of them this file emits stay baseline
// code — with -march they would be AVX-512 copies that the linker may pick for the whole program. Headers included
// after this one (simd.h, float_rows.h, kquant_unpack.h) must not include library headers beyond those below.
#pragma once
#ifndef MOEINFER_KERNEL_NS
#error "kernel files are compiled per instruction-set level (CMakeLists.txt MOEINFER_KERNEL_FILES)"
#endif

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#include "backends/cpu/kernel_table.h"
#include "core/half.h"

// What this copy may use: AVX2 + FMA + F16C from level 1 (avx2), AVX-512 F, BW, DQ, VL and VNNI from level 2
// (avx512vnni), AVX-512 BF16 and VBMI too from level 3 (avx512). Code that needs the last two says so with
// MOEINFER_AVX512BF16 / MOEINFER_VBMI and keeps an AVX-512F form for level 2.
#define MOEINFER_AVX2 (MOEINFER_KERNEL_LEVEL >= 1)
#define MOEINFER_AVX512 (MOEINFER_KERNEL_LEVEL >= 2)
#define MOEINFER_AVX512BF16 (MOEINFER_KERNEL_LEVEL >= 3)
#define MOEINFER_VBMI (MOEINFER_KERNEL_LEVEL >= 3)

#if MOEINFER_AVX2
#include <immintrin.h>
#endif
#if MOEINFER_AVX512BF16
#pragma GCC target("avx,avx2,fma,f16c,bmi,bmi2,avx512f,avx512bw,avx512dq,avx512vl,avx512vnni,avx512bf16,avx512vbmi")
#elif MOEINFER_AVX512
#pragma GCC target("avx,avx2,fma,f16c,bmi,bmi2,avx512f,avx512bw,avx512dq,avx512vl,avx512vnni")
#elif MOEINFER_AVX2
#pragma GCC target("avx,avx2,fma,f16c,bmi,bmi2")
#endif

#if defined(__GNUC__) && !defined(__clang__)
// GCC 12's AVX-512 headers fill the unused pass-through operand of unmasked shuffles with _mm512_undefined_ps(),
// which -Wmaybe-uninitialized then reports at every inlined call; with an all-ones mask that operand is never read.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif

namespace moeinfer::cpu::MOEINFER_KERNEL_NS {
#define MOEINFER_KERNEL_DECLARATION(ret, name, params, args) ret name params;
MOEINFER_CPU_KERNELS(MOEINFER_KERNEL_DECLARATION)
#undef MOEINFER_KERNEL_DECLARATION
}  // namespace moeinfer::cpu::MOEINFER_KERNEL_NS
