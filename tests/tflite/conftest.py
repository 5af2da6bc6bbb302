"""Fixtures of the TFLite tests: the zoo models captured and quantized once per session."""

from __future__ import annotations

import pytest

pytest.importorskip("tflite", reason="the TFLite exporter needs pip install 'edgefleet[tflite]'")
pytest.importorskip("ai_edge_litert", reason="LiteRT tests need pip install 'edgefleet[litert]'")

from _tfl_helpers import Built  # noqa: E402

_ZOO_CACHE: dict[str, Built] = {}


@pytest.fixture(scope="session")
def zoo_built():
    """``zoo_built(name)`` -> :class:`Built` for a zoo model (seeded weights), built once per session."""
    import torch

    from edgefleet.compress import zoo

    def get(name: str) -> Built:
        if name not in _ZOO_CACHE:
            torch.manual_seed(0)
            _ZOO_CACHE[name] = Built(getattr(zoo, name)(), zoo.INPUT_SHAPES[name])
        return _ZOO_CACHE[name]

    return get
