"""Bad-input corpus: what the frontend accepts (mapper/frontend/) and
onnxruntime's own failures (mapper/ort_check.py) — type constraints as onnxruntime's loader
checks them, the 8-bit codes and float32 scales qloom computes with, bad scales named by node and
role, 1-D/3-D windows, one output, malformed nodes the ONNX checker lets through, and models
qloom accepts but onnxruntime cannot load or run (see badinput.py)."""
import numpy as np
import onnx
from onnx import TensorProto as TP, helper, numpy_helper

import factory
from badinput import Case

F32 = np.float32
INSPECT = ("inspect", "m.onnx")
CHECK = ("check", "m.onnx", "--count", "5")


# ---- small models to break -------------------------------------------------------------------

def mlp(form="qdq", bias=True):
    """One Dense layer 4 -> 3 (factory.to_onnx): quant_in, dq_x0, dq_w0, dq_b0, gemm0, q0, dq_out
    ("qdq"), quant_in, qgemm0 or qmatmul0, dq_out ("qop"), or with qop_add/matmulinteger."""
    spec = factory.random_mlp(np.random.default_rng(0), layers=1, widths=[4, 3])
    spec["layers"][0].bias = np.array([5, -7, 11], np.int32) if bias else None
    return factory.to_onnx(spec, form, batch=1)


def initializer(model, name):
    return next(t for t in model.graph.initializer if t.name == name)


def set_initializer(model, name, value):
    initializer(model, name).CopyFrom(numpy_helper.from_array(np.asarray(value), name))


def array(model, name):
    return numpy_helper.to_array(initializer(model, name))


def node(model, name):
    return next(n for n in model.graph.node if n.name == name)


def set_attribute(n, name, value):
    for a in [a for a in n.attribute if a.name == name]:
        n.attribute.remove(a)
    n.attribute.append(helper.make_attribute(name, value))


class Graph:
    """A graph under construction: input x (float, (1, *shape)) quantized by 'quant_in' to x_q
    (uint8, scale 0.05, zero point 128)."""

    def __init__(self, shape, opset=19):
        self.nodes, self.inits, self.opset = [], [], opset
        self.inputs = [helper.make_tensor_value_info("x", TP.FLOAT, [1, *shape])]
        self.rng = np.random.default_rng(1)
        self.const("x_scale", F32(0.05))
        self.const("x_zero", np.uint8(128))
        self.node("QuantizeLinear", ["x", "x_scale", "x_zero"], "x_q", name="quant_in")

    def const(self, name, value):
        self.inits = [t for t in self.inits if t.name != name]
        self.inits.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def node(self, op, inputs, output, name, domain="", **attrs):
        self.nodes.append(helper.make_node(op, inputs, [output], name=name, domain=domain, **attrs))
        return output

    def model(self, output, shape=None, elem=TP.FLOAT):
        """The model with graph output ``output``; its shape as ONNX infers it unless given."""
        g = helper.make_graph(self.nodes, "g", self.inputs, [helper.make_tensor_value_info(output, elem, shape)],
                              self.inits)
        m = helper.make_model(g, opset_imports=[helper.make_opsetid("", self.opset),
                                                helper.make_opsetid("com.microsoft", 1)])
        m.ir_version = 9
        if shape is None:
            m.graph.output[0].CopyFrom(onnx.shape_inference.infer_shapes(m).graph.output[0])
        return m


def conv_params(g, cout, cin, kernel):
    """Weights w (int8, per channel), bias b (int32 at x_scale·w_scale), output y_scale/y_zero."""
    g.const("w", g.rng.integers(-20, 21, size=(cout, cin, *kernel)).astype(np.int8))
    g.const("w_scale", np.full(cout, 0.01, F32))
    g.const("w_zero", np.zeros(cout, np.int8))
    g.const("b", np.arange(cout, dtype=np.int32) - 1)
    g.const("b_scale", np.full(cout, F32(0.05) * F32(0.01), F32))
    g.const("b_zero", np.zeros(cout, np.int32))
    g.const("y_scale", F32(0.1))
    g.const("y_zero", np.uint8(0))


