"""Capture a PyTorch module into edgefleet's IR with ``torch.export``.

>>> graph = capture(model, example_shape=(1, 8, 8))     # doctest: +SKIP

The module is exported with a dynamic batch axis, then every ATen call is mapped onto the closed op
set of :mod:`edgefleet.compress.ir.ops`. Batch norms are folded into the convolution or linear layer
before them, ReLU/ReLU6 into the layer they follow, and no-ops (dropout, clone, ...) disappear. Any
other ATen op is refused with its name and the user's source line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from edgefleet._errors import ModelError, UnsupportedOpError

from . import capture_masks  # noqa: F401  (registers comparisons, where and masked_fill)
from .capture_aten import ATEN, SUGGEST, aten
from .ir.graph import Graph, Node, Value

_IDENTITY = {"dropout", "dropout_", "clone", "contiguous", "alias", "detach", "lift_fresh_copy",
             "feature_dropout", "alpha_dropout", "identity"}
_SKIP = {"sym_size", "_assert_scalar", "_assert_tensor_metadata", "sym_constrain_range_for_size",
         "_assert_async", "scalar_tensor", "sym_constrain_range"}
#: ops that read only their operand's shape (folded to a constant with batch 1, which broadcasts)
_LIKE = {"zeros_like", "ones_like", "full_like", "empty_like"}
#: ops without tensor operands that create a constant (folded)
_CREATORS = {"arange", "zeros", "ones", "full", "empty", "tensor", "scalar_tensor", "linspace", "eye"}


@aten(*_IDENTITY)
def _identity(b, n, name, args, kw):
    if name == "dropout" and len(args) > 2 and args[2]:
        raise b.refuse(n, "dropout in training mode; call model.eval() first")
    b.alias[n.name] = b.value_name(args[0])


@dataclass
class _Refusal:
    op: str
    why: str
    module: str
    source: str


def _tensor_args(args, kw) -> list:
    """The fx nodes among an op's operands (nested lists included)."""
    found = []
    for v in [*args, *kw.values()]:
        if isinstance(v, (list, tuple)):
            found += [x for x in v if hasattr(x, "op") and hasattr(x, "name")]
        elif hasattr(v, "op") and hasattr(v, "name"):
            found.append(v)
    return found


def _map_args(obj, fn):
    if isinstance(obj, dict):
        return {k: _map_args(v, fn) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_map_args(v, fn) for v in obj)
    return fn(obj) if hasattr(obj, "op") and hasattr(obj, "name") else obj


