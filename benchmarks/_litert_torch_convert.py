"""Worker of tflite_bench.py, run *inside the benchmark venv* that holds litert-torch (never edgefleet's).

    bench-venv/litert-torch/bin/python benchmarks/_litert_torch_convert.py WORKDIR

Reads WORKDIR/spec.json ({"models": [{"name", "state_dict", "sample", "calibration"}]}), builds each
zoo model from compress/zoo.py (torch only, loaded by path: edgefleet is not installed here), and
writes litert-torch's conversions: WORKDIR/<name>.lt.fp32.tflite and, with its PT2E static int8 recipe
(per-channel symmetric weights, calibrated on the same samples as ours), WORKDIR/<name>.lt.int8.tflite.
Results (times, errors) go to WORKDIR/litert_torch.json.
"""

from __future__ import annotations

import importlib.util
import json
import sys
import time
import traceback
from pathlib import Path

import numpy as np
import torch

ZOO = Path(__file__).resolve().parents[1] / "compress" / "zoo.py"


def _zoo():
    spec = importlib.util.spec_from_file_location("edgefleet_zoo", ZOO)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _int8(model, sample, calibration):
    import litert_torch
    from litert_torch.quantize import pt2e_quantizer
    from litert_torch.quantize.quant_config import QuantConfig
    from torchao.quantization.pt2e import quantize_pt2e

    quantizer = pt2e_quantizer.PT2EQuantizer().set_global(
        pt2e_quantizer.get_symmetric_quantization_config(is_per_channel=True, is_dynamic=False))
    m = torch.export.export(model, (sample,)).module()
    m = quantize_pt2e.prepare_pt2e(m, quantizer)
    with torch.no_grad():
        for i in range(len(calibration)):
            m(calibration[i:i + 1])
    m = quantize_pt2e.convert_pt2e(m, fold_quantize=False)
    return litert_torch.convert(m, (sample,), quant_config=QuantConfig(pt2e_quantizer=quantizer))


def main(workdir: Path) -> None:
    import litert_torch

    zoo = _zoo()
    spec = json.loads((workdir / "spec.json").read_text())
    results = {"litert_torch": getattr(litert_torch, "__version__", "?"), "torch": torch.__version__, "models": {}}
    for item in spec["models"]:
        name = item["name"]
        torch.manual_seed(0)
        model = getattr(zoo, name)().eval()
        model.load_state_dict(torch.load(item["state_dict"]))
        sample = torch.from_numpy(np.load(item["sample"]))
        calibration = torch.from_numpy(np.load(item["calibration"]))
        out: dict = {}
        for precision, build in (("fp32", lambda: litert_torch.convert(model, (sample,))),
                                 ("int8", lambda: _int8(model, sample, calibration))):
            path = workdir / f"{name}.lt.{precision}.tflite"
            t0 = time.perf_counter()
            try:
                build().export(str(path))
                out[precision] = {"file": str(path), "convert_s": time.perf_counter() - t0}
            except Exception as e:  # recorded, reported by the benchmark: one failure must not hide the others
                out[precision] = {"error": f"{type(e).__name__}: {e}"[:2000], "trace": traceback.format_exc()[-3000:]}
            print(name, precision, "ok" if "file" in out[precision] else out[precision]["error"][:300], flush=True)
        results["models"][name] = out
    (workdir / "litert_torch.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
