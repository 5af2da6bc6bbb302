"""The cross-runtime parity suite for the ``native`` backend: bit-exact on the CNNs and the MLP."""

from runtimes.parity_suite import RuntimeParitySuite


class TestNativeParity(RuntimeParitySuite):
    runtime, target, precision = "native", "efm-int8", "int8"
    int8_max_lsb = 0.0   # integer kernels reproduce run_int exactly ...
    int8_mean_lsb = 0.0
    # ... except layer norm, which both compute in float32 with a different summation order
    int8_tolerance = {"bert_encoder": (1.0, 0.001), "token_encoder": (1.0, 0.001)}
    # float32 islands (format version 2): float summation order differs from numpy's, so 1 LSB
    island_tolerance = (1.0, 0.1)
    island_kinds = ("linear", "add", "mul", "layer_norm", "gelu", "mean")
