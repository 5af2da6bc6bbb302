"""The device SDK with an embedding bundle (token ids in) and a model with two named inputs."""

from __future__ import annotations

import numpy as np
import pytest

from edgefleet import DataError, Device
from edgefleet.compress.pipeline import ExportConfig, run_export


@pytest.fixture(scope="module")
def embedding_bundle(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("emb")
    rng = np.random.default_rng(0)
    topic = rng.integers(0, 4, 400)
    np.savez(tmp / "t.npz", x=topic[:, None] * 10 + rng.integers(0, 10, (400, 12)))
    r = run_export(ExportConfig(model="tests.fixtures.models:token_encoder", data=str(tmp / "t.npz"), task="embedding",
                                targets=("onnx-int8", "efm-int8"), measure_latency=False, out=str(tmp / "b")))
    return r.bundle.path, topic


def test_device_predicts_embeddings_from_token_ids(embedding_bundle, tmp_path):
    path, _ = embedding_bundle
    dev = Device(path, tmp_path, window_size=10, allow_unsigned=True)  # run_export does not sign unless asked
    ids = np.random.default_rng(1).integers(0, 40, (12, 12))
    preds = dev.predict(ids)
    assert len(preds) == 12 and all(len(p.output) == 16 for p in preds)
    assert all(0.0 <= p.confidence <= 1.0 for p in preds)  # cosine to the nearest reference centroid
    w = dev.queue.windows()[0]
    assert w["count"] == 12 and sum(w["class_counts"]) == 12 and len(w["class_counts"]) == 8
    one = dev.predict(ids[0])  # one row without the batch axis
    assert np.allclose(one[0].output, preds[0].output)
    with pytest.raises(DataError, match="outside the valid range"):
        dev.predict(np.full((1, 12), 40))
    with pytest.raises(DataError, match="expects int64 values, got float"):
        dev.predict(np.zeros((1, 12), np.float32) + 0.5)
    assert dev.engine.position == 0  # a bad input is the caller's error: the fallback chain did not move
