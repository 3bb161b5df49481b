"""Stream plumbing: width conversion, FIFOs, and chaining units with wiring.connect.  Each
unit a kernel lowers to exposes ``latency`` (its ``LATENCY``), which mapper/kernels/streams.py
mirrors."""
from math import gcd

from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import data, fifo, stream, wiring
from amaranth.lib.wiring import In, Out

from .util import check_positive_int, check_shape


def lanes_signature(shape, lanes):
    return stream.Signature(data.ArrayLayout(shape, lanes))


class Gather(wiring.Component):
    """``factor`` beats of ``lanes`` lanes → one beat of ``lanes · factor`` lanes (first beat low).
    Sustains one input beat per cycle; ``latency`` = ``LATENCY`` = 1 cycle from the
    last of the ``factor`` beats."""
    LATENCY = 1

    def __init__(self, *, shape, lanes, factor):
        check_positive_int("lanes", lanes)
        check_positive_int("factor", factor)
        self.shape, self.lanes, self.factor = check_shape("shape", shape), lanes, factor
        self.latency = self.LATENCY
        super().__init__({"i": In(lanes_signature(self.shape, lanes)),
                          "o": Out(lanes_signature(self.shape, lanes * factor))})

    def elaborate(self, platform):
        m = Module()
        count = Signal(range(max(self.factor, 2)))
        store = [Signal(data.ArrayLayout(self.shape, self.lanes), name=f"store{k}") for k in range(self.factor - 1)]
        last = count == self.factor - 1
        m.d.comb += self.i.ready.eq(~self.o.valid | self.o.ready)
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += count.eq(Mux(last, 0, count + 1))
            for k in range(self.factor - 1):
                with m.If(count == k):
                    m.d.sync += store[k].eq(self.i.payload)
            with m.If(last):
                pieces = [s.as_value() for s in store] + [self.i.payload.as_value()]
                m.d.sync += [self.o.payload.eq(Cat(*pieces)), self.o.valid.eq(1)]
        return m


class Split(wiring.Component):
    """One beat of ``lanes · factor`` lanes → ``factor`` beats of ``lanes`` lanes (low lanes first).
    Sustains one output beat per cycle; ``latency`` = ``LATENCY`` = 1 cycle from the
    input beat to the first of its output beats."""
    LATENCY = 1

    def __init__(self, *, shape, lanes, factor):
        check_positive_int("lanes", lanes)
        check_positive_int("factor", factor)
        self.shape, self.lanes, self.factor = check_shape("shape", shape), lanes, factor
        self.latency = self.LATENCY
        super().__init__({"i": In(lanes_signature(self.shape, lanes * factor)),
                          "o": Out(lanes_signature(self.shape, lanes))})

    def elaborate(self, platform):
        m = Module()
        held = Signal(data.ArrayLayout(self.shape, self.lanes * self.factor))
        full = Signal()
        count = Signal(range(max(self.factor, 2)))
        last = count == self.factor - 1
        piece = Signal(data.ArrayLayout(self.shape, self.lanes))
        width = len(piece.as_value())
        with m.Switch(count):
            for k in range(self.factor):
                with m.Case(k):
                    m.d.comb += piece.eq(held.as_value()[k * width:(k + 1) * width])
        m.d.comb += [self.o.valid.eq(full), self.o.payload.eq(piece),
                     self.i.ready.eq(~full | (self.o.ready & last))]
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += count.eq(Mux(last, 0, count + 1))
            with m.If(last):
                m.d.sync += full.eq(0)
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += [held.eq(self.i.payload), full.eq(1), count.eq(0)]
        return m


class Skid(wiring.Component):
    """A register slice with a skid register: one beat per cycle, ``latency`` = ``LATENCY`` = 1,
    and ``i.ready`` a register, so a unit behind it sees no combinational path from the
    consumer's ready (its pipeline enable then comes straight from a flip-flop)."""
    LATENCY = 1

    def __init__(self, signature):
        self.latency = self.LATENCY
        super().__init__({"i": In(signature), "o": Out(signature)})

    def elaborate(self, platform):
        m = Module()
        held = Signal(self.i.payload.shape())
        held_valid = Signal()
        m.d.comb += self.i.ready.eq(~held_valid)
        with m.If(~self.o.valid | self.o.ready):
            with m.If(held_valid):
                m.d.sync += [self.o.payload.eq(held), self.o.valid.eq(1), held_valid.eq(0)]
            with m.Else():
                m.d.sync += [self.o.payload.eq(self.i.payload), self.o.valid.eq(self.i.valid)]
        with m.Elif(self.i.valid & ~held_valid):
            m.d.sync += [held.eq(self.i.payload), held_valid.eq(1)]
        return m


