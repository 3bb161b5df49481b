"""Tier 2: the emitted Verilog of whole MLPs in cocotb, on Verilator and Icarus, under random
idle input cycles and output backpressure, bit-exact against the reference and onnxruntime."""
import json
from dataclasses import replace

import numpy as np
import onnx
import pytest

import factory
from qloom import agreement, compile as qc, lower, simulate
from qloom.mapper import numeric, resources

SIMULATORS = ["verilator", "icarus"]


def need(simulator):
    if not simulate.available(simulator):
        pytest.fail(f"{simulator} is not installed; `make venv` installs it (Icarus needs root for apt)")


def check(model, x, simulator, fold=None, gap=0.25, stall=0.3, seed=0, target=None):
    design = qc.compile_model(model, fold=fold, target=target)
    graph = design.graph
    codes = graph.nodes[0].reference(x)
    want = graph.run({graph.inputs[0]: x})[design.output_codes]
    run = qc.run_hardware(design, codes, simulator=simulator, gap=gap, stall=stall, seed=seed)
    np.testing.assert_array_equal(run.codes.reshape(want.shape), want)
    out = graph.producer(graph.outputs[0])
    ort = agreement.ort_check.run(model, x)[0]
    np.testing.assert_array_equal(numeric.dequantize_linear(run.codes, out.scale, out.zero_point).reshape(ort.shape), ort)
    return design, run


@pytest.mark.parametrize("simulator", SIMULATORS)
@pytest.mark.parametrize("name", ["digits_mlp_qdq.onnx", "digits_mlp_qop.onnx"])
def test_shipped_digits_in_rtl(digits, name, simulator):
    need(simulator)
    x = np.load(digits / "test_inputs.npy")[:60]
    check(digits / name, x, simulator)


def exact_at_the_modelled_rate(design, digits, simulator):
    """``design`` (a digits MLP) bit-exact against the reference under backpressure, and on
    Verilator without stalls at the modelled initiation interval and latency."""
    x = np.load(digits / "test_inputs.npy")[:(24 if simulator == "verilator" else 6)]
    graph = design.graph
    codes = graph.nodes[0].reference(x)
    want = graph.run({graph.inputs[0]: x})[design.output_codes]
    for gap, stall in ((0.25, 0.3), (0, 0)) if simulator == "verilator" else ((0.25, 0.3),):
        run = qc.run_hardware(design, codes, simulator=simulator, gap=gap, stall=stall)
        np.testing.assert_array_equal(run.codes.reshape(want.shape), want)
    if simulator == "verilator":
        assert run.cycles_per_inference == design.dataflow.cycles_per_frame
        assert abs(run.latency - design.dataflow.latency) <= 2


@pytest.mark.parametrize("simulator", SIMULATORS)
def test_products_split_in_two_stages_in_rtl(digits, simulator):
    """Compiled for the UP5K at 40 multipliers, the MVU whose products its 8 DSPs do not hold
    (dense0's 32, sixteen blocks) splits each product over the input's halves
    (dataflow.lut_products; its multiply was the critical path), and dense1's five go to three
    SB_MAC16s (one half empty): bit-exact under backpressure, and (Verilator, no stalls) at the
    modelled rate and latency."""
    need(simulator)
    design = qc.compile_model(digits / "digits_mlp_qdq.onnx", max_multipliers=40, target="ice40-up5k")
    split = {k.name: (k.split_products, k.dsp_cell) for k in design.dataflow.all_kernels if k.kind == "MVU"}
    assert split == {"mvu_dense0": (True, None), "mvu_dense1": (False, "SB_MAC16")}
    assert design.verilog.count("SB_MAC16 #(") == 3
    exact_at_the_modelled_rate(design, digits, simulator)


@pytest.mark.parametrize("simulator", SIMULATORS)
@pytest.mark.parametrize("target,cell,blocks,in_dsp", [("ecp5-25k", "MULT18X18D", 10, {"mvu_dense1"}),
                                                       ("ice40-up5k", "SB_MAC16", 5, {"mvu_dense0", "mvu_dense1"})])
