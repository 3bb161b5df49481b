"""Reconvergent streams: a fork that copies one stream to two, and the joins that meet them
again: the residual add (onnxruntime's QLinearAdd as a proven integer line) and the channel
concat (QLinearConcat).  Each unit exposes ``latency``, which mapper/kernels/join.py mirrors."""
from amaranth.hdl import Array, Const, Module, Mux, Signal
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from .streams import Chain, lanes_signature, registered_output
from .util import check_positive_int, check_shape, signed_shape_for

DIGIT = 4        # bits of a code per table: a 16-entry constant table is one LUT4 per output bit


class Fork(wiring.Component):
    """Copies each beat of ``i`` to ``a`` and ``b``; a beat leaves ``i`` once both have taken it
    (each output remembers that it has, so neither valid waits on the other's ready).
    Combinational: ``latency`` = ``LATENCY`` = 0."""
    LATENCY = 0

    def __init__(self, signature):
        self.latency = self.LATENCY
        super().__init__({"i": In(signature), "a": Out(signature), "b": Out(signature)})

    def elaborate(self, platform):
        m = Module()
        taken_a, taken_b = Signal(), Signal()
        done_a = taken_a | self.a.ready
        done_b = taken_b | self.b.ready
        m.d.comb += [self.a.payload.eq(self.i.payload), self.b.payload.eq(self.i.payload),
                     self.a.valid.eq(self.i.valid & ~taken_a), self.b.valid.eq(self.i.valid & ~taken_b),
                     self.i.ready.eq(done_a & done_b)]
        with m.If(self.i.valid):
            with m.If(done_a & done_b):
                m.d.sync += [taken_a.eq(0), taken_b.eq(0)]
            with m.Else():
                m.d.sync += [taken_a.eq(done_a), taken_b.eq(done_b)]
        return m


def digit_tables(mul, bits, is_signed):
    """``mul · code`` as a sum over the code's 4-bit digits: for each digit, the 16 values it
    contributes (the top digit of a signed code counts negatively)."""
    tables = []
    for lo in range(0, bits, DIGIT):
        width = min(DIGIT, bits - lo)
        top = is_signed and lo + width == bits
        values = [(d - (1 << width) if top and d >> (width - 1) else d) for d in range(1 << width)]
        tables.append([mul * (v << lo) for v in values])
    return tables


class AddUnit(wiring.Component):
    """``c = clamp((mul_a·a + mul_b·b + add) >> shift, lo, hi)`` lane by lane, for the codes of
    two streams that arrive in step (a planner-proven mapper.requant.AddLine, with the
    offsets a_lo, b_lo folded into ``add``).  Each constant product is a sum of per-digit
    constant tables.  One beat per cycle; ``latency`` = ``LATENCY`` = 5 (inputs, tables, two
    adder levels with the shift and clamp, the output register slice)."""
    LATENCY = 5

    def __init__(self, *, a_shape, b_shape, out_shape, lanes, mul_a, mul_b, add, shift, lo, hi):
        check_positive_int("lanes", lanes)
        self.a_shape, self.b_shape = check_shape("a_shape", a_shape), check_shape("b_shape", b_shape)
        self.out_shape, self.lanes = check_shape("out_shape", out_shape), lanes
        self.mul_a, self.mul_b, self.add, self.shift = int(mul_a), int(mul_b), int(add), int(shift)
        self.lo, self.hi = int(lo), int(hi)
        self.latency = self.LATENCY
        super().__init__({"a": In(lanes_signature(self.a_shape, lanes)), "b": In(lanes_signature(self.b_shape, lanes)),
                          "o": Out(lanes_signature(self.out_shape, lanes))})

    def elaborate(self, platform):
        m = Module()
        out = registered_output(m, self.o)
        en = Signal()
        m.d.comb += en.eq(~out.valid | out.ready)
        take = Signal()
        m.d.comb += [take.eq(en & self.a.valid & self.b.valid), self.a.ready.eq(take), self.b.ready.eq(take)]
        tables = [(digit_tables(self.mul_a, self.a_shape.width, self.a_shape.signed), "a"),
                  (digit_tables(self.mul_b, self.b_shape.width, self.b_shape.signed), "b")]
        terms = [v for ts, _ in tables for t in ts for v in t] + [self.add]
        lo_sum = sum(min(t) for ts, _ in tables for t in ts) + self.add
        hi_sum = sum(max(t) for ts, _ in tables for t in ts) + self.add
        total_shape = signed_shape_for(min(lo_sum, 0, min(terms)), max(hi_sum, 0, max(terms)))
        valid = [Signal(name=f"v{k}") for k in range(3)]
        with m.If(en):
            m.d.sync += [valid[0].eq(take), valid[1].eq(valid[0]), valid[2].eq(valid[1]),
                         out.valid.eq(valid[2])]
        for p in range(self.lanes):
            codes = {"a": Signal(self.a_shape, name=f"a{p}"), "b": Signal(self.b_shape, name=f"b{p}")}
            with m.If(en):
                m.d.sync += [codes["a"].eq(self.a.payload[p]), codes["b"].eq(self.b.payload[p])]
            looked = []
            for ts, name in tables:
                raw = codes[name].as_unsigned()
                for k, t in enumerate(ts):
                    r = Signal(total_shape, name=f"t{p}_{name}{k}")
                    with m.If(en):
                        m.d.sync += r.eq(Array(Const(v, total_shape) for v in t)[raw[k * DIGIT:(k + 1) * DIGIT]])
                    looked.append(r)
            looked.append(Const(self.add, total_shape))
            half = (len(looked) + 1) // 2
            part = [Signal(total_shape, name=f"s{p}_{k}") for k in range(2)]
            with m.If(en):
                m.d.sync += [part[0].eq(sum(looked[1:half], looked[0])[:total_shape.width].as_signed()),
                             part[1].eq(sum(looked[half + 1:], looked[half])[:total_shape.width].as_signed())]
            shifted = ((part[0] + part[1])[:total_shape.width].as_signed()) >> self.shift
            with m.If(en):
                m.d.sync += out.payload[p].eq(Mux(shifted < self.lo, self.lo, Mux(shifted > self.hi, self.hi, shifted)))
        return m


