"""``quantize``: int8 post-training quantization of the captured IR, with QAT as the fallback and
float32 precision islands (:mod:`~edgefleet.compress.ir.islands`) where pure int8 misses the budget."""

from __future__ import annotations

from edgefleet._errors import ModelError

from ..ir import islands
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
        Param("keep_float", str, "auto", "float32 precision islands: auto (the fewest op kinds that meet the "
              "budget, none when pure int8 does), none, or comma-separated op kinds / node names",
              check=lambda v: bool(v.strip()), check_doc="non-empty"),
        Param("island_samples", int, 64, "validation samples scored per island trial", check=lambda v: v > 0,
              check_doc="> 0"),
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
        state.qgraph = self._islands(state, state.qgraph)
        if state.qgraph.islands:
            changed["precision_islands"] = islands.summary(state.qgraph)
        changed["tensors_quantized"] = len(state.qgraph.qparams)
        changed["nodes"] = len(state.qgraph.nodes)
        return changed

    def _islands(self, state, qgraph):
        """Mark float32 islands: the ones ``keep_float`` names, or (``auto``) the fewest op kinds that bring
        the task's drop on ``island_samples`` validation samples within the budget the pipeline set
        (``state.max_drop``; without one, auto keeps pure int8)."""
        spec = self.keep_float.strip()
        if spec in ("auto", "none"):
            if spec == "none" or state.max_drop is None:
                return qgraph
            score = _budget_score(state, self.island_samples)
            allowed = islands.ISLAND_OPS if state.island_ops is None else state.island_ops
            return islands.choose_islands(qgraph, score, lambda s: -s[0] <= state.max_drop, allowed=allowed)
        return islands.choose_islands(qgraph, None, None, keep_float=[t.strip() for t in spec.split(",") if t.strip()])

    def backoff(self):
        if self.qat:
            return None
        return Quantize(**{**self.params_dict(), "qat": True})


def _budget_score(state, samples: int):
    """``score(qgraph) -> (-drop,)``: minus the task's drop from the teacher on the first ``samples``
    validation samples, the int8 outputs from the native runtime where it runs the graph."""
    from .. import batch as B
    from ..tasks import get_task
    from ..train import predict_logits
    from ..verify import int8_outputs

    task, data = get_task(state.data.task), state.data
    n = min(samples, B.size(data.x_val))
    x = B.take(data.x_val, slice(0, n))
    y = None if data.y_val is None else data.y_val[:n]
    teacher_out = state.teacher_val_outputs()
    teacher_out = None if teacher_out is None else teacher_out[:n]
    # the teacher's outputs are cached where the task scores against them; run it only otherwise
    teacher_logits = predict_logits(state.teacher, x) if teacher_out is None else teacher_out
    teacher_score = task.score(teacher_logits, y, teacher_out)

    def score(g):
        return (-task.drop(teacher_score, task.score(int8_outputs(g, x)[0], y, teacher_out)),)
    return score
