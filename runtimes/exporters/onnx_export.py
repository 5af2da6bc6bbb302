"""ONNX exporters: the IR as an fp32 ONNX model, and as an int8 QDQ model with *our* parameters.

The int8 model puts QuantizeLinear/DequantizeLinear pairs on every activation with the IR's
per-tensor qparams, stores weights as int8 with per-channel scales (axis 0) and biases as int32 with
scale ``s_in * s_w`` — exactly the numbers in the quantized IR — so onnxruntime fuses them into its
integer kernels (QLinearConv, QGemm, ...) and the parity gate can compare it with the integer
reference. Opset 17; a dynamic batch axis ``N``.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from edgefleet._errors import ConfigError, UnsupportedOpError
from edgefleet._registry import registrar

from edgefleet.compress.ir.ops import OPS

from ._names import UniqueNames

OPSET = 17
_DTYPES = {"float32": 1, "int64": 7}


class _Writer:
    def __init__(self, graph, int8: bool):
        import onnx
        from onnx import helper, numpy_helper

        self.onnx, self.helper, self.nh = onnx, helper, numpy_helper
        self.graph, self.int8 = graph, int8
        self.nodes: list = []
        self.inits: list = []
        self.unique = UniqueNames()
        self.alias: dict[str, str] = {}  # IR tensor -> name consumers should read
        self.island = False  # lowering a precision island's node (float math, int8 weights)

    def init(self, base: str, arr: np.ndarray) -> str:
        name = self.unique(base)
        # np.array, not np.ascontiguousarray: the latter turns a 0-d scale into shape [1], and
        # onnxruntime's QLinearAveragePool fusion then refuses the model ("must be a scalar")
        self.inits.append(self.nh.from_array(np.array(arr, order="C"), name))
        return name

    def node(self, op: str, inputs: list[str], outputs: list[str] | None = None, base: str = "", **attrs) -> str:
        outputs = outputs or [self.unique(f"{base or op}_out")]
        self.nodes.append(self.helper.make_node(op, inputs, outputs, name=self.unique(f"{base or op}"), **attrs))
        return outputs[0]

    def read(self, tensor: str) -> str:
        return self.alias.get(tensor, tensor)

    # -- quantization helpers -------------------------------------------------------------------
    def qdq(self, tensor: str, float_name: str, out_name: str | None = None) -> str:
        """Q then DQ of an activation with the IR's qparams; returns the dequantized name."""
        qp = self.graph.qparams[tensor]
        scale = self.init(f"{tensor}_scale", np.float32(qp.scalar_scale))
        zp = self.init(f"{tensor}_zp", np.int8(qp.scalar_zero_point))
        q = self.node("QuantizeLinear", [float_name, scale, zp], [self.unique(f"{tensor}_q")], base=f"{tensor}_Q")
        return self.node("DequantizeLinear", [q, scale, zp], [out_name or self.unique(f"{tensor}_dq")], base=f"{tensor}_DQ")

    def weight(self, node, key: str = "weight") -> str:
        p = node.params
        if not self.int8 and not (self.island and f"{key}_q" in p):
            return self.init(f"{node.name}_{key}", p[key].astype(np.float32))
        q = self.init(f"{node.name}_{key}_q", p[f"{key}_q"].astype(np.int8))
        scale = self.init(f"{node.name}_{key}_scale", p[f"{key}_scale"].astype(np.float32))
        zp = self.init(f"{node.name}_{key}_zp", np.zeros(p[f"{key}_scale"].shape, np.int8))
        return self.node("DequantizeLinear", [q, scale, zp], base=f"{node.name}_{key}_DQ", axis=0)

    def bias(self, node) -> str | None:
        p = node.params
        if not self.int8:
            return self.init(f"{node.name}_bias", p["bias"].astype(np.float32)) if "bias" in p else None
        q = self.init(f"{node.name}_bias_q", p["bias_q"].astype(np.int32))
        scale = self.init(f"{node.name}_bias_scale", p["bias_scale"].astype(np.float32))
        zp = self.init(f"{node.name}_bias_zp", np.zeros(p["bias_scale"].shape, np.int32))
        return self.node("DequantizeLinear", [q, scale, zp], base=f"{node.name}_bias_DQ", axis=0)

    def const(self, node) -> str:
        p = node.params
        if not self.int8:
            return self.init(f"{node.name}_const", p["const"].astype(np.float32))
        q = self.init(f"{node.name}_const_q", p["const_q"].astype(np.int8))
        scale = self.init(f"{node.name}_const_scale", np.float32(p["const_scale"]))
        zp = self.init(f"{node.name}_const_zp", np.int8(p["const_zero_point"]))
        return self.node("DequantizeLinear", [q, scale, zp], base=f"{node.name}_const_DQ")

    # -- ops --------------------------------------------------------------------------------------
    def activation(self, x: str, act: str, base: str) -> str:
        if act == "relu":
            return self.node("Relu", [x], base=f"{base}_relu")
        if act == "relu6":
            lo, hi = self.init(f"{base}_min", np.float32(0)), self.init(f"{base}_max", np.float32(6))
            return self.node("Clip", [x, lo, hi], base=f"{base}_relu6")
        return x

    def emit(self, node) -> str:
        if self.int8 and node.name in self.graph.islands:
            return self._island(node)
        if self.int8 and OPS[node.op].is_lut and node.op not in NATIVE_INT8_LUT_OPS:
            return _table_lookup(self, node, [self.read(i) for i in node.inputs])
        lower = LOWERINGS.get(node.op)
        if lower is None:
            raise UnsupportedOpError(f"the ONNX exporter cannot express op {node.op!r} ({node.where()})")
        return lower(self, node, [self.read(i) for i in node.inputs])

    def _island(self, node) -> str:
        """A precision island: the op's float lowering between the inputs' DequantizeLinear and the
        output's QuantizeLinear (written by ``build`` when the output has qparams); a weighted op
        reads its int8 weight through DequantizeLinear, so the bytes stay int8."""
        self.int8, self.island = False, True
        try:
            lower = LOWERINGS.get(node.op)
            if lower is None:
                raise UnsupportedOpError(f"the ONNX exporter cannot express op {node.op!r} ({node.where()})")
            return lower(self, node, [self.read(i) for i in node.inputs])
        finally:
            self.int8, self.island = True, False

    def build(self):
        helper, g = self.helper, self.graph
        inputs = []
        for v in g.inputs:
            shape = ["N" if d is None else d for d in v.shape]
            inputs.append(helper.make_tensor_value_info(v.name, _DTYPES[v.dtype], shape))
            self.unique.reserve(v.name)
            if self.int8 and v.dtype == "float32":
                self.alias[v.name] = self.qdq(v.name, v.name)
        floats = g.float_tensors()
        for node in g.nodes:
            out = node.outputs[0]
            is_output = out in g.outputs
            y = self.emit(node)
            if self.int8 and out in g.qparams and out not in floats:
                y = self.qdq(out, y, out_name=out if is_output else None)
            elif is_output:
                y = self.node("Identity", [y], [out], base=f"{out}_identity")
            self.unique.reserve(out)
            self.alias[out] = y
        outputs = [helper.make_tensor_value_info(o, 1, ["N" if d is None else d for d in g.values[o].shape])
                   for o in g.outputs]
        graph = helper.make_graph(self.nodes, g.name, inputs, outputs, self.inits)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                                  producer_name="edgefleet", producer_version="0.1")
        model.ir_version = 8
        self.onnx.checker.check_model(model, full_check=True)
        return model


