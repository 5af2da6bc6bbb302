"""Small real PyTorch modules that exercise the ops the mobile CNN and transformer families need,
captured through ``torch.export`` like a user's model: TF-"same" and constant padding, squeeze-
excitation, hardswish/hardsigmoid/SiLU/clamp/ReLU6, chunk/split/slice/cat, global pooling; token ids
(int64), folded position ids and ``zeros_like`` token types, layer norm, attention with batched
matmul and softmax, GELU (erf and tanh), mean over an axis; an int64 attention mask cast to float,
an additive mask bias, and a masked mean (sum and division); boolean masks (comparisons, ``where``,
``masked_fill``) as Hugging Face writes them."""

from __future__ import annotations

import functools

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F


class MobileOps(nn.Module):
    """An EfficientNet/MobileNetV3-style block stack."""

    def __init__(self):
        super().__init__()
        self.static_padding = nn.ZeroPad2d((0, 1, 0, 1))  # TF "same" for k3 s2 on an odd input
        self.stem = nn.Conv2d(3, 8, 3, stride=2)
        self.bn = nn.BatchNorm2d(8)
        self.dw = nn.Conv2d(8, 8, 3, padding=1, groups=8)
        self.se_reduce = nn.Conv2d(8, 4, 1)
        self.se_expand = nn.Conv2d(4, 8, 1)
        self.act6 = nn.ReLU6()
        self.dropout = nn.Dropout(0.2)
        self.head = nn.Linear(11, 5)
        with torch.no_grad():
            self.bn.running_mean.uniform_(-0.2, 0.2)
            self.bn.running_var.uniform_(0.5, 1.5)

    def forward(self, x):
        x = F.silu(self.bn(self.stem(self.static_padding(x))))
        x = F.hardswish(self.dw(x))
        s = F.adaptive_avg_pool2d(x, 1)                        # squeeze-excitation
        s = F.hardsigmoid(self.se_expand(torch.relu(self.se_reduce(s))))
        x = x * s
        x = torch.clamp(x, -1.5, 2.5) + F.hardtanh(x)
        x = F.pad(x, (1, 1, 2, 0), value=0.25)                  # constant, asymmetric, non-zero
        a, b = torch.chunk(x, 2, dim=1)
        x = torch.cat([self.act6(b), torch.sigmoid(a)], dim=1)
        left, right = torch.split(x, [3, 5], dim=1)
        corner = left[:, :, 1:, ::2].mean(dim=(2, 3))
        x = torch.cat([right.mean(dim=(2, 3)), corner, left.mean(dim=(2, 3))], dim=1)
        return self.head(self.dropout(x))


class TokenEncoder(nn.Module):
    """A BERT-style encoder layer on int64 token ids; returns one embedding per sequence."""

    def __init__(self, vocab=30, seq=12, dim=16, heads=2):
        super().__init__()
        self.seq, self.heads = seq, heads
        self.tok = nn.Embedding(vocab, dim)
        self.pos = nn.Embedding(seq, dim)
        self.typ = nn.Embedding(2, dim)
        self.register_buffer("position_ids", torch.arange(seq).unsqueeze(0), persistent=False)
        self.ln0, self.ln1 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.up, self.down = nn.Linear(dim, 2 * dim), nn.Linear(2 * dim, dim)

    def forward(self, ids):
        n = ids.shape[0]
        positions = self.position_ids[:, : self.seq]
        x = self.tok(ids) + self.pos(positions) + self.typ(torch.zeros_like(ids))
        x = self.ln0(x)
        q, k, v = self.qkv(x).split(x.shape[-1], dim=-1)
        split = lambda t: t.reshape(n, self.seq, self.heads, -1).permute(0, 2, 1, 3)  # noqa: E731
        q, k, v = split(q), split(k), split(v)
        att = torch.softmax(torch.matmul(q, k.transpose(-1, -2)) * 0.35, dim=-1)
        y = torch.matmul(att, v).permute(0, 2, 1, 3).flatten(2)
        x = self.ln1(x + self.proj(y))
        h = F.gelu(self.up(x), approximate="tanh")
        x = x + self.down(F.gelu(h))
        return x.mean(dim=1)


