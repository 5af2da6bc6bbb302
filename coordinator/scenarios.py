"""Scenario benchmark of the fallback ladder: a real coordinator on 127.0.0.1, real devices (SDK,
runtime, gRPC) on real data, one cohort per scenario plus untouched control cohorts.

Scenarios (each shifts its own cohort from round ``shift_at``):

- ``quantization``: the inputs arrive in another unit: 8-bit video-range levels (black 16, white
  235, as BT.601/709 limited-range luma) instead of the [0, 1] the model was calibrated on (see
  :func:`quantization_shift` for why this shift and not a plain gain);
- ``label``: class priors changed (85 % of inputs from the class with the lowest validation recall),
  each class's inputs unchanged;
- ``covariate``: a failing sensor (contrast halved, noise, a dead band) the model never saw; this
  cohort opts in to raw inputs leaving its devices (cloud fallback), and to labelled examples when a
  worker runs adaptation jobs. The dead band destroys a quarter of each input: no adaptation gets all
  the accuracy back;
- ``rotation``: inputs turned by 40 degrees plus mild noise, a shift the model never saw that keeps
  the information; this cohort opts in to labelled examples only (adaptation, no cloud);
- ``ends``: the covariate shift from ``shift_at`` to ``end_at``, then normal inputs again.

The simulator knows every true label, so the table's accuracies are ground truth over all served
predictions (the coordinator itself only sees the ``label_share`` of them sent as feedback).
``acc_shifted`` is the primary model (no action) on the same shifted inputs.

>>> result = run_scenarios("out/digits", "work/", ["label"], rounds=30)   # doctest: +SKIP
>>> print(format_table(result))                                          # doctest: +SKIP
"""

from __future__ import annotations

import secrets
import time
from pathlib import Path

from .rules import parse_rules
from .simulate import load_inputs, rotate_inputs, shift_inputs

__all__ = ["SCENARIOS", "run_scenarios", "format_table", "SCENARIO_RULES", "quantization_shift"]

SCENARIOS = ("quantization", "label", "covariate", "rotation", "ends")

#: the quantization shift: black and white levels of 8-bit limited-range (video) luma
VIDEO_BLACK, VIDEO_WHITE = 16.0, 235.0


def quantization_shift(x):
    """Inputs in [0, 1] as a camera delivering 8-bit limited-range luma would send them:
    ``16 + 219 x`` (black 16, white 235): a plausible unit mistake when a camera is integrated.

    Why this shift: the int8 artifacts quantize the input on the range seen in calibration, [0, 1];
    a black level above that range saturates every value to the top of it, so the int8 model sees
    a blank image and answers one class. The fp32 artifact has no such range; a ReLU network is
    nearly scale invariant (only its biases are not), so it still reads an image scaled by 219 with
    a small relative offset (16/219). A plain gain (2-8x, or 0-255 units) is not quantization
    sensitive enough: int8 binarizes the image at the saturation point, which costs about as much
    as the gain costs fp32 (digits at 6x: fp32 0.953, int8 0.914), so the fp32 rung has too little
    to win. Measured on the digits validation + test splits (718 inputs) and 4,000 Fashion-MNIST
    test images: digits fp32 0.992 -> 0.844, int8 0.992 -> 0.100; Fashion fp32 0.879 -> 0.751,
    int8 0.881 -> 0.106 (docs/coordinator.md)."""
    import numpy as np
    return (VIDEO_BLACK + (VIDEO_WHITE - VIDEO_BLACK) * x).astype(np.asarray(x).dtype)


#: labelled examples each device of an opted-in cohort may hold for adaptation
SCENARIO_MAX_EXAMPLES = 150
#: the label shift: this share of inputs comes from the hardest class
LABEL_SHIFT_SHARE = 0.85

