/* Compute kernels behind one dispatch table: a portable C build and an AVX2 build of the same source
 * (kernels_impl.h), plus hand-written AVX2 sequences where the compiler does not find them.
 * Every variant computes the same integers: the AVX2 u8 x s8 multiply-add (vpmaddubsw) is used only
 * when every weight satisfies |w| <= 63, where its int16 pair sums cannot saturate. */
#ifndef EFM_KERNELS_H
#define EFM_KERNELS_H

#include <stdint.h>

/* Round-half-up requantization of run_int: ((acc*M + 2^(s-1)) >> s) + zo, clamped to [lo, hi].
 * The product wraps like numpy's int64 (unsigned arithmetic, no C undefined behaviour). */
static inline int8_t efm_requant(int64_t acc, int32_t mult, int32_t shift, int32_t zo, int32_t lo, int32_t hi) {
    uint64_t p = (uint64_t)acc * (uint64_t)(int64_t)mult + ((uint64_t)1 << (shift - 1));
    int64_t v = ((int64_t)p >> shift) + zo;
    return (int8_t)(v < lo ? lo : v > hi ? hi : v);
}

/* flags passed to kernels (also stored per op in efm_opinfo) */
#define EFM_KF_RQ32 2u  /* |bias| + the largest possible dot product < 2^31: vector requantization is exact */
#define EFM_KF_RQF 4u   /* ... and every shift >= 31 (multipliers < 1): the shorter int32-lane sequence is exact */

/* Requantization of one output channel (or of a whole tensor). */
typedef struct {
    int32_t zo, lo, hi;
} efm_clamp;

/* out[m*ldm + n*ldn] = requant(sum_k (A[m*lda+k] + 128) * W[n,k] + bias[n]) for m < M, n < N.
 * W is packed (see FORMAT.md): blocks of 8 output channels, each Kp/4 groups of 8x4 bytes. */
typedef void (*efm_gemm_fn)(int M, int N, int Kp, const int8_t *A, int64_t lda, const int8_t *Wp,
                            const int64_t *bias, const int32_t *mult, const int32_t *shift, efm_clamp c,
                            int8_t *out, int64_t ldm, int64_t ldn, uint32_t flags);
/* Convolution as out[o*P + p] = requant(sum_k Xp(p, k) * W[o*Kp + k] + bias[o]) with the
 * activations packed (unsigned, already offset by 128) in blocks of 8 pixels x 4 k:
 * Xp(p, k) = Xp[((p/8)*(Kp/4) + k/4)*32 + (p%8)*4 + k%4]; W is plain [O][Kp]. */
typedef void (*efm_conv_fn)(int O, int P, int Kp, const uint8_t *Xp, const int8_t *W, const int64_t *bias,
                            const int32_t *mult, const int32_t *shift, efm_clamp c, int8_t *out, uint32_t flags);
/* out[i*N + j] = requant(sum_k A[i*K+k] * B[j*K+k]) on centred int16 panels (attention matmul). */
typedef void (*efm_mm16_fn)(int M, int N, int K, const int16_t *A, const int16_t *B, int32_t mult,
                            int32_t shift, efm_clamp c, int8_t *out);
/* One depthwise plane: padded centred int16 input [Hp][Wp], kh*kw taps -> int8 [Ho][Wo]. */
typedef void (*efm_dw_fn)(const int16_t *plane, int Wp, const int8_t *w, int kh, int kw, int sh, int sw,
                          int dh, int dw, int Ho, int Wo, int64_t bias, int32_t mult, int32_t shift,
                          efm_clamp c, int8_t *out, int32_t *accrow, uint32_t flags);

/* Depthwise input: plane[iy*Wp + ix] = x[iy*W + ix] - zx for the H x W interior (int16). */
typedef void (*efm_center_fn)(const int8_t *x, int H, int W, int32_t zx, int16_t *plane, int Wp);

/* Residual add of equal shapes with multipliers < 2^22 (so int32 lanes are exact), as run_int. */
typedef void (*efm_add_fn)(const int8_t *a, const int8_t *b, int64_t n, int32_t za, int32_t zb, int32_t ma, int32_t mb,
                           efm_clamp c, int8_t *y);
/* Graph-input quantization: y[i] = clamp(round_half_even(x[i] / scale) + zp). */
typedef void (*efm_quant_fn)(const float *x, int64_t n, float scale, int32_t zp, int8_t *y);

/* Float32 linear of a precision island, output channels [n0, n1) (n0 a multiple of 16):
 * Y[m*N + n] = act(scale[n] * sum_k X[m*K + k] * Wt[k*Np + n] + bias[n]) for m < M, the sum taken in
 * order of k. Wt: the int8 weights transposed and zero-padded to Np (a multiple of 16) columns;
 * act: 0 none, 1 relu, 2 relu6. */
typedef void (*efm_flinear_fn)(int M, int n0, int n1, int K, int Np, const float *X, const int8_t *Wt,
                               const float *scale, const float *bias, int act, float *Y, int N);
/* the portable flinear, for tables without their own (wasm32) */
void efm_flinear_c(int M, int n0, int n1, int K, int Np, const float *X, const int8_t *Wt, const float *scale,
                   const float *bias, int act, float *Y, int N);
#define EFM_FLINEAR_NBLK 16

typedef struct {
    const char *name;
    efm_gemm_fn gemm;     /* any weights */
    efm_gemm_fn gemm_w7;  /* weights with |w| <= 63 */
    efm_conv_fn conv;     /* any weights */
    efm_conv_fn conv_w7;  /* weights with |w| <= 63 */
    efm_mm16_fn mm16;
    efm_dw_fn dw;
    efm_center_fn center;
    efm_add_fn add;
    efm_quant_fn quantize;
    efm_flinear_fn flinear;
} efm_kernels;

extern const efm_kernels efm_kernels_portable;
#if defined(__x86_64__) || defined(_M_X64)
#define EFM_HAVE_AVX2_BUILD 1
extern const efm_kernels efm_kernels_avx2;
extern const efm_kernels efm_kernels_avxvnni;
extern const efm_kernels efm_kernels_avx512vnni;
#endif
#if defined(__aarch64__)
#define EFM_HAVE_NEON_BUILD 1
extern const efm_kernels efm_kernels_neon;
#if !defined(__clang__) || __clang_major__ >= 16 || defined(__ARM_FEATURE_DOTPROD)
#define EFM_HAVE_NEONDOT_BUILD 1
extern const efm_kernels efm_kernels_neondot;
#endif
#endif

/* Kernel tables by name; efm_kernels_named returns NULL for one this CPU cannot run. */
enum { EFM_K_BEST = 0, EFM_K_PORTABLE = 1, EFM_K_AVX2 = 2, EFM_K_AVXVNNI = 3, EFM_K_AVX512VNNI = 4, EFM_K_NEON = 5,
       EFM_K_NEONDOT = 6 };
const efm_kernels *efm_kernels_named(int which);

#endif
