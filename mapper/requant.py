"""Requantization planner (DESIGN.md §2): for each layer, the cheapest integer
circuit that is *proven* equal to the onnxruntime target on the whole
accumulator range.

A target T is monotone, so it is described by its breakpoints b (T(b-1) < T(b)).
Every candidate circuit below is monotone too, hence equal to T on [L, H] iff
it agrees at L, H and at every b and b-1.  ``plan`` refuses to return a circuit
that fails this check.  Each implementation's ``apply`` is a NumPy model in the
exact integer form the hardware uses.
"""
from dataclasses import dataclass, field

import numpy as np

from . import limits
from .errors import RequantError
from .numeric import signed_bits
from .requant_targets import ScaleRound

MAX_THRESHOLD_LEVELS = 15   # "outputs of ≤ 4 bits"


def bit_length(x):
    """Elementwise bit length of non-negative int64 values below 2**53."""
    x = np.asarray(x, dtype=np.int64)
    return np.where(x > 0, np.frexp(x.astype(np.float64))[1], 0).astype(np.int64)


def rne_shift(x, k):
    """``RNE(x / 2**k)`` for integers x and k ≥ 0 (arrays broadcast)."""
    x = np.asarray(x, dtype=np.int64)
    k = np.minimum(np.asarray(k, dtype=np.int64), 62)
    q = x >> k
    r = x - (q << k)
    half = np.where(k > 0, np.left_shift(1, np.maximum(k - 1, 0)), 1 << 62)
    return q + ((r > half) | ((r == half) & ((q & 1) == 1)))


def round_significant(x, bits):
    """Round non-negative ``x`` to ``bits`` significant bits (RNE): returns (m, e), x ≈ m·2**e."""
    shift = np.maximum(bit_length(x) - bits, 0)
    m = rne_shift(x, shift)
    carry = m >> bits          # rounding up to 2**bits: renormalize
    return m >> carry, shift + carry


# ---- implementations -------------------------------------------------------------------------

@dataclass(frozen=True, eq=False)
class Implementation:
    lo: int
    hi: int
    kind = "?"

    def unclamped(self, acc, channel):
        raise NotImplementedError

    def apply(self, acc, channel):
        return np.clip(self.unclamped(np.asarray(acc, dtype=np.int64), channel), self.lo, self.hi)

    def apply_all(self, acc):
        return np.stack([self.apply(acc[:, c], c) for c in range(acc.shape[1])], axis=1)


@dataclass(frozen=True, eq=False)
class Shift(Implementation):
    """``RNE(acc · 2**exponent_c) + zp``: a shift with half-even rounding."""
    exponent: np.ndarray
    zero_point: int
    kind = "shift"

    def unclamped(self, acc, c):
        e = int(self.exponent[c])
        return (acc << e if e >= 0 else rne_shift(acc, -e)) + self.zero_point


@dataclass(frozen=True, eq=False)
class MulAddShift(Implementation):
    """``(acc · mul_c + add_c) >> shift`` (floor), zero point folded into add, then the
    channel's fixes: ``fix_code[c, k]`` wherever ``acc == fix_acc[c, k]`` (the few
    accumulators where float32 rounding leaves the line; unused slots repeat a correct point)."""
    mul: np.ndarray
    add: np.ndarray
    shift: int
    fix_acc: np.ndarray = None
    fix_code: np.ndarray = None
    kind = "mul-add-shift"

    @property
    def fixes(self):
        """Fix slots per channel (0 for a plain line)."""
        return 0 if self.fix_acc is None else self.fix_acc.shape[1]

    def unclamped(self, acc, c):
        return (acc * int(self.mul[c]) + int(self.add[c])) >> self.shift

    def line(self, acc, c):
        return super().apply(acc, c)

    def apply(self, acc, c):
        acc = np.asarray(acc, dtype=np.int64)
        codes = self.line(acc, c)
        for k in range(self.fixes):
            codes = np.where(acc == self.fix_acc[c, k], self.fix_code[c, k], codes)
        return codes


@dataclass(frozen=True, eq=False)
class Thresholds(Implementation):
    """``base_c + #{k : acc ≥ thresholds[c, k]}``."""
    base: np.ndarray
    thresholds: np.ndarray
    kind = "thresholds"

    def unclamped(self, acc, c):
        return self.base[c] + (acc[..., None] >= self.thresholds[c]).sum(axis=-1)


