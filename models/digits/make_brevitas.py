"""Make the shipped Brevitas digits models (QONNX), deterministically.

    pip install torch==2.13.0 brevitas==0.13.4 onnxoptimizer qonnx==1.0.0 scikit-learn==1.9.1
    python models/digits/make_brevitas.py [NAME ...]     (default: all three)

Trained with PyTorch and Brevitas on scikit-learn's 8×8 digits (the split of make_models.py;
inputs 1×64 or 1×8×8 in [0, 1]) and exported with ``brevitas.export.export_qonnx``:

- ``digits_mlp_w2a2_qonnx.onnx``: 64 → 64 → 64 → 10, 2-bit weights and activations (ReLU),
  an 8-bit input and output;
- ``digits_cnn_w4a4_qonnx.onnx``: conv(1→16, 3×3, pad 1) → ReLU → MaxPool 2×2 → conv(16→16,
  3×3, pad 1) → ReLU → Flatten → 256 → 10, 4-bit weights and activations, 8-bit input and output;
- ``digits_mlp_w1a1_qonnx.onnx``: 64 → 64 → 64 → 10, bipolar (±1) weights and activations
  (BipolarQuant; the sign replaces the ReLU, no batch norm), an 8-bit input and output.

Scales are powers of two (Brevitas's fixed-point quantizers, as FINN uses; the bipolar ones 1/8
for weights and 1 for activations, not Brevitas's default 0.1, under which float32 sums that are
exactly 0 come out ±1e-8 and flip a sign) and biases are quantized at input scale × weight
scale (Int16Bias), so qonnx's float32 executor computes every sum exactly and equals qloom's exact semantics code for code.  torch and brevitas are needed
only to make these files, never to run qloom.  Writes the accuracies (qonnx's executor on the
540 test digits) to accuracy_brevitas.json.
"""
import json
from pathlib import Path

import numpy as np
import onnx
import torch
import brevitas.nn as qnn
from brevitas.export import export_qonnx
from brevitas.quant import (Int8ActPerTensorFixedPoint, Int8WeightPerTensorFixedPoint,
                            Int16Bias, SignedBinaryActPerTensorConst,
                            SignedBinaryWeightPerTensorConst, Uint8ActPerTensorFixedPoint)

from make_models import SEED, data

HERE = Path(__file__).parent


def linear(n_in, n_out, bits, **kw):
    return qnn.QuantLinear(n_in, n_out, bias=True, weight_quant=Int8WeightPerTensorFixedPoint,
                           weight_bit_width=bits, bias_quant=Int16Bias, return_quant_tensor=True,
                           **kw)


def conv(c_in, c_out, bits):
    return qnn.QuantConv2d(c_in, c_out, 3, padding=1, bias=True,
                           weight_quant=Int8WeightPerTensorFixedPoint, weight_bit_width=bits,
                           bias_quant=Int16Bias, return_quant_tensor=True)


def relu(bits):
    return qnn.QuantReLU(act_quant=Uint8ActPerTensorFixedPoint, bit_width=bits,
                         return_quant_tensor=True)


def binary_linear(n_in, n_out, **kw):
    return qnn.QuantLinear(n_in, n_out, bias=True, weight_quant=SignedBinaryWeightPerTensorConst,
                           weight_scaling_const=0.125, bias_quant=Int16Bias,
                           return_quant_tensor=True, **kw)


def sign():
    return qnn.QuantIdentity(act_quant=SignedBinaryActPerTensorConst, scaling_const=1.0,
                             return_quant_tensor=True)


