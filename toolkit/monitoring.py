"""The monitoring reference (a bundle's ``manifest["monitoring"]``): what "normal" looked like on the
validation data at export time, in forms a device computes without numpy. ``docs/telemetry.md`` is the
specification; the arithmetic (binning rule, softmax, projection) is defined once in
:mod:`edgefleet.telemetry` and re-exported here.

- ``class_counts``: how often each class was predicted (top-1 of the logits);
- ``confidence``: a histogram of the calibrated top-1 confidence ``max(softmax(logits / T))``;
- ``class_confidence`` (telemetry schema 2): per class ``c``, a histogram of ``ln softmax(logits / T)[c]``;
- ``projection``: ``k`` projections ``z = components @ (v - mean)`` each with a histogram, where ``v``
  is the model's logits (``space: "logits"``) or the flattened model input (``space: "input"``, the
  schema-1 default);
- ``temperature``: ``T``, fitted on the validation data (negative log-likelihood);
- ``accuracy`` (optional): the label-free estimator's parameters (``atc_threshold``: the confidence
  above which the share of predictions equals the validation accuracy; one of the confidence edges).

>>> confidence([2.0, 0.0, 0.0], temperature=1.0) > 0.78
True
>>> bin_index([0.0, 0.5, 1.0], 0.7)
1
"""

from __future__ import annotations

from typing import Sequence

from .telemetry import argmax, bin_index, log_softmax, project, softmax

__all__ = ["softmax", "log_softmax", "confidence", "argmax", "bin_index", "project"]


def confidence(logits: Sequence[float], temperature: float = 1.0) -> float:
    """Calibrated top-1 confidence of one row of logits."""
    return max(softmax(logits, temperature))