def qdq_conv(spatial=(5, 5), cin=2, cout=3, **attrs):
    """quant_in → dq_x → Conv 'conv' (dq_w, dq_b) → 'q' → 'dq_out', of any spatial rank."""
    g = Graph((cin, *spatial))
    conv_params(g, cout, cin, (3,) * len(spatial))
    g.node("DequantizeLinear", ["x_q", "x_scale", "x_zero"], "x_f", name="dq_x")
    g.node("DequantizeLinear", ["w", "w_scale", "w_zero"], "w_f", name="dq_w", axis=0)
    g.node("DequantizeLinear", ["b", "b_scale", "b_zero"], "b_f", name="dq_b", axis=0)
    g.node("Conv", ["x_f", "w_f", "b_f"], "h", name="conv", **attrs)
    g.node("QuantizeLinear", ["h", "y_scale", "y_zero"], "y_q", name="q")
    g.node("DequantizeLinear", ["y_q", "y_scale", "y_zero"], "y", name="dq_out")
    return g


def qlinear_conv(spatial=(5, 5), **attrs):
    """quant_in → QLinearConv 'qconv' (bias b) → dq_out."""
    g = Graph((2, *spatial))
    conv_params(g, 3, 2, (3,) * len(spatial))
    g.node("QLinearConv", ["x_q", "x_scale", "x_zero", "w", "w_scale", "w_zero", "y_scale", "y_zero", "b"],
           "y_q", name="qconv", **attrs)
    g.node("DequantizeLinear", ["y_q", "y_scale", "y_zero"], "y", name="dq_out")
    return g


def conv_integer(w_zero):
    """quant_in → ConvInteger 'convi' (weight zero points ``w_zero``) → Cast → Mul → q → dq_out."""
    g = Graph((2, 5, 5))
    conv_params(g, 3, 2, (3, 3))
    g.const("w_zero", np.asarray(w_zero, np.int8))
    g.node("ConvInteger", ["x_q", "w", "x_zero", "w_zero"], "acc", name="convi")
    g.node("Cast", ["acc"], "acc_f", name="cast", to=TP.FLOAT)
    g.const("m", F32(0.05) * F32(0.01))
    g.node("Mul", ["acc_f", "m"], "h", name="mul")
    g.node("QuantizeLinear", ["h", "y_scale", "y_zero"], "y_q", name="q")
    g.node("DequantizeLinear", ["y_q", "y_scale", "y_zero"], "y", name="dq_out")
    return g


def conv_integer_unscaled():
    """ConvInteger → Cast → QuantizeLinear, no Mul: the accumulator quantized at scale 1."""
    g = conv_integer(0)
    g.nodes = [n for n in g.nodes if n.name != "mul"]
    next(n for n in g.nodes if n.name == "q").input[0] = "acc_f"
    g.const("y_scale", F32(40.0))
    return g


def pool(op, spatial, **attrs):
    """quant_in → dq_x → ``op`` 'pool' → 'q' (the input's parameters) → dq_out."""
    g = Graph((2, *spatial))
    g.node("DequantizeLinear", ["x_q", "x_scale", "x_zero"], "x_f", name="dq_x")
    g.node(op, ["x_f"], "p", name="pool", **attrs)
    g.node("QuantizeLinear", ["p", "x_scale", "x_zero"], "p_q", name="q")
    g.node("DequantizeLinear", ["p_q", "x_scale", "x_zero"], "y", name="dq_out")
    return g


def qlinear_pool(op, spatial=(4, 4), inputs=("x_q", "x_scale", "x_zero", "x_scale", "x_zero"), **attrs):
    """quant_in → com.microsoft ``op`` 'qpool' → dq_out."""
    g = Graph((2, *spatial))
    g.node(op, list(inputs), "p", name="qpool", domain="com.microsoft", **attrs)
    g.node("DequantizeLinear", ["p", "x_scale", "x_zero"], "y", name="dq_out")
    return g


