"""Fleet simulator: a real coordinator on 127.0.0.1 and N devices (real SDK, real runtime, real data)
in one process; one cohort's inputs are shifted. Used by ``edgefleet simulate`` and ``edgefleet demo``.

>>> summary = run_fleet_demo("out/digits", "work/", devices=20, trusted_key=pub)    # doctest: +SKIP
>>> print(format_summary(summary))                                 # doctest: +SKIP
"""

from __future__ import annotations

import secrets
import time
from pathlib import Path

__all__ = ["run_fleet_demo", "format_summary", "shift_inputs", "rotate_inputs", "load_inputs"]


def load_inputs(bundle, seed: int = 0):
    """Real inputs for the bundle, in its model-input space: the digits validation and test splits of
    the export pipeline (never its training split) when available, else all of sklearn's digits / 16."""
    import numpy as np
    shape = tuple(bundle.manifest["inputs"][0]["shape"][1:])
    if int(np.prod(shape)) != 64:
        from edgefleet._errors import DataError
        raise DataError(f"the simulator's data set (8x8 digits, 64 features) does not fit model input "
                        f"{bundle.manifest['inputs'][0]['shape']}; pass inputs=(x, y)")
    try:
        from edgefleet.compress.data import load_dataset
        ds = load_dataset("digits", seed=seed)
        x, y = np.concatenate([ds.x_val, ds.x_test]), np.concatenate([ds.y_val, ds.y_test])
    except ImportError:
        from sklearn.datasets import load_digits
        d = load_digits()
        x, y = d.data / 16.0, d.target
    return x.astype(np.float32).reshape((-1, *shape)), y