# -- one lowering per op: (writer, node, input names) -> output name -----------------------------
LOWERINGS: dict = {}
#: lookup-table activations onnxruntime computes exactly in int8 (clamps); the others are written as
#: the IR's own table so that onnxruntime gives run_int's integers, not a float function re-rounded
NATIVE_INT8_LUT_OPS = ("relu", "relu6")


def _table_lookup(w: _Writer, node, x) -> str:
    """int8 ``table[q + 128]``: re-quantize the (dequantized) input exactly, Cast, Add 128, Gather."""
    qin, qout = w.graph.qparams[node.inputs[0]], w.graph.qparams[node.outputs[0]]
    base = node.name
    s_in, z_in = w.init(f"{base}_in_scale", np.float32(qin.scalar_scale)), w.init(f"{base}_in_zp", np.int8(qin.scalar_zero_point))
    q = w.node("QuantizeLinear", [x[0], s_in, z_in], base=f"{base}_requant")
    wide = w.node("Cast", [q], base=f"{base}_int32", to=6)
    index = w.node("Add", [wide, w.init(f"{base}_offset", np.int32(128))], base=f"{base}_index")
    looked = w.node("Gather", [w.init(f"{base}_table", np.asarray(node.params["table"], np.int8)), index],
                    base=f"{base}_lookup", axis=0)
    s_out = w.init(f"{base}_out_scale", np.float32(qout.scalar_scale))
    z_out = w.init(f"{base}_out_zp", np.int8(qout.scalar_zero_point))
    return w.node("DequantizeLinear", [looked, s_out, z_out], base=f"{base}_DQ")