@dataclass(frozen=True, eq=False)
class ThresholdSearch(Thresholds):
    """The count of Thresholds found by a binary search: ``depth`` stages, each one comparison
    against a threshold read from a ROM (hdl.requant), for targets with many levels (an
    average pool's float division has up to 255) where a comparator per level is too large.
    ``thresholds`` has 2**depth − 1 sorted columns, padded above the accumulator range."""
    kind = "threshold-search"

    @property
    def depth(self):
        return self.thresholds.shape[1].bit_length()


@dataclass(frozen=True, eq=False)
class FloatEmulation(Implementation):
    """Integer emulation of ``RNE(f32(f32(acc) · m_c)) + zp`` with m_c = mantissa_c · 2**exponent_c
    (24-bit mantissa), followed by the target's code tables (ROMs), if any."""
    mantissa: np.ndarray
    exponent: np.ndarray
    zero_point: int
    tables: tuple = field(default=())
    kind = "float-emulation"

    def unclamped(self, acc, c):
        a, ea = round_significant(np.abs(acc), 24)          # f32(acc)
        p, ep = round_significant(a * int(self.mantissa[c]), 24)   # f32(· m)
        e = ea + ep + int(self.exponent[c])
        v = np.where(e >= 0, p << np.clip(e, 0, 32), rne_shift(p, np.maximum(-e, 0)))
        return np.where(acc < 0, -v, v) + self.zero_point

    def apply(self, acc, c):
        codes = super().apply(acc, c)
        for t in self.tables:
            codes = t.apply(codes, c)
        return codes


# ---- the proof -------------------------------------------------------------------------------

def breakpoints(f, lo, hi):
    """Levels v and the smallest acc in [lo, hi] with f(acc) ≥ v, for monotone f."""
    f_lo, f_hi = int(f(np.int64(lo))), int(f(np.int64(hi)))
    levels = np.arange(f_lo + 1, f_hi + 1, dtype=np.int64)
    a = np.full(levels.shape, lo, dtype=np.int64)
    b = np.full(levels.shape, hi, dtype=np.int64)
    while True:
        active = b - a > 1
        if not active.any():
            return levels, b
        mid = (a + b) // 2
        ge = f(mid) >= levels
        b = np.where(active & ge, mid, b)
        a = np.where(active & ~ge, mid, a)


def proof_points(lo, hi, bps):
    return np.unique(np.concatenate([[lo, hi], bps, bps - 1]).astype(np.int64))


@dataclass(frozen=True, eq=False)
class Plan:
    """The proven circuit for one layer, with its accumulator range."""
    impl: Implementation
    acc_lo: np.ndarray
    acc_hi: np.ndarray
    levels: int                      # most breakpoints of any channel

    @property
    def kind(self):
        return self.impl.kind

    @property
    def acc_bits(self):
        return signed_bits(self.acc_lo, self.acc_hi)


def disagreement(f, g, lo, hi, f_bps, limit):
    """The accumulators in [lo, hi] where the monotone functions f and g differ (f's
    breakpoints given), or None when there are more than ``limit``.  Exact: neither
    function changes between consecutive breakpoints of the two."""
    _, g_bps = breakpoints(g, lo, hi)
    starts = np.unique(np.concatenate([[lo], f_bps, g_bps]).astype(np.int64))
    ends = np.append(starts[1:] - 1, hi)
    differ = f(starts) != g(starts)
    if (ends[differ] - starts[differ] + 1).sum() > limit:
        return None
    return np.concatenate([np.arange(a, b + 1) for a, b in zip(starts[differ], ends[differ])] +
                          [np.zeros(0, dtype=np.int64)])


def _agrees(impl, target, lo, hi, bps):
    for c in range(target.channels):
        f = lambda a, c=c: target.evaluate(a, c)
        if getattr(impl, "fixes", 0):
            # a line with fixes: the line is monotone, so it differs from the target exactly on
            # a computable set, which the fixes must cover with the target's codes
            wrong = disagreement(f, lambda a, c=c: impl.line(a, c), lo[c], hi[c], bps[c], impl.fixes)
            fix_acc = impl.fix_acc[c]
            used = (fix_acc >= lo[c]) & (fix_acc <= hi[c])
            if wrong is None or not np.isin(wrong, fix_acc).all() or \
                    not np.array_equal(impl.fix_code[c][used], f(fix_acc[used])):
                return False
            continue
        pts = proof_points(lo[c], hi[c], bps[c])
        if not np.array_equal(impl.apply(pts, c), f(pts)):
            return False
    return True


