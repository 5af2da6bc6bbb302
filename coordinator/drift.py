"""Drift statistics on merged sketches against a bundle's monitoring reference (pure Python).

- :func:`merge_windows` sums the windows of one (model version, cohort): counts add bin by bin.
- :func:`chi2_test`: Pearson's chi-squared test of the merged predicted-class counts against the
  reference class proportions (reference smoothed by +0.5 per bin so an empty reference bin cannot
  give an infinite statistic); returns the statistic, degrees of freedom and p-value.
- :func:`psi`: population stability index ``sum((a - r) * ln(a / r))`` of two histograms turned into
  proportions (each bin floored at 1e-4).
- :func:`drift_report` puts these together for one merged sketch: the class test, PSI of the
  confidence histogram and of each input projection, and the label-free accuracy estimate (mean
  calibrated confidence).

Calibrated false-alarm control (multiple testing, repeated looks) is a later issue: here the policy
rules' thresholds decide.

>>> round(psi([50, 50], [50, 50]), 6)
0.0
>>> chi2_test([10, 10], [5, 5])["p_value"] > 0.9
True
"""

from __future__ import annotations

import math
from typing import Iterable, Sequence

__all__ = ["merge_windows", "chi2_test", "chi2_sf", "psi", "drift_report"]

_PSI_FLOOR = 1e-4


def merge_windows(windows: Iterable[dict]) -> dict:
    """Sum a sequence of window dicts (as stored) into one merged sketch."""
    merged: dict = {"windows": 0, "count": 0, "class_counts": None, "confidence": None, "projections": None,
                    "latency": None, "errors": {}, "confidence_sum": 0.0, "shadow_count": 0, "shadow_agree": 0,
                    "devices": set(), "artifacts": {}}
    for w in windows:
        merged["windows"] += 1
        merged["count"] += w["count"]
        merged["confidence_sum"] += w.get("confidence_sum", 0.0)
        merged["shadow_count"] += w.get("shadow_count", 0)
        merged["shadow_agree"] += w.get("shadow_agree", 0)
        if "device_id" in w:
            merged["devices"].add(w["device_id"])
        merged["artifacts"][w.get("artifact", "")] = merged["artifacts"].get(w.get("artifact", ""), 0) + w["count"]
        merged["class_counts"] = _add(merged["class_counts"], w["class_counts"])
        merged["confidence"] = _add(merged["confidence"], w["confidence"])
        merged["latency"] = _add(merged["latency"], w.get("latency") or [])
        projections = w.get("projections") or []
        if merged["projections"] is None:
            merged["projections"] = [list(p) for p in projections]
        else:
            merged["projections"] = [_add(a, b) for a, b in zip(merged["projections"], projections)]
        for kind, n in (w.get("errors") or {}).items():
            merged["errors"][kind] = merged["errors"].get(kind, 0) + n
    merged["devices"] = len(merged["devices"])
    return merged


def _add(acc: list | None, counts: Sequence[int]) -> list:
    if acc is None:
        return list(counts)
    if len(acc) != len(counts):
        raise ValueError(f"cannot merge histograms of {len(acc)} and {len(counts)} bins")
    return [a + b for a, b in zip(acc, counts)]


def chi2_sf(x: float, dof: int) -> float:
    """Survival function of the chi-squared distribution: the regularised upper incomplete gamma
    Q(dof/2, x/2), by series or continued fraction (Numerical Recipes 6.2)."""
    if x <= 0:
        return 1.0
    a, z = dof / 2.0, x / 2.0
    gln = math.lgamma(a)
    if z < a + 1:
        term = total = 1.0 / a
        ap = a
        for _ in range(1000):
            ap += 1
            term *= z / ap
            total += term
            if abs(term) < abs(total) * 1e-15:
                break
        return max(0.0, 1.0 - total * math.exp(-z + a * math.log(z) - gln))
    b = z + 1 - a
    c, d = 1e300, 1 / b
    h = d
    for i in range(1, 1000):
        an = -i * (i - a)
        b += 2
        d = an * d + b
        d = 1e-300 if abs(d) < 1e-300 else d
        c = b + an / c
        c = 1e-300 if abs(c) < 1e-300 else c
        d = 1 / d
        delta = d * c
        h *= delta
        if abs(delta - 1) < 1e-15:
            break
    return min(1.0, math.exp(-z + a * math.log(z) - gln) * h)


def chi2_test(observed: Sequence[int], reference: Sequence[int]) -> dict:
    """Chi-squared goodness of fit of ``observed`` counts to the ``reference`` proportions."""
    if len(observed) != len(reference):
        raise ValueError(f"{len(observed)} observed bins but {len(reference)} reference bins")
    n = sum(observed)
    smoothed = [r + 0.5 for r in reference]
    total = sum(smoothed)
    if n == 0 or len(observed) < 2:
        return {"statistic": 0.0, "dof": max(len(observed) - 1, 1), "p_value": 1.0, "n": n}
    stat = sum((o - n * r / total) ** 2 / (n * r / total) for o, r in zip(observed, smoothed))
    dof = len(observed) - 1
    return {"statistic": stat, "dof": dof, "p_value": chi2_sf(stat, dof), "n": n}


def psi(observed: Sequence[int], reference: Sequence[int]) -> float:
    """Population stability index of two histograms over the same bins."""
    if len(observed) != len(reference):
        raise ValueError(f"{len(observed)} observed bins but {len(reference)} reference bins")
    n_o, n_r = sum(observed), sum(reference)
    if n_o == 0 or n_r == 0:
        return 0.0
    total = 0.0
    for o, r in zip(observed, reference):
        a, b = max(o / n_o, _PSI_FLOOR), max(r / n_r, _PSI_FLOOR)
        total += (a - b) * math.log(a / b)
    return total


def drift_report(merged: dict, monitoring: dict) -> dict:
    """Drift statistics of one merged sketch against a bundle's ``manifest["monitoring"]``."""
    classes = chi2_test(merged["class_counts"], monitoring["class_counts"])
    psi_conf = psi(merged["confidence"], monitoring["confidence"]["counts"])
    ref_hists = monitoring["projection"]["histograms"]
    psi_proj = [psi(o, r["counts"]) for o, r in zip(merged["projections"] or [], ref_hists)]
    n = merged["count"]
    errors = sum(merged["errors"].values())
    return {
        "windows": merged["windows"], "devices": merged["devices"], "samples": n,
        "chi2": round(classes["statistic"], 4), "chi2_dof": classes["dof"], "chi2_p": classes["p_value"],
        "psi_confidence": round(psi_conf, 6), "psi_projections": [round(v, 6) for v in psi_proj],
        "psi_max": round(max([psi_conf, *psi_proj]), 6),
        "estimated_accuracy": round(merged["confidence_sum"] / n, 6) if n else None,
        "error_rate": round(errors / n, 6) if n else 0.0,
        "shadow_agreement": (round(merged["shadow_agree"] / merged["shadow_count"], 6)
                             if merged["shadow_count"] else None),
        "artifacts": merged["artifacts"],
    }
