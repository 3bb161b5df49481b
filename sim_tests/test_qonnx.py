"""QONNX models (Brevitas's export_qonnx patterns): the reference against qonnx's executor, the
exact QONNX semantics (numeric, requant_targets.ExactQuant), refusals by message, `qloom check`
with qonnx as the oracle, and whole QONNX networks with low-bit codes in RTL."""
import math
from fractions import Fraction

import numpy as np
import onnx
import pytest
from onnx import helper

import qonnx_factory as qf
from bench import qonnx_models
from qloom import cli, compile as qc, simulate
from qloom.mapper import numeric, qgraph as qg
from qloom.mapper.errors import NotQuantizedError, UnsupportedError
from qloom.mapper.frontend import interpreter
from qloom.mapper.requant_targets import ExactQuant


def exact_round(v, mode):
    """QONNX's rounding of the Fraction ``v``, written from the spec's definitions."""
    s, a = (v > 0) - (v < 0), abs(v)
    return {"ROUND": round(v), "HALF_EVEN": round(v), "CEIL": math.ceil(v),
            "FLOOR": math.floor(v), "UP": s * math.ceil(a), "DOWN": s * math.floor(a),
            "HALF_UP": s * math.floor(a + Fraction(1, 2)),
            "HALF_DOWN": s * math.ceil(a - Fraction(1, 2))}[mode]


@pytest.mark.parametrize("mode", numeric.ROUNDING_MODES)
def test_integer_rounding_is_the_spec_on_every_residue(mode):
    for d in (1, 2, 3, 4, 7, 10):
        n = np.arange(-41, 42)
        want = [exact_round(Fraction(int(k), d), mode) for k in n]
        assert numeric.round_ratio(n, d, mode).tolist() == want
        assert np.asarray(numeric.round_ratio(n.astype(object), d, mode), np.int64).tolist() == want
        assert numeric.round_float(n / d, mode).tolist() == want


@pytest.mark.parametrize("mode", numeric.ROUNDING_MODES)
def test_int_quant_is_qonnx_int_quant(mode):
    """Constants and the input are quantized as Quant's float32 definition does: qonnx's own
    function on ties, saturation, narrow ranges and zero points."""
    from qonnx.custom_op.general.intquant import int_quant
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(0, 8, 500), np.arange(-20, 20) / 2 + 0.0,
                        [1e9, -1e9, 0.0]]).astype(np.float32)
    for bits, signed, narrow in ((2, True, True), (4, False, False), (8, True, False),
                                 (3, False, True)):
        for scale, zp in ((0.5, 0.0), (0.25, 1.0), (0.37, -2.0)):
            lo = -(1 << (bits - 1)) + narrow if signed else 0
            hi = (1 << (bits - 1)) - 1 if signed else (1 << bits) - 1 - narrow
            s, z = np.float32(scale), np.float32(zp)
            want = int_quant(x, s, z, np.float32(bits), signed, narrow, mode) / s + z
            got = numeric.int_quant(x, s, z, lo, hi, mode)
            np.testing.assert_array_equal(got, np.rint(want).astype(np.int64))


def test_exact_quant_is_exact_where_int64_would_overflow():
    """Far from float32's exactness: a tiny output scale and a huge accumulator scale."""
    t = ExactQuant.of([Fraction(3, 7 * 2 ** 40)], [Fraction(-5, 3)], Fraction(1, 2 ** 70), 3,
                      False, "HALF_UP", -(2 ** 15), 2 ** 15 - 1)
    acc = np.array([-2 ** 31, -7, 0, 1, 12345, 2 ** 31 - 1])
    want = [min(max(exact_round(a * Fraction(3, 7 * 2 ** 40) * 2 ** 70 - Fraction(5, 3) * 2 ** 70
                                + 3, "HALF_UP"), -(2 ** 15)), 2 ** 15 - 1) for a in acc.tolist()]
    assert t.first_stage(acc, 0).tolist() == want
    t = ExactQuant.of([Fraction(1, 3)], [Fraction(1, 6)], Fraction(1), 0, True, "ROUND", 0, 255)
    assert t.first_stage(np.arange(-3, 4), 0).tolist() == [0, 0, 0, 0, 0, 1, 1]
    assert t.first_stage(np.array([1, 1]), np.array([0, 0])).tolist() == [0, 0]   # per channel


