"""Capture of real model families' ops: every unsupported op named at once before any work starts,
integer (token id) inputs and several inputs, constant folding, dropout and identities vanishing."""

import numpy as np
import pytest
import torch
from torch import nn

from edgefleet import DataError, UnsupportedOpError
from edgefleet.compress.capture import capture
from edgefleet.compress.ir import quantize_graph, run_float, run_int
from tests.fixtures.models import two_unsupported


def test_every_unsupported_op_is_named_in_one_error():
    with pytest.raises(UnsupportedOpError) as info:
        capture(two_unsupported(), (1, 8, 8))
    msg = str(info.value)
    assert "\n" not in msg  # the CLI prints it as one line
    assert "2 unsupported ops" in msg and "nothing was calibrated or trained" in msg
    assert "aten.leaky_relu at" in msg and "(2 calls)" in msg
    assert "module 'blocks.0'" in msg and "module 'blocks.1'" in msg
    assert "aten.cumsum at" in msg and "tests/fixtures/models.py:" in msg
    assert "nearest supported: a lookup-table activation" in msg
    assert info.value.ops == {"leaky_relu": 2, "cumsum": 1}


def test_export_refuses_before_any_training_or_calibration(monkeypatch, tmp_path):
    """A spy on the real training and calibration functions: neither runs."""
    from edgefleet.compress import pipeline
    from edgefleet.compress.ir import quantize

    calls = []
    real_fit, real_calibrate = pipeline.fit, quantize.calibrate
    monkeypatch.setattr(pipeline, "fit", lambda *a, **k: calls.append("fit") or real_fit(*a, **k))
    monkeypatch.setattr(quantize, "calibrate", lambda *a, **k: calls.append("calibrate") or real_calibrate(*a, **k))
    cfg = pipeline.ExportConfig(model="tests.fixtures.models:two_unsupported", train_epochs=2, out=str(tmp_path / "b"),
                                measure_latency=False)
    with pytest.raises(UnsupportedOpError, match="aten.cumsum"):
        pipeline.run_export(cfg)
    assert calls == []
    assert not (tmp_path / "b").exists()


def test_a_supported_op_used_unsupportedly_says_why():
    class M(nn.Module):
        def forward(self, x):
            return nn.functional.pad(x, (1, 1, 1, 1), mode="reflect")[:, :, 1:-1, 1:-1] + nn.functional.max_pool2d(x, 2, ceil_mode=True).mean()
    with pytest.raises(UnsupportedOpError) as info:
        capture(M(), (2, 6, 6))
    assert "padding mode 'reflect'" in str(info.value) or "reflection_pad" in str(info.value)
    assert "ceil_mode" in str(info.value)


class Tokens(nn.Module):
    """Token ids and a float feature vector in; position ids and token types folded to constants."""

    def __init__(self):
        super().__init__()
        self.tok, self.pos, self.typ = nn.Embedding(20, 8), nn.Embedding(6, 8), nn.Embedding(2, 8)
        self.drop = nn.Dropout(0.1)
        self.fc = nn.Linear(8 + 3, 4)

    def forward(self, ids, feats):
        positions = torch.arange(ids.shape[1]).unsqueeze(0)
        x = self.tok(ids) + self.pos(positions) + self.typ(torch.zeros_like(ids))
        pooled = self.drop(x).mean(dim=1).contiguous()
        return self.fc(torch.cat([pooled, feats], dim=1))


def _tokens_graph():
    torch.manual_seed(0)
    model = Tokens().eval()
    return model, capture(model, [(6,), (3,)], input_dtype=["int64", "float32"])


def test_int64_and_float_inputs_with_constants_folded():
    model, g = _tokens_graph()
    assert [(v.name, v.dtype) for v in g.inputs] == [("ids", "int64"), ("feats", "float32")]
    ops = [n.op for n in g.nodes]
    assert ops.count("embedding") == 1  # the position and token-type lookups were folded
    assert "arange" not in ops and "dropout" not in ops
    rng = np.random.default_rng(0)
    ids, feats = rng.integers(0, 20, (5, 6)), rng.standard_normal((5, 3)).astype(np.float32)
    with torch.no_grad():
        ref = model(torch.from_numpy(ids), torch.from_numpy(feats)).numpy()
    out = run_float(g, {"ids": ids, "feats": feats})["output"]
    assert np.abs(out - ref).max() < 1e-5
    qg = quantize_graph(g, [{"ids": rng.integers(0, 20, (8, 6)), "feats": rng.standard_normal((8, 3)).astype(np.float32)}])
    assert np.abs(run_int(qg, {"ids": ids, "feats": feats})["output"] - ref).max() < 0.1


