// Run-time choice of the CPU kernels' instruction-set level. Every kernel file (kernel_table.h lists their entry
// points) is compiled once per level, each copy in its own namespace with its own target options; the rest of the
// program is built for the x86-64 baseline, so one binary runs on any x86-64 CPU and uses the best kernels it has.
#pragma once
#include <vector>

namespace moeinfer::cpu {

// Generic: portable C++ (the reference). Avx2: AVX2 + FMA + F16C (Haswell / Zen 1 and later). Avx512Vnni: AVX-512 F,
// BW, DQ, VL and VNNI (Cascade Lake, Ice Lake): the AVX-512 kernels, with the bf16 products and the byte permutes
// done in AVX-512F instructions. Avx512: the same plus BF16 and VBMI (Sapphire Rapids, Zen 4 and later), and AMX
// where the CPU has it. Skylake-X (no VNNI) takes the Avx2 kernels.
enum class KernelIsa { Generic, Avx2, Avx512Vnni, Avx512 };

const char* kernel_isa_name(KernelIsa isa);

// The levels this build has and this CPU can run, lowest first.
std::vector<KernelIsa> supported_kernel_isas();

// The level in use, chosen at first use: the best supported one, or the one named by MOEINFER_CPU_KERNELS
// (generic | avx2 | avx512vnni | avx512) — naming an unknown or unsupported level throws, saying which levels this CPU has.
KernelIsa active_kernel_isa();

}  // namespace moeinfer::cpu
