"""``quantize``: int8 post-training quantization of the captured IR, with QAT as the fallback."""

from __future__ import annotations

from edgefleet._errors import ModelError

from ..ir.quantize import METHODS, QuantConfig, quantize_graph
from .base import Param, Pass, register_pass


@register_pass
class Quantize(Pass):
    """Capture the model into the IR, calibrate, and compute the one set of int8 parameters.

    With ``qat=true`` the model is first fine-tuned with fake quantization (straight-through
    estimator, the same per-channel 7/8-bit weight grid) and distillation from the teacher; the
    accuracy budget turns it on when post-training quantization alone misses the budget.
    """

    name = "quantize"
    kind = "graph"
    params = (
        Param("method", str, "mse", "activation calibration: minmax, percentile or mse (error-minimising)", METHODS),
        Param("percentile", float, 99.99, "percentile for method=percentile", check=lambda v: 50 < v <= 100,
              check_doc="in (50, 100]"),
        Param("weight_bits", int, 7, "weight bits: 7 (exact on every CPU) or 8", (7, 8)),
        Param("calibration_samples", int, 512, "training samples used for calibration", check=lambda v: v > 0,
              check_doc="> 0"),
        Param("qat", bool, False, "fine-tune with fake quantization before calibrating"),
        Param("qat_epochs", int, 8, "QAT epochs", check=lambda v: v > 0, check_doc="> 0"),
    )

    def config(self, seed: int = 0) -> QuantConfig:
        return QuantConfig(method=self.method, percentile=self.percentile, weight_bits=self.weight_bits, seed=seed)

    def _run(self, state) -> dict:
        changed = {}
        if self.qat:
            from .qat import qat_finetune
            with state.timed("QAT"):
                before = state.val_accuracy()
                state.model = qat_finetune(state, weight_bits=self.weight_bits, epochs=self.qat_epochs)
                changed["qat_val_accuracy_before"] = before
                changed["qat_val_accuracy_after"] = state.val_accuracy()
        with state.timed("capture"):
            state.graph = state.capture()
        state.qgraph = quantize_graph(state.graph, state.calibration_batches(self.calibration_samples),
                                      self.config(state.seed), timings=state.step_seconds)
        if not state.qgraph.qparams:
            raise ModelError("quantization produced no parameters")
        changed["tensors_quantized"] = len(state.qgraph.qparams)
        changed["nodes"] = len(state.qgraph.nodes)
        return changed

    def backoff(self):
        if self.qat:
            return None
        return Quantize(**{**self.params_dict(), "qat": True})
