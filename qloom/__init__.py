"""qloom: quantized ONNX networks → bit-exact streaming dataflow circuits."""
from importlib import metadata

from .mapper.errors import QloomError
from .mapper.frontend import load_qgraph as load
from .mapper.planning import plans

__all__ = ["QloomError", "load", "plans", "reference"]

try:
    __version__ = metadata.version("qloom")
except metadata.PackageNotFoundError:     # run from a source tree that pip did not install
    __version__ = "0.1.0+source"


def reference(graph, x):
    """Run the integer QGraph on a float batch; returns the first output."""
    return graph.reference({graph.inputs[0]: x})[graph.outputs[0]]
