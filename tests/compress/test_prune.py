"""prune: structured channel removal (physically smaller, exact on dead channels) and honest unstructured sparsity."""

import copy

import numpy as np
import pytest
import torch
from torch import nn

from edgefleet import ConfigError, ModelError
from edgefleet.compress import zoo
from edgefleet.compress.capture import capture
from edgefleet.compress.data import Dataset
from edgefleet.compress.passes import get_pass
from edgefleet.compress.passes._channels import channel_groups
from edgefleet.compress.state import State, count_parameters
from edgefleet.compress.train import fit, seed_everything

Prune = get_pass("prune")


def _fake_data(shape, n=4, seed=0) -> Dataset:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, *shape)).astype(np.float32)
    y = np.zeros(n, np.int64)
    return Dataset("fake", x, y, x, y, x, y, labels=["0"])


def _randomize_bn(model: nn.Module) -> nn.Module:
    # non-trivial batch norm statistics, so that a wrong slice of them changes the output
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.copy_(torch.rand(m.num_features, generator=g) - 0.5)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.weight.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.bias.copy_(torch.rand(m.num_features, generator=g) - 0.5)
    return model.eval()


def _kill_half(model: nn.Module, shape) -> None:
    """Make half the channels of every prunable group exactly zero (weights, bias and folded BN), so
    that pruning 50% must pick exactly those and leave the model's outputs unchanged."""
    modules = dict(model.named_modules())
    with torch.no_grad():
        for group in channel_groups(capture(model, shape), model):
            if group.blocked:
                continue
            dead = torch.arange(1, group.size, 2)
            for node in group.producers + group.depthwise:
                layer = modules[node.module]
                layer.weight[dead] = 0
                if layer.bias is not None:
                    layer.bias[dead] = 0
                if node.attrs.get("folded_bn"):
                    bn = modules[node.attrs["folded_bn"]]
                    bn.weight[dead], bn.bias[dead] = 0, 0


@pytest.fixture(scope="module")
def tiny_digits(digits_data):
    seed_everything(0)
    return fit(zoo.digits_cnn(width=8, hidden=32), digits_data.x_train, digits_data.y_train, epochs=6, seed=0)


def test_structured_half_on_digits_cnn_is_physically_smaller(digits_data):
    seed_everything(0)
    model = zoo.digits_cnn()
    state = State.start(model, digits_data)
    out = Prune(amount=0.5).run(state).changed
    assert out["params_before"] == count_parameters(model) == 151402
    assert out["params_after"] == count_parameters(state.model) <= 0.3 * out["params_before"]
    assert out["channels"] == {"features.0": [32, 16], "features.3": [64, 32], "classifier.1": [128, 64]}
    # a conv/linear between two halved groups keeps a quarter; the first and last keep half
    assert out["layers"]["features.3"] == [18432, 4608]
    assert out["layers"]["classifier.1"] == [131200, 32 * 16 * 64 + 64]
    assert "classifier.4" in out["skipped_groups"]  # the logits are a graph output
    graph = capture(state.model, digits_data.input_shape)  # validates
    assert graph.num_parameters() < 0.3 * 151402
    assert state.model(torch.from_numpy(digits_data.x_val[:3])).shape == (3, 10)
    assert count_parameters(model) == 151402  # the input model is left intact for a backed-off retry


def test_dead_channels_are_removed_exactly_through_bn_and_flatten(digits_data):
    seed_everything(0)
    model = _randomize_bn(zoo.digits_cnn(width=8, hidden=32))
    _kill_half(model, digits_data.input_shape)
    state = State.start(model, digits_data)
    Prune(amount=0.5, criterion="l2").run(state)
    x = torch.from_numpy(digits_data.x_val)
    with torch.no_grad():
        np.testing.assert_allclose(state.model(x).numpy(), model(x).numpy(), atol=1e-5)
    assert state.model.features[0].out_channels == 4 and state.model.classifier[1].in_features == 8 * 16


