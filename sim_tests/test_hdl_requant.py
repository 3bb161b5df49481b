"""Tier 1: each requantization circuit in amaranth.sim equals its NumPy model (and so the
onnxruntime target) on every accumulator of the range, under gaps and stalls."""
import numpy as np
import pytest

from qloom import amaranth_sim as streams
from qloom.lower import code_shape, requant_unit
from qloom.mapper import requant as rq
from qloom.mapper.numeric import F32
from qloom.mapper.qgraph import CodeType
from qloom.mapper.requant_targets import CodeTable, ScaleRound
from qloom.hdl.util import signed_shape_for
from qloom.mapper.dataflow import requant_latency


def target_for(kind, rng, channels, code):
    zp = int(rng.integers(code.qmin, code.qmax + 1))
    if kind == "shift":
        m = (2.0 ** rng.integers(-9, 1, size=channels)).astype(F32)
    elif kind == "thresholds":
        m = np.full(channels, 0.004, F32)
        zp = 0
    else:
        m = np.exp(rng.uniform(-8, -3, size=channels)).astype(F32)
    tables = ()
    if kind == "float-emulation+table":
        tables = (CodeTable.qlinear_add(channels, code, 0.05, zp, rng.integers(code.qmin, code.qmax + 1, size=channels),
                                        0.03, 0, 0.06, 3, code, "test add"),)
    return ScaleRound(tables=tables, multiplier=m, zero_point=zp, lo=max(code.qmin, zp) if kind == "shift" else code.qmin,
                      hi=code.qmax)


