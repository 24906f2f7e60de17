// The extension list of this build (see cpu_isa.h), read from the compiler's macros in a translation unit compiled
// with the project's flags. Constant data only: it is read before it is safe to run code built with those flags.
#include "core/cpu_isa.h"

namespace moeinfer {

extern const char* const kCompiledIsa[];
const char* const kCompiledIsa[] = {
#if defined(__AVX__)
    "avx",
#endif
#if defined(__AVX2__)
    "avx2",
#endif
#if defined(__FMA__)
    "fma",
#endif
#if defined(__F16C__)
    "f16c",
#endif
#if defined(__BMI__)
    "bmi",
#endif
#if defined(__BMI2__)
    "bmi2",
#endif
#if defined(__AVX512F__)
    "avx512f",
#endif
#if defined(__AVX512BW__)
    "avx512bw",
#endif
#if defined(__AVX512DQ__)
    "avx512dq",
#endif
#if defined(__AVX512VL__)
    "avx512vl",
#endif
#if defined(__AVX512VNNI__)
    "avx512vnni",
#endif
#if defined(__AVX512BF16__)
    "avx512bf16",
#endif
#if defined(__AVX512VBMI__)
    "avx512vbmi",
#endif
#if defined(__AVX512VBMI2__)
    "avx512vbmi2",
#endif
#if defined(__AVX512IFMA__)
    "avx512ifma",
#endif
#if defined(__AVX512BITALG__)
    "avx512bitalg",
#endif
#if defined(__AVX512VPOPCNTDQ__)
    "avx512vpopcntdq",
#endif
#if defined(__AVX512VP2INTERSECT__)
    "avx512vp2intersect",
#endif
#if defined(__GFNI__)
    "gfni",
#endif
#if defined(__VAES__)
    "vaes",
#endif
#if defined(__VPCLMULQDQ__)
    "vpclmulqdq",
#endif
    nullptr};

}  // namespace moeinfer
