"""Every deployable zoo family, built small, goes through capture -> int8 quantization -> every
exporter -> its runtime, and each artifact passes the parity gate against the reference interpreters."""

import numpy as np
import pytest

from edgefleet import runtimes
from edgefleet.compress import zoo
from edgefleet.compress.capture import capture
from edgefleet.compress.ir import run_float
from edgefleet.compress.ir.quantize import quantize_graph
from edgefleet.compress.verify import int8_tolerance, parity, parity_ok
from edgefleet.runtimes import exporters

SHAPE = (3, 32, 32)
#: each family at a width (and depth) that captures in seconds; the architecture is the paper's
SMALL = {
    "mobilenet_v2": dict(width=0.25, num_classes=10),
    "mobilenet_v3_small": dict(width=0.25, num_classes=10),
    "efficientnet_b0": dict(width=0.25, depth=0.34, num_classes=10),
    "resnet18": dict(width=0.125, num_classes=10),
    "vit_tiny": dict(width=0.25, depth=2, image_size=32, patch=8, num_classes=10),
}

@pytest.mark.parametrize("name", list(SMALL))
def test_family_captures_quantizes_and_exports_everywhere(name, tmp_path):
    import torch
    torch.manual_seed(0)
    model = getattr(zoo, name)(**SMALL[name]).eval()
    graph = capture(model, SHAPE)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((24, *SHAPE)).astype(np.float32)
    with torch.no_grad():
        want = model(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(run_float(graph, x)["output"], want, atol=1e-3, rtol=1e-3)
    qgraph = quantize_graph(graph, [x[:16]])
    held_out = x[16:]
    for target in exporters.targets():
        exporter = exporters.get(target)()
        path = exporter.export(qgraph if exporter.precision == "int8" else graph, tmp_path / target)
        rt = runtimes.load(exporter.runtime, path, threads=1)
        out = rt.run(held_out)[rt.output_names[0]]
        p = parity(exporter.precision, out, graph, qgraph, held_out)
        ok, why = parity_ok(exporter.precision, p, int8_tolerance(qgraph))
        assert ok, f"{name} {target}: {why}"


def test_full_size_families_have_the_papers_parameter_counts():
    """At width 1.0 and 1000 classes the families are the published networks (counts within 1%)."""
    published = {"mobilenet_v2": 3_504_872, "mobilenet_v3_small": 2_542_856, "efficientnet_b0": 5_288_548,
                  "resnet18": 11_689_512, "vit_tiny": 5_717_416}
    for name, count in published.items():
        model = getattr(zoo, name)()
        params = sum(p.numel() for p in model.parameters())
        assert abs(params - count) / count < 0.01, (name, params, count)
