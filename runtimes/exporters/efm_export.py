"""The ``efm-int8`` exporter: a quantized IR graph as edgefleet's flat model format (``.efm``).

One file serves the native runtime (``edgefleet._native``) and the wasm runtime. It holds the IR's
own int8 parameters, rearranged for the kernels only where that is lossless: weights packed in
8-channel x 4-deep blocks, and the zero point of a linear/conv input folded into the int64 bias
(``bias - (128 + zx) * sum(w)``) because the kernels offset activations to unsigned bytes. The
activation arena is planned here (per-sample offsets, scaled by the batch size at run time).
Precision islands (``Graph.islands``) become float32 activations between ``dequantize`` and
``quantize`` records (format version 2; a pure int8 graph is still written as version 1). The byte
layout is specified in ``native/FORMAT.md``.

>>> from edgefleet.runtimes import exporters
>>> exporters.get("efm-int8")().export(qgraph, "model.int8.efm")   # doctest: +SKIP
"""

from __future__ import annotations

import math
import struct
import zlib
from pathlib import Path

import numpy as np

from edgefleet._errors import ModelError, UnsupportedOpError
from edgefleet._registry import registrar
from edgefleet.compress.ir.graph import QParams
from edgefleet.compress.ir.ops import OPS

from .efm_format import (ALIGN, BLOB, DT_FLOAT32, DT_INT8, DT_INT32, DT_INT64, ERF_POINTS, ERF_STEPS, FORMAT_VERSION,
                         HEADER, INT8_VERSION, KPAD, MAGIC, MAX_RANK, NO_BLOB, NPAD, OP, OPCODES, T_ACT, T_CONST, T_INPUT_I64, TENSOR)

__all__ = ["EfmExporter", "pack_weights", "FORMAT_VERSION"]

_BLOB_DTYPES = {np.dtype(np.int8): DT_INT8, np.dtype(np.int32): DT_INT32, np.dtype(np.int64): DT_INT64,
                np.dtype(np.float32): DT_FLOAT32}


def _round_up(v: int, a: int) -> int:
    return (v + a - 1) // a * a


