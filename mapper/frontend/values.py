"""The symbolic values of the frontend's abstract interpretation, one per ONNX tensor: Codes
(integer activations, a QGraph tensor), Deq (codes dequantized, not yet computed on), Const
and DeqConst (an initializer, and its DequantizeLinear), FloatInput (the model's input), and
the pending values: the float result of a quantized layer (Linear, ConvLinear, Acc, Pending*)
that becomes QGraph nodes once a QuantizeLinear gives its output scale.

Every value knows what a QuantizeLinear of it is (``Value.quantize``): a new format family's
pending value implements ``quantize`` and nothing in the QuantizeLinear handler changes."""
from dataclasses import dataclass

import numpy as np
import onnx

from .. import qgraph as qg
from ..errors import onnx_node_label
from ..numeric import F32
from ..requant_targets import FloatChain


class Value:
    """A symbolic value.  ``quantize(frontend, node, scale, zero_point, code)`` returns the Codes
    of QuantizeLinear ``node`` applied to it, emitting the QGraph nodes that compute them through
    ``frontend`` (an interpreter.Frontend); by default it is refused."""

    def scale_role(self):
        """What the scale of a QuantizeLinear of this value is, for messages."""
        return "the output scale"

    def quantize(self, frontend, node, scale, zero_point, code):
        frontend.refuse(node, "quantizes a value that is not the float input or the result of a "
                              "supported quantized layer (MatMul/Gemm between DequantizeLinear "
                              "nodes).")


class Pending(Value):
    """A float result of ONNX node ``node`` that is a quantized layer once quantized."""

    def scale_role(self):
        return f"the output scale of {onnx_node_label(self.node)}"


@dataclass
class Codes(Value):
    """Integer activations: QGraph tensor ``tensor`` of ``shape`` (per sample, channels first),
    read as ``scale`` · (code − ``zero_point``)."""
    tensor: str            # QGraph tensor name
    shape: tuple
    code: qg.CodeType
    scale: float
    zero_point: int


@dataclass
class Deq(Value):
    """DequantizeLinear(codes): float, not yet computed on."""
    codes: Codes

    def quantize(self, frontend, node, scale, zero_point, code):
        if (self.codes.scale, self.codes.zero_point, self.codes.code) == (scale, zero_point, code):
            return self.codes       # Q(DQ(q)) with the same parameters is q (e.g. around MaxPool)
        return super().quantize(frontend, node, scale, zero_point, code)


@dataclass
class Const(Value):
    """An initializer (or Identity of one)."""
    array: np.ndarray


@dataclass
class DeqConst(Value):
    """DequantizeLinear(initializer)."""
    codes: np.ndarray
    scale: np.ndarray
    zero_point: np.ndarray
    axis: int
    name: str = ""         # the initializer's


@dataclass
class FloatInput(Value):
    """The model's float32 input, of per-sample ``shape``; its QuantizeLinear is the QGraph's
    Quantize node."""
    name: str
    shape: tuple

    def scale_role(self):
        return "the input scale"

    def quantize(self, frontend, node, scale, zero_point, code):
        name = frontend.fresh("quantize")
        q = frontend.emit(qg.Quantize(name, node.name or node.output[0], (self.name,),
                                      name + ".out",
                                      shape=self.shape, scale=scale, zero_point=zero_point,
                                      code=code))
        return frontend.new_codes(q, self.shape, code, scale, zero_point)


@dataclass
class Linear(Pending):
    """x·W (+ bias) in float, waiting for QuantizeLinear."""
    x: Codes
    weight: np.ndarray     # codes, (out, in)
    w_zero: np.ndarray     # (out,)
    w_scale: np.ndarray    # (out,) float32
    bias: np.ndarray       # int32 codes at scale sx·sw, (out,)
    relu: bool
    node: onnx.NodeProto

    def quantize(self, frontend, node, scale, zero_point, code):
        d = frontend.dense(self.node, self.x, self.weight, self.w_zero, self.bias)
        t = frontend.scale_round(self.node, self.x, self.w_scale, scale, zero_point, code,
                                 self.relu)
        return frontend.requant(self.node, d, t, code, scale, zero_point)


@dataclass
class ConvLinear(Pending):
    """Conv(x, W) (+ bias) in float, waiting for QuantizeLinear."""
    x: Codes
    weight: np.ndarray     # codes, (out, in/groups, kh, kw)
    w_zero: np.ndarray
    w_scale: np.ndarray
    bias: np.ndarray
    relu: bool
    node: onnx.NodeProto
    strides: tuple
    pads: tuple
    dilations: tuple
    groups: int

    def quantize(self, frontend, node, scale, zero_point, code):
        t = frontend.scale_round(self.node, self.x, self.w_scale, scale, zero_point, code,
                                 self.relu)
        return frontend.requant(self.node, frontend.conv(self), t, code, scale, zero_point)


