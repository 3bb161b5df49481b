"""Bit-exact NumPy models of onnxruntime's quantized arithmetic (DESIGN.md §2).

Every function here reproduces one float32 computation of onnxruntime's CPU
kernels operation by operation; each is checked against onnxruntime in the
test suite with zero mismatches.  Integers travel as int64 arrays.
"""
import numpy as np

F32 = np.float32

DTYPE_RANGES = {"uint8": (0, 255), "int8": (-128, 127)}


def f32(x):
    """Round ``x`` to float32 (round half to even), elementwise."""
    return np.asarray(x).astype(F32)


def quantize_linear(x, scale, zero_point, qmin, qmax):
    """ONNX QuantizeLinear as ORT computes it: ``sat(RNE(f32(x / s)) + zp)``, for every float.

    Like ORT's kernel (MLAS), the quotient is clamped to ``[qmin - zp, qmax - zp]`` in float32
    before it is rounded, so ±inf and quotients beyond any integer saturate, and NaN gives
    ``qmin`` (``max(NaN, lo)`` is ``lo``); measured against onnxruntime in test_numeric.
    """
    zp = int(zero_point)
    lo, hi = F32(qmin - zp), F32(qmax - zp)
    with np.errstate(over="ignore", under="ignore", invalid="ignore", divide="ignore"):
        v = f32(f32(x) / F32(scale))
    v = np.where(np.isnan(v), lo, np.clip(v, lo, hi))
    return np.rint(v).astype(np.int64) + zp


def dequantize_linear(q, scale, zero_point):
    """ONNX DequantizeLinear as ORT computes it: ``f32(f32(q - zp) * s)``."""
    return f32(f32(np.asarray(q, dtype=np.int64) - zero_point) * F32(scale))


def fused_multiplier(input_scale, weight_scale, output_scale):
    """The per-channel float32 multiplier ORT computes once at load time."""
    return f32(f32(F32(input_scale) * f32(weight_scale)) / F32(output_scale))


def requantize(acc, multiplier, zero_point, lo, hi):
    """ORT's fused integer requantization: ``clamp(RNE(f32(f32(acc) * m)), lo, hi)``.

    ``acc`` already includes the bias; ``lo``/``hi`` are output codes (a fused
    ReLU raises ``lo`` to the zero point).  ``multiplier`` broadcasts against
    the last axis of ``acc``.
    """
    v = f32(f32(acc) * f32(multiplier))
    return np.clip(np.rint(v).astype(np.int64) + int(zero_point), lo, hi)


def fma32(x, y, z):
    """float32 fused multiply-add ``RNE32(x*y + z)``, exact, for |x*y| < 2**53.

    ``x*y`` is exact in float64; the float64 sum is corrected with TwoSum so
    that the single rounding to float32 is never a double rounding.
    """
    p = np.asarray(x, dtype=np.float64) * np.asarray(y, dtype=np.float64)
    z = np.asarray(z, dtype=np.float64)
    s = p + z
    bb = s - p
    err = (p - (s - bb)) + (z - bb)
    r = s.astype(F32)
    toward = np.where(s > r.astype(np.float64), np.inf, -np.inf).astype(F32)
    neighbour = np.nextafter(r, toward)
    mid = (r.astype(np.float64) + neighbour.astype(np.float64)) / 2
    # s sits exactly on a float32 tie but the exact sum lies beyond it:
    # the exact value rounds to the float32 on the side of err.
    beyond = (s == mid) & (np.sign(err) == np.sign(neighbour.astype(np.float64) - r.astype(np.float64)))
    return np.where(beyond & (err != 0), neighbour, r).astype(F32)


def qlinear_add(a, a_scale, a_zero, b, b_scale, b_zero, c_scale, c_zero, qmin, qmax):
    """com.microsoft.QLinearAdd as ORT's AVX2 kernel (qladd_avx2.cpp) computes it.

    ``c = sat(RNE(fma(a, rA, fma(b, rB, F))))`` on raw codes, with
    ``rA = f32(sA / sC)``, ``rB = f32(sB / sC)`` and ``F = zC - fma(rA, zA, rB*zB)``
    (the compiler contracts the fixed part into an FMA; measured against ORT).
    """
    ra = F32(F32(a_scale) / F32(c_scale))
    rb = F32(F32(b_scale) / F32(c_scale))
    fixed = F32(F32(c_zero) - fma32(ra, F32(a_zero), F32(rb * F32(b_zero))))
    v = fma32(a, ra, fma32(b, rb, fixed))
    return np.clip(np.rint(v).astype(np.int64), qmin, qmax)


