/* The NEON kernel table (every AArch64 CPU): s8 x s8 products by vmull_s8, summed in int32 by
 * pairwise widening adds (kernels_neon.h). Chosen at run time (native/cpu.c) when the CPU has no
 * dot product instructions. */
#if defined(__aarch64__)

#define KFN(name) name##_neon
#define DOT4(acc, a, b)                                                                                            \
    vaddq_s32((acc), vpaddq_s32(vpaddlq_s16(vmull_s8(vget_low_s8(a), vget_low_s8(b))),                         \
                                vpaddlq_s16(vmull_high_s8((a), (b)))))
#include "kernels_neon.h"

const efm_kernels efm_kernels_neon = {"neon", gemm_s8_neon, gemm_s8_neon, conv_s8_neon, conv_s8_neon, mm16_neon,
                                      dw_neon, center_neon, add_neon, quantize_neon, flinear_neon};

#endif
