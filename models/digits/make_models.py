"""Make the shipped digits MLPs, deterministically.

    python models/digits/make_models.py

Trains a 64-32-10 MLP (scikit-learn MLPClassifier, ReLU) on scikit-learn's bundled
8×8 digits, exports it to ONNX, and quantizes it with onnxruntime.quantize_static:
uint8 activations, per-channel int8 weights (reduce_range, so that every CPU's
onnxruntime computes exact sums), calibrated on the training split.

Writes beside this file: digits_mlp_fp32.onnx, digits_mlp_qdq.onnx (QDQ, Gemm),
digits_mlp_qop.onnx (QOperator: QLinearMatMul + QLinearAdd), test_inputs.npy,
test_labels.npy, and the accuracies in accuracy.json.
"""
import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper
from onnxruntime.quantization import QuantFormat, QuantType, quantize_static
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier

from qloom.mapper.ort_check import calibration_frames

HERE = Path(__file__).resolve().parent
SEED = 0


def data():
    digits = load_digits()
    x = (digits.data / 16.0).astype(np.float32)
    return train_test_split(x, digits.target.astype(np.int64), test_size=0.3, random_state=SEED,
                            stratify=digits.target)


def export(clf, gemm):
    w1, w2 = (w.astype(np.float32) for w in clf.coefs_)
    b1, b2 = (b.astype(np.float32) for b in clf.intercepts_)
    inits = [numpy_helper.from_array(a, n) for a, n in ((w1, "fc1.weight"), (b1, "fc1.bias"),
                                                         (w2, "fc2.weight"), (b2, "fc2.bias"))]
    if gemm:
        nodes = [helper.make_node("Gemm", ["pixels", "fc1.weight", "fc1.bias"], ["fc1"], name="fc1"),
                 helper.make_node("Relu", ["fc1"], ["relu1"], name="relu1"),
                 helper.make_node("Gemm", ["relu1", "fc2.weight", "fc2.bias"], ["logits"], name="fc2")]
    else:
        nodes = [helper.make_node("MatMul", ["pixels", "fc1.weight"], ["fc1.mm"], name="fc1/MatMul"),
                 helper.make_node("Add", ["fc1.mm", "fc1.bias"], ["fc1"], name="fc1/Add"),
                 helper.make_node("Relu", ["fc1"], ["relu1"], name="relu1"),
                 helper.make_node("MatMul", ["relu1", "fc2.weight"], ["fc2.mm"], name="fc2/MatMul"),
                 helper.make_node("Add", ["fc2.mm", "fc2.bias"], ["logits"], name="fc2/Add")]
    graph = helper.make_graph(nodes, "digits_mlp",
                              [helper.make_tensor_value_info("pixels", TensorProto.FLOAT, ["batch", 64])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 10])], inits)
    return finish(graph, "make_models.py")


def finish(graph, script):
    """The checked model of ``graph`` (opset 17, IR 8), naming the script that made it."""
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)],
                              producer_name=f"qloom/models/digits/{script}")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def run(model, x):
    """Every output of ``model`` on digits ``x``, by onnxruntime."""
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, {"pixels": x})


def quantize_and_score(fp32, name, x_train, x_test, y_test):
    """Save ``fp32`` as ``name``_fp32.onnx, quantize it (QDQ, uint8 activations, per-channel int8
    weights with reduce_range, calibrated on 300 training digits) to ``name``_qdq.onnx, and write
    both accuracies to accuracy_``suffix``.json (name without the "digits_" prefix)."""
    here = Path(__file__).resolve().parent
    onnx.save(fp32, here / f"{name}_fp32.onnx")
    out = here / f"{name}_qdq.onnx"
    quantize_static(str(here / f"{name}_fp32.onnx"), str(out), calibration_frames("pixels", x_train[:300]),
                    quant_format=QuantFormat.QDQ, per_channel=True, reduce_range=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
    results = {"fp32_onnx": float((run(fp32, x_test)[0].argmax(1) == y_test).mean()),
               "quantized_qdq": float((run(onnx.load(out), x_test)[0].argmax(1) == y_test).mean())}
    (here / f"accuracy_{name.removeprefix('digits_')}.json").write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


def accuracy(path, x, y):
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return float((sess.run(None, {"pixels": x})[0].argmax(axis=1) == y).mean())


def main():
    x_train, x_test, y_train, y_test = data()
    clf = MLPClassifier(hidden_layer_sizes=(32,), activation="relu", max_iter=600, random_state=SEED)
    clf.fit(x_train, y_train)
    results = {"fp32_sklearn": float(clf.score(x_test, y_test))}
    for name, gemm, fmt in (("qdq", True, QuantFormat.QDQ), ("qop", False, QuantFormat.QOperator)):
        fp32 = HERE / f"digits_mlp_fp32{'' if gemm else '_matmul'}.onnx"
        onnx.save(export(clf, gemm), fp32)
        out = HERE / f"digits_mlp_{name}.onnx"
        quantize_static(str(fp32), str(out), calibration_frames("pixels", x_train[:300]), quant_format=fmt,
                        per_channel=True, reduce_range=True, activation_type=QuantType.QUInt8,
                        weight_type=QuantType.QInt8)
        results[f"fp32_onnx{'' if gemm else '_matmul'}"] = accuracy(fp32, x_test, y_test)
        results[f"quantized_{name}"] = accuracy(out, x_test, y_test)
    (HERE / "digits_mlp_fp32_matmul.onnx").unlink()
    np.save(HERE / "test_inputs.npy", x_test)
    np.save(HERE / "test_labels.npy", y_test)
    (HERE / "accuracy.json").write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
