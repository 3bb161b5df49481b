"""The requantization planner: every implementation brute-forced over full
accumulator ranges, and the proof refusing what is not equal."""
import numpy as np
import pytest

from qloom.mapper import requant as rq
from qloom.mapper.errors import RequantError
from qloom.mapper.numeric import F32
from qloom.mapper.qgraph import CodeType
from qloom.mapper.requant_targets import CodeTable, FloatChain, ScaleRound


def random_target(rng, kind):
    channels = int(rng.integers(1, 5))
    signed = bool(rng.integers(0, 2))
    code = CodeType(8, signed)
    zp = int(rng.integers(code.qmin, code.qmax + 1))
    relu = bool(rng.integers(0, 2))
    lo = max(code.qmin, zp) if relu else code.qmin
    if kind == "pow2":
        m = (2.0 ** rng.integers(-16, 1, size=channels)).astype(F32)
    else:
        m = np.exp(rng.uniform(-13, 0, size=channels)).astype(F32)
    target = ScaleRound(tables=(), multiplier=m, zero_point=zp, lo=lo, hi=code.qmax)
    if kind == "table":
        table = CodeTable.qlinear_add(channels, code, 0.05, zp, rng.integers(code.qmin, code.qmax + 1, size=channels),
                                      0.02, 0, 0.07, int(rng.integers(code.qmin, code.qmax + 1)), code, "test add")
        target = ScaleRound(tables=(table,), multiplier=m, zero_point=zp, lo=lo, hi=code.qmax)
    if kind == "chain":
        target = FloatChain(tables=(), scale=m, bias=rng.normal(size=channels).astype(F32) * 4, relu=relu,
                            out_scale=0.5, zero_point=zp, lo=code.qmin, hi=code.qmax)
    return target


def random_range(rng, channels):
    width = int(2 ** rng.integers(4, 18))
    lo = rng.integers(-width, 1, size=channels)
    hi = lo + rng.integers(0, 2 * width, size=channels)
    return lo, hi


def brute_force_equal(impl, target, lo, hi):
    for c in range(target.channels):
        acc = np.arange(lo[c], hi[c] + 1, dtype=np.int64)
        got, want = impl.apply(acc, c), target.evaluate(acc, c)
        if not np.array_equal(got, want):
            bad = acc[got != want][:3]
            return f"channel {c}: differs at acc {bad}"
    return None


@pytest.mark.parametrize("kind", ["pow2", "float", "table", "chain"])
def test_plan_is_equal_to_target_on_every_accumulator(kind):
    rng = np.random.default_rng({"pow2": 1, "float": 2, "table": 3, "chain": 4}[kind])
    seen = set()
    for _ in range(25):
        target = random_target(rng, kind)
        lo, hi = random_range(rng, target.channels)
        plan = rq.plan(target, lo, hi)
        seen.add(plan.kind)
        assert brute_force_equal(plan.impl, target, lo, hi) is None, plan.kind
        assert plan.acc_bits == rq.signed_bits(lo, hi)
    if kind == "pow2":
        assert seen == {"shift"}
    if kind == "float":
        assert "mul-add-shift" in seen


SOLVERS = {"shift": rq._solve_shift, "mul-add-shift": rq._solve_mul_add_shift,
           "thresholds": rq._solve_thresholds, "float-emulation": rq._solve_fallback}


def solver_inputs(target, lo, hi):
    bps, tlo, thi = [], [], []
    for c in range(target.channels):
        f = lambda a, c=c: target.evaluate(a, c)
        bps.append(rq.breakpoints(f, lo[c], hi[c])[1])
        tlo.append(int(f(lo[c])))
        thi.append(int(f(hi[c])))
    out_lo, out_hi = target.output_range()
    return (target, lo, hi, bps, tlo, thi, out_lo, out_hi, max(len(b) for b in bps))


@pytest.mark.parametrize("name", SOLVERS)
def test_each_implementation_equals_target_when_its_solver_accepts(name):
    """Each solver's circuit, whenever it offers one, brute-forced: its proof must never be needed."""
    rng = np.random.default_rng(hash(name) % 2 ** 32)
    accepted = 0
    for trial in range(40):
        kind = ("pow2" if name == "shift" else "table" if trial % 4 == 3 else "float")
        target = random_target(rng, kind)
        if name == "thresholds":      # ≤ 15 levels: a narrow accumulator range
            lo = rng.integers(-3000, 0, size=target.channels)
            hi = lo + rng.integers(0, 3000, size=target.channels)
            target = ScaleRound(tables=(), multiplier=np.full(target.channels, 0.002, F32),
                                zero_point=0, lo=-128, hi=127)
        else:
            lo, hi = random_range(rng, target.channels)
        impl = SOLVERS[name](*solver_inputs(target, lo, hi))
        if impl is None:
            continue
        accepted += 1
        assert impl.kind == name
        assert brute_force_equal(impl, target, lo, hi) is None
    assert accepted >= 10


def test_float_emulation_rounds_large_accumulators_like_float32():
    """Beyond 2**24, f32(acc) itself rounds: the emulation must round it the same way."""
    m = np.array([0.7, 2.0 ** -20, 1.3e-7, 0.5], F32)
    target = ScaleRound(tables=(), multiplier=m, zero_point=3, lo=-128, hi=127)
    impl = rq._solve_fallback(target, None, None, None, None, None, -128, 127, 0)
    for center in (2 ** 24, 2 ** 25, -(2 ** 26), 2 ** 30 - 5000):
        acc = np.arange(center - 3000, center + 3000, dtype=np.int64)
        for c in range(4):
            np.testing.assert_array_equal(impl.apply(acc, c), target.evaluate(acc, c))


