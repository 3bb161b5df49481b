"""The QONNX format (Brevitas's ``export_qonnx``, hls4ml's QKeras converter): ``Quant`` nodes of
the domain qonnx.custom_op.general (FINN's older finn.custom_op.general too) on the input, the
weights, the biases and each layer's output, float MatMul/Gemm/Conv/Add/Relu/MaxPool between
them.  A Quant both quantizes and dequantizes: on an initializer it gives weight codes, on the
input the QGraph's Quantize, on a layer's float result the layer's codes.  What a layer computes
is defined exactly, from the QONNX spec (values.Affine, requant_targets.ExactQuant): qonnx's
executor runs the same graph in float32 and agrees with it wherever float32 holds the sums
exactly (power-of-two scales).  A mixin of interpreter.Frontend, before QDQ among its bases: its
handlers of standard operators apply only to QONNX models."""
from dataclasses import replace
from fractions import Fraction

import numpy as np

from .. import numeric, qgraph as qg
from ..errors import onnx_node_label
from ..numeric import F32
from ..requant_targets import ExactQuant
from .checks import per_channel
from .values import Affine, Const, ConvLinear, Deq, DeqConst, FloatInput

DOMAINS = ("qonnx.custom_op.general", "finn.custom_op.general")
OPS = ("Quant", "BipolarQuant")
BIPOLAR = qg.CodeType(2, True)   # the codes ±1 (no 0, no −2): a BipolarQuant's
MAX_BITS = 16       # activation and weight codes
MAX_CONST_BITS = 32  # a bias's


