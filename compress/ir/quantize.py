"""Post-training int8 quantization of the IR: calibration and integer parameters.

One call, :func:`quantize_graph`, computes the *one* set of int8 parameters every exporter writes:

- activations: per-tensor, asymmetric int8 ``[-128, 127]``, range from calibration (``minmax``,
  ``percentile`` or ``mse`` — the clipping range that minimises the quantization error on the
  calibration sample);
- weights: per-output-channel, symmetric (zero point 0), ``[-qmax, qmax]`` with ``qmax = 63``
  (7-bit, the default) or ``127``. Seven bits keep the widely used u8 x s8 pairwise multiply-add
  (x86 ``pmaddubsw``, as in onnxruntime's AVX2 kernels) from saturating, so the int8 artifacts give
  exact results on every CPU; 8-bit weights are available when every target runtime is exact;
- biases: int32 with scale ``s_in * s_w``;
- per op, the integer constants its definition's integer reference reads (``OpDef.prepare_int`` in
  :mod:`~edgefleet.compress.ir.ops`): requantization multipliers and shifts, lookup tables, clamp bounds.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace

import numpy as np

from edgefleet._errors import ConfigError, DataError

from .graph import Graph, QParams
from .kernels import range_qparams
from .ops import OPS
from .reference import run_float

__all__ = ["QuantConfig", "quantize_graph", "range_qparams", "calibrate"]

METHODS = ("minmax", "percentile", "mse")


@dataclass(frozen=True)
class QuantConfig:
    method: str = "mse"
    percentile: float = 99.99
    weight_bits: int = 7
    max_samples: int = 1 << 16  # values kept per tensor for percentile/mse
    seed: int = 0

    def __post_init__(self):
        if self.method not in METHODS:
            raise ConfigError(f"quantize.method: unknown calibration method {self.method!r}; expected one of {', '.join(METHODS)}")
        if self.weight_bits not in (7, 8):
            raise ConfigError(f"quantize.weight_bits: must be 7 or 8, got {self.weight_bits}")
        if not 50.0 < self.percentile <= 100.0:
            raise ConfigError(f"quantize.percentile: must be in (50, 100], got {self.percentile}")

    @property
    def weight_qmax(self) -> int:
        return 63 if self.weight_bits == 7 else 127


class _Observer:
    """Per-tensor min/max plus a uniform random sample of values (reservoir per batch)."""

    def __init__(self, max_samples: int, seed: int):
        self.max_samples = max_samples
        self.rng = np.random.default_rng(seed)
        self.lo: dict[str, float] = {}
        self.hi: dict[str, float] = {}
        self.samples: dict[str, list[np.ndarray]] = {}
        self.kept: dict[str, int] = {}

    def __call__(self, name: str, arr: np.ndarray) -> None:
        if arr.dtype.kind != "f":
            return
        flat = arr.reshape(-1)
        lo, hi = (float(flat.min()), float(flat.max())) if flat.size else (math.nan, math.nan)
        if not (math.isfinite(lo) and math.isfinite(hi)):  # x / 0 inside the model: the int8 form saturates those
            flat = flat[np.isfinite(flat)]
            if not flat.size:
                return
            lo, hi = float(flat.min()), float(flat.max())
        self.observe_range(name, lo, hi)
        take = min(flat.size, max(self.max_samples // 8, 1024))
        if self.kept.get(name, 0) < self.max_samples:
            pick = flat if flat.size <= take else flat[self.rng.choice(flat.size, take, replace=False)]
            self.samples.setdefault(name, []).append(pick.astype(np.float32))
            self.kept[name] = self.kept.get(name, 0) + pick.size

    def needs_values(self, name: str) -> bool:
        """Whether ``name``'s reservoir still takes values (else its range is all it needs)."""
        return self.kept.get(name, 0) < self.max_samples

    def observe_range(self, name: str, lo: float, hi: float) -> None:
        """The finite minimum and maximum of one batch of a tensor whose reservoir is full."""
        self.lo[name] = min(self.lo.get(name, math.inf), lo)
        self.hi[name] = max(self.hi.get(name, -math.inf), hi)

    def sample(self, name: str) -> np.ndarray:
        return np.concatenate(self.samples[name])


def _quant_error(sample: np.ndarray, qp: QParams) -> float:
    return float(np.mean((qp.dequantize(qp.quantize(sample)) - sample) ** 2))


def _calibrated_range(obs: _Observer, name: str, cfg: QuantConfig) -> QParams:
    lo, hi = obs.lo[name], obs.hi[name]
    if cfg.method == "minmax":
        return range_qparams(lo, hi)
    sample = obs.sample(name)
    if cfg.method == "percentile":
        return range_qparams(float(np.percentile(sample, 100 - cfg.percentile)), float(np.percentile(sample, cfg.percentile)))
    best, best_err = None, math.inf
    for frac in np.linspace(0.25, 1.0, 61):
        qp = range_qparams(lo * frac, hi * frac)
        err = _quant_error(sample, qp)
        if err < best_err - 1e-12:
            best, best_err = qp, err
    return best


