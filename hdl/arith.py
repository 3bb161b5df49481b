"""Integer arithmetic stages the requantizers are built of: half-even rounding shifts, the
leading one and its position, partial products of a constant in ``CHUNK``-bit digits, pipelined
adder trees and clamping.  Pure functions of Amaranth values; no component of its own."""
from amaranth.hdl import Cat, Const, Mux, Signal, signed, unsigned


def rne_shift(m, x, k, max_k):
    """``RNE(x / 2**k)`` for a signal ``x`` and an unsigned signal ``k`` ≤ max_k."""
    q = Signal(signed(len(x) + 1) if x.shape().signed else unsigned(len(x)))
    m.d.comb += q.eq(x >> k)
    one = Const(1, max_k + 2)
    mask = (one << k) - 1
    half = (one << k) >> 1
    r = x.as_unsigned() & mask
    up = (k != 0) & ((r > half) | ((r == half) & q[0]))
    return q + up


def leading_above(x, bits):
    """One-hot: bit j is set when bit ``bits + j`` of x is its leading one."""
    top = len(x) - bits
    return Cat(*(x[bits + j] & ~x[bits + j + 1:].any() if bits + j + 1 < len(x) else x[bits + j]
                 for j in range(top)))


def encode_position(m, leading):
    """``j + 1`` for the set bit j of a one-hot vector, 0 when none is set."""
    k = Signal(range(max(len(leading) + 1, 2)))
    m.d.comb += k.eq(Cat(*(Cat(*(leading[j] for j in range(len(leading)) if (j + 1) >> b & 1)).any()
                           for b in range(len(k)))))
    return k


def rounding_position(m, x, bits):
    """``max(bit_length(x) - bits, 0)``: bit ``bits + j`` is the leading one when it is set and
    no bit above it is; its position is then j + 1."""
    return encode_position(m, leading_above(x, bits))


CHUNK = 2


def partial_products(a, b, chunk=CHUNK):
    """``a · b`` for a non-negative ``b`` as the shifted products of ``chunk``-bit slices of b;
    their sum is the product.  Splitting keeps each stage short; each slice product is written
    as selected shifted copies of ``a`` so that synthesis keeps it in logic (a multiplier
    would be mapped onto a hard DSP block per slice)."""
    out = []
    for k in range(0, len(b), chunk):
        rows = [Mux(b[i], a, 0) << i for i in range(k, min(k + chunk, len(b)))]
        out.append(sum(rows[1:], rows[0]))
    return out


def wrap(value, width):
    """``value`` modulo 2**width as a signed number (None: unchanged).  A sum whose result
    fits in ``width`` bits may wrap its operands and partial sums alike; narrower adders
    are shorter carry chains."""
    return value if width is None else value[:width].as_signed()


def adder_stages(operands, carry, width=None):
    """Stages that add the per-lane operand lists vals["x"] pairwise, one adder level per
    stage, until one value per lane is left; ``operands`` is the list length.  With
    ``width``, every sum is kept modulo 2**width (exact when the total fits)."""
    def level(m, vals):
        return {**{n: vals[n] for n in carry},
                "x": [[wrap(xs[k] + xs[k + 1], width) if k + 1 < len(xs) else xs[k]
                       for k in range(0, len(xs), 2)]
                      for xs in vals["x"]]}

    def unwrap(m, vals):
        return {**{n: vals[n] for n in carry}, "x": [xs[0] for xs in vals["x"]]}
    stages = []
    while operands > 1:
        stages.append(level)
        operands = -(-operands // 2)
    return stages, unwrap


def rne_stages(pe, carry, width):
    """Two pipeline stages that round ``x`` (vals["x"]) at bit ``k`` (vals["k"]), ties to even,
    into ``width`` bits (the caller knows ``x >> k`` fits): first the shift with the guard bit
    (bit k-1) and the sticky bit (any bit below it), then the increment
    ``guard & (sticky | lsb)``.  The values named in ``carry`` travel along; the result
    (width + 1 bits) replaces "x"."""
    def split(m, vals):
        out = {**{n: vals[n] for n in carry}, "x": [], "guard": [], "sticky": []}
        for x, k in zip(vals["x"], vals["k"]):
            xu = x.as_unsigned()
            kept = Signal(width)
            m.d.comb += kept.eq(xu >> k)
            below = Cat(*(k > i + 1 for i in range(len(xu))))         # bits under the guard bit
            out["x"].append(kept)
            out["guard"].append((k != 0) & xu.bit_select((k - 1)[:len(k)], 1))
            out["sticky"].append((xu & below).any())
        return out

    def increment(m, vals):
        return {**{n: vals[n] for n in carry},
                "x": [x + (g & (st | x[0]))
                      for x, g, st in zip(vals["x"], vals["guard"], vals["sticky"])]}
    return [split, increment]


def clamp(v, lo, hi):
    return Mux(v < lo, lo, Mux(v > hi, hi, v))