def shift_inputs(x, rng):
    """The injected shift: a failing sensor (contrast halved, strong noise, a dead band of pixels)."""
    import numpy as np
    top = float(x.max()) or 1.0
    flat = x.reshape(len(x), -1).copy()
    flat = flat * 0.5 + rng.normal(0.0, 0.25 * top, size=flat.shape)
    flat[:, : flat.shape[1] // 4] = top
    return np.clip(flat, 0, top).astype(x.dtype).reshape(x.shape)


def rotate_inputs(x, rng, degrees: float = 40.0, noise: float = 0.1):
    """Another shift the model never saw: square images (flattened or ``(C, H, W)``) turned by
    ``degrees`` about their centre, plus Gaussian noise (``noise`` x the largest value). Unlike the
    failing sensor, it destroys little information, so adapting to it can recover most accuracy."""
    import numpy as np
    from scipy import ndimage
    top = float(x.max()) or 1.0
    side = x.shape[-1] if x.ndim >= 3 else int(round(x.shape[1] ** 0.5))
    images = x.reshape(-1, side, side)
    turned = ndimage.rotate(images, degrees, axes=(1, 2), reshape=False, order=1, mode="constant")
    turned = turned + rng.normal(0.0, noise * top, size=turned.shape)
    return np.clip(turned, 0, top).astype(x.dtype).reshape(x.shape)


def run_fleet_demo(bundle_dir, workdir, devices: int = 20, seed: int = 0, *, cohorts: int = 4, rounds: int = 10,
                   batch: int = 25, label_share: float = 0.2, inputs=None, log=None, trusted_key: bytes | None = None,
                   allow_unsigned: bool = False) -> dict:
    """Start a coordinator, enrol ``devices`` devices across ``cohorts`` cohorts (the last one gets
    shifted inputs), run ``rounds`` rounds of predict + sync + policy evaluation, and return a summary
    with the decisions, their evidence, and which artifact every cohort ends up serving."""
    import numpy as np

    from edgefleet.bundle import Bundle, pack
    from edgefleet.device import Device, GrpcTransport

    from .admin import AdminClient
    from .server import Server, ServerConfig

    started = time.perf_counter()
    say = log or (lambda msg: None)
    work = Path(workdir)
    work.mkdir(parents=True, exist_ok=True)
    bundle = Bundle.open(bundle_dir)
    from edgefleet.keys import require_trusted
    require_trusted(bundle, trusted_key, allow_unsigned=allow_unsigned, what="simulate")
    x_all, y_all = inputs if inputs is not None else load_inputs(bundle)
    rng = np.random.default_rng(seed)
    names = [f"cohort-{i}" for i in range(cohorts)]
    shifted = names[-1]
    admin_token = secrets.token_urlsafe(16)
    config = ServerConfig(init=True, store=f"sqlite:///{work / f'coordinator-{int(time.time() * 1000)}.db'}",
                          admin_token=admin_token, evaluate_interval_s=None, trusted_key=trusted_key,
                          allow_unsigned=allow_unsigned)
    fleet, decisions = [], []
    with Server(config) as server:
        say(f"coordinator on {server.grpc_target} (gRPC), {server.http_url} (HTTP)")
        admin = AdminClient(server.grpc_target, admin_token)
        published = admin.publish_bundle(pack(bundle.path, work / "bundle.tar.gz").read_bytes())
        tokens = {}
        for name in names:
            admin.set_baseline(name, published["version"])
            tokens[name] = admin.create_enrollment_token(name, uses=devices)
        for i in range(devices):
            cohort = names[i % cohorts]
            dev = Device(bundle.path, work / "devices" / f"device-{i:03d}", transport=GrpcTransport(server.grpc_target),
                         enrollment_token=tokens[cohort], trusted_key=trusted_key, window_size=batch,
                         allow_unsigned=allow_unsigned,
                         hardware="simulated")
            fleet.append((dev, cohort))
        say(f"{devices} devices in {cohorts} cohorts; shifted inputs in {shifted}")
        for r in range(rounds):
            for dev, cohort in fleet:
                idx = rng.choice(len(x_all), size=2 * batch, replace=False)
                x, y = x_all[idx], y_all[idx]
                if cohort == shifted:
                    x = shift_inputs(x, rng)
                for half in (slice(0, batch), slice(batch, 2 * batch)):
                    preds = dev.predict(x[half])
                    for p, label in zip(preds, y[half]):
                        if rng.random() < label_share:
                            dev.feedback(p.prediction_id, int(label))
                dev.sync()
            made = admin.evaluate()
            decisions += made
            for d in made:
                say(f"round {r + 1}: {d['kind']} for {d['cohort']}: {d['evidence'].get('why', '')}")
        for dev, _ in fleet:  # pick up the last decisions
            dev.sync(close_window=True)
        summary_cohorts = {}
        for name in names:
            members = [d for d, c in fleet if c == name]
            state, revision = server.store.get_cohort(name)
            n, correct = server.store.label_stats(name, published["version"])
            scores = server.store.list_scores(name)
            summary_cohorts[name] = {
                "devices": len(members), "shifted": name == shifted,
                "serving": sorted({d.artifact for d in members}),
                "fallback": state.get("fallback_artifact") or (state.get("fallback") or {}).get("version", ""),
                "label_accuracy": round(correct / n, 4) if n else None, "labels": n,
                "last_stats": {"verdict": scores[-1]["stats"]["verdict"]["state"],
                               "status": scores[-1]["stats"]["verdict"]["status"],
                               **{k: scores[-1]["stats"][k] for k in ("p_value", "effect", "estimated_accuracy",
                                                                      "samples", "windows")}} if scores else {},
            }
        summary = {"devices": devices, "cohorts": summary_cohorts, "shifted_cohort": shifted,
                   "model_version": published["version"], "windows_stored": server.store.count_windows(),
                   "decisions": [d for d in admin.list_decisions() if d["kind"] != "manual"],
                   "elapsed_s": round(time.perf_counter() - started, 2)}
        admin.close()
        for dev, _ in fleet:
            dev.close()
    return summary


def format_summary(summary: dict) -> str:
    """A short human-readable report of :func:`run_fleet_demo`'s result."""
    lines = [f"fleet: {summary['devices']} devices, model {summary['model_version']}, "
             f"{summary['windows_stored']} telemetry windows stored in {summary['elapsed_s']} s",
             f"{'cohort':<10} {'devices':>7} {'shifted':>7} {'status':>8} {'p':>9} {'effect':>6} {'est.acc':>7} "
             f"{'label acc':>9}  serving now"]
    for name, c in summary["cohorts"].items():
        s = c["last_stats"]
        lines.append(f"{name:<10} {c['devices']:>7} {'yes' if c['shifted'] else 'no':>7} "
                     f"{s.get('status', '-'):>8} {s.get('p_value', float('nan')):>9.2g} "
                     f"{s.get('effect', float('nan')):>6.3f} "
                     f"{s.get('estimated_accuracy') or float('nan'):>7.3f} "
                     f"{c['label_accuracy'] if c['label_accuracy'] is not None else float('nan'):>9.3f}  "
                     f"{', '.join(c['serving'])}{'  (fallback: ' + c['fallback'] + ')' if c['fallback'] else ''}")
    if summary["decisions"]:
        lines.append("decisions:")
        for d in summary["decisions"]:
            lines.append(f"  #{d['id']} {d['kind']} for {d['cohort']} (model {d['model_version']}): "
                         f"{d['evidence'].get('why', '')}")
    else:
        lines.append("decisions: none")
    return "\n".join(lines)
