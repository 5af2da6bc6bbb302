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
        if not self.int8:
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
        a, x = node.attrs, [self.read(i) for i in node.inputs]
        op, base = node.op, node.name
        if op == "linear":
            in_rank = len(self.graph.values[node.inputs[0]].shape)
            w = self.weight(node)
            b = self.bias(node)
            if in_rank == 2:
                y = self.node("Gemm", [x[0], w] + ([b] if b else []), base=base, transB=1)
            else:
                wt = self.node("Transpose", [w], base=f"{base}_wT", perm=[1, 0])
                y = self.node("MatMul", [x[0], wt], base=base)
                if b:
                    y = self.node("Add", [y, b], base=f"{base}_bias")
            return self.activation(y, a["act"], base)
        if op == "conv2d":
            (ph, pw) = a["padding"]
            inputs = [x[0], self.weight(node)] + ([self.bias(node)] if (self.int8 or "bias" in node.params) else [])
            y = self.node("Conv", [i for i in inputs if i], base=base, strides=list(a["stride"]), pads=[ph, pw, ph, pw],
                          dilations=list(a["dilation"]), group=a["groups"],
                          kernel_shape=list(node.params["weight"].shape[2:]))
            return self.activation(y, a["act"], base)
        if op == "max_pool2d":
            (ph, pw) = a["padding"]
            return self.node("MaxPool", x, base=base, kernel_shape=list(a["kernel"]), strides=list(a["stride"]), pads=[ph, pw, ph, pw])
        if op == "avg_pool2d":
            (ph, pw) = a["padding"]
            return self.node("AveragePool", x, base=base, kernel_shape=list(a["kernel"]), strides=list(a["stride"]),
                             pads=[ph, pw, ph, pw], count_include_pad=int(a["count_include_pad"]))
        if op == "mean":
            return self.node("ReduceMean", x, base=base, axes=list(a["axes"]), keepdims=int(a["keepdim"]))
        if op in ("add", "mul"):
            other = x[1] if len(x) > 1 else self.const(node)
            return self.node("Add" if op == "add" else "Mul", [x[0], other], base=base)
        if op == "relu":
            return self.node("Relu", x, base=base)
        if op == "relu6":
            return self.activation(x[0], "relu6", base)
        if op == "hardswish":
            return self.node("HardSwish", x, base=base)
        if op == "sigmoid":
            return self.node("Sigmoid", x, base=base)
        if op == "tanh":
            return self.node("Tanh", x, base=base)
        if op == "silu":
            s = self.node("Sigmoid", x, base=f"{base}_sigmoid")
            return self.node("Mul", [x[0], s], base=base)
        if op == "gelu":
            if a.get("approximate", "none") == "tanh":
                raise UnsupportedOpError(f"the ONNX exporter does not write tanh-approximated gelu ({node.where()})")
            inv = self.init(f"{base}_inv_sqrt2", np.float32(1 / math.sqrt(2)))
            one, half = self.init(f"{base}_one", np.float32(1)), self.init(f"{base}_half", np.float32(0.5))
            e = self.node("Erf", [self.node("Mul", [x[0], inv], base=f"{base}_scale")], base=f"{base}_erf")
            y = self.node("Mul", [x[0], self.node("Add", [e, one], base=f"{base}_add")], base=f"{base}_mul")
            return self.node("Mul", [y, half], base=base)
        if op == "softmax":
            return self.node("Softmax", x, base=base, axis=a["axis"])
        if op == "layer_norm":
            g = self.init(f"{base}_gamma", node.params["gamma"].astype(np.float32))
            b = self.init(f"{base}_beta", node.params["beta"].astype(np.float32))
            return self.node("LayerNormalization", [x[0], g, b], base=base, axis=-1, epsilon=a["eps"])
        if op == "matmul":
            return self.node("MatMul", x, base=base)
        if op == "reshape":
            shape = self.init(f"{base}_shape", np.array(a["shape"], np.int64))
            return self.node("Reshape", [x[0], shape], base=base)
        if op == "transpose":
            return self.node("Transpose", x, base=base, perm=list(a["perm"]))
        if op == "concat":
            return self.node("Concat", x, base=base, axis=a["axis"])
        if op == "embedding":
            if self.int8:
                qp = self.graph.qparams[node.outputs[0]]
                q = self.init(f"{base}_weight_q", node.params["weight_q"].astype(np.int8))
                s = self.init(f"{base}_weight_scale", np.float32(qp.scalar_scale))
                z = self.init(f"{base}_weight_zp", np.int8(qp.scalar_zero_point))
                w = self.node("DequantizeLinear", [q, s, z], base=f"{base}_weight_DQ")
            else:
                w = self.init(f"{base}_weight", node.params["weight"].astype(np.float32))
            return self.node("Gather", [w, x[0]], base=base, axis=0)
        raise UnsupportedOpError(f"the ONNX exporter cannot express op {op!r} ({node.where()})")

    def build(self):
        helper, g = self.helper, self.graph
        inputs = []
        for v in g.inputs:
            shape = ["N" if d is None else d for d in v.shape]
            inputs.append(helper.make_tensor_value_info(v.name, _DTYPES[v.dtype], shape))
            self.unique.reserve(v.name)
            if self.int8 and v.dtype == "float32":
                self.alias[v.name] = self.qdq(v.name, v.name)
        for node in g.nodes:
            out = node.outputs[0]
            is_output = out in g.outputs
            y = self.emit(node)
            if self.int8 and out in g.qparams:
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


class OnnxFp32Exporter:
    target = "onnx-fp32"
    runtime = "onnxruntime"
    precision = "fp32"

    def export(self, graph, path: str | Path) -> Path:
        model = _Writer(graph, int8=False).build()
        Path(path).write_bytes(model.SerializeToString(deterministic=True))
        return Path(path)


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
