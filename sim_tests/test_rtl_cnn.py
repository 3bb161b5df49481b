"""Tier 2: CNNs (window generators, MVUs, max pooling) as emitted Verilog in cocotb on
Verilator and Icarus, under random idle cycles and backpressure, bit-exact against the
reference and onnxruntime; and the conv MVU kept busy."""
import numpy as np
import pytest

from conv_factory import quantize, random_cnn
from test_rtl_mlp import check, need

SIMULATORS = ["verilator", "icarus"]


@pytest.mark.parametrize("simulator", SIMULATORS)
def test_shipped_digits_cnn_in_rtl(digits, simulator):
    need(simulator)
    x = np.load(digits / "test_inputs.npy")[:(24 if simulator == "verilator" else 4)].reshape(-1, 1, 8, 8)
    check(digits / "digits_cnn_qdq.onnx", x, simulator)


@pytest.mark.parametrize("simulator", SIMULATORS)
def test_shipped_digits_resnet_in_rtl(digits, simulator):
    """The residual CNN (depthwise unit, fork/join with a computed skip FIFO, global average pool):
    bit-exact under backpressure, and (Verilator, no stalls) at the modelled rate."""
    need(simulator)
    x = np.load(digits / "test_inputs.npy")[:(16 if simulator == "verilator" else 3)].reshape(-1, 1, 8, 8)
    design, _ = check(digits / "digits_resnet_qdq.onnx", x, simulator)
    kinds = {type(k).__name__ for k in design.dataflow.all_kernels}
    assert {"DepthwiseKernel", "ResidualKernel", "SumPoolKernel"} <= kinds
    # its first conv (1 channel, 5 × 5) takes a kernel row a beat: simd 5, five taps a beat
    first = next(k for k in design.dataflow.all_kernels if k.kind == "Window")
    assert (first.lanes, first.taps, design.dataflow.folding["conv0"]["simd"]) == (1, 5, 5)
    # the global sum's 32 sums leave back to back into a full-rate requantizer, the cheaper
    # circuit here (a serial one would lag them)
    after_sum = next(k for k in design.dataflow.all_kernels if k.name == "requant_requant3")
    assert not after_sum.serial and after_sum.pe == 1
    if simulator == "verilator":             # the same build, without stalls
        _, run = check(digits / "digits_resnet_qdq.onnx", x[:6], simulator, gap=0, stall=0)
        d = design.dataflow
        assert run.cycles_per_inference == d.cycles_per_frame
        assert abs(run.latency - d.latency) <= 3     # the beat model (dataflow.beat_times)


@pytest.mark.parametrize("simulator", SIMULATORS)
def test_registered_dsp_products_inside_a_residual_branch_in_rtl(digits, tmp_path, simulator):
    """The residual CNN folded for the ECP5-25F's 28 DSPs (as test_synth has it): the first
    conv's, the depthwise unit's and the pointwise conv's products (two of them inside the
    branch) instantiated as MULT18X18D with their registers, the dense layer's in LUTs:
    bit-exact under backpressure, and (Verilator, no stalls) at the modelled rate and latency."""
    need(simulator)
    fold = tmp_path / "fold.json"
    fold.write_text('{"conv0": {"pe": 8, "simd": 1}, "conv1": {"pe": 4, "simd": 1}, "conv2": {"pe": 1, "simd": 16}, '
                    '"dense0": {"pe": 1, "simd": 1}}')
    x = np.load(digits / "test_inputs.npy")[:(8 if simulator == "verilator" else 2)].reshape(-1, 1, 8, 8)
    design, _ = check(digits / "digits_resnet_qdq.onnx", x, simulator, fold=fold, target="ecp5-25k")
    cells = {k.name: k.dsp_cell for k in design.dataflow.all_kernels if hasattr(k, "dsp_cell")}
    assert cells == {"mvu_conv0": "MULT18X18D", "dw_conv1": "MULT18X18D", "mvu_conv2": "MULT18X18D",
                     "mvu_dense0": None}
    assert design.verilog.count("MULT18X18D #(") == 28
    if simulator == "verilator":
        _, run = check(digits / "digits_resnet_qdq.onnx", x[:6], simulator, fold=fold, target="ecp5-25k",
                       gap=0, stall=0)
        d = design.dataflow
        assert run.cycles_per_inference == d.cycles_per_frame
        assert abs(run.latency - d.latency) <= 3


