"""The binding releases the GIL while the C interpreter runs, and one Model is safe to share
between threads (runs on it are serialised by a lock; results are unaffected)."""

import threading
import time

import numpy as np

from edgefleet import _native
from edgefleet.compress.ir import run_int
from edgefleet.runtimes.exporters.efm_export import build_efm

from .opgraphs import build, quantized, weights


def heavy_model(threads=None):
    rng = np.random.default_rng(0)
    nodes = [("linear", ["x"], "h", {"act": "relu"}, {"weight": weights(rng, 1024, 1024), "bias": weights(rng, 1024)}),
             ("linear", ["h"], "y", {"act": "none"}, {"weight": weights(rng, 1024, 1024), "bias": weights(rng, 1024)})]
    qg = quantized(build((1024,), nodes, "y"), rng, (1024,))
    return _native.Model.from_bytes(build_efm(qg), threads=threads), qg


def test_python_keeps_running_while_native_runs():
    """If a run held the GIL, the main thread could not execute a single bytecode while it lasts:
    none of its time stamps could fall in the first half of a run (the second half may see it
    take the GIL back as the call returns). With the GIL released it keeps stamping throughout.
    No speed threshold: a loaded machine slows both threads alike. (One intra-op thread, so the
    pool does not compete with this thread for the cores.)"""
    model, _ = heavy_model(threads=1)
    x = np.random.default_rng(1).standard_normal((4096, 1024)).astype(np.float32)
    stamps, runs = [], []
    done = threading.Event()

    def work():
        for _ in range(4):
            t0 = time.perf_counter()
            model.run([x])
            runs.append((t0, time.perf_counter()))
        done.set()

    t = threading.Thread(target=work)
    t.start()
    i = 0
    while not done.is_set():
        i += 1
        if i % 256 == 0:
            stamps.append(time.perf_counter())
    t.join()
    inside = sum(1 for t0, t1 in runs for s in stamps if t0 < s < (t0 + t1) / 2)
    assert inside > 0, f"the main thread never ran during the first half of a native run ({len(stamps)} stamps)"


def test_one_model_shared_by_threads_gives_the_reference_everywhere():
    model, qg = heavy_model()
    rng = np.random.default_rng(2)
    xs = [rng.standard_normal((b, 1024)).astype(np.float32) for b in (1, 3, 8, 1, 5, 2)]
    results = [None] * len(xs)

    def run(i):
        results[i] = model.run([xs[i]], raw=True)[0]

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(xs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for x, got in zip(xs, results):
        np.testing.assert_array_equal(got, run_int(qg, x, raw=True)["y"])
