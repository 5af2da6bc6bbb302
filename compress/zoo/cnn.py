"""The mobile and server CNN families, written from their papers' layer tables.

- MobileNetV2 (inverted residuals, ReLU6), MobileNetV3-Small (hardswish, squeeze-excitation with
  hardsigmoid), EfficientNet-B0 (SiLU, squeeze-excitation with sigmoid, TensorFlow "same" padding:
  asymmetric on stride 2, as in checkpoints ported from TF), ResNet-18 (basic blocks).
- ``width`` scales every channel count (rounded to a multiple of 8, as the papers do); ``depth``
  (EfficientNet) scales the block repeats. ``num_classes`` sets the head. The networks take any input
  size the strides allow (224 x 224 in the papers) and end in global average pooling.

>>> model = mobilenet_v2(width=0.25, num_classes=10)       # doctest: +SKIP
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def _divisible(v: float, divisor: int = 8) -> int:
    """Round a channel count to a multiple of ``divisor`` without losing more than 10%."""
    new = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return new + divisor if new < 0.9 * v else new


def _conv_bn(cin: int, cout: int, k: int, stride: int = 1, groups: int = 1, act: type | None = nn.ReLU,
             padding: int | None = None) -> nn.Sequential:
    layers = [nn.Conv2d(cin, cout, k, stride, k // 2 if padding is None else padding, groups=groups, bias=False),
              nn.BatchNorm2d(cout)]
    if act is not None:
        layers.append(act())
    return nn.Sequential(*layers)


class SqueezeExcite(nn.Module):
    """Global average pool -> 1x1 reduce -> act -> 1x1 expand -> gate -> channel-wise multiply."""

    def __init__(self, channels: int, squeezed: int, act: type = nn.ReLU, gate: type = nn.Hardsigmoid):
        super().__init__()
        self.reduce = nn.Conv2d(channels, squeezed, 1)
        self.act = act()
        self.expand = nn.Conv2d(squeezed, channels, 1)
        self.gate = gate()

    def forward(self, x):
        s = F.adaptive_avg_pool2d(x, 1)
        return x * self.gate(self.expand(self.act(self.reduce(s))))


# -- MobileNetV2 ---------------------------------------------------------------------------------
class InvertedResidual(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, expand: int):
        super().__init__()
        hidden = cin * expand
        layers = [] if expand == 1 else [_conv_bn(cin, hidden, 1, act=nn.ReLU6)]
        layers += [_conv_bn(hidden, hidden, 3, stride, groups=hidden, act=nn.ReLU6), _conv_bn(hidden, cout, 1, act=None)]
        self.block = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x):
        return x + self.block(x) if self.residual else self.block(x)


#: MobileNetV2's table: (expansion, channels, repeats, first stride)
_MOBILENET_V2 = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))


class MobileNetV2(nn.Module):
    def __init__(self, width: float = 1.0, num_classes: int = 1000, dropout: float = 0.2):
        super().__init__()
        cin = _divisible(32 * width)
        last = _divisible(1280 * max(1.0, width))
        layers = [_conv_bn(3, cin, 3, 2, act=nn.ReLU6)]
        for t, c, n, s in _MOBILENET_V2:
            cout = _divisible(c * width)
            for i in range(n):
                layers.append(InvertedResidual(cin, cout, s if i == 0 else 1, t))
                cin = cout
        layers.append(_conv_bn(cin, last, 1, act=nn.ReLU6))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(last, num_classes))

    def forward(self, x):
        return self.classifier(torch.flatten(F.adaptive_avg_pool2d(self.features(x), 1), 1))


def mobilenet_v2(width: float = 1.0, num_classes: int = 1000) -> nn.Module:
    """MobileNetV2 (Sandler et al. 2018), 3.5M parameters at width 1.0 and 1000 classes."""
    return MobileNetV2(width, num_classes)


# -- MobileNetV3-Small -----------------------------------------------------------------------------
class _V3Block(nn.Module):
    def __init__(self, cin: int, k: int, hidden: int, cout: int, se: bool, act: type, stride: int):
        super().__init__()
        layers = [] if hidden == cin else [_conv_bn(cin, hidden, 1, act=act)]
        layers.append(_conv_bn(hidden, hidden, k, stride, groups=hidden, act=act))
        if se:
            layers.append(SqueezeExcite(hidden, _divisible(hidden / 4), nn.ReLU, nn.Hardsigmoid))
        layers.append(_conv_bn(hidden, cout, 1, act=None))
        self.block = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x):
        return x + self.block(x) if self.residual else self.block(x)


#: MobileNetV3-Small's table: (kernel, expanded, out, squeeze-excite, hardswish, stride)
_MOBILENET_V3_SMALL = (
    (3, 16, 16, True, False, 2), (3, 72, 24, False, False, 2), (3, 88, 24, False, False, 1),
    (5, 96, 40, True, True, 2), (5, 240, 40, True, True, 1), (5, 240, 40, True, True, 1),
    (5, 120, 48, True, True, 1), (5, 144, 48, True, True, 1), (5, 288, 96, True, True, 2),
    (5, 576, 96, True, True, 1), (5, 576, 96, True, True, 1))


class MobileNetV3Small(nn.Module):
    def __init__(self, width: float = 1.0, num_classes: int = 1000, dropout: float = 0.2):
        super().__init__()
        cin = _divisible(16 * width)
        layers = [_conv_bn(3, cin, 3, 2, act=nn.Hardswish)]
        for k, exp, out, se, hs, s in _MOBILENET_V3_SMALL:
            cout = _divisible(out * width)
            layers.append(_V3Block(cin, k, _divisible(exp * width), cout, se, nn.Hardswish if hs else nn.ReLU, s))
            cin = cout
        last = _divisible(576 * width)
        layers.append(_conv_bn(cin, last, 1, act=nn.Hardswish))
        self.features = nn.Sequential(*layers)
        head = 1024  # the paper keeps the head width fixed
        self.classifier = nn.Sequential(nn.Linear(last, head), nn.Hardswish(), nn.Dropout(dropout),
                                        nn.Linear(head, num_classes))

    def forward(self, x):
        return self.classifier(torch.flatten(F.adaptive_avg_pool2d(self.features(x), 1), 1))


def mobilenet_v3_small(width: float = 1.0, num_classes: int = 1000) -> nn.Module:
    """MobileNetV3-Small (Howard et al. 2019), 2.5M parameters at width 1.0 and 1000 classes."""
    return MobileNetV3Small(width, num_classes)


# -- EfficientNet-B0 -----------------------------------------------------------------------------
class Conv2dSame(nn.Conv2d):
    """A convolution with TensorFlow's "same" padding: output size ``ceil(input / stride)``, the odd
    pixel of padding on the bottom/right (asymmetric for even inputs at stride 2)."""

    def forward(self, x):
        pads = []
        for size, k, s, d in zip(x.shape[-2:], self.kernel_size, self.stride, self.dilation):
            total = max((math.ceil(size / s) - 1) * s + (k - 1) * d + 1 - size, 0)
            pads.append((total // 2, total - total // 2))
        (top, bottom), (left, right) = pads
        if top or bottom or left or right:
            x = F.pad(x, (left, right, top, bottom))
        return F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


def _conv_bn_same(cin: int, cout: int, k: int, stride: int = 1, groups: int = 1, act: type | None = nn.SiLU):
    layers = [Conv2dSame(cin, cout, k, stride, groups=groups, bias=False), nn.BatchNorm2d(cout, eps=1e-3)]
    if act is not None:
        layers.append(act())
    return nn.Sequential(*layers)


class MBConv(nn.Module):
    def __init__(self, cin: int, cout: int, k: int, stride: int, expand: int):
        super().__init__()
        hidden = cin * expand
        layers = [] if expand == 1 else [_conv_bn_same(cin, hidden, 1)]
        layers += [_conv_bn_same(hidden, hidden, k, stride, groups=hidden),
                   SqueezeExcite(hidden, max(1, cin // 4), nn.SiLU, nn.Sigmoid),
                   _conv_bn_same(hidden, cout, 1, act=None)]
        self.block = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x):
        return x + self.block(x) if self.residual else self.block(x)


#: EfficientNet-B0's table: (expansion, kernel, first stride, channels, repeats)
_EFFICIENTNET_B0 = ((1, 3, 1, 16, 1), (6, 3, 2, 24, 2), (6, 5, 2, 40, 2), (6, 3, 2, 80, 3), (6, 5, 1, 112, 3),
                    (6, 5, 2, 192, 4), (6, 3, 1, 320, 1))


class EfficientNet(nn.Module):
    def __init__(self, width: float = 1.0, depth: float = 1.0, num_classes: int = 1000, dropout: float = 0.2):
        super().__init__()
        cin = _divisible(32 * width)
        layers = [_conv_bn_same(3, cin, 3, 2)]
        for t, k, s, c, n in _EFFICIENTNET_B0:
            cout = _divisible(c * width)
            for i in range(max(1, math.ceil(n * depth))):
                layers.append(MBConv(cin, cout, k, s if i == 0 else 1, t))
                cin = cout
        last = _divisible(1280 * width)
        layers.append(_conv_bn_same(cin, last, 1))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(last, num_classes))

    def forward(self, x):
        return self.classifier(torch.flatten(F.adaptive_avg_pool2d(self.features(x), 1), 1))


def efficientnet_b0(width: float = 1.0, depth: float = 1.0, num_classes: int = 1000) -> nn.Module:
    """EfficientNet-B0 (Tan & Le 2019) with TF "same" padding, 5.3M parameters at width/depth 1.0."""
    return EfficientNet(width, depth, num_classes)


# -- ResNet-18 -----------------------------------------------------------------------------------
class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.body = nn.Sequential(_conv_bn(cin, cout, 3, stride), _conv_bn(cout, cout, 3, act=None))
        self.shortcut = _conv_bn(cin, cout, 1, stride, act=None, padding=0) if stride != 1 or cin != cout else None
        self.act = nn.ReLU()

    def forward(self, x):
        return self.act(self.body(x) + (x if self.shortcut is None else self.shortcut(x)))


class ResNet18(nn.Module):
    def __init__(self, width: float = 1.0, num_classes: int = 1000):
        super().__init__()
        widths = [max(8, int(round(c * width))) for c in (64, 128, 256, 512)]
        self.stem = nn.Sequential(_conv_bn(3, widths[0], 7, 2, padding=3), nn.MaxPool2d(3, 2, 1))
        blocks, cin = [], widths[0]
        for i, c in enumerate(widths):
            blocks += [BasicBlock(cin, c, 1 if i == 0 else 2), BasicBlock(c, c, 1)]
            cin = c
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(cin, num_classes)

    def forward(self, x):
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(self.blocks(self.stem(x)), 1), 1))


def resnet18(width: float = 1.0, num_classes: int = 1000) -> nn.Module:
    """ResNet-18 (He et al. 2016), 11.7M parameters at width 1.0 and 1000 classes."""
    return ResNet18(width, num_classes)
