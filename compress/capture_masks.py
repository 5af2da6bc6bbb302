"""Booleans and dtype conversions through capture: ``to``, comparisons, ``where``, ``masked_fill``.

The IR has no boolean tensors. A comparison of an *integer-valued* tensor (an int64 input such as an
attention mask, or a float computed from one by casts, shape ops and integer constants, e.g.
``1.0 - mask.float()``) with a number becomes a float 0/1 *predicate*, exact for integers:
``x > c`` is ``clamp(x - floor(c), 0, 1)``, ``x < c`` is ``clamp(ceil(c) - x, 0, 1)``, ``x == c`` the
product of ``x >= c`` and ``x <= c``, ``~p`` is ``1 - p``, ``p & q`` is ``p * q``, ``x.bool()`` is
``x != 0``. Then ``where(p, a, b)`` is ``a * p + b * (1 - p)`` and ``masked_fill(x, p, v)`` is
``where(p, v, x)``: a constant condition (a causal mask) works the same way.

A fill value at or below ``MASK_FILL`` (``-inf``, ``torch.finfo(dtype).min``: an attention mask) is
written as ``MASK_FILL`` — softmax gives it weight 0 exactly as it does ``-inf`` (``exp(-1e4)``
underflows), the additive-mask calibration of softmax inputs keys on it, and int8 scales stay finite;
a fully masked row gets uniform weights instead of NaN. Larger positive fills and comparisons of
tensors that are not integer-valued are refused with the reason.
"""

from __future__ import annotations

import math

import numpy as np

from .capture_aten import aten
from .ir.graph import Value

#: how a large negative fill (``-inf``, ``finfo.min``) is written: the additive mask's constant
MASK_FILL = -1e4

_COMPARE = ("eq", "ne", "gt", "ge", "lt", "le")


def _is_tensor_node(arg) -> bool:
    return hasattr(arg, "name") and hasattr(getattr(arg, "meta", {}).get("val"), "shape")


def _number(b, n, arg) -> float | None:
    """A Python number or a one-element constant tensor; None for an activation."""
    if not hasattr(arg, "name"):
        return float(arg)
    if b.is_const(arg) and b.const(arg).size == 1:
        return float(b.const(arg).reshape(()))
    if b.is_const(arg):
        raise b.refuse(n, "comparison with a constant tensor; compare with a number")
    return None


def _integral(b, name: str) -> bool:
    """Whether an IR value holds integers only: an int64 value, or one computed from integers by
    casts, shape ops, clamps to integer bounds and adds/muls with integer constants."""
    value = b.values.get(name)
    if value is None:
        return False
    if value.dtype == "int64" or name in b.predicates:
        return True
    producer = next((node for node in reversed(b.nodes) if name in node.outputs), None)
    if producer is None:
        return False  # a float graph input
    whole = lambda v: bool(np.all(np.mod(np.asarray(v, np.float64), 1.0) == 0))  # noqa: E731
    if producer.op in ("cast", "reshape", "transpose", "slice", "concat"):
        pass
    elif producer.op in ("add", "mul"):
        if "const" in producer.params and not whole(producer.params["const"]):
            return False
    elif producer.op == "clamp":
        if not all(math.isinf(producer.attrs[k]) or whole(producer.attrs[k]) for k in ("min", "max")):
            return False
    else:
        return False
    return all(_integral(b, i) for i in producer.inputs)


class _Emitter:
    """Adds the float nodes standing in for one boolean ATen call: private outputs for every step,
    and the call's own output name for the last one."""

    def __init__(self, b, n):
        self.b, self.n, self.k = b, n, 0

    def node(self, op: str, inputs: list[str], shape: tuple, *, attrs=None, const=None) -> str:
        params = {} if const is None else {"const": np.asarray(const, np.float32)}
        node = self.b.add(op, self.n, inputs, attrs or {}, params)
        self.k += 1
        out = f"{self.n.name}_m{self.k}"
        node.outputs = [out]
        self.b.values[out] = Value(out, tuple(shape), "float32")
        return out

    def finish(self, name: str) -> None:
        """Make ``name`` (the last step) the call's output, a float32 value."""
        b, n = self.b, self.n
        producer = next(node for node in reversed(b.nodes) if name in node.outputs)
        producer.outputs = [n.name]
        del b.values[name]
        b.values[n.name] = Value(n.name, b.shape_of(n), "float32")


