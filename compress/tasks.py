"""What a model is for, and how its quality is measured: ``classifier``, ``embedding``, ``regression``.

Each task is defined once here: the labels it needs, the metric the accuracy budget is expressed in,
how an output is judged against the fp32 teacher (fidelity), the training and distillation losses,
and its default budget. The pipeline, the passes, verification and the report ask the task instead
of assuming class logits.

=============  ============================  ==============================  ======================
task           metric (the budget's unit)    fidelity to the fp32 teacher     default ``max_drop``
=============  ============================  ==============================  ======================
classifier     accuracy, % (drop in points)  top-1 agreement, max |diff|      1.0 point
embedding      mean cosine to the teacher    mean and 1st-percentile cosine,  0.01 (cosine >= 0.99)
               (drop = 1 - cosine)           recall@10 of fp32 neighbours
regression     MAE (increase, target units)  MAE to the teacher, max |diff|   10 % of the teacher's
                                                                              validation MAE
=============  ============================  ==============================  ======================

>>> get_task("embedding").score(np.eye(3), None, np.eye(3))
1.0
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from edgefleet._errors import ConfigError, DataError, ModelError

#: neighbours compared by the embedding task's retrieval fidelity
RECALL_K = 10


def _flat(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a, np.float64)
    return a.reshape(len(a), -1)


def cosine_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine similarity of each row of ``a`` with the same row of ``b`` (samples flattened)."""
    a, b = _flat(a), _flat(b)
    na, nb = np.linalg.norm(a, axis=1), np.linalg.norm(b, axis=1)
    return (a * b).sum(axis=1) / np.maximum(na * nb, 1e-12)


def recall_at_k(outputs: np.ndarray, reference: np.ndarray, k: int = RECALL_K) -> float:
    """Share of each sample's ``k`` nearest neighbours (cosine, among the other samples) under the
    reference embeddings that are also among its ``k`` nearest under ``outputs``."""
    n = len(outputs)
    k = min(k, n - 1)
    if k <= 0:
        return 1.0

    def neighbours(e):
        e = _flat(e)
        e = e / np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-12)
        sim = e @ e.T
        np.fill_diagonal(sim, -np.inf)
        return np.argpartition(-sim, k - 1, axis=1)[:, :k]

    got, want = neighbours(outputs), neighbours(reference)
    hits = sum(len(np.intersect1d(g, w, assume_unique=True)) for g, w in zip(got, want))
    return float(hits / (n * k))


class Task:
    kind: ClassVar[str] = ""          # the manifest's task.kind
    metric: ClassVar[str] = ""        # the budget's metric
    higher_is_better: ClassVar[bool] = True
    needs_labels: ClassVar[bool] = True

    def check_labels(self, y: np.ndarray | None, where: str) -> np.ndarray | None:
        raise NotImplementedError

    def check_output(self, out_shape: tuple, n_classes: int | None, y_shape: tuple | None) -> None:
        if len(out_shape) < 2:
            raise ModelError(f"the model must return one [batch, ...] tensor, got shape {list(out_shape)}")

    def score(self, outputs: np.ndarray, y: np.ndarray | None, teacher_outputs: np.ndarray) -> float:
        raise NotImplementedError

    def drop(self, teacher_score: float, score: float) -> float:
        """How much worse ``score`` is than the teacher's, in the metric's unit (positive = worse)."""
        return teacher_score - score if self.higher_is_better else score - teacher_score

    def default_max_drop(self, teacher_score: float) -> float:
        raise NotImplementedError

    def fidelity(self, outputs: np.ndarray, teacher_outputs: np.ndarray) -> dict:
        raise NotImplementedError

    def format(self, score: float) -> str:
        return f"{score:.4f}"

    # torch losses (imported lazily: the task table is usable without torch)
    def loss(self, out, y):
        raise NotImplementedError

    def distill_loss(self, out, teacher_out, temperature: float):
        import torch.nn.functional as F
        return F.mse_loss(out, teacher_out)


