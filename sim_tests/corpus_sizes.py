"""Bad-input corpus: sizes beyond qloom's bounds (mapper/limits.py) — huge channel counts,
images, in_features, weights, window beats, proofs and unrolled foldings — refused by layer,
size and limit before anything is proven, allocated or emitted (see badinput.py).  The models
are small QOperator graphs written on the spot (the largest, 4.2 MB of weights); huge images
are declared dims."""
import json
import re

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from badinput import Case

F32 = np.float32
M = r"m\.onnx: "


def words(text):
    """A regex for ``text`` as rich prints it in a note: any run of spaces may be a line break."""
    return r"\s+".join(re.escape(w) for w in text.split())


class Net:
    """A QOperator graph: QuantizeLinear (uint8, zero point 128), layers on codes, DequantizeLinear."""

    def __init__(self, shape, seed=0):
        self.shape = self.in_shape = tuple(shape)
        self.rng = np.random.default_rng(seed)
        self.inits, self.nodes, self.count = [], [], 0
        self.x, self.s, self.z = "xq", self.const("xs", F32(0.02)), self.const("xz", np.uint8(128))
        self.nodes.append(helper.make_node("QuantizeLinear", ["x", self.s, self.z], ["xq"], name="quant_in"))

    def const(self, name, value):
        self.inits.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def weights(self, shape, most=64):
        return self.rng.integers(-most, most + 1, size=shape).astype(np.int8)

    def out(self, name, scale):
        """Output parameters of layer ``name``: ``scale`` (uint8, zero point 0)."""
        return self.const(name + ".ys", F32(scale)), self.const(name + ".yz", np.uint8(0))

    def step(self, node, ys, yz, shape):
        self.nodes.append(node)
        self.x, self.s, self.z, self.shape = node.output[0], ys, yz, shape

    def gemm(self, name, n_out, scale=0.02, weight=None):
        """com.microsoft.QGemm (in, out) weights with a zero int32 bias; ``scale``: the output
        scale (0.02: about 255 output levels per channel; 100: two)."""
        w = self.const(name + ".w", self.weights((self.shape[0], n_out)) if weight is None else weight)
        ws, wz = self.const(name + ".ws", F32(0.01)), self.const(name + ".wz", np.int8(0))
        b = self.const(name + ".b", np.zeros(n_out, np.int32))
        ys, yz = self.out(name, scale)
        self.step(helper.make_node("QGemm", [self.x, self.s, self.z, w, ws, wz, b, ys, yz], [name + ".y"], name=name,
                                   domain="com.microsoft"), ys, yz, (n_out,))

    def matmul(self, name, n_out, scale=100.0, most=64):
        w = self.const(name + ".w", self.weights((self.shape[0], n_out), most))
        ws, wz = self.const(name + ".ws", F32(0.01)), self.const(name + ".wz", np.int8(0))
        ys, yz = self.out(name, scale)
        self.step(helper.make_node("QLinearMatMul", [self.x, self.s, self.z, w, ws, wz, ys, yz], [name + ".y"],
                                   name=name), ys, yz, (n_out,))

    def conv(self, name, n_out, k=1, groups=1, scale=100.0):
        """QLinearConv k×k, stride 1, "same" padding."""
        c, h, w_ = self.shape
        w = self.const(name + ".w", self.weights((n_out, c // groups, k, k)))
        ws, wz = self.const(name + ".ws", F32(0.01)), self.const(name + ".wz", np.int8(0))
        ys, yz = self.out(name, scale)
        self.step(helper.make_node("QLinearConv", [self.x, self.s, self.z, w, ws, wz, ys, yz], [name + ".y"],
                                   name=name, kernel_shape=[k, k], pads=[k // 2] * 4, group=groups),
                  ys, yz, (n_out, h, w_))

    def maxpool(self, name, k):
        c, h, w = self.shape
        node = helper.make_node("MaxPool", [self.x], [name + ".y"], name=name, kernel_shape=[k, k],
                                pads=[k // 2] * 4)
        self.step(node, self.s, self.z, (c, h, w))

    def save(self, path):
        self.nodes.append(helper.make_node("DequantizeLinear", [self.x, self.s, self.z], ["y"], name="dq_out"))
        batch = [1] + list(self.shape)
        graph = helper.make_graph(self.nodes, "sizes", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                                                      [1] + list(self.in_shape))],
                                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, batch)], self.inits)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19),
                                                        helper.make_opsetid("com.microsoft", 1)])
        model.ir_version = 9
        onnx.save(model, path)


