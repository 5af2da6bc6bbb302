"""The ``.efm`` format's numbers and record layouts, defined once.

The exporter (:mod:`.efm_export`) writes records with these numpy dtypes; the C runtime reads them
through ``native/efm_format.h``, which is *generated* from this module (never edited by hand) and
checked by ``tests/native/test_format_source.py``; the Cython binding takes op names from that
header. Opcode numbers are stable: a new op gets the next number, an existing one never changes.

Regenerate the header after editing this file::

    python -m edgefleet.runtimes.exporters.efm_format native/efm_format.h
"""

from __future__ import annotations

import sys

import numpy as np

#: the newest version this build reads and writes; a file whose graph is pure int8 is written as
#: ``INT8_VERSION`` so loaders that predate float32 tensors still read it
FORMAT_VERSION = 2
INT8_VERSION = 1
MAGIC = b"EFM\x01"
ALIGN, KPAD, NPAD, MAX_RANK, NATTR, NPARAM, NBLOB = 64, 4, 8, 6, 32, 4, 6
NO_BLOB = 0xFFFFFFFF
#: gelu_f32's erf table: erf and its derivative at x0 = i / ERF_STEPS for i < ERF_POINTS (|x| >= 5.5: erf = +-1)
ERF_STEPS, ERF_POINTS = 64, 353

#: (number, name in the exporter and the Python binding, C enum suffix)
OPCODE_TABLE = (
    (1, "linear", "LINEAR"), (2, "conv2d", "CONV2D"), (3, "max_pool2d", "MAXPOOL"), (4, "avg_pool2d", "AVGPOOL"),
    (5, "mean", "MEAN"), (6, "add", "ADD"), (7, "mul", "MUL"), (8, "lut", "LUT"), (9, "softmax", "SOFTMAX"),
    (10, "layer_norm", "LAYERNORM"), (11, "matmul", "MATMUL"), (12, "reshape", "RESHAPE"),
    (13, "transpose", "TRANSPOSE"), (14, "concat", "CONCAT"), (15, "embedding", "EMBEDDING"),
    (16, "depthwise_conv2d", "DWCONV"), (17, "pad", "PAD"), (18, "slice", "SLICE"), (19, "cast", "CAST"),
    (20, "div", "DIV"), (21, "sum", "SUM"),
    # version 2: float32 activations (precision islands) and the ops between them
    (22, "quantize", "QUANTIZE"), (23, "dequantize", "DEQUANTIZE"), (24, "linear_f32", "LINEAR_F32"),
    (25, "add_f32", "ADD_F32"), (26, "layer_norm_f32", "LAYERNORM_F32"), (27, "mul_f32", "MUL_F32"),
    (28, "gelu_f32", "GELU_F32"), (29, "mean_f32", "MEAN_F32"),
)
#: opcodes a version-1 file may not use (they read or write float32 activations)
FLOAT_OPCODES = frozenset(n for n, _, _ in OPCODE_TABLE if n >= 22)
OPCODES = {name: number for number, name, _ in OPCODE_TABLE}
TENSOR_KINDS = (("ACT", 0), ("INPUT_I64", 1), ("CONST", 2))
DTYPES = (("INT8", 0), ("INT32", 1), ("INT64", 2), ("FLOAT32", 3))
T_ACT, T_INPUT_I64, T_CONST = (v for _, v in TENSOR_KINDS)
DT_INT8, DT_INT32, DT_INT64, DT_FLOAT32 = (v for _, v in DTYPES)

# (field, numpy type, count, comment) per record; little endian, naturally aligned
_RECORDS = {
    "efm_header": (128, [
        ("magic", "S1", 4, '"EFM\\x01"'), ("version", "<u4", 1, "format version"),
        ("header_bytes", "<u4", 1, "sizeof(efm_header)"),
        ("checksum", "<u4", 1, "CRC-32 (zlib's) of the file with this field zeroed"), ("file_bytes", "<u8", 1, ""),
        ("n_tensors", "<u4", 1, ""), ("n_ops", "<u4", 1, ""), ("n_blobs", "<u4", 1, ""), ("n_ids", "<u4", 1, ""),
        ("n_inputs", "<u4", 1, ""), ("n_outputs", "<u4", 1, ""),
        ("tensors_off", "<u8", 1, ""), ("ops_off", "<u8", 1, ""), ("blobs_off", "<u8", 1, ""), ("ids_off", "<u8", 1, ""),
        ("names_off", "<u8", 1, ""), ("names_bytes", "<u8", 1, ""), ("reserved", "<u4", 8, "zero")]),
    "efm_tensor": (64, [
        ("kind", "<u4", 1, "efm_tensor_kind"), ("dtype", "<u4", 1, "efm_dtype: int8 (float32 ACT from version 2), int64 for EFM_T_INPUT_I64"),
        ("rank", "<u4", 1, "including the batch axis for ACT/INPUT tensors"),
        ("name", "<u4", 1, "offset into the names section (NUL-terminated)"),
        ("dims", "<i4", MAX_RANK, "dims[0] is ignored (batch) for ACT/INPUT; full shape for CONST"),
        ("offset", "<u8", 1, "ACT: per-sample arena offset (times batch at run time); CONST: blob index"),
        ("scale", "<f4", 1, ""), ("zero_point", "<i4", 1, ""), ("reserved", "<u4", 2, "")]),
    "efm_op": (200, [
        ("opcode", "<u4", 1, "efm_opcode"), ("n_in", "<u4", 1, ""),
        ("in_ids", "<u4", 1, "index of the first input tensor id in the ids section"),
        ("out", "<u4", 1, "output tensor id"), ("attr", "<i4", NATTR, "integer attributes (per opcode)"),
        ("param", "<i8", NPARAM, "64-bit attributes (per opcode)"),
        ("blob", "<u4", NBLOB, "blob indices or EFM_NO_BLOB")]),
    "efm_blob": (24, [
        ("offset", "<u8", 1, "from the start of the file, multiple of EFM_ALIGN"), ("nbytes", "<u8", 1, ""),
        ("dtype", "<u4", 1, ""), ("count", "<u4", 1, "")]),
}


