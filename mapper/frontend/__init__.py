"""ONNX → QGraph: the frontend.  ``load_qgraph(path)`` reads and checks an ONNX file and maps
it; ``to_qgraph(model, path)`` maps a model already read by ``loading.load``.

The model is interpreted abstractly (interpreter.Frontend): every ONNX tensor gets a symbolic
value (values.py), and a QGraph node is emitted once a pattern that onnxruntime runs on its
fused integer path is complete; whatever cannot be mapped is refused, naming the ONNX node.

    loading.py, files.py, tensors.py  reading the file safely, external data, the ONNX checker
    op_types.py, checks.py            type constraints as onnxruntime's loader checks them, and
                                      what qloom's circuits need (scales, shapes, int32 sums)
    values.py                         the symbolic values; each knows what a QuantizeLinear of
                                      it computes (``Value.quantize``)
    qdq.py                            QDQ: float ops between DequantizeLinear/QuantizeLinear
    qoperator.py                      QOperator: QLinear*, com.microsoft QGemm/QLinearAdd/...,
                                      MatMulInteger/ConvInteger
    layout.py                         ops that move codes (MaxPool, Transpose, Reshape, ...)
    layers.py                         the QGraph layers both formats emit
    qonnx.py                          where QONNX goes, and how a format registers its ops

A format family is a mixin of op_<OpType> handlers, listed among interpreter.Frontend's bases.
"""
from .interpreter import load_qgraph, to_qgraph

__all__ = ["load_qgraph", "to_qgraph"]