class MaskedEncoder(nn.Module):
    """Token ids and an attention mask (both int64), as MiniLM takes them: an additive mask bias
    (``(1 - mask) * -10000``) before the softmax, and the mask-weighted mean of the hidden states."""

    def __init__(self, vocab=30, seq=10, dim=16):
        super().__init__()
        self.seq = seq
        self.tok = nn.Embedding(vocab, dim)
        self.ln = nn.LayerNorm(dim)
        self.q, self.k, self.v = nn.Linear(dim, dim), nn.Linear(dim, dim), nn.Linear(dim, dim)

    def forward(self, input_ids, attention_mask):
        x = self.ln(self.tok(input_ids))
        mask = attention_mask.to(x.dtype)
        bias = (1.0 - mask[:, None, :]) * -10000.0
        att = torch.softmax(torch.matmul(self.q(x), self.k(x).transpose(-1, -2)) * 0.25 + bias, dim=-1)
        x = x + torch.matmul(att, self.v(x))
        return (x * mask[:, :, None]).sum(dim=1) / mask.sum(dim=1, keepdim=True).clamp(min=1.0)


class MaskedFillEncoder(nn.Module):
    """Boolean attention masks as Hugging Face's BERT writes them: the 4-D bias from
    ``inverted.masked_fill(inverted.bool(), finfo.min)`` with ``inverted = 1 - mask``; a second head
    masked with ``scores.masked_fill(mask == 0, -inf)`` and the pooled mean through ``torch.where``."""

    def __init__(self, vocab=30, seq=10, dim=16):
        super().__init__()
        self.tok = nn.Embedding(vocab, dim)
        self.ln = nn.LayerNorm(dim)
        self.q, self.k, self.v = nn.Linear(dim, dim), nn.Linear(dim, dim), nn.Linear(dim, dim)

    def forward(self, input_ids, attention_mask):
        x = self.ln(self.tok(input_ids))
        inverted = 1.0 - attention_mask[:, None, None, :].to(x.dtype)
        bias = inverted.masked_fill(inverted.to(torch.bool), torch.finfo(x.dtype).min)
        q, k, v = (f(x).reshape(x.shape[0], -1, 2, 8).permute(0, 2, 1, 3) for f in (self.q, self.k, self.v))
        scores = torch.matmul(q, k.transpose(-1, -2)) * 0.35
        first = torch.softmax(scores[:, :1] + bias, dim=-1)
        second = torch.softmax(scores[:, 1:].masked_fill(attention_mask[:, None, None, :] == 0, float("-inf")), dim=-1)
        ctx = torch.matmul(torch.cat([first, second], dim=1), v).permute(0, 2, 1, 3).flatten(2)
        x = x + ctx
        kept = torch.where(attention_mask[:, :, None] > 0, x, 0.0)
        return kept.sum(dim=1) / attention_mask.to(x.dtype).sum(dim=1, keepdim=True).clamp(min=1.0)


OP_MODELS = {"mobile_ops": (MobileOps, [((3, 17, 17), "float32")]), "token_encoder": (TokenEncoder, [((12,), "int64")]),
             "masked_encoder": (MaskedEncoder, [((10,), "int64"), ((10,), "int64")]),
             "masked_fill_encoder": (MaskedFillEncoder, [((10,), "int64"), ((10,), "int64")])}


def inputs(name: str, n: int, seed: int):
    """Test inputs: an array (one input) or a dict by input name; masks keep 1..seq leading tokens."""
    cls, specs = OP_MODELS[name]
    rng = np.random.default_rng(seed)
    if name in ("masked_encoder", "masked_fill_encoder"):
        lengths = rng.integers(1, 11, n)
        mask = (np.arange(10)[None, :] < lengths[:, None]).astype(np.int64)
        return {"input_ids": rng.integers(0, 30, (n, 10)).astype(np.int64), "attention_mask": mask}
    (shape, dtype), = specs
    if dtype == "int64":
        return rng.integers(0, 30, (n, *shape)).astype(np.int64)
    return rng.standard_normal((n, *shape)).astype(np.float32)


@functools.lru_cache(maxsize=None)
def op_case(name: str):
    """(torch module, float graph, quantized graph, test inputs) of an op model with seeded weights."""
    from edgefleet.compress.capture import capture
    from edgefleet.compress.ir import QuantConfig, quantize_graph

    cls, specs = OP_MODELS[name]
    torch.manual_seed(0)
    model = cls().eval()
    graph = capture(model, [s for s, _ in specs], input_dtype=[d for _, d in specs])
    qgraph = quantize_graph(graph, [inputs(name, 16, 1)], QuantConfig(method="minmax"))
    return model, graph, qgraph, inputs(name, 4, 2)