def net(shape, build):
    """``build(n)`` on a Net of input ``shape``, saved as m.onnx."""
    def save(folder):
        n = Net(shape)
        build(n)
        n.save(folder / "m.onnx")
    return save


def nothing_written(folder):
    assert not (folder / "out").exists(), "compile wrote its output"


def case(name, model, message, argv=("compile", "m.onnx", "-o", "out"), files=None, stdout=None):
    """``model(folder)`` writes m.onnx; ``files`` (name → JSON) are written beside it."""
    def make(folder):
        model(folder)
        for file, content in (files or {}).items():
            (folder / file).write_text(json.dumps(content))
        return list(argv)
    code = 0 if stdout else 2
    return Case(name, make, message, code=code, survive=("m.onnx",), stdout=stdout,
                after=nothing_written if "compile" in argv else None)


MILLION_CHANNELS = net((1, 1, 1), lambda n: n.conv("wide_conv", 1_000_000))        # 1 MB of weights
IMAGE_20000 = net((1, 20000, 20000), lambda n: n.conv("pixel_conv", 1))            # declared: 400 M pixels
CHANNELS_MESSAGE = ("Conv 'conv0' (ONNX node 'wide_conv') has 1,000,000 output channels; qloom proves the "
                    "requantization of at most 65,536 channels per layer")
IMAGE_MESSAGE = ("Quantize 'quantize0' (ONNX node 'quant_in') produces a tensor of 1×20000×20000 = 400,000,000 "
                 "elements per frame; qloom holds at most 4,194,304")


def two_layer_proof(n):
    """1×1 conv 8 → 2,200 channels, then a depthwise 3×3 on them: each layer's proof under the
    planner's bound, the two over it."""
    n.conv("wide", 2200, scale=0.02)
    n.conv("depthwise", 2200, k=3, groups=2200, scale=0.02)