lowers = registrar(LOWERINGS)


@lowers("linear")
def _linear(w: _Writer, node, x):
    base, in_rank = node.name, len(w.graph.values[node.inputs[0]].shape)
    weight, b = w.weight(node), w.bias(node)
    if in_rank == 2:
        y = w.node("Gemm", [x[0], weight] + ([b] if b else []), base=base, transB=1)
    else:
        wt = w.node("Transpose", [weight], base=f"{base}_wT", perm=[1, 0])
        y = w.node("MatMul", [x[0], wt], base=base)
        if b:
            y = w.node("Add", [y, b], base=f"{base}_bias")
    return w.activation(y, node.attrs["act"], base)


@lowers("conv2d")
def _conv2d(w: _Writer, node, x):
    a, (ph, pw) = node.attrs, node.attrs["padding"]
    inputs = [x[0], w.weight(node)] + ([w.bias(node)] if (w.int8 or "bias" in node.params) else [])
    y = w.node("Conv", [i for i in inputs if i], base=node.name, strides=list(a["stride"]), pads=[ph, pw, ph, pw],
               dilations=list(a["dilation"]), group=a["groups"], kernel_shape=list(node.params["weight"].shape[2:]))
    return w.activation(y, a["act"], node.name)


@lowers("max_pool2d", "avg_pool2d")
def _pool(w: _Writer, node, x):
    a, (ph, pw) = node.attrs, node.attrs["padding"]
    common = dict(kernel_shape=list(a["kernel"]), strides=list(a["stride"]), pads=[ph, pw, ph, pw])
    if node.op == "max_pool2d":
        return w.node("MaxPool", x, base=node.name, **common)
    return w.node("AveragePool", x, base=node.name, count_include_pad=int(a["count_include_pad"]), **common)


@lowers("mean")
def _mean(w: _Writer, node, x):
    return w.node("ReduceMean", x, base=node.name, axes=list(node.attrs["axes"]), keepdims=int(node.attrs["keepdim"]))


@lowers("sum")
def _sum(w: _Writer, node, x):
    axes = w.init(f"{node.name}_axes", np.array(node.attrs["axes"], np.int64))
    return w.node("ReduceSum", [x[0], axes], base=node.name, keepdims=int(node.attrs["keepdim"]))


@lowers("add", "mul")
def _binary(w: _Writer, node, x):
    other = x[1] if len(x) > 1 else w.const(node)
    return w.node("Add" if node.op == "add" else "Mul", [x[0], other], base=node.name)


def _clip(w: _Writer, x: str, lo: float, hi: float, base: str) -> str:
    return w.node("Clip", [x, w.init(f"{base}_min", np.float32(lo)), w.init(f"{base}_max", np.float32(hi))], base=base)


@lowers("relu", "hardswish", "sigmoid", "tanh")
def _unary(w: _Writer, node, x):
    return w.node({"relu": "Relu", "hardswish": "HardSwish", "sigmoid": "Sigmoid", "tanh": "Tanh"}[node.op], x,
                  base=node.name)


@lowers("relu6")
def _relu6(w: _Writer, node, x):
    return _clip(w, x[0], 0.0, 6.0, node.name)


@lowers("clamp")
def _clamp(w: _Writer, node, x):
    return _clip(w, x[0], node.attrs["min"], node.attrs["max"], node.name)


@lowers("hardsigmoid")
def _hardsigmoid(w: _Writer, node, x):
    return w.node("HardSigmoid", x, base=node.name, alpha=1.0 / 6.0, beta=0.5)


@lowers("silu")
def _silu(w: _Writer, node, x):
    return w.node("Mul", [x[0], w.node("Sigmoid", x, base=f"{node.name}_sigmoid")], base=node.name)


