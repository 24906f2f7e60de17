// The public kernel functions (kernel_table.h): each calls the same function of the level chosen once per process.
// Built for the x86-64 baseline like the rest of the program, so this choice runs on any x86-64 CPU.
#include <algorithm>
#include <cstdlib>
#include <stdexcept>
#include <string>

#include "backends/cpu/kernel_isa.h"
#include "backends/cpu/kernel_table.h"
#include "core/cpu_isa.h"

namespace moeinfer::cpu {

namespace generic { extern const CpuKernels kKernels; }
#if defined(__x86_64__)  // CMakeLists.txt builds the AVX levels for x86-64 only
namespace avx2 { extern const CpuKernels kKernels; }
namespace avx512vnni { extern const CpuKernels kKernels; }
namespace avx512 { extern const CpuKernels kKernels; }
#endif

const char* kernel_isa_name(KernelIsa isa) {
    switch (isa) {
        case KernelIsa::Generic: return "generic";
        case KernelIsa::Avx2: return "avx2";
        case KernelIsa::Avx512Vnni: return "avx512vnni";
        case KernelIsa::Avx512: return "avx512";
    }
    return "?";
}

std::vector<KernelIsa> supported_kernel_isas() {
    std::vector<KernelIsa> out = {KernelIsa::Generic};
#if defined(__x86_64__)
    // The extensions each level's target pragma (kernel_variant.h) lets the compiler use.
    static const std::vector<std::string> kAvx2 = {"avx2", "fma", "f16c", "bmi", "bmi2"};
    static const std::vector<std::string> kAvx512Vnni = {"avx512f", "avx512bw", "avx512dq", "avx512vl",
                                                         "avx512vnni"};
    static const std::vector<std::string> kAvx512 = {"avx512bf16", "avx512vbmi"};  // beyond avx512vnni
    const auto cpu = cpu_isa();  // as the CPU and the OS report them (the OS must save the wider registers)
    if (!missing_isa(kAvx2, cpu).empty()) return out;
    out.push_back(KernelIsa::Avx2);
    if (!missing_isa(kAvx512Vnni, cpu).empty()) return out;
    out.push_back(KernelIsa::Avx512Vnni);
    if (missing_isa(kAvx512, cpu).empty()) out.push_back(KernelIsa::Avx512);
#endif
    return out;
}

const CpuKernels& kernel_table(KernelIsa isa) {
    const std::vector<KernelIsa> supported = supported_kernel_isas();
    if (std::find(supported.begin(), supported.end(), isa) == supported.end())
        throw std::runtime_error(std::string("CPU kernels: this CPU cannot run the ") + kernel_isa_name(isa) + " kernels");
    switch (isa) {
#if defined(__x86_64__)
        case KernelIsa::Avx512: return avx512::kKernels;
        case KernelIsa::Avx512Vnni: return avx512vnni::kKernels;
        case KernelIsa::Avx2: return avx2::kKernels;
#endif
        default: return generic::kKernels;
    }
}

namespace {

KernelIsa choose_kernel_isa() {
    const std::vector<KernelIsa> supported = supported_kernel_isas();
    const char* env = std::getenv("MOEINFER_CPU_KERNELS");
    if (!env || !*env) return supported.back();
    std::string names;
    for (KernelIsa s : supported) {
        if (std::string(env) == kernel_isa_name(s)) return s;
        names += std::string(names.empty() ? "" : ", ") + kernel_isa_name(s);
    }
    throw std::runtime_error("MOEINFER_CPU_KERNELS=" + std::string(env) + ": not a kernel level this CPU runs (" +
                             names + ")");
}

struct Active {
    KernelIsa isa;
    const CpuKernels* kernels;
};

const Active& active() {
    static const Active a = [] {
        const KernelIsa isa = choose_kernel_isa();
        return Active{isa, &kernel_table(isa)};
    }();
    return a;
}

}  // namespace

KernelIsa active_kernel_isa() { return active().isa; }

#define MOEINFER_KERNEL_FORWARD(ret, name, params, args) \
    ret name params { return active().kernels->name args; }
MOEINFER_CPU_KERNELS(MOEINFER_KERNEL_FORWARD)
#undef MOEINFER_KERNEL_FORWARD

}  // namespace moeinfer::cpu
