"""How each ATen op of a ``torch.export`` graph maps onto the IR: one handler per ATen name,
registered with :func:`aten` (the capture builder looks handlers up here, never through an if/elif
chain). A handler adds IR nodes through the builder or raises the builder's refusal, whose ``why``
says what is missing. ``SUGGEST`` names the nearest supported alternative of common unsupported ops.
"""

from __future__ import annotations

import math

import numpy as np

from edgefleet._registry import registrar

from .ir.graph import Node, Value

ATEN: dict = {}

#: the nearest supported alternative, shown in the unsupported-op error
SUGGEST = {
    **{a: "a lookup-table activation (relu, relu6, clamp, hardswish, hardsigmoid, sigmoid, silu, tanh, gelu)"
       for a in ("leaky_relu", "elu", "selu", "celu", "mish", "softplus", "prelu", "rrelu", "softsign", "logsigmoid")},
    **{a: "layer_norm over the last axis, or batch_norm (folded into the convolution before it)"
       for a in ("group_norm", "native_group_norm", "instance_norm", "rms_norm")},
    **{a: "the 2-D op on a [N, C, 1, L] view (conv2d, max_pool2d, avg_pool2d)"
       for a in ("conv1d", "max_pool1d", "avg_pool1d", "adaptive_avg_pool1d")},
    "adaptive_max_pool2d": "adaptive_avg_pool2d, or max_pool2d with a fixed kernel",
    "log_softmax": "softmax (take the log outside the model)",
    "amax": "max_pool2d over the spatial axes", "max": "max_pool2d over the spatial axes",
    "addmm": "linear", "baddbmm": "matmul then add",
    "sub": "add of a negated constant (subtraction of two activations is not in the op set)",
    "pad": "constant padding (mode 'constant')",
    "reflection_pad2d": "constant padding (F.pad(..., mode='constant'))",
    "replication_pad2d": "constant padding (F.pad(..., mode='constant'))",
    "conv_transpose2d": "conv2d on an upsampled map is not in the op set either; no alternative yet",
}


aten = registrar(ATEN)


def _arg(args, kw, index, key, default):
    if len(args) > index:
        return args[index]
    return kw.get(key, default)


def _pair(v) -> tuple[int, int]:
    if isinstance(v, (list, tuple)):
        return (int(v[0]), int(v[-1])) if len(v) else (0, 0)
    return (int(v), int(v))


def _first_activation(b, n, args, name):
    if b.is_const(args[0]):
        raise b.refuse(n, "the first operand is a constant; only activations flow through ops")
    return b.value_name(args[0])


@aten("getitem")
def _getitem(b, n, name, args, kw):
    src, idx = args
    if src.name in b.pieces:  # split / chunk / unbind: each piece is a slice of the source
        x, axis, bounds, squeeze = b.pieces[src.name]
        start, stop = bounds[idx]
        node = b.add("slice", n, [x], {"axis": axis, "start": start, "stop": stop, "step": 1})
        if squeeze:
            b.reshape_output(node, n)
        return
    if idx != 0:
        raise b.refuse(n, "only the first output of a multi-output op is supported")
    b.alias[n.name] = b.value_name(src)


@aten("linear")
def _linear(b, n, name, args, kw):
    x = _first_activation(b, n, args, name)
    params, pn = {"weight": b.const(args[1])}, {"weight": b.param_names.get(args[1].name, "")}
    if len(args) > 2 and args[2] is not None:
        params["bias"] = b.const(args[2])
        pn["bias"] = b.param_names.get(args[2].name, "")
    b.add("linear", n, [x], {"act": "none"}, params, pn)


@aten("conv2d")
def _conv2d(b, n, name, args, kw):
    x = _first_activation(b, n, args, name)
    if isinstance(_arg(args, kw, 4, "padding", 0), str):
        raise b.refuse(n, "string padding ('same'/'valid'); use explicit integers or F.pad")
    params, pn = {"weight": b.const(args[1])}, {"weight": b.param_names.get(args[1].name, "")}
    if len(args) > 2 and args[2] is not None:
        params["bias"] = b.const(args[2])
        pn["bias"] = b.param_names.get(args[2].name, "")
    attrs = {"stride": _pair(_arg(args, kw, 3, "stride", 1)), "padding": _pair(_arg(args, kw, 4, "padding", 0)),
             "dilation": _pair(_arg(args, kw, 5, "dilation", 1)), "groups": int(_arg(args, kw, 6, "groups", 1)),
             "act": "none"}
    b.add("conv2d", n, [x], attrs, params, pn)