@pytest.mark.parametrize("kind,pe,channels,signed", [
    ("shift", 1, 3, False), ("shift", 2, 4, True), ("mul-add-shift", 1, 2, False), ("mul-add-shift", 3, 3, True),
    ("thresholds", 2, 2, True), ("float-emulation", 1, 2, False), ("float-emulation", 2, 4, True),
    ("float-emulation+table", 2, 2, False),
])
def test_requant_unit_equals_model_on_full_range(kind, pe, channels, signed):
    rng = np.random.default_rng(len(kind) * 7 + pe)
    code = CodeType(8, signed)
    target = target_for(kind, rng, channels, code)
    lo, hi = np.full(channels, -1500), np.full(channels, 1500)
    if kind.startswith("float-emulation"):
        impl = rq._solve_fallback(target, lo, hi, None, None, None, 0, 0, 0)
        plan = rq.Plan(impl, lo, hi, 0)
    else:
        plan = rq.plan(target, lo, hi)
        assert plan.kind == kind
    acc_shape = signed_shape_for(-1500, 1500)
    dut = requant_unit(plan, pe=pe, acc_shape=acc_shape, out_code=code, channels=channels)
    mul_bits = signed_shape_for(0, int(max(plan.impl.mul))).width if plan.kind == "mul-add-shift" else 0
    assert dut.latency == requant_latency(plan.kind, mul_bits, len(getattr(plan.impl, "tables", ())))
    acc = np.arange(-1500, 1501)
    frames = np.stack([np.roll(acc, 37 * c) for c in range(channels)], axis=1)     # (N, channels)
    beats = [list(f[t * pe:(t + 1) * pe]) for f in frames for t in range(channels // pe)]
    out, _ = streams.run(dut, beats, len(beats), seed=pe, gap=0.2, stall=0.2, max_cycles=10 ** 6)
    got = np.array(out).reshape(frames.shape)
    want = np.stack([plan.impl.apply(frames[:, c], c) for c in range(channels)], axis=1)
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(got, target.reference(frames))


def test_float_emulation_unit_rounds_wide_accumulators_like_float32():
    """Beyond 2**24 accumulators themselves round in float32; the circuit must too."""
    code = CodeType(8, True)
    m = np.array([2.0 ** -19 * 1.37, 2.0 ** -20 * 1.91], F32)
    target = ScaleRound(tables=(), multiplier=m, zero_point=-3, lo=-128, hi=127)
    impl = rq._solve_fallback(target, None, None, None, None, None, -128, 127, 0)
    lo, hi = -(2 ** 27), 2 ** 27
    plan = rq.Plan(impl, np.full(2, lo), np.full(2, hi), 0)
    dut = requant_unit(plan, pe=2, acc_shape=signed_shape_for(lo, hi), out_code=code, channels=2)
    # windows around output steps above 2**24 in magnitude, where f32(acc) is itself rounded
    _, steps = rq.breakpoints(lambda a: target.evaluate(a, 0), 2 ** 24, 2 ** 26)
    _, neg_steps = rq.breakpoints(lambda a: target.evaluate(a, 0), -(2 ** 26), -(2 ** 24))
    centres = list(steps[::7][:4]) + list(neg_steps[::7][:4])
    acc = np.concatenate([np.arange(c - 150, c + 150) for c in centres])
    frames = np.stack([acc, acc[::-1]], axis=1)
    out, _ = streams.run(dut, [list(f) for f in frames], len(frames), gap=0.1, stall=0.1, max_cycles=10 ** 6)
    np.testing.assert_array_equal(np.array(out), target.reference(frames))
    assert len(centres) == 8 and len(set(target.reference(frames)[:, 0])) >= 8


@pytest.mark.parametrize("pe", [1, 2])
def test_mul_add_shift_with_fixes_on_full_range(pe):
    """The line-with-fixes circuit: every accumulator of the range, fixes included."""
    from test_requant import line_with_fixes_target
    target, lo, hi = line_with_fixes_target()
    plan = rq.plan(target, lo, hi)
    assert plan.kind == "mul-add-shift" and plan.impl.fixes >= 1
    code = CodeType(8, False)
    dut = requant_unit(plan, pe=pe, acc_shape=signed_shape_for(-3000, 3000), out_code=code, channels=2)
    mul_bits = signed_shape_for(0, int(max(plan.impl.mul))).width
    assert dut.latency == requant_latency(plan.kind, mul_bits)
    acc = np.arange(-3000, 3001)
    frames = np.stack([acc, np.roll(acc, 1234)], axis=1)
    beats = [list(f[t * pe:(t + 1) * pe]) for f in frames for t in range(2 // pe)]
    out, _ = streams.run(dut, beats, len(beats), seed=pe, gap=0.2, stall=0.2, max_cycles=10 ** 6)
    np.testing.assert_array_equal(np.array(out).reshape(frames.shape), target.reference(frames))


@pytest.mark.parametrize("pe,channels,signed,count", [(1, 1, False, 4), (2, 4, True, 9)])
def test_threshold_search_unit_on_an_average_pools_float_division(pe, channels, signed, count):
    """An average pool's end (FloatMean: float32 sum / count, then quantize) has up to 255
    levels over a ~36-bit accumulator: no line fits, so the planner builds the binary search.
    Every breakpoint ±2 and random accumulators, under gaps and stalls."""
    from qloom.mapper import numeric
    from qloom.mapper.requant_targets import FloatMean
    code = CodeType(8, signed)
    rng = np.random.default_rng(count + pe)
    scale, zp = float(F32(rng.uniform(0.004, 0.05))), int(rng.integers(code.qmin, code.qmin + 128))
    terms, e = numeric.dequantized_units(scale, zp, code.qmin, code.qmax)
    target = FloatMean(tables=(), exponent=e, count=count, scale=scale, zero_point=zp, lo=code.qmin, hi=code.qmax,
                       n_channels=channels)
    lo, hi = count * int(terms.min()) - 2 ** 12, count * int(terms.max()) + 2 ** 12
    plan = rq.plan(target, np.full(channels, lo), np.full(channels, hi))
    assert plan.kind == "threshold-search" and plan.levels > 200 and plan.acc_bits > 33
    acc_shape = signed_shape_for(lo, hi)
    dut = requant_unit(plan, pe=pe, acc_shape=acc_shape, out_code=code, channels=channels)
    assert dut.latency == requant_latency(plan.kind, search_depth=plan.impl.depth)
    _, bps = rq.breakpoints(lambda a: target.evaluate(a, 0), lo, hi)
    acc = np.concatenate([(bps[:, None] + np.arange(-2, 3)).reshape(-1), [lo, hi],
                          rng.integers(lo, hi, size=200)])
    acc = acc[: len(acc) // channels * channels] if channels > 1 else acc
    frames = np.stack([np.roll(acc, 17 * c) for c in range(channels)], axis=1)
    beats = [list(f[t * pe:(t + 1) * pe]) for f in frames for t in range(channels // pe)]
    out, _ = streams.run(dut, beats, len(beats), seed=pe, gap=0.2, stall=0.2, max_cycles=10 ** 6)
    np.testing.assert_array_equal(np.array(out).reshape(frames.shape), target.reference(frames))


@pytest.mark.parametrize("fixes,pe,channels,words", [(False, 1, 2, 1), (False, 3, 3, 1), (True, 2, 2, 1),
                                                     (False, 1, 4, 3), (False, 2, 6, 2), (True, 1, 2, 5)])
def test_serial_mul_add_shift_equals_model_on_full_range(fixes, pe, channels, words):
    """The serial (two bits of M per cycle) mul-add-shift circuit, fixes included: every
    accumulator of the range, under gaps and stalls, one beat per ``period`` cycles; with
    ``words`` above 1, its parameters read as that many narrow rows between beats."""
    from qloom.hdl.requant import SerialRequant
    if fixes:
        from test_requant import line_with_fixes_target
        target, lo, hi = line_with_fixes_target()
        plan = rq.plan(target, lo, hi)
        assert plan.impl.fixes >= 1
        lo, hi = -3000, 3000
    else:
        rng = np.random.default_rng(pe)
        target = target_for("mul-add-shift", rng, channels, CodeType(8, pe == 3))
        lo, hi = -800, 800
        plan = rq.plan(target, np.full(channels, lo), np.full(channels, hi))
    assert plan.kind == "mul-add-shift"
    impl = plan.impl
    code = CodeType(8, not fixes and pe == 3)
    extra = {"fix_acc": impl.fix_acc, "fix_code": impl.fix_code} if impl.fixes else {}
    dut = SerialRequant(params={"mul": impl.mul, "add": impl.add, **extra}, shift=impl.shift, channels=channels, pe=pe,
                        acc_shape=signed_shape_for(lo, hi), out_shape=code_shape(code), lo=impl.lo, hi=impl.hi,
                        param_words=words)
    assert dut.param_words == words and dut.period == dut.digits + 6 + (words if words > 1 else 0)
    acc = np.arange(lo, hi + 1)
    frames = np.stack([np.roll(acc, 37 * c) for c in range(channels)], axis=1)
    beats = [list(f[t * pe:(t + 1) * pe]) for f in frames for t in range(channels // pe)]
    out, _ = streams.run(dut, beats, len(beats), seed=pe, gap=0.2, stall=0.2, max_cycles=10 ** 7)
    np.testing.assert_array_equal(np.array(out).reshape(frames.shape), target.reference(frames))
    fast, when = streams.run(dut, beats[:40], 40)                       # no gaps, no stalls
    fetch = words + 1 if words > 1 else 0         # the first beat's rows, read after reset
    assert np.diff(when).max() == dut.period and when[0] == dut.latency + 1 + fetch
