"""Convolutions (any kernel, stride, padding with the zero point, dilation, groups incl.
depthwise), MaxPool and conv→dense networks: qloom's integer reference equals onnxruntime,
0 mismatches, on models quantized by onnxruntime itself (QDQ and QOperator)."""

import numpy as np
import pytest

from conv_factory import quantize, random_cnn
from qloom.mapper import frontend, ort_check, qgraph as qg
from test_compile_cli import qloom

CASES = [(seed, fmt, act, convs, dense) for seed in range(12) for fmt, act in
         (("QDQ", "uint8"), ("QOperator", "int8"))
         for convs, dense in ((1, False), (2, seed % 2 == 0))]


@pytest.mark.parametrize("seed,fmt,act,convs,dense", CASES)
def test_random_cnn_equals_onnxruntime(tmp_path, seed, fmt, act, convs, dense):
    rng = np.random.default_rng(1000 + seed * 7 + convs)
    model, shape, infos = random_cnn(rng, convs, dense)
    x = rng.normal(size=(48, *shape)).astype(np.float32)
    path = quantize(model, tmp_path / "q.onnx", x[:24], fmt, act)
    assert ort_check.float_products_left(path) == []          # ORT runs it on its integer path
    graph = frontend.load_qgraph(path)
    assert len(graph.layers(qg.Conv)) == convs
    got = next(iter(graph.reference({graph.inputs[0]: x}).values()))
    want = ort_check.run(path, x)[0]
    assert got.shape == want.shape
    assert int(np.sum(got != want)) == 0


@pytest.mark.parametrize("seed,fmt,act", [(s, *fa) for s in range(3) for fa in
                                          (("QDQ", "uint8"), ("QDQ", "int8"), ("QOperator", "uint8"),
                                           ("QOperator", "int8"))])
def test_global_average_pool_equals_onnxruntime(tmp_path, seed, fmt, act):
    """GlobalAveragePool (QDQ → onnxruntime's QLinearGlobalAveragePool, and the contrib op):
    the integer sum and one ScaleRound requantization."""
    rng = np.random.default_rng(700 + seed)
    model, shape, _ = random_cnn(rng, 1 + seed % 2, dense=seed != 1, gap=True)
    x = (rng.normal(size=(64, *shape)) * (1 + seed)).astype(np.float32)
    path = quantize(model, tmp_path / "q.onnx", x[:32], fmt, act)
    assert ort_check.float_products_left(path) == []
    graph = frontend.load_qgraph(path)
    assert len(graph.layers(qg.SumPool)) == 1
    got = next(iter(graph.reference({graph.inputs[0]: x}).values()))
    want = ort_check.run(path, x)[0]
    assert int(np.sum(got != want.reshape(got.shape))) == 0


AVERAGE_POOLS = [dict(kernel_shape=(2, 2), strides=(2, 2)),
                 dict(kernel_shape=(3, 3), strides=(1, 1), pads=(1, 1, 1, 1), count_include_pad=1),
                 dict(kernel_shape=(3, 2), strides=(2, 1), pads=(1, 0, 1, 0), count_include_pad=1),
                 dict(kernel_shape=(1, 3), strides=(1, 2)),
                 dict(kernel_shape="plane")]


@pytest.mark.parametrize("seed,fmt,act", [(s, *fa) for s in range(5) for fa in
                                          (("QDQ", "uint8"), ("QDQ", "int8"), ("QOperator", "uint8"),
                                           ("QOperator", "int8"))])
