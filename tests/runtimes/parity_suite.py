"""The cross-runtime parity suite: one class, subclassed once per (runtime, target).

A subclass sets ``runtime``, ``target``, ``precision`` and, where the backend differs from the
integer reference by design, ``int8_max_lsb``/``int8_mean_lsb`` with the reason. It then gets every
test: parity with the reference on each zoo model and on each op model (``op_models.py``: real small
modules exercising padding, squeeze-excitation, activations, slicing, token ids, attention), a dynamic
batch, and clear errors on bad input.

    class TestNativeParity(RuntimeParitySuite):
        runtime, target, precision = "native", "efm-int8", "int8"
"""

from __future__ import annotations

import functools

import numpy as np
import pytest

from edgefleet import DataError, UnsupportedOpError
from edgefleet.compress.ir import QuantConfig, islands, quantize_graph, run_float, run_int

from .op_models import OP_MODELS, op_case

MODELS = ("digits_cnn", "mlp", "mobilenet_v2_stack", "bert_encoder")


@functools.lru_cache(maxsize=None)
def zoo_case(name: str, weight_bits: int = 7):
    """(float graph, quantized graph, inputs) of a zoo model with seeded random weights."""
    import torch

    from edgefleet.compress import zoo
    from edgefleet.compress.capture import capture

    torch.manual_seed(0)
    model = getattr(zoo, name)().eval()
    shape = zoo.INPUT_SHAPES[name]
    rng = np.random.default_rng(0)
    calib = rng.standard_normal((16, *shape)).astype(np.float32)
    x = rng.standard_normal((4, *shape)).astype(np.float32)
    graph = capture(model, shape)
    return graph, quantize_graph(graph, [calib], QuantConfig(weight_bits=weight_bits)), x


class RuntimeParitySuite:
    runtime: str = ""
    target: str = ""
    precision: str = "int8"
    models: tuple[str, ...] = MODELS
    int8_max_lsb: float = 2.0
    int8_mean_lsb: float = 0.25
    #: per-model overrides {model: (max_lsb, mean_lsb)} with the reason in a comment
    int8_tolerance: dict = {}
    #: precision islands (float32 nodes, see compress/ir/islands.py): (max, mean) LSB from the reference,
    #: whose islands are float32 numpy; None where the runtime has int8 kernels only and must refuse them
    island_tolerance: tuple[float, float] | None = (1.0, 0.1)
    #: the op kinds the target runs in islands (None: every kind in ISLAND_OPS); the parity case marks
    #: these, and an island of any other kind must be refused by name
    island_kinds: tuple[str, ...] | None = None
    fp32_max_abs: float = 1e-4

    def export(self, graph, path):
        from edgefleet.runtimes import exporters
        exporters.get(self.target)().export(graph, path)
        return path

    def open(self, model_name, tmp_path, qgraph=None):
        graph, case_qgraph, x = op_case(model_name)[1:] if model_name in OP_MODELS else zoo_case(model_name)
        qgraph = qgraph or case_qgraph
        from edgefleet import runtimes

        cls = runtimes.get(self.runtime)
        if not cls.is_available():
            pytest.skip(f"{self.runtime}: {cls.unavailable_reason()}")
        path = self.export(qgraph if self.precision == "int8" else graph, tmp_path / f"{model_name}.{self.target}")
        return runtimes.load(self.runtime, path), graph, qgraph, x

    def check_outputs(self, model_name, rt, graph, qgraph, x):
        outs = rt.run(x)
        for name in graph.outputs:
            out = outs[name]
            if self.precision == "int8":
                ref = run_int(qgraph, x)[name]
                lsb = qgraph.qparams[name].scalar_scale
                diff = np.abs(out - ref) / lsb
                max_lsb, mean_lsb = self.int8_tolerance.get(model_name, (self.int8_max_lsb, self.int8_mean_lsb))
                assert diff.max() <= max_lsb + 1e-3, f"{name}: max {diff.max():.2f} LSB"
                assert diff.mean() <= mean_lsb, f"{name}: mean {diff.mean():.3f} LSB"
            else:
                ref = run_float(graph, x)[name]
                assert np.abs(out - ref).max() <= self.fp32_max_abs, f"{name}: {np.abs(out - ref).max():.2e}"

    @pytest.mark.parametrize("model_name", MODELS)
    def test_matches_reference(self, model_name, tmp_path):
        if model_name not in self.models:
            pytest.skip(f"{self.target} does not cover {model_name}")
        self.check_outputs(model_name, *self.open(model_name, tmp_path))

    @pytest.mark.parametrize("model_name", list(OP_MODELS))
    def test_op_model_matches_reference(self, model_name, tmp_path):
        """Every op of the mobile CNN and transformer families, captured from a real torch module."""
        self.check_outputs(model_name, *self.open(model_name, tmp_path))

    @pytest.mark.parametrize("model_name", ("bert_encoder", "masked_encoder"))
    def test_precision_islands_match_reference(self, model_name, tmp_path):
        """Every op kind that may run in float32 marked as an island: the lowering (dequantize, float op,
        quantize; int8 weights dequantized) gives the reference's outputs, or the target refuses by name."""
        if self.precision != "int8":
            pytest.skip("islands are part of the int8 targets")
        qgraph = (op_case(model_name)[2] if model_name in OP_MODELS else zoo_case(model_name)[1])
        kinds = [k for k in islands.groups_by_op(qgraph) if self.island_kinds is None or k in self.island_kinds]
        marked = islands.choose_islands(qgraph, None, None, keep_float=kinds)
        assert marked.float_tensors(), "the case should keep some tensors float32 between island nodes"
        if self.island_kinds is not None:
            others = sorted(set(islands.groups_by_op(qgraph)) - set(self.island_kinds))
            if others:
                every = islands.choose_islands(qgraph, None, None, keep_float=others[:1])
                with pytest.raises(UnsupportedOpError, match=f"op {others[0]!r} runs in a float32 precision island"):
                    self.export(every, tmp_path / f"{model_name}.refused.{self.target}")
        if self.island_tolerance is None:
            with pytest.raises(UnsupportedOpError, match="precision islands"):
                self.export(marked, tmp_path / f"{model_name}.{self.target}")
            return
        # the ops left in int8 keep their own tolerance
        own = self.int8_tolerance.get(model_name, (self.int8_max_lsb, self.int8_mean_lsb))
        self.int8_tolerance = {model_name: tuple(max(a, b) for a, b in zip(own, self.island_tolerance))}
        self.check_outputs(model_name, *self.open(model_name, tmp_path, marked))

    def test_dynamic_batch_gives_the_same_rows(self, tmp_path):
        rt, _, _, x = self.open(self.models[0], tmp_path)
        whole = rt.run(x)[rt.output_names[0]]
        one = rt.run(x[1:2])[rt.output_names[0]]
        np.testing.assert_allclose(one[0], whole[1], rtol=0, atol=1e-5)

    def test_wrong_shape_dtype_and_nan_are_refused(self, tmp_path):
        rt, _, _, x = self.open(self.models[0], tmp_path)
        with pytest.raises(DataError, match="expected shape"):
            rt.run(x[:, ..., :-1])
        with pytest.raises(DataError, match="expected dtype"):
            rt.run(x.astype(np.complex64))
        bad = x.copy()
        bad.flat[0] = np.nan
        with pytest.raises(DataError, match="NaN"):
            rt.run(bad)