#: rules of the benchmark: the default drift engine and ladder, rungs judged on 60 labels or 12 windows;
#: the adapted version serves the whole cohort while it is judged, as every other rung does
SCENARIO_RULES = """
[drift]
alpha = 0.05
horizon = 1000
min_samples = 50
recover_looks = 2
[[fallback]]
name = "drift"
[ladder]
rungs = ["artifact", "previous_version", "label_shift", "cloud", "adapt"]
eval_labels = 60
eval_windows = 12
min_gain = 0.02
good_enough = 0.03
adapt_max_drop = 2.0
adapt_canary_share = 1.0
[canary]
promote_after_windows = 8
min_samples = 60
rollback_margin = 0.05
"""


def hardest_classes(monitoring: dict, k: int = 1) -> list[int]:
    """The ``k`` classes with the lowest validation recall (from the bundle's confusion matrix), or the
    first ``k`` when the bundle has none: the label shift moves the priors towards them."""
    confusion = monitoring.get("confusion")
    if not confusion:
        return list(range(k))
    from .labelshift import class_recalls
    recall = [correct / max(1, n) for correct, n in class_recalls(confusion)]
    return sorted(range(len(recall)), key=lambda j: (recall[j], j))[:k]


def _label_shift_sample(y_all, rng, n, heavy):
    """Indices drawn with class priors moved: ``LABEL_SHIFT_SHARE`` of inputs from the ``heavy`` classes."""
    import numpy as np
    inside = np.isin(y_all, heavy)
    weights = np.where(inside, LABEL_SHIFT_SHARE / inside.sum(), (1 - LABEL_SHIFT_SHARE) / (~inside).sum())
    return rng.choice(len(y_all), size=n, replace=False, p=weights / weights.sum())


def _inputs(scenario, shifted, x_all, y_all, rng, n, heavy):
    if scenario == "label" and shifted:
        idx = _label_shift_sample(y_all, rng, n, heavy)
    else:
        idx = rng.choice(len(x_all), size=n, replace=False)
    x, y = x_all[idx], y_all[idx]
    if not shifted or scenario == "label":
        return x, y
    if scenario == "quantization":
        return quantization_shift(x), y
    if scenario == "rotation":
        return rotate_inputs(x, rng), y
    return shift_inputs(x, rng), y