def _float_of(e: _Emitter, name: str) -> str:
    b = e.b
    if b.values[name].dtype == "int64":
        return e.node("cast", [name], b.values[name].shape)
    return name


def _greater(e: _Emitter, x: str, c: float, negate: bool) -> str:
    """``x > c`` (or ``-x > c`` with ``negate``) for integer ``x``: ``clamp(±x - floor(c), 0, 1)``."""
    shape = e.b.values[x].shape
    if negate:
        x = e.node("mul", [x], shape, const=-1.0)
    if math.floor(c) != 0:
        x = e.node("add", [x], shape, const=-float(math.floor(c)))
    return e.node("clamp", [x], shape, attrs={"min": 0.0, "max": 1.0})


def _not(e: _Emitter, p: str) -> str:
    shape = e.b.values[p].shape
    return e.node("add", [e.node("mul", [p], shape, const=-1.0)], shape, const=1.0)


def _compare(e: _Emitter, op: str, x: str, c: float) -> str:
    if op == "gt":
        return _greater(e, x, c, False)
    if op == "ge":
        return _greater(e, x, math.ceil(c) - 1, False)
    if op == "lt":
        return _greater(e, x, -c, True)
    if op == "le":
        return _greater(e, x, math.ceil(-c) - 1, True)
    if c != math.floor(c):
        raise e.b.refuse(e.n, f"{op} of an integer tensor with the non-integer {c}")
    both = e.node("mul", [_compare(e, "ge", x, c), _compare(e, "le", x, c)], e.b.values[x].shape)
    return both if op == "eq" else _not(e, both)


def _predicate(b, n, e: _Emitter, op: str, arg, c: float) -> str:
    if not _is_tensor_node(arg) or b.is_const(arg):
        raise b.refuse(n, f"{op} of a non-tensor or constant operand")
    x = b.value_name(arg)
    if not _integral(b, x):
        raise b.refuse(n, f"{op} of a tensor that is not integer-valued (only comparisons of integer tensors, "
                          f"such as an attention mask, are written exactly)")
    return _compare(e, op, _float_of(e, x), c)


def _done(b, e: _Emitter, out: str) -> None:
    e.finish(out)
    b.predicates.add(e.n.name)


@aten(*_COMPARE)
def _comparison(b, n, name, args, kw):
    if not _is_tensor_node(n):
        return  # a comparison of symbolic sizes (a shape guard): nothing to compute
    c = _number(b, n, args[1])
    if c is None:
        raise b.refuse(n, f"{name} of two tensors; compare a tensor with a number")
    e = _Emitter(b, n)
    _done(b, e, _predicate(b, n, e, name, args[0], c))


@aten("bitwise_not", "logical_not")
def _logical_not(b, n, name, args, kw):
    e = _Emitter(b, n)
    _done(b, e, _not(e, _condition(b, n, args[0])))


@aten("logical_and", "bitwise_and", "__and__")
def _logical_and(b, n, name, args, kw):
    e = _Emitter(b, n)
    p, q = _condition(b, n, args[0]), _condition(b, n, args[1])
    _done(b, e, e.node("mul", [p, q], b.shape_of(n)))


@aten("_to_copy", "to")
def _to_copy(b, n, name, args, kw):
    """dtype conversions: int64 to float32 is a cast; ``x.bool()`` a predicate (``x != 0``, or ``x``
    itself when it is one); a predicate to a number, and everything else, an identity."""
    src = b.value_name(args[0])
    dtype = str(n.meta["val"].dtype)
    if dtype == "torch.bool" and src not in b.predicates:
        e = _Emitter(b, n)
        _done(b, e, _predicate(b, n, e, "ne", args[0], 0.0))
    elif src in b.values and b.values[src].dtype == "int64" and dtype == "torch.float32":
        b.add("cast", n, [src])
    else:
        b.alias[n.name] = src


def _condition(b, n, arg) -> str:
    name = b.value_name(arg)
    if name not in b.predicates:
        raise b.refuse(n, "a condition that is not a comparison of an integer tensor (an attention mask) with a number")
    return name


def _fill(b, n, arg):
    """An operand of ``where``: an activation name, or a float32 constant with large negatives as MASK_FILL."""
    if hasattr(arg, "name") and not b.is_const(arg):
        return b.value_name(arg)
    value = np.asarray(b.const(arg) if hasattr(arg, "name") else arg, np.float64)
    if np.isnan(value).any() or (value > -MASK_FILL).any():
        raise b.refuse(n, f"fill value above {-MASK_FILL:g} or NaN (only large negative fills, attention masks, "
                          f"are rewritten, to {MASK_FILL:g})")
    return np.asarray(np.maximum(value, MASK_FILL), np.float32)