CASES = [
    case("size_conv_million_channels", MILLION_CHANNELS,
         M + re.escape(CHANNELS_MESSAGE) + r" \(each channel on its own, in about a millisecond\)\. Use fewer "
         r"channels, or set QLOOM_MAX_CHANNELS=N to raise the limit\.$"),
    case("size_conv_million_channels_inspect", MILLION_CHANNELS, None, argv=("inspect", "m.onnx"),
         stdout=r"not proven.*note: qloom compile refuses this model: " + words(CHANNELS_MESSAGE)),
    case("size_image_20000_square", IMAGE_20000,
         M + re.escape(IMAGE_MESSAGE) + r" \(its timing model and references hold a frame whole\)\. Use a smaller "
         r"input or reduce it earlier \(stride, pooling\), or set QLOOM_MAX_TENSOR_ELEMENTS=N to raise the limit\.$"),
    case("size_image_20000_square_inspect", IMAGE_20000, None, argv=("inspect", "m.onnx"),
         stdout=r"pixel_conv.*400,000,000 MACs per frame.*note: qloom compile refuses this model: " +
         words(IMAGE_MESSAGE)),
    case("size_in_features_4_2_million", net((4_200_000,), lambda n: n.matmul("long_matmul", 1, most=1)),
         M + r"Quantize 'quantize0' \(ONNX node 'quant_in'\) produces a tensor of 4,200,000 elements "
         r"per frame; qloom holds at most 4,194,304 \("),
    case("size_conv_window_beats", net((1, 2000, 2000), lambda n: n.conv("big_window", 1, k=3)),
         M + r"Conv 'conv0' \(ONNX node 'big_window'\) needs a window generator of at least 36,000,000 beats per "
         r"frame \(4,000,000 output pixels × 9 taps\); qloom's timing model follows at most 8,388,608 beats per frame "
         r"of a kernel, one by one\. Use a smaller input, or set QLOOM_MAX_BEATS=N to raise the limit\.$"),
    case("size_maxpool_window_beats",
         net((1, 2000, 2000), lambda n: (n.conv("pixels", 1), n.maxpool("big_pool", 3))),
         M + r"MaxPool 'maxpool0' \(ONNX node 'big_pool'\) needs a window generator of at least 36,000,000 beats "
         r"per frame \(4,000,000 output pixels × 9 taps\); qloom's timing model follows at most 8,388,608"),
    case("size_gemm_weights_beyond_memory", net((1100,), lambda n: n.gemm("big_gemm", 1000, scale=100.0)),
         M + r"the design must hold at least 8,800,000 bits of weights and line buffers \(the most in Dense "
         r"'dense0' \(ONNX node 'big_gemm'\): 1,100,000 weights of 8 bits\), more than any device qloom builds "
         r"for: the limit is 8,388,608 bits, 2\.2× the 3,833,856 bits of block RAM of the ECP5-85F, the largest\. "
         r"Use a smaller model, or set QLOOM_MAX_MEMORY_BITS=N to raise the limit\.$"),
    case("size_grouped_conv_block_diagonal",
         net((8192, 1, 1), lambda n: n.conv("grouped", 8192, groups=4096)),
         M + r"the design must hold at least 536,870,912 bits of weights and line buffers \(the most in Conv "
         r"'conv0' \(ONNX node 'grouped'\): 67,108,864 weights of 8 bits\)"),
    case("size_depthwise_line_buffer",
         net((20000, 8, 16), lambda n: n.conv("dw", 20000, k=3, groups=20000)),
         M + r"the design must hold at least 14,240,000 bits of weights and line buffers \(the most in Conv "
         r"'conv0' \(ONNX node 'dw'\): a line buffer of at least 12,800,000 bits\)"),
    case("size_proof_of_5000_channels", net((8,), lambda n: n.gemm("wide_gemm", 5000, scale=0.002)),
         M + r"Dense 'dense0' \(ONNX node 'wide_gemm'\): proving its requantization takes about 337,920,000 steps "
         r"\(5,000 channels of up to 255 output levels each\); qloom proves at most 268,435,456 steps per model "
         r"\(a few minutes\)\. Use fewer channels or fewer output levels, or set QLOOM_MAX_PLANNER_STEPS=N to "
         r"raise the limit\.$"),
    case("size_proof_of_two_layers", net((8, 1, 1), two_layer_proof),
         M + r"Conv 'conv\d' \(ONNX node '(wide|depthwise)'\): proving its requantization takes about [\d,]+ steps "
         r"\(2,200 channels of up to 255 output levels each; [\d,]+ for the whole model\); qloom proves at most "
         r"268,435,456 steps per model"),
    case("size_fold_unrolled_beyond_luts", net((256,), lambda n: n.gemm("fc", 256, scale=100.0)),
         M + r"the design is estimated at [\d,]+ LUTs on the ECP5-85F \(the most, [\d,]+, in MVU 'mvu_dense0' of "
         r"Dense 'dense0' \(ONNX node 'fc'\), pe 256 × simd 256\), more than any device qloom builds for: the "
         r"limit is 350,000 LUTs, 4\.2× the 83,640 LUTs of the ECP5-85F, the largest\. Fold it more \(a smaller "
         r"--max-multipliers, or smaller pe and simd in the folding file\), or set QLOOM_MAX_LUTS=N to raise the "
         r"limit\.$",
         argv=("compile", "m.onnx", "-o", "out", "--fold", "fold.json"),
         files={"fold.json": {"dense0": {"pe": 256, "simd": 256}}}),
    case("size_max_multipliers_beyond_luts", net((256,), lambda n: n.gemm("fc", 256, scale=100.0)),
         M + r"the design is estimated at [\d,]+ LUTs on the ECP5-85F \(the most, [\d,]+, in MVU 'mvu_dense0' of "
         r"Dense 'dense0' \(ONNX node 'fc'\), pe 256 × simd 256\)",
         argv=("compile", "m.onnx", "-o", "out", "--max-multipliers", "1000000")),
]
