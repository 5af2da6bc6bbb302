"""Small, seeded training loops shared by the teacher, ``distill`` and QAT (CPU, full determinism)."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from . import batch as B
from .tasks import get_task


def seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed % (2 ** 32))
    torch.use_deterministic_algorithms(True, warn_only=True)


def _progress(total: int, desc: str, enabled: bool):
    if not enabled:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:  # pragma: no cover
        return None
    return tqdm(total=total, desc=desc, unit="epoch", leave=False, dynamic_ncols=True)


@torch.no_grad()
def predict_logits(model: nn.Module, x: B.Batch, batch: int = 512) -> np.ndarray:
    """The model's outputs on ``x`` (one array or named inputs), in batches."""
    model.eval()
    n = B.size(x)
    batch = min(batch, max(8, B.chunk_size(x, batch)))  # bounded activation memory for large inputs
    outs = [model(*B.torch_args(B.take(x, slice(i, i + batch)))).float().numpy() for i in range(0, n, batch)]
    return np.concatenate(outs)


def accuracy(logits: np.ndarray, y: np.ndarray) -> float:
    return float((logits.argmax(axis=1) == y).mean() * 100.0)


def fit(model: nn.Module, x: B.Batch, y: np.ndarray | None = None, *, teacher: nn.Module | None = None,
        epochs: int = 20, lr: float = 3e-3, batch: int = 64, temperature: float = 4.0, alpha: float = 0.5,
        seed: int = 0, weight_decay: float = 1e-4, progress: bool = False, desc: str = "train",
        before_step=None, task: str = "classifier") -> nn.Module:
    """Train ``model`` on labels ``y``, a teacher's outputs, or both (Hinton KD for a classifier).

    With a teacher, the loss is ``alpha * distill + (1 - alpha) * task loss(y)`` where, for a
    classifier, distill is ``T^2 * KL(student/T || teacher/T)`` and the task loss cross-entropy
    (see :mod:`edgefleet.compress.tasks` for the others); ``alpha = 1`` when ``y`` is None
    (unlabelled distillation). ``before_step(model)`` runs before every optimizer step (QAT hooks use it).
    """
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    spec = get_task(task)
    xt = B.torch_args(x)
    n = B.size(x)
    yt = torch.from_numpy(y) if y is not None else None
    soft = None
    if teacher is not None:
        teacher.eval()
        soft = torch.from_numpy(predict_logits(teacher, x))
        if yt is None:
            alpha = 1.0
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    steps = epochs * ((n + batch - 1) // batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=max(steps, 1))
    bar = _progress(epochs, desc, progress)
    for _ in range(epochs):
        model.train()
        perm = torch.randperm(n, generator=gen)
        for i in range(0, n, batch):
            idx = perm[i:i + batch]
            out = model(*(t[idx] for t in xt))
            loss = torch.zeros(())
            if soft is not None:
                loss = loss + alpha * spec.distill_loss(out, soft[idx], temperature)
            if yt is not None and alpha < 1.0:
                loss = loss + (1 - alpha) * spec.loss(out, yt[idx])
            opt.zero_grad()
            loss.backward()
            if before_step is not None:
                before_step(model)
            opt.step()
            sched.step()
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    return model.eval()