def run_scenarios(bundle_dir, workdir, scenarios=SCENARIOS, *, devices_per_cohort: int = 4, controls: int = 2,
                  rounds: int = 40, shift_at: int = 4, end_at: int = 28, batch: int = 25, label_share: float = 0.3,
                  seed: int = 0, rules_text: str = SCENARIO_RULES, inputs=None, previous_bundle=None,
                  offline_rounds: tuple[int, int] | None = None, worker=None, log=None,
                  trusted_key: bytes | None = None, allow_unsigned: bool = False) -> dict:
    """Run the scenarios side by side; return ``{"scenarios": {name: metrics}, ...}``.

    ``previous_bundle``: published and served first, so every cohort has a previous known-good version;
    ``offline_rounds=(a, b)``: the first device of each scenario cohort cannot reach the coordinator in
    rounds ``a <= r < b`` (it keeps predicting; its telemetry and labels wait in its on-disk queue);
    ``worker``: a :class:`~edgefleet.coordinator.adapt.WorkerConfig` (its ``store`` is replaced): the
    covariate cohorts also opt in to labelled examples, and a worker runs queued adaptation jobs
    after each round's evaluation;
    ``trusted_key``: the public key the bundles must be signed with (the coordinator and every device
    check it); ``allow_unsigned`` runs an unsigned or foreign-signed bundle instead."""
    import numpy as np

    from edgefleet.bundle import Bundle, pack
    from edgefleet.device import Device, GrpcTransport

    from .admin import AdminClient
    from .server import Server, ServerConfig

    unknown = [s for s in scenarios if s not in SCENARIOS]
    if unknown:
        from edgefleet._errors import ConfigError
        raise ConfigError(f"simulate: unknown scenario(s) {', '.join(unknown)}; choose from {', '.join(SCENARIOS)}")
    say = log or (lambda msg: None)
    started = time.perf_counter()
    work = Path(workdir)
    work.mkdir(parents=True, exist_ok=True)
    bundle = Bundle.open(bundle_dir)
    from edgefleet.keys import require_trusted
    require_trusted(bundle, trusted_key, allow_unsigned=allow_unsigned, what="simulate")
    if previous_bundle is not None:
        require_trusted(Bundle.open(previous_bundle), trusted_key, allow_unsigned=allow_unsigned, what="simulate")
    x_all, y_all = inputs if inputs is not None else load_inputs(bundle)
    rng = np.random.default_rng(seed)
    heavy = hardest_classes(bundle.manifest["monitoring"])
    cohorts = {f"control-{i}": None for i in range(controls)} | {f"scenario-{s}": s for s in scenarios}
    admin_token = secrets.token_urlsafe(16)
    config = ServerConfig(init=True, store=f"sqlite:///{work / f'scenarios-{int(time.time() * 1000)}.db'}",
                          admin_token=admin_token, evaluate_interval_s=None, rules=parse_rules(rules_text),
                          trusted_key=trusted_key, allow_unsigned=allow_unsigned)
    from edgefleet import runtimes
    primary_target = bundle.fallback_chain[0]
    primary = runtimes.load(runtimes.for_target(primary_target)[0], bundle.artifact_path(primary_target))
    out_name = primary.output_names[0]
    pre = bundle.manifest["inputs"][0].get("preprocessing", {})

    def primary_correct(x, y):  # the counterfactual: the primary model, no action
        z = (x * np.float32(pre.get("scale", 1.0)) - np.float32(pre.get("mean", 0.0))) / np.float32(pre.get("std", 1.0))
        return int((primary.run(z.astype(np.float32))[out_name].argmax(axis=1) == y).sum())

    per_round = {c: [] for c in cohorts}
    with Server(config) as server:
        admin = AdminClient(server.grpc_target, admin_token)
        if previous_bundle is not None:
            previous = admin.publish_bundle(pack(previous_bundle, work / "previous.tar.gz").read_bytes())["version"]
            for cohort in cohorts:
                admin.set_baseline(cohort, previous)
        version = admin.publish_bundle(pack(bundle.path, work / "bundle.tar.gz").read_bytes())["version"]
        fleet = []
        for cohort, scenario in cohorts.items():
            admin.set_baseline(cohort, version)
            if scenario in ("covariate", "rotation"):
                admin.set_privacy(cohort, scenario == "covariate", examples_allowed=worker is not None,
                                  max_examples=SCENARIO_MAX_EXAMPLES)
            token = admin.create_enrollment_token(cohort, uses=devices_per_cohort)
            for i in range(devices_per_cohort):
                dev = Device(bundle.path, work / "devices" / f"{cohort}-{i}", transport=GrpcTransport(server.grpc_target),
                             enrollment_token=token, trusted_key=trusted_key, allow_unsigned=allow_unsigned,
                             window_size=batch, hardware="simulated")
                dev.sync()
                fleet.append((dev, cohort, scenario))
        say(f"coordinator {server.grpc_target}; {len(fleet)} devices in {len(cohorts)} cohorts; shift at round "
            f"{shift_at}" + (f", 'ends' back to normal at {end_at}" if "ends" in scenarios else ""))
        cut_off = [next(d for d, c, _ in fleet if c == cohort) for cohort, s in cohorts.items() if s is not None]
        online = {id(d): d.transport for d in cut_off}
        for r in range(rounds):
            if offline_rounds is not None:
                for dev in cut_off:  # a closed port: every call fails as the device would see it offline
                    dev.transport = (online[id(dev)] if not offline_rounds[0] <= r < offline_rounds[1]
                                     else GrpcTransport("127.0.0.1:9", timeout_s=0.2))
                    dev.transport.token = online[id(dev)].token
            tally = {c: [0, 0, 0] for c in cohorts}  # served correct, counterfactual correct, n
            for dev, cohort, scenario in fleet:
                shifted = scenario is not None and r >= shift_at and not (scenario == "ends" and r >= end_at)
                x, y = _inputs(scenario, shifted, x_all, y_all, rng, batch, heavy)
                preds = dev.predict(x)
                t = tally[cohort]
                t[0] += sum(int(p.label == label) for p, label in zip(preds, y))
                t[1] += primary_correct(x, y)
                t[2] += len(y)
                for p, label, xi in zip(preds, y, x):
                    if rng.random() < label_share:
                        dev.feedback(p.prediction_id, int(label), example=xi if worker is not None else None)
                dev.sync()
            made = admin.evaluate()
            moved = {d["cohort"] for d in made}
            if worker is not None:
                from .adapt import run_worker
                worker.store = config.store
                if run_worker(worker, once=True, log=say):
                    moved = set(cohorts)  # a finished job may have started a canary
            for dev, cohort, _ in fleet:  # as a WatchPolicy stream would push it: a new policy applies now
                if cohort in moved:
                    dev.sync()
            for cohort, (served, counterfactual, n) in tally.items():
                per_round[cohort].append({"round": r, "served": served / n, "primary": counterfactual / n,
                                          "decisions": [d["kind"] + (":" + d["evidence"].get("rung", "")
                                                                     if d["evidence"].get("rung") else "")
                                                        for d in made if d["cohort"] == cohort]})
            for d in made:
                say(f"round {r}: {d['cohort']}: {d['kind']}: {d['evidence'].get('why', '')[:160]}")
        decisions = [d for d in admin.list_decisions() if d["kind"] not in ("manual",)]
        audit = admin.list_audit()
        raw = {c: sum(e["bytes"] for e in audit if e["cohort"] == c) for c in cohorts}
        device_raw = {c: sum(d.cloud.stats["raw_bytes_sent"] + d.stats["raw_bytes_sent"] for d, cc, _ in fleet
                             if cc == c) for c in cohorts}
        serving = {c: sorted({f"{d.model_version}/{d.artifact}" + ("+bias" if (d.policy.get("remedy") or {}).get(
            "logit_bias") else "") + ("+cloud" if (d.policy.get("remedy") or {}).get("cloud") else "")
            for d, cc, _ in fleet if cc == c}) for c in cohorts}
        queued = {c: sum(len(d.queue) for d, cc, _ in fleet if cc == c) for c in cohorts}
        admin.close()
        for dev, _, _ in fleet:
            dev.close()
    controls_decisions = sum(1 for d in decisions if d["cohort"].startswith("control-"))
    result = {"scenarios": {}, "decisions_in_controls": controls_decisions, "label_shift_classes": heavy, "devices": len(fleet),
              "cohorts": len(cohorts), "rounds": rounds, "shift_at": shift_at, "end_at": end_at,
              "windows_per_round": devices_per_cohort, "label_share": label_share,
              "model_version": version, "elapsed_s": round(time.perf_counter() - started, 1)}
    for cohort, scenario in cohorts.items():
        if scenario is None:
            continue
        rows = per_round[cohort]
        mine = [d for d in decisions if d["cohort"] == cohort]
        result["scenarios"][scenario] = _metrics(scenario, rows, mine, shift_at, end_at if scenario == "ends" else rounds,
                                                 devices_per_cohort)
        result["scenarios"][scenario].update(raw_bytes_off_device=device_raw[cohort], audited_bytes=raw[cohort],
                                             serving=serving[cohort], undelivered_windows=queued[cohort],
                                             decisions_in_controls=controls_decisions, per_round=rows)
    return result


