"""The drift engine: calibrated tests on pooled sketches, repeated-look control, label-free accuracy.

Everything here reads only the windows' counts (``edgefleet.telemetry``) and the bundle's monitoring
reference; numpy and scipy are used (coordinator side only).

**One look** (:func:`drift_report`) tests a pooled sketch of one (model version, cohort) against the
reference, one *signal* at a time:

- ``class_counts`` (unordered bins): Pearson's chi-squared on the 2 x B table sketch-vs-reference;
- ``confidence``, ``class_confidence[c]``, ``projection[j]`` (ordered bins): the Kolmogorov-Smirnov
  distance between the two binned distributions.

Both are *two-sample* tests: the null is "the sketch and the reference's validation sample come from
one distribution", so the reference's own size counts (359 validation images are not the truth).
The null distribution is conditional on the pooled bin totals (the permutation distribution of the
2 x B table), drawn exactly by Monte Carlo (``draws`` multivariate-hypergeometric tables;
``p = (1 + #{T* >= T}) / (1 + draws)``, valid at every n) when either sample has fewer than
``ASYMPTOTIC_N`` observations or a chi-squared cell expects fewer than 5, and the large-sample
distribution otherwise (chi-squared; Kolmogorov's, conservative on binned data); a statistic beyond
every Monte Carlo draw takes the large-sample tail when it is smaller (so strong evidence can still
reach the small levels of repeated looks). A signal whose bins
do not match the reference, or with nothing observed, is skipped and said so.

Signals are combined per sketch with a weighted Simes test (``p = min_i S q_(i) / i`` over ``q = p / w``;
Benjamini-Hochberg's first rejection): the per-class histograms carry 3/4 of the weight, the class
counts 1/8, the confidence and the projections 1/16 each (:func:`signal_weight`). Across cohorts x
signals, Benjamini-Hochberg (:func:`fdr`). Each signal's
effect size is the total-variation distance between the two binned distributions (0 = identical,
1 = disjoint), reported beside its p-value: "detectable but harmless" is a small effect with a small p.

**Repeated looks** (:class:`Monitor`): windows arrive forever. Each look tests the new block of
windows (at least ``min_samples`` predictions; otherwise they wait for the next look) and the pools
of the last 4 and 16 blocks; every test runs at level ``alpha / (horizon x scales)``, so by the union
bound the chance of any false alarm over ``horizon`` looks is at most ``alpha`` — whatever the
dependence between looks (they share the reference). After an alarm the state is ``drift`` until
``recover_looks`` consecutive looks on post-alarm data each find nothing at level ``recover_p`` (the
new block and the pool of the last 4)
(hysteresis: entering needs overwhelming evidence, leaving needs a run of unremarkable looks); then
``recovered``, and ``ok`` from the next look on.

**Accuracy without labels** (:func:`estimate_accuracy`): ATC (average thresholded confidence, Garg et
al. 2022): the share of predictions whose calibrated confidence is at least the reference's threshold
(an edge of the confidence bins, fitted at export so that the share equals the validation accuracy),
with a 95 % interval from the sketch's and the validation sample's binomial errors. Bundles without the
threshold fall back to the mean calibrated confidence. Embedding and regression bundles get no
accuracy estimate (their "confidence" is a cosine or a rank, ``docs/telemetry.md``); their drift
signals are tested like a classifier's.

>>> r = two_sample([30, 10], [10, 30])
>>> r["p_value"] < 1e-4, round(r["effect"], 2)
(True, 0.5)
>>> simes([0.01, 0.5, 0.9])
0.03
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass

import numpy as np
from scipy import special, stats

from edgefleet.telemetry import TelemetryError, empty_merged, merge_into

__all__ = ["merge_windows", "signals", "two_sample", "simes", "signal_weight", "fdr", "drift_report", "estimate_accuracy",
           "MonitorSettings", "Monitor", "VERDICT_STATES"]

ASYMPTOTIC_N = 5000
DRAWS = 1000
#: the states a verdict can be in (read by the policy engine)
VERDICT_STATES = ("insufficient", "ok", "drift", "recovered")


def merge_windows(windows) -> dict:
    """Pool stored windows (any accepted schema version) of one (model version, cohort)."""
    acc = empty_merged()
    for w in windows:
        merge_into(acc, w)
    acc["devices"] = len(acc["devices"])
    return acc


# -- one signal ---------------------------------------------------------------------------------
def signals(merged: dict, reference: dict) -> tuple[list[tuple[str, list, list, bool]], list[dict]]:
    """([(name, observed counts, reference counts, ordered)], [{signal, reason} skipped])."""
    pairs = [("class_counts", merged.get("class_counts") or [], reference["class_counts"], False),
             ("confidence", merged.get("confidence") or [], reference["confidence"]["counts"], True)]
    for c, h in enumerate(reference.get("class_confidence") or []):
        got = merged.get("class_confidence") or []
        pairs.append((f"class_confidence[{c}]", got[c] if c < len(got) else [], h["counts"], True))
    for j, h in enumerate(reference["projection"]["histograms"]):
        got = merged.get("projections") or []
        pairs.append((f"projection[{j}]", got[j] if j < len(got) else [], h["counts"], True))
    usable, skipped = [], []
    for name, obs, ref, ordered in pairs:
        if not obs or sum(obs) == 0:
            skipped.append({"signal": name, "reason": "nothing observed"})
        elif len(obs) != len(ref):
            skipped.append({"signal": name, "reason": f"{len(obs)} bins but the reference has {len(ref)}"})
        elif sum(ref) == 0:
            skipped.append({"signal": name, "reason": "empty reference"})
        else:
            usable.append((name, list(obs), list(ref), ordered))
    return usable, skipped


def _chi2(x: np.ndarray, t: np.ndarray, n: int, m: int) -> np.ndarray:
    """Pearson's chi-squared of the 2 x B tables with first rows ``x`` (..., B) and column totals t."""
    big_n = n + m
    keep = t > 0
    e = n * t[keep] / big_n
    return (big_n * big_n / (n * m)) * (((x[..., keep] - e) ** 2) / t[keep]).sum(axis=-1)