class QONNX:
    """The op_* handlers of the QONNX format (interpreter.Frontend provides ``qonnx``: whether
    the model has nodes of DOMAINS)."""

    def quant_params(self, node, const):
        """(scale array, zero point array, CodeType, lo, hi, rounding mode) of a Quant node."""
        a = self.attrs(node)
        unknown = sorted(set(a) - {"signed", "narrow", "rounding_mode"})
        if unknown:
            self.refuse(node, f"attribute '{unknown[0]}' is not one of Quant's (signed, narrow, "
                              "rounding_mode).")
        signed, narrow = int(a.get("signed", 1)), int(a.get("narrow", 0))
        mode = a.get("rounding_mode", b"ROUND")
        mode = (mode.decode() if isinstance(mode, bytes) else mode).upper()
        if mode not in numeric.ROUNDING_MODES:
            self.refuse(node, f"rounding_mode '{mode}' is not one the QONNX spec defines "
                              f"({', '.join(numeric.ROUNDING_MODES)}).")
        if len(node.input) != 4 or not all(node.input):
            self.refuse(node, "a Quant takes four inputs (x, scale, zeropt, bitwidth).")
        scale = self.check_scale(node, 1, self.const(node, 1, "the scale"), "the scale")
        zp = np.asarray(self.const(node, 2, "the zero point"))
        bits = np.asarray(self.const(node, 3, "the bit width"))
        limit = MAX_CONST_BITS if const else MAX_BITS
        if bits.size != 1 or not np.isfinite(bits).all() or float(bits.reshape(())) % 1 or \
                not 1 <= float(bits.reshape(())) <= limit:
            self.refuse(node, f"its bit width {bits.reshape(-1).tolist()} is not a whole number "
                              f"of bits from 1 to {limit}; qloom builds codes of 1 to {MAX_BITS} "
                              "bits (biases up to 32).")
        bits = int(bits.reshape(()))
        if bits == 1 and signed:
            self.refuse(node, "a signed 1-bit Quant is a bipolar (±1) quantizer; export it as "
                              "BipolarQuant.")
        if not np.all(np.isfinite(zp)) or np.any(zp % 1):
            self.refuse(node, f"its zero point {zp.reshape(-1)[:4].tolist()} is not a whole "
                              "number; qloom's codes have integer zero points.")
        code = qg.CodeType(bits, bool(signed))
        lo = code.qmin + (1 if narrow and signed else 0)
        hi = code.qmax - (1 if narrow and not signed else 0)
        return scale, zp, code, lo, hi, mode

    def op_Quant(self, node):
        x = self.value(node, 0)
        scale, zp, code, lo, hi, mode = self.quant_params(node, isinstance(x, Const))
        if isinstance(x, Const):
            return self.quantized_const(node, x.array, scale, zp, lo, hi, mode)
        if scale.size != 1 or zp.size != 1:
            self.refuse(node, "per-channel quantization of activations is not supported; use "
                              "per-tensor scales for activation Quant nodes.")
        scale, zp = float(F32(scale.reshape(()))), int(zp.reshape(()))
        if isinstance(x, FloatInput):
            name = self.fresh("quantize")
            q = self.emit(qg.Quantize(name, node.name or node.output[0], (x.name,), name + ".out",
                                      shape=x.shape, scale=scale, zero_point=zp, code=code,
                                      rounding=mode, lo=lo, hi=hi))
            return Deq(self.new_codes(q, x.shape, code, scale, zp))
        if isinstance(x, Affine):
            return Deq(self.exact_layer(x, scale, zp, code, lo, hi, mode))
        if isinstance(x, Deq) and (x.codes.scale, x.codes.zero_point) == (scale, zp) and \
                (code.qmin, code.qmax) == (x.codes.code.qmin, x.codes.code.qmax):
            return x        # a Quant of codes it does not change (after MaxPool, say)
        self.refuse(node, "quantizes a value that is not the float input, a constant or the "
                          "float result of a MatMul/Gemm/Conv of Quant outputs (with its bias "
                          "and Relu).")

    def op_BipolarQuant(self, node):
        """``scale · (x ≥ 0 ? 1 : −1)`` (QONNX spec): codes ±1 of type BIPOLAR, zero point 0."""
        if self.attrs(node):
            self.refuse(node, f"attribute '{sorted(self.attrs(node))[0]}' is not one of "
                              "BipolarQuant's (it has none).")
        if len(node.input) != 2 or not all(node.input):
            self.refuse(node, "a BipolarQuant takes two inputs (x, scale).")
        x = self.value(node, 0)
        scale = self.check_scale(node, 1, self.const(node, 1, "the scale"), "the scale")
        zp = np.zeros(1, np.int64)
        if isinstance(x, Const):
            return self.quantized_const(node, x.array, scale, zp, -1, 1, numeric.BIPOLAR)
        if scale.size != 1:
            self.refuse(node, "per-channel quantization of activations is not supported; use "
                              "a per-tensor scale for activation BipolarQuant nodes.")
        scale = float(F32(scale.reshape(())))
        if isinstance(x, Affine):
            return Deq(self.exact_layer(x, scale, 0, BIPOLAR, -1, 1, numeric.BIPOLAR))
        if isinstance(x, Deq) and (x.codes.scale, x.codes.zero_point, x.codes.code) == (scale, 0, BIPOLAR):
            return x        # codes it does not change (after MaxPool, say)
        self.refuse(node, "a BipolarQuant is supported on a weight or on the float result of a "
                          "MatMul/Gemm/Conv of quantized values (with its bias); quantize the "
                          "float input with a Quant of 2–16 bits.")

    def quantized_const(self, node, array, scale, zp, lo, hi, mode):
        """Quant (or BipolarQuant) of an initializer: its codes (computed as the Quant's float32
        definition does), with the scale and zero point per tensor or along one axis."""
        array = np.asarray(array)
        try:
            shape = np.broadcast_shapes(array.shape, scale.shape, zp.shape)
        except ValueError:
            shape = None
        if shape != array.shape:
            self.refuse(node, f"its scale {scale.shape} and zero point {zp.shape} do not "
                              f"broadcast to its input {array.shape}.")
        codes = numeric.bipolar_quant(array) if mode == numeric.BIPOLAR else \
            numeric.int_quant(array, scale, zp, lo, hi, mode)

        def aligned(a):
            return (1,) * (array.ndim - a.ndim) + a.shape
        per = sorted({k for a in (scale, zp) for k, n in enumerate(aligned(a)) if n > 1})
        if len(per) > 1:
            self.refuse(node, "its scale or zero point varies along more than one axis; qloom "
                              "maps per-tensor or per-channel (one axis) quantization.")
        axis = per[0] if per else 0

        def along(a):
            if not per or a.size == 1:
                return a.reshape(())
            return np.moveaxis(np.broadcast_to(a, shape), axis, 0).reshape(shape[axis], -1)[:, 0]
        scale, zp = along(scale), along(zp)
        dtype = next(t for t in (np.int8, np.uint8, np.int16, np.uint16, np.int64)   # narrowest
                     if np.iinfo(t).min <= lo and hi <= np.iinfo(t).max)
        return DeqConst(codes.astype(dtype), np.asarray(scale, F32), np.asarray(zp).astype(np.int64),
                        axis, node.input[0])

    def exact_input(self, node, x):
        self.dequantized_input(node, x)
        return x.codes

    def exact_bias(self, node, b, n_out):
        """A float bias, or a Quant of one, as n_out exact Fractions."""
        if b is None:
            return None
        label = onnx_node_label(node)
        if isinstance(b, Const):
            v = np.asarray(b.array)
            if v.dtype != F32 or not np.all(np.isfinite(v)):
                self.refuse(node, "its bias must be finite float32 values.")
            return tuple(Fraction(float(t)) for t in per_channel(v, n_out, "bias", label))
        if isinstance(b, DeqConst):
            codes = per_channel(b.codes, n_out, "bias", label).astype(np.int64)
            s = per_channel(b.scale, n_out, "bias scale", label)
            z = per_channel(b.zero_point, n_out, "bias zero point", label)
            return tuple((int(c) - int(zz)) * Fraction(float(ss)) for c, ss, zz in zip(codes, s, z))
        self.refuse(node, "its bias must be a constant (float, or behind a Quant node).")

    def op_MatMul(self, node):
        if not self.qonnx:
            return super().op_MatMul(node)
        return self.exact_linear(node, 1, None)

    def op_Gemm(self, node):
        if not self.qonnx:
            return super().op_Gemm(node)
        return self.exact_linear(node, self.gemm_axis(node), self.value(node, 2))

    def exact_linear(self, node, out_axis, bias):
        x = self.exact_input(node, self.value(node, 0))
        weight, w_zero, w_scale = self.weight_of(node, self.value(node, 1), out_axis)
        return Affine(x, weight, w_zero, w_scale, self.exact_bias(node, bias, weight.shape[0]),
                      False, node)

    def op_Conv(self, node):
        if not self.qonnx:
            return super().op_Conv(node)
        x = self.exact_input(node, self.value(node, 0))
        weight, w_zero, w_scale = self.conv_weight(node, self.value(node, 1))
        return Affine(x, weight, w_zero, w_scale,
                      self.exact_bias(node, self.value(node, 2), weight.shape[0]), False, node,
                      self.conv_attrs(node, weight.shape[2:]))

    def op_Add(self, node):
        if not self.qonnx:
            return super().op_Add(node)
        a, b = self.value(node, 0), self.value(node, 1)
        if isinstance(b, Affine):
            a, b = b, a
        if isinstance(a, Affine) and a.bias is None and not a.relu and \
                isinstance(b, (Const, DeqConst)):
            return replace(a, bias=self.exact_bias(node, b, a.weight.shape[0]))
        self.refuse(node, "in a QONNX model qloom maps Add as the bias of a MatMul/Gemm/Conv "
                          "(a constant added to its float result before the Quant).")

    def op_Relu(self, node):
        if not self.qonnx:
            return super().op_Relu(node)
        x = self.value(node, 0)
        if isinstance(x, Affine) and not x.relu:
            return replace(x, relu=True)
        self.refuse(node, "Relu is supported on the float result of a MatMul/Gemm/Conv before "
                          "its Quant.")

    def exact_layer(self, a, scale, zero_point, code, lo, hi, mode):
        """The QGraph layer of Affine ``a`` quantized by a Quant (its parameters): the
        accumulator of codes, then the exact Quant of its real value (ExactQuant)."""
        if a.conv is None:
            layer = self.dense(a.node, a.x, a.weight, a.w_zero, None)
        else:
            layer = self.conv(ConvLinear(a.x, a.weight, a.w_zero, None, None, False, a.node,
                                         *a.conv))
        n = a.weight.shape[0]
        acc_scale = [Fraction(a.x.scale) * Fraction(float(s)) for s in a.w_scale]
        bias = a.bias if a.bias is not None else (Fraction(0),) * n
        target = ExactQuant.of(acc_scale, bias, scale, zero_point, a.relu, mode, lo, hi)
        return self.requant(a.node, layer, target, code, scale, zero_point)
