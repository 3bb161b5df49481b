"""What the frontend accepts, beyond the types (op_types.py): scales positive, finite and normal,
scale and zero-point shapes as onnxruntime wants them, windows of two spatial axes with valid
attributes, accumulators that fit onnxruntime's int32, 8-bit weight codes and one quantized
input.  A mixin of frontend.Frontend: each check refuses naming the ONNX node, what is wrong
and what to do."""
import numpy as np
import onnx

from . import op_types
from .. import numeric, qgraph as qg
from ..errors import UnsupportedError, onnx_node_label
from ..numeric import F32

SCALE_ROLES = {"x_scale": "the input scale", "a_scale": "the input scale",
               "A_scale": "the scale of input A",
               "B_scale": "the scale of input B", "b_scale": "the weight scale",
               "w_scale": "the weight scale",
               "y_scale": "the output scale", "C_scale": "the output scale",
               "Y_scale": "the output scale"}


RANK0_PARAMS = {"QLinearAdd",
                "QLinearAveragePool"}    # onnxruntime wants rank-0 scales and zero points


def scale_problem(scale):
    """Why a float32 scale (array) cannot be a quantization scale, or None: each value must be
    positive, finite and normal."""
    a = np.asarray(scale, F32).reshape(-1)
    for k, v in enumerate(a):
        where = f" in channel {k} of {a.size}" if a.size > 1 else ""
        if np.isnan(v):
            return f"NaN{where}"
        if np.isinf(v):
            return f"infinite{where}"
        if v == 0:
            return f"zero{where}"
        if v < 0:
            return f"negative{where} ({float(v):g})"
        if v < np.finfo(F32).tiny:
            return f"subnormal{where} ({float(v):g}, below float32's smallest normal 1.18e-38)"
    return None


def per_channel(a, n, what, label):
    """``a`` as ``n`` values, one per output channel: given once (per tensor) or ``n`` times."""
    a = np.asarray(a).reshape(-1)
    if a.size == 1:
        return np.repeat(a, n)
    if a.size != n:
        raise UnsupportedError(f"{label}: {what} has {a.size} values for {n} output channels; "
                               "only per-tensor or per-output-channel quantization is supported.")
    return a