def _mean(values):
    values = list(values)
    return round(sum(values) / len(values), 4) if values else None


def _metrics(scenario, rows, decisions, shift_at, shift_end, windows_per_round) -> dict:
    def round_of(kinds):
        return next((row["round"] for row in rows if any(k.split(":")[0] in kinds for k in row["decisions"])), None)
    detect = round_of(("drift_detected",))
    settle = round_of(("settle", "exhausted"))
    release = round_of(("release",))
    acc_before = _mean(r["served"] for r in rows[:shift_at])
    acc_shifted = _mean(r["primary"] for r in rows[shift_at:shift_end])
    tail = rows[max(shift_at, shift_end - 5):shift_end]
    acc_recovered = _mean(r["served"] for r in tail)
    recovered_round = None
    if None not in (acc_before, acc_shifted) and detect is not None:
        goal = acc_shifted + 0.8 * (acc_before - acc_shifted)
        # one round is only batch x devices predictions: recovered from the first round whose mean
        # with the next two reaches the goal (a lucky round alone does not count)
        shifted_rows = rows[detect:shift_end]
        recovered_round = next((row["round"] for i, row in enumerate(shifted_rows)
                                if _mean(r["served"] for r in shifted_rows[i:i + 3]) >= goal), None)
    final = [d for d in decisions if d["kind"] in ("settle", "exhausted")]
    rung = final[-1]["evidence"].get("rung", "") if final and final[-1]["kind"] == "settle" else ""
    if not rung:
        kept = [d for d in decisions if d["kind"] == "rung_kept"]
        rung = kept[-1]["evidence"]["rung"] if kept else ("none" if detect is not None else "")
    out = {"acc_before": acc_before, "acc_shifted": acc_shifted, "acc_recovered": acc_recovered, "rung": rung,
           "windows_to_detect": (detect - shift_at + 1) * windows_per_round if detect is not None else None,
           "windows_to_recover": ((recovered_round - detect) * windows_per_round
                                  if recovered_round is not None else None),
           "settled_round": settle, "decisions": [d["kind"] + ":" + d["evidence"].get("rung", "") for d in decisions]}
    if scenario == "ends":
        out["released_round"] = release
        out["acc_after_end"] = _mean(r["served"] for r in rows[shift_end:])
        # devices apply a decision at their next sync, after the next round's predictions
        out["acc_after_release"] = _mean(r["served"] for r in rows[release + 2:]) if release is not None else None
        out["returned_to_primary"] = release is not None
    return out


