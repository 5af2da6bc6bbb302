"""Op coverage beyond the zoo: each small model exercises ops and attribute cases the zoo does not
(padding TFLite cannot express implicitly, pooling variants, lookup-table activations, concat with
differing scales, softmax and mean axes in NHWC, constants broadcast over channels, permutes)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from _tfl_helpers import Built
from edgefleet.compress.ir import run_float, run_int


class Pools(nn.Module):
    """conv with stride 2 / padding 1 (explicit PAD), dilation, max/avg pooling with padding."""

    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.c2 = nn.Conv2d(8, 8, 3, padding=2, dilation=2)

    def forward(self, x):
        x = torch.relu(self.c1(x))
        a = nn.functional.max_pool2d(x, 3, stride=2, padding=1)
        b = nn.functional.avg_pool2d(self.c2(x), 3, stride=2, padding=1, count_include_pad=True)
        c = nn.functional.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)
        return torch.cat([a, b], dim=1), c.mean(dim=(2, 3))


class Activations(nn.Module):
    """Standalone activations (not fused), concat of differently scaled maps, channel constants."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(4, 8, 1)
        self.scale = nn.Parameter(torch.linspace(0.5, 2.0, 8).reshape(8, 1, 1))
        self.shift = nn.Parameter(torch.linspace(-1.0, 1.0, 8).reshape(8, 1, 1))

    def forward(self, x):
        y = self.conv(x) * self.scale + self.shift
        parts = [torch.sigmoid(y), torch.tanh(y), nn.functional.silu(y), nn.functional.hardswish(y),
                 nn.functional.gelu(y, approximate="tanh"), torch.relu(y + x.mean(dim=1, keepdim=True))]
        z = torch.cat(parts, dim=1)
        return torch.softmax(z, dim=1)


class Sequence(nn.Module):
    """3-D tensors: layer norm, mean over the last axis, permutes, softmax over the last and another axis."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(16, 16)
        self.ln = nn.LayerNorm(16)
        self.out = nn.Linear(16, 8)

    def forward(self, x):
        y = self.ln(self.fc(x))
        t = y.permute(0, 2, 1)
        s = torch.softmax(torch.matmul(y, t), dim=-1)
        return self.out(torch.matmul(s, y)).mean(dim=-1), torch.softmax(y, dim=1)  # softmax off the last axis


class Grouped(nn.Module):
    """Grouped (not depthwise) convolutions: CONV_2D infers the groups from the filter's input channels."""

    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(4, 8, 3, padding=1, groups=2)
        self.c2 = nn.Conv2d(8, 12, 1, groups=4)

    def forward(self, x):
        return self.c2(torch.relu(self.c1(x)))


class ImageThenPermute(nn.Module):
    """A 4-D map that leaves NHWC through a permute and a flatten that is not followed by a linear."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)

    def forward(self, x):
        y = self.conv(x)
        return y.permute(0, 2, 3, 1) * 2.0, torch.flatten(y, 1)


class SamePadSliceSE(nn.Module):
    """TF "same" padding before a strided conv (PADV2 on the NHWC map), squeeze-excitation with
    hardsigmoid, clamp, a channel chunk and an H slice on NHWC-stored maps (STRIDED_SLICE)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 6, 3, stride=2)
        self.reduce, self.expand = nn.Conv2d(6, 3, 1), nn.Conv2d(3, 6, 1)

    def forward(self, x):
        y = self.conv(nn.functional.pad(x, (0, 1, 0, 1)))
        y = nn.functional.pad(torch.relu(y), (1, 0, 2, 1), value=0.5)
        gate = nn.functional.hardsigmoid(self.expand(torch.relu(self.reduce(y.mean(dim=(2, 3), keepdim=True)))))
        y = torch.clamp(y * gate, -0.5, 1.0)
        a, b = torch.chunk(y, 2, dim=1)
        return torch.cat([a[:, :, 1:-1:2], b[:, :, :-2:2]], dim=1)


CASES = {"same_pad_se": (SamePadSliceSE, (3, 13, 11)), "pools": (Pools, (3, 16, 16)), "activations": (Activations, (4, 6, 6)),
         "sequence": (Sequence, (10, 16)), "permute": (ImageThenPermute, (3, 5, 7)),
         "grouped": (Grouped, (4, 6, 6))}


@pytest.fixture(scope="module", params=list(CASES))
def built(request):
    torch.manual_seed(1)
    cls, shape = CASES[request.param]
    return Built(cls(), shape, seed=1)


def test_fp32(built, tmp_path):
    from edgefleet import runtimes
    from edgefleet.runtimes import exporters

    path = exporters.get("tflite-fp32")().export(built.graph, tmp_path / "m.tflite")
    outs = runtimes.load("litert", path).run(built.x)
    ref = run_float(built.graph, built.x)
    for name in built.graph.outputs:
        assert outs[name].shape == ref[name].shape
        assert np.abs(outs[name] - ref[name]).max() <= 1e-5, name


def test_int8(built, tmp_path):
    """Within 1 LSB: ops TFLite computes itself (HARD_SWISH, GELU, SOFTMAX, BATCH_MATMUL, MEAN,
    requantizing QUANTIZE before CONCATENATION) round differently from the IR on ties only; sigmoid,
    tanh and silu with calibrated output ranges use the IR's own table (CAST/ADD/GATHER) and are exact."""
    from edgefleet import runtimes
    from edgefleet.runtimes import exporters

    path = exporters.get("tflite-int8")().export(built.qgraph, tmp_path / "m.int8.tflite")
    outs = runtimes.load("litert", path).run(built.x)
    ref = run_int(built.qgraph, built.x)
    for name in built.graph.outputs:
        lsb = built.qgraph.qparams[name].scalar_scale
        assert outs[name].shape == ref[name].shape
        assert np.abs(outs[name] - ref[name]).max() <= 1.0001 * lsb, name


class Embedding(nn.Module):
    """Token ids (int64) -> GATHER of the (int8) table; the ids stay int64 at the boundary."""

    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(50, 16)
        self.fc = nn.Linear(16, 4)

    def forward(self, ids):
        return self.fc(self.emb(ids)).mean(dim=1)


@pytest.mark.parametrize("target", ["tflite-fp32", "tflite-int8"])
def test_embedding_with_int64_ids(target, tmp_path):
    from edgefleet import runtimes
    from edgefleet.compress.capture import capture
    from edgefleet.compress.ir import quantize_graph
    from edgefleet.runtimes import exporters

    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    graph = capture(Embedding().eval(), (10,), input_dtype="int64")
    ids = rng.integers(0, 50, (5, 10)).astype(np.int64)
    if target == "tflite-int8":
        graph = quantize_graph(graph, [rng.integers(0, 50, (8, 10)).astype(np.int64)])
    path = exporters.get(target)().export(graph, tmp_path / "m.tflite")
    rt = runtimes.load("litert", path)
    assert rt.input_specs[0].dtype == "int64"
    out = rt.run(ids)["output"]
    if target == "tflite-int8":
        ref = run_int(graph, ids)["output"]
        assert np.abs(out - ref).max() <= 1.0001 * graph.qparams["output"].scalar_scale
    else:
        assert np.abs(out - run_float(graph, ids)["output"]).max() <= 1e-5