def test_dsp_products_with_their_registers_in_rtl(digits, simulator, target, cell, blocks, in_dsp):
    """Compiled for a target, the MVUs whose products its DSPs hold instantiate them as the
    target's primitive with operand and product registers (hdl.dsp; Yosys would use neither
    on ECP5, only some on iCE40): on the ECP5-25F dense1's 10 as MULT18X18D, on the UP5K both
    layers' 9 two a SB_MAC16 (its 8×8 mode), the count the estimate says; the simulators run
    the emitted top.v with qloom's model of the primitive appended: bit-exact under
    backpressure, and (Verilator, no stalls) at the modelled rate and latency."""
    need(simulator)
    design = qc.compile_model(digits / "digits_mlp_qdq.onnx", target=target)
    cells = {k.name: k.dsp_cell for k in design.dataflow.all_kernels if k.kind == "MVU"}
    assert cells == {name: cell if name in in_dsp else None for name in ("mvu_dense0", "mvu_dense1")}
    text = design.verilog
    assert text.count(f"{cell} #(") == blocks == resources.estimate(design.dataflow, target)["dsp"]
    assert text.count(f"module {cell}(") == 1 and "`ifndef SYNTHESIS" in text
    exact_at_the_modelled_rate(design, digits, simulator)


def spram_design(digits, tmp_path):
    """The digits MLP folded for the UP5K as the budget folds it, dense0's weights in SPRAM
    (its fold file's "weights": "spram"): 64-bit words, four SB_SPRAM256KA side by side."""
    fold = dict(qc.compile_model(digits / "digits_mlp_qdq.onnx", target="ice40-up5k").dataflow.folding)
    fold["dense0"] = {**fold["dense0"], "weights": "spram"}
    path = tmp_path / "fold.json"
    path.write_text(json.dumps(fold))
    return qc.compile_model(digits / "digits_mlp_qdq.onnx", fold=path, target="ice40-up5k")


@pytest.mark.parametrize("simulator", SIMULATORS)
def test_weights_in_spram_in_rtl(digits, tmp_path, simulator):
    """Weights in the UP5K's SPRAMs arrive after reset through the load stream (lower.load_image,
    sent with idle cycles while the first frame waits): bit-exact under backpressure beside the
    DSP products, with qloom's SB_SPRAM256KA model (undefined output after a write: Icarus
    would carry an x into the outputs), and (Verilator, no stalls) at block RAM's rate and
    latency from the first input beat."""
    need(simulator)
    design = spram_design(digits, tmp_path)
    text = design.verilog
    estimate = resources.estimate(design.dataflow, "ice40-up5k")
    assert text.count("\n  SB_SPRAM256KA ") == estimate["spram"] == 4 and design.dataflow.load_words == 1024
    assert "load__payload" in text and text.count("module SB_SPRAM256KA(") == 1
    exact_at_the_modelled_rate(design, digits, simulator)


def test_spram_weights_run_in_amaranth_as_their_model(digits, tmp_path):
    design = spram_design(digits, tmp_path)
    x = np.load(digits / "test_inputs.npy")[:3]
    graph = design.graph
    codes = graph.nodes[0].reference(x)
    want = graph.run({graph.inputs[0]: x})[design.output_codes]
    np.testing.assert_array_equal(qc.run_amaranth(design, codes, gap=0.2, stall=0.2).codes.reshape(want.shape), want)


