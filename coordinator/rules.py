"""Policy rules: a small declarative TOML file, validated key by key.

    [drift]                      # the drift engine (edgefleet.coordinator.drift)
    alpha = 0.05                 # chance of any false alarm per cohort over `horizon` looks
    horizon = 1000               # looks (policy evaluations with new data) per alarm budget
    min_samples = 10             # a look needs this many new predictions (else they wait)
    lookback_windows = 200       # the most recent windows pooled for the snapshot report
    recover_looks = 3            # after an alarm, this many consecutive unremarkable looks ...
    recover_p = 0.05             # ... (combined p above this) mean the shift is over

    [[fallback]]                 # when to climb the ladder; any number, the first that applies decides
    name = "drift-fallback"
    cohorts = ["*"]              # cohort names, "*" for all
    min_accuracy_drop = 0.0      # act on a drift verdict only when validation accuracy minus the
                                 # estimate's upper bound is at least this (0: any detected drift)
    to_artifact = "onnx-fp32"    # the "artifact" rung's target for this rule (default: [ladder] artifact)
    to_version = ""              # the "previous_version" rung's target (default: the previous baseline)
    release = true               # return to the primary model when the verdict is "recovered"

    [ladder]                     # what to try, cheapest first; each rung is measured and kept or reverted
    rungs = ["artifact", "previous_version", "label_shift", "cloud", "adapt"]
    artifact = "onnx-fp32"       # the other artifact of the bundle to try first
    eval_labels = 60             # judge a rung once this many labels arrived for predictions it served ...
    eval_windows = 40            # ... or after this many windows (its evaluation budget), on the estimate
    min_gain = 0.02              # keep a rung only if it adds at least this much accuracy ...
    keep_z = 1.0                 # ... with a one-sided two-proportion z of at least this (labels on both sides)
    good_enough = 0.03           # stop climbing when within this of the bundle's expected accuracy
    cloud_confidence_below = 0.7 # cloud rung: inputs under this calibrated confidence go to Predict ...
    cloud_share = 0.5            # ... or under the confidence of this share of the cohort's recent inputs
    cloud_latency_ms = 50.0      # ... answered locally past this deadline ...
    cloud_per_minute = 600.0     # ... and past this many calls per device per minute
    adapt_canary_share = 0.5     # adapt rung: the adapted version's canary share in the cohort ...
    adapt_max_drop = 1.0         # ... and its accuracy budget on the original validation data (points)

    [canary]
    promote_after_windows = 20   # promote after this many healthy canary windows
    min_samples = 200            # compare only with this many predictions on each side
    rollback_margin = 0.05       # roll back when the canary's accuracy (labels if any, else estimated)
                                 # is below the baseline's by more than this, or its error rate above

    [shadow]
    min_samples = 200            # report agreement once the candidate has seen this many inputs
    min_agreement = 0.9          # below it the shadow verdict is "fail"

>>> rules = parse_rules(DEFAULT_RULES)
>>> rules.fallback[0].to_artifact
'onnx-fp32'
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path

from .errors import PolicyError

__all__ = ["Rules", "FallbackRule", "DriftSettings", "LadderRule", "CanaryRule", "ShadowRule", "parse_rules",
           "load_rules", "DEFAULT_RULES", "RUNG_NAMES"]

#: the ladder's rungs, cheapest first (each is implemented in ``edgefleet.coordinator.ladder``)
RUNG_NAMES = ("artifact", "previous_version", "label_shift", "cloud", "adapt")

DEFAULT_RULES = """
[drift]
alpha = 0.05
horizon = 1000
min_samples = 10
lookback_windows = 200

[[fallback]]
name = "drift-fallback"
cohorts = ["*"]
to_artifact = "onnx-fp32"

[ladder]
rungs = ["artifact", "previous_version", "label_shift", "cloud", "adapt"]

[canary]
promote_after_windows = 20
min_samples = 200
rollback_margin = 0.05