def pack_weights(w: np.ndarray) -> np.ndarray:
    """int8 ``[N, K]`` -> the kernels' layout: zero-padded to ``[Np, Kp]`` (multiples of 8 and 4), then
    ``[Np/8, Kp/4, 8, 4]``, so 8 output channels x 4 consecutive k are one 32-byte vector."""
    n, k = w.shape
    padded = np.zeros((_round_up(n, NPAD), _round_up(k, KPAD)), np.int8)
    padded[:n, :k] = w
    np_, kp = padded.shape
    return np.ascontiguousarray(padded.reshape(np_ // 8, 8, kp // 4, 4).transpose(0, 2, 1, 3)).reshape(-1)


class _Builder:
    def __init__(self, graph):
        self.g = graph
        self.float_values = graph.float_tensors()
        self.tensors: list[dict] = []
        self.tid: dict[str, int] = {}
        self.ops: list[np.void] = []
        self.op_inputs: list[list[int]] = []
        self.blobs: list[np.ndarray] = []
        self.names = bytearray(b"\0")

    # -- tables ---------------------------------------------------------------------------------
    def name(self, s: str) -> int:
        off = len(self.names)
        self.names += s.encode("utf-8", "replace").replace(b"\0", b"?") + b"\0"
        return off

    def blob(self, arr) -> int:
        arr = np.ascontiguousarray(arr)
        if arr.dtype not in _BLOB_DTYPES:
            raise ModelError(f"efm: cannot store a constant of dtype {arr.dtype}")
        self.blobs.append(arr.reshape(-1))
        return len(self.blobs) - 1

    def tensor(self, name: str, kind: int, shape, qp=None, blob: int = 0, dtype: int = DT_INT8) -> int:
        shape = tuple(1 if d is None else int(d) for d in shape) or (1,)
        if len(shape) > MAX_RANK:
            raise UnsupportedOpError(f"efm: tensor {name!r} has rank {len(shape)} (at most {MAX_RANK})")
        t = {"kind": kind, "shape": shape, "name": self.name(name), "blob": blob, "dtype": dtype,
             "scale": float(qp.scalar_scale) if qp is not None else 1.0,
             "zero_point": int(qp.scalar_zero_point) if qp is not None else 0}
        self.tensors.append(t)
        self.tid[name] = len(self.tensors) - 1
        return len(self.tensors) - 1

    def act(self, name: str) -> int:
        if name not in self.tid:
            self.tensor(name, T_ACT, self.g.values[name].shape, self.g.qparams[name])
        return self.tid[name]

    def float_in(self, name: str) -> int:
        """Value ``name`` as a float32 island input: the island tensor itself, or the int8 tensor
        dequantized (once, shared by every island reader)."""
        if name in self.float_values:
            if name not in self.tid:  # a graph output keeps its qparams (for an int8 reader of the outputs)
                self.tensor(name, T_ACT, self.g.values[name].shape, self.g.qparams.get(name), dtype=DT_FLOAT32)
            return self.tid[name]
        key = f"{name}#dequantized"
        if key not in self.tid:
            src = self.act(name)
            self.tensor(key, T_ACT, self.g.values[name].shape, dtype=DT_FLOAT32)
            self.op("dequantize", [src], self.tid[key])
        return self.tid[key]

    def float_out(self, name: str, emit) -> None:
        """An island node writing value ``name``: ``emit(y)`` appends the float op writing tensor ``y``;
        an output with qparams is then quantized into its int8 tensor."""
        if name in self.float_values:
            emit(self.float_in(name))
            return
        pre = self.tensor(f"{name}#float", T_ACT, self.g.values[name].shape, dtype=DT_FLOAT32)
        emit(pre)
        self.op("quantize", [pre], self.act(name))

    def op(self, opcode: str, inputs: list[int], out: int, attrs=(), params=(), blobs=()) -> None:
        rec = np.zeros((), OP)
        rec["opcode"], rec["n_in"], rec["out"] = OPCODES[opcode], len(inputs), out
        rec["attr"][: len(attrs)] = attrs
        rec["param"][: len(params)] = params
        rec["blob"][:] = NO_BLOB
        rec["blob"][: len(blobs)] = blobs
        self.ops.append(rec)
        self.op_inputs.append(list(inputs))


def _rq(p) -> tuple[np.ndarray, np.ndarray]:
    mult, shift = np.asarray(p["multiplier"], np.int64).reshape(-1), np.asarray(p["shift"], np.int64).reshape(-1)
    if (mult < 0).any() or (mult >= 1 << 31).any() or (shift < 1).any() or (shift > 62).any():
        raise ModelError("efm: requantization constants out of range")
    return mult.astype(np.int32), shift.astype(np.int32)


def _axis(axis: int, rank: int, node) -> int:
    axis = axis + rank if axis < 0 else axis
    if not 1 <= axis < rank:
        raise UnsupportedOpError(f"efm: {node.op} over the batch axis is not supported ({node.where()})")
    return axis


def _clamp(node, qp) -> tuple[int, int]:
    lo, hi = node.attrs.get("clamp", (qp.qmin, qp.qmax))
    return int(lo), int(hi)


# -- one lowering per IR op: (builder, node) -> records appended -----------------------------------
LOWERINGS: dict = {}


lowers = registrar(LOWERINGS)


def lowering_for(op: str):
    """The lowering of IR op ``op`` (every lookup-table activation shares ``lut``), or None."""
    if op in LOWERINGS:
        return LOWERINGS[op]
    return _lut if op in OPS and OPS[op].is_lut else None


#: island (float32) lowerings: (builder, node) -> records appended
ISLAND_LOWERINGS: dict = {}
island_lowers = registrar(ISLAND_LOWERINGS)


def _emit(b: _Builder, node) -> None:
    if node.name in b.g.islands:
        lower = ISLAND_LOWERINGS.get(node.op)
        if lower is None:
            raise UnsupportedOpError(f"efm: op {node.op!r} runs in a float32 precision island ({node.where()}) but the "
                                     f"native runtime has float32 kernels only for {', '.join(sorted(ISLAND_LOWERINGS))}; "
                                     f"leave {node.op!r} out of quantize.keep_float for efm-int8")
        lower(b, node)
        return
    lower = lowering_for(node.op)
    if lower is None:
        raise UnsupportedOpError(f"efm: op {node.op!r} has no native kernel ({node.where()})")
    lower(b, node)


def _io(b: _Builder, node) -> tuple[list[int], int]:
    """The op's one input and its output, as ``b.op`` takes them."""
    return [b.act(node.inputs[0])], b.act(node.outputs[0])


@lowers("linear", "conv2d")
def _weighted(b: _Builder, node) -> None:
    g, p, a = b.g, node.params, node.attrs
    x_name = node.inputs[0]
    (x,), y = _io(b, node)
    zx = g.qparams[x_name].scalar_zero_point
    w = np.asarray(p["weight_q"], np.int8)
    bias = np.asarray(p.get("bias_q", np.zeros(w.shape[0], np.int32)), np.int64)
    mult, shift = _rq(p)
    lo, hi = _clamp(node, g.qparams[node.outputs[0]])
    if node.op == "linear":
        n_out, k = w.shape
        folded = bias - (128 + zx) * w.astype(np.int64).sum(axis=1)
        blobs = [b.blob(pack_weights(w)), b.blob(folded), b.blob(mult), b.blob(shift)]
        b.op("linear", [x], y, [k, n_out, lo, hi], blobs=blobs)
        return
    o, cg, kh, kw = w.shape
    c, groups = g.values[x_name].shape[1], a["groups"]
    geom = [c, o, kh, kw, *a["stride"], *a["padding"], *a["dilation"], groups, lo, hi]
    if groups == c and o == c and cg == 1:
        blobs = [b.blob(w.reshape(o, kh * kw)), b.blob(bias), b.blob(mult), b.blob(shift)]
        b.op("depthwise_conv2d", [x], y, geom, blobs=blobs)
        return
    # conv weights stay plain [O, Kp]: the kernel broadcasts them and packs the activations instead
    w2 = w.reshape(o, cg * kh * kw)
    plain = np.zeros((o, _round_up(w2.shape[1], KPAD)), np.int8)
    plain[:, :w2.shape[1]] = w2
    folded = bias - (128 + zx) * w2.astype(np.int64).sum(axis=1)
    b.op("conv2d", [x], y, geom, blobs=[b.blob(plain), b.blob(folded), b.blob(mult), b.blob(shift)])


@lowers("max_pool2d", "avg_pool2d")
def _pool(b: _Builder, node) -> None:
    a = node.attrs
    cip = int(a.get("count_include_pad", False))
    b.op(node.op, [b.act(node.inputs[0])], b.act(node.outputs[0]), [*a["kernel"], *a["stride"], *a["padding"], cip])


def _reduced_axes(b: _Builder, node) -> list[int]:
    """The first and last axis a mean/sum reduces (adjacent axes, never the batch axis)."""
    rank = len(b.g.values[node.inputs[0]].shape)
    axes = sorted(_axis(ax, rank, node) for ax in node.attrs["axes"])
    if axes != list(range(axes[0], axes[-1] + 1)):
        raise UnsupportedOpError(f"efm: {node.op} over non-adjacent axes {axes} ({node.where()})")
    return [axes[0], axes[-1]]


@lowers("mean", "sum")
def _reduce(b: _Builder, node) -> None:
    axes = _reduced_axes(b, node)
    if node.op == "mean":
        b.op("mean", *_io(b, node), axes)
        return
    mult, shift = _rq(node.params)
    lo, hi = _clamp(node, b.g.qparams[node.outputs[0]])
    b.op("sum", *_io(b, node), [*axes, int(mult[0]), int(shift[0]), lo, hi])


def _check_broadcast(b: _Builder, node, const: np.ndarray | None) -> None:
    """The broadcasting the runtime's add/mul take (int8 and island alike): two tensors of one rank,
    or a tensor and a constant that does not span the batch axis."""
    x_shape = b.g.values[node.inputs[0]].shape
    if const is None:
        if len(b.g.values[node.inputs[1]].shape) != len(x_shape):
            raise UnsupportedOpError(f"efm: {node.op} of tensors with different ranks ({node.where()})")
    elif const.ndim > len(x_shape) or (const.ndim == len(x_shape) and const.shape[0] != 1):
        raise UnsupportedOpError(f"efm: {node.op} constant spans the batch axis ({node.where()})")


@lowers("add", "mul")
def _binary(b: _Builder, node) -> None:
    g, p, op = b.g, node.params, node.op
    ins = [b.act(node.inputs[0])]
    if len(node.inputs) > 1:
        _check_broadcast(b, node, None)
        ins.append(b.act(node.inputs[1]))
    else:
        cq = np.asarray(p["const_q"], np.int8)
        _check_broadcast(b, node, cq)
        qp = QParams.per_tensor(float(p["const_scale"]), int(p["const_zero_point"]))
        ins.append(b.tensor(f"{node.name}.const", T_CONST, cq.shape, qp, b.blob(cq)))
    lo, hi = _clamp(node, g.qparams[node.outputs[0]])
    if op == "add":
        b.op("add", ins, b.act(node.outputs[0]), [lo, hi], params=[int(p["mult_a"]), int(p["mult_b"])])
    else:
        mult, shift = _rq(p)
        b.op("mul", ins, b.act(node.outputs[0]), [lo, hi, int(mult[0]), int(shift[0])])


def _lut(b: _Builder, node) -> None:
    b.op("lut", *_io(b, node), blobs=[b.blob(np.asarray(node.params["table"], np.int8))])


@lowers("softmax")
def _softmax(b: _Builder, node) -> None:
    axis = _axis(node.attrs["axis"], len(b.g.values[node.inputs[0]].shape), node)
    b.op("softmax", *_io(b, node), [axis], blobs=[b.blob(np.asarray(node.params["exp_table"], np.int32))])


@lowers("layer_norm")
def _layer_norm(b: _Builder, node) -> None:
    p = node.params
    eps_bits = int(np.float32(node.attrs["eps"]).view(np.int32))
    b.op("layer_norm", *_io(b, node), [eps_bits],
         blobs=[b.blob(np.asarray(p["gamma"], np.float32)), b.blob(np.asarray(p["beta"], np.float32))])


@lowers("matmul")
def _matmul(b: _Builder, node) -> None:
    g = b.g
    sa, sb = g.values[node.inputs[0]].shape, g.values[node.inputs[1]].shape
    if len(sa) < 3 or len(sa) != len(sb) or tuple(sa[1:-2]) != tuple(sb[1:-2]):
        raise UnsupportedOpError(f"efm: matmul needs equal batch dims and rank >= 3 ({node.where()})")
    mult, shift = _rq(node.params)
    lo, hi = _clamp(node, g.qparams[node.outputs[0]])
    b.op("matmul", [b.act(node.inputs[0]), b.act(node.inputs[1])], b.act(node.outputs[0]),
         [int(mult[0]), int(shift[0]), lo, hi])


@lowers("reshape")
def _reshape(b: _Builder, node) -> None:
    b.op("reshape", *_io(b, node))


@lowers("transpose")
def _transpose(b: _Builder, node) -> None:
    rank = len(b.g.values[node.inputs[0]].shape)
    b.op("transpose", *_io(b, node), [int(d) + rank if d < 0 else int(d) for d in node.attrs["perm"]])


@lowers("concat")
def _concat(b: _Builder, node) -> None:
    g, out_qp = b.g, b.g.qparams[node.outputs[0]]
    if len(node.inputs) > 64:
        raise UnsupportedOpError(f"efm: concat of more than 64 tensors ({node.where()})")
    axis = _axis(node.attrs["axis"], len(g.values[node.inputs[0]].shape), node)
    same = [0, 0]
    for k, name in enumerate(node.inputs):
        if g.qparams[name].same_as(out_qp):
            same[k // 32] |= 1 << (k % 32)
    same = [int(np.uint32(s).view(np.int32)) for s in same]
    b.op("concat", [b.act(i) for i in node.inputs], b.act(node.outputs[0]), [axis, *same],
         blobs=[b.blob(np.asarray(node.params["mults"], np.int64))])


@lowers("div")
def _div(b: _Builder, node) -> None:
    g = b.g
    if len(g.values[node.inputs[1]].shape) != len(g.values[node.inputs[0]].shape):
        raise UnsupportedOpError(f"efm: div of tensors with different ranks ({node.where()})")
    b.op("div", [b.act(node.inputs[0]), b.act(node.inputs[1])], b.act(node.outputs[0]), [-128, 127])


@lowers("cast")
def _cast(b: _Builder, node) -> None:
    x_name = node.inputs[0]
    if x_name not in b.tid or b.tensors[b.tid[x_name]]["kind"] != T_INPUT_I64:
        raise UnsupportedOpError(f"efm: cast reads an int64 graph input only ({node.where()})")
    b.op("cast", [b.tid[x_name]], b.act(node.outputs[0]))


@lowers("pad")
def _pad(b: _Builder, node) -> None:
    fill = int(b.g.qparams[node.inputs[0]].quantize(np.float32(node.attrs["value"]).reshape(())))
    b.op("pad", *_io(b, node), [fill, *(int(p) for p in node.attrs["pads"])])


@lowers("slice")
def _slice(b: _Builder, node) -> None:
    a = node.attrs
    b.op("slice", *_io(b, node), [a["axis"], a["start"], a["stop"], a["step"]])


@lowers("embedding")
def _embedding(b: _Builder, node) -> None:
    x_name = node.inputs[0]
    wq = np.asarray(node.params["weight_q"], np.int8)
    if x_name not in b.tid or b.tensors[b.tid[x_name]]["kind"] != T_INPUT_I64:
        raise UnsupportedOpError(f"efm: embedding indices must be a graph input ({node.where()})")
    b.op("embedding", [b.tid[x_name]], b.act(node.outputs[0]), [wq.shape[0], wq.shape[1]], blobs=[b.blob(wq)])


# -- precision islands: float32 between dequantize and quantize, as run_int -----------------------
_ACTS = {"none": 0, "relu": 1, "relu6": 2}


@island_lowers("linear")
def _island_linear(b: _Builder, node) -> None:
    p = node.params
    w = np.asarray(p["weight_q"], np.int8)
    n_out, k = w.shape
    scale = np.broadcast_to(np.asarray(p["weight_scale"], np.float32).reshape(-1), (n_out,))
    bias = np.asarray(p["bias"], np.float32).reshape(n_out) if "bias" in p else np.zeros(n_out, np.float32)
    act = node.attrs.get("act", "none")
    if act not in _ACTS:
        raise UnsupportedOpError(f"efm: island linear with activation {act!r} ({node.where()})")
    # transposed [K, Np]: the kernel reads 16 consecutive output channels per k
    wt = np.zeros((k, _round_up(n_out, 16)), np.int8)
    wt[:, :n_out] = w.T
    blobs = [b.blob(wt), b.blob(np.ascontiguousarray(scale)), b.blob(bias)]
    x = b.float_in(node.inputs[0])
    b.float_out(node.outputs[0], lambda y: b.op("linear_f32", [x], y, [k, n_out, _ACTS[act]], blobs=blobs))


@island_lowers("add", "mul")
def _island_binary(b: _Builder, node) -> None:
    ins = [b.float_in(node.inputs[0])]
    if len(node.inputs) > 1:
        _check_broadcast(b, node, None)
        ins.append(b.float_in(node.inputs[1]))
    else:
        const = np.asarray(node.params["const"], np.float32)
        _check_broadcast(b, node, const)
        ins.append(b.tensor(f"{node.name}.const", T_CONST, const.shape, None, b.blob(const), dtype=DT_FLOAT32))
    b.float_out(node.outputs[0], lambda y: b.op(f"{node.op}_f32", ins, y))


@island_lowers("layer_norm")
def _island_layer_norm(b: _Builder, node) -> None:
    p = node.params
    eps_bits = int(np.float32(node.attrs["eps"]).view(np.int32))
    blobs = [b.blob(np.asarray(p["gamma"], np.float32)), b.blob(np.asarray(p["beta"], np.float32))]
    x = b.float_in(node.inputs[0])
    b.float_out(node.outputs[0], lambda y: b.op("layer_norm_f32", [x], y, [eps_bits], blobs=blobs))


@island_lowers("mean")
def _island_mean(b: _Builder, node) -> None:
    axes = _reduced_axes(b, node)
    x = b.float_in(node.inputs[0])
    b.float_out(node.outputs[0], lambda y: b.op("mean_f32", [x], y, axes))


def erf_table() -> np.ndarray:
    """gelu_f32's table: float64 bits (as int64) of erf(x0) and erf'(x0) at x0 = i / ERF_STEPS; the
    kernel adds a degree-5 Taylor step from the nearest x0 (error below 1e-15)."""
    x0 = np.arange(ERF_POINTS, dtype=np.float64) / ERF_STEPS
    table = np.stack([[math.erf(v) for v in x0], 2 / math.sqrt(math.pi) * np.exp(-x0 * x0)], axis=1)
    return np.ascontiguousarray(table).view(np.int64).reshape(-1)


@island_lowers("gelu")
def _island_gelu(b: _Builder, node) -> None:
    if node.attrs.get("approximate", "none") != "none":
        raise UnsupportedOpError(f"efm: island gelu with approximate={node.attrs['approximate']!r} has no float32 "
                                 f"kernel in the native runtime ({node.where()})")
    x = b.float_in(node.inputs[0])
    blob = b.blob(erf_table())
    b.float_out(node.outputs[0], lambda y: b.op("gelu_f32", [x], y, blobs=[blob]))


def _plan_arena(b: _Builder, graph_outputs: list[int], n_inputs: list[int]) -> None:
    """First-fit offsets for every activation: a tensor lives from the op that writes it (graph
    inputs: from the start) to its last reader (graph outputs: to the end). Offsets are per sample;
    the runtime multiplies them by the batch size, which keeps live tensors disjoint."""
    n_ops = len(b.ops)
    born = {t: -1 for t in n_inputs}
    last = {t: -1 for t in n_inputs}
    for i, (rec, ins) in enumerate(zip(b.ops, b.op_inputs)):
        born[int(rec["out"])] = i
        last.setdefault(int(rec["out"]), i)
        for t in ins:
            last[t] = max(last.get(t, i), i)
    for t in graph_outputs:
        last[t] = n_ops
    live: list[tuple[int, int, int]] = []  # (offset, size, last use)
    for t in sorted((t for t in born if b.tensors[t]["kind"] == T_ACT), key=lambda t: (born[t], t)):
        live = [blk for blk in live if blk[2] >= born[t]]
        itemsize = 4 if b.tensors[t]["dtype"] == DT_FLOAT32 else 1
        size = _round_up(itemsize * int(np.prod(b.tensors[t]["shape"][1:], dtype=np.int64)), ALIGN)
        offset = 0
        for off, sz, _ in sorted(live):
            if off - offset >= size:
                break
            offset = max(offset, off + sz)
        b.tensors[t]["offset"] = offset
        live.append((offset, size, last[t]))


def build_efm(graph) -> bytes:
    """Serialize a quantized IR graph to ``.efm`` bytes."""
    if not graph.quantized:
        raise ModelError("efm-int8 export needs a quantized graph (run the quantize pass first)")
    b = _Builder(graph)
    inputs = []
    for v in graph.inputs:
        if v.dtype == "int64":
            inputs.append(b.tensor(v.name, T_INPUT_I64, v.shape))
        elif v.dtype == "float32":
            inputs.append(b.act(v.name))
        else:
            raise UnsupportedOpError(f"efm: input {v.name!r} has dtype {v.dtype}")
    for node in graph.nodes:
        _emit(b, node)
    outputs = [b.act(name) for name in graph.outputs]
    _plan_arena(b, outputs, inputs)

    ids: list[int] = inputs + outputs
    for rec, ins in zip(b.ops, b.op_inputs):
        rec["in_ids"] = len(ids)
        ids.extend(ins)
    tensors = np.zeros(len(b.tensors), TENSOR)
    for i, t in enumerate(b.tensors):
        rec = tensors[i]
        rec["kind"], rec["name"], rec["rank"] = t["kind"], t["name"], len(t["shape"])
        rec["dtype"] = DT_INT64 if t["kind"] == T_INPUT_I64 else t["dtype"]
        rec["dims"][: len(t["shape"])] = t["shape"]
        rec["offset"] = t.get("offset", 0) if t["kind"] == T_ACT else (t["blob"] if t["kind"] == T_CONST else 0)
        rec["scale"], rec["zero_point"] = t["scale"], t["zero_point"]
    ops = np.array(b.ops, OP) if b.ops else np.zeros(0, OP)

    # layout: header | tensors | ops | blob table | ids | names | (64-aligned) blob data
    off = HEADER.itemsize
    sections = {}
    for key, nbytes in (("tensors", tensors.nbytes), ("ops", ops.nbytes), ("blobs", len(b.blobs) * BLOB.itemsize),
                        ("ids", 4 * len(ids)), ("names", len(b.names))):
        sections[key] = off
        off = _round_up(off + nbytes, 8)
    table = np.zeros(len(b.blobs), BLOB)
    data_off = _round_up(off, ALIGN)
    for i, arr in enumerate(b.blobs):
        table[i] = (data_off, arr.nbytes, _BLOB_DTYPES[arr.dtype], arr.size)
        data_off = _round_up(data_off + arr.nbytes, ALIGN)
    total = data_off if b.blobs else _round_up(off, ALIGN)
    buf = bytearray(total)
    for key, arr in (("tensors", tensors), ("ops", ops), ("blobs", table), ("ids", np.asarray(ids, "<u4"))):
        raw = arr.tobytes()
        buf[sections[key]:sections[key] + len(raw)] = raw
    buf[sections["names"]:sections["names"] + len(b.names)] = b.names
    for rec, arr in zip(table, b.blobs):
        o = int(rec["offset"])
        buf[o:o + arr.nbytes] = arr.astype(arr.dtype.newbyteorder("<"), copy=False).tobytes()
    header = np.zeros((), HEADER)
    header["magic"] = np.frombuffer(MAGIC, "S1")
    version = FORMAT_VERSION if any(t["dtype"] == DT_FLOAT32 for t in b.tensors) else INT8_VERSION
    for key, value in (("version", version), ("header_bytes", HEADER.itemsize), ("file_bytes", total),
                       ("n_tensors", len(tensors)), ("n_ops", len(ops)), ("n_blobs", len(b.blobs)), ("n_ids", len(ids)),
                       ("n_inputs", len(inputs)), ("n_outputs", len(outputs)), ("names_bytes", len(b.names))):
        header[key] = value
    for key in ("tensors", "ops", "blobs", "ids", "names"):
        header[f"{key}_off"] = sections[key]
    buf[:HEADER.itemsize] = header.tobytes()
    crc = zlib.crc32(bytes(buf[16:]), zlib.crc32(b"\0\0\0\0", zlib.crc32(bytes(buf[:12]))))
    buf[12:16] = struct.pack("<I", crc)
    return bytes(buf)


class EfmExporter:
    """IR (quantized) -> ``model.int8.efm`` for the ``native`` (and ``wasm``) runtime."""

    target = "efm-int8"
    runtime = "native"
    precision = "int8"
    filename = "model.int8.efm"
    #: op kinds with a float32 kernel in the native runtime (precision islands); every lowering above
    island_ops = tuple(sorted(ISLAND_LOWERINGS))

    def export(self, graph, path) -> Path:
        path = Path(path)
        data = build_efm(graph)
        path.write_bytes(data)
        return path