def unsupported_error(refusals: list[_Refusal]) -> UnsupportedOpError:
    """One error (one line, as the CLI prints it) naming every unsupported op: its source lines and
    modules, the number of calls, why (where a supported op was used in an unsupported way), and the
    nearest supported alternative."""
    by_op: dict[str, list[_Refusal]] = {}
    for r in refusals:
        by_op.setdefault(r.op, []).append(r)
    parts = []
    for op, rs in by_op.items():
        places = ", ".join(f"{r.source or 'unknown location'}" + (f" (module {r.module!r})" if r.module else "")
                           for r in rs[:4]) + (f", and {len(rs) - 4} more" if len(rs) > 4 else "")
        whys = sorted({r.why for r in rs if r.why})
        part = f"aten.{op} at {places} ({len(rs)} call{'s' if len(rs) > 1 else ''}{'; ' + '; '.join(whys) if whys else ''})"
        if op in SUGGEST:
            part += f", nearest supported: {SUGGEST[op]}"
        parts.append(part)
    error = UnsupportedOpError(
        f"{len(by_op)} unsupported op{'s' if len(by_op) > 1 else ''} in the model (nothing was calibrated or "
        f"trained): {' | '.join(parts)}. The op set and what each target supports: docs/ops.md")
    error.ops = {op: len(rs) for op, rs in by_op.items()}
    return error


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
        self.permuted: dict[str, tuple] = {}  # batch-moving permute consumed by select(0): (input, perm)
        self.pieces: dict[str, tuple] = {}  # split/chunk/unbind node -> (input, axis, [(start, stop)], squeeze)
        self.predicates: set[str] = set()   # float 0/1 values standing in for booleans (capture_masks)
        self.poisoned: set[str] = set()     # outputs of refused ops (and what depends on them)
        self.refusals: list[_Refusal] = []

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
        error = UnsupportedOpError(f"unsupported op aten.{_aten_name(fx_node.target)}{': ' + why if why else ''}")
        error.why = why
        return error

    def rename_output(self, node: Node, fx_node, suffix: str, length: int, axis: int) -> str:
        """Give ``node`` a private output (``fx_node``'s shape with ``length`` on ``axis``); returns its name."""
        name = f"{fx_node.name}{suffix}"
        shape = list(self.values[fx_node.name].shape)
        shape[axis] = length
        node.outputs = [name]
        self.values[name] = Value(name, tuple(shape), self.values[fx_node.name].dtype)
        return name

    def reshape_output(self, node: Node, fx_node) -> None:
        """Give ``node`` (a slice) a private output and reshape it to ``fx_node``'s shape (drops the axis)."""
        sliced = f"{fx_node.name}_sliced"
        shape = list(self.values[fx_node.name].shape)
        x_shape = self.values[node.inputs[0]].shape
        cut = list(x_shape)
        cut[node.attrs["axis"]] = node.attrs["stop"] - node.attrs["start"]
        node.outputs = [sliced]
        self.values[sliced] = Value(sliced, tuple(cut), self.values[fx_node.name].dtype)
        self.counts["reshape"] = self.counts.get("reshape", 0) + 1
        self.nodes.append(Node("reshape", f"reshape_{self.counts['reshape']}", [sliced], [fx_node.name],
                               {"shape": (-1, *shape[1:])}, {}, node.source, node.module))

    # -- mapping ----------------------------------------------------------------------------------
    def visit(self, n) -> None:
        """Map one ATen call onto IR nodes (or fold it into a constant); a refusal is recorded, not
        raised, so that capture can name every unsupported op of the model at once."""
        name = _aten_name(n.target)
        args, kw = list(n.args), dict(n.kwargs)
        if name in _SKIP:
            return
        if any(self.value_name(a) in self.poisoned for a in _tensor_args(args, kw)):
            self.poisoned.add(n.name)  # downstream of a refused op: check the op name only
            if name not in ATEN and name not in _IDENTITY and name != "getitem":
                self.refusals.append(_Refusal(name, "", _module_path(n), _source(n)))
            return
        if self.fold(n, name, args, kw):
            return
        handler = ATEN.get(name)
        try:
            if handler is None:
                raise self.refuse(n)
            handler(self, n, name, args, kw)
        except UnsupportedOpError as e:
            self.poisoned.add(n.name)
            self.refusals.append(_Refusal(name, getattr(e, "why", ""), _module_path(n), _source(n)))

    def fold(self, n, name: str, args, kw) -> bool:
        """Constant folding: an op none of whose tensor operands depends on a model input is computed
        here with torch, once (``arange``, position ids, ``zeros_like``, shapes, ...)."""
        import torch

        if name in _LIKE and self.value_name(args[0]) in self.values:
            # depends on the input's shape only: a constant with batch 1, which broadcasts
            val = n.meta["val"]
            shape = (1, *self.values_shape(args[0])[1:])
            fill = {"zeros_like": 0, "ones_like": 1, "full_like": args[1] if len(args) > 1 else 0}.get(name, 0)
            self.consts[n.name] = np.full(shape, fill, dtype=torch.empty((), dtype=val.dtype).numpy().dtype)
            return True
        if name in ("expand", "expand_as") and self.is_const(args[0]):
            # a constant broadcast to the (symbolic) batch: keep batch 1, which broadcasts where it is used
            shape = tuple(1 if d is None else d for d in self.shape_of(n))
            self.consts[n.name] = np.ascontiguousarray(np.broadcast_to(self.const(args[0]), (1, *shape[1:])))
            return True
        tensors = _tensor_args(args, kw)
        if name == "getitem" or any(not self.is_const(t) for t in tensors):
            return False
        if not tensors and name not in _CREATORS:
            return False
        as_torch = lambda v: torch.from_numpy(np.array(self.consts[v.name])) if self.is_const(v) else v  # noqa: E731
        try:
            with torch.no_grad():
                out = n.target(*_map_args(args, as_torch), **_map_args(kw, as_torch))
        except Exception:
            return False
        if not isinstance(out, torch.Tensor):
            return False
        arr = out.detach().cpu().numpy()
        self.consts[n.name] = arr.astype(np.float32) if arr.dtype.kind == "f" else arr
        return True

    def values_shape(self, arg) -> tuple:
        name = self.value_name(arg)
        if name in self.values:
            return self.values[name].shape
        raise ModelError(f"unknown tensor {name!r}")

    def binary(self, n, op: str, args, kw) -> None:
        a, b = args[0], args[1]
        if self.is_const(a) and op in ("add", "mul"):
            a, b = b, a  # commutative: the activation goes first
        if op == "rsub" and not (hasattr(b, "name") and not self.is_const(b)):
            # c - x: x * -1, then + c
            if kw.get("alpha", args[2] if len(args) > 2 else 1) != 1:
                raise self.refuse(n, "rsub with alpha != 1")
            const = np.asarray(self.const(b) if hasattr(b, "name") else b, np.float32)
            self.chain(n, self.value_name(a), [("mul", np.float32(-1.0)), ("add", const)])
            return
        if op == "rsub" or self.is_const(a) or not hasattr(a, "name"):
            raise self.refuse(n, f"{op} with a constant first operand")
        alpha = kw.get("alpha", args[2] if len(args) > 2 else 1)
        if alpha != 1:
            raise self.refuse(n, "add/sub with alpha != 1")
        if hasattr(b, "name") and not self.is_const(b):
            if op == "sub":
                raise self.refuse(n, "sub of two tensors")
            self.add(op, n, [self.value_name(a), self.value_name(b)])
            return
        const = self.const(b) if hasattr(b, "name") else np.asarray(b, np.float32)
        const = np.asarray(const, np.float32)
        if op == "sub":
            op, const = "add", -const
        elif op == "div":
            op, const = "mul", 1.0 / const
        pn = {"const": self.param_names[b.name]} if hasattr(b, "name") and b.name in self.param_names else {}
        self.add(op, n, [self.value_name(a)], {}, {"const": const}, pn)

    def chain(self, n, x: str, steps: list[tuple[str, np.ndarray]]) -> None:
        """Elementwise constant ops ``[(op, const), ...]`` applied in order; the last writes ``n``'s output."""
        for k, (op, const) in enumerate(steps):
            node = self.add(op, n, [x], {}, {"const": np.asarray(const, np.float32)})
            if k < len(steps) - 1:
                x = f"{n.name}_{k}"
                node.outputs = [x]
                self.values[x] = Value(x, self.values[n.name].shape)

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