def record_dtype(name: str) -> np.dtype:
    size, fields = _RECORDS[name]
    dt = np.dtype([(f, t, (n,)) if n > 1 else (f, t) for f, t, n, _ in fields])
    if dt.itemsize != size:
        raise AssertionError(f"{name}: {dt.itemsize} bytes, expected {size}")
    return dt


HEADER, TENSOR, OP, BLOB = (record_dtype(n) for n in ("efm_header", "efm_tensor", "efm_op", "efm_blob"))

_C_TYPES = {"<u4": "uint32_t", "<i4": "int32_t", "<u8": "uint64_t", "<i8": "int64_t", "<f4": "float", "S1": "char"}
_C_COUNTS = {MAX_RANK: "EFM_MAX_RANK", NATTR: "EFM_NATTR", NBLOB: "EFM_NBLOB"}


def c_header() -> str:
    """The text of ``native/efm_format.h``."""
    out = ["/* GENERATED from runtimes/exporters/efm_format.py -- do not edit; regenerate with",
           " *   python -m edgefleet.runtimes.exporters.efm_format native/efm_format.h",
           " * The .efm format's numbers and record layouts (documented in native/FORMAT.md). */",
           "#ifndef EFM_FORMAT_H", "#define EFM_FORMAT_H", "", "#include <stdint.h>", "",
           '#define EFM_MAGIC "EFM\\x01"', f"#define EFM_VERSION {FORMAT_VERSION}u", f"#define EFM_VERSION_INT8 {INT8_VERSION}u",
           f"#define EFM_FIRST_FLOAT_OP {min(FLOAT_OPCODES)}u",
           f"#define EFM_ALIGN {ALIGN}u", f"#define EFM_KPAD {KPAD}u", f"#define EFM_NPAD {NPAD}u",
           f"#define EFM_MAX_RANK {MAX_RANK}", f"#define EFM_NATTR {NATTR}", f"#define EFM_NBLOB {NBLOB}",
           f"#define EFM_NO_BLOB 0x{NO_BLOB:X}u", f"#define EFM_ERF_STEPS {ERF_STEPS}", f"#define EFM_ERF_POINTS {ERF_POINTS}", "", "enum efm_opcode {"]
    out += [f"    EFM_OP_{c} = {n}, /* {name} */" for n, name, c in OPCODE_TABLE]
    out += [f"    EFM_OP_COUNT = {max(n for n, _, _ in OPCODE_TABLE) + 1}", "};", ""]
    out += ["enum efm_tensor_kind { " + ", ".join(f"EFM_T_{k} = {v}" for k, v in TENSOR_KINDS) + " };"]
    out += ["enum efm_dtype { " + ", ".join(f"EFM_{k} = {v}" for k, v in DTYPES) + " };", ""]
    for name, (size, fields) in _RECORDS.items():
        out.append("typedef struct {")
        for f, t, n, comment in fields:
            count = f"[{_C_COUNTS.get(n, n)}]" if n > 1 else ""
            decl = f"    {_C_TYPES[t]} {f}{count};"
            out.append(f"{decl:<40}/* {comment} */" if comment else decl)
        out += [f"}} {name};", f"typedef char {name}_is_{size}_bytes[sizeof({name}) == {size} ? 1 : -1];", ""]
    out.append("/* the op's name as the exporter and FORMAT.md spell it (\"?\" for an unknown opcode) */")
    out.append("static inline const char *efm_op_name(uint32_t opcode) {")
    out.append("    switch (opcode) {")
    out += [f'    case {n}: return "{name}";' for n, name, _ in OPCODE_TABLE]
    out += ['    default: return "?";', "    }", "}", "", "#endif", ""]
    return "\n".join(out)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m edgefleet.runtimes.exporters.efm_format native/efm_format.h")
    with open(sys.argv[1], "w") as f:
        f.write(c_header())