def _ks(x: np.ndarray, t: np.ndarray, n: int, m: int) -> np.ndarray:
    """Largest distance between the binned CDFs of the first rows ``x`` and the second rows t - x."""
    fx = np.cumsum(x, axis=-1) / n
    fr = np.cumsum(t - x, axis=-1) / m
    return np.abs(fx - fr).max(axis=-1)


def two_sample(observed, reference, *, ordered: bool = False, draws: int = DRAWS) -> dict:
    """Two-sample test of binned counts (sketch vs reference sample); see the module docstring.

    Returns statistic, p_value, method ("permutation" or "asymptotic"), n, n_ref and effect (total
    variation distance)."""
    x = np.asarray(observed, np.int64)
    r = np.asarray(reference, np.int64)
    n, m = int(x.sum()), int(r.sum())
    t = x + r
    stat_fn = _ks if ordered else _chi2
    stat = float(stat_fn(x.astype(np.float64), t.astype(np.float64), n, m))
    effect = 0.5 * float(np.abs(x / n - r / m).sum())
    nonzero = int((t > 0).sum())
    out = {"statistic": round(stat, 6), "n": n, "n_ref": m, "effect": round(effect, 6)}
    if nonzero < 2:
        return {**out, "p_value": 1.0, "method": "degenerate"}
    expected_ok = ordered or (min(n, m) * t[t > 0] / (n + m)).min() >= 5
    if min(n, m) >= ASYMPTOTIC_N and expected_ok:
        return {**out, "p_value": _asymptotic(stat, n, m, nonzero, ordered), "method": "asymptotic"}
    # a reproducible stream per table: the same sketch always gets the same p-value
    rng = np.random.default_rng(zlib.crc32(x.tobytes() + r.tobytes()))
    sims = rng.multivariate_hypergeometric(t, n, size=draws, method="marginals").astype(np.float64)
    null = stat_fn(sims, t.astype(np.float64), n, m)
    exceed = int((null >= stat - 1e-12).sum())
    p = (1 + exceed) / (1 + draws)
    if exceed == 0 and expected_ok:  # beyond the Monte Carlo resolution: the large-sample tail
        tail = _asymptotic(stat, n, m, nonzero, ordered)
        if tail < p:
            return {**out, "p_value": tail, "method": "permutation+asymptotic tail"}
    return {**out, "p_value": p, "method": "permutation"}


def _asymptotic(stat: float, n: int, m: int, nonzero: int, ordered: bool) -> float:
    if ordered:
        return min(1.0, float(special.kolmogorov(math.sqrt(n * m / (n + m)) * stat)))
    return min(1.0, float(stats.chi2.sf(stat, nonzero - 1)))


