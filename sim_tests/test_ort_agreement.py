"""Tier 0: the QGraph reference equals onnxruntime's fused integer path, bit for bit."""
import json

import numpy as np
import onnx
import pytest
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

import factory
from qloom import agreement
from qloom.mapper import frontend

FORMS = ["qdq", "qop", "qop_add", "matmulinteger"]


@pytest.mark.parametrize("name", ["digits_mlp_qdq.onnx", "digits_mlp_qop.onnx"])
def test_shipped_digits_models_on_all_test_digits(digits, name):
    graph = frontend.load_qgraph(digits / name)
    x = np.load(digits / "test_inputs.npy")
    result = agreement.compare(graph, digits / name, x)
    assert result.float_left == []
    assert result.frames == 540
    assert result.mismatches == 0
    labels = np.load(digits / "test_labels.npy")
    recorded = json.loads((digits / "accuracy.json").read_text())[f"quantized_{name.split('_')[-1][:-5]}"]
    assert (result.reference.argmax(axis=1) == labels).mean() == pytest.approx(recorded, abs=0)


def spec_for(seed):
    rng = np.random.default_rng(seed)
    form = FORMS[seed % 4]
    act = ("uint8", "int8")[(seed // 4) % 2]
    w_dtype = "uint8" if act == "uint8" and seed % 3 == 0 and form != "matmulinteger" else "int8"
    layers = 1 + seed % 4
    widths = [int(w) for w in rng.integers(1, 257, size=layers + 1)]
    if seed % 10 == 0:
        widths = [256] + [1] * layers           # extremes: 256 wide, 1 wide
    spec = factory.random_mlp(rng, layers=layers, widths=widths, act=act, w_dtype=w_dtype,
                              per_channel=seed % 2 == 0, pow2=seed % 3 == 1, saturate=seed % 5 == 0)
    return rng, form, spec


@pytest.mark.parametrize("seed", range(200))
def test_random_mlp_reference_equals_onnxruntime(seed, tmp_path):
    rng, form, spec = spec_for(seed)
    path = tmp_path / "mlp.onnx"
    onnx.save(factory.to_onnx(spec, form), path)
    graph = frontend.load_qgraph(path)
    x = factory.random_inputs(rng, spec, 64)
    result = agreement.compare(graph, path, x)
    assert result.float_left == [], "onnxruntime did not fuse; the comparison would be meaningless"
    assert result.mismatches == 0
    if seed % 5 == 0 and seed % 10:      # saturating output scales: the clamps must really be hit
        values = graph.run({graph.inputs[0]: x})
        last = [n for n in graph.nodes if n.output in values and type(n).__name__ == "Requant"][-1]
        codes = values[last.output]
        assert np.any(codes == last.code.qmin) or np.any(codes == last.code.qmax)


class Reader(CalibrationDataReader):
    def __init__(self, x):
        self.rows = iter([{"x": x[i:i + 1]} for i in range(len(x))])

    def get_next(self):
        return next(self.rows, None)


@pytest.mark.parametrize("fmt", [QuantFormat.QDQ, QuantFormat.QOperator])
@pytest.mark.parametrize("gemm", [True, False])
@pytest.mark.parametrize("per_channel", [True, False])
def test_models_quantized_by_onnxruntime(fmt, gemm, per_channel, tmp_path):
    """The forms quantize_static really produces: Gemm → QGemm, MatMul+Add → QLinearMatMul + QLinearAdd."""
    from onnx import TensorProto, helper, numpy_helper
    rng = np.random.default_rng(3)
    dims = [20, 16, 12, 5]
    nodes, inits, cur = [], [], "x"
    for i in range(3):
        inits += [numpy_helper.from_array(rng.normal(size=(dims[i], dims[i + 1])).astype(np.float32) * 0.4, f"w{i}"),
                  numpy_helper.from_array(rng.normal(size=dims[i + 1]).astype(np.float32) * 0.2, f"b{i}")]
        if gemm:
            nodes.append(helper.make_node("Gemm", [cur, f"w{i}", f"b{i}"], [f"h{i}"], name=f"fc{i}"))
        else:
            nodes += [helper.make_node("MatMul", [cur, f"w{i}"], [f"m{i}"], name=f"mm{i}"),
                      helper.make_node("Add", [f"m{i}", f"b{i}"], [f"h{i}"], name=f"add{i}")]
        cur = f"h{i}"
        if i < 2:
            nodes.append(helper.make_node("Relu", [cur], [f"r{i}"], name=f"relu{i}"))
            cur = f"r{i}"
    g = helper.make_graph(nodes, "m", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 20])],
                          [helper.make_tensor_value_info(cur, TensorProto.FLOAT, ["N", 5])], inits)
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, tmp_path / "f.onnx")
    calib = rng.normal(size=(64, 20)).astype(np.float32)
    quantize_static(str(tmp_path / "f.onnx"), str(tmp_path / "q.onnx"), Reader(calib), quant_format=fmt,
                    per_channel=per_channel, reduce_range=True, activation_type=QuantType.QUInt8,
                    weight_type=QuantType.QInt8)
    graph = frontend.load_qgraph(tmp_path / "q.onnx")
    x = (rng.normal(size=(500, 20)) * 1.5).astype(np.float32)
    result = agreement.compare(graph, tmp_path / "q.onnx", x)
    assert result.float_left == []
    assert result.mismatches == 0