# ---- case makers -------------------------------------------------------------------------------

def case(name, build, message, argv=INSPECT, **kw):
    """m.onnx is ``build()`` (a ModelProto); the command is ``argv``."""
    def make(folder):
        onnx.save(build(), folder / "m.onnx")
        return list(argv)
    return Case(name, make, message, survive=("m.onnx",), **kw)


def changed(model_fn, *changes):
    """``model_fn()`` after each change(model) in turn."""
    def build():
        m = model_fn()
        for change in changes:
            change(m)
        return m
    return build


def init(name, value):
    return lambda m: set_initializer(m, name, value(m) if callable(value) else value)


def float8(name, elem=TP.FLOAT8E4M3FN):
    """Initializer ``name`` re-typed as float8 (the same bytes: small integer codes become floats)."""
    def change(m):
        a = array(m, name)
        initializer(m, name).CopyFrom(helper.make_tensor(name, elem, a.shape, np.abs(a).astype(np.uint8).tobytes(),
                                                         raw=True))
    return change


def input_type(elem):
    def change(m):
        m.graph.input[0].type.tensor_type.elem_type = elem
    return change


def built(g, output="y", shape=None, elem=TP.FLOAT):
    return lambda: g().model(output, shape, elem)


M = r"m\.onnx: "
SCALE_RULE = (r"a quantization scale must be a positive, finite, normal float32\. Quantize the model again "
              r"\(a broken calibration gives such scales\)\.$")
ORT_LOAD = (r"qloom compares its integer reference with onnxruntime, so it cannot check a model onnxruntime "
            r"refuses; fix the model \(export or quantize it again\) so that onnxruntime loads it\.$")
ORT_RUN = (r"qloom's reference computes this model, but onnxruntime, which qloom compares it with, cannot; "
           r"there is nothing to check it against\.$")


def two_outputs(m):
    m.graph.output.append(helper.make_tensor_value_info("y0_q", TP.UINT8, [1, 3]))


def qmatmul_uint8_to_int8():
    """QLinearMatMul uint8 x int8 -> int8: valid ONNX, no onnxruntime kernel for it."""
    m = mlp("qop", bias=False)
    set_initializer(m, "y0_zero", np.int8(3))
    return m


def graph_input_added_to_codes():
    """QLinearAdd of the codes and the float graph input itself."""
    g = Graph((4,))
    g.node("QLinearAdd", ["x_q", "x_scale", "x_zero", "x", "x_scale", "x_zero", "x_scale", "x_zero"],
           "s", name="qadd", domain="com.microsoft")
    g.node("DequantizeLinear", ["s", "x_scale", "x_zero"], "y", name="dq_out")
    return g.model("y", [1, 4])


def qgemm_float_output():
    """QGemm with y_scale but no y_zero_point: onnxruntime makes its output float."""
    m = mlp("qop")
    del node(m, "qgemm0").input[8]
    m.graph.node.remove(node(m, "dq_out"))
    node(m, "qgemm0").output[0] = "y"
    return m


def uint8_graph_input():
    m = mlp("qop", bias=False)
    node(m, "qmatmul0").input[0] = "x"
    m.graph.node.remove(node(m, "quant_in"))
    m.graph.input[0].type.tensor_type.elem_type = TP.UINT8
    return m


def quantized_twice():
    g = Graph((4,))
    g.const("x2_scale", F32(0.1))
    g.node("QuantizeLinear", ["x", "x2_scale", "x_zero"], "x2_q", name="quant_again")
    g.node("QLinearAdd", ["x_q", "x_scale", "x_zero", "x2_q", "x2_scale", "x_zero", "x_scale", "x_zero"],
           "s", name="qadd", domain="com.microsoft")
    g.node("DequantizeLinear", ["s", "x_scale", "x_zero"], "y", name="dq_out")
    return g.model("y", [1, 4])


