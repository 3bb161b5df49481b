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

from .errors import RequantError
from .requant_targets import ScaleRound

MAX_THRESHOLD_LEVELS = 15   # "outputs of ≤ 4 bits"


def signed_bits(lo, hi):
    """Width of the two's complement signal that holds every integer in [lo, hi]."""
    lo, hi = int(np.min(lo)), int(np.max(hi))
    bits = 1
    while not (-(1 << (bits - 1)) <= lo and hi <= (1 << (bits - 1)) - 1):
        bits += 1
    return bits


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
    """``(acc · mul_c + add_c) >> shift`` (floor), zero point folded into add."""
    mul: np.ndarray
    add: np.ndarray
    shift: int
    kind = "mul-add-shift"

    def unclamped(self, acc, c):
        return (acc * int(self.mul[c]) + int(self.add[c])) >> self.shift


@dataclass(frozen=True, eq=False)
class Thresholds(Implementation):
    """``base_c + #{k : acc ≥ thresholds[c, k]}``."""
    base: np.ndarray
    thresholds: np.ndarray
    kind = "thresholds"

    def unclamped(self, acc, c):
        return self.base[c] + (acc[..., None] >= self.thresholds[c]).sum(axis=-1)


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


def _agrees(impl, target, lo, hi, bps):
    for c in range(target.channels):
        pts = proof_points(lo[c], hi[c], bps[c])
        if not np.array_equal(impl.apply(pts, c), target.evaluate(pts, c)):
            return False
    return True


def plan(target, acc_lo, acc_hi, label="layer"):
    """The cheapest proven implementation of ``target`` over [acc_lo, acc_hi] per channel."""
    acc_lo = np.asarray(acc_lo, dtype=np.int64)
    acc_hi = np.asarray(acc_hi, dtype=np.int64)
    out_lo, out_hi = target.output_range()
    bps, tlo, thi = [], [], []
    for c in range(target.channels):
        f = lambda a, c=c: target.evaluate(a, c)
        _, b = breakpoints(f, acc_lo[c], acc_hi[c])
        bps.append(b)
        tlo.append(int(f(acc_lo[c])))
        thi.append(int(f(acc_hi[c])))
    levels = max((len(b) for b in bps), default=0)
    for solve in (_solve_shift, _solve_mul_add_shift, _solve_thresholds, _solve_fallback):
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


def _channel_mul_add(b, lo, hi, t_lo, t_hi, out_lo, out_hi, s):
    scale = 1 << s
    v = np.arange(t_lo + 1, t_hi + 1, dtype=np.int64)
    la, lp = [b], [v * scale]
    ua, uq = [b - 1], [v * scale - 1]
    if t_lo > out_lo:
        la.append([lo]); lp.append([t_lo * scale])
    if t_hi < out_hi:
        ua.append([hi]); uq.append([(t_hi + 1) * scale - 1])
    lower = (np.concatenate(la).astype(np.int64), np.concatenate(lp).astype(np.int64))
    upper = (np.concatenate(ua).astype(np.int64), np.concatenate(uq).astype(np.int64))
    return _feasible_mul(lower, upper)


def _solve_mul_add_shift(target, lo, hi, bps, tlo, thi, out_lo, out_hi, levels):
    acc_bits = signed_bits(lo, hi)
    max_shift = min(48, 61 - acc_bits - 8)
    if max_shift < 0:
        return None
    shifts, muls, adds = [], [], []
    for c in range(target.channels):
        args = (bps[c], lo[c], hi[c], tlo[c], thi[c], out_lo, out_hi)
        if len(bps[c]) == 0:                      # constant channel
            shifts.append(0); muls.append(0); adds.append(tlo[c])
            continue
        if _channel_mul_add(*args, max_shift) is None:
            return None
        a, b = 0, max_shift                       # feasibility is monotone in the shift
        while a < b:
            mid = (a + b) // 2
            if _channel_mul_add(*args, mid) is None:
                a = mid + 1
            else:
                b = mid
        m, k = _channel_mul_add(*args, a)
        shifts.append(a); muls.append(m); adds.append(k)
    s = max(shifts)
    mul = np.array([m << (s - k) for m, k in zip(muls, shifts)], dtype=np.int64)
    add = np.array([a << (s - k) for a, k in zip(adds, shifts)], dtype=np.int64)
    return MulAddShift(out_lo, out_hi, mul=mul, add=add, shift=s)


def _thresholds(bps, tlo, hi, out_lo, out_hi):
    width = max((len(b) for b in bps), default=0)
    table = np.array([np.concatenate([b, np.full(width - len(b), int(np.max(hi)) + 1)]) for b in bps],
                     dtype=np.int64).reshape(len(bps), width)
    return Thresholds(out_lo, out_hi, base=np.array(tlo, dtype=np.int64), thresholds=table)


def _solve_thresholds(target, lo, hi, bps, tlo, thi, out_lo, out_hi, levels):
    return _thresholds(bps, tlo, hi, out_lo, out_hi) if levels <= MAX_THRESHOLD_LEVELS else None


def _solve_fallback(target, lo, hi, bps, tlo, thi, out_lo, out_hi, levels):
    if isinstance(target, ScaleRound):
        frac, exp = np.frexp(target.multiplier.astype(np.float64))
        return FloatEmulation(target.lo, target.hi, mantissa=(frac * (1 << 24)).astype(np.int64),
                              exponent=(exp - 24).astype(np.int64), zero_point=target.zero_point,
                              tables=target.tables)
    return _thresholds(bps, tlo, hi, out_lo, out_hi)   # any monotone target, exact by construction