[shadow]
min_samples = 200
min_agreement = 0.9
"""


@dataclass(frozen=True)
class DriftSettings:
    alpha: float = 0.05
    horizon: int = 1000
    min_samples: int = 10
    lookback_windows: int = 200
    recover_looks: int = 3
    recover_p: float = 0.05


@dataclass(frozen=True)
class FallbackRule:
    name: str = "fallback"
    cohorts: tuple = ("*",)
    min_accuracy_drop: float = 0.0
    to_artifact: str = ""
    to_version: str = ""
    release: bool = True

    def applies_to(self, cohort: str) -> bool:
        return "*" in self.cohorts or cohort in self.cohorts


@dataclass(frozen=True)
class LadderRule:
    rungs: tuple = RUNG_NAMES
    artifact: str = "onnx-fp32"
    eval_labels: int = 60
    eval_windows: int = 40
    min_gain: float = 0.02
    keep_z: float = 1.0
    good_enough: float = 0.03
    cloud_confidence_below: float = 0.7
    cloud_share: float = 0.5
    adapt_canary_share: float = 0.5
    adapt_max_drop: float = 1.0
    cloud_latency_ms: float = 50.0
    cloud_per_minute: float = 600.0


@dataclass(frozen=True)
class CanaryRule:
    promote_after_windows: int = 20
    min_samples: int = 200
    rollback_margin: float = 0.05


@dataclass(frozen=True)
class ShadowRule:
    min_samples: int = 200
    min_agreement: float = 0.9


@dataclass(frozen=True)
class Rules:
    drift: DriftSettings = field(default_factory=DriftSettings)
    fallback: tuple = ()
    ladder: LadderRule = field(default_factory=LadderRule)
    canary: CanaryRule = field(default_factory=CanaryRule)
    shadow: ShadowRule = field(default_factory=ShadowRule)


def _build(cls, table, where: str):
    if not isinstance(table, dict):
        raise PolicyError(f"policy {where}: expected a table")
    known = {f.name: f for f in fields(cls)}
    kwargs = {}
    for key, value in table.items():
        if key not in known:
            raise PolicyError(f"policy {where}.{key}: unknown key; expected one of {', '.join(known)}")
        default = known[key].default
        if isinstance(default, bool):
            if not isinstance(value, bool):
                raise PolicyError(f"policy {where}.{key}: expected true or false, got {value!r}")
        elif isinstance(default, tuple):
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise PolicyError(f"policy {where}.{key}: expected a list of strings")
            value = tuple(value)
        elif isinstance(default, float):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise PolicyError(f"policy {where}.{key}: expected a number, got {value!r}")
            value = float(value)
            if value < 0:
                raise PolicyError(f"policy {where}.{key}: must be non-negative, got {value}")
        elif isinstance(default, int):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise PolicyError(f"policy {where}.{key}: expected a positive integer, got {value!r}")
        elif not isinstance(value, str):
            raise PolicyError(f"policy {where}.{key}: expected a string, got {value!r}")
        kwargs[key] = value
    return cls(**kwargs)


def parse_rules(text: str) -> Rules:
    """Parse and validate policy rules; raise PolicyError naming the table and key at fault."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise PolicyError(f"policy: not valid TOML ({e})") from e
    unknown = set(doc) - {"drift", "fallback", "ladder", "canary", "shadow"}
    if unknown:
        raise PolicyError(f"policy: unknown table(s) {', '.join(sorted(unknown))}; "
                          "expected drift, fallback, ladder, canary, shadow")
    fallbacks = doc.get("fallback", [])
    if not isinstance(fallbacks, list):
        raise PolicyError("policy fallback: expected an array of tables ([[fallback]])")
    built = []
    for i, table in enumerate(fallbacks):
        built.append(_build(FallbackRule, table, f"fallback[{i}]"))
    ladder = _build(LadderRule, doc.get("ladder", {}), "ladder")
    bad = [r for r in ladder.rungs if r not in RUNG_NAMES]
    if bad or len(set(ladder.rungs)) != len(ladder.rungs):
        raise PolicyError(f"policy ladder.rungs: {bad or 'a rung listed twice'}; rungs are "
                          f"{', '.join(RUNG_NAMES)}, each at most once")
    drift = _build(DriftSettings, doc.get("drift", {}), "drift")
    for key in ("alpha", "recover_p"):
        if not 0 < getattr(drift, key) < 1:
            raise PolicyError(f"policy drift.{key}: must be between 0 and 1, got {getattr(drift, key)}")
    return Rules(drift=drift, fallback=tuple(built), ladder=ladder,
                 canary=_build(CanaryRule, doc.get("canary", {}), "canary"),
                 shadow=_build(ShadowRule, doc.get("shadow", {}), "shadow"))


def load_rules(path: str | Path | None) -> Rules:
    """Rules from a TOML file, or the embedded defaults when ``path`` is None."""
    if path is None:
        return parse_rules(DEFAULT_RULES)
    try:
        text = Path(path).read_text()
    except OSError as e:
        raise PolicyError(f"policy file {path}: cannot read ({e})") from e
    try:
        return parse_rules(text)
    except PolicyError as e:
        raise PolicyError(f"{path}: {e}") from e