def transposed_gemm_input():
    """Gemm with transA=1 on a (1, 4) input: A^T is (4, 1), the weights (1, 3)."""
    m = mlp(bias=False)
    set_initializer(m, "w0", np.array([[3, -5, 7]], np.int8))
    mm = node(m, "matmul0")
    gemm = helper.make_node("Gemm", list(mm.input), list(mm.output), name="gemm_t", transA=1)
    m.graph.node.insert(list(m.graph.node).index(mm), gemm)
    m.graph.node.remove(mm)
    m.graph.output[0].type.tensor_type.shape.dim[0].dim_value = 4
    return m


def blocked_weights():
    """opset 21 blocked quantization of the Gemm weights (block_size 2 along the inputs)."""
    m = mlp()
    m.opset_import[0].version = 21
    set_initializer(m, "w0_scale", np.full((2, 3), 0.01, F32))
    set_initializer(m, "w0_zero", np.zeros((2, 3), np.int8))
    dq = node(m, "dq_w0")
    set_attribute(dq, "axis", 0)
    set_attribute(dq, "block_size", 2)
    return m


def int16_codes():
    """opset 21 allows int16 activations; qloom's circuits compute on 8-bit codes."""
    g = Graph((4,), opset=21)
    g.const("x_zero", np.int16(0))
    g.node("DequantizeLinear", ["x_q", "x_scale", "x_zero"], "y", name="dq_out")
    return g.model("y", [1, 4])


def x_scale2(m):
    m.graph.initializer.append(numpy_helper.from_array(F32(2 * array(m, "x_scale")), "x_scale2"))
    node(m, "dq_x0").input[1] = "x_scale2"


def _with(g, name, value):
    g.const(name, value)
    return g


def _concat(inputs):
    g = Graph((2, 4, 4))
    g.node("QLinearConcat", inputs, "c", name="qcat", domain="com.microsoft", axis=1)
    g.node("DequantizeLinear", ["c", "x_scale", "x_zero"], "y", name="dq_out")
    return g


