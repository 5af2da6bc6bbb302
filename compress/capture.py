"""Capture a PyTorch module into edgefleet's IR with ``torch.export``.

>>> graph = capture(model, example_shape=(1, 8, 8))     # doctest: +SKIP

The module is exported with a dynamic batch axis, then every ATen call is mapped onto the closed op
set of :mod:`edgefleet.compress.ir.ops`. Batch norms are folded into the convolution or linear layer
before them, ReLU/ReLU6 into the layer they follow, and no-ops (dropout, clone, ...) disappear. Any
other ATen op is refused with its name and the user's source line.
"""

from __future__ import annotations

import re
from typing import Sequence

import numpy as np

from edgefleet._errors import ModelError, UnsupportedOpError

from .ir.graph import Graph, Node, Value

_IDENTITY = {"dropout", "dropout_", "clone", "contiguous", "alias", "detach", "lift_fresh_copy",
             "feature_dropout", "alpha_dropout", "_to_copy", "to"}
_SKIP = {"sym_size", "_assert_scalar", "_assert_tensor_metadata", "sym_constrain_range_for_size",
         "_assert_async", "le", "ge", "eq", "scalar_tensor", "sym_constrain_range"}
_SHAPE_OPS = {"view", "reshape", "flatten", "unsqueeze", "squeeze", "_unsafe_view", "expand_as"}
_UNARY = {"relu": "relu", "relu_": "relu", "hardswish": "hardswish", "hardswish_": "hardswish",
          "sigmoid": "sigmoid", "silu": "silu", "silu_": "silu", "tanh": "tanh", "gelu": "gelu"}


def _aten_name(target) -> str:
    name = getattr(target, "__name__", str(target))  # e.g. "conv2d.default"
    return name.split(".")[0]


def _source(fx_node) -> str:
    trace = fx_node.meta.get("stack_trace") or ""
    user = [m for m in re.finditer(r'File "([^"]+)", line (\d+), in (\S+)', trace)
            if "/torch/" not in m.group(1) and "/site-packages/" not in m.group(1)]
    if not user:
        return ""
    m = user[-1]
    return f"{m.group(1)}:{m.group(2)} in {m.group(3)}"


def _module_path(fx_node) -> str:
    stack = fx_node.meta.get("nn_module_stack") or {}
    if not stack:
        return ""
    path = list(stack.values())[-1][0]
    return re.sub(r"^L\['self'\]\.?", "", path)