def test_average_pool_equals_onnxruntime(tmp_path, seed, fmt, act):
    """AveragePool (QDQ → onnxruntime's QLinearAveragePool, and the contrib op): the dequantized
    codes summed in float32 in window order, divided by the window size, quantized — modelled
    as integers (FloatSumPool + FloatMean); a window over the whole plane is the global pool."""
    rng = np.random.default_rng(800 + seed)
    pool = AVERAGE_POOLS[seed]
    model, shape, _ = random_cnn(rng, 1, dense=seed % 2 == 0, avgpool=pool)
    x = (rng.normal(size=(64, *shape)) * (1 + seed)).astype(np.float32)
    path = quantize(model, tmp_path / "q.onnx", x[:32], fmt, act)
    graph = frontend.load_qgraph(path)
    kind = qg.SumPool if pool["kernel_shape"] == "plane" else qg.FloatSumPool
    assert len(graph.layers(kind)) == 1
    got = next(iter(graph.reference({graph.inputs[0]: x}).values()))
    want = ort_check.run(path, x)[0]
    assert int(np.sum(got != want.reshape(got.shape))) == 0


@pytest.mark.parametrize("seed,fmt,act", [(0, "QDQ", "uint8"), (1, "QOperator", "int8")])
def test_nhwc_transpose_before_dense_equals_onnxruntime_and_costs_no_hardware(tmp_path, seed, fmt, act):
    """Transpose(0, 2, 3, 1) → Reshape → Gemm (a TensorFlow export): the stream is already
    channels-last, so the dense layer reads it in order (its columns are not permuted)."""
    from qloom import compile as qc
    from qloom.mapper import dataflow as df
    rng = np.random.default_rng(40 + seed)
    model, shape, _ = random_cnn(rng, 1, True, nhwc=True)
    x = rng.normal(size=(48, *shape)).astype(np.float32)
    path = quantize(model, tmp_path / "q.onnx", x[:24], fmt, act)
    graph = frontend.load_qgraph(path)
    assert len(graph.layers(qg.Transpose)) == 1
    got = next(iter(graph.reference({graph.inputs[0]: x}).values()))
    assert int(np.sum(got != ort_check.run(path, x)[0].reshape(got.shape))) == 0
    design = qc.compile_model(path)
    mvu = next(k for k in design.dataflow.kernels if isinstance(k, df.MVUKernel) and k.dense.name == "dense0")
    assert np.array_equal(mvu.dense.weight, graph.layers(qg.Dense)[0].weight)
    codes = graph.nodes[0].reference(x[:3])
    run = qc.run_amaranth(design, codes)
    assert np.array_equal(run.codes.reshape(-1), graph.run({graph.inputs[0]: x[:3]})[design.last_requant.output].reshape(-1))


def conv_integer_model(rng, c=3, o=5, k=3, h=7, w=6):
    """x → QuantizeLinear → ConvInteger → Cast → Mul(scale per channel) → Add(bias) → Relu →
    QuantizeLinear → DequantizeLinear: the integer-conv form hand-written exporters produce."""
    from onnx import TensorProto, helper, numpy_helper
    weight = rng.integers(-64, 65, size=(o, c, k, k)).astype(np.int8)       # within ±64: every CPU agrees
    scale = (rng.uniform(0.5, 2.0, size=(1, o, 1, 1)) * 1e-3).astype(np.float32)
    bias = (rng.normal(size=(1, o, 1, 1)) * 0.2).astype(np.float32)
    inits = [numpy_helper.from_array(np.float32(1 / 64), "xs"), numpy_helper.from_array(np.uint8(100), "xz"),
             numpy_helper.from_array(weight, "w"), numpy_helper.from_array(scale, "ws"),
             numpy_helper.from_array(bias, "b"), numpy_helper.from_array(np.float32(0.02), "ys"),
             numpy_helper.from_array(np.uint8(0), "yz")]
    nodes = [helper.make_node("QuantizeLinear", ["x", "xs", "xz"], ["xq"]),
             helper.make_node("ConvInteger", ["xq", "w", "xz"], ["acc"], name="conv_int", kernel_shape=[k, k],
                              pads=[1, 0, 1, 2], strides=[1, 2]),
             helper.make_node("Cast", ["acc"], ["accf"], to=TensorProto.FLOAT),
             helper.make_node("Mul", ["accf", "ws"], ["scaled"]), helper.make_node("Add", ["scaled", "b"], ["biased"]),
             helper.make_node("Relu", ["biased"], ["r"]), helper.make_node("QuantizeLinear", ["r", "ys", "yz"], ["yq"]),
             helper.make_node("DequantizeLinear", ["yq", "ys", "yz"], ["y"])]
    graph = helper.make_graph(nodes, "conv_integer", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, c, h, w])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, o, h, (w + 2 - k) // 2 + 1])],
                              inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model, (c, h, w)


