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
- per op, the integer constants of :mod:`~edgefleet.compress.ir.reference`: requantization
  multipliers and shifts, lookup tables, clamp bounds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from edgefleet._errors import ConfigError, DataError

from . import kernels as K
from .graph import Graph, QParams
from .ops import PASSTHROUGH_OPS, UNARY_LUT_OPS
from .reference import UNARY_FLOAT, run_float

METHODS = ("minmax", "percentile", "mse")
SOFTMAX_QPARAMS = QParams.per_tensor(1.0 / 256.0, -128)


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
        self.lo[name] = min(self.lo.get(name, math.inf), float(flat.min()))
        self.hi[name] = max(self.hi.get(name, -math.inf), float(flat.max()))
        take = min(flat.size, max(self.max_samples // 8, 1024))
        if self.kept.get(name, 0) < self.max_samples:
            pick = flat if flat.size <= take else flat[self.rng.choice(flat.size, take, replace=False)]
            self.samples.setdefault(name, []).append(pick.astype(np.float32))
            self.kept[name] = self.kept.get(name, 0) + pick.size

    def sample(self, name: str) -> np.ndarray:
        return np.concatenate(self.samples[name])


def range_qparams(lo: float, hi: float) -> QParams:
    """Asymmetric int8 qparams covering [lo, hi] (widened to include 0)."""
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    if hi - lo < 1e-8:
        hi = lo + 1e-8
    scale = np.float32((hi - lo) / 255.0)
    zp = int(np.clip(np.round(-128 - lo / float(scale)), -128, 127))
    return QParams.per_tensor(float(scale), zp)


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


def calibrate(graph: Graph, batches, cfg: QuantConfig) -> _Observer:
    obs = _Observer(cfg.max_samples, cfg.seed)
    seen = 0
    for batch in batches:
        arrays = [np.asarray(a) for a in (batch.values() if isinstance(batch, dict) else [batch])]
        if any(a.dtype.kind == "f" and not np.isfinite(a).all() for a in arrays):
            raise DataError("calibration data holds NaN or infinite values")
        run_float(graph, batch if isinstance(batch, dict) else arrays[0], observe=obs)
        seen += len(arrays[0])
    if not seen:
        raise DataError("calibration needs at least one sample")
    return obs


def _weight_qparams(w: np.ndarray, qmax: int) -> QParams:
    absmax = np.abs(w.reshape(w.shape[0], -1)).max(axis=1).astype(np.float64)
    scale = np.where(absmax > 0, absmax / qmax, 1.0).astype(np.float32)
    return QParams(scale, np.zeros(w.shape[0], np.int32), axis=0, qmin=-qmax, qmax=qmax)


def _lut(fn, qin: QParams, qout: QParams, node) -> np.ndarray:
    q = np.arange(-128, 128, dtype=np.float64)
    x = (q - qin.scalar_zero_point) * qin.scalar_scale
    y = np.asarray(fn(x, node), np.float64)
    return np.clip(np.round(y / qout.scalar_scale) + qout.scalar_zero_point, -128, 127).astype(np.int8)


def _assign_activation_qparams(graph: Graph, obs: _Observer, cfg: QuantConfig) -> dict[str, QParams]:
    qp: dict[str, QParams] = {}
    # the model's inputs and outputs are never clipped: a saturated logit changes the answer
    never_clip = replace(cfg, method="minmax")
    for v in graph.inputs:
        if v.dtype == "float32":
            qp[v.name] = _calibrated_range(obs, v.name, never_clip)
    for node in graph.nodes:
        out = node.outputs[0]
        if node.op in PASSTHROUGH_OPS:
            qp[out] = qp[node.inputs[0]]
        elif node.op == "softmax":
            qp[out] = SOFTMAX_QPARAMS
        elif node.op == "embedding":
            w = node.params["weight"]
            qp[out] = range_qparams(float(w.min()), float(w.max()))
        else:
            qp[out] = _calibrated_range(obs, out, never_clip if out in graph.outputs else cfg)
    return qp


def _integer_params(graph: Graph, cfg: QuantConfig) -> None:
    qp = graph.qparams
    for node in graph.nodes:
        p, out = node.params, qp[node.outputs[0]]
        qin = qp.get(node.inputs[0])
        if node.op in ("linear", "conv2d"):
            wq = _weight_qparams(p["weight"], cfg.weight_qmax)
            p["weight_q"] = wq.quantize(p["weight"])
            p["weight_scale"] = wq.scale
            bias_scale = (np.float32(qin.scalar_scale) * wq.scale).astype(np.float32)
            p["bias_scale"] = bias_scale
            bias = p.get("bias", np.zeros(wq.scale.shape, np.float32))
            p["bias_q"] = np.clip(np.round(bias.astype(np.float64) / bias_scale.astype(np.float64)),
                                  -(2 ** 31), 2 ** 31 - 1).astype(np.int32)
            m = bias_scale.astype(np.float64) / np.float64(out.scalar_scale)
            p["multiplier"], p["shift"] = K.quantize_multiplier(m)
            lo, hi = out.qmin, out.qmax
            if node.attrs["act"] in ("relu", "relu6"):
                lo = max(lo, out.scalar_zero_point)
            if node.attrs["act"] == "relu6":
                hi = min(hi, out.scalar_zero_point + int(round(6.0 / out.scalar_scale)))
            node.attrs["clamp"] = (int(lo), int(hi))
        elif node.op in ("add", "mul"):
            if len(node.inputs) == 1:
                c = p["const"]
                cq = range_qparams(float(c.min()), float(c.max()))
                p["const_q"], p["const_scale"], p["const_zero_point"] = cq.quantize(c), cq.scale, cq.zero_point
                qb = cq
            else:
                qb = qp[node.inputs[1]]
            if node.op == "add":
                p["mult_a"] = np.int64(round(qin.scalar_scale / out.scalar_scale * (1 << K.ADD_SHIFT)))
                p["mult_b"] = np.int64(round(qb.scalar_scale / out.scalar_scale * (1 << K.ADD_SHIFT)))
            else:
                m = np.float64(qin.scalar_scale) * np.float64(qb.scalar_scale) / np.float64(out.scalar_scale)
                p["multiplier"], p["shift"] = K.quantize_multiplier(m)
        elif node.op in UNARY_LUT_OPS:
            p["table"] = _lut(UNARY_FLOAT[node.op], qin, out, node)
        elif node.op == "softmax":
            d = np.arange(256, dtype=np.float64)
            p["exp_table"] = np.round(np.exp(-d * qin.scalar_scale) * 65536).astype(np.int32)
        elif node.op == "matmul":
            m = np.float64(qin.scalar_scale) * np.float64(qp[node.inputs[1]].scalar_scale) / np.float64(out.scalar_scale)
            p["multiplier"], p["shift"] = K.quantize_multiplier(m)
        elif node.op == "concat":
            p["mults"] = np.array([round(qp[i].scalar_scale / out.scalar_scale * (1 << K.ADD_SHIFT)) for i in node.inputs],
                                  np.int64)
        elif node.op == "embedding":
            p["weight_q"] = out.quantize(p["weight"])


def quantize_graph(graph: Graph, calibration_batches, cfg: QuantConfig | None = None) -> Graph:
    """Return a quantized copy of ``graph``: qparams for every tensor and integer params per node.

    ``calibration_batches`` is an iterable of input arrays (float32, with the batch axis).
    """
    cfg = cfg or QuantConfig()
    obs = calibrate(graph, calibration_batches, cfg)
    qgraph = graph.copy()
    qgraph.qparams = _assign_activation_qparams(qgraph, obs, cfg)
    qgraph.quant_config = cfg  # type: ignore[attr-defined]
    _integer_params(qgraph, cfg)
    return qgraph