def _input_specs(example_shape, input_dtype) -> list[tuple[tuple[int, ...], str]]:
    """One (shape without batch, dtype) per model input, from a shape (one input) or a list of shapes."""
    several = isinstance(example_shape, (list, tuple)) and example_shape and isinstance(example_shape[0], (list, tuple))
    shapes = [tuple(s) for s in example_shape] if several else [tuple(example_shape)]
    dtypes = [input_dtype] * len(shapes) if isinstance(input_dtype, str) else list(input_dtype)
    if len(dtypes) != len(shapes):
        raise ModelError(f"capture: {len(shapes)} input shapes but {len(dtypes)} input dtypes")
    for d in dtypes:
        if d not in ("float32", "int64"):
            raise ModelError(f"capture: input dtype must be float32 or int64, got {d!r}")
    return list(zip(shapes, dtypes))


def export_program(model, example_shape: Sequence, *, example_dtype=None, input_dtype="float32"):
    """``torch.export`` with a dynamic batch axis on every input; failures become ModelError.
    ``example_shape`` is one input's shape without the batch axis, or a list of them."""
    import torch

    model = model.eval()
    if example_dtype is not None:
        input_dtype = "int64" if example_dtype == torch.int64 else "float32"
    specs = _input_specs(example_shape, input_dtype)
    examples = tuple(torch.zeros((2, *shape), dtype=torch.int64 if dtype == "int64" else torch.float32)
                     for shape, dtype in specs)
    batch = torch.export.Dim("batch", min=1, max=1 << 16)
    try:
        return torch.export.export(model, examples, dynamic_shapes=tuple({0: batch} for _ in examples), strict=False)
    except Exception as e:
        raise ModelError(f"torch.export could not capture the model with a dynamic batch axis: "
                         f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}") from e


def capture(model_or_program, example_shape: Sequence | None = None, *, name: str = "model",
            input_dtype: str | Sequence[str] = "float32") -> Graph:
    """Capture an ``nn.Module`` (with ``example_shape``, the input shape without the batch axis, or
    one shape per input with ``input_dtype`` one dtype per input: ``float32`` or ``int64`` for token
    ids and masks) or an ``ExportedProgram`` into a validated IR :class:`Graph`.

    Every ATen op outside the op set is collected; if there is any, one
    :class:`~edgefleet.UnsupportedOpError` names them all (op, count, module, file:line, nearest
    supported alternative) before anything is calibrated or trained.

    >>> capture(encoder, [(128,), (128,)], input_dtype=["int64", "int64"])   # doctest: +SKIP
    """
    import torch

    if isinstance(model_or_program, torch.export.ExportedProgram):
        program = model_or_program
    else:
        if example_shape is None:
            raise ModelError("capture needs example_shape (the input shape without the batch axis)")
        with torch.no_grad():
            program = export_program(model_or_program, example_shape, input_dtype=input_dtype)
    b = _Builder(program)
    inputs, outputs = [], []
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
    if b.refusals:
        raise unsupported_error(b.refusals)
    for o in outputs:
        if o not in b.values:
            raise ModelError(f"model output {o!r} does not depend on the inputs (a constant); edgefleet "
                             "exports outputs computed from the inputs")
    for v in inputs:
        if v.dtype not in ("float32", "int64"):
            raise ModelError(f"model input {v.name!r} has dtype {v.dtype}; inputs must be float32 or int64")
    # rename the user-facing tensors to stable names
    graph = Graph(inputs=inputs, nodes=b.nodes, outputs=outputs, values=b.values, name=name)
    _rename(graph, {inputs[0].name: "input"} if len(inputs) == 1 else {})
    _rename(graph, {outputs[0]: "output"} if len(outputs) == 1 else {o: f"output_{i}" for i, o in enumerate(outputs)})
    input_names = {v.name for v in graph.inputs}
    for value in graph.values.values():
        if value.shape and value.shape[0] is not None and value.name not in input_names:
            value.shape = (None, *value.shape[1:])
    capture_masks.cast_before_shape_ops(graph)
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
