"""The monitoring reference's arithmetic, in pure Python (runs on devices and under Pyodide).

A bundle's ``manifest["monitoring"]`` holds what "normal" looked like on the validation data at
export time; a device computes the same quantities on live traffic and sends their counts:

- ``class_counts``: how often each class was predicted (top-1 of the logits);
- ``confidence``: a histogram of the calibrated top-1 confidence ``max(softmax(logits / T))``;
- ``projection``: ``k`` input projections ``z = components @ (x.flatten() - mean)`` (PCA of the
  validation inputs), each with a histogram;
- ``temperature``: ``T``, fitted on the validation data so that mean confidence estimates accuracy.

Other tasks fill the same sections with their own meaning (:func:`summarize`): an ``embedding``'s
"class" is its nearest reference centroid (``centroids``, unit vectors) and its "confidence" the
cosine to it; a ``regression``'s "class" is the quantile bin of its first output among the reference
``quantiles`` and its "confidence" that output's rank in ``[0, 1]`` (uniform while nothing drifts).
Their projections are of the model's output (``projection.of == "output"``), since token ids carry
no geometry.

Histogram rule, shared by export and devices: ``edges`` are strictly increasing; a value ``v`` falls
in bin ``i`` when ``edges[i] <= v < edges[i+1]``; values below ``edges[0]`` count in the first bin and
values at or above ``edges[-1]`` in the last one, so no observation is ever dropped.

>>> confidence([2.0, 0.0, 0.0], temperature=1.0) > 0.78
True
>>> bin_index([0.0, 0.5, 1.0], 0.7)
1
"""

from __future__ import annotations

import bisect
import math
from typing import Sequence


def softmax(logits: Sequence[float], temperature: float = 1.0) -> list[float]:
    scaled = [v / temperature for v in logits]
    top = max(scaled)
    exps = [math.exp(v - top) for v in scaled]
    total = sum(exps)
    return [e / total for e in exps]


def confidence(logits: Sequence[float], temperature: float = 1.0) -> float:
    """Calibrated top-1 confidence of one row of logits."""
    return max(softmax(logits, temperature))


def argmax(values: Sequence[float]) -> int:
    best = 0
    for i, v in enumerate(values):
        if v > values[best]:
            best = i
    return best


def bin_index(edges: Sequence[float], value: float) -> int:
    """Histogram bin of ``value`` under the rule in this module's docstring."""
    i = bisect.bisect_right(edges, value) - 1
    return min(max(i, 0), len(edges) - 2)


def project(x_flat: Sequence[float], mean: Sequence[float], components: Sequence[Sequence[float]]) -> list[float]:
    """The k input projections of one flattened input."""
    centred = [a - b for a, b in zip(x_flat, mean)]
    return [sum(c * v for c, v in zip(row, centred)) for row in components]


def summarize(ref: dict, output: Sequence[float]) -> tuple[int, float]:
    """(class, confidence) of one output row under a monitoring reference, for its task ``kind``."""
    kind = ref.get("kind", "classifier")
    if kind == "embedding":
        norm = math.sqrt(sum(v * v for v in output)) or 1.0
        sims = [sum(c * v for c, v in zip(row, output)) / norm for row in ref["centroids"]]
        best = argmax(sims)
        return best, min(max(sims[best], 0.0), 1.0)
    if kind == "regression":
        q = ref["quantiles"]
        rank = bisect.bisect_right(q, output[0])
        return rank, rank / len(q)
    probs = softmax(list(output), ref["temperature"])
    best = argmax(probs)
    return best, probs[best]
