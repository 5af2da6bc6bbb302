/* GENERATED from runtimes/exporters/efm_format.py -- do not edit; regenerate with
 *   python -m edgefleet.runtimes.exporters.efm_format native/efm_format.h
 * The .efm format's numbers and record layouts (documented in native/FORMAT.md). */
#ifndef EFM_FORMAT_H
#define EFM_FORMAT_H

#include <stdint.h>

#define EFM_MAGIC "EFM\x01"
#define EFM_VERSION 2u
#define EFM_VERSION_INT8 1u
#define EFM_FIRST_FLOAT_OP 22u
#define EFM_ALIGN 64u
#define EFM_KPAD 4u
#define EFM_NPAD 8u
#define EFM_MAX_RANK 6
#define EFM_NATTR 32
#define EFM_NBLOB 6
#define EFM_NO_BLOB 0xFFFFFFFFu
#define EFM_ERF_STEPS 64
#define EFM_ERF_POINTS 353

enum efm_opcode {
    EFM_OP_LINEAR = 1, /* linear */
    EFM_OP_CONV2D = 2, /* conv2d */
    EFM_OP_MAXPOOL = 3, /* max_pool2d */
    EFM_OP_AVGPOOL = 4, /* avg_pool2d */
    EFM_OP_MEAN = 5, /* mean */
    EFM_OP_ADD = 6, /* add */
    EFM_OP_MUL = 7, /* mul */
    EFM_OP_LUT = 8, /* lut */
    EFM_OP_SOFTMAX = 9, /* softmax */
    EFM_OP_LAYERNORM = 10, /* layer_norm */
    EFM_OP_MATMUL = 11, /* matmul */
    EFM_OP_RESHAPE = 12, /* reshape */
    EFM_OP_TRANSPOSE = 13, /* transpose */
    EFM_OP_CONCAT = 14, /* concat */
    EFM_OP_EMBEDDING = 15, /* embedding */
    EFM_OP_DWCONV = 16, /* depthwise_conv2d */
    EFM_OP_PAD = 17, /* pad */
    EFM_OP_SLICE = 18, /* slice */
    EFM_OP_CAST = 19, /* cast */
    EFM_OP_DIV = 20, /* div */
    EFM_OP_SUM = 21, /* sum */
    EFM_OP_QUANTIZE = 22, /* quantize */
    EFM_OP_DEQUANTIZE = 23, /* dequantize */
    EFM_OP_LINEAR_F32 = 24, /* linear_f32 */
    EFM_OP_ADD_F32 = 25, /* add_f32 */
    EFM_OP_LAYERNORM_F32 = 26, /* layer_norm_f32 */
    EFM_OP_MUL_F32 = 27, /* mul_f32 */
    EFM_OP_GELU_F32 = 28, /* gelu_f32 */
    EFM_OP_MEAN_F32 = 29, /* mean_f32 */
    EFM_OP_COUNT = 30
};

enum efm_tensor_kind { EFM_T_ACT = 0, EFM_T_INPUT_I64 = 1, EFM_T_CONST = 2 };
enum efm_dtype { EFM_INT8 = 0, EFM_INT32 = 1, EFM_INT64 = 2, EFM_FLOAT32 = 3 };

typedef struct {
    char magic[4];                      /* "EFM\x01" */
    uint32_t version;                   /* format version */
    uint32_t header_bytes;              /* sizeof(efm_header) */
    uint32_t checksum;                  /* CRC-32 (zlib's) of the file with this field zeroed */
    uint64_t file_bytes;
    uint32_t n_tensors;
    uint32_t n_ops;
    uint32_t n_blobs;
    uint32_t n_ids;
    uint32_t n_inputs;
    uint32_t n_outputs;
    uint64_t tensors_off;
    uint64_t ops_off;
    uint64_t blobs_off;
    uint64_t ids_off;
    uint64_t names_off;
    uint64_t names_bytes;
    uint32_t reserved[8];               /* zero */
} efm_header;
typedef char efm_header_is_128_bytes[sizeof(efm_header) == 128 ? 1 : -1];

typedef struct {
    uint32_t kind;                      /* efm_tensor_kind */
    uint32_t dtype;                     /* efm_dtype: int8 (float32 ACT from version 2), int64 for EFM_T_INPUT_I64 */
    uint32_t rank;                      /* including the batch axis for ACT/INPUT tensors */
    uint32_t name;                      /* offset into the names section (NUL-terminated) */
    int32_t dims[EFM_NBLOB];            /* dims[0] is ignored (batch) for ACT/INPUT; full shape for CONST */
    uint64_t offset;                    /* ACT: per-sample arena offset (times batch at run time); CONST: blob index */
    float scale;
    int32_t zero_point;
    uint32_t reserved[2];
} efm_tensor;
typedef char efm_tensor_is_64_bytes[sizeof(efm_tensor) == 64 ? 1 : -1];

typedef struct {
    uint32_t opcode;                    /* efm_opcode */
    uint32_t n_in;
    uint32_t in_ids;                    /* index of the first input tensor id in the ids section */
    uint32_t out;                       /* output tensor id */
    int32_t attr[EFM_NATTR];            /* integer attributes (per opcode) */
    int64_t param[4];                   /* 64-bit attributes (per opcode) */
    uint32_t blob[EFM_NBLOB];           /* blob indices or EFM_NO_BLOB */
} efm_op;
typedef char efm_op_is_200_bytes[sizeof(efm_op) == 200 ? 1 : -1];

typedef struct {
    uint64_t offset;                    /* from the start of the file, multiple of EFM_ALIGN */
    uint64_t nbytes;
    uint32_t dtype;
    uint32_t count;
} efm_blob;
typedef char efm_blob_is_24_bytes[sizeof(efm_blob) == 24 ? 1 : -1];

/* the op's name as the exporter and FORMAT.md spell it ("?" for an unknown opcode) */
static inline const char *efm_op_name(uint32_t opcode) {
    switch (opcode) {
    case 1: return "linear";
    case 2: return "conv2d";
    case 3: return "max_pool2d";
    case 4: return "avg_pool2d";
    case 5: return "mean";
    case 6: return "add";
    case 7: return "mul";
    case 8: return "lut";
    case 9: return "softmax";
    case 10: return "layer_norm";
    case 11: return "matmul";
    case 12: return "reshape";
    case 13: return "transpose";
    case 14: return "concat";
    case 15: return "embedding";
    case 16: return "depthwise_conv2d";
    case 17: return "pad";
    case 18: return "slice";
    case 19: return "cast";
    case 20: return "div";
    case 21: return "sum";
    case 22: return "quantize";
    case 23: return "dequantize";
    case 24: return "linear_f32";
    case 25: return "add_f32";
    case 26: return "layer_norm_f32";
    case 27: return "mul_f32";
    case 28: return "gelu_f32";
    case 29: return "mean_f32";
    default: return "?";
    }
}

#endif
