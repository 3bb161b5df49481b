"""The QGraph layers the format families emit, shared by QDQ and QOperator: Dense and Conv
(zero points folded into the bias), their Requant (the fused multiplier checked), residual
Add, Add of a constant (a table folded into the producer's Requant), channel Concat, and the
global and windowed average pools.  A mixin of interpreter.Frontend."""
from dataclasses import replace

import numpy as np

from .. import numeric, qgraph as qg
from ..errors import NotQuantizedError, onnx_node_label
from ..numeric import F32
from ..requant_targets import CodeTable, FloatMean, ScaleRound
from .checks import per_channel, scale_problem
from .values import Codes, Const, DeqConst


class Layers:
    """QGraph emission of layers, each refusing naming the ONNX node (Frontend provides
    refuse, emit, fresh, new_codes, attrs and the checks)."""

    def dense(self, onnx_node, x, weight, w_zero, bias_codes):
        """Dense on codes x with weight codes (out, in) and zero points w_zero (out,)."""
        w_eff = weight.astype(np.int64) - w_zero.astype(np.int64)[:, None]
        bias = np.zeros(w_eff.shape[0],
                        np.int64) if bias_codes is None else bias_codes.astype(np.int64)
        bias = bias - x.zero_point * w_eff.sum(axis=1)
        if x.shape != (w_eff.shape[1],):
            self.refuse(onnx_node, f"expects {w_eff.shape[1]} input features but its input has "
                                   f"shape {x.shape}; only 2-D (batch, features) matrix products "
                                   "are supported.")
        name = self.fresh("dense")
        if not self.qonnx and weight.dtype == np.int8 and \
                np.abs(weight.astype(np.int64)).max(initial=0) > 64:
            self.notes.append(
                f"{onnx_node_label(onnx_node)}: int8 weights exceed ±64. onnxruntime on x86 CPUs "
                "without VNNI sums pairs of 8-bit products in saturating int16 and may then "
                "differ from the exact result that qloom (and onnxruntime on VNNI or ARM CPUs) "
                "computes. Quantize with reduce_range=True to make every CPU agree.")
        d = self.emit(qg.Dense(name, onnx_node.name or onnx_node.output[0], (x.tensor,),
                               name + ".acc",
                               weight=w_eff, bias=bias))
        self.shapes[d.output] = (d.out_features,)
        self.check_int32(onnx_node, d, x)
        return d

    def requant(self, onnx_node, dense, target, code, scale, zero_point):
        name = self.fresh("requant")
        r = self.emit(qg.Requant(name, onnx_node.name or onnx_node.output[0], (dense.output,),
                                 name + ".out",
                                 target=target, code=code))
        shape = dense.out_shape if isinstance(dense,
                                              (qg.Conv, qg.SumPool,
                                               qg.FloatSumPool)) else (dense.out_features,)
        return self.new_codes(r, shape, code, scale, zero_point)

    def conv(self, c):
        """Emit the Conv of a complete ConvLinear (zero points folded into the bias)."""
        w_eff = c.weight.astype(np.int64) - c.w_zero.astype(np.int64)[:, None, None, None]
        bias = np.zeros(w_eff.shape[0], np.int64) if c.bias is None else c.bias.astype(np.int64)
        bias = bias - c.x.zero_point * w_eff.reshape(w_eff.shape[0], -1).sum(axis=1)
        self.spatial(c.node, len(c.x.shape) - 1, "convolution")
        if c.groups < 1:
            self.refuse(c.node, f"group {c.groups} is not a positive number; onnxruntime refuses "
                                "such a convolution.")
        if w_eff.shape[0] % c.groups:
            self.refuse(c.node, f"group {c.groups} does not divide its {w_eff.shape[0]} output "
                                "channels; onnxruntime refuses such a convolution. Give a group "
                                "that divides both channel counts.")
        if w_eff.shape[1] * c.groups != c.x.shape[0]:
            self.refuse(c.node, f"expects {w_eff.shape[1] * c.groups} input channels "
                                f"({w_eff.shape[1]} per group × group {c.groups}) but its input "
                                f"has {c.x.shape[0]} (shape {c.x.shape}).")
        self.check_window(c.node, c.x.shape[1:], w_eff.shape[2:], c.strides, c.pads, c.dilations)
        if not self.qonnx and c.weight.dtype == np.int8 and \
                np.abs(c.weight.astype(np.int64)).max(initial=0) > 64:
            self.notes.append(f"{onnx_node_label(c.node)}: int8 weights exceed ±64 (see the "
                              "MatMul note); quantize with reduce_range=True to make every CPU "
                              "agree.")
        name = self.fresh("conv")
        conv = self.emit(qg.Conv(name, c.node.name or c.node.output[0], (c.x.tensor,),
                                 name + ".acc",
                                 weight=w_eff, bias=bias, strides=c.strides, pads=c.pads,
                                 dilations=c.dilations,
                                 groups=c.groups, zero_point=c.x.zero_point,
                                 in_shape=tuple(c.x.shape)))
        self.shapes[conv.output] = conv.out_shape
        self.check_int32(c.node, conv, c.x)
        return conv

    def conv_attrs(self, node, kernel_shape):
        a = self.attrs(node)
        self.spatial(node, len(kernel_shape), "convolution")
        if a.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
            self.refuse(node, "auto_pad is not supported; export with explicit pads.")
        return (tuple(a.get("strides", (1, 1))), tuple(a.get("pads", (0, 0, 0, 0))),
                tuple(a.get("dilations", (1, 1))), int(a.get("group", 1)))

    def quantized_weight(self, node, w):
        """Refuse weights that are not a DequantizeLinear of a constant (float ones said so)."""
        if not isinstance(w, DeqConst):
            if isinstance(w, Const):
                how = ("them with a Quant node (Brevitas: a weight quantizer on the layer)"
                       if self.qonnx else
                       "the model with onnxruntime.quantization.quantize_static")
                raise NotQuantizedError(f"{onnx_node_label(node)} in {self.path}: the weights are "
                                        f"float; quantize {how}.")
            self.refuse(node, "the weights must be a Quant of a constant." if self.qonnx else
                        "the weights must be a DequantizeLinear of a constant.")

    def conv_weight(self, node, w):
        self.quantized_weight(node, w)
        self.spatial(node, w.codes.ndim - 2, "convolution")
        self.weight_codes(node, w)
        n_out = w.codes.shape[0]
        if np.asarray(w.scale).size > 1 and w.axis != 0:
            self.refuse(node, "weights are quantized along an axis other than the output channels.")
        label = onnx_node_label(node)
        return (w.codes,
                per_channel(w.zero_point, n_out, "weight zero point", label).astype(np.int64),
                per_channel(w.scale, n_out, "weight scale", label).astype(F32))

    def weight_of(self, node, w, out_axis):
        """Weight codes as (out, in), zero points and scales per output channel."""
        self.quantized_weight(node, w)
        codes = w.codes
        self.weight_codes(node, w)
        if codes.ndim != 2:
            self.refuse(node, f"weights of rank {codes.ndim} are not supported; a Dense layer "
                              "needs 2-D weights.")
        n_out = codes.shape[out_axis]
        if np.asarray(w.scale).size > 1 and (w.axis % 2) != out_axis:
            self.refuse(node, "weights are quantized per input channel; only per-output-channel "
                              "(or per-tensor) weight scales can be mapped.")
        weight = codes if out_axis == 0 else codes.T
        return (weight,
                per_channel(w.zero_point, n_out, "weight zero point",
                            onnx_node_label(node)).astype(np.int64),
                per_channel(w.scale, n_out, "weight scale", onnx_node_label(node)).astype(F32))

    def gemm_axis(self, node):
        a = self.attrs(node)
        bad = [f"{k}={a[k]:g}" for k,
               ok in (("transA", 0), ("alpha", 1.0), ("beta", 1.0)) if a.get(k, ok) != ok]
        if bad:
            self.refuse(node, f"{' and '.join(bad)} {'is' if len(bad) == 1 else 'are'} not "
                              f"supported; qloom maps {node.op_type} with transA=0, alpha=1 and "
                              "beta=1.")
        return 0 if a.get("transB", 0) else 1

    def scale_round(self, node, x, w_scale, out_scale, zero_point, code, relu):
        with np.errstate(all="ignore"):
            m = numeric.fused_multiplier(x.scale, w_scale, out_scale)
        problem = scale_problem(m)
        if problem:
            k = int(np.argmax(~(np.isfinite(m) & (m >= np.finfo(F32).tiny))))
            self.refuse(node, "its requantization multiplier input scale × weight scale / output "
                              f"scale = {x.scale:g} × "
                              f"{float(np.asarray(w_scale).reshape(-1)[k]):g} / "
                              f"{float(out_scale):g} is {problem} in float32, so onnxruntime's "
                              "fused integer kernel cannot compute it. Quantize the model again "
                              "with scales of sensible size.")
        if np.any(m >= 2.0 ** 32):
            k = int(np.argmax(m >= 2.0 ** 32))
            self.refuse(node, "its requantization multiplier input scale × weight scale / output "
                              f"scale = {x.scale:g} × "
                              f"{float(np.asarray(w_scale).reshape(-1)[k]):g} / "
                              f"{float(out_scale):g} = {float(m[k]):g} is 2**32 or more: every "
                              "accumulator but 0 saturates, and the products leave the range "
                              "qloom computes exactly. Quantize the model again with scales of "
                              "sensible size.")
        lo = max(code.qmin, int(zero_point)) if relu else code.qmin
        try:
            return ScaleRound(tables=(), multiplier=m, zero_point=int(zero_point), lo=lo,
                              hi=code.qmax)
        except ValueError as e:
            self.refuse(node, f"{e}.")

    def add_codes(self, node, a, b, scale, zero_point, code, relu):
        """A residual add of two code tensors of the same shape (onnxruntime's QLinearAdd)."""
        if a.shape != b.shape:
            self.refuse(node, f"adds tensors of shapes {a.shape} and {b.shape}; only equal shapes "
                              "are supported.")
        if not a.code == b.code == code:
            self.refuse(node, f"adds {a.code.name} and {b.code.name} codes into {code.name}; "
                              "onnxruntime runs an Add on quantized codes as QLinearAdd only when "
                              "both inputs and the output have one type (it computes others in "
                              "float, which qloom does not model).")
        name = self.fresh("add")
        lo = max(code.qmin, int(zero_point)) if relu else code.qmin
        n = self.emit(qg.Add(name, node.name or node.output[0], (a.tensor, b.tensor), name + ".out",
                             a_scale=a.scale, a_zero=a.zero_point, b_scale=b.scale,
                             b_zero=b.zero_point,
                             scale=float(F32(scale)), zero_point=int(zero_point), code=code, lo=lo,
                             hi=code.qmax))
        return self.new_codes(n, a.shape, code, scale, zero_point)

    def add_table(self, node, a, b_codes, b_scale, b_zero, c_scale, c_zero, code):
        """a + constant b → c, as ORT's QLinearAdd; folded into the producer's Requant when
        possible."""
        if np.asarray(b_scale).size != 1 or np.asarray(b_zero).size != 1:
            self.refuse(node, "the added constant must be quantized per tensor.")
        b = np.asarray(b_codes).reshape(-1)
        if not str(b.dtype) == a.code.name == code.name:
            self.refuse(node, f"adds {b.dtype} constant codes to {a.code.name} activations into "
                              f"{code.name}; onnxruntime runs such an Add as QLinearAdd only when "
                              "both inputs and the output have one type (it computes others in "
                              "float, which qloom does not model).")
        channels = a.shape[-1] if len(a.shape) else 1
        if b.size not in (1, channels) or len(a.shape) != 1:
            self.refuse(node, f"adds a constant of shape {np.shape(b_codes)} to activations of "
                              f"shape {a.shape}; only a per-channel (bias) or scalar constant is "
                              "supported.")
        table = CodeTable.qlinear_add(channels, a.code, a.scale, a.zero_point, b.astype(np.int64),
                                      float(np.asarray(b_scale).reshape(())),
                                      int(np.asarray(b_zero).reshape(())),
                                      c_scale, c_zero, code, what=f"{onnx_node_label(node)}")
        producer = self.producer(a.tensor)
        if not isinstance(producer, qg.Requant) or self.graph_so_far().consumers(a.tensor):
            self.refuse(node, "adding a constant is supported directly after a quantized "
                              "MatMul/Gemm.")
        target = replace(producer.target, tables=producer.target.tables + (table,))
        self.nodes[self.nodes.index(producer)] = replace(producer, target=target, code=code)
        self.stale.add(id(a))      # the codes before the addition no longer exist in hardware
        return Codes(a.tensor, a.shape, code, float(F32(c_scale)), int(c_zero))

    def concat_axis(self, node, parts):
        axis = self.attrs(node).get("axis")
        rank = len(parts[0].shape) + 1
        if axis is None or axis % rank != 1 or rank != 4:
            self.refuse(node, "only Concat along the channels (axis 1) of NCHW activations is "
                              "supported.")
        if any(p.shape[1:] != parts[0].shape[1:] for p in parts):
            self.refuse(node, f"concatenates tensors of shapes {[p.shape for p in parts]}; their H "
                              "and W differ.")

    def concat(self, node, parts, scale, zero_point, code):
        """Channel concat as onnxruntime's QLinearConcat: inputs quantized like the output are
        copied, others mapped by the table quantize(dequantize(x)) over every code."""
        if any(p.code != code for p in parts):
            self.refuse(node, "concatenates codes of different types (uint8 and int8).")
        codes = np.arange(code.qmin, code.qmax + 1)
        tables = tuple(None if (p.scale, p.zero_point) == (float(F32(scale)), int(zero_point)) else
                       numeric.quantize_linear(
                           numeric.dequantize_linear(codes, p.scale, p.zero_point),
                           scale, zero_point, code.qmin, code.qmax)
                       for p in parts)
        name = self.fresh("concat")
        n = self.emit(qg.Concat(name, node.name or node.output[0], tuple(p.tensor for p in parts),
                                name + ".out",
                                tables=tables, code=code))
        shape = (sum(p.shape[0] for p in parts),) + tuple(parts[0].shape[1:])
        return self.new_codes(n, shape, code, scale, zero_point)

    def global_mean(self, node, x, scale, zero_point, code):
        """GlobalAveragePool as onnxruntime's QLinearGlobalAveragePool computes it: the integer
        sum minus count · zx, then ``RNE(f32(sum · f32(sx / f32(sy · count)))) + zy``
        saturated."""
        self.spatial(node, len(x.shape) - 1, "GlobalAveragePool")
        name = self.fresh("sumpool")
        s = self.emit(qg.SumPool(name, node.name or node.output[0], (x.tensor,), name + ".acc",
                                 zero_point=x.zero_point, in_shape=tuple(x.shape)))
        self.shapes[s.output] = s.out_shape
        with np.errstate(all="ignore"):
            m = F32(F32(x.scale) / F32(F32(scale) * F32(s.count)))
        if scale_problem(m):
            self.refuse(node, f"its multiplier input scale / (output scale × {s.count} values) = "
                              f"{x.scale:g} / ({float(scale):g} × {s.count}) is "
                              f"{scale_problem(m)} in float32; quantize the model again with "
                              "scales of sensible size.")
        try:
            t = ScaleRound(tables=(), multiplier=np.full(x.shape[0], m, F32),
                           zero_point=int(zero_point),
                           lo=code.qmin, hi=code.qmax)
        except ValueError as e:
            self.refuse(node, f"{e}.")
        return self.requant(node, s, t, code, scale, zero_point)

    def average(self, node, x, scale, zero_point, code):
        """AveragePool as onnxruntime computes it: the dequantized codes summed in float32 in
        window order, divided by the window size, quantized (numeric.average_to_code); a window
        over the whole plane runs the global pool's integer path."""
        a = self.attrs(node)
        if a.get("ceil_mode", 0) or a.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET") or \
                any(d != 1 for d in a.get("dilations", (1, 1))):
            self.refuse(node, "only AveragePool with ceil_mode=0, no dilation and explicit pads "
                              "is supported.")
        kernel = tuple(a["kernel_shape"])
        self.spatial(node, len(x.shape) - 1, "AveragePool")
        self.spatial(node, len(kernel), "AveragePool")
        strides, pads = tuple(a.get("strides", (1, 1))), tuple(a.get("pads", (0, 0, 0, 0)))
        self.check_window(node, x.shape[1:], kernel, strides, pads, (1, 1), pool=True)
        if kernel == tuple(x.shape[1:]) and not any(pads):
            return self.global_mean(node, x, scale, zero_point, code)
        out = qg.window_out_size(x.shape[1:], kernel, strides, pads, (1, 1))
        partial = any(o * s - b < 0 or o * s - b + k > n for size, k, s, b, n in
                      zip(out, kernel, strides, pads[:2], x.shape[1:]) for o in range(size))
        if partial and not a.get("count_include_pad", 0):
            self.refuse(node, "windows reach into the padding with count_include_pad=0, so "
                              "onnxruntime divides border windows by fewer values; qloom divides "
                              "every window by the same size: use count_include_pad=1 or no "
                              "padding.")
        terms, e = numeric.dequantized_units(x.scale, x.zero_point, x.code.qmin, x.code.qmax)
        name = self.fresh("avgpool")
        s = self.emit(qg.FloatSumPool(name, node.name or node.output[0], (x.tensor,), name + ".acc",
                                      kernel=kernel,
                                      strides=strides, pads=pads, terms=terms, qmin=x.code.qmin,
                                      zero_point=x.zero_point, in_shape=tuple(x.shape)))
        self.shapes[s.output] = s.out_shape
        t = FloatMean(tables=(), exponent=e, count=s.taps, scale=float(F32(scale)),
                      zero_point=int(zero_point),
                      lo=code.qmin, hi=code.qmax, n_channels=x.shape[0])
        return self.requant(node, s, t, code, scale, zero_point)
