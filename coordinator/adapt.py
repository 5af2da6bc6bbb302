"""Adaptation jobs: the ladder's last rung. A worker takes a job from the store's queue, fine-tunes the
teacher (every layer by default, or only its head) on the cohort's opted-in labelled examples plus the
original training data, runs the normal export pipeline (accuracy budget, parity gate, signature), publishes the result as a new
version and starts it as a canary on that cohort only; the policy engine's canary rule promotes or
rolls it back on realized accuracy.

Queue semantics (``Store.claim_job``): a worker holds a job for ``lease_s``; a worker that dies loses
the lease and the job runs again on the next claim (``attempts`` + 1, at most ``max_attempts``). A
bundle is published in one store transaction after the export finished and verified, so a killed
job publishes nothing; a retry that finds its version already published reuses it.

    edgefleet worker --store postgresql://.../fleet --weights teacher.pt --signing-key key.pem

>>> cfg = WorkerConfig(store="sqlite:///fleet.db", weights="teacher.pt")    # doctest: +SKIP
>>> run_worker(cfg, once=True)                                                # doctest: +SKIP
"""

from __future__ import annotations

import os
import socket
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from edgefleet._errors import BudgetError, EdgefleetError

__all__ = ["WorkerConfig", "run_worker", "run_job", "MIN_EXAMPLES"]

#: fewer labelled examples than this: the job fails with the reason (nothing to adapt on)
MIN_EXAMPLES = 20


@dataclass
class WorkerConfig:
    store: str
    weights: str                       # the teacher's state dict (the model factory is the bundle's provenance)
    model: str | None = None           # override the bundle's model factory
    data: str | None = None            # the original data set (a built-in name or .npz path; default: provenance)
    signing_key: bytes | None = None   # sign the adapted bundle (the coordinator's trusted key must match)
    trusted_key: bytes | None = None   # refuse to publish a bundle not signed by this key
    lease_s: float = 600.0
    max_attempts: int = 3
    epochs: int = 15
    example_weight: int = 5            # each example counts this many times against the original data
    layers: str = "all"                # "all" layers or only the "head" (edgefleet.compress.adapt.fine_tune)
    augment: int = 5                   # jittered copies of each image example (0: none)
    worker_id: str = ""


def run_worker(cfg: WorkerConfig, *, once: bool = False, poll_s: float = 1.0, log=print) -> int:
    """Take and run jobs until none is left (``once``) or forever; return how many were finished."""
    from .store import open_store

    store = open_store(cfg.store)
    worker = cfg.worker_id or f"{socket.gethostname()}:{os.getpid()}"
    done = 0
    try:
        while True:
            store.fail_exhausted_jobs(cfg.max_attempts)
            job = store.claim_job(worker, int(cfg.lease_s * 1000), cfg.max_attempts)
            if job is None:
                if once:
                    return done
                time.sleep(poll_s)
                continue
            log(f"worker {worker}: job #{job['id']} ({job['kind']} for {job['cohort']}, attempt {job['attempts']})")
            status, result = run_job(store, job, cfg)
            if store.finish_job(job["id"], worker, status, result):
                done += 1
            log(f"worker {worker}: job #{job['id']} {status}: {result.get('reason') or result.get('version', '')}")
    finally:
        store.close()


def run_job(store, job: dict, cfg: WorkerConfig) -> tuple[str, dict]:
    """(status, result) of one adaptation job; "failed" results carry the reason, nothing published."""
    try:
        return "done", _adapt(store, job, cfg)
    except (BudgetError, EdgefleetError, ValueError) as e:
        return "failed", {"reason": f"{type(e).__name__}: {e}"}


