"""Shared fixtures: one real digits teacher and one real exported bundle per test session."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def pytest_configure(config):
    # a project signing key for the session (what `edgefleet keys init` makes); subprocesses inherit it
    import os
    import tempfile
    if not os.environ.get("EDGEFLEET_KEY_DIR"):
        from edgefleet.keys import init_key
        directory = Path(tempfile.mkdtemp(prefix="edgefleet-test-keys-")) / ".edgefleet"
        init_key(directory)
        os.environ["EDGEFLEET_KEY_DIR"] = str(directory)
    # one intra-op thread: on 2 cores shared with subprocess servers, torch's default thread pool
    # oversubscribes and multiplies wall time; results do not depend on it.
    try:
        import torch
        torch.set_num_threads(1)
    except ImportError:
        pass


@pytest.fixture(scope="session")
def digits_data():
    from edgefleet.compress.data import load_dataset
    return load_dataset("digits", seed=0)


@pytest.fixture(scope="session")
def digits_teacher_weights(tmp_path_factory, digits_data):
    """A trained digits CNN teacher (state_dict file), trained once per session."""
    import torch

    from edgefleet.compress import zoo
    from edgefleet.compress.train import fit, seed_everything

    seed_everything(0)
    model = fit(zoo.digits_cnn(), digits_data.x_train, digits_data.y_train, epochs=20, seed=0)
    path = tmp_path_factory.mktemp("teacher") / "digits_cnn.pt"
    torch.save(copy.deepcopy(model).state_dict(), path)
    return path


@pytest.fixture(scope="session")
def digits_export(tmp_path_factory, digits_teacher_weights):
    """The default recipe's export result for the digits teacher (a real bundle on disk)."""
    from edgefleet.compress.pipeline import ExportConfig, run_export

    from edgefleet.keys import project_private_key
    out = tmp_path_factory.mktemp("bundles") / "digits"
    key, key_path = project_private_key()
    cfg = ExportConfig(model="edgefleet.compress.zoo:digits_cnn", weights=str(digits_teacher_weights), data="digits",
                       recipe="default", out=str(out), measure_latency=False, signing_key=key,
                       signing_key_path=str(key_path))
    return run_export(cfg)


@pytest.fixture(scope="session")
def digits_bundle(digits_export):
    """Path to a real exported digits bundle (onnx-fp32 + onnx-int8 + every other registered target that passed)."""
    return digits_export.bundle.path