@lowers("gelu")
def _gelu(w: _Writer, node, x):
    base = node.name
    one, half = w.init(f"{base}_one", np.float32(1)), w.init(f"{base}_half", np.float32(0.5))
    if node.attrs.get("approximate", "none") == "tanh":
        cube = w.node("Mul", [x[0], w.node("Mul", [x[0], x[0]], base=f"{base}_sq")], base=f"{base}_cube")
        inner = w.node("Add", [x[0], w.node("Mul", [cube, w.init(f"{base}_c", np.float32(0.044715))], base=f"{base}_cc")],
                       base=f"{base}_inner")
        t = w.node("Tanh", [w.node("Mul", [inner, w.init(f"{base}_k", np.float32(math.sqrt(2 / math.pi)))],
                                   base=f"{base}_scale")], base=f"{base}_tanh")
    else:
        inv = w.init(f"{base}_inv_sqrt2", np.float32(1 / math.sqrt(2)))
        t = w.node("Erf", [w.node("Mul", [x[0], inv], base=f"{base}_scale")], base=f"{base}_erf")
    y = w.node("Mul", [x[0], w.node("Add", [t, one], base=f"{base}_add")], base=f"{base}_mul")
    return w.node("Mul", [y, half], base=base)


@lowers("softmax")
def _softmax(w: _Writer, node, x):
    if w.int8:
        return _integer_softmax(w, node, x)
    return w.node("Softmax", x, base=node.name, axis=node.attrs["axis"])


def _integer_softmax(w: _Writer, node, x) -> str:
    """The IR's integer softmax in int32 ONNX ops (bit-exact): ``e = table[max - q]``,
    ``y = (512 e + sum) // (2 sum) - 128``."""
    base, axis = node.name, node.attrs["axis"]
    qin = w.graph.qparams[node.inputs[0]]
    i32 = lambda v: w.init(f"{base}_c{v}", np.array(v, np.int32))  # noqa: E731
    s_in, z_in = w.init(f"{base}_in_scale", np.float32(qin.scalar_scale)), w.init(f"{base}_in_zp", np.int8(qin.scalar_zero_point))
    q = w.node("Cast", [w.node("QuantizeLinear", [x[0], s_in, z_in], base=f"{base}_requant")], base=f"{base}_int32", to=6)
    axes = w.init(f"{base}_axes", np.array([axis], np.int64))
    top = w.node("ReduceMax", [q], base=f"{base}_max", axes=[axis], keepdims=1)
    e = w.node("Gather", [w.init(f"{base}_exp", np.asarray(node.params["exp_table"], np.int32)),
                          w.node("Sub", [top, q], base=f"{base}_d")], base=f"{base}_exp_lookup", axis=0)
    total = w.node("ReduceSum", [e, axes], base=f"{base}_sum", keepdims=1)
    num = w.node("Add", [w.node("Mul", [e, i32(512)], base=f"{base}_e512"), total], base=f"{base}_num")
    y = w.node("Div", [num, w.node("Mul", [total, i32(2)], base=f"{base}_den")], base=f"{base}_div")
    y = w.node("Clip", [w.node("Sub", [y, i32(128)], base=f"{base}_shift"), i32(-128), i32(127)], base=f"{base}_clip")
    out = w.graph.qparams[node.outputs[0]]
    return w.node("DequantizeLinear", [w.node("Cast", [y], base=f"{base}_int8", to=3),
                                       w.init(f"{base}_out_scale", np.float32(out.scalar_scale)),
                                       w.init(f"{base}_out_zp", np.int8(out.scalar_zero_point))], base=f"{base}_DQ")


@lowers("layer_norm")
def _layer_norm(w: _Writer, node, x):
    g = w.init(f"{node.name}_gamma", node.params["gamma"].astype(np.float32))
    b = w.init(f"{node.name}_beta", node.params["beta"].astype(np.float32))
    return w.node("LayerNormalization", [x[0], g, b], base=node.name, axis=-1, epsilon=node.attrs["eps"])


@lowers("matmul")
def _matmul(w: _Writer, node, x):
    return w.node("MatMul", x, base=node.name)


@lowers("reshape")
def _reshape(w: _Writer, node, x):
    return w.node("Reshape", [x[0], w.init(f"{node.name}_shape", np.array(node.attrs["shape"], np.int64))], base=node.name)


@lowers("transpose")
def _transpose(w: _Writer, node, x):
    return w.node("Transpose", x, base=node.name, perm=list(node.attrs["perm"]))