def reference(path, x):
    g = interpreter.load_qgraph(path)
    return g, g.reference({g.inputs[0]: x})[g.outputs[0]]


@pytest.mark.parametrize("chunk", range(4))
def test_reference_equals_qonnx_executor_on_random_models(tmp_path, chunk):
    """200 random QONNX MLPs and CNNs (1–8-bit codes, signed or not, narrow, per-channel and
    per-tensor weights, every rounding mode, float biases): 0 mismatches with qonnx's executor
    (power-of-two scales: its float32 holds every sum exactly)."""
    modes, bits = set(), set()
    for seed in range(chunk * 25, chunk * 25 + 25):
        for kind in ("mlp", "cnn"):
            model = qf.mlp(seed) if kind == "mlp" else qf.cnn(seed)
            path = qf.save(model, tmp_path / f"{kind}{seed}.onnx")
            x = np.random.default_rng(seed).normal(0, 2, (6, 16) if kind == "mlp" else
                                                   (3, 2, 6, 6)).astype(np.float32)
            g, ref = reference(path, x)
            want = qf.execute(model, x)
            np.testing.assert_array_equal(ref.reshape(want.shape), want, err_msg=f"{kind} {seed}")
            modes |= {t.mode for t in (n.target for n in g.nodes if isinstance(n, qg.Requant))}
            bits |= {n.code.bits for n in g.nodes if isinstance(n, qg.Requant)}
    assert len(modes) >= 6 and len(bits) >= 5


def test_reference_equals_qonnx_executor_on_random_bipolar_models(tmp_path):
    """60 random QONNX MLPs and CNNs with BipolarQuant weights (per tensor and per channel) and
    activations beside 2–8-bit Quant ones: 0 mismatches with qonnx's executor, and the bipolar
    layers' codes are ±1."""
    bipolar_layers = bipolar_weights = 0
    for seed in range(30):
        for kind in ("mlp", "cnn"):
            model = qf.mlp(seed, bipolar=True) if kind == "mlp" else qf.cnn(seed, bipolar=True)
            path = qf.save(model, tmp_path / f"{kind}{seed}.onnx")
            x = np.random.default_rng(seed).normal(0, 2, (6, 16) if kind == "mlp" else
                                                   (3, 2, 6, 6)).astype(np.float32)
            g, ref = reference(path, x)
            np.testing.assert_array_equal(ref.reshape(-1), qf.execute(model, x).reshape(-1),
                                          err_msg=f"{kind} {seed}")
            for n in g.nodes:
                if isinstance(n, qg.Requant) and n.target.mode == numeric.BIPOLAR:
                    bipolar_layers += 1
                    codes = g.run({g.inputs[0]: x})[n.output]
                    assert set(np.unique(codes)) <= {-1, 1}
            inits = {t.name for t in model.graph.initializer}
            bipolar_weights += sum(n.op_type == "BipolarQuant" and n.input[0] in inits
                                   for n in model.graph.node)
    assert bipolar_layers >= 10 and bipolar_weights >= 20, (bipolar_layers, bipolar_weights)


def test_float_carriers_differ_from_the_exact_result_by_rounding_only(tmp_path):
    """With arbitrary float scales, qonnx's float32 sums round; qloom computes the QONNX spec's
    exact values: the two differ on few outputs, by few codes."""
    total = bad = 0
    for seed in range(12):
        model = qf.mlp(seed, po2=False)
        x = np.random.default_rng(seed).normal(0, 2, (16, 16)).astype(np.float32)
        g, ref = reference(qf.save(model, tmp_path / f"m{seed}.onnx"), x)
        want = qf.execute(model, x)
        step = g.producer(g.outputs[0]).scale
        diff = np.abs(np.rint((ref.reshape(want.shape) - want) / np.float32(step)))
        total, bad = total + want.size, bad + int((diff > 0).sum())
        assert diff.max() <= 2
    assert bad <= total // 100


