"""The monitoring reference (a bundle's ``manifest["monitoring"]``): what "normal" looked like on the
validation data at export time, in forms a device computes without numpy. ``docs/telemetry.md`` is the
specification; the arithmetic (binning rule, softmax, projection, each task's class and confidence)
is defined once in :mod:`edgefleet.telemetry` and re-exported here.

- ``kind``: the task (``classifier`` when absent, ``embedding``, ``regression``);
- ``class_counts``: how often each class was predicted (top-1 of the logits);
- ``confidence``: a histogram of the calibrated top-1 confidence ``max(softmax(logits / T))``;
- ``class_confidence`` (telemetry schema 2): per class ``c``, a histogram of ``ln softmax(logits / T)[c]``;
- ``projection``: ``k`` projections ``z = components @ (v - mean)`` each with a histogram, where ``v``
  is the model's output row (``space: "logits"`` for a classifier, ``"output"`` for the other tasks)
  or the flattened model input (``space: "input"``, the schema-1 default);
- ``temperature``: ``T``, fitted on the validation data (negative log-likelihood; 1 for other tasks);
- ``accuracy`` (optional, classifiers): the label-free estimator's parameters (``atc_threshold``: the
  confidence above which the share of predictions equals the validation accuracy; one of the
  confidence edges).

Other tasks fill the same sections with their own meaning (:func:`summarize`): an ``embedding``'s
"class" is its nearest reference centroid (``centroids``, unit vectors), its "confidence" the cosine
to it and its ``class_confidence[c]`` the cosine to centroid ``c``; a ``regression``'s "class" is the
quantile bin of its first output among the reference ``quantiles`` and its "confidence" that output's
rank in ``[0, 1]`` (uniform while nothing drifts); it has no ``class_confidence``.

>>> confidence([2.0, 0.0, 0.0], temperature=1.0) > 0.78
True
>>> bin_index([0.0, 0.5, 1.0], 0.7)
1
"""

from __future__ import annotations

from typing import Sequence

from .telemetry import argmax, bin_index, log_softmax, project, softmax, summarize

__all__ = ["softmax", "log_softmax", "confidence", "argmax", "bin_index", "project", "summarize"]


def confidence(logits: Sequence[float], temperature: float = 1.0) -> float:
    """Calibrated top-1 confidence of one row of logits."""
    return max(softmax(logits, temperature))