def plan(target, acc_lo, acc_hi, label="layer"):
    """The cheapest proven implementation of ``target`` over [acc_lo, acc_hi] per channel
    (refused before any proof beyond limits.CHANNELS or limits.PLANNER_STEPS)."""
    acc_lo = np.asarray(acc_lo, dtype=np.int64)
    acc_hi = np.asarray(acc_hi, dtype=np.int64)
    limits.check_plan(target, acc_lo, acc_hi, label)
    out_lo, out_hi = target.output_range()
    bps, tlo, thi = [], [], []
    for c in range(target.channels):
        f = lambda a, c=c: target.evaluate(a, c)
        _, b = breakpoints(f, acc_lo[c], acc_hi[c])
        bps.append(b)
        tlo.append(int(f(acc_lo[c])))
        thi.append(int(f(acc_hi[c])))
    levels = max((len(b) for b in bps), default=0)
    for solve in (_solve_shift, _solve_mul_add_shift, _solve_thresholds, _solve_line_with_fixes,
                  _solve_fallback):
        impl = solve(target, acc_lo, acc_hi, bps, tlo, thi, out_lo, out_hi, levels)
        if impl is not None and _agrees(impl, target, acc_lo, acc_hi, bps):
            return Plan(impl, acc_lo, acc_hi, levels)
    raise RequantError(f"{label}: no requantization circuit could be proven equal to onnxruntime "
                       f"on the accumulator range [{acc_lo.min()}, {acc_hi.max()}]; "
                       "please report this model")


def _solve_shift(target, lo, hi, bps, tlo, thi, out_lo, out_hi, levels):
    if not isinstance(target, ScaleRound) or target.tables:
        return None
    frac, exp = np.frexp(target.multiplier.astype(np.float64))
    if not np.all(frac == 0.5):
        return None
    return Shift(out_lo, out_hi, exponent=(exp - 1).astype(np.int64), zero_point=target.zero_point)


MAX_MUL = 1 << 40


def _feasible_mul(lower, upper):
    """Smallest (M, C) with a·M + C ≥ p for (a, p) in lower and a·M + C ≤ q for (a, q) in upper."""
    la, lp = lower
    ua, uq = upper
    d = ua[None, :] - la[:, None]
    r = uq[None, :] - lp[:, None]
    if np.any((d == 0) & (r < 0)):
        return None
    m_lo = max(1, int((-np.floor_divide(-r[d < 0], d[d < 0])).max(initial=1)))
    m_hi = int(np.floor_divide(r[d > 0], d[d > 0]).min(initial=MAX_MUL))
    if m_lo > m_hi:
        return None
    c_lo = int((lp - la * m_lo).max(initial=-(1 << 62)))
    c_hi = int((uq - ua * m_lo).min(initial=1 << 62))
    return (m_lo, c_lo) if c_lo <= c_hi else None


def _channel_mul_add(v, b, lo, hi, t_lo, t_hi, out_lo, out_hi, s):
    """Smallest (M, C) with floor((acc·M + C) / 2**s) reaching level v[i] exactly at b[i]."""
    scale = 1 << s
    la, lp = [b], [v * scale]
    ua, uq = [b - 1], [v * scale - 1]
    if t_lo > out_lo:
        la.append([lo]); lp.append([t_lo * scale])
    if t_hi < out_hi:
        ua.append([hi]); uq.append([(t_hi + 1) * scale - 1])
    lower = (np.concatenate(la).astype(np.int64), np.concatenate(lp).astype(np.int64))
    upper = (np.concatenate(ua).astype(np.int64), np.concatenate(uq).astype(np.int64))
    return _feasible_mul(lower, upper)


def _fit_lines(channels, max_shift):
    """(mul, add, shift) of the narrowest lines through each channel's (v, b, ...) constraints,
    one shift for all; None when a channel has no line."""
    shifts, muls, adds = [], [], []
    for args in channels:
        v, b, lo, hi, t_lo = args[:5]
        if len(b) == 0:                           # constant channel
            shifts.append(0); muls.append(0); adds.append(t_lo)
            continue
        a = _narrowest_shift(args, max_shift)     # feasibility is monotone in the shift
        if a is None:
            return None
        m, k = _channel_mul_add(*args, a)
        shifts.append(a); muls.append(m); adds.append(k)
    s = max(shifts)
    mul = np.array([m << (s - k) for m, k in zip(muls, shifts)], dtype=np.int64)
    add = np.array([a << (s - k) for a, k in zip(adds, shifts)], dtype=np.int64)
    return mul, add, s