class Checks:
    """Validation helpers of interpreter.Frontend (it provides refuse, types, types_check,
    consumers, nodes, path, attrs and const)."""

    def formal(self, node, index):
        """The schema's name of input ``index`` (``x_scale``, ``b_zero_point``, ...)."""
        schema = op_types.schema_of(node, self.types_check.opsets)
        if schema is None:
            return f"input {index}"
        formals = schema.inputs
        if formals and formals[-1].option == "variadic" and index >= len(formals) - 1:
            return {0: "input", 1: "input scale",
                    2: "input zero point"}[(index - len(formals) + 1) % 3] \
                if node.op_type == "QLinearConcat" else formals[-1].name
        return formals[index].name if index < len(formals) else f"input {index}"

    def check_scale(self, node, index, scale, role=None):
        """A scale read from input ``index`` of ``node``: positive, finite, normal float32."""
        problem = scale_problem(scale)
        if problem:
            formal = self.formal(node, index)
            role = role or SCALE_ROLES.get(formal, "a scale")
            self.refuse(node, f"{formal} '{node.input[index]}' ({role}) is {problem}; a "
                              "quantization scale must be a positive, finite, normal float32. "
                              "Quantize the model again (a broken calibration gives such scales).")
        return np.asarray(scale, F32)

    def dq_role(self, node):
        """What the constant a DequantizeLinear dequantizes is for, by its first consumer."""
        uses = self.consumers.get(node.output[0], [])
        name = node.input[0]
        if not uses:
            return f"the scale of the constant '{name}'"
        user, k = uses[0]
        part = {1: "weights", 2: "bias"}.get(k, "input") \
            if user.op_type in ("MatMul", "Gemm", "Conv") else "constant input"
        return f"the scale of the constant '{name}', the {part} of {onnx_node_label(user)}"

    def output_code(self, node):
        """The code type of a node's output as its type says (a zero point may be absent)."""
        t = self.types.get(node.output[0], "").removeprefix("tensor(").removesuffix(")")
        if t not in numeric.DTYPE_RANGES:
            self.refuse(node, f"its output '{node.output[0]}' is {t or 'of unknown type'}, not "
                              "quantized codes; qloom maps layers whose output is uint8 or int8 "
                              "codes.")
        return qg.CodeType.from_dtype(t)

    def zero_point(self, node, index):
        """Zero point input ``index``, or 0 of the node's output code type when absent."""
        if len(node.input) > index and node.input[index]:
            return np.asarray(self.const(node, index, "the zero point"))
        return np.zeros((), {"uint8": np.uint8, "int8": np.int8}[self.output_code(node).name])

    def spatial(self, node, rank, what):
        """Refuse windows over other than 2 spatial axes (1-D, 3-D convolutions and pools)."""
        if rank != 2:
            self.refuse(node, f"a {rank}-D {what} is not supported (its input has {rank} spatial "
                              f"{'axis' if rank == 1 else 'axes'}); qloom supports 2-D {what}s on "
                              "NCHW activations.")

    def check_int32(self, onnx_node, layer, x):
        """onnxruntime accumulates Σ (x − zx)(w − zw) + bias in int32, wrapping around: qloom's
        exact sum equals it only while every possible sum fits in int32."""
        lo, hi = layer.acc_range(x.code.qmin, x.code.qmax)
        k = int(np.argmax((lo < -2**31) | (hi >= 2**31)))
        if lo[k] < -2**31 or hi[k] >= 2**31:
            self.refuse(onnx_node, "its accumulator Σ (x − zx)(w − zw) + bias can reach "
                                   f"{int(lo[k] if lo[k] < -2**31 else hi[k]):,} in output channel "
                                   f"{k}, beyond int32, where onnxruntime wraps around while qloom "
                                   "computes the exact sum. Quantize the layer (its bias) with "
                                   "smaller values.")

    def check_window(self, node, size, kernel, strides, pads, dilations, pool=False):
        """2-D window attributes as onnxruntime's kernels check them (the ONNX checker does not,
        for com.microsoft operators): positive kernel, strides and dilations, pads >= 0 (and, for
        a pool, smaller than the kernel), and at least one output."""
        for what, v, n, lo in (("kernel_shape", kernel, 2, 1), ("strides", strides, 2, 1),
                               ("pads", pads, 4, 0),
                               ("dilations", dilations, 2, 1)):
            if len(v) != n or any(int(d) < lo for d in v):
                self.refuse(node, f"{what} {list(v)} is invalid: a 2-D window needs {n} values of "
                                  f"at least {lo}; onnxruntime refuses it.")
        if pool and any(p >= k for p, k in zip(pads, tuple(kernel) * 2)):
            self.refuse(node, f"pads {list(pads)} are not smaller than the kernel {list(kernel)}; "
                              "onnxruntime refuses such a pool.")
        out = qg.window_out_size(size, kernel, strides, pads, dilations)
        if min(out) < 1:
            self.refuse(node, f"its window (kernel {list(kernel)}, dilations {list(dilations)}) is "
                              f"larger than its input {tuple(size)} with pads {list(pads)}: the "
                              "output would be empty.")

    def qdq_attributes(self, node):
        a = self.attrs(node)
        if a.get("block_size", 0):
            self.refuse(node, f"blocked quantization (block_size {a['block_size']}) is not "
                              "supported; quantize per tensor or per output channel.")
        if a.get("precision", 0) not in (0, onnx.TensorProto.FLOAT):
            self.refuse(node, f"precision {onnx.TensorProto.DataType.Name(a['precision']).lower()} "
                              "is not supported; qloom quantizes in float32 (leave precision "
                              "unset).")

    def weight_codes(self, node, w):
        if str(w.codes.dtype) not in numeric.DTYPE_RANGES:
            self.refuse(node, f"the weights{' ' + repr(w.name) if w.name else ''} are "
                              f"{w.codes.dtype} codes; qloom's weights are int8 or uint8 codes "
                              "(int32 is for biases). Quantize the weights to 8 bits.")

    def check_qshape(self, node, index, a, per_axis=None):
        """A quantization parameter is one value (rank 0, or 1-D of one) or, per axis, 1-D of
        ``per_axis`` values: onnxruntime refuses other shapes."""
        a = np.asarray(a)
        if a.ndim == 0 or (a.ndim == 1 and (a.size == 1 or a.size == per_axis)
                           and node.op_type not in RANK0_PARAMS):
            return
        want = "a scalar (rank 0)" if node.op_type in RANK0_PARAMS else \
            "a scalar" + (f" or a 1-D tensor of {per_axis} values (one per output "
                          "channel)" if per_axis else "")
        self.refuse(node, f"{self.formal(node, index)} '{node.input[index]}' has shape {a.shape}; "
                          f"onnxruntime wants {want} there.")

    def check_zero_shape(self, node, s_index, z_index, scale, zp):
        """A zero point is one value with one scale, or one per channel with as many scales."""
        if (scale.size == 1) != (zp.size == 1) or (scale.size > 1 and zp.shape != scale.shape):
            self.refuse(node, f"its zero point '{node.input[z_index]}' has shape {zp.shape} but "
                              f"its scale '{node.input[s_index]}' {scale.shape}; onnxruntime wants "
                              "both per tensor or both with one value per channel.")

    def out_channels(self, node, axis):
        """The size of axis ``axis`` of the weights (input 3) of a QLinear op, or None."""
        w = self.const(node, 3, "the weight")
        return w.shape[axis] if w.ndim > axis else None

    def integer_input_zero(self, node, x):
        """MatMulInteger/ConvInteger: the input zero point (input 2) is the one x was quantized
        with."""
        zx = self.const(node, 2, "the input zero point") \
            if len(node.input) > 2 and node.input[2] else np.uint8(0)
        if np.asarray(zx).size != 1:
            self.refuse(node, "its input zero point must be one value (per tensor).")
        if int(np.asarray(zx).reshape(())) != x.zero_point:
            self.refuse(node, f"its input zero point {int(np.asarray(zx).reshape(()))} differs "
                              f"from the one its input was quantized with ({x.zero_point}).")

    def check_input_quantized(self, name):
        """The input feeds exactly one QuantizeLinear, the first node of the QGraph."""
        quantizers = [n for n in self.nodes if isinstance(n, qg.Quantize)]
        if not quantizers:
            raise UnsupportedError(f"{self.path}: the input '{name}' is not quantized by a "
                                   "QuantizeLinear node; qloom's circuits take codes made by one "
                                   "QuantizeLinear of the input.")
        if len(quantizers) > 1:
            raise UnsupportedError(f"{self.path}: the input '{name}' is quantized by "
                                   f"{len(quantizers)} QuantizeLinear nodes "
                                   f"({', '.join(repr(q.onnx_node) for q in quantizers)}); qloom "
                                   "streams one quantized input. Quantize the input once.")
