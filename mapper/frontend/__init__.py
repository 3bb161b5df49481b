"""ONNX → QGraph: the frontend.  ``load_qgraph(path)`` reads and checks an ONNX file and maps it;
``to_qgraph(model, path)`` maps a model already loaded by ``loading.load``."""
from .interpreter import load_qgraph, to_qgraph

__all__ = ["load_qgraph", "to_qgraph"]
