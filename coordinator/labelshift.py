"""Label-shift correction from sketches alone (pure Python): black-box shift estimation (BBSE).

Under a pure label shift, ``p(x | y)`` is unchanged and only the class priors move. With the bundle's
validation confusion counts ``C[i][j]`` (predicted ``i``, true ``j``) turned into a joint distribution,
the cohort's predicted-class proportions ``mu`` satisfy ``mu = C w``, where ``w_j = q(y=j) / p(y=j)`` is
the ratio of new to reference priors. Solving for ``w`` needs only the predicted-class counts the
devices already send. The correction is then Bayes' rule: ``q(y|x) ∝ p(y|x) w_y``, i.e. adding
``T · log w_y`` to the logits (``T`` the bundle's temperature), which the devices do. No raw input moves.

>>> c = [[90, 10], [10, 90]]                      # a 90 %-accurate two-class model
>>> w = bbse_weights(c, [0.26, 0.74])              # predicted 26 % / 74 % after the shift
>>> [round(v, 2) for v in w]
[0.4, 1.6]
"""

from __future__ import annotations

import math
from typing import Sequence

__all__ = ["bbse_weights", "logit_bias", "estimate_priors", "class_recalls"]

_MIN_WEIGHT = 1e-3


def class_recalls(confusion: Sequence[Sequence[float]]) -> list[tuple[float, int]]:
    """Each class's validation recall as ``(correct, n)`` from the confusion counts ``C[i][j]``
    (predicted ``i``, true ``j``). Under a pure label shift the accuracy is a mix of these recalls
    weighted by the new priors, so it can never fall below the lowest of them.

    >>> class_recalls([[90, 20], [10, 80]])
    [(90, 100), (80, 100)]
    """
    return [(confusion[j][j], sum(row[j] for row in confusion)) for j in range(len(confusion))]


def _solve(a: list[list[float]], b: list[float]) -> list[float]:
    """Gaussian elimination with partial pivoting (small dense systems)."""
    n = len(b)
    m = [row[:] + [rhs] for row, rhs in zip(a, b)]
    for col in range(n):
        pivot = max(range(col, n), key=lambda r: abs(m[r][col]))
        if abs(m[pivot][col]) < 1e-15:
            raise ValueError("singular system")
        m[col], m[pivot] = m[pivot], m[col]
        for r in range(col + 1, n):
            f = m[r][col] / m[col][col]
            if f:
                for k in range(col, n + 1):
                    m[r][k] -= f * m[col][k]
    x = [0.0] * n
    for r in range(n - 1, -1, -1):
        x[r] = (m[r][n] - sum(m[r][k] * x[k] for k in range(r + 1, n))) / m[r][r]
    return x


def bbse_weights(confusion: Sequence[Sequence[int]], predicted: Sequence[float], ridge: float = 1e-4) -> list[float]:
    """Prior ratios ``w`` (new / reference) from confusion counts ``[predicted][true]`` and the new
    predicted-class counts or proportions. Ridge-regularised towards ``w = 1`` (no shift), clipped
    to stay positive and renormalised so that the new priors sum to one."""
    n = len(confusion)
    if n < 2 or any(len(r) != n for r in confusion) or len(predicted) != n:
        raise ValueError(f"confusion must be {len(predicted)}x{len(predicted)} and match the predicted counts")
    total = float(sum(sum(r) for r in confusion))
    seen = float(sum(predicted))
    if total <= 0 or seen <= 0:
        raise ValueError("empty confusion matrix or no predictions")
    c = [[v / total for v in row] for row in confusion]
    mu = [v / seen for v in predicted]
    # normal equations (C^T C + ridge I) w = C^T mu + ridge 1
    ata = [[sum(c[k][i] * c[k][j] for k in range(n)) + (ridge if i == j else 0.0) for j in range(n)] for i in range(n)]
    atb = [sum(c[k][i] * mu[k] for k in range(n)) + ridge for i in range(n)]
    w = [max(v, _MIN_WEIGHT) for v in _solve(ata, atb)]
    prior = [sum(c[k][j] for k in range(n)) for j in range(n)]
    mass = sum(wj * pj for wj, pj in zip(w, prior))
    return [wj / mass for wj in w]


def estimate_priors(confusion: Sequence[Sequence[int]], predicted: Sequence[float]) -> list[float]:
    """The new class priors ``q(y)`` (sum to one)."""
    w = bbse_weights(confusion, predicted)
    total = float(sum(sum(r) for r in confusion))
    prior = [sum(r[j] for r in confusion) / total for j in range(len(confusion))]
    return [wj * pj for wj, pj in zip(w, prior)]


def logit_bias(weights: Sequence[float], temperature: float = 1.0) -> list[float]:
    """The per-class bias to add to the logits so that the calibrated posterior is reweighted by ``w``."""
    return [round(temperature * math.log(max(w, _MIN_WEIGHT)), 6) for w in weights]
