"""The closed op set of edgefleet's IR, each op defined once.

An op is one :class:`OpDef`: its inputs, attributes and constant params, its float semantics (as
PyTorch's op of the same name, NCHW), its int8 semantics (the integer reference every int8 runtime
must reproduce), and its quantization rule (how its output's qparams are chosen and which integer
constants it needs). The definitions live in one module per family (``op_layers``, ``op_pool``,
``op_elementwise``, ``op_norm``, ``op_shape``) and register themselves here; the reference
interpreters, the quantizer and the documentation all read :data:`OPS`. Exporters keep one lowering
per op in their own registry (see ``edgefleet.runtimes.exporters.support`` for the table of which
exporter and runtime supports which op; ``docs/ops.md`` prints it).

Requantization (shared by ``linear``, ``conv2d``, ``mul``, ``matmul``): the real multiplier
``m = s_in * s_w / s_out`` is stored as ``M * 2**-n`` with ``2**30 <= M < 2**31``, and
``y = ((acc * M + 2**(n-1)) >> n) + z_out`` in 64-bit integers (rounding half up), then clamped.
``add`` and ``concat`` use ``n = 20`` with one multiplier per operand.

Adding an op: define it in the family module (``define(OpDef(...))``), add one lowering per exporter
that can express it, and regenerate ``docs/ops.md`` (``python -m edgefleet.runtimes.exporters.support``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from edgefleet._errors import ModelError

_SEQ = (list, tuple)

#: output-qparams rules: ``calibrated`` (from the calibration observer), ``input`` (the first input's
#: qparams, the op only moves or selects values), or a callable ``(node, qin) -> QParams``
QUANT_RULES = ("calibrated", "input")


@dataclass(frozen=True)
class OpDef:
    """One op of the IR. ``float(node, xs)`` and ``int(node, xs, qin, out)`` are its float32 and int8
    references; ``prepare_int(node, qin, out, cfg)`` stores the integer constants ``int`` reads in
    ``node.params`` (run once, at quantization); ``table_fn`` marks a unary op whose int8 form is a
    256-entry lookup table of that float function; ``input_range`` narrows the calibrated range of a
    tensor that feeds only this op."""

    name: str
    num_inputs: tuple[int, int]
    float: Callable
    int: Callable
    attrs: dict = field(default_factory=dict)
    params: tuple[str, ...] = ()
    doc: str = ""            # float semantics
    int_doc: str = ""        # int8 semantics
    quant: str | Callable = "calibrated"
    prepare_int: Callable | None = None
    extra_check: Callable | None = None
    table_fn: Callable | None = None
    #: ``(lo, hi, sample) -> (lo, hi)``: how the op narrows the calibrated range of its (only) input
    input_range: Callable | None = None
    #: runtimes other than the native one compute it in float or with their own tables, so their
    #: int8 results may differ from the integer reference by a few LSB (the parity gate widens)
    float_domain: bool = False

    @property
    def is_lut(self) -> bool:
        return self.table_fn is not None

    def check(self, node) -> None:
        lo, hi = self.num_inputs
        if not lo <= len(node.inputs) <= hi:
            raise ModelError(f"{node.where()}: op {self.name} takes {lo}..{hi} inputs, got {len(node.inputs)}")
        for key, kind in self.attrs.items():
            if key not in node.attrs:
                raise ModelError(f"{node.where()}: op {self.name} needs attribute {key!r}")
            if not isinstance(node.attrs[key], kind):
                raise ModelError(f"{node.where()}: attribute {key!r} has type {type(node.attrs[key]).__name__}")
        for key in self.params:
            if key not in node.params and f"{key}_q" not in node.params:
                raise ModelError(f"{node.where()}: op {self.name} needs param {key!r}")
        if self.extra_check:
            self.extra_check(node)


OPS: dict[str, OpDef] = {}


def define(spec: OpDef) -> OpDef:
    if spec.name in OPS:
        raise ValueError(f"op {spec.name!r} defined twice")
    if not callable(spec.quant) and spec.quant not in QUANT_RULES:
        raise ValueError(f"op {spec.name!r}: unknown quantization rule {spec.quant!r}")
    OPS[spec.name] = spec
    return spec


def lut_op(name: str, fn: Callable, doc: str, attrs: dict | None = None, extra_check: Callable | None = None) -> OpDef:
    """A unary activation whose int8 form is ``table[q + 128]``, the table built once at quantization
    from ``fn(x, node)`` (float64), so every runtime that indexes the table is exact."""

    def run_int(node, xs, qin, out):
        return node.params["table"][xs[0].astype(np.int64) + 128]

    def prepare(node, qin, out, cfg):
        q = np.arange(-128, 128, dtype=np.float64)
        x = (q - qin[0].scalar_zero_point) * qin[0].scalar_scale
        y = np.asarray(fn(x, node), np.float64)
        node.params["table"] = np.clip(np.round(y / out.scalar_scale) + out.scalar_zero_point, -128, 127).astype(np.int8)

    def run_float(node, xs):
        return np.asarray(fn(xs[0], node)).astype(np.float32)

    return define(OpDef(name, (1, 1), run_float, run_int, attrs or {}, (), doc,
                        "256-entry lookup table built at quantization from the float function (exact everywhere)",
                        "calibrated", prepare, extra_check, fn))


def doc_table() -> str:
    """The op set as a Markdown table (float and int8 semantics), for ``docs/ops.md``."""
    lines = ["| op | inputs | attributes | float semantics | int8 semantics |", "| --- | --- | --- | --- | --- |"]
    for spec in OPS.values():
        lo, hi = spec.num_inputs
        n = str(lo) if lo == hi else f"{lo}..{hi}"
        attrs = ", ".join(spec.attrs) or "—"
        lines.append(f"| `{spec.name}` | {n} | {attrs} | {spec.doc} | {spec.int_doc} |")
    return "\n".join(lines)


# the families register their ops on import
from . import op_layers, op_pool, op_elementwise, op_norm, op_shape  # noqa: E402,F401,I001  (table order)
