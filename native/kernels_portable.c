/* The portable kernel table: plain C, every target (and wasm32). */
#define KFN(name) name##_portable
#include "kernels_impl.h"

const efm_kernels efm_kernels_portable = {"portable", gemm_portable, gemm_portable, conv_portable, conv_portable,
                                          mm16_portable, dw_portable, center_portable,
                                          add_portable, quantize_portable};
