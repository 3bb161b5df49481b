"""QONNX models as Brevitas's ``export_qonnx`` writes them, built with onnx.helper (the tests'
random models, sim_tests/qonnx_factory.py, are built with the same Builder), and the TFC-shaped
MLPs FINN's published figures are for.

    python -m bench.qonnx_models DIR    (writes tfc_w1a1_qonnx.onnx, tfc_w2a2_qonnx.onnx and
                                         tfc_inputs.npy into DIR)

TFC: 784 → 64 → 64 → 64 → 10 (finn-examples' tfc-w1a1, tfc-w2a2), random weights, an 8-bit
input (FINN's binarizes its input) and an 8-bit output; w1a1: BipolarQuant weights and
activations; w2a2: 2-bit weights, ReLU and 2-bit unsigned activations.  Scales are powers of two,
so qonnx's float32 executor computes every sum exactly.
"""
import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

DOMAIN = "qonnx.custom_op.general"
TFC = (784, 64, 64, 64, 10)


class Builder:
    def __init__(self, rng, po2=True):
        self.rng, self.po2 = rng, po2
        self.nodes, self.inits, self.count = [], [], 0

    def name(self, kind):
        self.count += 1
        return f"{kind}{self.count}"

    def const(self, kind, array):
        name = self.name(kind)
        self.inits.append(numpy_helper.from_array(np.asarray(array), name))
        return name

    def scale(self, lo, hi, shape=()):
        """A float32 scale (one, or of ``shape``) between 2**lo and 2**hi."""
        e = self.rng.integers(lo, hi + 1, size=shape)
        s = np.ldexp(1.0, e)
        if not self.po2:
            s = s * self.rng.uniform(1.0, 2.0, size=shape)
        return np.asarray(s, np.float32)

    def quant(self, x, scale, bits, signed, narrow=0, mode="ROUND", zero_point=0.0):
        out = self.name("q")
        self.nodes.append(helper.make_node(
            "Quant", [x, self.const("scale", np.asarray(scale, np.float32)),
                      self.const("zeropt", np.asarray(zero_point, np.float32)),
                      self.const("bitwidth", np.asarray(float(bits), np.float32))],
            [out], name=self.name("Quant"), domain=DOMAIN, signed=int(signed), narrow=int(narrow),
            rounding_mode=mode))
        return out

    def bipolar(self, x, scale):
        out = self.name("bq")
        self.nodes.append(helper.make_node(
            "BipolarQuant", [x, self.const("scale", np.asarray(scale, np.float32))], [out],
            name=self.name("BipolarQuant"), domain=DOMAIN))
        return out

    def node(self, op, inputs, **attrs):
        out = self.name(op.lower())
        self.nodes.append(helper.make_node(op, inputs, [out], name=self.name(op), **attrs))
        return out

    def weight(self, shape, bits, per_channel, axis, mode="ROUND", narrow=1):
        """Quant(float weights), per output channel along ``axis`` or per tensor; BipolarQuant
        at ``bits`` 1."""
        sshape = [1] * len(shape)
        if per_channel:
            sshape[axis] = shape[axis]
        scale = self.scale(-6, -3, tuple(sshape)) if per_channel else self.scale(-6, -3)
        w = self.rng.normal(0, 1, size=shape).astype(np.float32) * scale * (1 << max(bits - 1, 0)) / 2
        w = self.const("w", w.astype(np.float32))
        return self.bipolar(w, scale) if bits == 1 else self.quant(w, scale, bits, True, narrow, mode)

    def activation(self, h, scale, kind):
        """Quant of a layer's float result by ``kind`` (act_kind), or BipolarQuant at 1 bit."""
        bits, signed, narrow, mode = kind
        return self.bipolar(h, scale) if bits == 1 else self.quant(h, scale, bits, signed, narrow, mode)

    def bias(self, n, x_scale, w_scale_max):
        """Float biases on the grid of x_scale × (the smallest weight scale)/8 (exact in the
        executor when scales are powers of two)."""
        step = np.float32(x_scale * w_scale_max / 8)
        return self.const("b", (self.rng.integers(-64, 64, size=n) * step).astype(np.float32))

    def model(self, x, x_shape, y, y_shape):
        graph = helper.make_graph(
            self.nodes, "qonnx", [helper.make_tensor_value_info(x, TensorProto.FLOAT, x_shape)],
            [helper.make_tensor_value_info(y, TensorProto.FLOAT, y_shape)], self.inits)
        m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13),
                                                    helper.make_opsetid(DOMAIN, 1)])
        m.ir_version = 8
        return m


def tfc(seed, bits, sizes=TFC, po2=True):
    """An MLP of ``bits``-bit weights and activations after an 8-bit Quant of the input: Gemm or
    MatMul (+ bias) per layer, then BipolarQuant (``bits`` 1) or Relu → unsigned Quant, the last
    layer's output an 8-bit Quant."""
    rng = np.random.default_rng(seed)
    b = Builder(rng, po2)
    x_scale = b.scale(-4, -2)
    h = b.quant("x", x_scale, 8, False)
    for k, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        last = k == len(sizes) - 2
        if rng.integers(0, 2):
            h = b.node("Gemm", [h, b.weight((n_out, n_in), bits, k > 0, 0), b.bias(n_out, x_scale, 2.0 ** -6)],
                       transB=1)
        else:
            h = b.node("Add", [b.node("MatMul", [h, b.weight((n_in, n_out), bits, k > 0, 1)]),
                               b.bias(n_out, x_scale, 2.0 ** -6)])
        x_scale = b.scale(-3, 0)
        if last:
            h = b.quant(h, x_scale, 8, True)
        elif bits == 1:
            h = b.bipolar(h, x_scale)
        else:
            h = b.quant(b.node("Relu", [h]), x_scale, bits, False)
    return b.model("x", [1, sizes[0]], h, [1, sizes[-1]])


def make_tfc(out_dir, bits, seed=0):
    """tfc_w{bits}a{bits}_qonnx.onnx and tfc_inputs.npy (64 frames in [0, 1)) in ``out_dir``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"tfc_w{bits}a{bits}_qonnx.onnx"
    onnx.save(tfc(seed, bits), path)
    np.save(out_dir / "tfc_inputs.npy",
            np.random.default_rng(seed + 1).uniform(size=(64, TFC[0])).astype(np.float32))
    return path


if __name__ == "__main__":
    out = sys.argv[1] if len(sys.argv) > 1 else "build/bench/models"
    print(make_tfc(out, 1), make_tfc(out, 2))
