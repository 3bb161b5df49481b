"""Benchmark models: random weights, quantized by onnxruntime.quantize_static, fixed seeds.

    python -m bench.models DIR     (writes ad_mlp_qdq.onnx, ds_cnn_qdq.onnx, resnet8_qdq.onnx and
                                    their inputs into DIR)

The MLPerf Tiny shapes, uint8 activations and per-channel int8 weights with reduce_range,
calibrated on random inputs:

- anomaly detection: the autoencoder 640-128-128-128-128-8-128-128-128-128-640 (ReLU after every
  layer but the last), as Gemm layers;
- keyword spotting: DS-CNN on a 1×49×10 input — conv 10×4 stride 2 (64) → 4 × (depthwise 3×3 →
  pointwise 1×1, 64) → global average pool → 12 classes, ReLU after every conv;
- image classification: ResNet-8 on a 3×32×32 input — conv 3×3 (16) → three residual stacks
  (16, 32 and 64 channels; the second and third start with stride 2 and a 1×1 projection
  shortcut) → global average pool → 10 classes.
"""
import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

from qloom.mapper.ort_check import calibration_frames

AD_MLP = [640, 128, 128, 128, 128, 8, 128, 128, 128, 128, 640]


def mlp(widths, name, seed):
    rng = np.random.default_rng(seed)
    nodes, inits, x = [], [], "input"
    for k, (a, b) in enumerate(zip(widths, widths[1:])):
        w = (rng.normal(size=(a, b)) * np.sqrt(2.0 / a)).astype(np.float32)
        bias = (rng.normal(size=b) * 0.1).astype(np.float32)
        inits += [numpy_helper.from_array(w, f"fc{k}.weight"), numpy_helper.from_array(bias, f"fc{k}.bias")]
        y = f"fc{k}"
        nodes.append(helper.make_node("Gemm", [x, f"fc{k}.weight", f"fc{k}.bias"], [y], name=y))
        if k < len(widths) - 2:
            nodes.append(helper.make_node("Relu", [y], [f"relu{k}"], name=f"relu{k}"))
            y = f"relu{k}"
        x = y
    graph = helper.make_graph(nodes, name, [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, widths[0]])],
                              [helper.make_tensor_value_info(x, TensorProto.FLOAT, [1, widths[-1]])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="qloom/bench/models.py")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


class _Net:
    """A float ONNX graph built layer by layer (random He-scaled weights, fixed seed)."""

    def __init__(self, name, shape, seed):
        self.name, self.shape, self.rng = name, shape, np.random.default_rng(seed)
        self.nodes, self.inits, self.count = [], [], 0

    def fresh(self, kind):
        self.count += 1
        return f"{kind}{self.count}"

    def conv(self, x, cin, cout, kernel, stride=1, pads=None, groups=1, relu=True):
        kh, kw = kernel
        y = self.fresh("conv")
        fan_in = kh * kw * cin // groups
        w = (self.rng.normal(size=(cout, cin // groups, kh, kw)) * np.sqrt(2.0 / fan_in)).astype(np.float32)
        b = (self.rng.normal(size=cout) * 0.05).astype(np.float32)
        self.inits += [numpy_helper.from_array(w, y + ".weight"), numpy_helper.from_array(b, y + ".bias")]
        pads = pads if pads is not None else [kh // 2, kw // 2, kh // 2, kw // 2]
        self.nodes.append(helper.make_node("Conv", [x, y + ".weight", y + ".bias"], [y], name=y,
                                           kernel_shape=[kh, kw], strides=[stride, stride], pads=pads, group=groups))
        return self.relu(y) if relu else y

    def relu(self, x):
        y = self.fresh("relu")
        self.nodes.append(helper.make_node("Relu", [x], [y], name=y))
        return y

    def add(self, a, b):
        y = self.fresh("add")
        self.nodes.append(helper.make_node("Add", [a, b], [y], name=y))
        return self.relu(y)

    def head(self, x, channels, classes):
        self.nodes += [helper.make_node("GlobalAveragePool", [x], ["pooled"], name="pool"),
                       helper.make_node("Flatten", ["pooled"], ["features"], name="flatten")]
        w = (self.rng.normal(size=(channels, classes)) * np.sqrt(1.0 / channels)).astype(np.float32)
        self.inits += [numpy_helper.from_array(w, "fc.weight"),
                       numpy_helper.from_array(np.zeros(classes, np.float32), "fc.bias")]
        self.nodes.append(helper.make_node("Gemm", ["features", "fc.weight", "fc.bias"], ["logits"], name="fc"))
        graph = helper.make_graph(self.nodes, self.name,
                                  [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, *self.shape])],
                                  [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, classes])],
                                  self.inits)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)],
                                  producer_name="qloom/bench/models.py")
        model.ir_version = 8
        onnx.checker.check_model(model)
        return model