def _shape(b, operand, other: tuple) -> tuple:
    own = b.values[operand].shape if isinstance(operand, str) else operand.shape
    own, other = (1,) * (len(other) - len(own)) + tuple(own), (1,) * (len(own) - len(other)) + tuple(other)
    return tuple(None if None in (x, y) else max(x, y) for x, y in zip(own, other))


def where(b, n, cond, a, other) -> None:
    """``where(cond, a, other)`` as ``a * p + other * (1 - p)``; constant terms are summed into one."""
    e = _Emitter(b, n)
    a, other = _fill(b, n, a), _fill(b, n, other)
    if b.is_const(cond):
        p = b.const(cond).astype(np.float32)
        weights = (p, 1.0 - p)
    else:
        p = _condition(b, n, cond)
        weights = (p, _not(e, p))
    terms, constant = [], np.zeros((), np.float32)
    for operand, w in zip((a, other), weights):
        if isinstance(operand, np.ndarray) and isinstance(w, np.ndarray):
            constant = constant + operand * w
        elif isinstance(operand, np.ndarray):
            if np.any(operand != 0):
                terms.append(e.node("mul", [w], _shape(b, w, operand.shape), const=operand))
        elif isinstance(w, np.ndarray):
            terms.append(e.node("mul", [operand], _shape(b, operand, w.shape), const=w))
        else:
            terms.append(e.node("mul", [operand, w], _shape(b, operand, b.values[w].shape)))
    if not terms:
        raise b.refuse(n, "where of constants only")  # folded before reaching here
    out = terms[0] if len(terms) == 1 else e.node("add", terms, _shape(b, terms[0], b.values[terms[1]].shape))
    if np.any(constant != 0):
        out = e.node("add", [out], _shape(b, out, constant.shape), const=constant)
    if b.values[out].shape != b.shape_of(n):
        raise b.refuse(n, "where whose result is broadcast beyond its activations")
    e.finish(out)


@aten("where")
def _where(b, n, name, args, kw):
    if len(args) != 3:
        raise b.refuse(n, "where with one argument (the indices of true elements)")
    where(b, n, *args)


@aten("masked_fill", "masked_fill_")
def _masked_fill(b, n, name, args, kw):
    if b.is_const(args[0]):
        raise b.refuse(n, "the first operand is a constant; only activations flow through ops")
    where(b, n, args[1], args[2], args[0])


_SHAPE_OPS = ("reshape", "transpose", "slice")


def cast_before_shape_ops(graph) -> None:
    """``mask[:, None, None, :].float()`` and ``mask[:, None, :] == 0`` reshape the int64 mask, then
    cast it: cast first, so that int64 values stay at the inputs, embeddings and casts (the integer
    graph holds no other int64 tensor). A shape op all of whose readers are casts is rewritten as a
    cast followed by the shape op, whose float output the casts' readers then read."""
    from .ir.graph import Node

    while True:
        found = next(((i, node) for i, node in enumerate(graph.nodes)
                      if node.op in _SHAPE_OPS and graph.values[node.inputs[0]].dtype == "int64"
                      and node.outputs[0] not in graph.outputs and graph.consumers(node.outputs[0])
                      and all(u.op == "cast" for u in graph.consumers(node.outputs[0]))), None)
        if found is None:
            return
        i, node = found
        src, out = node.inputs[0], node.outputs[0]
        casts = graph.consumers(out)
        floated = f"{src}_float_{node.name}"
        graph.values[floated] = Value(floated, graph.values[src].shape, "float32")
        node.inputs = [floated]
        graph.values[out].dtype = "float32"
        rename = {c.outputs[0]: out for c in casts}
        for other in graph.nodes:
            other.inputs = [rename.get(x, x) for x in other.inputs]
        graph.outputs = [rename.get(x, x) for x in graph.outputs]
        for name in rename:
            del graph.values[name]
        dropped = {id(c) for c in casts}
        graph.nodes = [n for n in graph.nodes if id(n) not in dropped]
        graph.nodes.insert(i, Node("cast", f"cast_{node.name}", [src], [floated], {}, {}, node.source, node.module))