def test_breakpoints_are_exactly_the_steps():
    target = random_target(np.random.default_rng(9), "float")
    f = lambda a: target.evaluate(a, 0)
    acc = np.arange(-20000, 20001)
    values = f(acc)
    steps = acc[1:][np.diff(values) > 0]
    levels, bps = rq.breakpoints(f, -20000, 20000)
    assert list(np.unique(bps)) == list(steps)
    assert len(levels) == values[-1] - values[0]


def test_planner_skips_a_circuit_that_fails_the_proof(monkeypatch):
    rng = np.random.default_rng(11)
    target = random_target(rng, "float")
    lo, hi = np.full(target.channels, -5000), np.full(target.channels, 5000)
    honest = rq._solve_mul_add_shift

    def off_by_one(*args):
        impl = honest(*args)
        return None if impl is None else rq.MulAddShift(impl.lo, impl.hi, mul=impl.mul,
                                                        add=impl.add + (1 << impl.shift), shift=impl.shift)
    offered = []
    monkeypatch.setattr(rq, "_solve_mul_add_shift", lambda *args: offered.append(off_by_one(*args)) or offered[-1])
    plan = rq.plan(target, lo, hi)
    assert offered and offered[0] is not None and plan.impl is not offered[0]
    assert brute_force_equal(offered[0], target, lo, hi) is not None
    assert brute_force_equal(plan.impl, target, lo, hi) is None


def test_planner_refuses_when_nothing_is_proven(monkeypatch):
    target = random_target(np.random.default_rng(12), "float")
    wrong = rq.Thresholds(-128, 127, base=np.full(target.channels, 5), thresholds=np.zeros((target.channels, 0), np.int64))
    for name in ("_solve_shift", "_solve_mul_add_shift", "_solve_thresholds", "_solve_line_with_fixes",
                 "_solve_fallback"):
        monkeypatch.setattr(rq, name, lambda *a: wrong)
    with pytest.raises(RequantError, match=r"^dense7: no requantization circuit could be proven equal to onnxruntime"):
        rq.plan(target, np.full(target.channels, -100), np.full(target.channels, 100), label="dense7")


def test_proof_detects_a_single_wrong_accumulator():
    """Breakpoint checking sees a circuit that is wrong at one step only."""
    target = ScaleRound(tables=(), multiplier=np.array([0.01], F32), zero_point=0, lo=-128, hi=127)
    lo, hi = np.array([-9000]), np.array([9000])
    plan = rq.plan(target, lo, hi)
    _, bps = rq.breakpoints(lambda a: target.evaluate(a, 0), -9000, 9000)
    shifted = rq.Thresholds(-128, 127, base=np.array([target.evaluate(np.int64(-9000), 0)]),
                            thresholds=(bps + (np.arange(len(bps)) == 40)).reshape(1, -1))
    assert rq._agrees(plan.impl, target, lo, hi, [bps])
    assert not rq._agrees(shifted, target, lo, hi, [bps])


def line_with_fixes_target():
    """A target no line reaches exactly on [-3000, 3000] (found by search): a line and two fixes do."""
    rng = np.random.default_rng(1510)
    m = np.exp(rng.uniform(-8, -3, size=2)).astype(F32)
    zp = int(rng.integers(0, 256))
    return ScaleRound(tables=(), multiplier=m, zero_point=zp, lo=0, hi=255), np.full(2, -3000), np.full(2, 3000)


def test_line_with_fixes_covers_what_the_line_misses():
    target, lo, hi = line_with_fixes_target()
    args = solver_inputs(target, lo, hi)
    assert rq._solve_mul_add_shift(*args) is None
    plan = rq.plan(target, lo, hi)
    assert plan.kind == "mul-add-shift" and plan.impl.fixes >= 1
    assert brute_force_equal(plan.impl, target, lo, hi) is None
    line = rq.MulAddShift(plan.impl.lo, plan.impl.hi, mul=plan.impl.mul, add=plan.impl.add, shift=plan.impl.shift)
    assert brute_force_equal(line, target, lo, hi) is not None       # the fixes are needed


def test_proof_refuses_a_wrong_or_missing_fix():
    target, lo, hi = line_with_fixes_target()
    args = solver_inputs(target, lo, hi)
    impl = rq._solve_line_with_fixes(*args)
    assert rq._agrees(impl, target, lo, hi, args[3])
    c, k = np.argwhere(impl.fix_acc != lo[:, None])[0]
    wrong_code, missing = impl.fix_code.copy(), impl.fix_acc.copy()
    wrong_code[c, k] += 1
    missing[c, k] = lo[c]
    for fix_acc, fix_code in ((impl.fix_acc, wrong_code), (missing, impl.fix_code)):
        bad = rq.MulAddShift(impl.lo, impl.hi, mul=impl.mul, add=impl.add, shift=impl.shift,
                             fix_acc=fix_acc, fix_code=fix_code)
        assert brute_force_equal(bad, target, lo, hi) is not None
        assert not rq._agrees(bad, target, lo, hi, args[3])