def resnet8(seed):
    net = _Net("resnet8", (3, 32, 32), seed)
    x = net.conv("input", 3, 16, (3, 3))
    cin = 16
    for cout, stride in ((16, 1), (32, 2), (64, 2)):
        y = net.conv(x, cin, cout, (3, 3), stride)
        y = net.conv(y, cout, cout, (3, 3), relu=False)
        skip = x if stride == 1 else net.conv(x, cin, cout, (1, 1), stride, relu=False)
        x, cin = net.add(y, skip), cout
    return net.head(x, 64, 10)


def ds_cnn(seed):
    net = _Net("ds_cnn", (1, 49, 10), seed)
    x = net.conv("input", 1, 64, (10, 4), 2, pads=[4, 1, 5, 1])          # "same": 25×5
    for _ in range(4):
        x = net.conv(x, 64, 64, (3, 3), groups=64)
        x = net.conv(x, 64, 64, (1, 1))
    return net.head(x, 64, 12)


def make_cnn(kind, out_dir, seed=0):
    """``kind``_qdq.onnx ("resnet8" or "ds_cnn") and its inputs in ``out_dir``; returns the path."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model = {"resnet8": resnet8, "ds_cnn": ds_cnn}[kind](seed)
    shape = tuple(d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim[1:])
    fp32, path = out_dir / f"{kind}_fp32.onnx", out_dir / f"{kind}_qdq.onnx"
    onnx.save(model, fp32)
    rng = np.random.default_rng(seed + 1)
    quantize_static(str(fp32), str(path),
                    calibration_frames("input", rng.normal(size=(32, *shape)).astype(np.float32)),
                    quant_format=QuantFormat.QDQ, per_channel=True, reduce_range=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
    np.save(out_dir / f"{kind}_inputs.npy", np.random.default_rng(seed + 2).normal(size=(16, *shape)).astype(np.float32))
    return path


def inputs(width, count, seed):
    """Non-negative inputs (like log-mel energies), fixed seed."""
    return np.abs(np.random.default_rng(seed).normal(size=(count, width))).astype(np.float32)


def make_ad_mlp(out_dir, seed=0):
    """ad_mlp_qdq.onnx and ad_mlp_inputs.npy in ``out_dir``; returns the model path."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    fp32, path = out_dir / "ad_mlp_fp32.onnx", out_dir / "ad_mlp_qdq.onnx"
    onnx.save(mlp(AD_MLP, "ad_mlp", seed), fp32)
    quantize_static(str(fp32), str(path), calibration_frames("input", inputs(AD_MLP[0], 64, seed + 1)),
                    quant_format=QuantFormat.QDQ, per_channel=True, reduce_range=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
    np.save(out_dir / "ad_mlp_inputs.npy", inputs(AD_MLP[0], 64, seed + 2))
    return path


if __name__ == "__main__":
    out = sys.argv[1] if len(sys.argv) > 1 else "build/bench/models"
    print(make_ad_mlp(out), make_cnn("ds_cnn", out), make_cnn("resnet8", out))
