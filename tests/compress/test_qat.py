"""QAT: beats plain PTQ where PTQ hurts, leaves a plain module on the int grid, keeps sparsity."""

import copy

import numpy as np
import pytest
import torch
from torch import nn

from edgefleet.compress import zoo
from edgefleet.compress.capture import capture
from edgefleet.compress.ir import QuantConfig, quantize_graph, run_int
from edgefleet.compress.passes import get_pass
from edgefleet.compress.passes.qat import qat_finetune
from edgefleet.compress.state import State
from edgefleet.compress.train import accuracy, fit, seed_everything


@pytest.fixture(scope="module")
def outlier_model(digits_data):
    """A digits CNN with one activation channel scaled x300 and its consumers / 300: the same function
    in float, but per-tensor int8 of that activation crushes the other channels (PTQ hurts)."""
    seed_everything(0)
    model = fit(zoo.digits_cnn(width=8, hidden=32), digits_data.x_train, digits_data.y_train, epochs=10, seed=0)
    with torch.no_grad():
        bn = model.features[1]
        bn.weight[0] *= 300
        bn.bias[0] *= 300
        model.features[3].weight[:, 0] /= 300
    return model


def _int8_accuracy(state: State, model: nn.Module, weight_bits: int = 7) -> float:
    graph = capture(model, state.data.input_shape)
    qgraph = quantize_graph(graph, state.calibration_batches(512), QuantConfig(method="minmax", weight_bits=weight_bits))
    return accuracy(run_int(qgraph, state.data.x_val)["output"], state.data.y_val)


def test_qat_beats_ptq_where_ptq_hurts(digits_data, outlier_model):
    state = State.start(copy.deepcopy(outlier_model), digits_data)
    float_acc, ptq = state.val_accuracy(), _int8_accuracy(state, state.model)
    assert ptq < float_acc - 5  # the premise: PTQ alone loses a lot here
    model = qat_finetune(state, weight_bits=7, epochs=3)
    qat = _int8_accuracy(state, model)
    assert qat >= ptq - 0.5
    assert state.notes and state.notes[-1].startswith("qat:")
    assert state.model is not model  # a fine-tuned copy; the input model is unchanged


def test_result_is_a_plain_module_with_weights_on_the_grid(digits_data, outlier_model):
    state = State.start(copy.deepcopy(outlier_model), digits_data)
    model = qat_finetune(state, weight_bits=8, epochs=1)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.modules())  # folded, as deployed
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            assert type(m).__name__ in ("Conv2d", "Linear")  # parametrization removed
            w = m.weight.detach().reshape(m.weight.shape[0], -1)
            scale = w.abs().amax(1, keepdim=True) / 127
            q = w / scale
            assert torch.allclose(q, q.round(), atol=1e-3)
    graph = capture(model, digits_data.input_shape)
    assert [n.op for n in graph.nodes][:2] == ["conv2d", "conv2d"]


def test_qat_keeps_unstructured_zeros(digits_data, outlier_model):
    state = State.start(copy.deepcopy(outlier_model), digits_data)
    get_pass("prune")(amount=0.6, structured=False).run(state)
    masks = {n: m._edgefleet_mask for n, m in state.model.named_modules() if hasattr(m, "_edgefleet_mask")}
    model = qat_finetune(state, weight_bits=7, epochs=1)
    modules = dict(model.named_modules())
    for name, mask in masks.items():
        assert torch.all(modules[name].weight.detach()[~mask] == 0), name


def test_quantize_pass_runs_qat(digits_data, outlier_model):
    state = State.start(copy.deepcopy(outlier_model), digits_data)
    out = get_pass("quantize")(method="minmax", qat=True, qat_epochs=1).run(state).changed
    assert out["tensors_quantized"] > 0 and state.qgraph is not None
    assert np.isfinite(out["qat_val_accuracy_after"])
