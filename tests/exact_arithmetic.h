// The CPU's arithmetic for products against F16 / BF16 weights (cpu::GemmArith) in tests.
// The test binaries run the exact fp32 products (exact_arithmetic.cpp): most tests hold the CPU to fp32 references —
// HF transformers' fp32 goldens, naive kernels. Tests of the default bf16 arithmetic select it with this guard.
#pragma once
#include "backends/cpu/matmul.h"

namespace moeinfer::test {

class GemmArithGuard {
public:
    explicit GemmArithGuard(cpu::GemmArith arith) { cpu::set_float_gemm_arith(arith); }
    ~GemmArithGuard() { cpu::set_float_gemm_arith(saved_); }
    GemmArithGuard(const GemmArithGuard&) = delete;
    GemmArithGuard& operator=(const GemmArithGuard&) = delete;

private:
    cpu::GemmArith saved_ = cpu::float_gemm_arith();
};

}  // namespace moeinfer::test
