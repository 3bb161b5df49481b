"""QONNX models as Brevitas's ``export_qonnx`` writes them, built with onnx.helper: ``Quant``
nodes (domain qonnx.custom_op.general) on the input, on every weight and after every layer's
float MatMul/Gemm/Conv (+ bias Add) (+ Relu), float tensors between them.

Scales are powers of two by default, so that qonnx's float32 executor computes every sum
exactly and must equal qloom's exact semantics code for code; ``po2=False`` draws arbitrary
float32 scales (where the executor's float32 rounding may differ from the exact result)."""
import numpy as np
import onnx

from bench.qonnx_models import Builder

MODES = ("ROUND", "HALF_EVEN", "CEIL", "FLOOR", "UP", "DOWN", "HALF_UP", "HALF_DOWN")


def act_kind(rng, relu, bipolar=False):
    """(bits, signed, narrow, mode) of an activation Quant; with ``bipolar``, half of those
    without a Relu before them are BipolarQuant (bits 1)."""
    if bipolar and not relu and rng.integers(0, 2):
        return 1, True, 0, "BIPOLAR"
    bits = int(rng.integers(2, 9))
    return bits, (not relu) and bool(rng.integers(0, 2)), int(rng.integers(0, 2)) if bits > 2 \
        else 0, str(rng.choice(MODES))


def weight_bits(rng, bipolar):
    """A weight Quant's bit width (2–8); with ``bipolar``, BipolarQuant (1) half of the time."""
    return 1 if bipolar and rng.integers(0, 2) else int(rng.integers(2, 9))


def mlp(seed, sizes=(16, 12, 6), po2=True, per_channel=None, gemm=None, bipolar=False):
    """Quant → [MatMul|Gemm](Quant W) (+ bias) → Relu → Quant → ... → Quant; with ``bipolar``,
    BipolarQuant weights and activations among them."""
    rng = np.random.default_rng(seed)
    b = Builder(rng, po2)
    x_scale = b.scale(-4, -2)
    bits, signed, narrow, mode = act_kind(rng, relu=False)
    h = b.quant("x", x_scale, bits, signed, narrow, mode)
    for k, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        last = k == len(sizes) - 2
        use_gemm = bool(rng.integers(0, 2)) if gemm is None else gemm
        pc = bool(rng.integers(0, 2)) if per_channel is None else per_channel
        wbits = weight_bits(rng, bipolar)
        if use_gemm:
            w = b.weight((n_out, n_in), wbits, pc, 0)
            h = b.node("Gemm", [h, w, b.bias(n_out, x_scale, 2.0 ** -6)], transB=1)
        else:
            w = b.weight((n_in, n_out), wbits, pc, 1)
            h = b.node("MatMul", [h, w])
            if rng.integers(0, 2):
                h = b.node("Add", [h, b.bias(n_out, x_scale, 2.0 ** -6)])
        relu = not last and bool(rng.integers(0, 4))
        if relu:
            h = b.node("Relu", [h])
        kind = act_kind(rng, relu, bipolar and not last)
        x_scale = b.scale(-3, 0)
        h = b.activation(h, x_scale, kind)
    return b.model("x", [1, sizes[0]], h, [1, sizes[-1]])


def cnn(seed, channels=(2, 4), size=6, classes=5, po2=True, bipolar=False):
    """Quant → Conv(Quant W, bias) → Relu → Quant → MaxPool → Conv → Relu → Quant → Flatten →
    Gemm → Quant; with ``bipolar``, BipolarQuant weights, and BipolarQuant activations after
    convolutions without their Relu."""
    rng = np.random.default_rng(seed)
    b = Builder(rng, po2)
    x_scale = b.scale(-4, -2)
    bits, signed, narrow, mode = act_kind(rng, relu=False)
    h = b.quant("x", x_scale, bits, signed, narrow, mode)
    c_in, hw = channels[0], size
    for k, c_out in enumerate(channels[1:]):
        w = b.weight((c_out, c_in, 3, 3), weight_bits(rng, bipolar), bool(rng.integers(0, 2)), 0)
        h = b.node("Conv", [h, w, b.bias(c_out, x_scale, 2.0 ** -6)], kernel_shape=[3, 3],
                   pads=[1, 1, 1, 1])
        relu = not (bipolar and rng.integers(0, 2))
        if relu:
            h = b.node("Relu", [h])
        kind = act_kind(rng, relu, bipolar)
        x_scale = b.scale(-3, 0)
        h = b.activation(h, x_scale, kind)
        if k == 0:
            h = b.node("MaxPool", [h], kernel_shape=[2, 2], strides=[2, 2])
            hw //= 2
        c_in = c_out
    h = b.node("Flatten", [h], axis=1)
    w = b.weight((classes, c_in * hw * hw), weight_bits(rng, bipolar), True, 0)
    h = b.node("Gemm", [h, w, b.bias(classes, x_scale, 2.0 ** -6)], transB=1)
    h = b.quant(h, b.scale(-3, 0), 8, True, 0, "ROUND")
    return b.model("x", [1, channels[0], size, size], h, [1, classes])


def execute(model, x):
    """qonnx's executor on each frame of ``x`` (the oracle for QONNX models)."""
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.core.onnx_exec import execute_onnx
    from qonnx.transformation.infer_shapes import InferShapes
    w = ModelWrapper(model).transform(InferShapes())
    name, out = w.graph.input[0].name, w.graph.output[0].name
    return np.concatenate([execute_onnx(w, {name: x[i:i + 1]})[out] for i in range(len(x))])


def save(model, path):
    onnx.save(model, str(path))
    return path