@aten("batch_norm", "_native_batch_norm_legit_no_training")
def _batch_norm(b, n, name, args, kw):
    x = _first_activation(b, n, args, name)
    if name == "batch_norm" and _arg(args, kw, 5, "training", False):
        raise b.refuse(n, "batch norm in training mode; call model.eval() first")
    gamma = b.const(args[1]) if args[1] is not None else None
    beta = b.const(args[2]) if args[2] is not None else None
    eps = float(args[7] if name == "batch_norm" else args[6])
    b.batch_norm(n, x, gamma, beta, b.const(args[3]), b.const(args[4]), eps)


_UNARY = {"relu": "relu", "relu_": "relu", "relu6": "relu6", "hardswish": "hardswish", "hardswish_": "hardswish",
          "hardsigmoid": "hardsigmoid", "hardsigmoid_": "hardsigmoid", "sigmoid": "sigmoid", "sigmoid_": "sigmoid",
          "silu": "silu", "silu_": "silu", "tanh": "tanh", "tanh_": "tanh", "gelu": "gelu", "gelu_": "gelu"}


@aten(*_UNARY)
def _unary(b, n, name, args, kw):
    x = _first_activation(b, n, args, name)
    attrs = {}
    if name.startswith("gelu"):
        attrs["approximate"] = str(kw.get("approximate", args[1] if len(args) > 1 else "none"))
    b.add(_UNARY[name], n, [x], attrs)


@aten("hardtanh", "hardtanh_", "clamp", "clamp_", "clip")
def _clamp(b, n, name, args, kw):
    x = _first_activation(b, n, args, name)
    default_lo, default_hi = (-1.0, 1.0) if name.startswith("hardtanh") else (None, None)
    lo, hi = _arg(args, kw, 1, "min", default_lo), _arg(args, kw, 2, "max", default_hi)
    if hasattr(lo, "name") or hasattr(hi, "name"):
        raise b.refuse(n, "clamp to tensor bounds; use numbers")
    if lo is not None and hi is not None and float(lo) == 0.0 and float(hi) == 6.0:
        b.add("relu6", n, [x])
    elif lo is not None and float(lo) == 0.0 and hi is None:
        b.add("relu", n, [x])
    else:
        b.add("clamp", n, [x], {"min": -math.inf if lo is None else float(lo), "max": math.inf if hi is None else float(hi)})


@aten("max_pool2d", "max_pool2d_with_indices")
def _max_pool(b, n, name, args, kw):
    x = _first_activation(b, n, args, name)
    kernel = _pair(args[1])
    stride = _pair(_arg(args, kw, 2, "stride", None) or kernel)
    if _pair(_arg(args, kw, 4, "dilation", 1)) != (1, 1) or _arg(args, kw, 5, "ceil_mode", False):
        raise b.refuse(n, "dilation or ceil_mode in max pooling")
    b.add("max_pool2d", n, [x], {"kernel": kernel, "stride": stride, "padding": _pair(_arg(args, kw, 3, "padding", 0))})


@aten("avg_pool2d")
def _avg_pool(b, n, name, args, kw):
    x = _first_activation(b, n, args, name)
    kernel = _pair(args[1])
    stride = _pair(_arg(args, kw, 2, "stride", None) or kernel)
    if _arg(args, kw, 4, "ceil_mode", False) or _arg(args, kw, 6, "divisor_override", None):
        raise b.refuse(n, "ceil_mode or divisor_override in average pooling")
    b.add("avg_pool2d", n, [x], {"kernel": kernel, "stride": stride, "padding": _pair(_arg(args, kw, 3, "padding", 0)),
                                 "count_include_pad": bool(_arg(args, kw, 5, "count_include_pad", True))})


