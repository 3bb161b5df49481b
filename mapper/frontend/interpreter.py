"""ONNX → QGraph.  The graph is interpreted abstractly: every ONNX tensor gets a
value describing what it is (integer codes, their dequantized view, a constant,
a float linear result still waiting for its QuantizeLinear, ...), and a QGraph
node is emitted when a pattern that onnxruntime runs on its fused integer path
is complete.  Whatever cannot be mapped is refused, naming the ONNX node."""
from dataclasses import dataclass, replace

import numpy as np
import onnx

from . import loading as onnx_load, op_types
from .. import numeric, qgraph as qg
from .checks import RANK0_PARAMS, Checks, scale_problem
from ..errors import NotQuantizedError, ShapeError, UnsupportedError, onnx_node_label
from ..numeric import F32
from ..requant_targets import CodeTable, FloatChain, FloatMean, ScaleRound

SUPPORTED = ("QuantizeLinear, DequantizeLinear, MatMul and Gemm between DequantizeLinear/QuantizeLinear "
             "(QDQ), Relu, Add of a quantized constant, QLinearMatMul, com.microsoft.QGemm, "
             "com.microsoft.QLinearAdd, MatMulInteger or ConvInteger → Cast → Mul → Add, Conv between DequantizeLinear/"
             "QuantizeLinear (QDQ), QLinearConv, MaxPool, AveragePool (QDQ, QLinearAveragePool), GlobalAveragePool (QDQ, QLinearGlobalAveragePool), Concat (QDQ, QLinearConcat), Transpose, Add of two quantized tensors (QDQ, QLinearAdd), "
             "Flatten, Reshape, Identity")
FLOAT_COMPUTE = {"MatMul", "Gemm", "Conv", "ConvTranspose", "LSTM", "GRU", "RNN", "Einsum"}


# ---- abstract values -------------------------------------------------------------------------

@dataclass
class Codes:
    tensor: str            # QGraph tensor name
    shape: tuple
    code: qg.CodeType
    scale: float
    zero_point: int


@dataclass
class Deq:                 # DequantizeLinear(codes): float, not yet computed on
    codes: Codes


@dataclass
class Const:
    array: np.ndarray


@dataclass
class DeqConst:            # DequantizeLinear(initializer)
    codes: np.ndarray
    scale: np.ndarray
    zero_point: np.ndarray
    axis: int
    name: str = ""         # the initializer's


@dataclass
class FloatInput:
    name: str
    shape: tuple


@dataclass
class Linear:              # x·W (+ bias) in float, waiting for QuantizeLinear
    x: Codes
    weight: np.ndarray     # codes, (out, in)
    w_zero: np.ndarray     # (out,)
    w_scale: np.ndarray    # (out,) float32
    bias: np.ndarray       # int32 codes at scale sx·sw, (out,)
    relu: bool
    node: onnx.NodeProto


@dataclass
class ConvLinear:          # Conv(x, W) (+ bias) in float, waiting for QuantizeLinear
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


@dataclass
class Acc:                 # MatMulInteger / ConvInteger output, int32; float chain once Cast
    x: Codes
    weight: np.ndarray
    w_zero: np.ndarray
    node: onnx.NodeProto
    is_float: bool = False
    scale: np.ndarray = None
    bias: np.ndarray = None
    relu: bool = False
    conv: tuple = None     # ConvInteger: (strides, pads, dilations, groups)


@dataclass
class PendingSum:          # DQ(codes) + DQ(codes) (a residual add), waiting for QuantizeLinear
    a: Codes
    b: Codes
    relu: bool
    node: onnx.NodeProto


@dataclass
class PendingConcat:       # Concat(DQ(codes), ...) along channels, waiting for QuantizeLinear
    parts: list
    node: onnx.NodeProto


@dataclass
class PendingMean:         # GlobalAveragePool(DQ(codes)), waiting for QuantizeLinear
    x: Codes
    node: onnx.NodeProto


@dataclass
class PendingAverage:      # AveragePool(DQ(codes)), waiting for QuantizeLinear
    x: Codes
    node: onnx.NodeProto


@dataclass
class PendingAdd:          # DQ(codes) + DQ(constant), waiting for QuantizeLinear
    a: Codes
    b: DeqConst
    node: onnx.NodeProto


def _per_channel(a, n, what, label):
    a = np.asarray(a).reshape(-1)
    if a.size == 1:
        return np.repeat(a, n)
    if a.size != n:
        raise UnsupportedError(f"{label}: {what} has {a.size} values for {n} output channels; "
                               "only per-tensor or per-output-channel quantization is supported.")
    return a


