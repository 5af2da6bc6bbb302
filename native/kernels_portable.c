/* The portable kernel table: plain C, every target (and wasm32). */
#define KFN(name) name##_portable
#include "kernels_impl.h"

const efm_kernels efm_kernels_portable = {"portable", gemm_portable, gemm_portable, conv_portable, conv_portable,
                                          mm16_portable, dw_portable, center_portable,
                                          add_portable, quantize_portable, flinear_portable};

void efm_flinear_c(int M, int n0, int n1, int K, int Np, const float *X, const int8_t *Wt, const float *scale,
                   const float *bias, int act, float *Y, int N) {
    flinear_portable(M, n0, n1, K, Np, X, Wt, scale, bias, act, Y, N);
}
