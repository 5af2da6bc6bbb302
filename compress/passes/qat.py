"""Quantization-aware fine-tuning (used by ``quantize qat=true``); a helper, not a pass.

It simulates the int8 graph that ``quantize`` will build, so the weights learn to live with it:

- batch norms are folded into the conv/linear before them first (as capture does), so the weights
  that are fake-quantized are the ones that will be deployed;
- weights: per-output-channel symmetric on ``[-qmax, qmax]`` (63 for 7 bits, 127 for 8), scale
  ``max|w| / qmax`` — the rule of :mod:`edgefleet.compress.ir.quantize` — with the
  straight-through estimator;
- activations: the model input, each conv/linear output (after its fused ReLU/ReLU6, as the int8
  graph clamps in requantization) and each other activation module's output (hardswish, GELU, ...)
  per-tensor asymmetric int8, ranges tracked by an exponential moving average.

Residual adds and other functional ops are not simulated (their ranges come from calibration).
The result is a plain module: fake quantization removed, weights left on the int grid, so
post-training quantization reproduces them exactly.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn
from torch.nn.utils import parametrize

from .. import batch as B
from ..tasks import get_task
from ..train import fit, seed_everything
from ._sparsity import MASK

_ACT_MODULES = (nn.Hardswish, nn.GELU, nn.SiLU, nn.Sigmoid, nn.Tanh)


class _WeightFakeQuant(nn.Module):
    def __init__(self, qmax: int, mask: torch.Tensor | None):
        super().__init__()
        self.qmax = qmax
        self.mask = mask  # unstructured-pruning zeros stay zero (and get no gradient)

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        if self.mask is not None:
            w = w * self.mask
        absmax = w.detach().abs().reshape(w.shape[0], -1).amax(1)
        scale = torch.where(absmax > 0, absmax / self.qmax, torch.ones_like(absmax)).float()
        zero = torch.zeros(w.shape[0], dtype=torch.int32)
        return torch.fake_quantize_per_channel_affine(w, scale, zero, 0, -self.qmax, self.qmax)


class _ActFakeQuant:
    """Per-tensor asymmetric int8 with an EMA of the batch min/max (always spanning 0)."""

    def __init__(self, act: str = "none", momentum: float = 0.9):
        self.act, self.momentum = act, momentum
        self.lo: float | None = None
        self.hi: float | None = None
        self.calibrating = False

    def __call__(self, y: torch.Tensor, training: bool) -> torch.Tensor:
        if self.act == "relu":
            y = torch.relu(y)
        elif self.act == "relu6":
            y = y.clamp(0.0, 6.0)
        if training or self.calibrating or self.lo is None:
            lo, hi = min(float(y.detach().min()), 0.0), max(float(y.detach().max()), 0.0)
            if self.lo is None:
                self.lo, self.hi = lo, hi
            else:
                m = self.momentum
                self.lo, self.hi = m * self.lo + (1 - m) * lo, m * self.hi + (1 - m) * hi
        scale = max((self.hi - self.lo) / 255.0, 1e-8)
        zp = int(np.clip(round(-128 - self.lo / scale), -128, 127))
        return torch.fake_quantize_per_tensor_affine(y, scale, zp, -128, 127)


def fold_batchnorms(model: nn.Module, graph) -> None:
    """Fold every batch norm that capture folds (``attrs['folded_bn']``) into its layer, in torch."""
    with torch.no_grad():
        for node in graph.nodes:
            bn_path = node.attrs.get("folded_bn")
            if not bn_path or node.op not in ("conv2d", "linear"):
                continue
            layer, bn = model.get_submodule(node.module), model.get_submodule(bn_path)
            scale = 1.0 / torch.sqrt(bn.running_var + bn.eps)
            if bn.affine:
                scale = scale * bn.weight
            shift = (bn.bias if bn.affine else 0.0) - bn.running_mean * scale
            w = layer.weight
            layer.weight.copy_(w * scale.reshape(-1, *([1] * (w.ndim - 1))))
            bias = layer.bias.detach() if layer.bias is not None else torch.zeros_like(scale)
            layer.bias = nn.Parameter(bias * scale + shift)
            parent, _, leaf = bn_path.rpartition(".")
            setattr(model.get_submodule(parent) if parent else model, leaf, nn.Identity())


def qat_finetune(state, weight_bits: int = 7, epochs: int = 8, *, lr: float = 5e-4, alpha: float = 0.7,
                 temperature: float = 4.0, calibration_samples: int = 512) -> nn.Module:
    """Fine-tune a copy of ``state.model`` with fake quantization and KD from ``state.teacher``;
    return a plain module that :func:`~edgefleet.compress.capture.capture` accepts."""
    qmax = {7: 63, 8: 127}[weight_bits]
    seed_everything(state.seed)
    model = copy.deepcopy(state.model).eval()
    fold_batchnorms(model, state.capture())
    graph = state.capture(model)

    handles, observers, layers = [], [], []
    input_q = _ActFakeQuant()
    observers.append(input_q)
    handles.append(model.register_forward_pre_hook(_quantize_input(input_q)))
    for node in graph.nodes:
        if node.op not in ("conv2d", "linear") or not node.module:
            continue
        layer = model.get_submodule(node.module)
        if not isinstance(layer, (nn.Conv2d, nn.Linear)) or parametrize.is_parametrized(layer, "weight"):
            continue
        parametrize.register_parametrization(layer, "weight", _WeightFakeQuant(qmax, getattr(layer, MASK, None)))
        layers.append(layer)
        handles.append(_hook_output(layer, _ActFakeQuant(node.attrs.get("act", "none")), observers))
    for m in model.modules():
        if isinstance(m, _ACT_MODULES):
            handles.append(_hook_output(m, _ActFakeQuant(), observers))

    try:
        _calibrate(model, state.calibration_batches(calibration_samples), observers)
        for p in model.parameters():
            p.requires_grad_(True)
        # the simulated int8 accuracy before training is what plain PTQ would give; QAT must not lose to it
        start_acc, start = state.val_accuracy(model), copy.deepcopy(model.state_dict())
        d = state.data
        fit(model, d.x_train, d.y_train, teacher=state.teacher, epochs=epochs, lr=lr, alpha=alpha,
            temperature=temperature, seed=state.seed, progress=state.progress, desc="qat", task=d.task)
        end_acc = state.val_accuracy(model)
        task = get_task(d.task)
        kept = task.drop(start_acc, end_acc) <= 0
        if not kept:
            model.load_state_dict(start)
        state.notes.append(f"qat: simulated int8 val {task.metric} {task.format(start_acc)} before, "
                           f"{task.format(end_acc)} after {epochs} epochs; kept the "
                           f"{'fine-tuned' if kept else 'original'} weights")
    finally:
        for h in handles:
            h.remove()
        for layer in layers:  # keep the weights on the int grid that was trained
            parametrize.remove_parametrizations(layer, "weight", leave_parametrized=True)
    return model.eval()


def _quantize_input(fq: _ActFakeQuant):
    def hook(mod, args):
        if not args or not torch.is_tensor(args[0]) or not args[0].is_floating_point():
            return None  # token ids and other integer inputs are not quantized
        return (fq(args[0], mod.training), *args[1:])
    return hook


def _hook_output(module: nn.Module, fq: _ActFakeQuant, observers: list) -> torch.utils.hooks.RemovableHandle:
    observers.append(fq)
    return module.register_forward_hook(lambda mod, args, out: fq(out, mod.training))


@torch.no_grad()
def _calibrate(model: nn.Module, batches, observers) -> None:
    # seed the EMA ranges from real data before the first training step sees them
    for o in observers:
        o.calibrating = True
    model.eval()
    for x in batches:
        model(*B.torch_args(x))
    for o in observers:
        o.calibrating = False
