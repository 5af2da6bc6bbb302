"""edgefleet's graph IR (numpy only): graph structures, the closed op set, reference interpreters and
int8 quantization. See ``ops`` for the op set and the int8 arithmetic every runtime reproduces."""

from .graph import Graph, Node, QParams, Value
from .ops import OPS
from .quantize import QuantConfig, quantize_graph
from .reference import run_float, run_int

__all__ = ["Graph", "Node", "QParams", "Value", "OPS", "QuantConfig", "quantize_graph", "run_float", "run_int"]