def q_model(nodes, inits, x_shape=(1, 4), y_shape=(1, 3)):
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", 1, list(x_shape))],
                              [helper.make_tensor_value_info("y", 1, list(y_shape))], inits)
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13),
                                                helper.make_opsetid(qonnx_models.DOMAIN, 1)])
    m.ir_version = 8
    return m


def one_layer(rng, act=None, weight=None, x_quant=None, between=None):
    """Quant(x) → MatMul(Quant(W)) → [between] → Quant → y, with keyword overrides of the
    Quants' (scale, zero point, bits, signed, narrow, mode)."""
    b = qf.Builder(rng)
    xq = dict(scale=0.25, bits=8, signed=True, narrow=0, mode="ROUND", zero_point=0.0)
    xq.update(x_quant or {})
    h = b.quant("x", **xq)
    wq = dict(scale=np.float32(0.125), bits=4, signed=True, narrow=1, mode="ROUND")
    wq.update(weight or {})
    w = b.quant(b.const("w", rng.normal(0, 0.5, (4, 3)).astype(np.float32)), **wq)
    h = b.node("MatMul", [h, w])
    if between:
        h = between(b, h)
    aq = dict(scale=0.5, bits=4, signed=False, narrow=0, mode="ROUND", zero_point=0.0)
    aq.update(act or {})
    b.quant(h, **aq)
    b.nodes[-1].output[0] = "y"
    return q_model(b.nodes, b.inits)


REFUSED = [
    (dict(act=dict(mode="STOCHASTIC")), UnsupportedError,
     r"Quant node 'Quant\d+'.*rounding_mode 'STOCHASTIC' is not one the QONNX spec defines"),
    (dict(act=dict(bits=17)), UnsupportedError,
     r"bit width \[17.0\] is not a whole number of bits from 1 to 16"),
    (dict(act=dict(bits=3.5)), UnsupportedError, r"bit width \[3.5\] is not a whole number"),
    (dict(act=dict(bits=1, signed=True)), UnsupportedError,
     r"a signed 1-bit Quant is a bipolar \(±1\) quantizer; export it as BipolarQuant"),
    (dict(act=dict(zero_point=0.5)), UnsupportedError, r"zero point \[0.5\] is not a whole number"),
    (dict(act=dict(scale=np.float32([0.5, 0.25, 0.5]))), UnsupportedError,
     r"per-channel quantization of activations is not supported"),
    (dict(act=dict(scale=-1.0)), UnsupportedError, r"the scale.*is negative"),
    (dict(weight=dict(bits=12)), UnsupportedError,
     r"MatMul node 'MatMul\d+'.*the weights 'w\d+' are int16 codes"),
    (dict(between=lambda b, h: b.node("Sigmoid", [h])), UnsupportedError,
     r"Sigmoid node 'Sigmoid\d+'.*operator Sigmoid is not supported"),
    (dict(between=lambda b, h: b.quant(h, 0.5, 8, True)), UnsupportedError,
     r"Quant node 'Quant\d+'.*quantizes a value that is not the float input, a constant or the "
     r"float result of a MatMul/Gemm/Conv"),
    (dict(between=lambda b, h: b.node("Relu", [b.node("Relu", [h])])), UnsupportedError,
     r"Relu node 'Relu\d+'.*Relu is supported on the float result of a MatMul/Gemm/Conv"),
    (dict(between=lambda b, h: b.node("Add", [h, h])), UnsupportedError,
     r"Add node 'Add\d+'.*qloom maps Add as the bias of a MatMul/Gemm/Conv"),
    (dict(between=lambda b, h: b.bipolar(b.quant(h, 0.5, 8, True), 0.5)), UnsupportedError,
     r"BipolarQuant node 'BipolarQuant\d+'.*supported on a weight or on the float result of a "
     r"MatMul/Gemm/Conv .*quantize the float input with a Quant"),
    (dict(between=lambda b, h: b.bipolar(h, np.float32([0.5, 0.25, 0.5]))), UnsupportedError,
     r"BipolarQuant node 'BipolarQuant\d+'.*per-channel quantization of activations"),
]


@pytest.mark.parametrize("kw, error, message", REFUSED,
                         ids=[m.split(".*")[-1][:40] for _, _, m in REFUSED])
