"""Requantization targets: the exact function acc → output code that the model's oracle
computes for one layer, per channel (onnxruntime; the QONNX spec for a Quant).  Each is monotone non-decreasing in acc,
which is what lets the planner prove a circuit equal to it (requant.py)."""
import math
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from . import numeric
from .numeric import F32


@dataclass(frozen=True, eq=False)
class CodeTable:
    """A per-channel code → code table applied after requantization.

    ``table[c, q - in_qmin]`` is the output code for input code ``q`` in channel
    ``c``; ``what`` says where it came from (for reports)."""
    table: np.ndarray
    in_qmin: int
    what: str

    def __post_init__(self):
        if np.any(np.diff(self.table, axis=1) < 0):
            raise ValueError(f"{self.what}: table is not monotone non-decreasing")

    def apply(self, codes, channel):
        return self.table[channel][np.asarray(codes, dtype=np.int64) - self.in_qmin]

    @classmethod
    def qlinear_add(cls, channels, in_code, a_scale, a_zero, b_codes, b_scale, b_zero,
                    c_scale, c_zero, out_code, what):
        """Adding a constant ``b`` (per channel, or one value) as ORT's QLinearAdd does."""
        a = np.arange(in_code.qmin, in_code.qmax + 1, dtype=np.int64)[None, :]
        b = np.broadcast_to(np.asarray(b_codes, dtype=np.int64).reshape(-1), (channels,))[:, None]
        table = numeric.qlinear_add(a, a_scale, a_zero, b, b_scale, b_zero,
                                    c_scale, c_zero, out_code.qmin, out_code.qmax)
        return cls(table=np.ascontiguousarray(table), in_qmin=in_code.qmin, what=what)


@dataclass(frozen=True, eq=False)
class Target:
    """Base: a first stage acc → code, then ``tables`` applied in order."""
    tables: tuple

    @property
    def channels(self):
        raise NotImplementedError

    def first_stage(self, acc, channel):
        raise NotImplementedError

    def first_stage_range(self):
        raise NotImplementedError

    def evaluate(self, acc, channel):
        codes = self.first_stage(np.asarray(acc, dtype=np.int64), channel)
        for t in self.tables:
            codes = t.apply(codes, channel)
        return codes

    def levels(self, acc_lo, acc_hi):
        """Per channel, the breakpoints of T on [acc_lo_c, acc_hi_c]: T(acc_hi_c) − T(acc_lo_c)
        (T is monotone), every channel at once (what the planner's work grows with)."""
        c = np.arange(self.channels)
        ends = [self.first_stage(np.asarray(a, dtype=np.int64).reshape(-1), c) for a in (acc_lo, acc_hi)]
        for t in self.tables:
            ends = [t.table[c, codes - t.in_qmin] for codes in ends]
        return np.asarray(ends[1] - ends[0], dtype=np.int64)

    def reference(self, acc):
        acc = np.asarray(acc, dtype=np.int64)
        out = np.stack([self.first_stage(acc[:, c], c) for c in range(self.channels)], axis=1)
        for t in self.tables:
            out = np.stack([t.apply(out[:, c], c) for c in range(self.channels)], axis=1)
        return out

    def output_range(self):
        lo, hi = self.first_stage_range()
        for t in self.tables:
            lo = int(t.table[:, lo - t.in_qmin].min())
            hi = int(t.table[:, hi - t.in_qmin].max())
        return lo, hi


@dataclass(frozen=True, eq=False)
class ScaleRound(Target):
    """ORT's fused integer path: ``clamp(RNE(f32(f32(acc) · m_c)) + zp, lo, hi)``."""
    multiplier: np.ndarray
    zero_point: int
    lo: int
    hi: int

    def __post_init__(self):
        m = np.asarray(self.multiplier)
        if m.dtype != F32 or m.ndim != 1:
            raise ValueError("multiplier must be a 1-D float32 array")
        if not np.all(np.isfinite(m) & (m > 0)):
            raise ValueError(f"requantization multipliers must be positive and finite, got {m}")
        if np.any(m < np.finfo(F32).tiny):
            raise ValueError("requantization multiplier is subnormal")

    @property
    def channels(self):
        return len(self.multiplier)

    def first_stage(self, acc, channel):
        return numeric.requantize(acc, self.multiplier[channel], self.zero_point, self.lo, self.hi)

    def first_stage_range(self):
        return self.lo, self.hi


