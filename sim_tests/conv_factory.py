"""Random float CNNs (Conv with any kernel/stride/pad/dilation, groups 1 or depthwise, Relu,
MaxPool, Flatten + Gemm), quantized by onnxruntime.quantize_static."""
import logging

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

from qloom.mapper.ort_check import calibration_frames

logging.getLogger().setLevel(logging.ERROR)     # quantize_static's pre-processing advice


def _conv(rng, nodes, inits, x, shape, k, name):
    """A random Conv (+ Relu, + MaxPool) on ``x`` of ``shape`` (C, H, W); returns (y, shape, info)."""
    c, h, w = shape
    depthwise = c > 1 and rng.random() < 0.35
    s, p, d = int(rng.integers(1, 3)), int(rng.integers(0, 3)), int(rng.integers(1, 3))
    k = max(1, min(k, (h + 2 * p - 1) // d + 1, (w + 2 * p - 1) // d + 1))
    groups = c if depthwise else 1
    out = c * int(rng.integers(1, 3)) if depthwise else int(rng.integers(1, 9))
    weight = (rng.normal(size=(out, c // groups, k, k)) / np.sqrt(k * k * c / groups)).astype(np.float32)
    bias = (rng.normal(size=out) * 0.2).astype(np.float32)
    inits += [numpy_helper.from_array(weight, f"{name}.w"), numpy_helper.from_array(bias, f"{name}.b")]
    nodes.append(helper.make_node("Conv", [x, f"{name}.w", f"{name}.b"], [name], name=name, kernel_shape=[k, k],
                                  strides=[s, s], pads=[p, p, p, p], dilations=[d, d], group=groups))
    oh, ow = (h + 2 * p - d * (k - 1) - 1) // s + 1, (w + 2 * p - d * (k - 1) - 1) // s + 1
    y, shape = name, (out, oh, ow)
    if rng.random() < 0.7:
        nodes.append(helper.make_node("Relu", [y], [name + ".relu"], name=name + ".relu"))
        y = name + ".relu"
    if rng.random() < 0.4 and oh >= 2 and ow >= 2:
        nodes.append(helper.make_node("MaxPool", [y], [name + ".pool"], name=name + ".pool", kernel_shape=[2, 2],
                                      strides=[2, 2]))
        y, shape = name + ".pool", (out, oh // 2, ow // 2)
    return y, shape, dict(k=k, stride=s, pad=p, dilation=d, depthwise=depthwise)


def random_cnn(rng, convs=1, dense=False, gap=False, nhwc=False, avgpool=None):
    """A float model: ``convs`` conv layers, then (``avgpool``: a dict of AveragePool attributes,
    ``kernel_shape`` and optional ``strides``, ``pads``, ``count_include_pad``) an AveragePool,
    then (``gap``) GlobalAveragePool, then Flatten +
    Gemm when ``dense`` (with ``nhwc``: Transpose to NHWC and Reshape first, as TensorFlow
    exports do)."""
    shape = (int(rng.integers(1, 6)), int(rng.integers(5, 13)), int(rng.integers(5, 13)))
    nodes, inits, infos, x, s = [], [], [], "x", shape
    for i in range(convs):
        x, s, info = _conv(rng, nodes, inits, x, s, int(rng.integers(1, 6)), f"conv{i}")
        infos.append(info)
    if avgpool:
        if avgpool["kernel_shape"] == "plane":          # a global pool written as AveragePool
            avgpool = dict(avgpool, kernel_shape=s[1:])
        nodes.append(helper.make_node("AveragePool", [x], ["avg"], name="avg", **avgpool))
        (kh, kw), (sh, sw) = avgpool["kernel_shape"], avgpool.get("strides", (1, 1))
        pt, pl, pb, pr = avgpool.get("pads", (0, 0, 0, 0))
        x, s = "avg", (s[0], (s[1] + pt + pb - kh) // sh + 1, (s[2] + pl + pr - kw) // sw + 1)
    if gap:
        nodes.append(helper.make_node("GlobalAveragePool", [x], ["gap"], name="gap"))
        x, s = "gap", (s[0], 1, 1)
    if dense:
        n = int(np.prod(s))
        if nhwc:
            nodes.append(helper.make_node("Transpose", [x], ["nhwc"], name="to_nhwc", perm=[0, 2, 3, 1]))
            inits.append(numpy_helper.from_array(np.array([-1, n], np.int64), "flat_shape"))
            nodes.append(helper.make_node("Reshape", ["nhwc", "flat_shape"], ["flat"], name="flatten"))
        else:
            nodes.append(helper.make_node("Flatten", [x], ["flat"], name="flatten"))
        w = (rng.normal(size=(n, 10)) / np.sqrt(n)).astype(np.float32)
        inits += [numpy_helper.from_array(w, "fc.w"), numpy_helper.from_array(np.zeros(10, np.float32), "fc.b")]
        nodes.append(helper.make_node("Gemm", ["flat", "fc.w", "fc.b"], ["logits"], name="fc"))
        x = "logits"
    graph = helper.make_graph(nodes, "cnn", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, *shape])],
                              [helper.make_tensor_value_info(x, TensorProto.FLOAT, None)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model, shape, infos


def quantize(float_model, path, x, fmt="QDQ", act="uint8"):
    tmp = str(path) + ".fp32.onnx"
    onnx.save(float_model, tmp)
    quantize_static(tmp, str(path), calibration_frames("x", x),
                    quant_format=QuantFormat.QDQ if fmt == "QDQ" else QuantFormat.QOperator,
                    per_channel=True, reduce_range=True, weight_type=QuantType.QInt8,
                    activation_type=QuantType.QUInt8 if act == "uint8" else QuantType.QInt8)
    return path


def _dense_head(rng, nodes, inits, x, n, classes, name, shape):
    """Flatten ``x`` (n features) → Gemm → ``classes`` logits; the float model of ``nodes``."""
    nodes.append(helper.make_node("Flatten", [x], ["flat"], name="flatten"))
    inits += [numpy_helper.from_array((rng.normal(size=(n, classes)) / np.sqrt(n)).astype(np.float32), "fc.w"),
              numpy_helper.from_array(np.zeros(classes, np.float32), "fc.b")]
    nodes.append(helper.make_node("Gemm", ["flat", "fc.w", "fc.b"], ["logits"], name="fc"))
    graph = helper.make_graph(nodes, name, [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, *shape])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, None)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model, tuple(shape)


def _conv_maker(rng, nodes, inits):
    """conv(x, y, cin, cout, k, groups, stride): a random Conv with "same" padding."""
    def conv(x, y, cin, cout, k, groups=1, stride=1):
        weight = (rng.normal(size=(cout, cin // groups, k, k)) / np.sqrt(k * k * cin / groups)).astype(np.float32)
        inits.extend([numpy_helper.from_array(weight, y + ".w"),
                      numpy_helper.from_array((rng.normal(size=cout) * 0.1).astype(np.float32), y + ".b")])
        nodes.append(helper.make_node("Conv", [x, y + ".w", y + ".b"], [y], name=y, kernel_shape=[k, k],
                                      pads=[k // 2] * 4, group=groups, strides=[stride, stride]))
    return conv


def random_residual(rng, downsample=False, head="flatten"):
    """conv 1×1 → Relu → [skip] → conv 3×3 → Relu → conv 3×3 (depthwise sometimes) → Add(skip) →
    Relu → Flatten → Gemm: a ResNet-style block.  ``downsample``: the first 3×3 conv has stride 2
    and the skip path is a 1×1 conv of stride 2 (ResNet's projection shortcut).  ``head``:
    "flatten", "gap" (GlobalAveragePool before the Gemm) or "none" (the block is the output)."""
    c_in, c = int(rng.integers(1, 4)), int(rng.integers(2, 7))
    h, w = int(rng.integers(4, 9)), int(rng.integers(4, 9))
    inits, nodes = [], []
    conv = _conv_maker(rng, nodes, inits)

    conv("x", "stem", c_in, c, 1)
    nodes.append(helper.make_node("Relu", ["stem"], ["skip"], name="stem.relu"))
    conv("skip", "conv_a", c, c, 3, stride=2 if downsample else 1)
    nodes.append(helper.make_node("Relu", ["conv_a"], ["a"], name="conv_a.relu"))
    conv("a", "conv_b", c, c, 3, groups=c if rng.random() < 0.5 else 1)
    shortcut, oh, ow = "skip", h, w
    if downsample:
        conv("skip", "proj", c, c, 1, stride=2)
        shortcut, oh, ow = "proj", (h - 1) // 2 + 1, (w - 1) // 2 + 1
    nodes.append(helper.make_node("Add", ["conv_b", shortcut], ["sum"], name="residual"))
    nodes.append(helper.make_node("Relu", ["sum"], ["block"], name="block.relu"))
    x = "block"
    if head == "none":                      # the block's output is the model's
        graph = helper.make_graph(nodes, "residual", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                                                    [1, c_in, h, w])],
                                  [helper.make_tensor_value_info("block", TensorProto.FLOAT, None)], inits)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
        model.ir_version = 8
        return model, (c_in, h, w)
    if head == "gap":
        nodes.append(helper.make_node("GlobalAveragePool", ["block"], ["pooled"], name="gap"))
        x, oh, ow = "pooled", 1, 1
    return _dense_head(rng, nodes, inits, x, c * oh * ow, 6, "residual", (c_in, h, w))


def random_concat(rng, identity=False):
    """conv → Relu → [conv k×k → Relu] ‖ [conv 1×1 | the input itself] → Concat (channels) →
    Flatten → Gemm: an Inception-style (or, with ``identity``, DenseNet-style) block."""
    c_in, c = int(rng.integers(1, 4)), int(rng.integers(2, 6))
    h, w = int(rng.integers(4, 8)), int(rng.integers(4, 8))
    ca, cb = int(rng.integers(1, 6)), int(rng.integers(1, 6))
    inits, nodes = [], []
    conv = _conv_maker(rng, nodes, inits)

    conv("x", "stem", c_in, c, 3)
    nodes.append(helper.make_node("Relu", ["stem"], ["s"], name="stem.relu"))
    conv("s", "branch_a", c, ca, int(rng.choice([3, 5])))
    nodes.append(helper.make_node("Relu", ["branch_a"], ["a"], name="branch_a.relu"))
    if identity:
        other, cb = "s", c
    else:
        conv("s", "branch_b", c, cb, 1)
        other = "branch_b"
    nodes.append(helper.make_node("Concat", ["a", other], ["cat"], name="concat", axis=1))
    return _dense_head(rng, nodes, inits, "cat", (ca + cb) * h * w, 5, "concat", (c_in, h, w))
