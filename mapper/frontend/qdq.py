"""The QDQ format: float operators (MatMul, Gemm, Conv, Add, Concat, pools, Relu) between
DequantizeLinear and QuantizeLinear nodes, which onnxruntime fuses into integer kernels.  A
DequantizeLinear makes a Deq or DeqConst; a float operator on them makes a pending value; the
QuantizeLinear after it emits the QGraph layer.  A mixin of interpreter.Frontend."""
from dataclasses import replace

import numpy as np

from .. import numeric
from ..errors import NotQuantizedError, onnx_node_label
from ..numeric import F32
from .checks import per_channel
from .values import (Acc, Codes, Const, ConvLinear, Deq, DeqConst, FloatInput, Linear, PendingAdd,
                     PendingAverage, PendingConcat, PendingMean, PendingSum)


class QDQ:
    """The op_* handlers of the QDQ format."""

    def op_QuantizeLinear(self, node):
        """Quantizing a value: per tensor, uint8 or int8 codes; what it computes is the value's
        (values.Value.quantize)."""
        x = self.value(node, 0)
        self.qdq_attributes(node)
        scale = self.check_scale(node, 1, self.const(node, 1, "the scale"), x.scale_role())
        zp = self.zero_point(node, 2)
        if np.asarray(scale).size != 1 or np.asarray(zp).size != 1:
            self.refuse(node, "per-channel activation quantization is not supported; use "
                              "per-tensor.")
        self.check_qshape(node, 1, scale)
        if len(node.input) > 2 and node.input[2]:
            self.check_qshape(node, 2, zp)
        code = self.code_type(node, zp)
        scale, zp = float(F32(np.asarray(scale).reshape(()))), int(np.asarray(zp).reshape(()))
        return x.quantize(self, node, scale, zp, code)

    def op_DequantizeLinear(self, node):
        x = self.value(node, 0)
        self.qdq_attributes(node)
        axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
        if isinstance(x, Const):
            scale = self.check_scale(node, 1, self.const(node, 1, "the scale"), self.dq_role(node))
            zp = self.const(node, 2,
                            "the zero point") if len(node.input) > 2 and node.input[2] else \
                np.zeros((), x.array.dtype)
            per_axis = None
            if scale.size > 1 or np.asarray(zp).size > 1:
                if not -x.array.ndim <= axis < x.array.ndim:
                    self.refuse(node, f"axis {axis} is out of range for its {x.array.ndim}-D "
                                      "input.")
                axis %= x.array.ndim
                per_axis = x.array.shape[axis]
            for k, a in ((1, scale), (2, zp)):
                if k < len(node.input) and node.input[k]:
                    self.check_qshape(node, k, a, per_axis)
            if len(node.input) > 2 and node.input[2]:
                self.check_zero_shape(node, 1, 2, scale, np.asarray(zp))
            return DeqConst(x.array, scale, np.asarray(zp), axis, node.input[0])
        if isinstance(x, Codes):
            scale = self.check_scale(node, 1, self.const(node, 1, "the scale"),
                                     f"the scale of the activations '{node.input[0]}'")
            zp = self.zero_point(node, 2) if len(node.input) > 2 and node.input[2] else \
                np.zeros((), np.int64)
            if scale.size != 1 or np.asarray(zp).size != 1:
                self.refuse(node, "per-channel dequantization of activations is not supported; "
                                  "use per-tensor.")
            scale, zp = float(F32(scale.reshape(()))), int(np.asarray(zp).reshape(()))
            if (scale, zp) == (x.scale, x.zero_point):
                return Deq(x)
            codes = replace(x, scale=scale,
                            zero_point=zp)    # the same codes, read with other parameters
            if id(x) in self.stale:
                self.stale.add(id(codes))
            return Deq(codes)
        self.refuse(node, "dequantizes a value that is neither a constant nor quantized codes.")

    def dequantized_input(self, node, x):
        """Refuse a float input, or one that is not a DequantizeLinear (QONNX: a Quant) of
        codes."""
        if isinstance(x, (Const, FloatInput)):
            how = ("it with a Quant node (Brevitas: a quantized input layer, e.g. QuantIdentity, "
                   "before it)" if self.qonnx else
                   "the model with onnxruntime.quantization.quantize_static")
            raise NotQuantizedError(f"{onnx_node_label(node)} in {self.path}: its input is float; "
                                    f"quantize {how}.")
        if not isinstance(x, Deq):
            self.refuse(node, "its input must be the output of a Quant node." if self.qonnx else
                        "its input must be a DequantizeLinear of quantized activations.")

    def linear(self, node, x, w, bias, out_axis):
        self.dequantized_input(node, x)
        weight, w_zero, w_scale = self.weight_of(node, w, out_axis)
        bias_codes = self.qdq_bias(node, x.codes, bias, weight.shape[0], w_scale)
        return Linear(x.codes, weight, w_zero, w_scale, bias_codes, False, node)

    def qdq_bias(self, node, x, bias, n_out, w_scale):
        """The int32 codes of a QDQ bias, which onnxruntime fuses only at scale input scale ×
        weight scale with zero point 0."""
        if bias is None:
            return None
        if not isinstance(bias, DeqConst) or bias.codes.dtype != np.int32:
            self.refuse(node, "the bias must be an int32 constant behind DequantizeLinear.")
        if node.op_type == "Conv" and bias.codes.shape != (n_out,):
            self.refuse(node, f"its bias '{bias.name}' has shape {bias.codes.shape}; a Conv wants "
                              f"a 1-D tensor of its {n_out} output channels.")
        label = onnx_node_label(node)
        codes = per_channel(bias.codes, n_out, "bias", label)
        bscale = numeric.f32(per_channel(bias.scale, n_out, "bias scale", label))
        expect = numeric.f32(F32(x.scale) * w_scale)
        if not np.array_equal(bscale, expect):
            k = int(np.argmax(bscale != expect))
            self.refuse(node, f"the bias scale{'' if n_out == 1 else f' of channel {k}'} is "
                              f"{float(bscale[k]):g}, not input scale × weight scale = "
                              f"{x.scale:g} × {float(w_scale[k]):g} = {float(expect[k]):g} (in "
                              "float32), so onnxruntime cannot fuse this layer to integers. "
                              "Quantize the bias at that scale.")
        if np.any(np.asarray(bias.zero_point) != 0):
            self.refuse(node, "the bias zero point is not 0, so onnxruntime cannot fuse this "
                              "layer to integers.")
        return codes

    def op_MatMul(self, node):
        return self.linear(node, self.value(node, 0), self.value(node, 1), None, out_axis=1)

    def op_Gemm(self, node):
        return self.linear(node, self.value(node, 0), self.value(node, 1), self.value(node, 2),
                           out_axis=self.gemm_axis(node))

    def op_Conv(self, node):
        x, w = self.value(node, 0), self.value(node, 1)
        self.dequantized_input(node, x)
        weight, w_zero, w_scale = self.conv_weight(node, w)
        bias_codes = self.qdq_bias(node, x.codes, self.value(node, 2), weight.shape[0], w_scale)
        return ConvLinear(x.codes, weight, w_zero, w_scale, bias_codes, False, node,
                          *self.conv_attrs(node, weight.shape[2:]))

    def op_Relu(self, node):
        x = self.value(node, 0)
        if isinstance(x, (Linear, ConvLinear, PendingSum)) and not x.relu:
            return replace(x, relu=True)
        if isinstance(x, Acc) and x.is_float:
            return replace(x, relu=True)
        self.refuse(node, "Relu is supported directly after a quantized MatMul/Gemm (it folds into "
                          "the output clamp).")

    def op_Add(self, node):
        a, b = self.value(node, 0), self.value(node, 1)
        if isinstance(a, Deq) and isinstance(b, Deq):
            return PendingSum(a.codes, b.codes, False, node)
        if isinstance(b, Deq) and isinstance(a, DeqConst):
            a, b = b, a
        if isinstance(a, Deq) and isinstance(b, DeqConst):
            return PendingAdd(a.codes, b, node)
        if isinstance(a, Const) and isinstance(b, Acc):
            a, b = b, a
        if isinstance(a, Acc) and a.is_float and a.bias is None and isinstance(b, Const):
            if b.array.dtype != F32 or not np.all(np.isfinite(b.array)):
                self.refuse(node, "the bias it adds must be finite float32 values.")
            return replace(a, bias=per_channel(b.array, a.weight.shape[0], "bias",
                                                onnx_node_label(node)).astype(F32))
        self.refuse(node, "only the addition of a quantized constant (a bias) to quantized "
                          "activations is supported here.")

    def op_Concat(self, node):
        xs = [self.value(node, k) for k in range(len(node.input))]
        if not all(isinstance(x, Deq) for x in xs):
            self.refuse(node, "Concat is supported on dequantized activations followed by "
                              "QuantizeLinear (QDQ), or as com.microsoft.QLinearConcat.")
        self.concat_axis(node, [x.codes for x in xs])
        return PendingConcat([x.codes for x in xs], node)

    def pooled_codes(self, node):
        """The NCHW codes a QDQ pool reads: DequantizeLinear(codes), the pool waiting for its
        QuantizeLinear."""
        x = self.value(node, 0)
        if not isinstance(x, Deq):
            self.refuse(node, f"{node.op_type} is supported on dequantized NCHW activations "
                              "followed by QuantizeLinear (QDQ), or as "
                              f"com.microsoft.QLinear{node.op_type}.")
        self.spatial(node, len(x.codes.shape) - 1, node.op_type)
        return x.codes

    def op_GlobalAveragePool(self, node):
        return PendingMean(self.pooled_codes(node), node)

    def op_AveragePool(self, node):
        return PendingAverage(self.pooled_codes(node), node)
