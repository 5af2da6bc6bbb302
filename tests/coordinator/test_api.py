"""The coordinator's and the device SDK's public names resolve; importing edgefleet stays light."""

import importlib
import subprocess
import sys


def test_all_names_resolve():
    for module in ("edgefleet.coordinator", "edgefleet.device", "edgefleet.coordinator.store",
                   "edgefleet.coordinator.rules", "edgefleet.coordinator.drift", "edgefleet.coordinator.simulate"):
        mod = importlib.import_module(module)
        for name in mod.__all__:
            assert getattr(mod, name) is not None, f"{module}.{name}"
    import edgefleet
    assert edgefleet.Device is importlib.import_module("edgefleet.device").Device


def test_device_import_needs_neither_grpc_nor_numpy():
    code = ("import sys; import edgefleet; edgefleet.Device; "
            "print(sorted(m for m in ('grpc', 'numpy', 'google.protobuf', 'onnxruntime') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"
