"""The QOperator format: onnxruntime's integer operators with their quantization parameters as
inputs — QLinearMatMul, QLinearConv, com.microsoft QGemm, QLinearAdd, QLinearConcat,
QLinearAveragePool and QLinearGlobalAveragePool — and MatMulInteger/ConvInteger followed by
Cast, Mul (the scale) and Add (the bias), whose QuantizeLinear emits the layer (values.Acc).
A mixin of interpreter.Frontend."""
from dataclasses import replace

import numpy as np
import onnx

from ..errors import onnx_node_label
from ..numeric import F32
from .checks import RANK0_PARAMS, per_channel
from .values import Acc, Codes, Const, ConvLinear, DeqConst


class QOperator:
    """The op_* handlers of the QOperator format, and the reading of their parameters."""

    def qparams(self, node, s_index, z_index, per_axis=None):
        """Scale and zero point inputs: one value each (a scalar or 1-D of 1), or ``per_axis``
        values (1-D) for weights; a zero point absent is 0."""
        scale = self.check_scale(node, s_index, self.const(node, s_index, "the scale"))
        self.check_qshape(node, s_index, scale, per_axis)
        if node.op_type in RANK0_PARAMS and len(node.input) > z_index and not node.input[z_index]:
            self.refuse(node, f"its {self.formal(node, z_index)} (input {z_index}) is given as an "
                              f"empty name; onnxruntime's {node.op_type} then refuses the model. "
                              "Give the zero point, or leave trailing optional inputs out.")
        if len(node.input) > z_index and node.input[z_index]:
            zp = np.asarray(self.const(node, z_index, "the zero point"))
            self.check_qshape(node, z_index, zp, per_axis)
            self.check_zero_shape(node, s_index, z_index, scale, zp)
        else:
            zp = np.zeros((), np.int64)
        return scale, zp

    def qcodes(self, node, index):
        x = self.value(node, index)
        if not isinstance(x, Codes):
            self.refuse(node, f"input {index} must be quantized activations.")
        return x

    def out_params(self, node, s_index, z_index):
        scale, zp = self.qparams(node, s_index, z_index)
        if scale.size != 1 or zp.size != 1:
            self.refuse(node, "the output must be quantized per tensor.")
        return float(scale.reshape(())), int(zp.reshape(())), self.output_code(node)

    def check_input_params(self, node, x, scale, zp):
        scale, zp = np.asarray(scale).reshape(-1), np.asarray(zp).reshape(-1)
        if scale.size != 1 or zp.size > 1:
            self.refuse(node, "its activations input must be quantized per tensor.")
        s, z = float(F32(scale[0])), int(zp[0]) if zp.size else 0
        if (s, z) != (x.scale, x.zero_point):
            self.refuse(node, f"it reads its input with scale {s:g} and zero point {z}, but the "
                              f"input was quantized with scale {x.scale:g} and zero point "
                              f"{x.zero_point}; give the node the parameters of its input.")

    def input_codes(self, node):
        """The codes of input 0, its scale and zero point (inputs 1 and 2) checked against them."""
        x = self.qcodes(node, 0)
        self.check_input_params(node, x, *self.qparams(node, 1, 2))
        return x

    def weight_operand(self, node, out_axis):
        """The weight, input 3, with its scales and zero points (inputs 4 and 5) per output
        channel along ``out_axis`` (QLinearMatMul, QGemm, QLinearConv)."""
        w_scale, w_zero = self.qparams(node, 4, 5, self.out_channels(node, out_axis))
        return DeqConst(self.const(node, 3, "the weight"), w_scale, w_zero, out_axis, node.input[3])

    def requant_linear(self, node, x, acc, w_scale, y_scale, y_zero, code):
        """The accumulators ``acc`` of x · weight requantized to the node's output."""
        return self.requant(node, acc, self.scale_round(node, x, w_scale, y_scale, y_zero, code, False),
                            code, y_scale, y_zero)

    def op_QLinearMatMul(self, node):
        x = self.input_codes(node)
        weight, w_zero, w_scale = self.weight_of(node, self.weight_operand(node, 1), out_axis=1)
        y_scale, y_zero, code = self.out_params(node, 6, 7)
        return self.requant_linear(node, x, self.dense(node, x, weight, w_zero, None), w_scale,
                                   y_scale, y_zero, code)

    def op_QGemm(self, node):
        x = self.input_codes(node)
        out_axis = self.gemm_axis(node)
        weight, w_zero, w_scale = self.weight_of(node, self.weight_operand(node, out_axis), out_axis)
        bias = None
        if len(node.input) > 6 and node.input[6]:
            bias = per_channel(self.const(node, 6, "the bias"), weight.shape[0], "bias",
                               onnx_node_label(node))
        if len(node.input) < 9 or not node.input[7] or not node.input[8]:
            self.refuse(node, "QGemm without an output scale and zero point (inputs 7 and 8) "
                              "produces float in onnxruntime; qloom maps QGemm with quantized "
                              "outputs. Give it y_scale and y_zero_point.")
        y_scale, y_zero, code = self.out_params(node, 7, 8)
        return self.requant_linear(node, x, self.dense(node, x, weight, w_zero, bias), w_scale,
                                   y_scale, y_zero, code)

    def op_QLinearConv(self, node):
        x = self.input_codes(node)
        weight, w_zero, w_scale = self.conv_weight(node, self.weight_operand(node, 0))
        y_scale, y_zero, code = self.out_params(node, 6, 7)
        bias = None
        if len(node.input) > 8 and node.input[8]:
            bias = self.const(node, 8, "the bias")
            if bias.shape != (weight.shape[0],):
                self.refuse(node, f"its bias '{node.input[8]}' has shape {bias.shape}; onnxruntime "
                                  f"wants a 1-D tensor of its {weight.shape[0]} output channels.")
        c = ConvLinear(x, weight, w_zero, w_scale, bias, False, node,
                       *self.conv_attrs(node, weight.shape[2:]))
        return self.requant_linear(node, x, self.conv(c), w_scale, y_scale, y_zero, code)

    def op_QLinearAdd(self, node):
        a, b = self.value(node, 0), self.value(node, 3)
        (sa, za), (sb, zb) = self.qparams(node, 1, 2), self.qparams(node, 4, 5)
        if isinstance(a, Const) and isinstance(b, Codes):
            a, b, (sa, za), (sb, zb) = b, a, (sb, zb), (sa, za)
        if isinstance(a, Codes) and isinstance(b, Codes):
            self.check_input_params(node, a, sa, za)
            self.check_input_params(node, b, sb, zb)
            c_scale, c_zero, code = self.out_params(node, 6, 7)
            return self.add_codes(node, a, b, c_scale, c_zero, code, False)
        if not (isinstance(a, Codes) and isinstance(b, Const)):
            self.refuse(node, "only the addition of a quantized constant (a bias) is supported.")
        self.check_input_params(node, a, sa, za)
        c_scale, c_zero, code = self.out_params(node, 6, 7)
        return self.add_table(node, a, b.array, sb, zb, c_scale, c_zero, code)

    def op_QLinearConcat(self, node):
        y_scale, y_zero, code = self.out_params(node, 0, 1)
        if (len(node.input) - 2) % 3 or len(node.input) < 5:
            self.refuse(node, f"it has {len(node.input)} inputs; QLinearConcat takes y_scale, "
                              "y_zero_point and then (tensor, scale, zero point) triples.")
        parts = []
        for k in range(2, len(node.input), 3):
            x = self.qcodes(node, k)
            scale, zp = self.qparams(node, k + 1, k + 2)
            if str(zp.dtype) != x.code.name:
                self.refuse(node, f"the zero point '{node.input[k + 2]}' of input "
                                  f"'{node.input[k]}' is {zp.dtype}, but the input is "
                                  f"{x.code.name}; give it the type of its input.")
            self.check_input_params(node, x, scale, zp)
            parts.append(x)
        self.concat_axis(node, parts)
        return self.concat(node, parts, y_scale, y_zero, code)

    def qlinear_pool(self, node):
        """(codes, output scale, zero point, code type) of a com.microsoft QLinear pool."""
        x = self.qcodes(node, 0)
        if self.attrs(node).get("channels_last", 0):
            self.refuse(node, "channels_last=1 is not supported; export the model in NCHW.")
        self.check_input_params(node, x, *self.qparams(node, 1, 2))
        self.spatial(node, len(x.shape) - 1, node.op_type.removeprefix("QLinear"))
        return (x, *self.out_params(node, 3, 4))

    def op_QLinearGlobalAveragePool(self, node):
        return self.global_mean(node, *self.qlinear_pool(node))

    def op_QLinearAveragePool(self, node):
        return self.average(node, *self.qlinear_pool(node))

    def integer_operands(self, node, out_axis):
        """MatMulInteger's and ConvInteger's input codes (input 0, its zero point checked) and
        weight (input 1, its zero point input 3 or 0; no scale) along ``out_axis``."""
        x = self.qcodes(node, 0)
        self.integer_input_zero(node, x)
        zw = self.const(node, 3, "the weight zero point") \
            if len(node.input) > 3 and node.input[3] else np.int8(0)
        return x, DeqConst(self.const(node, 1, "the weight"), np.ones(1, F32), np.asarray(zw), out_axis,
                           node.input[1])

    def op_MatMulInteger(self, node):
        x, w = self.integer_operands(node, 1)
        weight, w_zero, _ = self.weight_of(node, w, out_axis=1)
        return Acc(x, weight, w_zero, node)

    def op_ConvInteger(self, node):
        x, w = self.integer_operands(node, 0)
        weight, w_zero, _ = self.conv_weight(node, w)
        return Acc(x, weight, w_zero, node, conv=self.conv_attrs(node, weight.shape[2:]))

    def op_Cast(self, node):
        x = self.value(node, 0)
        if isinstance(x, Acc) and not x.is_float and \
                self.attrs(node).get("to") == onnx.TensorProto.FLOAT:
            return replace(x, is_float=True, scale=None)
        self.refuse(node, "only the Cast of a MatMulInteger result to float is supported.")

    def op_Mul(self, node):
        a, b = self.value(node, 0), self.value(node, 1)
        k = 1
        if isinstance(a, Const):
            a, b, k = b, a, 0
        if isinstance(a, Acc) and a.is_float and a.scale is None and a.bias is None and \
                isinstance(b, Const):
            if b.array.dtype != F32:
                self.refuse(node, f"the scale '{node.input[k]}' is {b.array.dtype}; qloom supports "
                                  "float32.")
            self.check_scale(node, k, b.array, "the scale of the result of "
                                               f"{onnx_node_label(a.node)}")
            return replace(a, scale=per_channel(b.array, a.weight.shape[0], "scale",
                                                 onnx_node_label(node)).astype(F32))
        self.refuse(node, "only one Mul by a constant scale after MatMulInteger → Cast is "
                          "supported.")
