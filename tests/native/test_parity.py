"""The cross-runtime parity suite for the ``native`` backend: bit-exact on the CNNs and the MLP."""

from runtimes.parity_suite import RuntimeParitySuite


class TestNativeParity(RuntimeParitySuite):
    runtime, target, precision = "native", "efm-int8", "int8"
    int8_max_lsb = 0.0   # integer kernels reproduce run_int exactly ...
    int8_mean_lsb = 0.0
    # ... except layer norm, which both compute in float32 with a different summation order
    int8_tolerance = {"bert_encoder": (1.0, 0.001), "token_encoder": (1.0, 0.001)}
    island_tolerance = None  # int8 kernels only: a graph with float32 islands is refused by name