def simes(pvalues, weights=None) -> float:
    """Simes' combined p-value of a family (valid under independence and positive dependence); with
    ``weights`` (positive, rescaled to mean 1) the weighted version: ``min_i S q_(i) / i`` over the
    sorted ``q_j = p_j / w_j``, so a heavier signal needs less evidence."""
    if not pvalues:
        return 1.0
    s = len(pvalues)
    w = [1.0] * s if weights is None else [v * s / sum(weights) for v in weights]
    q = sorted(p / wj for p, wj in zip(pvalues, w))
    return min(1.0, min(s * v / (i + 1) for i, v in enumerate(q)))


def signal_weight(name: str, classes: int, projections: int) -> float:
    """The share of the family's alpha a signal gets: the per-class histograms 3/4 together (the
    softmax vector, the strongest signal at small n), class counts 1/8 (label shift), the confidence
    histogram 1/16, the projections 1/16 together."""
    if name == "class_counts":
        return 1 / 8
    if name == "confidence":
        return 1 / 16
    if name.startswith("class_confidence"):
        return 3 / (4 * max(classes, 1))
    return 1 / (16 * max(projections, 1))


def fdr(pvalues, alpha: float) -> list[bool]:
    """Benjamini-Hochberg at level ``alpha``: which hypotheses are rejected."""
    order = sorted(range(len(pvalues)), key=lambda i: pvalues[i])
    cutoff = -1
    for rank, i in enumerate(order):
        if pvalues[i] <= alpha * (rank + 1) / len(pvalues):
            cutoff = rank
    rejected = [False] * len(pvalues)
    for rank in range(cutoff + 1):
        rejected[order[rank]] = True
    return rejected


# -- accuracy -----------------------------------------------------------------------------------
def estimate_accuracy(merged: dict, reference: dict, z: float = 1.96) -> dict | None:
    """Label-free accuracy estimate with a 95 % interval (see the module docstring); None if empty."""
    conf = merged.get("confidence") or []
    n = sum(conf)
    if n == 0 or reference.get("kind", "classifier") != "classifier":
        return None  # an embedding's cosine or a regression's rank is no accuracy
    m = max(int(reference.get("reference_size") or sum(reference["class_counts"])), 1)
    acc = reference.get("accuracy") or {}
    edges = reference["confidence"]["edges"]
    threshold = acc.get("atc_threshold")
    if threshold is not None and threshold in edges and len(conf) == len(edges) - 1:
        est = sum(conf[edges.index(threshold):]) / n
        a = float(acc.get("validation_accuracy", est))
        half = z * math.sqrt(est * (1 - est) / n + a * (1 - a) / m)
        method = "atc"
    else:
        est = merged["confidence_sum"] / max(merged["count"], 1)
        half = z * math.sqrt(max(est * (1 - est), 0.0) / n)
        method = "mean confidence"
    return {"estimate": round(est, 6), "low": round(max(0.0, est - half), 6), "high": round(min(1.0, est + half), 6),
            "method": method, "n": n}


# -- one look -----------------------------------------------------------------------------------
def drift_report(merged: dict, reference: dict, *, alpha: float = 0.05, min_samples: int = 10,
                 draws: int = DRAWS) -> dict:
    """Every signal's test, their Simes combination and the accuracy estimate for one pooled sketch.

    ``state`` is ``insufficient`` (fewer than ``min_samples`` predictions or no testable signal: never
    an alarm), ``drift`` (combined p <= alpha) or ``ok``."""
    n = merged.get("count", 0)
    try:
        usable, skipped = signals(merged, reference)
    except (KeyError, TypeError, TelemetryError) as e:
        usable, skipped = [], [{"signal": "*", "reason": f"sketch unreadable ({e})"}]
    tests = []
    if n >= min_samples:
        for name, obs, ref, ordered in usable:
            tests.append({"signal": name, **two_sample(obs, ref, ordered=ordered, draws=draws)})
    k, j = len(reference["class_counts"]), len(reference["projection"]["histograms"])
    p = simes([t["p_value"] for t in tests], [signal_weight(t["signal"], k, j) for t in tests]) if tests else 1.0
    state = "insufficient" if not tests else ("drift" if p <= alpha else "ok")
    errors = sum((merged.get("errors") or {}).values())
    top = max(tests, key=lambda t: t["effect"]) if tests else None
    accuracy = estimate_accuracy(merged, reference) if n else None
    val_acc = (reference.get("accuracy") or {}).get("validation_accuracy")
    return {
        "state": state, "p_value": p, "alpha": alpha, "samples": n, "windows": merged.get("windows", 0),
        "devices": merged.get("devices", 0), "start_ms": merged.get("start_ms"), "end_ms": merged.get("end_ms"),
        "signals": tests, "skipped": skipped,
        "effect": top["effect"] if top else 0.0, "effect_signal": top["signal"] if top else None,
        "accuracy": accuracy, "estimated_accuracy": accuracy["estimate"] if accuracy else None,
        "accuracy_drop": (round(val_acc - accuracy["high"], 6) if accuracy and val_acc is not None else None),
        "error_rate": round(errors / n, 6) if n else 0.0,
        "shadow_agreement": (round(merged["shadow_agree"] / merged["shadow_count"], 6)
                             if merged.get("shadow_count") else None),
        "artifacts": merged.get("artifacts", {}),
    }