@pytest.mark.parametrize("simulator", SIMULATORS)
def test_whole_windows_a_beat_in_rtl(digits, tmp_path, simulator):
    """The digits CNN with its first conv taking a whole 3 × 3 window a beat (simd 9 over one
    channel: nine copies of the line buffer) and its second four channels × a kernel row:
    bit-exact under backpressure, and (Verilator, no stalls) at the modelled rate and latency."""
    need(simulator)
    fold = tmp_path / "fold.json"
    fold.write_text('{"conv0": {"pe": 8, "simd": 9}, "conv1": {"pe": 4, "simd": 24}, "dense0": {"pe": 10, "simd": 4}}')
    x = np.load(digits / "test_inputs.npy")[:(12 if simulator == "verilator" else 3)].reshape(-1, 1, 8, 8)
    design, _ = check(digits / "digits_cnn_qdq.onnx", x, simulator, fold=fold)
    windows = [(k.lanes, k.taps) for k in design.dataflow.all_kernels if k.kind == "Window"]
    assert windows == [(1, 9), (8, 1), (8, 3)]
    if simulator == "verilator":
        _, run = check(digits / "digits_cnn_qdq.onnx", x[:6], simulator, fold=fold, gap=0, stall=0)
        d = design.dataflow
        assert run.cycles_per_inference == d.cycles_per_frame
        assert abs(run.latency - d.latency) <= 3


@pytest.mark.parametrize("seed,fmt,act,simulator", [(1, "QDQ", "uint8", "verilator"), (2, "QOperator", "int8", "verilator"),
                                                    (3, "QDQ", "int8", "icarus")])
def test_random_cnn_in_rtl(tmp_path, seed, fmt, act, simulator):
    need(simulator)
    rng = np.random.default_rng(seed)
    model, shape, _ = random_cnn(rng, 2, seed % 2 == 0)
    x = rng.normal(size=(5, *shape)).astype(np.float32)
    path = quantize(model, tmp_path / "q.onnx", x, fmt, act)
    check(path, x, simulator)


@pytest.mark.parametrize("seed,fmt,act,simulator", [(5, "QDQ", "uint8", "verilator"), (6, "QOperator", "int8", "icarus")])
def test_global_average_pool_cnn_in_rtl(tmp_path, seed, fmt, act, simulator):
    need(simulator)
    rng = np.random.default_rng(seed)
    model, shape, _ = random_cnn(rng, 1, True, gap=True)
    x = rng.normal(size=(5, *shape)).astype(np.float32)
    path = quantize(model, tmp_path / "q.onnx", x, fmt, act)
    design, _ = check(path, x, simulator)
    assert any(k.name.startswith("sum_") for k in design.dataflow.kernels)


def test_conv_mvu_busy_at_95_percent(digits):
    """Without stalls a frame takes at most 5 % more than the busiest MVU needs."""
    need("verilator")
    x = np.load(digits / "test_inputs.npy")[:8].reshape(-1, 1, 8, 8)
    design, run = check(digits / "digits_cnn_qdq.onnx", x, "verilator", gap=0, stall=0)
    d = design.dataflow
    assert d.bottleneck.name.startswith("mvu_conv")
    assert d.cycles_per_frame <= run.cycles_per_inference <= d.cycles_per_frame / 0.95
    assert run.latency == d.latency                      # the beat model (dataflow.beat_times)


@pytest.mark.parametrize("seed,fmt,act,simulator", [(2, "QDQ", "uint8", "icarus"), (1, "QOperator", "int8", "icarus")])
def test_average_pool_cnn_in_rtl(tmp_path, seed, fmt, act, simulator):
    """AveragePool in hardware: window generator, float32 window sums, the threshold search for
    the division and quantization; bit-exact against the reference and onnxruntime."""
    from test_conv import AVERAGE_POOLS
    need(simulator)
    rng = np.random.default_rng(800 + seed)
    model, shape, _ = random_cnn(rng, 1, dense=True, avgpool=AVERAGE_POOLS[seed])
    x = rng.normal(size=(4, *shape)).astype(np.float32)
    path = quantize(model, tmp_path / "q.onnx", x, fmt, act)
    design, _ = check(path, x, simulator)
    kinds = [type(k).__name__ for k in design.dataflow.kernels]
    assert "FloatSumKernel" in kinds
    requant = design.dataflow.kernels[kinds.index("FloatSumKernel") + 1]
    assert requant.plan.kind == "threshold-search"