def _adapt(store, job: dict, cfg: WorkerConfig) -> dict:
    import numpy as np

    from edgefleet.bundle import pack
    from edgefleet.compress.adapt import fine_tune, save_weights
    from edgefleet.compress.data import load_dataset
    from edgefleet.compress.model_loading import load_model
    from edgefleet.compress.pipeline import ExportConfig, run_export
    from edgefleet.compress.recipe import Recipe

    payload = job["payload"]
    cohort, base = job["cohort"], payload["version"]
    found = store.bundle_by_version(base)
    if found is None:
        raise EdgefleetError(f"version {base} is not published")
    manifest = found[1]
    prov = manifest["provenance"]
    examples = store.list_examples(cohort)
    if len(examples) < MIN_EXAMPLES:
        raise EdgefleetError(f"cohort {cohort}: {len(examples)} labelled examples, at least {MIN_EXAMPLES} needed")
    shape = tuple(manifest["inputs"][0]["shape"][1:])
    x_ex = np.stack([np.frombuffer(e["data"], dtype="<f4").reshape(shape) for e in examples]).astype(np.float32)
    y_ex = np.asarray([e["label"] for e in examples], dtype=np.int64)
    data_spec = cfg.data or prov["data"]["name"]
    data = load_dataset(data_spec, seed=prov.get("seed", 0))
    model_spec = cfg.model or prov["model"]
    teacher = load_model(model_spec, cfg.weights)
    adapted, report = fine_tune(teacher, data, x_ex, y_ex, layers=cfg.layers, epochs=cfg.epochs,
                                example_weight=cfg.example_weight, augment=cfg.augment, seed=prov.get("seed", 0))
    max_drop = float(payload.get("max_drop", prov.get("max_drop", 1.0)))
    if report["val_after"] < report["val_before"] - max_drop:
        raise BudgetError(f"the adapted teacher lost {report['val_before'] - report['val_after']:.2f} points on the "
                          f"original validation data (budget {max_drop}); not published")
    version = f"{base}+adapt.{job['id']}"
    with tempfile.TemporaryDirectory(prefix="edgefleet-adapt-") as tmp:
        weights = save_weights(adapted, Path(tmp, "adapted.pt"))
        out = Path(tmp, "bundle")
        result = run_export(ExportConfig(
            model=model_spec, weights=str(weights), data=data_spec,
            recipe=Recipe.from_dict(prov["recipe"]), max_drop=max_drop, out=str(out),
            name=manifest["model"]["name"], version=version, seed=prov.get("seed", 0), measure_latency=False,
            signing_key=cfg.signing_key))
        archive = pack(out, Path(tmp, "bundle.tar.gz")).read_bytes()
        published = _publish(store, archive, version, cfg)
    share = float(payload.get("canary_share", 0.5))
    target = {"version": version, "digest": published}
    _, now = store.get_cohort(cohort)
    target["since_revision"] = now + 1  # compared with the baseline on labels from its start on
    state, revision = store.update_cohort(cohort, {"canary": target, "canary_share": share,
                                                   "reason": f"adaptation job #{job['id']}: canary {version}"})
    evidence = {"why": f"adaptation job #{job['id']}: {len(examples)} labelled examples; canary {version} on "
                       f"{share:.0%} of {cohort}", "job": job["id"], "examples": len(examples), **report,
                "policy_revision": revision, "rung": "adapt",
                "int8_val_accuracy": result.attempts[-1].int8_val_score}
    store.add_decision(cohort, "adaptation_canary", version, evidence)
    store.delete_examples([e["id"] for e in examples])  # used: deleted, as the cohort was promised
    return {"version": version, "digest": published, "examples": len(examples), **report}


def _publish(store, archive: bytes, version: str, cfg: WorkerConfig) -> str:
    """Publish (verified) in one store transaction; a retry finding its version published reuses it."""
    from edgefleet._signing import public_key

    from .service import Coordinator

    existing = store.bundle_by_version(version)
    if existing is not None:
        return existing[0]
    # the worker checks its own signature (or the one it is told to trust); serving coordinators check
    # every archive against their trusted key again before they hand it out
    trusted = cfg.trusted_key or (public_key(cfg.signing_key) if cfg.signing_key else None)
    return Coordinator(store, admin_token="adaptation-worker", trusted_key=trusted).publish_bundle(archive)["digest"]