class ConcatUnit(wiring.Component):
    """Channel concat of two channels-last streams: per pixel, ``beats_a`` beats from ``a``
    then ``beats_b`` beats from ``b``, each lane through its input's code table (a 2**bits
    entry ROM in logic, indexed by code − qmin; None: copied).  One beat per cycle; ``latency`` =
    ``LATENCY`` = 2 (the table, the output register slice)."""
    LATENCY = 2

    def __init__(self, *, shape, lanes, beats_a, beats_b, table_a=None, table_b=None):
        check_positive_int("lanes", lanes)
        check_positive_int("beats_a", beats_a)
        check_positive_int("beats_b", beats_b)
        self.shape, self.lanes = check_shape("shape", shape), lanes
        self.beats_a, self.beats_b, self.tables = beats_a, beats_b, (table_a, table_b)
        sig = lanes_signature(self.shape, lanes)
        self.latency = self.LATENCY
        super().__init__({"a": In(sig), "b": In(sig), "o": Out(sig)})

    def _mapped(self, m, payload, table, name):
        if table is None:
            return payload
        qmin = -(1 << (self.shape.width - 1)) if self.shape.signed else 0
        out = Signal(data.ArrayLayout(self.shape, self.lanes), name=f"mapped_{name}")
        rom = Array(Const(int(v), self.shape) for v in table)
        for k in range(self.lanes):
            m.d.comb += out[k].eq(rom[(payload[k] - qmin).as_unsigned()[:self.shape.width]])
        return out

    def elaborate(self, platform):
        m = Module()
        out = registered_output(m, self.o)
        count = Signal(range(self.beats_a + self.beats_b))
        from_a = count < self.beats_a
        en = ~out.valid | out.ready
        src_valid = Mux(from_a, self.a.valid, self.b.valid)
        take = en & src_valid
        m.d.comb += [self.a.ready.eq(en & from_a), self.b.ready.eq(en & ~from_a)]
        a = self._mapped(m, self.a.payload, self.tables[0], "a")
        b = self._mapped(m, self.b.payload, self.tables[1], "b")
        with m.If(en):
            m.d.sync += out.valid.eq(src_valid)
        with m.If(take):
            m.d.sync += [out.payload.eq(Mux(from_a, a.as_value(), b.as_value())),
                         count.eq(Mux(count == self.beats_a + self.beats_b - 1, 0, count + 1))]
        return m


class Residual(wiring.Component):
    """A fork, two chains of units, and the join: ``i`` → Fork → (path a, path b) → join → ``o``.
    ``latency``: the cycles the fork and the join add to a path's own (its units' latencies)."""

    def __init__(self, path_a, names_a, path_b, names_b, join):
        self.paths = [Chain(path_a, names_a), Chain(path_b, names_b)]
        self.join = join
        sig = self.paths[0].signature.members["i"].signature.flip()
        self._stream = sig
        super().__init__({"i": In(sig), "o": Out(join.signature.members["o"].signature)})

    @property
    def latency(self):
        return Fork.LATENCY + self.join.latency

    def elaborate(self, platform):
        m = Module()
        m.submodules.fork = fork = Fork(self._stream)
        m.submodules.path_a, m.submodules.path_b = self.paths
        m.submodules.join = self.join
        wiring.connect(m, wiring.flipped(self.i), fork.i)
        wiring.connect(m, fork.a, self.paths[0].i)
        wiring.connect(m, fork.b, self.paths[1].i)
        wiring.connect(m, self.paths[0].o, self.join.a)
        wiring.connect(m, self.paths[1].o, self.join.b)
        wiring.connect(m, self.join.o, wiring.flipped(self.o))
        return m
