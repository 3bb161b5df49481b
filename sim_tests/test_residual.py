"""Residual blocks in hardware: the add's integer line (proven on every pair of codes), the
join unit in amaranth.sim, whole residual networks as Verilog on Verilator and Icarus under
backpressure, the join FIFOs sized analytically (full rate without stalls; a depth that could
deadlock refused at compile time, and shown to hang when forced)."""
import dataclasses
import json

import numpy as np
import pytest
from amaranth.hdl import Module, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from conv_factory import quantize, random_residual
from qloom import amaranth_sim as streams
from qloom import compile as qc
from qloom.mapper.errors import QloomError
from qloom.hdl.join import AddUnit
from qloom.mapper import dataflow as df, frontend, qgraph as qg
from qloom.mapper.errors import RequantError
from qloom.mapper.requant import plan_add
from test_compile_cli import qloom
from test_rtl_mlp import check, need


def residual_model(tmp_path, seed, fmt="QDQ", act="uint8", **kw):
    rng = np.random.default_rng(300 + seed)
    model, shape = random_residual(rng, **kw)
    x = rng.normal(size=(40, *shape)).astype(np.float32)
    return quantize(model, tmp_path / "q.onnx", x[:20], fmt, act), x


@pytest.mark.parametrize("seed,fmt,act", [(0, "QDQ", "uint8"), (3, "QOperator", "int8")])
def test_add_line_is_exact_on_every_pair_and_refused_when_too_narrow(tmp_path, seed, fmt, act):
    path, _ = residual_model(tmp_path, seed, fmt, act)
    graph = frontend.load_qgraph(path)
    add = graph.layers(qg.Add)[0]
    ra, rb = graph.code_range(add.inputs[0]), graph.code_range(add.inputs[1])
    line = plan_add(add, ra, rb)
    a = np.arange(ra[0], ra[1] + 1)[:, None]
    b = np.arange(rb[0], rb[1] + 1)[None, :]
    assert np.array_equal(line.apply(a, b), np.broadcast_to(add.reference(a, b), (a.size, b.size)))
    with pytest.raises(RequantError, match=r"Add 'add0' \(ONNX node '.*'\): no integer line"):
        plan_add(add, ra, rb, max_shift=line.shift - 1)


class _Pair(wiring.Component):
    """Drives both inputs of an AddUnit from one stream of 2·lanes codes (a then b)."""

    def __init__(self, dut, shape, lanes):
        self.dut, self.lanes = dut, lanes
        super().__init__({"i": In(stream.Signature(data.ArrayLayout(shape, 2 * lanes))),
                          "o": Out(stream.Signature(data.ArrayLayout(shape, lanes)))})

    def elaborate(self, platform):
        m = Module()
        m.submodules.dut = d = self.dut
        m.d.comb += [d.a.valid.eq(self.i.valid), d.b.valid.eq(self.i.valid), self.i.ready.eq(d.a.ready)]
        for k in range(self.lanes):
            m.d.comb += [d.a.payload[k].eq(self.i.payload[k]), d.b.payload[k].eq(self.i.payload[self.lanes + k])]
        wiring.connect(m, d.o, wiring.flipped(self.o))
        return m


@pytest.mark.parametrize("seed,fmt,act", [(0, "QDQ", "uint8"), (2, "QDQ", "int8")])
def test_add_unit_equals_onnxruntime_add_in_amaranth_sim(tmp_path, seed, fmt, act):
    path, _ = residual_model(tmp_path, seed, fmt, act)
    graph = frontend.load_qgraph(path)
    add = graph.layers(qg.Add)[0]
    p = plan_add(add, graph.code_range(add.inputs[0]), graph.code_range(add.inputs[1]))
    shape = signed(8) if add.code.signed else unsigned(8)
    lanes = 3
    dut = AddUnit(a_shape=shape, b_shape=shape, out_shape=shape, lanes=lanes, mul_a=p.mul_a, mul_b=p.mul_b,
                  add=p.add - p.mul_a * p.a_lo - p.mul_b * p.b_lo, shift=p.shift, lo=p.lo, hi=p.hi)
    rng = np.random.default_rng(seed)
    a = rng.integers(p.a_lo, p.a_hi + 1, size=(400, lanes))
    b = rng.integers(p.b_lo, p.b_hi + 1, size=(400, lanes))
    a[:4], b[:4] = [[p.a_lo], [p.a_hi], [p.a_lo], [p.a_hi]], [[p.b_lo], [p.b_lo], [p.b_hi], [p.b_hi]]
    out, _ = streams.run(_Pair(dut, shape, lanes), [list(x) + list(y) for x, y in zip(a, b)], len(a), seed=seed,
                         gap=0.2, stall=0.3, max_cycles=10 ** 5)
    np.testing.assert_array_equal(np.array(out), add.reference(a, b))


@pytest.mark.parametrize("seed,fmt,act,kw,simulator", [
    (0, "QDQ", "uint8", {}, "verilator"),
    (3, "QOperator", "int8", {"downsample": True}, "icarus"),
    (4, "QDQ", "uint8", {"downsample": True, "head": "gap"}, "icarus"),
    (6, "QDQ", "int8", {"head": "gap"}, "icarus"),
    (7, "QDQ", "uint8", {"head": "none"}, "verilator")])
def test_residual_network_in_rtl(tmp_path, seed, fmt, act, kw, simulator):
    """Bit-exact against the reference and onnxruntime under random idle cycles and backpressure."""
    need(simulator)
    path, x = residual_model(tmp_path, seed, fmt, act, **kw)
    design, _ = check(path, x[:5 if simulator == "verilator" else 3], simulator)
    assert any(isinstance(k, df.ResidualKernel) for k in design.dataflow.kernels)