CASES = [
    # -- 1. types as onnxruntime's loader checks them, and what qloom's circuits compute with ----
    case("frontend_int8_weights_with_uint8_zero_point", changed(mlp, init("w0_zero", np.zeros(3, np.uint8))),
         r"^DequantizeLinear node 'dq_w0' in " + M + r"input x_zero_point 'w0_zero' is uint8 but x 'w0' is "
         r"int8; both have ONNX type T1, which must be one type \(one of int8, uint8, int32, float8e4m3fn, [^)]*\), "
         r"so onnxruntime refuses the model\. Give x_zero_point the type of x\.$"),
    case("frontend_float64_graph_input", changed(mlp, input_type(TP.DOUBLE)),
         r"^QuantizeLinear node 'quant_in' in " + M + r"input x 'x' is double; QuantizeLinear allows float, "
         r"float16, bfloat16, int32 there \(ONNX type T1\), so onnxruntime refuses the model\."),
    case("frontend_int32_weights", changed(mlp, init("w0", lambda m: array(m, "w0").astype(np.int32)),
                                           init("w0_zero", np.zeros(3, np.int32))),
         r"^Gemm node 'gemm0' in " + M + r"the weights 'w0' are int32 codes; qloom's weights are int8 or uint8 "
         r"codes \(int32 is for biases\)\. Quantize the weights to 8 bits\.$"),
    case("frontend_float8_weight_codes", changed(mlp, float8("w0"), float8("w0_zero")),
         r"^DequantizeLinear node 'dq_w0' in " + M + r"x 'w0' is float8e4m3fn; qloom supports int8, uint8, int32 "
         r"there: qloom's circuits compute on 8-bit integer codes"),
    case("frontend_float8_activation_codes", changed(mlp, float8("x_zero", TP.FLOAT8E5M2)),
         r"^QuantizeLinear node 'quant_in' in " + M + r"y_zero_point 'x_zero' is float8e5m2; qloom supports int8, "
         r"uint8 there"),
    case("frontend_int16_activation_codes", int16_codes,
         r"^QuantizeLinear node 'quant_in' in " + M + r"y_zero_point 'x_zero' is int16; qloom supports int8, uint8 "
         r"there: qloom's circuits compute on 8-bit integer codes"),
    case("frontend_float16_weight_scale", changed(mlp, init("w0_scale", lambda m: array(m, "w0_scale").astype(np.float16))),
         r"^DequantizeLinear node 'dq_w0' in " + M + r"x_scale 'w0_scale' is float16; qloom supports float32 there: "
         r"qloom's arithmetic is float32"),
    case("frontend_float16_graph_input_at_check",
         changed(mlp, input_type(TP.FLOAT16), init("x_scale", lambda m: array(m, "x_scale").astype(np.float16))),
         r"^QuantizeLinear node 'quant_in' in " + M + r"x 'x' is float16; qloom supports float32 there", argv=CHECK),
    case("frontend_qgemm_weight_zero_point_type", changed(lambda: mlp("qop"), init("w0_zero", np.zeros(3, np.uint8))),
         r"^QGemm node 'qgemm0' in " + M + r"input b_zero_point 'w0_zero' is uint8 but B 'w0' is int8; both have "
         r"ONNX type TB, which must be one type \(one of uint8, int8\), so onnxruntime refuses the model\."),
    case("frontend_qgemm_float_bias", changed(lambda: mlp("qop"), init("b0", np.zeros(3, F32))),
         r"^QGemm node 'qgemm0' in " + M + r"input C 'b0' is float; QGemm allows int32 there \(ONNX type TC\), so "
         r"onnxruntime refuses the model\."),
    case("frontend_qlinearadd_of_int8_and_uint8",
         changed(lambda: mlp("qop_add"), init("bq0", lambda m: array(m, "bq0").astype(np.int8)),
                 init("bq0_zero", np.int8(0))),
         r"^QLinearAdd node 'qadd0' in " + M + r"input B 'bq0' is int8 but A 'mm0' is uint8; both have ONNX type T, "
         r"which must be one type"),
    case("frontend_graph_input_added_to_codes", graph_input_added_to_codes,
         r"^QLinearAdd node 'qadd' in " + M + r"input B 'x' is float; QLinearAdd allows uint8, int8 there \(ONNX type "
         r"T\), so onnxruntime refuses the model\."),
    case("frontend_uint8_graph_input", uint8_graph_input,
         r"^" + M + r"the model's input 'x' is uint8; qloom's circuits take float32 frames and quantize them with "
         r"a QuantizeLinear\. Export the model with a float32 input\.$"),
    # -- 2. onnxruntime cannot load or run what qloom accepts: said as such at check -------------
    case("frontend_check_convinteger_per_channel_weight_zero_points", built(lambda: conv_integer([1, 2, 3])),
         r"^onnxruntime cannot run " + r"m\.onnx \(at ConvInteger node 'convi'\): IsScalarOr1ElementVector\(W_Zero_Point\) "
         r"was false\. Non per-tensor quantization is not supported now\. " + ORT_RUN, argv=CHECK),
    case("frontend_check_qlinearmatmul_without_ort_kernel", qmatmul_uint8_to_int8,
         r"^onnxruntime cannot load m\.onnx \(at QLinearMatMul node 'qmatmul0'\): Could not find an implementation "
         r"for QLinearMatMul\(\d+\) node with name 'qmatmul0'\. " + ORT_LOAD, argv=CHECK),
    case("frontend_check_convinteger_per_tensor_runs", built(lambda: conv_integer(0)), "", code=0, argv=CHECK,
         stdout=r"m\.onnx: 5 frames, 135 outputs: 0 mismatches"),
    case("frontend_check_convinteger_cast_quantized_without_mul", built(conv_integer_unscaled), "", code=0,
         argv=CHECK, stdout=r"m\.onnx: 5 frames, 135 outputs: 0 mismatches"),
    case("frontend_check_dequantize_at_another_scale", changed(lambda: mlp(bias=False), x_scale2), "", code=0,
         argv=CHECK, stdout=r"m\.onnx: 5 frames, 15 outputs: 0 mismatches"),
    # -- 3. accurate messages ---------------------------------------------------------------------
    case("frontend_two_outputs", changed(mlp, two_outputs),
         r"^" + M + r"the model has 2 outputs \('y', 'y0_q'\); qloom builds circuits with exactly one output\. Keep "
         r"the one you need, e\.g\. with onnx\.utils\.extract_model"),
    case("frontend_nan_weight_scale", changed(mlp, init("w0_scale", lambda m: np.where([0, 1, 0], np.nan, array(m, "w0_scale")).astype(F32))),
         r"^DequantizeLinear node 'dq_w0' in " + M + r"x_scale 'w0_scale' \(the scale of the constant 'w0', the "
         r"weights of Gemm node 'gemm0'\) is NaN in channel 1 of 3; " + SCALE_RULE),
    case("frontend_zero_output_scale", changed(mlp, init("y0_scale", F32(0))),
         r"^QuantizeLinear node 'q0' in " + M + r"y_scale 'y0_scale' \(the output scale of Gemm node 'gemm0'\) is "
         r"zero; " + SCALE_RULE),
    case("frontend_negative_input_scale", changed(mlp, init("x_scale", F32(-0.5))),
         r"^QuantizeLinear node 'quant_in' in " + M + r"y_scale 'x_scale' \(the input scale\) is negative \(-0\.5\); "
         + SCALE_RULE),
    case("frontend_subnormal_bias_scale", changed(mlp, init("b0_scale", np.full(3, 1e-40, F32))),
         r"^DequantizeLinear node 'dq_b0' in " + M + r"x_scale 'b0_scale' \(the scale of the constant 'b0', the bias "
         r"of Gemm node 'gemm0'\) is subnormal in channel 0 of 3 \(\S+e-41, below float32's smallest "
         r"normal 1\.18e-38\); " + SCALE_RULE),
    case("frontend_infinite_qlinearmatmul_weight_scale",
         changed(lambda: mlp("qop", bias=False), init("w0_scale", np.array([0.01, np.inf, 0.01], F32))),
         r"^QLinearMatMul node 'qmatmul0' in " + M + r"b_scale 'w0_scale' \(the weight scale\) is infinite in channel "
         r"1 of 3; " + SCALE_RULE),
    case("frontend_requantization_multiplier_overflow", changed(lambda: mlp("qop"), init("w0_scale", np.full(3, 1e30, F32))),
         r"^QGemm node 'qgemm0' in " + M + r"its requantization multiplier input scale × weight scale / output scale "
         r"= \S+ × 1e\+30 / \S+ = \S+ is 2\*\*32 or more: every accumulator but 0 saturates"),
    case("frontend_bias_scale_mismatch", changed(mlp, init("b0_scale", lambda m: (array(m, "b0_scale") * 2).astype(F32))),
         r"^Gemm node 'gemm0' in " + M + r"the bias scale of channel 0 is \S+, not input scale × weight scale = \S+ × "
         r"\S+ = \S+ \(in float32\), so onnxruntime cannot fuse this layer to integers\. Quantize the bias at that "
         r"scale\.$"),
    case("frontend_conv1d", built(lambda: qdq_conv((7,))),
         r"^Conv node 'conv' in " + M + r"a 1-D convolution is not supported \(its input has 1 spatial axis\); qloom "
         r"supports 2-D convolutions on NCHW activations\.$"),
    case("frontend_conv3d", built(lambda: qdq_conv((3, 4, 4))),
         r"^Conv node 'conv' in " + M + r"a 3-D convolution is not supported \(its input has 3 spatial axes\)"),
    case("frontend_qlinearconv1d", built(lambda: qlinear_conv((7,))),
         r"^QLinearConv node 'qconv' in " + M + r"a 1-D convolution is not supported"),
    case("frontend_maxpool1d", built(lambda: pool("MaxPool", (6,), kernel_shape=[2]), "y", [1, 2, 5]),
         r"^MaxPool node 'pool' in " + M + r"a 1-D MaxPool is not supported \(its input has 1 spatial axis\); qloom "
         r"supports 2-D MaxPools on NCHW activations\.$"),
    case("frontend_global_average_pool3d", built(lambda: pool("GlobalAveragePool", (2, 3, 3)), "y", [1, 2, 1, 1, 1]),
         r"^GlobalAveragePool node 'pool' in " + M + r"a 3-D GlobalAveragePool is not supported"),
    case("frontend_qlinear_average_pool1d",
         built(lambda: qlinear_pool("QLinearAveragePool", (6,), kernel_shape=[2]), "y", [1, 2, 5]),
         r"^QLinearAveragePool node 'qpool' in " + M + r"a 1-D AveragePool is not supported"),
    # -- 4. malformed nodes the ONNX checker lets through ----------------------------------------
    case("frontend_qgemm_empty_zero_point", changed(lambda: mlp("qop"), lambda m: node(m, "qgemm0").input.__setitem__(2, "")),
         r"^QGemm node 'qgemm0' in " + M + r"input a_zero_point \(number 2\) is required but empty; onnxruntime "
         r"refuses such a node\."),
    case("frontend_qgemm_unknown_attribute", changed(lambda: mlp("qop"), lambda m: set_attribute(node(m, "qgemm0"), "beta", 1.0)),
         r"^QGemm node 'qgemm0' in " + M + r"attribute 'beta' is not one of QGemm's \(alpha, transA, transB\); "
         r"onnxruntime refuses such a node\. Remove the attribute\.$"),
    case("frontend_qgemm_float_transB", changed(lambda: mlp("qop"), lambda m: set_attribute(node(m, "qgemm0"), "transB", 1.0)),
         r"^QGemm node 'qgemm0' in " + M + r"attribute 'transB' is FLOAT but QGemm wants INT; onnxruntime refuses "
         r"such a node\.$"),
    case("frontend_qgemm_without_output_zero_point", qgemm_float_output,
         r"^QGemm node 'qgemm0' in " + M + r"QGemm without an output scale and zero point \(inputs 7 and 8\) "
         r"produces float in onnxruntime"),
    case("frontend_qlinear_average_pool_without_kernel_shape", built(lambda: qlinear_pool("QLinearAveragePool"), "y",
                                                                      [1, 2, 3, 3]),
         r"^QLinearAveragePool node 'qpool' in " + M + r"the required attribute 'kernel_shape' is missing; "
         r"onnxruntime refuses such a node\.$"),
    case("frontend_qlinear_average_pool_rank1_scale",
         built(lambda: _with(qlinear_pool("QLinearAveragePool", inputs=("x_q", "s1", "x_zero", "x_scale", "x_zero"),
                                          kernel_shape=[2, 2]), "s1", np.array([0.05], F32)), "y", [1, 2, 3, 3]),
         r"^QLinearAveragePool node 'qpool' in " + M + r"x_scale 's1' has shape \(1,\); onnxruntime wants a scalar "
         r"\(rank 0\) there\.$"),
    case("frontend_weight_scale_of_wrong_length", changed(mlp, init("w0_scale", np.full(2, 0.01, F32)),
                                                          init("w0_zero", np.zeros(2, np.int8)),
                                                          init("b0_scale", np.full(2, 1e-4, F32)),
                                                          init("b0_zero", np.zeros(2, np.int32))),
         r"^DequantizeLinear node 'dq_w0' in " + M + r"x_scale 'w0_scale' has shape \(2,\); onnxruntime wants a "
         r"scalar or a 1-D tensor of 3 values \(one per output channel\) there\.$"),
    case("frontend_qlinearconcat_incomplete_triple",
         built(lambda: _concat(["x_scale", "x_zero", "x_q", "x_scale", "x_zero", "x_q", "x_scale"]), "y", [1, 4, 4, 4]),
         r"^QLinearConcat node 'qcat' in " + M + r"it has 7 inputs; QLinearConcat takes y_scale, y_zero_point and "
         r"then \(tensor, scale, zero point\) triples\.$"),
    case("frontend_gemm_transA", transposed_gemm_input,
         r"^Gemm node 'gemm_t' in " + M + r"transA=1 is not supported; qloom maps Gemm with transA=0, alpha=1 and "
         r"beta=1\.$"),
    case("frontend_qlinearconv_bias_of_one_value", built(lambda: _with(qlinear_conv(), "b", np.array([3], np.int32))),
         r"^QLinearConv node 'qconv' in " + M + r"its bias 'b' has shape \(1,\); onnxruntime wants a 1-D tensor of its "
         r"3 output channels\.$"),
    case("frontend_conv_group_zero", built(lambda: qdq_conv(group=0), "y", [1, 3, 3, 3]),
         r"^Conv node 'conv' in " + M + r"group 0 is not a positive number; onnxruntime refuses such a convolution\.$"),
    case("frontend_accumulator_beyond_int32", changed(mlp, init("b0", np.array([5, 2**31 - 1, 11], np.int32))),
         r"^Gemm node 'gemm0' in " + M + r"its accumulator Σ \(x − zx\)\(w − zw\) \+ bias can reach 2,147,\d{3},\d{3} "
         r"in output channel 1, beyond int32, where onnxruntime wraps around while qloom computes the exact sum\."),
    case("frontend_input_quantized_twice", quantized_twice,
         r"^" + M + r"the input 'x' is quantized by 2 QuantizeLinear nodes \('quant_in', 'quant_again'\); qloom "
         r"streams one quantized input\. Quantize the input once\.$"),
    case("frontend_qlinear_average_pool_zero_stride",
         built(lambda: qlinear_pool("QLinearAveragePool", kernel_shape=[2, 2], strides=[0, 1]), "y", [1, 2, 3, 3]),
         r"^QLinearAveragePool node 'qpool' in " + M + r"strides \[0, 1\] is invalid: a 2-D window needs 2 values of "
         r"at least 1; onnxruntime refuses it\.$"),
    case("frontend_maxpool_pads_as_large_as_the_kernel",
         built(lambda: pool("MaxPool", (4, 4), kernel_shape=[2, 2], pads=[2, 0, 0, 0]), "y", [1, 2, 5, 3]),
         r"^MaxPool node 'pool' in " + M + r"pads \[2, 0, 0, 0\] are not smaller than the kernel \[2, 2\]; "
         r"onnxruntime refuses such a pool\.$"),
    case("frontend_qlinearadd_empty_zero_point",
         changed(lambda: mlp("qop_add"), lambda m: node(m, "qadd0").input.__setitem__(2, "")),
         r"^QLinearAdd node 'qadd0' in " + M + r"its A_zero_point \(input 2\) is given as an empty name; "
         r"onnxruntime's QLinearAdd then refuses the model\."),
    case("frontend_one_zero_point_for_per_channel_scales", changed(mlp, init("w0_zero", np.int8(0))),
         r"^DequantizeLinear node 'dq_w0' in " + M + r"its zero point 'w0_zero' has shape \(\) but its scale "
         r"'w0_scale' \(3,\); onnxruntime wants both per tensor or both with one value per channel\.$"),
    case("frontend_qlinearconcat_without_inputs", built(lambda: _concat(["x_scale", "x_zero"]), "y", [1, 2, 4, 4]),
         r"^QLinearConcat node 'qcat' in " + M + r"it has 2 inputs, none for its variadic inputs \(from "
         r"number 2 on\); onnxruntime refuses such a node\.$"),
    case("frontend_blocked_weight_quantization", blocked_weights,
         r"^DequantizeLinear node 'dq_w0' in " + M + r"blocked quantization \(block_size 2\) is not supported; "
         r"quantize per tensor or per output channel\.$"),
]