def format_table(result: dict) -> str:
    head = (f"{'scenario':<13} {'acc before':>10} {'shifted':>8} {'recovered':>9} {'rung':<13} {'w->detect':>9} "
            f"{'w->recover':>10} {'raw bytes':>9}")
    lines = [f"{result['devices']} devices in {result['cohorts']} cohorts, {result['rounds']} rounds, shift at round "
             f"{result['shift_at']}; windows counted per cohort ({result['windows_per_round']} per round); "
             f"{result['elapsed_s']} s", head]

    def f(v, fmt="{:.3f}"):
        return "-" if v is None else fmt.format(v)
    for name, m in result["scenarios"].items():
        lines.append(f"{name:<13} {f(m['acc_before']):>10} {f(m['acc_shifted']):>8} {f(m['acc_recovered']):>9} "
                     f"{m['rung'] or '-':<13} {f(m['windows_to_detect'], '{}'):>9} {f(m['windows_to_recover'], '{}'):>10} "
                     f"{m['raw_bytes_off_device']:>9}")
        if name == "ends":
            lines.append(f"{'':<13} returned to the primary model: {'yes' if m['returned_to_primary'] else 'no'} "
                         f"(round {f(m['released_round'], '{}')}), accuracy after the end {f(m['acc_after_end'])}, "
                         f"after the release {f(m['acc_after_release'])}")
    lines.append(f"decisions in control cohorts: {result['decisions_in_controls']}")
    return "\n".join(lines)
