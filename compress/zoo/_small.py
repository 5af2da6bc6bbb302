"""Small reference models used by the demo, tests and benchmarks (each a ``factory()`` -> ``nn.Module``).

``edgefleet export --model edgefleet.compress.zoo:digits_cnn`` works with any of them.
"""

from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["digits_cnn", "mlp", "fashion_mlp", "mobilenet_v2_stack", "bert_encoder", "INPUT_SHAPES"]

#: input shape (without the batch axis) of each zoo model
INPUT_SHAPES = {"digits_cnn": (1, 8, 8), "mlp": (784,), "fashion_mlp": (784,), "mobilenet_v2_stack": (3, 96, 96),
                "bert_encoder": (128, 384)}


class DigitsCNN(nn.Module):
    """A small CNN for 8x8 digit images (scikit-learn's digits): conv-bn-relu x2, pool, 2 linear."""

    def __init__(self, width: int = 32, hidden: int = 128, num_classes: int = 10):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU(),
            nn.Conv2d(width, 2 * width, 3, padding=1, bias=False), nn.BatchNorm2d(2 * width), nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(2 * width * 16, hidden), nn.ReLU(),
                                        nn.Dropout(0.2), nn.Linear(hidden, num_classes))

    def forward(self, x):
        return self.classifier(self.features(x))


def digits_cnn(width: int = 32, hidden: int = 128) -> nn.Module:
    return DigitsCNN(width, hidden)


def mlp(sizes: tuple[int, ...] = (784, 1024, 1024, 10)) -> nn.Module:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes, sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def fashion_mlp() -> nn.Module:
    """A 784-256-128-10 MLP for 28x28 images flattened (Fashion-MNIST in the ladder benchmark)."""
    return mlp((784, 256, 128, 10))


class InvertedResidual(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, expand: int = 6):
        super().__init__()
        hidden = cin * expand
        self.use_res = stride == 1 and cin == cout
        self.block = nn.Sequential(
            nn.Conv2d(cin, hidden, 1, bias=False), nn.BatchNorm2d(hidden), nn.ReLU6(),
            nn.Conv2d(hidden, hidden, 3, stride, 1, groups=hidden, bias=False), nn.BatchNorm2d(hidden), nn.ReLU6(),
            nn.Conv2d(hidden, cout, 1, bias=False), nn.BatchNorm2d(cout),
        )

    def forward(self, x):
        y = self.block(x)
        return x + y if self.use_res else y


class MobileNetV2Stack(nn.Module):
    """A MobileNetV2-style stem + inverted-residual blocks + head, for 96x96 RGB input."""

    def __init__(self, num_classes: int = 10):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, 2, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU6())
        cfg = [(16, 16, 1), (16, 24, 2), (24, 24, 1), (24, 32, 2), (32, 32, 1), (32, 64, 2), (64, 64, 1)]
        self.blocks = nn.Sequential(*[InvertedResidual(a, b, s) for a, b, s in cfg])
        self.head = nn.Sequential(nn.Conv2d(64, 128, 1, bias=False), nn.BatchNorm2d(128), nn.Hardswish(),
                                  nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(128, num_classes))

    def forward(self, x):
        return self.head(self.blocks(self.stem(x)))


def mobilenet_v2_stack(num_classes: int = 10) -> nn.Module:
    return MobileNetV2Stack(num_classes)


class EncoderLayer(nn.Module):
    """A post-norm BERT encoder layer written with plain ops (linear, matmul, softmax, layer norm, GELU)."""

    def __init__(self, hidden: int = 384, heads: int = 6, ffn: int = 1536):
        super().__init__()
        self.heads, self.head_dim = heads, hidden // heads
        self.q, self.k, self.v, self.o = (nn.Linear(hidden, hidden) for _ in range(4))
        self.ln1, self.ln2 = nn.LayerNorm(hidden), nn.LayerNorm(hidden)
        self.ff1, self.ff2 = nn.Linear(hidden, ffn), nn.Linear(ffn, hidden)
        self.act = nn.GELU()

    def _split(self, x):
        b, s, _ = x.shape
        return x.reshape(b, s, self.heads, self.head_dim).permute(0, 2, 1, 3)

    def forward(self, x):
        b, s, h = x.shape
        q, k, v = self._split(self.q(x)), self._split(self.k(x)), self._split(self.v(x))
        att = torch.softmax(torch.matmul(q, k.transpose(-1, -2)) * (1.0 / math.sqrt(self.head_dim)), dim=-1)
        ctx = torch.matmul(att, v).permute(0, 2, 1, 3).reshape(b, s, h)
        x = self.ln1(x + self.o(ctx))
        return self.ln2(x + self.ff2(self.act(self.ff1(x))))


class BertEncoder(nn.Module):
    """Two encoder layers over already-embedded tokens ``[N, seq, hidden]``; returns the hidden states."""

    def __init__(self, layers: int = 2, hidden: int = 384, heads: int = 6):
        super().__init__()
        self.layers = nn.Sequential(*[EncoderLayer(hidden, heads, 4 * hidden) for _ in range(layers)])

    def forward(self, x):
        return self.layers(x)


def bert_encoder(layers: int = 2, hidden: int = 384, heads: int = 6) -> nn.Module:
    return BertEncoder(layers, hidden, heads)