def dequantized_units(scale, zero_point, qmin, qmax):
    """onnxruntime's dequantized values ``f32(s · (q − zp))`` of every code q in [qmin, qmax], as
    integers T_q in units of 2**e: (T, e).  2**e is the float32 ulp of ``s``, which divides every
    nonzero value (each is at least s in magnitude), so the integers are exact."""
    v = dequantize_linear(np.arange(qmin, qmax + 1), scale, zero_point).astype(np.float64)
    e = int(np.frexp(np.float64(F32(scale)))[1]) - 24
    return np.ldexp(v, -e).astype(np.int64), e


def round_to_f32(v):
    """Integers ``v`` (|v| < 2**53) rounded to 24 significant bits, half to even: the float32
    rounding of a value in units of 2**e (exact through float64, which holds v exactly)."""
    return np.asarray(v, dtype=np.int64).astype(np.float64).astype(F32).astype(np.int64)


def float_sum(terms):
    """The float32 sum ``((t0 + t1) + t2) + …`` over the last axis of integer terms in units of
    2**e, each partial sum rounded as float32 rounds it; starts at 0 like onnxruntime's pools."""
    acc = np.zeros(terms.shape[:-1], dtype=np.int64)
    for k in range(terms.shape[-1]):
        acc = round_to_f32(acc + terms[..., k])
    return acc


def average_to_code(total, e, count, scale, zero_point, qmin, qmax):
    """A float32 window sum (integer ``total`` in units of 2**e) → output code, as onnxruntime's
    QLinearAveragePool finishes it: ``y = f32(sum / count)``, then ``sat(nearbyint(f32(y / s) + zp))``
    (the zero point added in float32, unlike QuantizeLinear)."""
    y = np.ldexp(np.asarray(total, dtype=np.int64).astype(np.float64).astype(F32), e).astype(F32)
    y = f32(y / F32(count))
    return np.clip(np.rint(f32(f32(y / F32(scale)) + F32(zero_point))).astype(np.int64), qmin, qmax)


def signed_bits(lo, hi):
    """Width of the two's complement signal that holds every integer in [lo, hi]."""
    lo, hi = int(np.min(lo)), int(np.max(hi))
    bits = 1
    while not (-(1 << (bits - 1)) <= lo and hi <= (1 << (bits - 1)) - 1):
        bits += 1
    return bits


# QONNX (the QONNX spec's IntQuant; qonnx.custom_op.general.intquant computes it): the rounding
# modes are Java's RoundingMode names; ROUND is half to even.
ROUNDING_MODES = ("ROUND", "HALF_EVEN", "CEIL", "FLOOR", "UP", "DOWN", "HALF_UP", "HALF_DOWN")


BIPOLAR = "BIPOLAR"   # not a rounding mode: a BipolarQuant's sign, +1 for x ≥ 0, else −1


def bipolar_quant(x):
    """BipolarQuant's codes of float ``x``: +1 where x ≥ 0, −1 elsewhere (NaN too)."""
    return np.where(np.asarray(x) >= 0, 1, -1).astype(np.int64)


def round_float(v, mode):
    """``v`` (float) rounded to integers by QONNX rounding ``mode``, elementwise in float."""
    v = np.asarray(v)
    sign, mag = np.sign(v), np.abs(v)
    return {"ROUND": np.rint, "HALF_EVEN": np.rint, "CEIL": np.ceil, "FLOOR": np.floor,
            "UP": lambda x: sign * np.ceil(mag), "DOWN": np.trunc,
            "HALF_UP": lambda x: sign * np.floor(mag + 0.5),
            "HALF_DOWN": lambda x: sign * np.ceil(mag - 0.5)}[mode](v)


def int_quant(x, scale, zero_point, qmin, qmax, mode):
    """QONNX Quant's codes of float ``x`` as its float32 definition computes them:
    ``R(clip(f32(f32(x / s) + zp), qmin, qmax))`` (the zero point added before rounding, unlike
    QuantizeLinear); ``scale`` broadcasts against ``x``."""
    with np.errstate(over="ignore", under="ignore", invalid="ignore", divide="ignore"):
        v = f32(f32(f32(x) / f32(scale)) + f32(zero_point))
    v = np.where(np.isnan(v), F32(qmin), np.clip(v, F32(qmin), F32(qmax)))
    return round_float(v, mode).astype(np.int64)


def round_ratio(n, d, mode):
    """``n / d`` rounded by QONNX rounding ``mode``, exactly: ``n`` integers (int64 or Python ints
    in an object array), ``d`` a positive integer."""
    n = np.asarray(n)
    f = n // d
    r = n - f * d
    up, tie, above = r > 0, 2 * r == d, 2 * r > d
    positive = n > 0
    step = {"FLOOR": np.zeros_like(up), "CEIL": up, "DOWN": up & ~positive & (n != 0),
            "UP": up & positive,
            "ROUND": above | (tie & (f % 2 == 1)), "HALF_EVEN": above | (tie & (f % 2 == 1)),
            "HALF_UP": above | (tie & positive), "HALF_DOWN": above | (tie & ~positive)}[mode]
    return f + step.astype(n.dtype if n.dtype != object else np.int64)
