"""Compression passes, one registry keyed by name: ``prune``, ``lowrank``, ``distill``, ``quantize``."""

from .base import Param, Pass, PassResult, get_pass, pass_names, register_pass

__all__ = ["Param", "Pass", "PassResult", "get_pass", "pass_names", "register_pass"]
