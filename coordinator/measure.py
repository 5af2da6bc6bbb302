"""Measuring what a decision did: realized accuracy from feedback labels with a Wilson interval, and
the drift engine's label-free estimate where labels are scarce (pure Python).

Every label carries the policy revision its prediction was served under, and revisions only grow,
so "the cohort's accuracy since decision D" is the labels with ``policy_revision >= D.revision``,
and "before D" those in ``[previous decision's revision, D.revision)``: no clock, no guessing which
predictions a late label belongs to.

>>> lo, hi = wilson(90, 100)
>>> round(lo, 3), round(hi, 3)
(0.826, 0.945)
"""

from __future__ import annotations

import math

__all__ = ["wilson", "accuracy_between", "MIN_LABELS_FOR_ACCURACY"]

#: below this many labels a measurement falls back on the label-free estimate
MIN_LABELS_FOR_ACCURACY = 30


def wilson(correct: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval of a binomial proportion (95 % by default); (0, 1) without data."""
    if n <= 0:
        return 0.0, 1.0
    p = correct / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def accuracy_between(store, cohort: str, from_revision: int, to_revision: int | None = None,
                     estimate: float | None = None, last: int | None = None, model_version: str = "") -> dict:
    """The cohort's accuracy on predictions served under revisions ``[from, to)``: from labels when
    there are at least ``MIN_LABELS_FOR_ACCURACY`` of them (with their interval), else ``estimate``
    (the label-free one) with ``source = "estimate"``. ``last``: only the most recent labels;
    ``model_version``: only predictions that version served (one arm of a canary)."""
    n, correct = store.label_stats_between(cohort, from_revision, to_revision, last, model_version=model_version)
    lo, hi = wilson(correct, n)
    out = {"labels": n, "correct": correct, "label_accuracy": round(correct / n, 6) if n else None,
           "interval": [round(lo, 6), round(hi, 6)], "estimate": estimate,
           "from_revision": from_revision, "to_revision": to_revision}
    if n >= MIN_LABELS_FOR_ACCURACY:
        out.update(accuracy=out["label_accuracy"], source="labels")
    else:
        out.update(accuracy=estimate, source="estimate")
    return out
