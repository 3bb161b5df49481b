"""Benchmark models: random weights, quantized by onnxruntime.quantize_static, fixed seeds.

    python -m bench.models DIR     (writes ad_mlp_qdq.onnx and its inputs into DIR)

The MLPerf Tiny anomaly-detection autoencoder shape, 640-128-128-128-128-8-128-128-128-128-640
(ReLU after every layer but the last), as Gemm layers; uint8 activations and per-channel int8
weights with reduce_range, calibrated on random inputs.  The DS-CNN and ResNet-8 shapes need
global average pooling and residual adds (issue #4) and are not generated yet.
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
    print(make_ad_mlp(sys.argv[1] if len(sys.argv) > 1 else "build/bench/models"))