@lowers("concat")
def _concat(w: _Writer, node, x):
    return w.node("Concat", x, base=node.name, axis=node.attrs["axis"])


@lowers("div")
def _div(w: _Writer, node, x):
    return w.node("Div", x, base=node.name)


@lowers("cast")
def _cast(w: _Writer, node, x):
    return w.node("Cast", x, base=node.name, to=1)


@lowers("pad")
def _pad(w: _Writer, node, x):
    pads = list(node.attrs["pads"])
    onnx_pads = pads[0::2] + pads[1::2]  # ONNX: all befores, then all afters
    value = w.init(f"{node.name}_value", np.float32(node.attrs["value"]))
    return w.node("Pad", [x[0], w.init(f"{node.name}_pads", np.array(onnx_pads, np.int64)), value], base=node.name,
                  mode="constant")


@lowers("slice")
def _slice(w: _Writer, node, x):
    a = node.attrs
    ints = {k: w.init(f"{node.name}_{k}", np.array([a[k]], np.int64)) for k in ("start", "stop", "axis", "step")}
    return w.node("Slice", [x[0], ints["start"], ints["stop"], ints["axis"], ints["step"]], base=node.name)


@lowers("embedding")
def _embedding(w: _Writer, node, x):
    base = node.name
    if w.int8:
        qp = w.graph.qparams[node.outputs[0]]
        q = w.init(f"{base}_weight_q", node.params["weight_q"].astype(np.int8))
        s = w.init(f"{base}_weight_scale", np.float32(qp.scalar_scale))
        z = w.init(f"{base}_weight_zp", np.int8(qp.scalar_zero_point))
        table = w.node("DequantizeLinear", [q, s, z], base=f"{base}_weight_DQ")
    else:
        table = w.init(f"{base}_weight", node.params["weight"].astype(np.float32))
    return w.node("Gather", [table, x[0]], base=base, axis=0)



class OnnxFp32Exporter:
    target = "onnx-fp32"
    runtime = "onnxruntime"
    precision = "fp32"

    def export(self, graph, path: str | Path) -> Path:
        model = _Writer(graph, int8=False).build()
        Path(path).write_bytes(model.SerializeToString(deterministic=True))
        return Path(path)


def export_fp32_every_tensor(graph, path: str | Path) -> dict[str, tuple[str, str | None, str | None]]:
    """Write the fp32 ONNX model of ``graph`` with every float IR tensor also a graph output, and
    its minimum and maximum as two more (scalars), so one onnxruntime call yields each tensor
    :func:`~edgefleet.compress.ir.run_float` computes op by op, or only its range (calibration
    observes them all). Returns IR tensor name -> (ONNX name, its min output, its max output); graph
    inputs keep their names and have no range outputs."""
    writer = _Writer(graph, int8=False)
    model = writer.build()
    helper = writer.helper
    given = {o.name for o in model.graph.output} | {v.name for v in graph.inputs}
    names: dict = {v.name: (v.name, None, None) for v in graph.inputs}
    for node in graph.nodes:
        out = node.outputs[0]
        if graph.values[out].dtype != "float32":
            continue
        tensor = writer.read(out)
        if tensor in given:  # an alias of an input or a tensor already tapped: read that one
            names[out] = next((v for v in names.values() if v[0] == tensor), (tensor, None, None))
            continue
        given.add(tensor)
        lo, hi = writer.unique(f"{tensor}_min"), writer.unique(f"{tensor}_max")
        model.graph.node.extend([helper.make_node("ReduceMin", [tensor], [lo], name=lo, keepdims=0),
                                 helper.make_node("ReduceMax", [tensor], [hi], name=hi, keepdims=0)])
        model.graph.output.extend(helper.make_tensor_value_info(n, _DTYPES["float32"], shape)
                                  for n, shape in ((tensor, None), (lo, []), (hi, [])))
        names[out] = (tensor, lo, hi)
    Path(path).write_bytes(model.SerializeToString())
    return names


class OnnxInt8Exporter:
    target = "onnx-int8"
    runtime = "onnxruntime"
    precision = "int8"

    def export(self, graph, path: str | Path) -> Path:
        if not graph.quantized:
            raise ConfigError("onnx-int8 needs a quantized graph: run the quantize pass first")
        model = _Writer(graph, int8=True).build()
        Path(path).write_bytes(model.SerializeToString(deterministic=True))
        return Path(path)