def test_unsupported_qonnx_is_refused_by_node(tmp_path, kw, error, message):
    path = qf.save(one_layer(np.random.default_rng(0), **kw), tmp_path / "m.onnx")
    with pytest.raises(error, match=message):
        interpreter.load_qgraph(path)


def test_float_weights_and_other_qonnx_ops_are_refused_by_node(tmp_path):
    b = qf.Builder(np.random.default_rng(0))
    h = b.quant("x", 0.25, 8, True)
    h = b.node("MatMul", [h, b.const("w", np.ones((4, 3), np.float32))])
    b.quant(h, 0.5, 4, False)
    b.nodes[-1].output[0] = "y"
    with pytest.raises(NotQuantizedError, match=r"MatMul node 'MatMul\d+'.*the weights are float; "
                                                r"quantize them with a Quant node"):
        interpreter.load_qgraph(qf.save(q_model(b.nodes, b.inits), tmp_path / "f.onnx"))
    model = one_layer(np.random.default_rng(0))
    trunc = model.graph.node[-1]
    trunc.op_type = "Trunc"
    with pytest.raises(UnsupportedError, match=r"Trunc node 'Quant\d+'.*operator "
                                                r"qonnx.custom_op.general.Trunc is not supported"):
        interpreter.load_qgraph(qf.save(model, tmp_path / "t.onnx"))
    b = qf.Builder(np.random.default_rng(0))
    b.node("Relu", ["x"])
    b.nodes[-1].output[0] = "y"
    model = q_model(b.nodes, b.inits, (1, 4), (1, 4))
    with pytest.raises(NotQuantizedError, match="floating-point model"):
        interpreter.load_qgraph(qf.save(model, tmp_path / "r.onnx"))


def test_qloom_check_compares_a_qonnx_model_with_qonnx(tmp_path, capsys):
    path = qf.save(qf.cnn(4), tmp_path / "cnn.onnx")
    assert cli.main(["check", str(path), "--count", "40"]) == 0
    out = capsys.readouterr().out
    assert "0 mismatches between qloom's integer reference and qonnx's executor" in " ".join(out.split())
    assert "int8 weights exceed" not in out      # onnxruntime's CPU note is not for QONNX


BREVITAS = [("digits_mlp_w2a2_qonnx.onnx", (64,)), ("digits_cnn_w4a4_qonnx.onnx", (1, 8, 8)),
            ("digits_mlp_w1a1_qonnx.onnx", (64,))]


@pytest.mark.parametrize("name, shape", BREVITAS)
def test_shipped_brevitas_models_equal_qonnx_and_their_accuracy(digits, name, shape):
    """The Brevitas exports (make_brevitas.py) on 200 test digits: the reference equals qonnx's
    executor code for code, and gives the accuracy the script recorded on all 540."""
    import json
    x = np.load(digits / "test_inputs.npy").reshape(-1, *shape)
    labels = np.load(digits / "test_labels.npy")
    model = onnx.load(str(digits / name))
    g, ref = reference(digits / name, x)
    np.testing.assert_array_equal(ref[:200].reshape(-1, 10), qf.execute(model, x[:200]))
    recorded = json.loads((digits / "accuracy_brevitas.json").read_text())[name[:-5]]
    assert float((ref.argmax(-1) == labels).mean()) == recorded["qonnx_executor"]
    requants = [n for n in g.nodes if isinstance(n, qg.Requant)]
    assert {n.code.bits for n in requants} == {"w1a1": {2, 8}, "w2a2": {2, 8}, "w4a4": {4, 8}}[name.split("_")[2]]
    assert any(n.target.mode == numeric.BIPOLAR for n in requants) == ("w1a1" in name)


@pytest.mark.parametrize("name, shape, simulator", [
    (*model, simulator) for model in BREVITAS for simulator in ("verilator", "icarus")])
def test_shipped_brevitas_models_in_rtl(digits, name, shape, simulator):
    if not simulate.available(simulator):
        pytest.fail(f"{simulator} is not installed; `make venv` installs it")
    exact_in_rtl(digits / name, np.load(digits / "test_inputs.npy")[:10].reshape(-1, *shape), simulator)


