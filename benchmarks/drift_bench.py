"""Drift detection and label-free accuracy: a "Failing Loudly" protocol (Rabanser et al., 2019) on
digits and Fashion-MNIST with a CNN trained here.

    python benchmarks/drift_bench.py            # the full protocol (tens of minutes on 2 cores)
    python benchmarks/drift_bench.py --quick    # fewer repetitions, sizes and looks (< 3 minutes)
    python benchmarks/drift_bench.py --json     # also print the JSON result

Single look: for every shift (Gaussian noise small/medium/large, rotation, translation, zoom, class
knock-out, class imbalance) x fraction (0.1, 0.5, 1.0) x sample size n x repetition, a sample of n
test predictions is drawn *without replacement* from the test pool (disjoint from the validation
split that is the reference; sizes the pool cannot supply are left out) and tested by

- ``ours``: the drift engine on the window a device would send (sketches only, alpha = 0.05);
- ``bbsds``: BBSD on the raw softmax vectors: one two-sample KS test per class, Bonferroni (scipy);
- ``bbsdh``: BBSD on raw hard predictions: chi-squared two-sample test of the class counts (scipy).

Sequential: the drift monitor over looks of 100 predictions: runs of ``horizon`` no-drift looks (a
fresh reference each run) -> share of runs with any false alarm; an abrupt shift -> detection delay;
a gradual one; the looks until "recovered" after the shift ends.

Estimation: estimated vs realized accuracy under every shift and fraction (n = 1000): ours (ATC from
the sketch, calibrated), max-softmax (mean top-1 softmax), ATC on the raw confidences (n = half the
pool where the pool is smaller: 179 for digits).
Writes ``bench-results/drift_bench.json`` (keys: detection[method][n], false_positive[method][n],
horizon_false_alarm_runs, estimation_mae[method], and the details).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
from scipy import ndimage, stats  # noqa: E402

from _common import RESULTS, print_table, write_json  # noqa: E402

ALPHA = 0.05
FRACTIONS = (0.1, 0.5, 1.0)
SHIFTS = ("gn_small", "gn_medium", "gn_large", "rotation", "translation", "zoom", "knockout", "imbalance")
#: the averages over shifts published for BBSDs (univariate KS on softmax) in "Failing Loudly", Table 1
PUBLISHED_BBSDS = {10: 0.19, 20: 0.28, 50: 0.47, 100: 0.47, 200: 0.51, 500: 0.65, 1000: 0.70, 10000: 0.79}


# -- data and model -------------------------------------------------------------------------------
def load(name: str, quick: bool) -> dict:
    """{x_train, y_train, x_val, y_val, x_test, y_test} in [0, 1], NCHW."""
    if name == "digits":
        from edgefleet.compress.data import load_dataset
        ds = load_dataset("digits", seed=0)
        return {"x_train": ds.x_train, "y_train": ds.y_train, "x_val": ds.x_val, "y_val": ds.y_val,
                "x_test": ds.x_test, "y_test": ds.y_test}
    from edgefleet.compress.data import load_fashion_mnist
    ds = load_fashion_mnist()
    x_tr, y_tr = np.concatenate([ds.x_train, ds.x_val]), np.concatenate([ds.y_train, ds.y_val])
    x_te, y_te = ds.x_test, ds.y_test
    rng = np.random.default_rng(0)
    order = rng.permutation(len(x_tr))
    n_train = 12000 if quick else 50000
    return {"x_train": x_tr[order[:n_train]], "y_train": y_tr[order[:n_train]],
            "x_val": x_tr[order[50000:]], "y_val": y_tr[order[50000:]], "x_test": x_te, "y_test": y_te}


def cnn(side: int, classes: int = 10):
    from torch import nn
    flat = 32 * (side // 4) ** 2
    return nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                         nn.Linear(flat, 64), nn.ReLU(), nn.Linear(64, classes))


def train(name: str, data: dict, quick: bool):
    import torch
    from edgefleet.compress.train import fit
    cache = RESULTS / "cache" / f"drift_cnn_{name}{'_quick' if quick else ''}.pt"
    model = cnn(data["x_train"].shape[-1])
    if cache.is_file():
        model.load_state_dict(torch.load(cache))
        return model.eval()
    epochs = {"digits": 30 if not quick else 15, "fashion": 4 if not quick else 1}[name]
    fit(model, data["x_train"], data["y_train"], epochs=epochs, lr=3e-3, batch=128, seed=0)
    cache.parent.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), cache)
    return model.eval()


def shift_images(kind: str, x: np.ndarray, rng) -> np.ndarray:
    """The image shift applied to every image of ``x`` (fresh random parameters per image)."""
    if kind.startswith("gn_"):
        std = {"gn_small": 1 / 255, "gn_medium": 10 / 255, "gn_large": 100 / 255}[kind]
        return np.clip(x + rng.normal(0, std, x.shape), 0, 1).astype(np.float32)
    out = np.empty_like(x)
    side = x.shape[-1]
    centre = (side - 1) / 2
    for i, img in enumerate(x[:, 0]):
        if kind == "rotation":
            out[i, 0] = ndimage.rotate(img, rng.uniform(-40, 40), reshape=False, order=1, mode="constant")
        elif kind == "translation":
            out[i, 0] = ndimage.shift(img, rng.uniform(-0.3, 0.3, 2) * side, order=1, mode="constant")
        elif kind == "zoom":
            s = rng.uniform(0.6, 1.4)
            out[i, 0] = ndimage.affine_transform(img, np.eye(2) / s, offset=centre - centre / s, order=1,
                                                 mode="constant")
    return out


def logits_of(model, x: np.ndarray) -> np.ndarray:
    from edgefleet.compress.train import predict_logits
    return predict_logits(model, np.ascontiguousarray(x, np.float32)).astype(np.float64)


# -- sampling -------------------------------------------------------------------------------------
def class_weights(kind: str, frac: float, y: np.ndarray, classes: int) -> np.ndarray | None:
    if kind == "knockout":  # remove a fraction of class 0
        w = np.ones(classes)
        w[0] = 1 - frac
    elif kind == "imbalance":  # proportions move toward a geometric decay
        w = (1 - frac) + frac * 0.5 ** np.arange(classes) * classes
    else:
        return None
    return w[y]


def draw(rng, kind: str, frac: float, n: int, pool: dict) -> tuple[np.ndarray, np.ndarray] | None:
    """(logits, labels) of one shifted sample of n, or None when the pool cannot supply it."""
    y = pool["y"]
    if kind in ("knockout", "imbalance"):
        w = class_weights(kind, frac, y, pool["classes"])
        if (w > 0).sum() < n:
            return None
        idx = rng.choice(len(y), n, replace=False, p=w / w.sum())
        return pool["clean"][idx], y[idx]
    if n > len(y):
        return None
    idx = rng.choice(len(y), n, replace=False)
    logits = pool["clean"][idx].copy()
    if kind != "none":
        k = int(round(frac * n))
        chosen = rng.choice(n, k, replace=False)
        logits[chosen] = pool["shifted"][kind][idx[chosen]]
    return logits, y[idx]


# -- the methods ----------------------------------------------------------------------------------
def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def sketch(ref: dict, logits: np.ndarray) -> dict:
    """The window a device sends for these logits (export-time numpy binning = device binning)."""
    def hist(v, edges):
        idx = np.clip(np.searchsorted(np.asarray(edges), v, side="right") - 1, 0, len(edges) - 2)
        return np.bincount(idx, minlength=len(edges) - 1).tolist()
    z = logits / ref["temperature"]
    logp = z - z.max(axis=1, keepdims=True)
    logp -= np.log(np.exp(logp).sum(axis=1, keepdims=True))
    conf = np.exp(logp.max(axis=1))
    proj = ref["projection"]
    zp = (logits - np.asarray(proj["mean"])) @ np.asarray(proj["components"]).T
    k = len(ref["class_counts"])
    return {"windows": 1, "count": len(logits), "class_counts": np.bincount(logits.argmax(1), minlength=k).tolist(),
            "confidence": hist(conf, ref["confidence"]["edges"]),
            "class_confidence": [hist(logp[:, c], h["edges"]) for c, h in enumerate(ref["class_confidence"])],
            "projections": [hist(zp[:, j], h["edges"]) for j, h in enumerate(proj["histograms"])],
            "confidence_sum": float(conf.sum()), "errors": {}, "devices": 1}


def ours(ref: dict, logits: np.ndarray, draws: int) -> bool:
    from edgefleet.coordinator.drift import drift_report
    return drift_report(sketch(ref, logits), ref, alpha=ALPHA, draws=draws)["state"] == "drift"


def bbsds(ref_soft: np.ndarray, logits: np.ndarray) -> bool:
    soft = _softmax(logits)
    k = soft.shape[1]
    return min(stats.ks_2samp(ref_soft[:, c], soft[:, c]).pvalue for c in range(k)) < ALPHA / k


def bbsdh(ref_pred: np.ndarray, logits: np.ndarray, classes: int) -> bool:
    table = np.vstack([np.bincount(ref_pred, minlength=classes), np.bincount(logits.argmax(1), minlength=classes)])
    table = table[:, table.sum(0) > 0]
    if table.shape[1] < 2:
        return False
    return stats.chi2_contingency(table, correction=False).pvalue < ALPHA


# -- the three parts ------------------------------------------------------------------------------
def single_look(name: str, pool: dict, ref: dict, ns, reps: int, draws: int, rng) -> dict:
    ref_soft = _softmax(pool["val_logits"])
    ref_pred = pool["val_logits"].argmax(1)
    hits = {m: {n: [] for n in ns} for m in ("ours", "bbsds", "bbsdh")}
    false = {m: {n: [] for n in ns} for m in ("ours", "bbsds", "bbsdh")}
    configs = [("none", 0.0)] + [(s, f) for s in SHIFTS for f in FRACTIONS]
    for kind, frac in configs:
        for n in ns:
            for _ in range(reps):
                sample = draw(rng, kind, frac, n, pool)
                if sample is None:
                    continue
                logits, _ = sample
                verdicts = {"ours": ours(ref, logits, draws), "bbsds": bbsds(ref_soft, logits),
                            "bbsdh": bbsdh(ref_pred, logits, pool["classes"])}
                for m, v in verdicts.items():
                    (false if kind == "none" else hits)[m][n].append(v)
    mean = lambda d: {m: {n: (round(float(np.mean(v)), 3) if v else None) for n, v in by.items()}  # noqa: E731
                      for m, by in d.items()}
    return {"detection": mean(hits), "false_positive": mean(false)}


def sequential(pool: dict, val: tuple, runs: int, horizon: int, draws: int, rng, classes: int) -> dict:
    from edgefleet.compress.monitoring_ref import build_reference
    from edgefleet.coordinator.drift import Monitor, MonitorSettings

    val_logits, val_y = val
    settings = MonitorSettings(alpha=ALPHA, horizon=horizon, draws=draws)
    block = 100
    any_alarm, delays, gradual, recover = [], [], [], []
    per_run = len(val_y) // runs
    for r in range(runs):
        part = slice(r * per_run, (r + 1) * per_run)  # a fresh, disjoint reference per run
        ref = build_reference(None, val_logits[part], val_y[part], classes)
        mon = Monitor(settings)
        alarms = 0
        for _ in range(horizon):
            alarms += mon.look(sketch(ref, draw(rng, "none", 0, block, pool)[0]), ref)["state"] == "drift"
        any_alarm.append(alarms > 0)
        # abrupt: 20 clean looks, then large Gaussian noise on half the images until the alarm
        mon = Monitor(settings)
        for _ in range(20):
            mon.look(sketch(ref, draw(rng, "none", 0, block, pool)[0]), ref)
        delay = None
        for t in range(1, 101):
            if mon.look(sketch(ref, draw(rng, "gn_large", 0.5, block, pool)[0]), ref)["state"] == "drift":
                delay = t
                break
        delays.append(delay)
        # recovery: the shift ends; looks until "recovered"
        back = None
        if delay is not None:
            for t in range(1, 101):
                if mon.look(sketch(ref, draw(rng, "none", 0, block, pool)[0]), ref)["state"] == "recovered":
                    back = t
                    break
        recover.append(back)
        # gradual: rotation on a fraction of images growing by 1 % per look
        mon = Monitor(settings)
        g = None
        for t in range(1, 101):
            if mon.look(sketch(ref, draw(rng, "rotation", t / 100, block, pool)[0]), ref)["state"] == "drift":
                g = t
                break
        gradual.append(g)

    def summary(values):
        seen = [v for v in values if v is not None]
        return {"median": float(np.median(seen)) if seen else None,
                "p90": float(np.percentile(seen, 90)) if seen else None, "missed": len(values) - len(seen)}
    return {"runs": runs, "horizon": horizon, "block": block,
            "horizon_false_alarm_runs": round(float(np.mean(any_alarm)), 3),
            "abrupt_delay_looks": summary(delays), "gradual_delay_looks": summary(gradual),
            "recovery_looks": summary(recover)}


def estimation(pool: dict, ref: dict, reps: int, rng) -> dict:
    from edgefleet.coordinator.drift import estimate_accuracy
    val_soft = _softmax(pool["val_logits"])
    val_conf = val_soft.max(1)
    val_acc = (pool["val_logits"].argmax(1) == pool["val_y"]).mean()
    t_raw = np.sort(val_conf)[::-1][max(int(round(val_acc * len(val_conf))) - 1, 0)]
    errors = {"ours": [], "max_softmax": [], "atc_raw": []}
    rows = []
    n = min(1000, len(pool["y"]) // 2)
    for kind in SHIFTS:
        for frac in FRACTIONS:
            for _ in range(reps):
                sample = draw(rng, kind, frac, n, pool)
                if sample is None:
                    continue
                logits, y = sample
                true = float((logits.argmax(1) == y).mean())
                conf = _softmax(logits).max(1)
                est = {"ours": estimate_accuracy(sketch(ref, logits), ref)["estimate"],
                       "max_softmax": float(conf.mean()), "atc_raw": float((conf >= t_raw).mean())}
                for m, v in est.items():
                    errors[m].append(abs(v - true))
                rows.append({"shift": kind, "fraction": frac, "true": round(true, 4),
                             **{m: round(v, 4) for m, v in est.items()}})
    return {"n": n, "mae": {m: round(float(np.mean(v)), 4) for m, v in errors.items()},
            "worst": {m: round(float(np.max(v)), 4) for m, v in errors.items()}, "rows": rows}


def run_dataset(name: str, args, rng) -> dict:
    from edgefleet.compress.monitoring_ref import build_reference
    started = time.perf_counter()
    data = load(name, args.quick)
    model = train(name, data, args.quick)
    val_logits = logits_of(model, data["x_val"])
    test_logits = logits_of(model, data["x_test"])
    classes = val_logits.shape[1]
    pool = {"clean": test_logits, "y": data["y_test"], "classes": classes, "val_logits": val_logits,
            "val_y": data["y_val"], "shifted": {}}
    for kind in SHIFTS[:6]:
        pool["shifted"][kind] = logits_of(model, shift_images(kind, data["x_test"], rng))
    ref = build_reference(None, val_logits, data["y_val"], classes)
    accuracy = float((test_logits.argmax(1) == data["y_test"]).mean())
    print(f"{name}: CNN test accuracy {accuracy:.4f}, reference {len(val_logits)} validation images, "
          f"test pool {len(test_logits)} ({time.perf_counter() - started:.0f} s)", flush=True)
    ns = [n for n in args.ns if n <= len(test_logits)]
    out = {"test_accuracy": round(accuracy, 4), "reference_size": len(val_logits), "pool": len(test_logits),
           **single_look(name, pool, ref, ns, args.reps, args.draws, rng)}
    out["estimation"] = estimation(pool, ref, args.est_reps, rng)
    if name == "fashion":
        out["sequential"] = sequential(pool, (val_logits, data["y_val"]), args.runs, args.horizon, 100, rng, classes)
    out["seconds"] = round(time.perf_counter() - started, 1)
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions, sizes and looks (< 3 minutes)")
    parser.add_argument("--json", action="store_true", help="print the JSON result too")
    parser.add_argument("--datasets", default="digits,fashion",
                        help="comma-separated subset of digits,fashion (the sequential part needs fashion)")
    parser.add_argument("--runs", type=int, help="sequential runs (override)")
    parser.add_argument("--horizon", type=int, help="no-drift looks per sequential run (override)")
    args = parser.parse_args(argv)
    names = [d for d in args.datasets.split(",") if d]
    if not set(names) <= {"digits", "fashion"}:
        parser.error(f"--datasets: expected digits and/or fashion, got {args.datasets!r}")
    runs, horizon = args.runs, args.horizon
    if args.quick:
        args.ns, args.reps, args.est_reps, args.runs, args.horizon, args.draws = [10, 50, 100, 1000], 3, 1, 2, 150, 500
    else:
        args.ns, args.reps, args.est_reps, args.runs, args.horizon, args.draws = \
            [10, 20, 50, 100, 200, 500, 1000, 10000], 20, 5, 10, 1000, 500
    for key, value in (("runs", runs), ("horizon", horizon)):
        if value is not None:
            if value < 1:
                parser.error(f"--{key}: expected a positive integer")
            setattr(args, key, value)
    rng = np.random.default_rng(0)
    started = time.perf_counter()
    results = {name: run_dataset(name, args, rng) for name in names}
    methods = ("ours", "bbsds", "bbsdh")
    combined = {}
    for key in ("detection", "false_positive"):
        combined[key] = {}
        for m in methods:
            combined[key][m] = {}
            for n in args.ns:
                vals = [results[d][key][m].get(n) for d in results if results[d][key][m].get(n) is not None]
                combined[key][m][n] = round(float(np.mean(vals)), 3) if vals else None
    payload = {
        "detection": combined["detection"], "false_positive": combined["false_positive"],
        "horizon_false_alarm_runs": (results["fashion"]["sequential"]["horizon_false_alarm_runs"]
                                     if "fashion" in results else None),
        "estimation_mae": {m: round(float(np.mean([results[d]["estimation"]["mae"][m] for d in results])), 4)
                           for m in ("ours", "max_softmax", "atc_raw")},
        "published_bbsds": PUBLISHED_BBSDS, "by_dataset": results, "quick": args.quick,
        "alpha": ALPHA, "repetitions": args.reps, "machine": {"python": platform.python_version(),
                                                                 "platform": platform.platform()},
        "seconds": round(time.perf_counter() - started, 1),
    }
    for d, r in results.items():
        print(f"\n{d}: detection rate over shifts x fractions (false-positive rate on no shift), alpha = {ALPHA}")
        ns = [n for n in args.ns if r["detection"]["ours"].get(n) is not None]
        rows = [[m] + [f"{r['detection'][m][n]:.2f} ({r['false_positive'][m][n]:.2f})" for n in ns] for m in methods]
        print_table(["method"] + [f"n={n}" for n in ns], rows)
    print("\nboth data sets: detection (false positives)")
    rows = [[m] + [f"{payload['detection'][m][n]:.2f} ({payload['false_positive'][m][n]:.2f})"
                   if payload["detection"][m][n] is not None else "-" for n in args.ns] for m in methods]
    rows.append(["published BBSDs"] + [f"{PUBLISHED_BBSDS[n]:.2f}" for n in args.ns])
    print_table(["method"] + [f"n={n}" for n in args.ns], rows)
    s = results.get("fashion", {}).get("sequential")
    if s:
        print(f"\nsequential (fashion, {s['runs']} runs, looks of {s['block']} predictions)")
        print_table(["measure", "value"], [
            [f"runs with any false alarm in {s['horizon']} no-drift looks", s["horizon_false_alarm_runs"]],
            ["abrupt shift (noise, half the images): delay median / p90 / missed (looks)",
             f"{s['abrupt_delay_looks']['median']} / {s['abrupt_delay_looks']['p90']} / {s['abrupt_delay_looks']['missed']}"],
            ["gradual rotation (+1 %/look): delay median / p90 / missed",
             f"{s['gradual_delay_looks']['median']} / {s['gradual_delay_looks']['p90']} / {s['gradual_delay_looks']['missed']}"],
            ["recovery after the shift ends: looks median / p90 / never",
             f"{s['recovery_looks']['median']} / {s['recovery_looks']['p90']} / {s['recovery_looks']['missed']}"]])
    print("\nlabel-free accuracy: mean absolute error (worst case) over shifts x fractions (n = min(1000, pool / 2))")
    print_table(["data set"] + ["ours (ATC, sketch)", "max-softmax", "ATC (raw)"], [
        [d] + [f"{r['estimation']['mae'][m]:.3f} ({r['estimation']['worst'][m]:.3f})"
               for m in ("ours", "max_softmax", "atc_raw")] for d, r in results.items()])
    write_json("drift_bench", payload)
    if args.json:
        print(json.dumps({k: payload[k] for k in ("detection", "false_positive", "horizon_false_alarm_runs",
                                                  "estimation_mae")}, indent=1))
    print(f"total {payload['seconds']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
