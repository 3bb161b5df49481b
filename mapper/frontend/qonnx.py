"""The place for the QONNX format (FINN's ``qonnx.custom_op.general`` domain: ``Quant``,
``BipolarQuant``, ``Trunc``, ``MultiThreshold``).  Nothing is mapped here yet: qloom refuses
these operators as unsupported, naming the node.

How a QONNX handler joins the frontend, the way qdq.py and qoperator.py do:

1. Write a mixin class here, ``class QONNX:``, with one ``op_<OpType>(self, node)`` method per
   operator; each returns the symbolic value of the node's output (values.py) or refuses with
   ``self.refuse(node, why)``.  ``Quant`` is a quantizer: like ``QDQ.op_QuantizeLinear`` it reads
   its scale, zero point and bit width, then returns ``x.quantize(self, node, scale, zero_point,
   code)`` of its input value, so every pending layer (values.Pending) already knows what it
   means.  A QONNX-only pattern gets its own values.Pending subclass with a ``quantize`` method.
   Rounding follows the QONNX spec's modes (DESIGN.md §2), not FINN's float thresholds.
2. Add ``QONNX`` to the bases of ``interpreter.Frontend``.
3. Accept the domain in ``Frontend.run`` (today ``""``, ``"ai.onnx"`` and ``"com.microsoft"``),
   and give op_types.py the operators' schemas (as ``CONTRIB`` does for com.microsoft), so the
   type check knows their inputs.
4. Codes of fewer than 8 bits need a ``qgraph.CodeType`` of that width; the oracle for QONNX
   models is qonnx's executor, not onnxruntime (mapper/ort_check.py).
"""