def exact_in_rtl(path, x, simulator):
    """The emitted Verilog of the model at ``path`` on frames ``x``, under idle input cycles and
    backpressure: equal to the reference and to qonnx's executor; returns the QGraph."""
    design = qc.compile_model(path)
    g = design.graph
    want = g.run({g.inputs[0]: x})[design.output_codes]
    run = qc.run_hardware(design, g.nodes[0].reference(x), simulator=simulator, gap=0.2, stall=0.3)
    np.testing.assert_array_equal(run.codes.reshape(want.shape), want)
    out = g.producer(g.outputs[0])
    got = numeric.dequantize_linear(run.codes, out.scale, out.zero_point)
    oracle = qf.execute(onnx.load(str(path)), x)
    np.testing.assert_array_equal(got.reshape(oracle.shape), oracle)
    return g


def random_frames(shape):
    return np.random.default_rng(1).normal(0, 2, shape).astype(np.float32)


def test_qonnx_networks_with_low_bit_codes_in_rtl(tmp_path):
    """A QONNX MLP and CNN with 2–8-bit codes through the emitted Verilog on Verilator."""
    for model, shape in ((qf.mlp(3, sizes=(16, 12, 8, 6)), (12, 16)), (qf.cnn(4), (3, 2, 6, 6))):
        g = exact_in_rtl(qf.save(model, tmp_path / "m.onnx"), random_frames(shape), "verilator")
        assert any(n.code.bits < 8 for n in g.nodes if isinstance(n, qg.Requant))


@pytest.mark.parametrize("simulator", ["verilator", "icarus"])
def test_bipolar_networks_in_rtl(tmp_path, simulator):
    """A binarized MLP (TFC-w1a1-shaped: bipolar weights and activations after an 8-bit input)
    and a CNN with a bipolar conv layer, on both simulators."""
    if not simulate.available(simulator):
        pytest.fail(f"{simulator} is not installed; `make venv` installs it")
    for model, shape in ((qonnx_models.tfc(1, 1, sizes=(16, 12, 8, 6)), (8, 16)), (qf.cnn(2, bipolar=True), (2, 2, 6, 6))):
        g = exact_in_rtl(qf.save(model, tmp_path / "m.onnx"), random_frames(shape), simulator)
        assert any(n.target.mode == numeric.BIPOLAR for n in g.nodes if isinstance(n, qg.Requant))


def test_executor_that_fails_is_said(tmp_path, monkeypatch):
    from qloom.mapper import qonnx_check
    model = one_layer(np.random.default_rng(0))
    model.graph.node[-1].domain = qonnx_models.DOMAIN
    path = qf.save(model, tmp_path / "m.onnx")
    import qonnx.core.onnx_exec as ex

    def broken(*a, **k):
        raise RuntimeError("boom")
    monkeypatch.setattr(ex, "execute_onnx", broken)
    with pytest.raises(qonnx_check.QonnxError, match=r"qonnx's executor cannot run .*m.onnx: boom"):
        qonnx_check.run(path, np.zeros((1, 4), np.float32))
    assert onnx.load(str(path)).graph.node[0].domain == qonnx_models.DOMAIN


def test_a_float_output_after_the_last_quant_is_refused_with_the_fix(tmp_path):
    model = one_layer(np.random.default_rng(0))
    del model.graph.node[-1]                       # the output Quant: y is the MatMul's float
    model.graph.node[-1].output[0] = "y"
    with pytest.raises(UnsupportedError, match=r"MatMul node 'MatMul\d+'.*graph output 'y' is its "
                                               r"float result, with no Quant after it.*end the "
                                               r"model with a Quant"):
        interpreter.load_qgraph(qf.save(model, tmp_path / "m.onnx"))


def test_a_float_input_to_a_qonnx_layer_is_refused_with_the_fix(tmp_path):
    b = qf.Builder(np.random.default_rng(0))
    w = b.weight((4, 3), 4, False, 1)
    b.quant(b.node("MatMul", ["x", w]), 0.5, 4, False)
    b.nodes[-1].output[0] = "y"
    with pytest.raises(NotQuantizedError, match=r"MatMul node 'MatMul\d+'.*its input is float; "
                                                r"quantize it with a Quant node"):
        interpreter.load_qgraph(qf.save(q_model(b.nodes, b.inits), tmp_path / "m.onnx"))