# -- repeated looks -----------------------------------------------------------------------------
@dataclass(frozen=True)
class MonitorSettings:
    alpha: float = 0.05          # chance of any false alarm over `horizon` looks
    horizon: int = 1000          # looks per alarm budget
    scales: tuple = (1, 4, 16)   # pools of the last s blocks tested at each look
    min_samples: int = 10        # a block needs this many predictions (else its windows wait)
    recover_looks: int = 3       # consecutive unremarkable looks after an alarm ...
    recover_p: float = 0.05      # ... each with combined p above this
    draws: int = DRAWS

    @property
    def look_alpha(self) -> float:
        return self.alpha / (self.horizon * len(self.scales))


_BLOCK_KEYS = ("count", "class_counts", "confidence", "class_confidence", "projections", "confidence_sum",
               "start_ms", "end_ms")


class Monitor:
    """The sequential detector of one (cohort, model version). ``state`` is a JSON-able dict (keep
    it between looks, e.g. in the score history); :meth:`look` takes the new windows' pooled sketch."""

    def __init__(self, settings: MonitorSettings = MonitorSettings(), state: dict | None = None):
        self.settings = settings
        self.state = state or {"status": "ok", "looks": 0, "blocks": [], "since_alarm": 0, "clean": 0,
                               "alarm_look": None}

    def alarmed(self) -> "Monitor":
        """Start in the alarm state: a fallback version inherits the primary's alarm, and its monitor
        then says ``recovered`` after ``recover_looks`` unremarkable looks (the shift is over)."""
        self.state.update(status="drift", since_alarm=0, clean=0, alarm_look=0, blocks=[])
        return self

    def look(self, block: dict, reference: dict) -> dict:
        """Test one new block (a pooled sketch of windows not seen before); return the verdict."""
        s, st = self.settings, self.state
        if block.get("count", 0) < s.min_samples:
            return {"state": "insufficient", "status": st["status"], "reason":
                    f"{block.get('count', 0)} new predictions < {s.min_samples}", "look": st["looks"]}
        st["looks"] += 1
        if st["looks"] > s.horizon:  # a new horizon: a new alarm budget
            st["looks"] = 1
        st["blocks"] = (st["blocks"] + [{k: block.get(k) for k in _BLOCK_KEYS}])[-max(s.scales):]
        if st["status"] != "ok":
            st["since_alarm"] += 1
        if st["status"] == "recovered":
            st["status"] = "ok"
        tests = []
        for scale in s.scales:
            if scale > len(st["blocks"]):
                continue
            pooled = _pool(st["blocks"][-scale:])
            report = drift_report(pooled, reference, alpha=s.look_alpha, min_samples=s.min_samples, draws=s.draws)
            tests.append({"scale": scale, **report})
        best = min(tests, key=lambda r: r["p_value"])
        verdict = {"look": st["looks"], "alpha_look": s.look_alpha, "p_value": best["p_value"],
                   "scale": best["scale"], "report": best, "tests": [
                       {k: t[k] for k in ("scale", "p_value", "samples", "effect", "effect_signal")} for t in tests]}
        if st["status"] == "ok" and best["p_value"] <= s.look_alpha:
            st.update(status="drift", since_alarm=0, clean=0, alarm_look=st["looks"])
            st["blocks"] = []  # recovery is judged on post-alarm data only
        elif st["status"] == "drift":
            recent = [t for t in tests if t["scale"] <= 4]
            st["clean"] = st["clean"] + 1 if all(t["p_value"] > s.recover_p for t in recent) else 0
            if st["clean"] >= s.recover_looks:
                st.update(status="recovered", clean=0, since_alarm=0, alarm_look=None)
        return {"state": st["status"], "status": st["status"], **verdict}


def _pool(blocks: list[dict]) -> dict:
    acc = empty_merged()
    for b in blocks:
        merge_into(acc, {"model_version": "", "artifact": "", "report_id": "", "errors": {},
                         **{k: v for k, v in b.items() if v is not None}})
    acc["devices"] = 0
    return acc
