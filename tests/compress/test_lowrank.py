"""lowrank: SVD factorisation saves parameters, is exact at the numerical rank, and backs off towards full rank."""

import numpy as np
import pytest
import torch
from torch import nn

from edgefleet import ConfigError, ModelError
from edgefleet.compress import zoo
from edgefleet.compress.capture import capture
from edgefleet.compress.data import Dataset
from edgefleet.compress.passes import get_pass
from edgefleet.compress.passes.lowrank import Factorized
from edgefleet.compress.state import State, count_parameters
from edgefleet.compress.train import seed_everything

LowRank = get_pass("lowrank")


def _state(model, shape, n=4) -> State:
    x = np.random.default_rng(0).standard_normal((n, *shape)).astype(np.float32)
    y = np.zeros(n, np.int64)
    return State.start(model, Dataset("fake", x, y, x, y, x, y, labels=["0"]))


class LowRankNet(nn.Module):
    """A conv whose weight matrix has rank 4 and a linear of rank 8: energy=1.0 must find both ranks."""

    def __init__(self):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.conv = nn.Conv2d(16, 64, 3, stride=2, padding=1)
        self.fc = nn.Linear(64 * 16, 256)
        self.out = nn.Linear(256, 10)
        with torch.no_grad():
            self.conv.weight.copy_((torch.randn(64, 4, generator=g) @ torch.randn(4, 16 * 9, generator=g)).reshape(64, 16, 3, 3) / 10)
            self.fc.weight.copy_(torch.randn(256, 8, generator=g) @ torch.randn(8, 1024, generator=g) / 30)

    def forward(self, x):
        return self.out(torch.relu(self.fc(torch.relu(self.conv(x)).flatten(1))))


def test_energy_one_is_exact_at_the_numerical_rank():
    model = LowRankNet().eval()
    state = _state(model, (16, 8, 8))
    out = LowRank(energy=1.0).run(state).changed
    assert out["layers"]["conv"]["rank"] == 4 and out["layers"]["fc"]["rank"] == 8
    assert "out" not in out["layers"]  # 2560 weights: under min_params
    conv = state.model.conv
    assert isinstance(conv, Factorized) and conv[0].stride == (2, 2) and conv[0].padding == (1, 1) and conv[0].bias is None
    assert conv[1].kernel_size == (1, 1) and conv[1].bias is not None
    assert out["params_after"] < 0.1 * out["params_before"]
    x = torch.from_numpy(state.data.x_val)
    with torch.no_grad():
        np.testing.assert_allclose(state.model(x).numpy(), model(x).numpy(), atol=1e-4)
    capture(state.model, (16, 8, 8))


def test_energy_reduces_digits_cnn_and_reports_ranks(digits_data):
    seed_everything(0)
    model = zoo.digits_cnn()
    state = State.start(model, digits_data)
    out = LowRank(energy=0.5).run(state).changed
    assert set(out["layers"]) == {"features.3", "classifier.1"}  # features.0 (288 weights) is under min_params
    for layer in out["layers"].values():
        assert layer["rank"] < layer["full_rank"] and layer["params_after"] < layer["params_before"]
    assert out["params_after"] == count_parameters(state.model) < out["params_before"] == count_parameters(model)
    graph = capture(state.model, digits_data.input_shape)
    assert [n.op for n in graph.nodes].count("conv2d") == 3  # BN folded into the 1x1 half


def test_param_budget_caps_each_layer():
    state = _state(zoo.mlp((64, 256, 256, 10)), (64,))
    out = LowRank(param_budget=0.25, layers="linear").run(state).changed
    for name, layer in out["layers"].items():
        bias = state.model.get_submodule(name)[1].bias.numel()
        assert layer["params_after"] - bias <= 0.25 * (layer["params_before"] - bias)


def test_full_rank_layers_are_left_alone_and_factorised_layers_not_refactorised():
    seed_everything(0)
    state = _state(zoo.mlp((64, 256, 256, 10)), (64,))
    before = count_parameters(state.model)
    assert LowRank(energy=1.0).run(state).changed["layers"] == {}
    assert count_parameters(state.model) == before
    LowRank(param_budget=0.2).run(state)
    first = count_parameters(state.model)
    with pytest.raises(ModelError, match="no layer"):  # the halves of a factorised layer are not candidates
        LowRank(param_budget=0.2).run(state)
    assert count_parameters(state.model) == first


def test_grouped_convs_are_skipped():
    model = nn.Sequential(nn.Conv2d(64, 64, 3, padding=1, groups=64), nn.Flatten(), nn.Linear(64 * 16, 4))
    with pytest.raises(ModelError, match="no conv layer"):
        LowRank(layers="conv", min_params=0).run(_state(model, (64, 4, 4)))


def test_nothing_large_enough_is_a_model_error():
    with pytest.raises(ModelError, match="at least 4096 weights"):
        LowRank().run(_state(nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 2)), (8,)))


@pytest.mark.parametrize("kw, name", [
    ({"energy": 0.0}, "energy"), ({"energy": 1.5}, "energy"), ({"param_budget": 1.0}, "param_budget"),
    ({"param_budget": "half"}, "param_budget"), ({"layers": "rnn"}, "layers"), ({"min_params": -1}, "min_params"),
])
def test_bad_params_are_config_errors(kw, name):
    with pytest.raises(ConfigError, match=f"lowrank.{name}"):
        LowRank(**kw)


def test_backoff_moves_halfway_to_full_rank():
    chain, p = [], LowRank()
    while p is not None:
        chain.append(p.energy)
        p = p.backoff()
    assert chain == [0.9, 0.95, 0.975, 0.9875]
    budget = LowRank(param_budget=0.5).backoff()
    assert budget.param_budget == 0.75 and budget.energy == 0.9