def _max_shift(lo, hi):
    return min(48, 61 - signed_bits(lo, hi) - 8)


def _solve_mul_add_shift(target, lo, hi, bps, tlo, thi, out_lo, out_hi, levels):
    if _max_shift(lo, hi) < 0:
        return None
    lines = _fit_lines([(np.arange(tlo[c] + 1, thi[c] + 1, dtype=np.int64), bps[c], lo[c], hi[c], tlo[c], thi[c],
                         out_lo, out_hi) for c in range(target.channels)], _max_shift(lo, hi))
    if lines is None:
        return None
    mul, add, s = lines
    return MulAddShift(out_lo, out_hi, mul=mul, add=add, shift=s)


MAX_FIXES = 4


def _slack(multiplier, zero_point, v, b):
    """How far each breakpoint b of level v sits inside the exact real interval of
    ``floor(acc · m + zp + 1/2)`` (negative where float32 rounding moved it off the line).
    The products are exact in float64 (a 24-bit mantissa times |acc| < 2**29)."""
    m = np.float64(multiplier)
    threshold = v.astype(np.float64) - zero_point - 0.5
    return np.minimum(b * m - threshold, threshold - (b - 1) * m)


def _narrowest_shift(args, max_shift):
    """The smallest shift at which a channel has a line, or None."""
    if _channel_mul_add(*args, max_shift) is None:
        return None
    a, z = 0, max_shift
    while a < z:
        mid = (a + z) // 2
        if _channel_mul_add(*args, mid) is None:
            a = mid + 1
        else:
            z = mid
    return a


def _solve_line_with_fixes(target, lo, hi, bps, tlo, thi, out_lo, out_hi, levels):
    """A mul-add-shift line through all but the k tightest breakpoints of each channel (those
    float32 rounding moved, then those closest to a rounding boundary, which need the most
    precision), and fixes for the few accumulators where the target leaves it."""
    if not isinstance(target, ScaleRound) or target.tables or _max_shift(lo, hi) < 0:
        return None
    max_shift = _max_shift(lo, hi)
    channels = []
    for c in range(target.channels):
        v = np.arange(tlo[c] + 1, thi[c] + 1, dtype=np.int64)
        order = np.argsort(_slack(target.multiplier[c], target.zero_point, v, bps[c]), kind="stable")
        best = None
        for k in range(min(MAX_FIXES, len(v)) + 1):
            keep = np.ones(len(v), dtype=bool)
            keep[order[:k]] = False
            args = (v[keep], bps[c][keep], lo[c], hi[c], tlo[c], thi[c], out_lo, out_hi)
            shift = _narrowest_shift(args, max_shift)
            if shift is not None and (best is None or shift + k < best[0]):
                best = (shift + k, args)
        if best is None:
            return None
        channels.append(best[1])
    lines = _fit_lines(channels, _max_shift(lo, hi))
    if lines is None:
        return None
    mul, add, s = lines
    line = MulAddShift(out_lo, out_hi, mul=mul, add=add, shift=s)
    fix_acc = np.zeros((target.channels, MAX_FIXES), dtype=np.int64)
    fix_code = np.zeros((target.channels, MAX_FIXES), dtype=np.int64)
    used = 0
    for c in range(target.channels):
        f = lambda a, c=c: target.evaluate(a, c)
        wrong = disagreement(f, lambda a, c=c: line.apply(a, c), lo[c], hi[c], bps[c], MAX_FIXES)
        if wrong is None:
            return None
        used = max(used, len(wrong))
        acc = np.concatenate([wrong, np.full(MAX_FIXES - len(wrong), lo[c])]).astype(np.int64)
        fix_acc[c], fix_code[c] = acc, f(acc)
    if used == 0:
        return line
    return MulAddShift(out_lo, out_hi, mul=mul, add=add, shift=s,
                       fix_acc=fix_acc[:, :used], fix_code=fix_code[:, :used])