class _Builder:
    def __init__(self, program):
        self.program = program
        sig = program.graph_signature
        state = program.state_dict
        consts = getattr(program, "constants", {}) or {}
        self.param_names: dict[str, str] = {}
        self.consts: dict[str, np.ndarray] = {}
        for ph, target in {**sig.inputs_to_parameters, **sig.inputs_to_buffers}.items():
            self.param_names[ph] = target
            tensor = state[target] if target in state else consts[target]
            self.consts[ph] = tensor.detach().cpu().numpy().astype(np.float32) if tensor.is_floating_point() \
                else tensor.detach().cpu().numpy()
        for ph, target in getattr(sig, "inputs_to_lifted_tensor_constants", {}).items():
            self.param_names[ph] = target
            self.consts[ph] = consts[target].detach().cpu().numpy()
        self.user_inputs = list(sig.user_inputs)
        self.nodes: list[Node] = []
        self.values: dict[str, Value] = {}
        self.alias: dict[str, str] = {}  # fx name -> IR value name (identities, getitem)
        self.counts: dict[str, int] = {}

    # -- helpers ---------------------------------------------------------------------------------
    def value_name(self, arg) -> str:
        name = arg.name if hasattr(arg, "name") else str(arg)
        return self.alias.get(name, name)

    def is_const(self, arg) -> bool:
        return hasattr(arg, "name") and arg.name in self.consts

    def const(self, arg) -> np.ndarray:
        return self.consts[arg.name]

    def shape_of(self, fx_node) -> tuple:
        val = fx_node.meta.get("val")
        if val is None or not hasattr(val, "shape"):
            raise ModelError(f"no shape recorded for {fx_node.name}")
        # symbolic sizes (the batch axis) are SymInts, not ints; never call int() on them (it guards)
        return tuple(int(s) if isinstance(s, int) else None for s in val.shape)

    def add(self, op, fx_node, inputs, attrs=None, params=None, param_names=None) -> Node:
        self.counts[op] = self.counts.get(op, 0) + 1
        node = Node(op=op, name=f"{op}_{self.counts[op]}", inputs=inputs, outputs=[fx_node.name],
                    attrs=attrs or {}, params=params or {}, source=_source(fx_node),
                    module=_module_path(fx_node), param_names=param_names or {})
        val = fx_node.meta.get("val")
        dtype = str(val.dtype).replace("torch.", "") if val is not None else "float32"
        self.values[fx_node.name] = Value(fx_node.name, self.shape_of(fx_node), dtype)
        self.nodes.append(node)
        return node

    def refuse(self, fx_node, why: str = "") -> UnsupportedOpError:
        loc = _source(fx_node) or "unknown location"
        mod = _module_path(fx_node)
        extra = f": {why}" if why else ""
        return UnsupportedOpError(
            f"unsupported op aten.{_aten_name(fx_node.target)} at {loc}"
            f"{f' (module {mod!r})' if mod else ''}{extra}; edgefleet's op set is documented in "
            f"edgefleet.compress.ir.ops")

    # -- mapping ----------------------------------------------------------------------------------
    def visit(self, n) -> None:
        name = _aten_name(n.target)
        args = list(n.args)
        kw = dict(n.kwargs)
        if name in _SKIP:
            return
        if name == "getitem":
            src, idx = args
            if idx != 0:
                raise self.refuse(n, "only the first output of a multi-output op is supported")
            self.alias[n.name] = self.value_name(src)
            return
        if name in _IDENTITY:
            if name == "dropout" and len(args) > 2 and args[2]:
                raise self.refuse(n, "dropout in training mode; call model.eval() first")
            self.alias[n.name] = self.value_name(args[0])
            return
        if any(self.is_const(a) for a in args[:1]) and name not in ("embedding",):
            raise self.refuse(n, "the first operand is a constant; only activations flow through ops")
        x = self.value_name(args[0]) if args else None
        if name == "linear":
            w = self.const(args[1])
            params = {"weight": w}
            pn = {"weight": self.param_names[args[1].name]}
            if len(args) > 2 and args[2] is not None:
                params["bias"] = self.const(args[2])
                pn["bias"] = self.param_names[args[2].name]
            self.add("linear", n, [x], {"act": "none"}, params, pn)
        elif name == "conv2d":
            if isinstance(args[4] if len(args) > 4 else kw.get("padding", 0), str):
                raise self.refuse(n, "string padding ('same'/'valid'); use explicit integers")
            w = self.const(args[1])
            params, pn = {"weight": w}, {"weight": self.param_names[args[1].name]}
            if len(args) > 2 and args[2] is not None:
                params["bias"] = self.const(args[2])
                pn["bias"] = self.param_names[args[2].name]
            attrs = {"stride": _pair(_arg(args, kw, 3, "stride", 1)), "padding": _pair(_arg(args, kw, 4, "padding", 0)),
                     "dilation": _pair(_arg(args, kw, 5, "dilation", 1)), "groups": int(_arg(args, kw, 6, "groups", 1)),
                     "act": "none"}
            self.add("conv2d", n, [x], attrs, params, pn)
        elif name in ("batch_norm", "_native_batch_norm_legit_no_training"):
            if name == "batch_norm" and _arg(args, kw, 5, "training", False):
                raise self.refuse(n, "batch norm in training mode; call model.eval() first")
            gamma = self.const(args[1]) if args[1] is not None else None
            beta = self.const(args[2]) if args[2] is not None else None
            mean, var = self.const(args[3]), self.const(args[4])
            eps = float(args[7] if name == "batch_norm" else args[6])
            self.batch_norm(n, x, gamma, beta, mean, var, eps)
        elif name in _UNARY:
            attrs = {}
            if name == "gelu":
                attrs["approximate"] = str(kw.get("approximate", args[1] if len(args) > 1 else "none"))
            self.add(_UNARY[name], n, [x], attrs)
        elif name in ("hardtanh", "hardtanh_", "clamp", "clamp_"):
            lo, hi = _arg(args, kw, 1, "min", None), _arg(args, kw, 2, "max", None)
            if (lo, hi) == (0, 6) or (lo, hi) == (0.0, 6.0):
                self.add("relu6", n, [x])
            elif lo in (0, 0.0) and hi is None:
                self.add("relu", n, [x])
            else:
                raise self.refuse(n, f"clamp to [{lo}, {hi}]: only ReLU and ReLU6 ranges are supported")
        elif name in ("max_pool2d", "max_pool2d_with_indices"):
            kernel = _pair(args[1])
            stride = _pair(_arg(args, kw, 2, "stride", None) or kernel)
            if _pair(_arg(args, kw, 4, "dilation", 1)) != (1, 1) or _arg(args, kw, 5, "ceil_mode", False):
                raise self.refuse(n, "dilation or ceil_mode in max pooling")
            self.add("max_pool2d", n, [x], {"kernel": kernel, "stride": stride, "padding": _pair(_arg(args, kw, 3, "padding", 0))})
        elif name == "avg_pool2d":
            kernel = _pair(args[1])
            stride = _pair(_arg(args, kw, 2, "stride", None) or kernel)
            if _arg(args, kw, 4, "ceil_mode", False) or _arg(args, kw, 6, "divisor_override", None):
                raise self.refuse(n, "ceil_mode or divisor_override in average pooling")
            self.add("avg_pool2d", n, [x], {"kernel": kernel, "stride": stride, "padding": _pair(_arg(args, kw, 3, "padding", 0)),
                                            "count_include_pad": bool(_arg(args, kw, 5, "count_include_pad", True))})
        elif name == "adaptive_avg_pool2d":
            in_shape = self.values_shape(args[0])
            out_hw = _pair(args[1])
            if out_hw == (1, 1):
                self.add("mean", n, [x], {"axes": (2, 3), "keepdim": True})
            elif in_shape[2] % out_hw[0] == 0 and in_shape[3] % out_hw[1] == 0:
                k = (in_shape[2] // out_hw[0], in_shape[3] // out_hw[1])
                self.add("avg_pool2d", n, [x], {"kernel": k, "stride": k, "padding": (0, 0), "count_include_pad": True})
            else:
                raise self.refuse(n, "adaptive pooling whose output does not divide the input")
        elif name == "mean":
            dims = args[1] if len(args) > 1 else kw.get("dim")
            ndim = len(self.values_shape(args[0]))
            axes = tuple(sorted(d % ndim for d in (dims if isinstance(dims, (list, tuple)) else [dims])))
            if 0 in axes:
                raise self.refuse(n, "mean over the batch axis")
            self.add("mean", n, [x], {"axes": axes, "keepdim": bool(_arg(args, kw, 2, "keepdim", False))})
        elif name in ("add", "add_", "mul", "mul_", "sub", "div"):
            self.binary(n, name.rstrip("_"), args, kw)
        elif name in _SHAPE_OPS:
            shape = self.shape_of(n)
            if shape[0] is not None and self.values_shape(args[0])[0] is None:
                raise self.refuse(n, "reshape that changes the batch axis")
            self.add("reshape", n, [x], {"shape": (-1, *shape[1:])})
        elif name in ("softmax", "_softmax"):
            ndim = len(self.values_shape(args[0]))
            self.add("softmax", n, [x], {"axis": int(args[1]) % ndim})
        elif name == "layer_norm":
            normalized = list(args[1])
            if len(normalized) != 1:
                raise self.refuse(n, "layer norm over more than the last axis")
            dim = normalized[0]
            gamma = self.const(args[2]) if len(args) > 2 and args[2] is not None else np.ones(dim, np.float32)
            beta = self.const(args[3]) if len(args) > 3 and args[3] is not None else np.zeros(dim, np.float32)
            pn = {k: self.param_names[a.name] for k, a in (("gamma", args[2] if len(args) > 2 else None),
                                                           ("beta", args[3] if len(args) > 3 else None)) if a is not None}
            self.add("layer_norm", n, [x], {"eps": float(_arg(args, kw, 4, "eps", 1e-5))},
                     {"gamma": gamma, "beta": beta}, pn)
        elif name in ("matmul", "bmm", "mm"):
            if self.is_const(args[1]):
                w = self.const(args[1])
                if w.ndim != 2:
                    raise self.refuse(n, "matmul with a constant of rank != 2")
                self.add("linear", n, [x], {"act": "none"}, {"weight": np.ascontiguousarray(w.T)})
            else:
                self.add("matmul", n, [x, self.value_name(args[1])])
        elif name in ("transpose", "permute", "t"):
            ndim = len(self.values_shape(args[0]))
            if name == "permute":
                perm = [d % ndim for d in args[1]]
            else:
                d0, d1 = (0, 1) if name == "t" else (args[1] % ndim, args[2] % ndim)
                perm = list(range(ndim))
                perm[d0], perm[d1] = perm[d1], perm[d0]
            if perm[0] != 0:
                raise self.refuse(n, "transpose that moves the batch axis")
            self.add("transpose", n, [x], {"perm": tuple(perm)})
        elif name == "cat":
            tensors = args[0]
            ndim = len(self.values_shape(tensors[0]))
            axis = int(_arg(args, kw, 1, "dim", 0)) % ndim
            if axis == 0:
                raise self.refuse(n, "concatenation along the batch axis")
            self.add("concat", n, [self.value_name(t) for t in tensors], {"axis": axis})
        elif name == "embedding":
            weight = self.const(args[0])
            self.add("embedding", n, [self.value_name(args[1])], {}, {"weight": weight},
                     {"weight": self.param_names[args[0].name]})
        else:
            raise self.refuse(n)

    def values_shape(self, arg) -> tuple:
        name = self.value_name(arg)
        if name in self.values:
            return self.values[name].shape
        raise ModelError(f"unknown tensor {name!r}")

    def binary(self, n, op: str, args, kw) -> None:
        a, b = args[0], args[1]
        alpha = kw.get("alpha", args[2] if len(args) > 2 else 1)
        if alpha != 1:
            raise self.refuse(n, "add/sub with alpha != 1")
        if hasattr(b, "name") and not self.is_const(b):
            if op in ("sub", "div"):
                raise self.refuse(n, f"{op} of two tensors")
            self.add(op, n, [self.value_name(a), self.value_name(b)])
            return
        const = self.const(b) if hasattr(b, "name") else np.asarray(b, np.float32)
        const = np.asarray(const, np.float32)
        if op == "sub":
            op, const = "add", -const
        elif op == "div":
            op, const = "mul", 1.0 / const
        pn = {"const": self.param_names[b.name]} if hasattr(b, "name") else {}
        self.add(op, n, [self.value_name(a)], {}, {"const": const}, pn)

    def batch_norm(self, n, x: str, gamma, beta, mean, var, eps) -> None:
        c = mean.shape[0]
        gamma = np.ones(c, np.float32) if gamma is None else gamma
        beta = np.zeros(c, np.float32) if beta is None else beta
        scale = (gamma / np.sqrt(var + eps)).astype(np.float32)
        shift = (beta - mean * scale).astype(np.float32)
        prev = next((p for p in reversed(self.nodes) if x in p.outputs), None)
        consumers = [u for u in n.graph.nodes if any(getattr(a, "name", None) == x for a in u.args)]
        if prev is not None and prev.op in ("conv2d", "linear") and len(consumers) == 1:
            # fold: W' = W * scale (per output channel), b' = b * scale + shift
            w = prev.params["weight"]
            prev.params["weight"] = (w * scale.reshape(-1, *([1] * (w.ndim - 1)))).astype(np.float32)
            prev.params["bias"] = (prev.params.get("bias", np.zeros(c, np.float32)) * scale + shift).astype(np.float32)
            prev.attrs["folded_bn"] = _module_path(n)
            self.alias[n.name] = x
            return
        ndim = len(self.values_shape(x))
        bshape = (c,) + (1,) * (ndim - 2)
        mul = self.add("mul", n, [x], {}, {"const": scale.reshape(bshape)})
        mul.outputs = [f"{n.name}_scaled"]
        self.values[mul.outputs[0]] = Value(mul.outputs[0], self.values[n.name].shape)
        self.counts["add"] = self.counts.get("add", 0) + 1
        add = Node("add", f"add_{self.counts['add']}", [mul.outputs[0]], [n.name], {}, {"const": shift.reshape(bshape)},
                   mul.source, mul.module)
        self.nodes.append(add)


def _arg(args, kw, index, key, default):
    if len(args) > index:
        return args[index]
    return kw.get(key, default)


def _pair(v) -> tuple[int, int]:
    if isinstance(v, (list, tuple)):
        return (int(v[0]), int(v[-1])) if len(v) else (0, 0)
    return (int(v), int(v))


def fuse_activations(graph: Graph) -> Graph:
    """Fold a ReLU/ReLU6 into the conv2d/linear that is its only producer (and whose output has no
    other consumer): the int8 form then clamps in the requantization instead of a separate op."""
    keep = []
    rename: dict[str, str] = {}
    for node in graph.nodes:
        node.inputs = [rename.get(i, i) for i in node.inputs]
        if node.op in ("relu", "relu6") and keep:
            prev = keep[-1]
            src = node.inputs[0]
            if (prev.op in ("conv2d", "linear") and prev.outputs[0] == src and prev.attrs.get("act") == "none"
                    and len(graph.consumers(src)) == 1 and src not in graph.outputs):
                prev.attrs["act"] = node.op
                # the fused node now produces the activation's output tensor
                prev.outputs = [node.outputs[0]]
                del graph.values[src]
                continue
        keep.append(node)
    graph.nodes = keep
    graph.outputs = [rename.get(o, o) for o in graph.outputs]
    return graph


def export_program(model, example_shape: Sequence[int], *, example_dtype=None):
    """``torch.export`` with a dynamic batch axis; failures become ModelError."""
    import torch

    model = model.eval()
    dtype = example_dtype or torch.float32
    example = torch.zeros((2, *example_shape), dtype=dtype) if dtype.is_floating_point else \
        torch.zeros((2, *example_shape), dtype=dtype)
    batch = torch.export.Dim("batch", min=1, max=1 << 16)
    try:
        return torch.export.export(model, (example,), dynamic_shapes=({0: batch},), strict=False)
    except Exception as e:
        raise ModelError(f"torch.export could not capture the model with a dynamic batch axis: "
                         f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}") from e


def capture(model_or_program, example_shape: Sequence[int] | None = None, *, name: str = "model",
            input_dtype: str = "float32") -> Graph:
    """Capture an ``nn.Module`` (with ``example_shape``, the input shape without the batch axis)
    or an ``ExportedProgram`` into a validated IR :class:`Graph`."""
    import torch

    if isinstance(model_or_program, torch.export.ExportedProgram):
        program = model_or_program
    else:
        if example_shape is None:
            raise ModelError("capture needs example_shape (the input shape without the batch axis)")
        dtype = torch.int64 if input_dtype == "int64" else torch.float32
        with torch.no_grad():
            program = export_program(model_or_program, example_shape, example_dtype=dtype)
    b = _Builder(program)
    inputs = []
    for node in program.graph.nodes:
        if node.op == "placeholder":
            if node.name in b.user_inputs:
                shape = b.shape_of(node)
                val = node.meta["val"]
                v = Value(node.name, (None, *shape[1:]), str(val.dtype).replace("torch.", ""))
                inputs.append(v)
                b.values[node.name] = v
        elif node.op == "call_function":
            b.visit(node)
        elif node.op == "output":
            outs = node.args[0]
            outputs = [b.value_name(o) for o in (outs if isinstance(outs, (list, tuple)) else [outs])]
    # rename the user-facing tensors to stable names
    graph = Graph(inputs=inputs, nodes=b.nodes, outputs=outputs, values=b.values, name=name)
    _rename(graph, {inputs[0].name: "input"} if len(inputs) == 1 else {})
    _rename(graph, {outputs[0]: "output"} if len(outputs) == 1 else {o: f"output_{i}" for i, o in enumerate(outputs)})
    for value in graph.values.values():
        if value.shape and value.shape[0] is not None and value.name != "input":
            value.shape = (None, *value.shape[1:])
    fuse_activations(graph)
    return graph.validate()


def _rename(graph: Graph, mapping: dict[str, str]) -> None:
    if not mapping:
        return
    for node in graph.nodes:
        node.inputs = [mapping.get(i, i) for i in node.inputs]
        node.outputs = [mapping.get(o, o) for o in node.outputs]
    for v in graph.inputs:
        v.name = mapping.get(v.name, v.name)
    graph.outputs = [mapping.get(o, o) for o in graph.outputs]
    graph.values = {mapping.get(k, k): v for k, v in graph.values.items()}
    for k, v in graph.values.items():
        v.name = k