@dataclass(frozen=True, eq=False)
class FloatChain(Target):
    """MatMulInteger → Cast → Mul(scale) → [Add(bias)] → [Relu] → QuantizeLinear,
    each a float32 operation as ORT runs it unfused."""
    scale: np.ndarray
    bias: np.ndarray
    relu: bool
    out_scale: float
    zero_point: int
    lo: int
    hi: int

    @property
    def channels(self):
        return len(self.scale)

    def first_stage(self, acc, channel):
        v = numeric.f32(numeric.f32(acc) * self.scale[channel])
        v = numeric.f32(v + self.bias[channel])
        if self.relu:
            v = np.maximum(v, F32(0))
        return numeric.quantize_linear(v, self.out_scale, self.zero_point, self.lo, self.hi)

    def first_stage_range(self):
        return self.lo, self.hi


@dataclass(frozen=True, eq=False)
class FloatMean(Target):
    """An average pool's end: a float32 window sum (integer ``acc`` in units of 2**exponent,
    qgraph.FloatSumPool) divided by ``count`` in float32 and quantized as QLinearAveragePool
    does (numeric.average_to_code).
    Monotone: every step is a rounding of a monotone real function."""
    exponent: int
    count: int
    scale: float
    zero_point: int
    lo: int
    hi: int
    n_channels: int

    @property
    def channels(self):
        return self.n_channels

    def first_stage(self, acc, channel):
        return numeric.average_to_code(acc, self.exponent, self.count, self.scale, self.zero_point,
                                       self.lo, self.hi)

    def first_stage_range(self):
        return self.lo, self.hi


@dataclass(frozen=True, eq=False)
class ExactQuant(Target):
    """A QONNX Quant of a layer's exact result (the QONNX spec's meaning, DESIGN.md §2): per
    channel c, ``clamp(R(y_c(acc) / s + zp), lo, hi)`` with ``y_c = acc · a_c + b_c`` (``a_c``
    the input scale × the weight scale, ``b_c`` the bias, exact rationals of their float32
    values; a Relu takes ``max(y_c, 0)``) and R the Quant's rounding mode; mode BIPOLAR is a
    BipolarQuant's ``y_c ≥ 0 ? 1 : −1`` instead.  Kept as integers: the value is
    ``(relu(acc · k1 + kb) + kz) / den``."""
    k1: tuple
    kb: tuple
    kz: tuple
    den: tuple
    relu: bool
    mode: str
    lo: int
    hi: int

    @classmethod
    def of(cls, acc_scale, bias, out_scale, zero_point, relu, mode, lo, hi):
        """From the per-channel Fractions ``acc_scale`` and ``bias`` and the output scale."""
        k1, kb, kz, den = [], [], [], []
        s = Fraction(out_scale)
        for a, b in zip(acc_scale, bias):
            a, b = Fraction(a) / s, Fraction(b) / s
            d = math.lcm(a.denominator, b.denominator)
            k1.append(a.numerator * (d // a.denominator))
            kb.append(b.numerator * (d // b.denominator))
            kz.append(int(zero_point) * d)
            den.append(d)
        return cls(tables=(), k1=tuple(k1), kb=tuple(kb), kz=tuple(kz), den=tuple(den),
                   relu=bool(relu), mode=mode, lo=int(lo), hi=int(hi))

    @property
    def channels(self):
        return len(self.k1)

    def first_stage(self, acc, channel):
        acc, ch = np.asarray(acc, dtype=np.int64), np.asarray(channel)
        if ch.ndim == 0:
            return self.codes(acc, int(ch))
        acc, ch = np.broadcast_arrays(acc, ch)
        out = np.empty(acc.shape, np.int64)
        for c in np.unique(ch):
            out[ch == c] = self.codes(acc[ch == c], int(c))
        return out

    def codes(self, acc, channel):
        k1, kb, kz, d = self.k1[channel], self.kb[channel], self.kz[channel], self.den[channel]
        reach = int(np.abs(acc).max(initial=0)) * abs(k1) + abs(kb) + abs(kz)
        a = acc if reach < 2 ** 62 and d < 2 ** 62 else acc.astype(object)   # exact either way
        v = a * k1 + kb
        if self.relu:
            v = np.maximum(v, 0)
        if self.mode == numeric.BIPOLAR:          # the sign of (v + kz) / d, d > 0
            return np.where(v + kz >= 0, 1, -1).astype(np.int64)
        codes = numeric.round_ratio(v + kz, d, self.mode)
        codes = np.asarray(codes)
        if codes.dtype == object:   # clamped before it is narrowed to int64
            codes = np.asarray(np.clip(codes, self.lo, self.hi)).astype(np.int64)
        return np.clip(codes, self.lo, self.hi)

    def first_stage_range(self):
        return self.lo, self.hi