def test_token_ids_of_the_wrong_dtype_or_out_of_vocabulary_are_clear_errors():
    _, g = _tokens_graph()
    feats = np.zeros((2, 3), np.float32)
    with pytest.raises(DataError, match=r"input 'ids' takes integer ids \(int64\), got float32"):
        run_float(g, {"ids": np.zeros((2, 6), np.float32), "feats": feats})
    ids = np.zeros((2, 6), np.int64)
    ids[1, 4] = 20
    with pytest.raises(DataError, match=r"embedding index 20 is out of range \[0, 20\) \(vocabulary size 20\)"):
        run_float(g, {"ids": ids, "feats": feats})
    qg = quantize_graph(g, [{"ids": np.zeros((2, 6), np.int64), "feats": feats}])
    ids[1, 4] = -3
    with pytest.raises(DataError, match="embedding index -3 is out of range"):
        run_int(qg, {"ids": ids, "feats": feats})


class ViTBits(nn.Module):
    """A class token concatenated in front of the patch tokens, and the timm-style fused qkv:
    ``reshape(b, n, 3, h, d).permute(2, 0, 3, 1, 4)`` then ``qkv[0], qkv[1], qkv[2]``."""

    def __init__(self):
        super().__init__()
        self.cls_token = nn.Parameter(torch.randn(1, 1, 8))
        self.pos = nn.Parameter(torch.randn(1, 5, 8) * 0.1)
        self.qkv = nn.Linear(8, 24)

    def forward(self, x):
        b, n, d = x.shape
        x = torch.cat([self.cls_token.expand(b, -1, -1), x], dim=1) + self.pos
        qkv = self.qkv(x).reshape(b, n + 1, 3, 2, 4).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        att = torch.softmax(torch.matmul(q, k.transpose(-2, -1)), dim=-1)
        return torch.matmul(att, v).transpose(1, 2).reshape(b, n + 1, d)[:, 0]


def test_class_token_and_fused_qkv_capture_without_moving_the_batch_axis():
    torch.manual_seed(0)
    model = ViTBits().eval()
    g = capture(model, (4, 8))
    assert all(n.op != "transpose" or n.attrs["perm"][0] == 0 for n in g.nodes)
    x = np.random.default_rng(0).standard_normal((3, 4, 8)).astype(np.float32)
    with torch.no_grad():
        ref = model(torch.from_numpy(x)).numpy()
    assert np.abs(run_float(g, x)["output"] - ref).max() < 1e-5


def test_boolean_masks_are_exact_in_float_and_close_in_int8():
    """Hugging Face's masked_fill bias, ``masked_fill(mask == 0, -inf)`` and ``where(mask > 0, x, 0)``
    on an int64 attention mask: float32 matches torch, and int8 stays close."""
    from tests.runtimes.op_models import op_case

    model, g, qg, x = op_case("masked_fill_encoder")
    assert not {"where", "masked_fill"} & {n.op for n in g.nodes}
    assert all(v.dtype in ("float32", "int64") for v in g.values.values())
    with torch.no_grad():
        ref = model(torch.from_numpy(x["input_ids"]), torch.from_numpy(x["attention_mask"])).numpy()
    assert np.abs(run_float(g, x)["output"] - ref).max() < 1e-5
    assert np.abs(run_int(qg, x)["output"] - ref).max() < 0.5 * np.abs(ref).max()


class Comparisons(nn.Module):
    """Every comparison of an integer tensor with a (non-integer) number, ``~``, ``&``, ``.bool()``,
    and a constant causal mask."""

    def forward(self, ids):
        x = ids.float()
        out = x * 0
        for i, p in enumerate([ids > 2.5, ids >= 3, ids < 1.5, ids <= -1, ids == 4, ids != 0,
                               ~(ids > 2), (ids > 0) & (ids < 5), (ids - 3).bool()]):
            out = out + torch.where(p, x, -1.0) * (i + 1)
        causal = torch.ones(5, 5).tril() == 0
        return out + (out[:, None, :] * 0.5).masked_fill(causal, 0.0).sum(dim=-1)


def test_every_comparison_is_exact_on_integers():
    g = capture(Comparisons().eval(), (5,), input_dtype="int64")
    ids = np.array([[-2, 0, 1, 3, 4], [5, 4, 2, 0, -1], [1, 1, 3, 3, 7]], np.int64)
    with torch.no_grad():
        ref = Comparisons()(torch.from_numpy(ids)).numpy()
    assert np.array_equal(run_float(g, ids)["output"], ref)


def test_masks_that_cannot_be_written_exactly_are_refused_with_the_reason():
    class FloatCompare(nn.Module):
        def forward(self, x):
            return x.masked_fill(x > 0.5, -1e9)

    class PositiveFill(nn.Module):
        def forward(self, ids):
            x = ids.float()
            return x.masked_fill(ids == 0, float("inf"))

    with pytest.raises(UnsupportedOpError, match="aten.gt .*not integer-valued"):
        capture(FloatCompare(), (4,))
    with pytest.raises(UnsupportedOpError, match=r"aten.masked_fill .*fill value above 10000"):
        capture(PositiveFill(), (4,), input_dtype="int64")