@aten("adaptive_avg_pool2d", "_adaptive_avg_pool2d")
def _adaptive_avg_pool(b, n, name, args, kw):
    x = _first_activation(b, n, args, name)
    in_shape, out_hw = b.values_shape(args[0]), _pair(args[1])
    if out_hw == (1, 1):
        b.add("mean", n, [x], {"axes": (2, 3), "keepdim": True})
    elif in_shape[2] % out_hw[0] == 0 and in_shape[3] % out_hw[1] == 0:
        k = (in_shape[2] // out_hw[0], in_shape[3] // out_hw[1])
        b.add("avg_pool2d", n, [x], {"kernel": k, "stride": k, "padding": (0, 0), "count_include_pad": True})
    else:
        raise b.refuse(n, "adaptive pooling whose output does not divide the input")


@aten("mean", "sum")
def _reduce(b, n, name, args, kw):
    x = _first_activation(b, n, args, name)
    dims = args[1] if len(args) > 1 else kw.get("dim")
    ndim = len(b.values_shape(args[0]))
    if dims is None or (isinstance(dims, (list, tuple)) and not dims):
        raise b.refuse(n, f"{name} over every axis, the batch included; pass dim=")
    axes = tuple(sorted(d % ndim for d in (dims if isinstance(dims, (list, tuple)) else [dims])))
    if 0 in axes:
        raise b.refuse(n, f"{name} over the batch axis")
    b.add(name, n, [x], {"axes": axes, "keepdim": bool(_arg(args, kw, 2, "keepdim", False))})


@aten("add", "add_", "mul", "mul_", "sub", "sub_", "div", "div_", "rsub")
def _binary(b, n, name, args, kw):
    b.binary(n, name.rstrip("_"), args, kw)


@aten("view", "reshape", "flatten", "unsqueeze", "squeeze", "_unsafe_view", "unflatten")
def _reshape(b, n, name, args, kw):
    x = _first_activation(b, n, args, name)
    shape = b.shape_of(n)
    if shape[0] is not None and b.values_shape(args[0])[0] is None:
        raise b.refuse(n, "reshape that changes the batch axis")
    b.add("reshape", n, [x], {"shape": (-1, *shape[1:])})


@aten("softmax", "_softmax")
def _softmax(b, n, name, args, kw):
    x = _first_activation(b, n, args, name)
    b.add("softmax", n, [x], {"axis": int(args[1]) % len(b.values_shape(args[0]))})


@aten("layer_norm")
def _layer_norm(b, n, name, args, kw):
    x = _first_activation(b, n, args, name)
    normalized = list(args[1])
    if len(normalized) != 1:
        raise b.refuse(n, "layer norm over more than the last axis")
    dim = normalized[0]
    g_arg, b_arg = (args[2] if len(args) > 2 else None), (args[3] if len(args) > 3 else None)
    gamma = b.const(g_arg) if g_arg is not None else np.ones(dim, np.float32)
    beta = b.const(b_arg) if b_arg is not None else np.zeros(dim, np.float32)
    pn = {k: b.param_names.get(a.name, "") for k, a in (("gamma", g_arg), ("beta", b_arg)) if a is not None}
    b.add("layer_norm", n, [x], {"eps": float(_arg(args, kw, 4, "eps", 1e-5))}, {"gamma": gamma, "beta": beta}, pn)


@aten("matmul", "bmm", "mm")
def _matmul(b, n, name, args, kw):
    x = _first_activation(b, n, args, name)
    if b.is_const(args[1]):
        w = b.const(args[1])
        if w.ndim != 2:
            raise b.refuse(n, "matmul with a constant of rank != 2")
        b.add("linear", n, [x], {"act": "none"}, {"weight": np.ascontiguousarray(w.T)})
    else:
        b.add("matmul", n, [x, b.value_name(args[1])])


@aten("transpose", "permute", "t")
def _transpose(b, n, name, args, kw):
    x = _first_activation(b, n, args, name)
    ndim = len(b.values_shape(args[0]))
    if name == "permute":
        perm = [d % ndim for d in args[1]]
    else:
        d0, d1 = (0, 1) if name == "t" else (args[1] % ndim, args[2] % ndim)
        perm = list(range(ndim))
        perm[d0], perm[d1] = perm[d1], perm[d0]
    if perm[0] != 0:
        users = list(n.users)
        if users and all(_aten_of(u) == "select" and u.args[1] == 0
                         for u in users):
            b.permuted[n.name] = (x, tuple(perm))  # qkv.permute(2, 0, ...)[i]: resolved by the select
            return
        raise b.refuse(n, "transpose that moves the batch axis")
    b.add("transpose", n, [x], {"perm": tuple(perm)})


def _aten_of(fx_node) -> str:
    return getattr(fx_node.target, "__name__", str(fx_node.target)).split(".")[0]


def _take_permuted(b, n, src: str, index: int) -> None:
    """``x.permute(perm)[index]`` with ``perm[0] != 0``: slice ``x`` on axis ``perm[0]``, drop that axis,
    then permute the rest (the batch axis must come first among them)."""
    x, perm = b.permuted[src]
    axis = perm[0]
    rest = [p - (p > axis) for p in perm[1:]]
    if rest[0] != 0:
        raise b.refuse(n, "transpose that moves the batch axis")
    length = b.values_shape(x)[axis]
    node = b.add("slice", n, [x], {"axis": axis, "start": index % length, "stop": index % length + 1, "step": 1})
    sliced = f"{n.name}_sliced"
    node.outputs = [sliced]
    shape = list(b.values_shape(x))
    shape[axis] = 1
    b.values[sliced] = Value(sliced, tuple(shape), b.values[x].dtype)
    dropped = [d for i, d in enumerate(shape) if i != axis]
    if rest == list(range(len(rest))):
        b.add("reshape", n, [sliced], {"shape": (-1, *dropped[1:])})
        return
    squeezed = f"{n.name}_squeezed"
    b.counts["reshape"] = b.counts.get("reshape", 0) + 1
    b.values[squeezed] = Value(squeezed, tuple(dropped), b.values[x].dtype)
    b.nodes.append(Node("reshape", f"reshape_{b.counts['reshape']}", [sliced], [squeezed], {"shape": (-1, *dropped[1:])},
                        {}, node.source, node.module))
    b.add("transpose", n, [squeezed], {"perm": tuple(rest)})


@aten("cat", "concat")
def _cat(b, n, name, args, kw):
    tensors = args[0]
    ndim = len(b.shape_of(n))
    axis = int(_arg(args, kw, 1, "dim", 0)) % ndim
    if axis == 0:
        raise b.refuse(n, "concatenation along the batch axis")
    if any(b.is_const(t) for t in tensors):
        _cat_with_constants(b, n, tensors, axis)
        return
    b.add("concat", n, [b.value_name(t) for t in tensors], {"axis": axis})


def _cat_with_constants(b, n, tensors, axis):
    """``cat([cls_token, x])`` (constants before and/or after the activations, e.g. ViT's class token):
    the activations zero-padded along the axis, plus one constant holding the tokens and zeros."""
    flags = [b.is_const(t) for t in tensors]
    first, last = flags.index(False), len(flags) - 1 - flags[::-1].index(False)
    if not all(flags[:first]) or not all(flags[last + 1:]) or any(flags[first:last + 1]):
        raise b.refuse(n, "constants between activations in a concatenation")
    out_shape = b.shape_of(n)
    size = lambda t: b.const(t).shape[axis] if b.is_const(t) else b.values_shape(t)[axis]  # noqa: E731
    before, after = sum(size(t) for t in tensors[:first]), sum(size(t) for t in tensors[last + 1:])
    middle = tensors[first:last + 1]
    x = b.value_name(middle[0])
    if len(middle) > 1:
        node = b.add("concat", n, [b.value_name(t) for t in middle], {"axis": axis})
        x = b.rename_output(node, n, "_acts", sum(size(t) for t in middle), axis)
    pads = [0] * (2 * len(out_shape))
    pads[2 * axis], pads[2 * axis + 1] = before, after
    node = b.add("pad", n, [x], {"pads": tuple(pads), "value": 0.0})
    padded = b.rename_output(node, n, "_padded", out_shape[axis], axis)
    parts = []
    for t in tensors:
        if b.is_const(t):
            c = b.const(t).astype(np.float32)
            parts.append(c.reshape((1,) * (len(out_shape) - c.ndim) + c.shape))
        else:
            zero_shape = [1] + [d for d in b.values_shape(t)[1:]]
            parts.append(np.zeros(zero_shape, np.float32))
    const = np.concatenate([np.broadcast_to(p, (1, *[out_shape[d] if d != axis else p.shape[d]
                                                      for d in range(1, len(out_shape))])) for p in parts], axis=axis)
    b.add("add", n, [padded], {}, {"const": np.ascontiguousarray(const)})


@aten("embedding")
def _embedding(b, n, name, args, kw):
    if b.is_const(args[1]):
        raise b.refuse(n, "embedding of constant indices")  # folded before reaching here
    b.add("embedding", n, [b.value_name(args[1])], {}, {"weight": b.const(args[0])},
          {"weight": b.param_names.get(args[0].name, "")})


@aten("constant_pad_nd", "pad")
def _pad(b, n, name, args, kw):
    x = _first_activation(b, n, args, name)
    if name == "pad" and _arg(args, kw, 2, "mode", "constant") != "constant":
        raise b.refuse(n, f"padding mode {_arg(args, kw, 2, 'mode', '')!r}")
    torch_pads = [int(p) for p in args[1]]
    value = _arg(args, kw, 3 if name == "pad" else 2, "value", 0.0)
    value = 0.0 if value is None else float(value)
    if any(p < 0 for p in torch_pads):
        raise b.refuse(n, "negative padding (cropping); use slicing")
    ndim = len(b.values_shape(args[0]))
    pads = [0] * (2 * ndim)
    for i in range(len(torch_pads) // 2):  # torch: (last axis before, after, next-to-last before, after, ...)
        axis = ndim - 1 - i
        pads[2 * axis], pads[2 * axis + 1] = torch_pads[2 * i], torch_pads[2 * i + 1]
    if pads[0] or pads[1]:
        raise b.refuse(n, "padding of the batch axis")
    b.add("pad", n, [x], {"pads": tuple(pads), "value": value})


def _axis_len(b, arg, dim) -> tuple[int, int]:
    shape = b.values_shape(arg)
    axis = int(dim) % len(shape)
    return axis, shape[axis]


@aten("slice", "narrow")
def _slice(b, n, name, args, kw):
    x = _first_activation(b, n, args, name)
    axis, length = _axis_len(b, args[0], _arg(args, kw, 1, "dim", 0))
    if name == "narrow":
        start = int(args[2]) % length
        stop, step = start + int(args[3]), 1
    else:
        start, stop = _arg(args, kw, 2, "start", None), _arg(args, kw, 3, "end", None)
        step = int(_arg(args, kw, 4, "step", 1))
        start, stop, _ = slice(None if start is None else int(start), None if stop is None else int(stop)).indices(length)
    if axis == 0:
        if (start, stop, step) == (0, length, 1) or length is None:
            b.alias[n.name] = x
            return
        raise b.refuse(n, "slicing the batch axis")
    if (start, stop, step) == (0, length, 1):
        b.alias[n.name] = x
        return
    b.add("slice", n, [x], {"axis": axis, "start": start, "stop": max(stop, start), "step": step})


@aten("select")
def _select(b, n, name, args, kw):
    if args[0].name in b.permuted:
        _take_permuted(b, n, args[0].name, int(args[2]))
        return
    x = _first_activation(b, n, args, name)
    axis, length = _axis_len(b, args[0], args[1])
    if axis == 0:
        raise b.refuse(n, "selecting along the batch axis")
    index = int(args[2]) % length
    node = b.add("slice", n, [x], {"axis": axis, "start": index, "stop": index + 1, "step": 1})
    b.reshape_output(node, n)


@aten("split", "split_with_sizes", "chunk", "unbind")
def _split(b, n, name, args, kw):
    x = _first_activation(b, n, args, name)
    dim = _arg(args, kw, 1 if name == "unbind" else 2, "dim", 0)
    axis, length = _axis_len(b, args[0], dim)
    if axis == 0:
        raise b.refuse(n, f"{name} along the batch axis")
    if name == "unbind":
        sizes = [1] * length
    elif name == "chunk":
        step = -(-length // int(args[1]))
        sizes = [min(step, length - s) for s in range(0, length, step)]
    elif isinstance(args[1], (list, tuple)):
        sizes = [int(s) for s in args[1]]
    else:
        sizes = [min(int(args[1]), length - s) for s in range(0, length, int(args[1]))]
    starts = np.cumsum([0, *sizes])
    b.pieces[n.name] = (x, axis, [(int(s), int(e)) for s, e in zip(starts[:-1], starts[1:])], name == "unbind")