class Frontend(Checks):
    def __init__(self, model, path):
        self.model, self.path = model, path
        self.inits = onnx_load.initializers(model)
        self.values = {name: Const(a) for name, a in self.inits.items()}
        self.nodes, self.shapes, self.counts = [], {}, {}
        self.stale = set()
        self.notes = []
        self.consumers = {}
        for node in model.graph.node:
            for k, name in enumerate(node.input):
                self.consumers.setdefault(name, []).append((node, k))

    # -- helpers ------------------------------------------------------------------------------
    def fresh(self, kind):
        n = self.counts.get(kind, 0)
        self.counts[kind] = n + 1
        return f"{kind}{n}"

    def refuse(self, node, why):
        raise UnsupportedError(f"{onnx_node_label(node)} in {self.path}: {why}")

    def value(self, node, index):
        if index >= len(node.input) or node.input[index] == "":
            return None
        name = node.input[index]
        if name not in self.values:
            self.refuse(node, f"input '{name}' is produced by an operation qloom could not map.")
        v = self.values[name]
        if id(v.codes if isinstance(v, Deq) else v) in self.stale:
            self.refuse(node, f"input '{name}' is also used before a constant is added to it; qloom "
                              "folds that addition into the layer, so the value cannot be shared.")
        return v

    def const(self, node, index, what):
        v = self.value(node, index)
        if not isinstance(v, Const):
            self.refuse(node, f"{what} (input {index}) must be a constant initializer.")
        return v.array

    def emit(self, node):
        self.nodes.append(node)
        return node

    def new_codes(self, node, shape, code, scale, zero_point):
        self.shapes[node.output] = shape
        return Codes(node.output, shape, code, float(F32(scale)), int(zero_point))

    def code_type(self, node, zero_point_array):
        dtype = np.asarray(zero_point_array).dtype
        if str(dtype) not in numeric.DTYPE_RANGES:
            self.refuse(node, f"quantized type {dtype} is not supported; use uint8 or int8.")
        return qg.CodeType.from_dtype(dtype)

    def producer(self, tensor):
        return next((n for n in self.nodes if n.output == tensor), None)

    def graph_so_far(self):
        return qg.QGraph(tuple(self.nodes), tuple(self.input_names), (), dict(self.shapes))

    # -- emission of a dense layer + requantization --------------------------------------------
    def dense(self, onnx_node, x, weight, w_zero, bias_codes):
        """Dense on codes x with weight codes (out, in) and zero points w_zero (out,)."""
        w_eff = weight.astype(np.int64) - w_zero.astype(np.int64)[:, None]
        bias = np.zeros(w_eff.shape[0], np.int64) if bias_codes is None else bias_codes.astype(np.int64)
        bias = bias - x.zero_point * w_eff.sum(axis=1)
        if x.shape != (w_eff.shape[1],):
            self.refuse(onnx_node, f"expects {w_eff.shape[1]} input features but its input has shape "
                                   f"{x.shape}; only 2-D (batch, features) matrix products are supported.")
        name = self.fresh("dense")
        if weight.dtype == np.int8 and np.abs(weight.astype(np.int64)).max(initial=0) > 64:
            self.notes.append(
                f"{onnx_node_label(onnx_node)}: int8 weights exceed ±64. onnxruntime on x86 CPUs without "
                "VNNI sums pairs of 8-bit products in saturating int16 and may then differ from the exact "
                "result that qloom (and onnxruntime on VNNI or ARM CPUs) computes. Quantize with "
                "reduce_range=True to make every CPU agree.")
        d = self.emit(qg.Dense(name, onnx_node.name or onnx_node.output[0], (x.tensor,), name + ".acc",
                               weight=w_eff, bias=bias))
        self.shapes[d.output] = (d.out_features,)
        self.check_int32(onnx_node, d, x)
        return d

    def requant(self, onnx_node, dense, target, code, scale, zero_point):
        name = self.fresh("requant")
        r = self.emit(qg.Requant(name, onnx_node.name or onnx_node.output[0], (dense.output,), name + ".out",
                                 target=target, code=code))
        shape = dense.out_shape if isinstance(dense, (qg.Conv, qg.SumPool, qg.FloatSumPool)) else (dense.out_features,)
        return self.new_codes(r, shape, code, scale, zero_point)

    def conv(self, c):
        """Emit the Conv of a complete ConvLinear (zero points folded into the bias)."""
        w_eff = c.weight.astype(np.int64) - c.w_zero.astype(np.int64)[:, None, None, None]
        bias = np.zeros(w_eff.shape[0], np.int64) if c.bias is None else c.bias.astype(np.int64)
        bias = bias - c.x.zero_point * w_eff.reshape(w_eff.shape[0], -1).sum(axis=1)
        self.spatial(c.node, len(c.x.shape) - 1, "convolution")
        if c.groups < 1:
            self.refuse(c.node, f"group {c.groups} is not a positive number; onnxruntime refuses such a convolution.")
        if w_eff.shape[0] % c.groups:
            self.refuse(c.node, f"group {c.groups} does not divide its {w_eff.shape[0]} output channels; "
                                "onnxruntime refuses such a convolution. Give a group that divides both channel counts.")
        if w_eff.shape[1] * c.groups != c.x.shape[0]:
            self.refuse(c.node, f"expects {w_eff.shape[1] * c.groups} input channels ({w_eff.shape[1]} per group "
                                f"× group {c.groups}) but its input has {c.x.shape[0]} (shape {c.x.shape}).")
        self.check_window(c.node, c.x.shape[1:], w_eff.shape[2:], c.strides, c.pads, c.dilations)
        if c.weight.dtype == np.int8 and np.abs(c.weight.astype(np.int64)).max(initial=0) > 64:
            self.notes.append(f"{onnx_node_label(c.node)}: int8 weights exceed ±64 (see the MatMul note); "
                              "quantize with reduce_range=True to make every CPU agree.")
        name = self.fresh("conv")
        conv = self.emit(qg.Conv(name, c.node.name or c.node.output[0], (c.x.tensor,), name + ".acc",
                                 weight=w_eff, bias=bias, strides=c.strides, pads=c.pads, dilations=c.dilations,
                                 groups=c.groups, zero_point=c.x.zero_point, in_shape=tuple(c.x.shape)))
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

    def conv_weight(self, node, w):
        if not isinstance(w, DeqConst):
            if isinstance(w, Const):
                raise NotQuantizedError(f"{onnx_node_label(node)} in {self.path}: the weights are float; "
                                        "quantize the model with onnxruntime.quantization.quantize_static.")
            self.refuse(node, "the weights must be a DequantizeLinear of a constant.")
        self.spatial(node, w.codes.ndim - 2, "convolution")
        self.weight_codes(node, w)
        n_out = w.codes.shape[0]
        if np.asarray(w.scale).size > 1 and w.axis != 0:
            self.refuse(node, "weights are quantized along an axis other than the output channels.")
        label = onnx_node_label(node)
        return (w.codes, _per_channel(w.zero_point, n_out, "weight zero point", label).astype(np.int64),
                _per_channel(w.scale, n_out, "weight scale", label).astype(F32))

    def op_Conv(self, node):
        x, w = self.value(node, 0), self.value(node, 1)
        if isinstance(x, FloatInput) or isinstance(x, Const):
            raise NotQuantizedError(f"{onnx_node_label(node)} in {self.path}: its input is float; quantize "
                                    "the model with onnxruntime.quantization.quantize_static.")
        if not isinstance(x, Deq):
            self.refuse(node, "its input must be a DequantizeLinear of quantized activations.")
        weight, w_zero, w_scale = self.conv_weight(node, w)
        bias_codes = self.qdq_bias(node, x.codes, self.value(node, 2), weight.shape[0], w_scale)
        return ConvLinear(x.codes, weight, w_zero, w_scale, bias_codes, False, node,
                          *self.conv_attrs(node, weight.shape[2:]))

    def op_QLinearConv(self, node):
        x = self.qcodes(node, 0)
        self.check_input_params(node, x, *self.qparams(node, 1, 2))
        w_scale, w_zero = self.qparams(node, 4, 5, self.out_channels(node, 0))
        weight, w_zero, w_scale = self.conv_weight(node, DeqConst(self.const(node, 3, "the weight"),
                                                                  w_scale, w_zero, 0, node.input[3]))
        y_scale, y_zero, code = self.out_params(node, 6, 7)
        bias = None
        if len(node.input) > 8 and node.input[8]:
            bias = self.const(node, 8, "the bias")
            if bias.shape != (weight.shape[0],):
                self.refuse(node, f"its bias '{node.input[8]}' has shape {bias.shape}; onnxruntime wants a 1-D "
                                  f"tensor of its {weight.shape[0]} output channels.")
        c = ConvLinear(x, weight, w_zero, w_scale, bias, False, node, *self.conv_attrs(node, weight.shape[2:]))
        return self.requant(node, self.conv(c), self.scale_round(node, x, w_scale, y_scale, y_zero, code, False),
                            code, y_scale, y_zero)

    def op_MaxPool(self, node):
        x = self.value(node, 0)
        codes = x.codes if isinstance(x, Deq) else x
        if not isinstance(codes, Codes):
            self.refuse(node, "MaxPool is supported on quantized NCHW activations.")
        self.spatial(node, len(codes.shape) - 1, "MaxPool")
        a = self.attrs(node)
        if len(node.output) > 1 and node.output[1]:
            self.refuse(node, "MaxPool with an Indices output is not supported.")
        if a.get("ceil_mode", 0) or a.get("storage_order", 0) or \
                a.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
            self.refuse(node, "only MaxPool with ceil_mode=0, storage_order=0 and explicit pads is supported.")
        kernel = tuple(a["kernel_shape"])
        self.spatial(node, len(kernel), "MaxPool")
        self.check_window(node, codes.shape[1:], kernel, tuple(a.get("strides", (1, 1))),
                          tuple(a.get("pads", (0, 0, 0, 0))), tuple(a.get("dilations", (1, 1))), pool=True)
        name = self.fresh("maxpool")
        p = self.emit(qg.MaxPool(name, node.name or node.output[0], (codes.tensor,), name + ".out", kernel=kernel,
                                 strides=tuple(a.get("strides", (1, 1))), pads=tuple(a.get("pads", (0, 0, 0, 0))),
                                 dilations=tuple(a.get("dilations", (1, 1)))))
        shape = (codes.shape[0],) + qg.window_out_size(codes.shape[1:], p.kernel, p.strides, p.pads, p.dilations)
        out = self.new_codes(p, shape, codes.code, codes.scale, codes.zero_point)
        return Deq(out) if isinstance(x, Deq) else out

    def concat_axis(self, node, parts):
        axis = self.attrs(node).get("axis")
        rank = len(parts[0].shape) + 1
        if axis is None or axis % rank != 1 or rank != 4:
            self.refuse(node, "only Concat along the channels (axis 1) of NCHW activations is supported.")
        if any(p.shape[1:] != parts[0].shape[1:] for p in parts):
            self.refuse(node, f"concatenates tensors of shapes {[p.shape for p in parts]}; their H and W differ.")

    def op_Concat(self, node):
        xs = [self.value(node, k) for k in range(len(node.input))]
        if not all(isinstance(x, Deq) for x in xs):
            self.refuse(node, "Concat is supported on dequantized activations followed by QuantizeLinear (QDQ), "
                              "or as com.microsoft.QLinearConcat.")
        self.concat_axis(node, [x.codes for x in xs])
        return PendingConcat([x.codes for x in xs], node)

    def op_QLinearConcat(self, node):
        y_scale, y_zero, code = self.out_params(node, 0, 1)
        if (len(node.input) - 2) % 3 or len(node.input) < 5:
            self.refuse(node, f"it has {len(node.input)} inputs; QLinearConcat takes y_scale, y_zero_point and "
                              "then (tensor, scale, zero point) triples.")
        parts = []
        for k in range(2, len(node.input), 3):
            x = self.qcodes(node, k)
            scale, zp = self.qparams(node, k + 1, k + 2)
            if str(zp.dtype) != x.code.name:
                self.refuse(node, f"the zero point '{node.input[k + 2]}' of input '{node.input[k]}' is {zp.dtype}, "
                                  f"but the input is {x.code.name}; give it the type of its input.")
            self.check_input_params(node, x, scale, zp)
            parts.append(x)
        self.concat_axis(node, parts)
        return self.concat(node, parts, y_scale, y_zero, code)

    def concat(self, node, parts, scale, zero_point, code):
        """Channel concat as onnxruntime's QLinearConcat: inputs quantized like the output are
        copied, others mapped by the table quantize(dequantize(x)) over every code."""
        if any(p.code != code for p in parts):
            self.refuse(node, "concatenates codes of different types (uint8 and int8).")
        codes = np.arange(code.qmin, code.qmax + 1)
        tables = tuple(None if (p.scale, p.zero_point) == (float(F32(scale)), int(zero_point)) else
                       numeric.quantize_linear(numeric.dequantize_linear(codes, p.scale, p.zero_point),
                                               scale, zero_point, code.qmin, code.qmax)
                       for p in parts)
        name = self.fresh("concat")
        n = self.emit(qg.Concat(name, node.name or node.output[0], tuple(p.tensor for p in parts), name + ".out",
                                tables=tables, code=code))
        shape = (sum(p.shape[0] for p in parts),) + tuple(parts[0].shape[1:])
        return self.new_codes(n, shape, code, scale, zero_point)

    def pooled_codes(self, node):
        """The NCHW codes a QDQ pool reads: DequantizeLinear(codes), the pool waiting for its
        QuantizeLinear."""
        x = self.value(node, 0)
        if not isinstance(x, Deq):
            self.refuse(node, f"{node.op_type} is supported on dequantized NCHW activations followed by "
                              f"QuantizeLinear (QDQ), or as com.microsoft.QLinear{node.op_type}.")
        self.spatial(node, len(x.codes.shape) - 1, node.op_type)
        return x.codes

    def qlinear_pool(self, node):
        """(codes, output scale, zero point, code type) of a com.microsoft QLinear pool."""
        x = self.qcodes(node, 0)
        if self.attrs(node).get("channels_last", 0):
            self.refuse(node, "channels_last=1 is not supported; export the model in NCHW.")
        self.check_input_params(node, x, *self.qparams(node, 1, 2))
        self.spatial(node, len(x.shape) - 1, node.op_type.removeprefix("QLinear"))
        return (x, *self.out_params(node, 3, 4))

    def op_GlobalAveragePool(self, node):
        return PendingMean(self.pooled_codes(node), node)

    def op_QLinearGlobalAveragePool(self, node):
        return self.global_mean(node, *self.qlinear_pool(node))

    def global_mean(self, node, x, scale, zero_point, code):
        """GlobalAveragePool as onnxruntime's QLinearGlobalAveragePool computes it: the integer
        sum minus count · zx, then ``RNE(f32(sum · f32(sx / f32(sy · count)))) + zy`` saturated."""
        self.spatial(node, len(x.shape) - 1, "GlobalAveragePool")
        name = self.fresh("sumpool")
        s = self.emit(qg.SumPool(name, node.name or node.output[0], (x.tensor,), name + ".acc",
                                 zero_point=x.zero_point, in_shape=tuple(x.shape)))
        self.shapes[s.output] = s.out_shape
        with np.errstate(all="ignore"):
            m = F32(F32(x.scale) / F32(F32(scale) * F32(s.count)))
        if scale_problem(m):
            self.refuse(node, f"its multiplier input scale / (output scale × {s.count} values) = {x.scale:g} / "
                              f"({float(scale):g} × {s.count}) is {scale_problem(m)} in float32; quantize the "
                              "model again with scales of sensible size.")
        try:
            t = ScaleRound(tables=(), multiplier=np.full(x.shape[0], m, F32), zero_point=int(zero_point),
                           lo=code.qmin, hi=code.qmax)
        except ValueError as e:
            self.refuse(node, f"{e}.")
        return self.requant(node, s, t, code, scale, zero_point)

    def op_AveragePool(self, node):
        return PendingAverage(self.pooled_codes(node), node)

    def op_QLinearAveragePool(self, node):
        return self.average(node, *self.qlinear_pool(node))

    def average(self, node, x, scale, zero_point, code):
        """AveragePool as onnxruntime computes it: the dequantized codes summed in float32 in
        window order, divided by the window size, quantized (numeric.average_to_code); a window
        over the whole plane runs the global pool's integer path."""
        a = self.attrs(node)
        if a.get("ceil_mode", 0) or a.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET") or \
                any(d != 1 for d in a.get("dilations", (1, 1))):
            self.refuse(node, "only AveragePool with ceil_mode=0, no dilation and explicit pads is supported.")
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
            self.refuse(node, "windows reach into the padding with count_include_pad=0, so onnxruntime "
                              "divides border windows by fewer values; qloom divides every window by the "
                              "same size: use count_include_pad=1 or no padding.")
        terms, e = numeric.dequantized_units(x.scale, x.zero_point, x.code.qmin, x.code.qmax)
        name = self.fresh("avgpool")
        s = self.emit(qg.FloatSumPool(name, node.name or node.output[0], (x.tensor,), name + ".acc", kernel=kernel,
                                      strides=strides, pads=pads, terms=terms, qmin=x.code.qmin,
                                      zero_point=x.zero_point, in_shape=tuple(x.shape)))
        self.shapes[s.output] = s.out_shape
        t = FloatMean(tables=(), exponent=e, count=s.taps, scale=float(F32(scale)), zero_point=int(zero_point),
                      lo=code.qmin, hi=code.qmax, n_channels=x.shape[0])
        return self.requant(node, s, t, code, scale, zero_point)

    def scale_round(self, node, x, w_scale, out_scale, zero_point, code, relu):
        with np.errstate(all="ignore"):
            m = numeric.fused_multiplier(x.scale, w_scale, out_scale)
        problem = scale_problem(m)
        if problem:
            k = int(np.argmax(~(np.isfinite(m) & (m >= np.finfo(F32).tiny))))
            self.refuse(node, f"its requantization multiplier input scale × weight scale / output scale = "
                              f"{x.scale:g} × {float(np.asarray(w_scale).reshape(-1)[k]):g} / {float(out_scale):g} "
                              f"is {problem} in float32, so onnxruntime's fused integer kernel cannot compute "
                              "it. Quantize the model again with scales of sensible size.")
        if np.any(m >= 2.0 ** 32):
            k = int(np.argmax(m >= 2.0 ** 32))
            self.refuse(node, f"its requantization multiplier input scale × weight scale / output scale = "
                              f"{x.scale:g} × {float(np.asarray(w_scale).reshape(-1)[k]):g} / {float(out_scale):g} "
                              f"= {float(m[k]):g} is 2**32 or more: every accumulator but 0 saturates, and the "
                              "products leave the range qloom computes exactly. Quantize the model again with "
                              "scales of sensible size.")
        lo = max(code.qmin, int(zero_point)) if relu else code.qmin
        try:
            return ScaleRound(tables=(), multiplier=m, zero_point=int(zero_point), lo=lo, hi=code.qmax)
        except ValueError as e:
            self.refuse(node, f"{e}.")

    # -- op handlers -------------------------------------------------------------------------------
    def run(self):
        graph = self.model.graph
        init_names = set(self.inits)
        inputs = [i for i in graph.input if i.name not in init_names]
        if len(inputs) != 1:
            raise UnsupportedError(f"{self.path}: the model has {len(inputs)} inputs "
                                   f"({', '.join(i.name for i in inputs)}); qloom supports exactly one.")
        if len(graph.output) != 1:
            names = ", ".join(f"'{o.name}'" for o in graph.output)
            raise UnsupportedError(f"{self.path}: the model has {len(graph.output)} outputs"
                                   f"{' (' + names + ')' if names else ''}; qloom builds circuits with exactly one "
                                   "output. Keep the one you need, e.g. with onnx.utils.extract_model(in, out, "
                                   "input_names, [output_name]).")
        self.types_check = op_types.TypeCheck(self.model, self.path)
        self.types = self.types_check.types
        x = inputs[0]
        if self.types.get(x.name) != "tensor(float)":
            got = self.types.get(x.name, "not a tensor").removeprefix("tensor(").removesuffix(")")
            raise UnsupportedError(f"{self.path}: the model's input '{x.name}' is {got}; qloom's circuits take "
                                   "float32 frames and quantize them with a QuantizeLinear. Export the model with "
                                   "a float32 input.")
        self.input_names = [x.name]
        shape = onnx_load.static_input_shape(self.path, x)
        self.values[x.name] = FloatInput(x.name, shape)
        self.check_quantized()
        for node in graph.node:
            contrib = node.domain == "com.microsoft"
            handler = getattr(self, "op_" + node.op_type, None)
            if handler is None or node.domain not in ("", "ai.onnx", "com.microsoft") or \
                    contrib != (node.op_type in op_types.CONTRIB):
                self.refuse(node, f"operator {node.domain + '.' if node.domain else ''}{node.op_type} "
                                  f"is not supported. Supported: {SUPPORTED}.")
            if not node.output or not node.output[0]:
                self.refuse(node, "it has no output.")
            try:
                out = handler(node)
            except qg.NodeError as e:
                raise ShapeError(f"{onnx_node_label(node)} in {self.path}: {e}.") from None
            self.values[node.output[0]] = out
        self.check_input_quantized(x.name)
        outputs = [self.graph_output(o.name) for o in graph.output]
        try:
            return qg.QGraph(tuple(self.nodes), tuple(self.input_names), tuple(outputs), dict(self.shapes),
                             notes=tuple(self.notes))
        except qg.NodeError as e:
            raise ShapeError(f"{self.path}: {e}") from None

    def check_quantized(self):
        ops = {n.op_type for n in self.model.graph.node}
        quantized = {"QuantizeLinear", "QLinearMatMul", "QGemm", "MatMulInteger", "QLinearConv",
                     "ConvInteger", "DynamicQuantizeLinear"}
        if not ops & quantized:
            float_ops = sorted(ops & FLOAT_COMPUTE) or sorted(ops)
            raise NotQuantizedError(
                f"{self.path} is a floating-point model ({', '.join(float_ops)} on float tensors); qloom "
                "compiles quantized models. Quantize it with onnxruntime first, e.g. "
                "onnxruntime.quantization.quantize_static(model_input, model_output, calibration_reader, "
                "quant_format=QuantFormat.QDQ, activation_type=QuantType.QUInt8, "
                "weight_type=QuantType.QInt8, per_channel=True).")
        if "DynamicQuantizeLinear" in ops:
            node = next(n for n in self.model.graph.node if n.op_type == "DynamicQuantizeLinear")
            raise NotQuantizedError(
                f"{onnx_node_label(node)} in {self.path}: the model is dynamically quantized (activation "
                "scales computed at run time), which fixed-function hardware cannot do. Quantize it "
                "statically with onnxruntime.quantization.quantize_static and a calibration reader.")

    def graph_output(self, name):
        v = self.values.get(name)
        if isinstance(v, Deq):
            out = self.emit(qg.Dequantize(self.fresh("dequantize"), name, (v.codes.tensor,), name,
                                          scale=v.codes.scale, zero_point=v.codes.zero_point))
            self.shapes[name] = v.codes.shape
            return out.output
        if isinstance(v, Codes):
            self.nodes.append(qg.Reshape(self.fresh("output"), name, (v.tensor,), name, shape=v.shape))
            self.shapes[name] = v.shape
            return name
        raise UnsupportedError(f"{self.path}: graph output '{name}' is not the result of a quantized "
                               "layer followed by DequantizeLinear; qloom cannot produce it.")

    def op_Identity(self, node):
        return self.value(node, 0)

    def op_QuantizeLinear(self, node):
        x = self.value(node, 0)
        self.qdq_attributes(node)
        role = "the input scale" if isinstance(x, FloatInput) else \
            f"the output scale of {onnx_node_label(x.node)}" if hasattr(x, "node") else "the output scale"
        scale = self.check_scale(node, 1, self.const(node, 1, "the scale"), role)
        zp = self.zero_point(node, 2)
        if np.asarray(scale).size != 1 or np.asarray(zp).size != 1:
            self.refuse(node, "per-channel activation quantization is not supported; use per-tensor.")
        self.check_qshape(node, 1, scale)
        if len(node.input) > 2 and node.input[2]:
            self.check_qshape(node, 2, zp)
        code = self.code_type(node, zp)
        scale, zp = float(F32(np.asarray(scale).reshape(()))), int(np.asarray(zp).reshape(()))
        if isinstance(x, FloatInput):
            name = self.fresh("quantize")
            q = self.emit(qg.Quantize(name, node.name or node.output[0], (x.name,), name + ".out",
                                      shape=x.shape, scale=scale, zero_point=zp, code=code))
            return self.new_codes(q, x.shape, code, scale, zp)
        if isinstance(x, ConvLinear):
            t = self.scale_round(x.node, x.x, x.w_scale, scale, zp, code, x.relu)
            return self.requant(x.node, self.conv(x), t, code, scale, zp)
        if isinstance(x, Deq) and (x.codes.scale, x.codes.zero_point, x.codes.code) == (scale, zp, code):
            return x.codes          # Q(DQ(q)) with the same parameters is q (e.g. around MaxPool)
        if isinstance(x, Linear):
            d = self.dense(x.node, x.x, x.weight, x.w_zero, x.bias)
            t = self.scale_round(x.node, x.x, x.w_scale, scale, zp, code, x.relu)
            return self.requant(x.node, d, t, code, scale, zp)
        if isinstance(x, Acc) and x.is_float:
            d = self.dense(x.node, x.x, x.weight, x.w_zero, None) if x.conv is None else \
                self.conv(ConvLinear(x.x, x.weight, x.w_zero, None, None, False, x.node, *x.conv))
            bias = np.zeros(x.weight.shape[0], F32) if x.bias is None else x.bias
            acc_scale = np.ones(x.weight.shape[0], F32) if x.scale is None else x.scale   # Cast → Q: scale 1
            t = FloatChain(tables=(), scale=acc_scale, bias=bias, relu=x.relu, out_scale=scale,
                           zero_point=zp, lo=code.qmin, hi=code.qmax)
            return self.requant(x.node, d, t, code, scale, zp)
        if isinstance(x, PendingAdd):
            return self.add_table(x.node, x.a, x.b.codes, x.b.scale, x.b.zero_point, scale, zp, code)
        if isinstance(x, PendingSum):
            return self.add_codes(x.node, x.a, x.b, scale, zp, code, x.relu)
        if isinstance(x, PendingMean):
            return self.global_mean(x.node, x.x, scale, zp, code)
        if isinstance(x, PendingAverage):
            # onnxruntime fuses DQ → AveragePool → Q into QLinearAveragePool (int8 too, with
            # session.qdqisint8allowed as ort_check runs it; without, int8 stays float: not modelled)
            return self.average(x.node, x.x, scale, zp, code)
        if isinstance(x, PendingConcat):
            return self.concat(x.node, x.parts, scale, zp, code)
        self.refuse(node, "quantizes a value that is not the float input or the result of a supported "
                          "quantized layer (MatMul/Gemm between DequantizeLinear nodes).")

    def op_DequantizeLinear(self, node):
        x = self.value(node, 0)
        self.qdq_attributes(node)
        axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
        if isinstance(x, Const):
            scale = self.check_scale(node, 1, self.const(node, 1, "the scale"), self.dq_role(node))
            zp = self.const(node, 2, "the zero point") if len(node.input) > 2 and node.input[2] else \
                np.zeros((), x.array.dtype)
            per_axis = None
            if scale.size > 1 or np.asarray(zp).size > 1:
                if not -x.array.ndim <= axis < x.array.ndim:
                    self.refuse(node, f"axis {axis} is out of range for its {x.array.ndim}-D input.")
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
            zp = self.zero_point(node, 2) if len(node.input) > 2 and node.input[2] else np.zeros((), np.int64)
            if scale.size != 1 or np.asarray(zp).size != 1:
                self.refuse(node, "per-channel dequantization of activations is not supported; use per-tensor.")
            scale, zp = float(F32(scale.reshape(()))), int(np.asarray(zp).reshape(()))
            if (scale, zp) == (x.scale, x.zero_point):
                return Deq(x)
            codes = replace(x, scale=scale, zero_point=zp)    # the same codes, read with other parameters
            if id(x) in self.stale:
                self.stale.add(id(codes))
            return Deq(codes)
        self.refuse(node, "dequantizes a value that is neither a constant nor quantized codes.")

    def weight_of(self, node, w, out_axis):
        """Weight codes as (out, in), zero points and scales per output channel."""
        if not isinstance(w, DeqConst):
            if isinstance(w, Const):
                raise NotQuantizedError(f"{onnx_node_label(node)} in {self.path}: the weights are float; "
                                        "quantize the model with onnxruntime.quantization.quantize_static.")
            self.refuse(node, "the weights must be a DequantizeLinear of a constant.")
        codes = w.codes
        self.weight_codes(node, w)
        if codes.ndim != 2:
            self.refuse(node, f"weights of rank {codes.ndim} are not supported; a Dense layer needs 2-D weights.")
        n_out = codes.shape[out_axis]
        if np.asarray(w.scale).size > 1 and (w.axis % 2) != out_axis:
            self.refuse(node, "weights are quantized per input channel; only per-output-channel "
                              "(or per-tensor) weight scales can be mapped.")
        weight = codes if out_axis == 0 else codes.T
        return (weight, _per_channel(w.zero_point, n_out, "weight zero point", onnx_node_label(node)).astype(np.int64),
                _per_channel(w.scale, n_out, "weight scale", onnx_node_label(node)).astype(F32))

    def linear(self, node, x, w, bias, out_axis):
        if isinstance(x, Const) or isinstance(x, FloatInput):
            raise NotQuantizedError(f"{onnx_node_label(node)} in {self.path}: its input is float; quantize "
                                    "the model with onnxruntime.quantization.quantize_static.")
        if not isinstance(x, Deq):
            self.refuse(node, "its input must be a DequantizeLinear of quantized activations.")
        weight, w_zero, w_scale = self.weight_of(node, w, out_axis)
        bias_codes = self.qdq_bias(node, x.codes, bias, weight.shape[0], w_scale)
        return Linear(x.codes, weight, w_zero, w_scale, bias_codes, False, node)

    def qdq_bias(self, node, x, bias, n_out, w_scale):
        """The int32 codes of a QDQ bias, which onnxruntime fuses only at scale input scale × weight
        scale with zero point 0."""
        if bias is None:
            return None
        if not isinstance(bias, DeqConst) or bias.codes.dtype != np.int32:
            self.refuse(node, "the bias must be an int32 constant behind DequantizeLinear.")
        if node.op_type == "Conv" and bias.codes.shape != (n_out,):
            self.refuse(node, f"its bias '{bias.name}' has shape {bias.codes.shape}; a Conv wants a 1-D tensor of its "
                              f"{n_out} output channels.")
        label = onnx_node_label(node)
        codes = _per_channel(bias.codes, n_out, "bias", label)
        bscale = numeric.f32(_per_channel(bias.scale, n_out, "bias scale", label))
        expect = numeric.f32(F32(x.scale) * w_scale)
        if not np.array_equal(bscale, expect):
            k = int(np.argmax(bscale != expect))
            self.refuse(node, f"the bias scale{'' if n_out == 1 else f' of channel {k}'} is {float(bscale[k]):g}, "
                              f"not input scale × weight scale = {x.scale:g} × {float(w_scale[k]):g} = "
                              f"{float(expect[k]):g} (in float32), so onnxruntime cannot fuse this layer to "
                              "integers. Quantize the bias at that scale.")
        if np.any(np.asarray(bias.zero_point) != 0):
            self.refuse(node, "the bias zero point is not 0, so onnxruntime cannot fuse this layer to integers.")
        return codes

    def op_MatMul(self, node):
        return self.linear(node, self.value(node, 0), self.value(node, 1), None, out_axis=1)

    def attrs(self, node):
        return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}

    def gemm_axis(self, node):
        a = self.attrs(node)
        bad = [f"{k}={a[k]:g}" for k, ok in (("transA", 0), ("alpha", 1.0), ("beta", 1.0)) if a.get(k, ok) != ok]
        if bad:
            self.refuse(node, f"{' and '.join(bad)} {'is' if len(bad) == 1 else 'are'} not supported; qloom maps "
                              f"{node.op_type} with transA=0, alpha=1 and beta=1.")
        return 0 if a.get("transB", 0) else 1

    def op_Gemm(self, node):
        return self.linear(node, self.value(node, 0), self.value(node, 1), self.value(node, 2),
                           out_axis=self.gemm_axis(node))

    def op_Relu(self, node):
        x = self.value(node, 0)
        if isinstance(x, (Linear, ConvLinear, PendingSum)) and not x.relu:
            return replace(x, relu=True)
        if isinstance(x, Acc) and x.is_float:
            return replace(x, relu=True)
        self.refuse(node, "Relu is supported directly after a quantized MatMul/Gemm (it folds into "
                          "the output clamp).")

    def add_codes(self, node, a, b, scale, zero_point, code, relu):
        """A residual add of two code tensors of the same shape (onnxruntime's QLinearAdd)."""
        if a.shape != b.shape:
            self.refuse(node, f"adds tensors of shapes {a.shape} and {b.shape}; only equal shapes are supported.")
        if not a.code == b.code == code:
            self.refuse(node, f"adds {a.code.name} and {b.code.name} codes into {code.name}; onnxruntime runs an "
                              "Add on quantized codes as QLinearAdd only when both inputs and the output have one "
                              "type (it computes others in float, which qloom does not model).")
        name = self.fresh("add")
        lo = max(code.qmin, int(zero_point)) if relu else code.qmin
        n = self.emit(qg.Add(name, node.name or node.output[0], (a.tensor, b.tensor), name + ".out",
                             a_scale=a.scale, a_zero=a.zero_point, b_scale=b.scale, b_zero=b.zero_point,
                             scale=float(F32(scale)), zero_point=int(zero_point), code=code, lo=lo, hi=code.qmax))
        return self.new_codes(n, a.shape, code, scale, zero_point)

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
            return replace(a, bias=_per_channel(b.array, a.weight.shape[0], "bias",
                                                onnx_node_label(node)).astype(F32))
        self.refuse(node, "only the addition of a quantized constant (a bias) to quantized activations "
                          "is supported here.")

    def add_table(self, node, a, b_codes, b_scale, b_zero, c_scale, c_zero, code):
        """a + constant b → c, as ORT's QLinearAdd; folded into the producer's Requant when possible."""
        if np.asarray(b_scale).size != 1 or np.asarray(b_zero).size != 1:
            self.refuse(node, "the added constant must be quantized per tensor.")
        b = np.asarray(b_codes).reshape(-1)
        if not str(b.dtype) == a.code.name == code.name:
            self.refuse(node, f"adds {b.dtype} constant codes to {a.code.name} activations into {code.name}; "
                              "onnxruntime runs such an Add as QLinearAdd only when both inputs and the output "
                              "have one type (it computes others in float, which qloom does not model).")
        channels = a.shape[-1] if len(a.shape) else 1
        if b.size not in (1, channels) or len(a.shape) != 1:
            self.refuse(node, f"adds a constant of shape {np.shape(b_codes)} to activations of shape "
                              f"{a.shape}; only a per-channel (bias) or scalar constant is supported.")
        table = CodeTable.qlinear_add(channels, a.code, a.scale, a.zero_point, b.astype(np.int64),
                                      float(np.asarray(b_scale).reshape(())), int(np.asarray(b_zero).reshape(())),
                                      c_scale, c_zero, code, what=f"{onnx_node_label(node)}")
        producer = self.producer(a.tensor)
        if not isinstance(producer, qg.Requant) or self.graph_so_far().consumers(a.tensor):
            self.refuse(node, "adding a constant is supported directly after a quantized MatMul/Gemm.")
        target = replace(producer.target, tables=producer.target.tables + (table,))
        self.nodes[self.nodes.index(producer)] = replace(producer, target=target, code=code)
        self.stale.add(id(a))      # the codes before the addition no longer exist in hardware
        return Codes(a.tensor, a.shape, code, float(F32(c_scale)), int(c_zero))

    def qparams(self, node, s_index, z_index, per_axis=None):
        """Scale and zero point inputs: one value each (a scalar or 1-D of 1), or ``per_axis`` values
        (1-D) for weights; a zero point absent is 0."""
        scale = self.check_scale(node, s_index, self.const(node, s_index, "the scale"))
        self.check_qshape(node, s_index, scale, per_axis)
        if node.op_type in RANK0_PARAMS and len(node.input) > z_index and not node.input[z_index]:
            self.refuse(node, f"its {self.formal(node, z_index)} (input {z_index}) is given as an empty name; "
                              f"onnxruntime's {node.op_type} then refuses the model. Give the zero point, or "
                              "leave trailing optional inputs out.")
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
            self.refuse(node, f"it reads its input with scale {s:g} and zero point {z}, but the input was quantized "
                              f"with scale {x.scale:g} and zero point {x.zero_point}; give the node the parameters "
                              "of its input.")

    def op_QLinearMatMul(self, node):
        x = self.qcodes(node, 0)
        self.check_input_params(node, x, *self.qparams(node, 1, 2))
        w_scale, w_zero = self.qparams(node, 4, 5, self.out_channels(node, 1))
        w = DeqConst(self.const(node, 3, "the weight"), w_scale, w_zero, 1, node.input[3])
        weight, w_zero, w_scale = self.weight_of(node, w, out_axis=1)
        y_scale, y_zero, code = self.out_params(node, 6, 7)
        d = self.dense(node, x, weight, w_zero, None)
        return self.requant(node, d, self.scale_round(node, x, w_scale, y_scale, y_zero, code, False),
                            code, y_scale, y_zero)

    def op_QGemm(self, node):
        x = self.qcodes(node, 0)
        self.check_input_params(node, x, *self.qparams(node, 1, 2))
        out_axis = self.gemm_axis(node)
        w_scale, w_zero = self.qparams(node, 4, 5, self.out_channels(node, out_axis))
        w = DeqConst(self.const(node, 3, "the weight"), w_scale, w_zero, out_axis, node.input[3])
        weight, w_zero, w_scale = self.weight_of(node, w, out_axis)
        bias = None
        if len(node.input) > 6 and node.input[6]:
            bias = _per_channel(self.const(node, 6, "the bias"), weight.shape[0], "bias", onnx_node_label(node))
        if len(node.input) < 9 or not node.input[7] or not node.input[8]:
            self.refuse(node, "QGemm without an output scale and zero point (inputs 7 and 8) produces float in "
                              "onnxruntime; qloom maps QGemm with quantized outputs. Give it y_scale and y_zero_point.")
        y_scale, y_zero, code = self.out_params(node, 7, 8)
        d = self.dense(node, x, weight, w_zero, bias)
        return self.requant(node, d, self.scale_round(node, x, w_scale, y_scale, y_zero, code, False),
                            code, y_scale, y_zero)

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

    def op_MatMulInteger(self, node):
        x = self.qcodes(node, 0)
        self.integer_input_zero(node, x)
        zw = self.const(node, 3, "the weight zero point") if len(node.input) > 3 and node.input[3] else np.int8(0)
        w = DeqConst(self.const(node, 1, "the weight"), np.ones(1, F32), np.asarray(zw), 1, node.input[1])
        weight, w_zero, _ = self.weight_of(node, w, out_axis=1)
        return Acc(x, weight, w_zero, node)

    def op_ConvInteger(self, node):
        x = self.qcodes(node, 0)
        self.integer_input_zero(node, x)
        zw = self.const(node, 3, "the weight zero point") if len(node.input) > 3 and node.input[3] else np.int8(0)
        weight, w_zero, _ = self.conv_weight(node, DeqConst(self.const(node, 1, "the weight"), np.ones(1, F32),
                                                            np.asarray(zw), 0, node.input[1]))
        return Acc(x, weight, w_zero, node, conv=self.conv_attrs(node, weight.shape[2:]))

    def op_Cast(self, node):
        x = self.value(node, 0)
        if isinstance(x, Acc) and not x.is_float and self.attrs(node).get("to") == onnx.TensorProto.FLOAT:
            return replace(x, is_float=True, scale=None)
        self.refuse(node, "only the Cast of a MatMulInteger result to float is supported.")

    def op_Mul(self, node):
        a, b = self.value(node, 0), self.value(node, 1)
        k = 1
        if isinstance(a, Const):
            a, b, k = b, a, 0
        if isinstance(a, Acc) and a.is_float and a.scale is None and a.bias is None and isinstance(b, Const):
            if b.array.dtype != F32:
                self.refuse(node, f"the scale '{node.input[k]}' is {b.array.dtype}; qloom supports float32.")
            self.check_scale(node, k, b.array, f"the scale of the result of {onnx_node_label(a.node)}")
            return replace(a, scale=_per_channel(b.array, a.weight.shape[0], "scale",
                                                 onnx_node_label(node)).astype(F32))
        self.refuse(node, "only one Mul by a constant scale after MatMulInteger → Cast is supported.")

    def reshape(self, node, new_shape):
        x = self.value(node, 0)
        codes = x.codes if isinstance(x, Deq) else x
        if not isinstance(codes, Codes):
            self.refuse(node, "reshapes a value that is not quantized activations.")
        if int(np.prod(new_shape)) != int(np.prod(codes.shape)):
            self.refuse(node, f"cannot reshape {codes.shape} to {tuple(new_shape)}.")
        name = self.fresh("reshape")
        r = self.emit(qg.Reshape(name, node.name or node.output[0], (codes.tensor,), name + ".out",
                                 shape=tuple(new_shape)))
        out = self.new_codes(r, tuple(new_shape), codes.code, codes.scale, codes.zero_point)
        return Deq(out) if isinstance(x, Deq) else out

    def op_Transpose(self, node):
        x = self.value(node, 0)
        codes = x.codes if isinstance(x, Deq) else x
        if not isinstance(codes, Codes):
            self.refuse(node, "transposes a value that is not quantized activations.")
        perm = [int(p) for p in self.attrs(node).get("perm", range(len(codes.shape) + 1)[::-1])]
        if not perm or perm[0] != 0:
            self.refuse(node, f"perm {perm} moves the batch axis; only transposes of the other axes are supported.")
        perm = tuple(p - 1 for p in perm[1:])
        name = self.fresh("transpose")
        t = self.emit(qg.Transpose(name, node.name or node.output[0], (codes.tensor,), name + ".out", perm=perm))
        out = self.new_codes(t, tuple(codes.shape[p] for p in perm), codes.code, codes.scale, codes.zero_point)
        return Deq(out) if isinstance(x, Deq) else out

    def op_Flatten(self, node):
        if self.attrs(node).get("axis", 1) != 1:
            self.refuse(node, "only Flatten with axis=1 is supported.")
        x = self.value(node, 0)
        shape = (x.codes if isinstance(x, Deq) else x).shape if isinstance(x, (Deq, Codes)) else ()
        return self.reshape(node, (int(np.prod(shape)),))

    def op_Reshape(self, node):
        target = [int(v) for v in self.const(node, 1, "the target shape")]
        if not target or target[0] not in (1, -1, 0):
            self.refuse(node, f"reshape to {target} changes the batch dimension.")
        x = self.value(node, 0)
        shape = (x.codes if isinstance(x, Deq) else x).shape if isinstance(x, (Deq, Codes)) else ()
        rest = target[1:]
        if rest.count(-1) == 1:
            known = int(np.prod([d for d in rest if d != -1]))
            rest = [int(np.prod(shape)) // known if d == -1 else d for d in rest]
        rest = [shape[i] if d == 0 and i < len(shape) else d for i, d in enumerate(rest)]
        return self.reshape(node, tuple(rest))


def to_qgraph(model, path="model"):
    """Map a loaded, shape-inferred ONNX model to its QGraph."""
    return Frontend(model, path).run()


def load_qgraph(path):
    return to_qgraph(onnx_load.load(path), str(path))
