"""The cross-runtime parity suite for the ``wasm`` backend (the browser's runtime, run by Node here):
bit-exact on the CNNs and the MLP, like ``native``."""

from runtimes.parity_suite import RuntimeParitySuite


class TestWasmParity(RuntimeParitySuite):
    runtime, target, precision = "wasm", "efm-int8", "int8"
    int8_max_lsb = 0.0
    int8_mean_lsb = 0.0
    int8_tolerance = {"bert_encoder": (1.0, 0.001)}  # layer norm in float32, as native
    island_tolerance = (1.0, 0.1)  # float32 islands, the same C as native
    island_kinds = ("linear", "add", "mul", "layer_norm", "gelu", "mean")
