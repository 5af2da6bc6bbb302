/* Run-time choice of the kernel table: the best one this CPU (and OS) supports, or a named one
 * (tests run every table the machine has). x86-64 detects by CPUID, AArch64 Linux by the auxiliary
 * vector (NEON is part of every AArch64 CPU; the dot product is optional); other targets are portable. */
#include "kernels.h"

#if defined(EFM_HAVE_AVX2_BUILD) && (defined(__GNUC__) || defined(__clang__))
#include <cpuid.h>

static int has_avx2(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2"); /* also checks that the OS saves the YMM state */
}

static int has_avxvnni(void) {
    unsigned a, b, c, d;
    if (!has_avx2() || __get_cpuid_max(0, 0) < 7) return 0;
    __cpuid_count(7, 1, a, b, c, d);
    return (a >> 4) & 1; /* CPUID.(EAX=7,ECX=1):EAX bit 4 = AVX-VNNI */
}

static int has_avx512vnni(void) {
    __builtin_cpu_init(); /* these also check that the OS saves the ZMM state */
    return has_avx2() && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni");
}

const efm_kernels *efm_kernels_named(int which) {
    switch (which) {
    case EFM_K_PORTABLE: return &efm_kernels_portable;
    case EFM_K_AVX2: return has_avx2() ? &efm_kernels_avx2 : 0;
    case EFM_K_AVXVNNI: return has_avxvnni() ? &efm_kernels_avxvnni : 0;
    case EFM_K_AVX512VNNI: return has_avx512vnni() ? &efm_kernels_avx512vnni : 0;
    case EFM_K_BEST:
        if (has_avx512vnni()) return &efm_kernels_avx512vnni;
        if (has_avxvnni()) return &efm_kernels_avxvnni;
        if (has_avx2()) return &efm_kernels_avx2;
        return &efm_kernels_portable;
    default: return 0; /* another architecture's table */
    }
}
#elif defined(EFM_HAVE_NEON_BUILD)
#if defined(__linux__) && defined(__STDC_HOSTED__) && __STDC_HOSTED__
#include <sys/auxv.h>
#endif

#if defined(EFM_HAVE_NEONDOT_BUILD)
static int has_dotprod(void) {
#if defined(__linux__) && defined(AT_HWCAP)
    return (getauxval(AT_HWCAP) >> 20) & 1; /* HWCAP_ASIMDDP */
#else
    return 0; /* no way to ask: the plain NEON table is safe everywhere */
#endif
}
#endif

const efm_kernels *efm_kernels_named(int which) {
    switch (which) {
    case EFM_K_PORTABLE: return &efm_kernels_portable;
    case EFM_K_NEON: return &efm_kernels_neon;
#if defined(EFM_HAVE_NEONDOT_BUILD)
    case EFM_K_NEONDOT: return has_dotprod() ? &efm_kernels_neondot : 0;
    case EFM_K_BEST: return has_dotprod() ? &efm_kernels_neondot : &efm_kernels_neon;
#else
    case EFM_K_BEST: return &efm_kernels_neon;
#endif
    default: return 0;
    }
}
#else
const efm_kernels *efm_kernels_named(int which) {
    return which == EFM_K_BEST || which == EFM_K_PORTABLE ? &efm_kernels_portable : 0;
}
#endif