def _thresholds(bps, tlo, hi, out_lo, out_hi):
    width = max((len(b) for b in bps), default=0)
    kind = Thresholds
    if width > MAX_THRESHOLD_LEVELS:
        kind, width = ThresholdSearch, (1 << width.bit_length()) - 1
    table = np.array([np.concatenate([b, np.full(width - len(b), int(np.max(hi)) + 1)]) for b in bps],
                     dtype=np.int64).reshape(len(bps), width)
    return kind(out_lo, out_hi, base=np.array(tlo, dtype=np.int64), thresholds=table)


def _solve_thresholds(target, lo, hi, bps, tlo, thi, out_lo, out_hi, levels):
    return _thresholds(bps, tlo, hi, out_lo, out_hi) if levels <= MAX_THRESHOLD_LEVELS else None


def _solve_fallback(target, lo, hi, bps, tlo, thi, out_lo, out_hi, levels):
    if isinstance(target, ScaleRound):
        frac, exp = np.frexp(target.multiplier.astype(np.float64))
        return FloatEmulation(target.lo, target.hi, mantissa=(frac * (1 << 24)).astype(np.int64),
                              exponent=(exp - 24).astype(np.int64), zero_point=target.zero_point,
                              tables=target.tables)
    return _thresholds(bps, tlo, hi, out_lo, out_hi)   # any monotone target, exact by construction


# ---- residual add: two code inputs ------------------------------------------------------------

@dataclass(frozen=True, eq=False)
class AddLine:
    """``c = clamp((mul_a·(a − a_lo) + mul_b·(b − b_lo) + add) >> shift, lo, hi)`` for codes
    a in [a_lo, a_hi] and b in [b_lo, b_hi]: onnxruntime's QLinearAdd as integers."""
    mul_a: int
    mul_b: int
    add: int
    shift: int
    a_lo: int
    a_hi: int
    b_lo: int
    b_hi: int
    lo: int
    hi: int

    def apply(self, a, b):
        a, b = np.asarray(a, np.int64), np.asarray(b, np.int64)
        return np.clip((self.mul_a * (a - self.a_lo) + self.mul_b * (b - self.b_lo) + self.add) >> self.shift,
                       self.lo, self.hi)

    @property
    def sum_range(self):
        return self.add, self.mul_a * (self.a_hi - self.a_lo) + self.mul_b * (self.b_hi - self.b_lo) + self.add


def plan_add(node, a_range, b_range, max_shift=30):
    """The narrowest AddLine equal to ``node.reference`` on every pair of codes in the two
    ranges (an exhaustive proof: at most 2**16 pairs for 8-bit codes); refused otherwise.

    For fixed multipliers and shift, each pair bounds ``add`` from both sides
    (t·2**s ≤ L + add < (t+1)·2**s, one side only where t is clamped), so the feasible
    ``add`` are an interval, computed exactly."""
    (a_lo, a_hi), (b_lo, b_hi) = (int(v) for v in a_range), (int(v) for v in b_range)
    a = np.arange(a_lo, a_hi + 1, dtype=np.int64)[:, None]
    b = np.arange(b_lo, b_hi + 1, dtype=np.int64)[None, :]
    t = np.broadcast_to(node.reference(a, b), (len(a), b.shape[1])).astype(np.int64)
    ra, rb = float(node.a_scale) / node.scale, float(node.b_scale) / node.scale
    lo, hi = node.lo, node.hi
    for s in range(max_shift + 1):
        for ma in sorted({int(np.floor(ra * 2 ** s)), int(np.ceil(ra * 2 ** s))}):
            for mb in sorted({int(np.floor(rb * 2 ** s)), int(np.ceil(rb * 2 ** s))}):
                line = ma * (a - a_lo) + mb * (b - b_lo)
                above, below = t > lo, t < hi
                k_min = int(((t << s) - line)[above].max()) if above.any() else -(1 << 62)
                k_max = int((((t + 1) << s) - line - 1)[below].min()) if below.any() else 1 << 62
                if k_min <= k_max:
                    k = k_min if above.any() else min(k_max, 0)
                    impl = AddLine(ma, mb, k, s, a_lo, a_hi, b_lo, b_hi, lo, hi)
                    assert np.array_equal(impl.apply(a, b), t)
                    return impl
    raise RequantError(f"{node.label}: no integer line (a·A + b·B + K) >> s with s ≤ {max_shift} equals "
                       "onnxruntime's QLinearAdd on every pair of input codes; requantize the two inputs "
                       "to the same scale, or report this model.")