class Classifier(Task):
    kind = "classifier"
    metric = "accuracy"

    def check_labels(self, y, where):
        if y is None:
            raise DataError(f"{where}: a classifier needs labels y")
        if y.ndim != 1:
            raise DataError(f"{where}: y must be a 1-D array of class labels, got shape {list(y.shape)}")
        if y.dtype.kind not in "iu":
            if y.dtype.kind == "f" and np.all(np.mod(y, 1) == 0):
                y = y.astype(np.int64)
            else:
                raise DataError(f"{where}: y has dtype {y.dtype}; expected integer class labels "
                                f"(use --task regression for real-valued targets)")
        if len(y) and y.min() < 0:
            raise DataError(f"{where}: y holds negative class labels")
        return y.astype(np.int64)

    def check_output(self, out_shape, n_classes, y_shape):
        if len(out_shape) != 2:
            raise ModelError(f"a classifier must return one [batch, classes] tensor, got shape {list(out_shape)} "
                             f"(choose --task embedding or --task regression for other outputs)")
        if n_classes is not None and out_shape[1] < n_classes:
            raise DataError(f"the model has {out_shape[1]} outputs but the data has {n_classes} classes")

    def score(self, outputs, y, teacher_outputs):
        return float((np.asarray(outputs).argmax(axis=1) == y).mean() * 100.0)

    def default_max_drop(self, teacher_score):
        return 1.0

    def fidelity(self, outputs, teacher_outputs):
        return {"teacher_agreement": float((outputs.argmax(1) == teacher_outputs.argmax(1)).mean() * 100),
                "max_abs_diff_vs_teacher": float(np.abs(outputs - teacher_outputs).max())}

    def format(self, score):
        return f"{score:.2f}%"

    def loss(self, out, y):
        import torch.nn.functional as F
        return F.cross_entropy(out, y)

    def distill_loss(self, out, teacher_out, temperature):
        import torch.nn.functional as F
        return F.kl_div(F.log_softmax(out / temperature, 1), F.softmax(teacher_out / temperature, 1),
                        reduction="batchmean") * temperature ** 2


class Embedding(Task):
    kind = "embedding"
    metric = "cosine"
    needs_labels = False

    def check_labels(self, y, where):
        return None if y is None else np.asarray(y)

    def score(self, outputs, y, teacher_outputs):
        return float(cosine_rows(outputs, teacher_outputs).mean())

    def default_max_drop(self, teacher_score):
        return 0.01

    def fidelity(self, outputs, teacher_outputs):
        cos = cosine_rows(outputs, teacher_outputs)
        return {"mean_cosine": float(cos.mean()), "p1_cosine": float(np.percentile(cos, 1)),
                f"recall@{RECALL_K}": recall_at_k(outputs, teacher_outputs)}

    def loss(self, out, y):
        raise ConfigError("an embedding model has no labels to train on; distil it from its teacher instead")

    def distill_loss(self, out, teacher_out, temperature):
        import torch.nn.functional as F
        a, b = out.flatten(1), teacher_out.flatten(1)
        return F.mse_loss(a, b) + (1 - F.cosine_similarity(a, b, dim=1)).mean()


class Regression(Task):
    kind = "regression"
    metric = "mae"
    higher_is_better = False

    def check_labels(self, y, where):
        if y is None:
            raise DataError(f"{where}: a regression needs targets y")
        if y.dtype.kind not in "fiu":
            raise DataError(f"{where}: y has dtype {y.dtype}; expected numeric targets")
        y = y.astype(np.float32)
        if not np.isfinite(y).all():
            raise DataError(f"{where}: y holds NaN or infinite targets")
        return y

    def check_output(self, out_shape, n_classes, y_shape):
        super().check_output(out_shape, n_classes, y_shape)
        per = int(np.prod(out_shape[1:]))
        want = int(np.prod(y_shape[1:])) if y_shape is not None else per
        if per != want:
            raise DataError(f"the model returns {per} value(s) per sample but the targets have {want}")

    def score(self, outputs, y, teacher_outputs):
        return float(np.abs(_flat(outputs) - _flat(y)).mean())

    def default_max_drop(self, teacher_score):
        return 0.1 * teacher_score

    def fidelity(self, outputs, teacher_outputs):
        d = np.abs(_flat(outputs) - _flat(teacher_outputs))
        return {"mae_vs_teacher": float(d.mean()), "max_abs_diff_vs_teacher": float(d.max())}

    def loss(self, out, y):
        import torch.nn.functional as F
        return F.mse_loss(out.reshape(y.shape), y)


TASKS: dict[str, Task] = {t.kind: t for t in (Classifier(), Embedding(), Regression())}


def get_task(name: str) -> Task:
    try:
        return TASKS[name]
    except KeyError:
        raise ConfigError(f"unknown task {name!r}; expected one of {', '.join(TASKS)}") from None