@dataclass
class Acc(Pending):
    """MatMulInteger / ConvInteger output, int32; float chain once Cast."""
    x: Codes
    weight: np.ndarray
    w_zero: np.ndarray
    node: onnx.NodeProto
    is_float: bool = False
    scale: np.ndarray = None
    bias: np.ndarray = None
    relu: bool = False
    conv: tuple = None     # ConvInteger: (strides, pads, dilations, groups)

    def quantize(self, frontend, node, scale, zero_point, code):
        """The float chain (Cast, Mul by the scale, Add of the bias, Relu) requantized as
        onnxruntime computes it in float32 (requant_targets.FloatChain)."""
        if not self.is_float:
            return super().quantize(frontend, node, scale, zero_point, code)
        n_out = self.weight.shape[0]
        layer = frontend.dense(self.node, self.x, self.weight, self.w_zero, None) \
            if self.conv is None else frontend.conv(
                ConvLinear(self.x, self.weight, self.w_zero, None, None, False, self.node,
                           *self.conv))
        bias = np.zeros(n_out, F32) if self.bias is None else self.bias
        # Cast → Q: scale 1
        acc_scale = np.ones(n_out, F32) if self.scale is None else self.scale
        t = FloatChain(tables=(), scale=acc_scale, bias=bias, relu=self.relu, out_scale=scale,
                       zero_point=zero_point, lo=code.qmin, hi=code.qmax)
        return frontend.requant(self.node, layer, t, code, scale, zero_point)


@dataclass
class PendingSum(Pending):
    """DQ(codes) + DQ(codes) (a residual add), waiting for QuantizeLinear."""
    a: Codes
    b: Codes
    relu: bool
    node: onnx.NodeProto

    def quantize(self, frontend, node, scale, zero_point, code):
        return frontend.add_codes(self.node, self.a, self.b, scale, zero_point, code, self.relu)


@dataclass
class PendingConcat(Pending):
    """Concat(DQ(codes), ...) along channels, waiting for QuantizeLinear."""
    parts: list
    node: onnx.NodeProto

    def quantize(self, frontend, node, scale, zero_point, code):
        return frontend.concat(self.node, self.parts, scale, zero_point, code)


@dataclass
class PendingMean(Pending):
    """GlobalAveragePool(DQ(codes)), waiting for QuantizeLinear."""
    x: Codes
    node: onnx.NodeProto

    def quantize(self, frontend, node, scale, zero_point, code):
        return frontend.global_mean(self.node, self.x, scale, zero_point, code)


@dataclass
class PendingAverage(Pending):
    """AveragePool(DQ(codes)), waiting for QuantizeLinear."""
    x: Codes
    node: onnx.NodeProto

    def quantize(self, frontend, node, scale, zero_point, code):
        # onnxruntime fuses DQ → AveragePool → Q into QLinearAveragePool (int8 too, with
        # session.qdqisint8allowed as ort_check runs it; without, int8 stays float: not modelled)
        return frontend.average(self.node, self.x, scale, zero_point, code)


@dataclass
class PendingAdd(Pending):
    """DQ(codes) + DQ(constant), waiting for QuantizeLinear."""
    a: Codes
    b: DeqConst
    node: onnx.NodeProto

    def quantize(self, frontend, node, scale, zero_point, code):
        b = self.b
        return frontend.add_table(self.node, self.a, b.codes, b.scale, b.zero_point, scale,
                                  zero_point, code)


@dataclass
class Affine(Pending):
    """A QONNX layer: a float MatMul/Gemm/Conv of Quant outputs (+ a float bias) (+ Relu),
    waiting for the Quant that gives its output codes (qonnx.QONNX.op_Quant); computed exactly,
    as the QONNX spec defines it (requant_targets.ExactQuant), not in float32."""
    x: Codes
    weight: np.ndarray     # codes, (out, in) or (out, in/groups, kh, kw)
    w_zero: np.ndarray     # (out,)
    w_scale: np.ndarray    # (out,) float32
    bias: tuple            # (out,) Fractions, or None
    relu: bool
    node: onnx.NodeProto
    conv: tuple = None     # Conv: (strides, pads, dilations, groups)
