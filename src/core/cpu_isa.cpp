// Compiled for the x86-64 baseline (CMakeLists.txt), so that the check below can run on any x86-64 CPU.
#include "core/cpu_isa.h"

#include <unistd.h>

#include <cstdio>

namespace moeinfer {

extern const char* const kCompiledIsa[];  // cpu_isa_compiled.cpp

std::vector<std::string> compiled_isa() {
    std::vector<std::string> out;
    for (const char* const* p = kCompiledIsa; *p; ++p) out.emplace_back(*p);
    return out;
}

std::vector<std::pair<std::string, bool>> cpu_isa() {
#if defined(__x86_64__) && defined(__GNUC__)
    __builtin_cpu_init();
    // __builtin_cpu_supports takes only string literals, hence one line per extension.
    return {{"avx", __builtin_cpu_supports("avx")},
            {"avx2", __builtin_cpu_supports("avx2")},
            {"fma", __builtin_cpu_supports("fma")},
            {"f16c", __builtin_cpu_supports("f16c")},
            {"bmi", __builtin_cpu_supports("bmi")},
            {"bmi2", __builtin_cpu_supports("bmi2")},
            {"avx512f", __builtin_cpu_supports("avx512f")},
            {"avx512bw", __builtin_cpu_supports("avx512bw")},
            {"avx512dq", __builtin_cpu_supports("avx512dq")},
            {"avx512vl", __builtin_cpu_supports("avx512vl")},
            {"avx512vnni", __builtin_cpu_supports("avx512vnni")},
            {"avx512bf16", __builtin_cpu_supports("avx512bf16")},
            {"avx512vbmi", __builtin_cpu_supports("avx512vbmi")},
            {"avx512vbmi2", __builtin_cpu_supports("avx512vbmi2")},
            {"avx512ifma", __builtin_cpu_supports("avx512ifma")},
            {"avx512bitalg", __builtin_cpu_supports("avx512bitalg")},
            {"avx512vpopcntdq", __builtin_cpu_supports("avx512vpopcntdq")},
            {"avx512vp2intersect", __builtin_cpu_supports("avx512vp2intersect")},
            {"gfni", __builtin_cpu_supports("gfni")},
            {"vaes", __builtin_cpu_supports("vaes")},
            {"vpclmulqdq", __builtin_cpu_supports("vpclmulqdq")}};
#else
    return {};
#endif
}

std::vector<std::string> missing_isa(const std::vector<std::string>& compiled,
                                     const std::vector<std::pair<std::string, bool>>& cpu) {
    std::vector<std::string> out;
    for (const std::string& name : compiled)
        for (const auto& [n, ok] : cpu)
            if (n == name && !ok) out.push_back(name);
    return out;
}

namespace {

// Priority 101: before every other static initializer of the program (those of code built with the project's
// flags included). Plain C stdio and _exit only: nothing here may need the missing instructions.
__attribute__((constructor(101))) void exit_if_isa_missing() {
    const std::vector<std::string> missing = missing_isa(compiled_isa(), cpu_isa());
    if (missing.empty()) return;
    std::string names;
    for (const std::string& m : missing) names += (names.empty() ? "" : ", ") + m;
    std::fprintf(stderr,
                 "moeinfer: this build was compiled for CPU extensions this CPU lacks (%s); rebuild on this machine "
                 "(make) or configure with -DMOEINFER_NATIVE=OFF for a portable build\n",
                 names.c_str());
    std::fflush(stderr);
    _exit(2);
}

}  // namespace
}  // namespace moeinfer
