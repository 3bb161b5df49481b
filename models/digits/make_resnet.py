"""Make the shipped digits residual CNN, deterministically.

    python models/digits/make_resnet.py

conv(1→32, 5×5) → ReLU → [skip] → depthwise conv(32, 3×3, pad 1) → ReLU → pointwise
conv(32→32, 1×1) → Add(skip) → ReLU → GlobalAveragePool → Flatten → Gemm(32→10), on
scikit-learn's 8×8 digits (inputs 1×8×8, the same split as the MLPs): a MobileNet-style
residual block with a depthwise layer and global average pooling.
No deep-learning framework is needed: the 5×5 and depthwise filters are fixed random
filters (seeded); the pointwise conv and the classifier are trained together by a few hundred
steps of Adam written in NumPy (the gradient through ReLU and the average is short).
Exported to ONNX and quantized with onnxruntime.quantize_static: QDQ, uint8 activations,
per-channel int8 weights (reduce_range).

Writes beside this file: digits_resnet_fp32.onnx, digits_resnet_qdq.onnx, and the accuracies
in accuracy_resnet.json.  The inputs are test_inputs.npy reshaped to (N, 1, 8, 8).
"""

import numpy as np
from onnx import TensorProto, helper, numpy_helper

from make_models import SEED, data, finish, quantize_and_score, run

C = 32


def fixed_filters(rng):
    return {"stem.weight": (rng.normal(size=(C, 1, 5, 5)) / 5).astype(np.float32),
            "stem.bias": (rng.normal(size=C) * 0.3).astype(np.float32),
            "dw.weight": (rng.normal(size=(C, 1, 3, 3)) / 3).astype(np.float32),
            "dw.bias": (rng.normal(size=C) * 0.1).astype(np.float32)}


def model(weights, trained=None):
    """The float network; without ``trained`` it ends at the skip and depthwise outputs."""
    nodes = [helper.make_node("Conv", ["pixels", "stem.weight", "stem.bias"], ["stem"], name="stem",
                              kernel_shape=[5, 5]),
             helper.make_node("Relu", ["stem"], ["skip"], name="stem_relu"),
             helper.make_node("Conv", ["skip", "dw.weight", "dw.bias"], ["dw"], name="depthwise",
                              kernel_shape=[3, 3], pads=[1, 1, 1, 1], group=C),
             helper.make_node("Relu", ["dw"], ["dw_relu"], name="depthwise_relu")]
    inits = dict(weights)
    outputs = [("skip", [None, C, 4, 4]), ("dw_relu", [None, C, 4, 4])]
    if trained is not None:
        inits.update(trained)
        nodes += [helper.make_node("Conv", ["dw_relu", "pw.weight", "pw.bias"], ["pw"], name="pointwise",
                                   kernel_shape=[1, 1]),
                  helper.make_node("Add", ["pw", "skip"], ["sum"], name="residual"),
                  helper.make_node("Relu", ["sum"], ["block"], name="block_relu"),
                  helper.make_node("GlobalAveragePool", ["block"], ["pooled"], name="gap"),
                  helper.make_node("Flatten", ["pooled"], ["features"], name="flatten"),
                  helper.make_node("Gemm", ["features", "fc.weight", "fc.bias"], ["logits"], name="fc", transB=1)]
        outputs = [("logits", [None, 10])]
    graph = helper.make_graph(nodes, "digits_resnet",
                              [helper.make_tensor_value_info("pixels", TensorProto.FLOAT, ["batch", 1, 8, 8])],
                              [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in outputs],
                              [numpy_helper.from_array(a, n) for n, a in inits.items()])
    return finish(graph, "make_resnet.py")


def train(a, s, y, rng, steps=400, lr=0.01):
    """Pointwise conv (P, bp) and classifier (Wf, bf) on fixed depthwise outputs ``a`` and skip
    ``s``: softmax cross-entropy of Wf · mean(relu(P·a + bp + s)) + bf, by Adam."""
    n, _, h, w = a.shape
    params = [(rng.normal(size=(C, C)) / np.sqrt(C)).astype(np.float32), np.zeros(C, np.float32),
              np.zeros((10, C), np.float32), np.zeros(10, np.float32)]
    m1, m2 = [np.zeros_like(p) for p in params], [np.zeros_like(p) for p in params]
    onehot = np.eye(10, dtype=np.float32)[y]
    for t in range(1, steps + 1):
        p_, bp, wf, bf = params
        z = np.einsum("oc,nchw->nohw", p_, a) + bp[None, :, None, None] + s
        g = np.maximum(z, 0).mean(axis=(2, 3))
        logits = g @ wf.T + bf
        prob = np.exp(logits - logits.max(1, keepdims=True))
        prob /= prob.sum(1, keepdims=True)
        d = (prob - onehot) / n
        dz = (z > 0) * (d @ wf)[:, :, None, None] / (h * w)
        grads = [np.einsum("nohw,nchw->oc", dz, a), dz.sum(axis=(0, 2, 3)), d.T @ g, d.sum(0)]
        for i, gr in enumerate(grads):
            m1[i] = 0.9 * m1[i] + 0.1 * gr
            m2[i] = 0.999 * m2[i] + 0.001 * gr * gr
            params[i] -= lr * (m1[i] / (1 - 0.9 ** t)) / (np.sqrt(m2[i] / (1 - 0.999 ** t)) + 1e-8)
    p_, bp, wf, bf = params
    return {"pw.weight": p_.reshape(C, C, 1, 1).astype(np.float32), "pw.bias": bp.astype(np.float32),
            "fc.weight": wf.astype(np.float32), "fc.bias": bf.astype(np.float32)}


def main():
    x_train, x_test, y_train, y_test = data()
    x_train, x_test = x_train.reshape(-1, 1, 8, 8), x_test.reshape(-1, 1, 8, 8)
    rng = np.random.default_rng(SEED)
    weights = fixed_filters(rng)
    skip, dw = run(model(weights), x_train)
    fp32 = model(weights, train(dw, skip, y_train, rng))
    quantize_and_score(fp32, "digits_resnet", x_train, x_test, y_test)


if __name__ == "__main__":
    main()