def registered_output(m, o):
    """A Skid in front of a unit's output stream ``o``; the unit drives the returned
    stream (valid, payload) and reads its registered ready."""
    m.submodules.skid = skid = Skid(o.signature)
    wiring.connect(m, skid.o, wiring.flipped(o))
    return skid.i


class CreditQueue(wiring.Component):
    """The output queue of a free-running pipeline (no stall enable to fan out): the unit
    ``reserve``s a place as it accepts a beat and may accept only while ``room``; the beat
    arrives on ``i`` some cycles later and always finds its place.  ``room`` depends on
    registers only.  A queue of ``depth`` ≥ the pipeline latency + 3 sustains one beat per
    cycle; a beat written is readable 2 cycles later (amaranth.lib.fifo.SyncFIFOBuffered)."""

    def __init__(self, signature, depth):
        check_positive_int("depth", depth)
        self.depth = depth
        super().__init__({"i": In(signature), "o": Out(signature), "reserve": In(1), "room": Out(1)})

    def elaborate(self, platform):
        m = Module()
        width = len(self.i.payload.as_value())
        m.submodules.queue = q = fifo.SyncFIFOBuffered(width=width, depth=self.depth)
        count = Signal(range(self.depth + 1))      # reserved and not yet read out
        m.d.sync += count.eq(count + self.reserve - (self.o.valid & self.o.ready))
        m.d.comb += [self.room.eq(count < self.depth), self.i.ready.eq(1),
                     q.w_data.eq(self.i.payload.as_value()), q.w_en.eq(self.i.valid),
                     self.o.payload.eq(q.r_data), self.o.valid.eq(q.r_rdy), q.r_en.eq(self.o.ready)]
        return m


class Fifo(wiring.Component):
    """A first-in first-out queue of ``depth`` beats (amaranth.lib.fifo.SyncFIFOBuffered).
    Its ready does not depend on its output's ready, so it also cuts combinational paths.
    ``latency`` = ``LATENCY`` = 2: a beat written is readable 2 cycles later."""
    LATENCY = 2

    def __init__(self, *, shape, lanes, depth):
        check_positive_int("depth", depth)
        self.shape, self.lanes, self.depth = check_shape("shape", shape), lanes, depth
        self.latency = self.LATENCY
        super().__init__({"i": In(lanes_signature(self.shape, lanes)),
                          "o": Out(lanes_signature(self.shape, lanes))})

    def elaborate(self, platform):
        m = Module()
        width = len(self.i.payload.as_value())
        m.submodules.queue = q = fifo.SyncFIFOBuffered(width=width, depth=self.depth)
        m.d.comb += [q.w_data.eq(self.i.payload.as_value()), q.w_en.eq(self.i.valid), self.i.ready.eq(q.w_rdy),
                     self.o.payload.eq(q.r_data), self.o.valid.eq(q.r_rdy), q.r_en.eq(self.o.ready)]
        return m


def width_converters(shape, lanes_in, lanes_out):
    """The units that turn beats of ``lanes_in`` lanes into beats of ``lanes_out`` lanes."""
    if lanes_in == lanes_out:
        return []
    if lanes_out % lanes_in == 0:
        return [Gather(shape=shape, lanes=lanes_in, factor=lanes_out // lanes_in)]
    if lanes_in % lanes_out == 0:
        return [Split(shape=shape, lanes=lanes_out, factor=lanes_in // lanes_out)]
    g = gcd(lanes_in, lanes_out)
    return [Split(shape=shape, lanes=g, factor=lanes_in // g), Gather(shape=shape, lanes=g, factor=lanes_out // g)]


class Chain(wiring.Component):
    """Units joined output to input with wiring.connect; ``i`` of the first, ``o`` of the last.
    ``names`` (optional) name the units' submodules (``u<k>_<name>``)."""

    def __init__(self, units, names=None):
        if not units:
            raise ValueError("a chain needs at least one unit")
        self.units = list(units)
        self.names = list(names) if names else [type(u).__name__.lower() for u in self.units]
        if len(self.names) != len(self.units):
            raise ValueError("names must name every unit")
        # an In member's signature is seen from inside (flipped): flip it back for In(...)
        super().__init__({"i": In(self.units[0].signature.members["i"].signature.flip()),
                          "o": Out(self.units[-1].signature.members["o"].signature)})

    def elaborate(self, platform):
        m = Module()
        for k, unit in enumerate(self.units):
            m.submodules[f"u{k}_{self.names[k]}"] = unit
        wiring.connect(m, wiring.flipped(self.i), self.units[0].i)
        for a, b in zip(self.units, self.units[1:]):
            wiring.connect(m, a.o, b.i)
        wiring.connect(m, self.units[-1].o, wiring.flipped(self.o))
        return m
