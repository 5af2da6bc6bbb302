"""Compression passes, one registry keyed by name: ``prune``, ``lowrank``, ``distill``, ``quantize``, and for
BERT-layout transformers ``prune_heads`` and ``distill_hidden``."""

from .base import Param, Pass, PassResult, get_pass, pass_names, register_pass

__all__ = ["Param", "Pass", "PassResult", "get_pass", "pass_names", "register_pass"]
