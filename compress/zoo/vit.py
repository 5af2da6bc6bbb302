"""A small Vision Transformer (Dosovitskiy et al. 2021): patch embedding, class token, learned
position embeddings, pre-norm encoder layers (multi-head attention, GELU MLP), head on the class token.

At ``width=1.0`` it is ViT-Tiny (192 wide, 3 heads, 12 layers, 5.7M parameters at 224 x 224 with 16 x 16
patches); ``width`` scales the embedding width (heads kept), ``depth`` sets the layer count.
"""

from __future__ import annotations

import torch
from torch import nn


class _Attention(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads, self.head_dim = heads, dim // heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        b, n, d = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        att = torch.softmax(torch.matmul(q, k.transpose(-2, -1)) * self.head_dim ** -0.5, dim=-1)
        return self.proj(torch.matmul(att, v).transpose(1, 2).reshape(b, n, d))


class _Layer(nn.Module):
    def __init__(self, dim: int, heads: int, mlp: int):
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(dim, eps=1e-6), nn.LayerNorm(dim, eps=1e-6)
        self.attn = _Attention(dim, heads)
        self.mlp = nn.Sequential(nn.Linear(dim, mlp), nn.GELU(), nn.Linear(mlp, dim))

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class ViT(nn.Module):
    def __init__(self, image_size: int = 224, patch: int = 16, dim: int = 192, depth: int = 12, heads: int = 3,
                 num_classes: int = 1000):
        super().__init__()
        if image_size % patch:
            raise ValueError(f"image size {image_size} is not a multiple of the patch size {patch}")
        self.patch_embed = nn.Conv2d(3, dim, patch, patch)
        tokens = (image_size // patch) ** 2
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.randn(1, tokens + 1, dim) * 0.02)
        self.layers = nn.Sequential(*[_Layer(dim, heads, 4 * dim) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.head = nn.Linear(dim, num_classes)

    def forward(self, x):
        x = self.patch_embed(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1) + self.pos_embed
        x = self.norm(self.layers(x))
        return self.head(x[:, 0])


def vit_tiny(width: float = 1.0, depth: int = 12, image_size: int = 224, patch: int = 16,
             num_classes: int = 1000) -> nn.Module:
    """ViT-Tiny/16 at ``width=1.0``; the embedding width is ``192 * width`` rounded to the 3 heads."""
    heads = 3
    dim = max(heads * 8, int(round(192 * width / (heads * 8))) * heads * 8)
    return ViT(image_size, patch, dim, depth, heads, num_classes)