#: bytes of activations one calibration call may hold: every tensor of the call's samples is alive
#: at once (onnxruntime returns them together), so large inputs are run a few samples at a time
CALIBRATION_CALL_BYTES = 1 << 27
#: how calibration computes the float tensors: ``onnxruntime`` (one vectorised call per batch, the
#: reference's tensors up to float rounding; falls back to the reference when it cannot run the
#: graph) or ``reference`` (``run_float``, numpy op by op)
FLOAT_ENGINES = ("onnxruntime", "reference")


def _rows_per_call(graph: Graph) -> int | None:
    """Samples per calibration call that keep its tensors within ``CALIBRATION_CALL_BYTES``; ``None``
    (the whole batch) when the graph's batch axis is static."""
    if any(v.shape[:1] != (None,) for v in graph.inputs):
        return None
    per_sample = sum(4 * math.prod(d or 1 for d in v.shape[1:]) for v in graph.values.values() if v.dtype == "float32")
    return max(1, CALIBRATION_CALL_BYTES // max(per_sample, 1))


def calibrate(graph: Graph, batches, cfg: QuantConfig, *, engine: str = "onnxruntime") -> _Observer:
    """Observe every float tensor of ``graph`` on the calibration ``batches`` (arrays, or dicts of
    named arrays). Only the observer's range and sample reservoir are kept, never the activations."""
    if engine not in FLOAT_ENGINES:
        raise ConfigError(f"calibration engine {engine!r}: expected one of {', '.join(FLOAT_ENGINES)}")
    run = run_float
    if engine == "onnxruntime":
        from .ort_float import float_runner
        run = float_runner(graph, every_tensor=True) or run_float
    rows = _rows_per_call(graph)
    obs = _Observer(cfg.max_samples, cfg.seed)
    seen = 0
    for batch in batches:
        arrays = {k: np.asarray(v) for k, v in batch.items()} if isinstance(batch, Mapping) else {"": np.asarray(batch)}
        for arr in arrays.values():
            if arr.dtype.kind == "f" and not np.isfinite(arr).all():
                raise DataError("calibration data holds NaN or infinite values")
        n = len(next(iter(arrays.values())))
        for start in range(0, n, rows or max(n, 1)):
            part = {k: v[start:start + (rows or n)] for k, v in arrays.items()}
            run(graph, part if isinstance(batch, Mapping) else part[""], observe=obs)
        seen += n
    if not seen:
        raise DataError("calibration needs at least one sample")
    return obs


def _consumer_range(graph: Graph, obs: _Observer, name: str) -> tuple[float, float] | None:
    """The narrower range the one op reading ``name`` asks for (e.g. softmax ignores mask values)."""
    consumers = graph.consumers(name)
    if name in graph.outputs or len(consumers) != 1 or OPS[consumers[0].op].input_range is None:
        return None
    lo, hi = OPS[consumers[0].op].input_range(obs.lo[name], obs.hi[name], obs.sample(name))
    return None if (lo, hi) == (obs.lo[name], obs.hi[name]) else (lo, hi)


def _assign_activation_qparams(graph: Graph, obs: _Observer, cfg: QuantConfig) -> dict[str, QParams]:
    qp: dict[str, QParams] = {}
    # the model's inputs and outputs are never clipped: a saturated logit changes the answer
    never_clip = replace(cfg, method="minmax")
    for v in graph.inputs:
        if v.dtype == "float32":
            qp[v.name] = _calibrated_range(obs, v.name, never_clip)
    for node in graph.nodes:
        out, rule = node.outputs[0], OPS[node.op].quant
        if rule == "input":
            qp[out] = qp[node.inputs[0]]
        elif callable(rule):
            qp[out] = rule(node, [qp.get(i) for i in node.inputs])
        else:
            qp[out] = _calibrated_range(obs, out, never_clip if out in graph.outputs else cfg)
            narrowed = _consumer_range(graph, obs, out)
            if narrowed is not None:
                qp[out] = range_qparams(*narrowed)
    return qp


def _integer_params(graph: Graph, cfg: QuantConfig) -> None:
    for node in graph.nodes:
        spec = OPS[node.op]
        if spec.prepare_int is not None:
            spec.prepare_int(node, [graph.qparams.get(i) for i in node.inputs], graph.qparams[node.outputs[0]], cfg)


def quantize_graph(graph: Graph, calibration_batches, cfg: QuantConfig | None = None, *,
                   engine: str = "onnxruntime", timings: dict | None = None) -> Graph:
    """Return a quantized copy of ``graph``: qparams for every tensor and integer params per node.

    ``calibration_batches`` is an iterable of input arrays (float32, with the batch axis);
    ``engine`` computes the float tensors calibration observes (see ``FLOAT_ENGINES``);
    ``timings``, when given, receives the seconds of ``calibration`` and of ``qparams`` (the rest).
    """
    cfg = cfg or QuantConfig()
    start = time.perf_counter()
    obs = calibrate(graph, calibration_batches, cfg, engine=engine)
    calibrated = time.perf_counter()
    qgraph = graph.copy()
    qgraph.qparams = _assign_activation_qparams(qgraph, obs, cfg)
    qgraph.quant_config = cfg  # type: ignore[attr-defined]
    _integer_params(qgraph, cfg)
    if timings is not None:
        timings["calibration"] = round(calibrated - start, 3)
        timings["qparams"] = round(time.perf_counter() - calibrated, 3)
    return qgraph