def test_spram_weights_load_through_the_narrow_shell(digits, tmp_path):
    """The shell synthesis builds (lower.shell: byte streams for a handful of pins) takes the load
    words as bytes, the low byte first, and gates frames until the SPRAMs are full: bit-exact in
    amaranth.sim through the shell, the SPRAMs as their model."""
    from qloom import amaranth_sim
    from qloom.hdl.shell import narrow_shell
    design = spram_design(digits, tmp_path)
    d = design.dataflow
    x = np.load(digits / "test_inputs.npy")[:2]
    graph = design.graph
    codes = graph.nodes[0].reference(x)
    want = graph.run({graph.inputs[0]: x})[design.output_codes]
    n_in, n_out = -(-d.input.lanes * d.input.bits // 8), -(-d.output.lanes * d.output.bits // 8)
    words = [int(np.sum([(int(v) & ((1 << d.input.bits) - 1)) << (k * d.input.bits) for k, v in enumerate(beat)]))
             for beat in qc.to_beats(codes, d.input)]
    in_bytes = [[(w >> (8 * b)) & 0xFF] for w in words for b in range(n_in)]
    load = [[(w >> s) & 0xFF] for w in lower.load_image(d) for s in (0, 8)]
    out, _ = amaranth_sim.run(narrow_shell(lower.amaranth_top(d)), in_bytes, len(x) * d.output.beats * n_out,
                              gap=0.1, stall=0.1, load=load)
    flat_bytes = [b[0] for b in out]
    beats = [sum(flat_bytes[n * n_out + b] << (8 * b) for b in range(n_out)) for n in range(len(flat_bytes) // n_out)]
    mask, bits = (1 << d.output.bits) - 1, d.output.bits
    lanes = [[((w >> (k * bits)) & mask) - ((1 << bits) if d.output.signed and (w >> (k * bits + bits - 1)) & 1 else 0)
              for k in range(d.output.lanes)] for w in beats]
    np.testing.assert_array_equal(np.array(lanes).reshape(want.shape), want)


def test_dsp_primitives_run_in_amaranth_as_their_model(digits):
    """amaranth.sim runs no Verilog primitive (an Instance's outputs read as zero there): the
    design compiled for the ECP5-25F runs with its MULT18X18Ds as their Amaranth model
    (lower.amaranth_top), bit-exact and at the same latency as in Verilator."""
    design = qc.compile_model(digits / "digits_mlp_qdq.onnx", target="ecp5-25k")
    x = np.load(digits / "test_inputs.npy")[:4]
    graph = design.graph
    codes = graph.nodes[0].reference(x)
    want = graph.run({graph.inputs[0]: x})[design.output_codes]
    run = qc.run_amaranth(design, codes, gap=0.2, stall=0.2)
    np.testing.assert_array_equal(run.codes.reshape(want.shape), want)
    assert abs(qc.run_amaranth(design, codes[:2]).latency - design.dataflow.latency) <= 2


def test_cycles_match_the_model_without_stalls(digits):
    need("verilator")
    x = np.load(digits / "test_inputs.npy")[:12]
    design, run = check(digits / "digits_mlp_qdq.onnx", x, "verilator", gap=0, stall=0)
    d = design.dataflow
    assert run.cycles_per_inference == d.cycles_per_frame
    assert abs(run.latency - d.latency) <= 2
    # MVU utilization: a frame takes ⌈MACs / multipliers⌉ of its bottleneck, plus pipeline latency
    mvu = d.bottleneck
    assert run.cycles_per_inference <= -(-mvu.dense.macs // (mvu.pe * mvu.simd))


RANDOM = [  # seed, form, act, per_channel, pow2, widths, fold ("min", "max" or dict)
    (1, "qdq", "uint8", True, False, [12, 8, 6], "min"),
    (2, "qop", "int8", False, True, [10, 6, 4], "max"),
    (3, "qop_add", "uint8", True, False, [16, 8, 5], {"dense0": {"pe": 2, "simd": 4}, "dense1": {"pe": 5, "simd": 2}}),
    (4, "matmulinteger", "int8", True, False, [9, 6, 3], {"dense0": {"pe": 3, "simd": 3}, "dense1": {"pe": 1, "simd": 6}}),
    (5, "qdq", "int8", True, True, [7, 1], "max"),
]


def fold_file(tmp_path, spec, fold):
    dims = [spec["in_features"]] + [L.weight.shape[1] for L in spec["layers"]]
    if fold in ("min", "max"):
        fold = {f"dense{i}": {"pe": 1 if fold == "min" else dims[i + 1], "simd": 1 if fold == "min" else dims[i]}
                for i in range(len(spec["layers"]))}
    path = tmp_path / "fold.json"
    path.write_text(json.dumps(fold))
    return path


@pytest.mark.parametrize("simulator", SIMULATORS)
@pytest.mark.parametrize("seed,form,act,per_channel,pow2,widths,fold", RANDOM)
def test_random_mlps_in_rtl(tmp_path, seed, form, act, per_channel, pow2, widths, fold, simulator):
    need(simulator)
    rng = np.random.default_rng(seed)
    spec = factory.random_mlp(rng, layers=len(widths) - 1, widths=widths, act=act, per_channel=per_channel,
                              pow2=pow2, saturate=seed % 2 == 0)
    onnx.save(factory.to_onnx(spec, form), tmp_path / "m.onnx")
    x = factory.random_inputs(rng, spec, 40)
    design, _ = check(tmp_path / "m.onnx", x, simulator, fold=fold_file(tmp_path, spec, fold), seed=seed)
    kinds = {p.kind for p in design.plans.values()}
    if pow2:
        assert kinds == {"shift"}
    if form == "qop_add":
        assert "float-emulation" in kinds or "mul-add-shift" in kinds


@pytest.mark.parametrize("simulator", SIMULATORS)
def test_shared_requantizers_in_rtl(tmp_path, simulator):
    """A requantizer gets the fewest lanes that keep up with its MVU: 4 accumulators every 2
    cycles need 2 lanes, 3 every 4 cycles one; split to that width in front, bit-exact under
    stalls, and the interval the model says."""
    need(simulator)
    rng = np.random.default_rng(11)
    spec = factory.random_mlp(rng, layers=2, widths=[16, 8, 6], act="uint8", per_channel=True, pow2=False)
    onnx.save(factory.to_onnx(spec, "qdq"), tmp_path / "m.onnx")
    fold = {"dense0": {"pe": 4, "simd": 8}, "dense1": {"pe": 3, "simd": 2}}
    design, _ = check(tmp_path / "m.onnx", factory.random_inputs(rng, spec, 40), simulator,
                      fold=fold_file(tmp_path, spec, fold), seed=3)
    ks = design.dataflow.all_kernels
    requants = [(k.name, k.pe) for k in ks if k.kind == "Requant"]
    assert requants == [("requant_requant0", 2), ("requant_requant1", 1)]
    before = [ks[i - 1] for i, k in enumerate(ks) if k.kind == "Requant"]
    assert [(k.kind, k.lanes_in, k.lanes_out) for k in before] == [("WidthConverter", 4, 2), ("WidthConverter", 3, 1)]
    _, run = check(tmp_path / "m.onnx", factory.random_inputs(rng, spec, 8), simulator,
                   fold=fold_file(tmp_path, spec, fold), gap=0, stall=0)
    assert run.cycles_per_inference == design.dataflow.cycles_per_frame


@pytest.mark.parametrize("simulator", SIMULATORS)
def test_narrowed_requantizer_parameters_in_rtl(tmp_path, simulator):
    """A serial requantizer whose 128 channels' parameters would take several block RAMs side
    by side keeps them as 16-bit rows of one deeper ROM, read between beats (its MVU hands it
    one accumulator every 64 cycles): bit-exact under stalls, and the interval and latency the
    model says."""
    need(simulator)
    rng = np.random.default_rng(21)
    spec = factory.random_mlp(rng, layers=2, widths=[64, 128, 10], act="uint8", per_channel=True, pow2=False)
    onnx.save(factory.to_onnx(spec, "qdq"), tmp_path / "m.onnx")
    fold = fold_file(tmp_path, spec, "min")
    design, _ = check(tmp_path / "m.onnx", factory.random_inputs(rng, spec, 3), simulator, fold=fold, seed=4)
    k = next(k for k in design.dataflow.all_kernels if k.name == "requant_requant0")
    wide = replace(k, param_words=1)
    assert k.serial and k.param_words == -(-k.param_bits // 16) > 1 and k.period <= k.interval
    assert [(m.width, m.depth) for m in k.memories()] == [(-(-k.param_bits // k.param_words), 128 * k.param_words)]
    blocks = [sum(resources.blocks(m.width, m.depth, "ice40-up5k") for m in x.memories()) for x in (k, wide)]
    assert blocks[0] < blocks[1]
    if simulator == "verilator":
        _, run = check(tmp_path / "m.onnx", factory.random_inputs(rng, spec, 3), simulator, fold=fold, gap=0, stall=0)
        assert run.cycles_per_inference == design.dataflow.cycles_per_frame
        assert abs(run.latency - design.dataflow.latency) <= 2


@pytest.mark.parametrize("simulator", SIMULATORS)
def test_processes_whose_inputs_keep_their_initial_values_run_in_rtl(tmp_path, simulator):
    """A width converter fed only zeros: its held word never changes from its initial value, so
    its output multiplexer runs only through Yosys's time-0 trigger, which Icarus honours under
    Verilog-2005 semantics (simulate.BUILD_ARGS) and not under cocotb's default SystemVerilog
    ones (the output was x there)."""
    from amaranth.back import verilog

    from qloom.hdl import streams
    need(simulator)
    path = tmp_path / "split.v"
    path.write_text(verilog.convert(streams.Split(shape=4, lanes=1, factor=4), name="split"))
    trace = simulate.run(path, "split", np.zeros((3, 1), np.int64), bits_in=16, lanes_out=1, bits_out=4,
                         signed_out=False, n_out=12, simulator=simulator, gap=0.2, stall=0.3)
    np.testing.assert_array_equal(trace.beats, np.zeros((12, 1)))

