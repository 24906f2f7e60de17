// Pins the test binaries to the exact fp32 products (see exact_arithmetic.h) before any test runs.
#include "exact_arithmetic.h"

namespace {
const bool kExactProducts = [] {
    moeinfer::cpu::set_float_gemm_arith(moeinfer::cpu::GemmArith::Fp32);
    return true;
}();
}  // namespace