def test_join_fifo_sized_for_full_rate(tmp_path):
    """The skip path (identity) must hold what arrives while the main path's line buffers fill
    and its two convs compute — less than a frame to avoid deadlock, more for full rate: at
    the computed depth the block runs at the modelled initiation interval."""
    need("verilator")
    path, x = residual_model(tmp_path, 0)
    design, run = check(path, x[:6], "verilator", gap=0, stall=0)
    d = design.dataflow
    branch = next(k for k in d.kernels if isinstance(k, df.ResidualKernel))
    frame = branch.join.length // branch.join.lanes
    need_a, need_b = branch.required_depths()
    assert 0 < need_b < frame and need_a == 3             # only the identity path waits
    assert d.folding["fifo_depths"]["join_add0_b"] > need_b
    assert run.cycles_per_inference == d.cycles_per_frame
    assert abs(run.latency - d.latency) <= 3             # the beat model (dataflow.beat_times)


def test_too_small_join_fifo_is_refused_at_compile_time(tmp_path):
    path, _ = residual_model(tmp_path, 0)
    out = tmp_path / "out"
    assert qloom("compile", str(path), "-o", str(out)).returncode == 0
    fold = json.loads((out / "fold.json").read_text())
    design = qc.compile_model(path, fold=str(out / "fold.json"))
    need_b = next(k for k in design.dataflow.kernels if isinstance(k, df.ResidualKernel)).required_depths()[1]
    fold["fifo_depths"]["join_add0_b"] = need_b - 1
    (tmp_path / "small.json").write_text(json.dumps(fold))
    r = qloom("compile", str(path), "-o", str(tmp_path / "small"), "--fold", str(tmp_path / "small.json"))
    assert r.returncode == 2 and not (tmp_path / "small").exists()
    assert f"FIFO 'join_add0_b' of depth {need_b - 1} can deadlock" in r.stderr
    assert f"Use at least {need_b}" in r.stderr and "Add 'add0'" in r.stderr
    fold["fifo_depths"]["join_add0_b"] = need_b                   # the minimum is accepted
    (tmp_path / "min.json").write_text(json.dumps(fold))
    assert qloom("compile", str(path), "-o", str(tmp_path / "min"), "--fold", str(tmp_path / "min.json")).returncode == 0


def test_a_join_fifo_below_the_bound_hangs(tmp_path):
    """Why the bound is enforced: forced below what the main path takes before its first
    output, the skip FIFO fills, the fork stops, and nothing leaves."""
    need("icarus")                           # a new design to build: Icarus builds it in seconds
    path, x = residual_model(tmp_path, 0)
    design = qc.compile_model(path)
    d = design.dataflow
    kernels = list(d.kernels)
    i, branch = next((i, k) for i, k in enumerate(kernels) if isinstance(k, df.ResidualKernel))
    skip = list(branch.paths[1])
    skip[-1] = dataclasses.replace(skip[-1], depth=branch.reach()[0] * branch.lanes // branch.join.lanes - 8)
    kernels[i] = dataclasses.replace(branch, paths=(branch.paths[0], tuple(skip)))
    forced = qc.Design(design.model, design.graph, design.plans, dataclasses.replace(d, kernels=tuple(kernels)))
    codes = design.graph.nodes[0].reference(x[:2])
    with pytest.raises(QloomError, match="the design stalls"):
        qc.run_hardware(forced, codes, simulator="icarus")


@pytest.mark.parametrize("seed,fmt,act,identity", [(s, *fa, s % 3 == 2) for s in range(3) for fa in
                                                   (("QDQ", "uint8"), ("QOperator", "int8"))])
def test_concat_equals_onnxruntime(tmp_path, seed, fmt, act, identity):
    """Channel concat (QDQ → QLinearConcat, and the contrib op) with its per-input tables."""
    from conv_factory import random_concat
    rng = np.random.default_rng(900 + seed)
    model, shape = random_concat(rng, identity)
    x = (rng.normal(size=(48, *shape)) * 1.5).astype(np.float32)
    path = quantize(model, tmp_path / "q.onnx", x[:24], fmt, act)
    graph = frontend.load_qgraph(path)
    assert len(graph.layers(qg.Concat)) == 1
    from qloom.mapper import ort_check
    assert ort_check.float_products_left(path) == []
    got = next(iter(graph.reference({graph.inputs[0]: x}).values()))
    assert int(np.sum(got != ort_check.run(path, x)[0].reshape(got.shape))) == 0


@pytest.mark.parametrize("seed,fmt,act,identity,simulator", [(0, "QDQ", "uint8", False, "verilator"),
                                                             (2, "QOperator", "int8", True, "icarus"),
                                                             (1, "QDQ", "int8", False, "icarus")])
def test_concat_network_in_rtl(tmp_path, seed, fmt, act, identity, simulator):
    need(simulator)
    from conv_factory import random_concat
    rng = np.random.default_rng(900 + seed)
    model, shape = random_concat(rng, identity)
    x = rng.normal(size=(4, *shape)).astype(np.float32)
    path = quantize(model, tmp_path / "q.onnx", x, fmt, act)
    design, _ = check(path, x[:4 if simulator == "verilator" else 2], simulator)
    assert any(isinstance(k, df.ResidualKernel) and isinstance(k.join, df.ConcatKernel)
               for k in design.dataflow.kernels)
    if simulator == "verilator":             # the same build, without stalls: the modelled timing
        _, run = check(path, x[:3], simulator, gap=0, stall=0)
        d = design.dataflow
        assert run.cycles_per_inference == d.cycles_per_frame and abs(run.latency - d.latency) <= 3, \
            (run.cycles_per_inference, d.cycles_per_frame, run.latency, d.latency)