def test_conv_integer_chain_equals_onnxruntime_in_hardware(tmp_path):
    import onnx
    from qloom import compile as qc
    rng = np.random.default_rng(3)
    model, shape = conv_integer_model(rng)
    path = tmp_path / "ci.onnx"
    onnx.save(model, path)
    graph = frontend.load_qgraph(path)
    assert [type(n).__name__ for n in graph.nodes][1:3] == ["Conv", "Requant"]
    x = (rng.normal(size=(64, *shape)) * 1.5).astype(np.float32)
    got = next(iter(graph.reference({graph.inputs[0]: x}).values()))
    assert int(np.sum(got != ort_check.run(path, x)[0].reshape(got.shape))) == 0
    design = qc.compile_model(path)
    codes = graph.nodes[0].reference(x[:2])
    want = graph.run({graph.inputs[0]: x[:2]})[design.last_requant.output]
    assert np.array_equal(qc.run_amaranth(design, codes).codes.reshape(want.shape), want)


def test_the_random_layers_cover_the_space():
    seen = {"k": set(), "stride": set(), "pad": set(), "dilation": set(), "depthwise": set()}
    for seed, _, _, convs, dense in CASES:
        for info in random_cnn(np.random.default_rng(1000 + seed * 7 + convs), convs, dense)[2]:
            for key in seen:
                seen[key].add(info[key])
    assert seen == {"k": {1, 2, 3, 4, 5}, "stride": {1, 2}, "pad": {0, 1, 2}, "dilation": {1, 2},
                    "depthwise": {False, True}}


def test_compile_and_check_a_cnn(tmp_path):
    import json
    rng = np.random.default_rng(5)
    model, shape, _ = random_cnn(rng, 1, True)
    path = quantize(model, tmp_path / "q.onnx", rng.normal(size=(8, *shape)).astype(np.float32))
    out = tmp_path / "out"
    r = qloom("compile", str(path), "-o", str(out))
    assert r.returncode == 0, r.stderr
    design = json.loads((out / "design.json").read_text())
    kinds = [k["kind"] for k in design["kernels"]]
    assert kinds[0] == "Window" and "MVU" in kinds and design["input"]["shape"] == list(shape)
    assert design["latency_exact"] is False
    r = qloom("check", str(path), "--count", "50")
    assert r.returncode == 0 and "0 mismatches" in r.stdout


@pytest.mark.parametrize("seed", range(10))
def test_random_residual_block_equals_onnxruntime(tmp_path, seed):
    """A residual add of two quantized tensors (QDQ Add / QLinearAdd), as onnxruntime's kernel computes it."""
    from conv_factory import random_residual
    rng = np.random.default_rng(300 + seed)
    model, shape = random_residual(rng)
    x = rng.normal(size=(40, *shape)).astype(np.float32)
    fmt, act = ("QDQ", "QOperator")[seed % 2], ("uint8", "int8")[(seed // 2) % 2]
    path = quantize(model, tmp_path / "q.onnx", x[:20], fmt, act)
    assert ort_check.float_products_left(path) == []
    graph = frontend.load_qgraph(path)
    assert len(graph.layers(qg.Add)) == 1
    got = next(iter(graph.reference({graph.inputs[0]: x}).values()))
    assert int(np.sum(got != ort_check.run(path, x)[0])) == 0
    r = qloom("inspect", str(path))
    assert r.returncode == 0 and "add0" in r.stdout and ">> " in r.stdout
