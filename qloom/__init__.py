"""qloom: quantized ONNX networks → bit-exact streaming dataflow circuits."""
from .mapper.errors import QloomError
from .mapper.frontend import load_qgraph as load
from .mapper.inspect import plans

__all__ = ["QloomError", "load", "plans", "reference"]


def reference(graph, x):
    """Run the integer QGraph on a float batch; returns the first output."""
    return graph.reference({graph.inputs[0]: x})[graph.outputs[0]]