class BinaryMLP(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.inp = qnn.QuantIdentity(act_quant=Int8ActPerTensorFixedPoint, return_quant_tensor=True)
        self.body = torch.nn.Sequential(binary_linear(64, 64), sign(), binary_linear(64, 64),
                                        sign(), binary_linear(64, 10,
                                                              output_quant=Int8ActPerTensorFixedPoint))

    def forward(self, x):
        return self.body(self.inp(x))


class MLP(torch.nn.Module):
    def __init__(self, bits=2):
        super().__init__()
        self.inp = qnn.QuantIdentity(act_quant=Int8ActPerTensorFixedPoint, return_quant_tensor=True)
        self.body = torch.nn.Sequential(linear(64, 64, bits), relu(bits), linear(64, 64, bits),
                                        relu(bits), linear(64, 10, bits,
                                                           output_quant=Int8ActPerTensorFixedPoint))

    def forward(self, x):
        return self.body(self.inp(x))


class CNN(torch.nn.Module):
    def __init__(self, bits=4):
        super().__init__()
        self.inp = qnn.QuantIdentity(act_quant=Int8ActPerTensorFixedPoint, return_quant_tensor=True)
        self.features = torch.nn.Sequential(conv(1, 16, bits), relu(bits), torch.nn.MaxPool2d(2),
                                            conv(16, 16, bits), relu(bits))
        self.fc = linear(256, 10, bits, output_quant=Int8ActPerTensorFixedPoint)

    def forward(self, x):
        return self.fc(self.features(self.inp(x)).flatten(1))


def train(model, x, y, epochs=60):
    torch.manual_seed(SEED)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    x, y = torch.tensor(x), torch.tensor(y)
    for epoch in range(epochs):
        model.train()
        for idx in torch.randperm(len(x)).split(32):
            opt.zero_grad()
            out = model(x[idx])
            out = out.value if hasattr(out, "value") else out     # a QuantTensor's values
            loss = torch.nn.functional.cross_entropy(out, y[idx])
            loss.backward()
            opt.step()
    return model.eval()


def executed(path, x):
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.core.onnx_exec import execute_onnx
    from qonnx.transformation.infer_shapes import InferShapes
    m = ModelWrapper(str(path)).transform(InferShapes())
    name, out = m.graph.input[0].name, m.graph.output[0].name
    return np.concatenate([execute_onnx(m, {name: x[i:i + 1]})[out] for i in range(len(x))])


def make(name, model, shape, x_train, y_train, x_test, y_test):
    torch.manual_seed(SEED)
    model = train(model, x_train.reshape(-1, *shape), y_train)
    path = HERE / name
    export_qonnx(model, torch.zeros(1, *shape), export_path=str(path))
    m = onnx.load(str(path))                      # one file: weights inside, no .data beside it
    onnx.save(m, str(path), save_as_external_data=False)
    Path(str(path) + ".data").unlink(missing_ok=True)
    with torch.no_grad():
        logits = model(torch.tensor(x_test.reshape(-1, *shape)))
        torch_acc = float((torch.as_tensor(logits.value if hasattr(logits, "value") else logits)
                           .argmax(-1).numpy() == y_test).mean())
    acc = float((executed(path, x_test.reshape(-1, *shape)).argmax(-1) == y_test).mean())
    return {"brevitas": torch_acc, "qonnx_executor": acc}


MODELS = {"digits_mlp_w2a2_qonnx": (lambda: MLP(2), (64,)),
          "digits_cnn_w4a4_qonnx": (lambda: CNN(4), (1, 8, 8)),
          "digits_mlp_w1a1_qonnx": (BinaryMLP, (64,))}


def main(names):
    torch.use_deterministic_algorithms(True)
    x_train, x_test, y_train, y_test = data()
    path = HERE / "accuracy_brevitas.json"
    accuracy = json.loads(path.read_text()) if path.exists() else {}
    for name in names:
        model, shape = MODELS[name]
        accuracy[name] = make(name + ".onnx", model(), shape, x_train, y_train, x_test, y_test)
    path.write_text(json.dumps(accuracy, indent=2) + "\n")
    print(json.dumps(accuracy, indent=2))


if __name__ == "__main__":
    import sys
    main(sys.argv[1:] or list(MODELS))