def test_mobilenet_residual_groups_share_one_keep_set():
    seed_everything(0)
    model = _randomize_bn(zoo.mobilenet_v2_stack())
    shape = zoo.INPUT_SHAPES["mobilenet_v2_stack"]
    _kill_half(model, shape)
    state = State.start(model, _fake_data(shape, n=2))
    out = Prune(amount=0.5).run(state).changed
    pruned = state.model
    # stem + block 0 feed the same residual add: pruned together, and block 1 reads what is left
    assert "stem.0+blocks.0.block.6" in out["channels"]
    assert pruned.stem[0].out_channels == pruned.blocks[0].block[6].out_channels == pruned.blocks[1].block[0].in_channels == 8
    dw = pruned.blocks[0].block[3]
    assert dw.groups == dw.in_channels == dw.out_channels == 48 and pruned.blocks[0].block[4].num_features == 48
    x = torch.from_numpy(state.data.x_val)
    with torch.no_grad():
        np.testing.assert_allclose(pruned(x).numpy(), model(x).numpy(), atol=1e-4)
    assert out["params_after"] < 0.35 * out["params_before"]
    capture(pruned, shape)


def test_mlp_neurons_removed():
    model = nn.Sequential(nn.Linear(20, 64), nn.ReLU(), nn.Linear(64, 48), nn.ReLU(), nn.Linear(48, 3))
    state = State.start(model, _fake_data((20,)))
    out = Prune(amount=0.75, min_channels=16).run(state).changed
    assert [m.out_features for m in state.model if isinstance(m, nn.Linear)] == [16, 16, 3]
    assert out["params_after"] == 20 * 16 + 16 + 16 * 16 + 16 + 16 * 3 + 3


def test_bert_ffn_is_pruned_and_attention_left_alone():
    model = zoo.bert_encoder(layers=1, hidden=32, heads=2)
    state = State.start(model, _fake_data((8, 32), n=2))
    out = Prune(amount=0.5).run(state).changed
    layer = state.model.layers[0]
    assert (layer.ff1.out_features, layer.ff2.in_features) == (64, 64)
    assert layer.q.out_features == 32  # split into heads by a reshape: blocked
    assert out["channels"] == {"layers.0.ff1": [128, 64]}
    assert state.model(torch.from_numpy(state.data.x_val)).shape == (2, 8, 32)


def test_unstructured_reports_honest_numbers_and_zeros_survive_finetuning(digits_data, tiny_digits):
    state = State.start(copy.deepcopy(tiny_digits), digits_data)
    weights = sum(m.weight.numel() for m in state.model.modules() if isinstance(m, (nn.Conv2d, nn.Linear)))
    out = Prune(amount=0.8, structured=False).run(state).changed
    assert out["params_after"] == out["params_before"] == count_parameters(tiny_digits)
    assert out["nonzero_before"] - out["nonzero_after"] == int(0.8 * weights)
    assert out["weight_sparsity"] == pytest.approx(0.8, abs=1e-3)
    assert out["sparse_bytes"] < 0.5 * out["dense_bytes"] and out["dense_bytes"] == 4 * out["params_before"]
    masks = {n: m._edgefleet_mask.clone() for n, m in state.model.named_modules() if hasattr(m, "_edgefleet_mask")}
    assert len(masks) == 4

    get_pass("distill")(epochs=2).run(state)
    modules = dict(state.model.named_modules())
    for name, mask in masks.items():
        w = modules[name].weight.detach()
        assert torch.all(w[~mask] == 0), name
        assert torch.count_nonzero(w[mask]) > 0.99 * mask.sum()
    capture(state.model, digits_data.input_shape)  # no hook left behind


def test_structured_after_unstructured_keeps_masks_in_step(digits_data, tiny_digits):
    state = State.start(copy.deepcopy(tiny_digits), digits_data)
    Prune(amount=0.5, structured=False).run(state)
    Prune(amount=0.5).run(state)
    for m in state.model.modules():
        if hasattr(m, "_edgefleet_mask"):
            assert m._edgefleet_mask.shape == m.weight.shape


def test_nothing_prunable_is_a_model_error():
    model = nn.Sequential(nn.Linear(64, 10))  # its only channel dimension is the output
    with pytest.raises(ModelError, match="no prunable channel group"):
        Prune().run(State.start(model, _fake_data((64,))))


@pytest.mark.parametrize("kw, name", [
    ({"amount": 1.5}, "amount"), ({"amount": "0.5"}, "amount"), ({"structured": "yes"}, "structured"),
    ({"criterion": "l3"}, "criterion"), ({"min_channels": 0}, "min_channels"), ({"min_channels": 2.0}, "min_channels"),
])
def test_bad_params_are_config_errors(kw, name):
    with pytest.raises(ConfigError, match=f"prune.{name}"):
        Prune(**kw)


def test_backoff_halves_amount_until_below_a_tenth():
    chain, p = [], Prune(amount=0.5)
    while p is not None:
        chain.append(p.amount)
        p = p.backoff()
    assert chain == [0.5, 0.25, 0.125]
