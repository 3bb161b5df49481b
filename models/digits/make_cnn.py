"""Make the shipped digits CNN, deterministically.

    python models/digits/make_cnn.py

conv(1→8, 3×3, pad 1) → ReLU → MaxPool 2×2 → conv(8→16, 3×3, pad 1) → ReLU → Flatten →
Gemm(256→10) on scikit-learn's 8×8 digits (inputs 1×8×8, the same split as the MLPs).
No deep-learning framework is needed: the two convolutions are fixed random filters (seeded,
a random-feature network) and only the last layer is trained, by scikit-learn's logistic
regression on the float features.  Exported to ONNX and quantized with
onnxruntime.quantize_static: QDQ, uint8 activations, per-channel int8 weights (reduce_range).

Writes beside this file: digits_cnn_fp32.onnx, digits_cnn_qdq.onnx, and the CNN accuracies
in accuracy_cnn.json.  The inputs are test_inputs.npy reshaped to (N, 1, 8, 8).
"""

import numpy as np
from onnx import TensorProto, helper, numpy_helper
from sklearn.linear_model import LogisticRegression

from make_models import SEED, data, finish, quantize_and_score, run



def conv_part(rng):
    w1 = (rng.normal(size=(8, 1, 3, 3)) / 3.0).astype(np.float32)
    b1 = (rng.normal(size=8) * 0.05).astype(np.float32)
    w2 = (rng.normal(size=(16, 8, 3, 3)) / np.sqrt(72)).astype(np.float32)
    b2 = (rng.normal(size=16) * 0.05).astype(np.float32)
    return w1, b1, w2, b2


def model(w1, b1, w2, b2, wf=None, bf=None):
    """The float network; without wf it ends at the flattened features."""
    inits = [numpy_helper.from_array(a, n) for a, n in ((w1, "conv1.weight"), (b1, "conv1.bias"),
                                                         (w2, "conv2.weight"), (b2, "conv2.bias"))]
    nodes = [helper.make_node("Conv", ["pixels", "conv1.weight", "conv1.bias"], ["conv1"], name="conv1",
                              kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["conv1"], ["relu1"], name="relu1"),
             helper.make_node("MaxPool", ["relu1"], ["pool1"], name="pool1", kernel_shape=[2, 2], strides=[2, 2]),
             helper.make_node("Conv", ["pool1", "conv2.weight", "conv2.bias"], ["conv2"], name="conv2",
                              kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["conv2"], ["relu2"], name="relu2"),
             helper.make_node("Flatten", ["relu2"], ["features"], name="flatten")]
    out, width = "features", 256
    if wf is not None:
        inits += [numpy_helper.from_array(wf, "fc.weight"), numpy_helper.from_array(bf, "fc.bias")]
        nodes.append(helper.make_node("Gemm", ["features", "fc.weight", "fc.bias"], ["logits"], name="fc",
                                      transB=1))
        out, width = "logits", 10
    graph = helper.make_graph(nodes, "digits_cnn",
                              [helper.make_tensor_value_info("pixels", TensorProto.FLOAT, ["batch", 1, 8, 8])],
                              [helper.make_tensor_value_info(out, TensorProto.FLOAT, ["batch", width])], inits)
    return finish(graph, "make_cnn.py")


def main():
    x_train, x_test, y_train, y_test = data()
    x_train, x_test = x_train.reshape(-1, 1, 8, 8), x_test.reshape(-1, 1, 8, 8)
    convs = conv_part(np.random.default_rng(SEED))
    features = model(*convs)
    clf = LogisticRegression(max_iter=2000, C=1.0, random_state=SEED)
    clf.fit(run(features, x_train)[0], y_train)
    fp32 = model(*convs, clf.coef_.astype(np.float32), clf.intercept_.astype(np.float32))
    quantize_and_score(fp32, "digits_cnn", x_train, x_test, y_test)


if __name__ == "__main__":
    main()
