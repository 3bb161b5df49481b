"""Sliding windows over a frame of channels-last codes, and max pooling over them."""
from amaranth.hdl import Module, Mux, Signal, unsigned
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from .util import check_positive_int, check_shape, style_attrs


def lanes_of(shape, lanes):
    return stream.Signature(data.ArrayLayout(shape, lanes))


class WindowGen(wiring.Component):
    """Stores a frame (``in_beats`` beats of ``lanes`` codes, in stream order) and then sends the
    beats listed in ``schedule``: each entry is the index of a stored beat, or None for a
    padding beat (every lane ``pad``).  The schedule is what makes it a convolution window
    (taps × channel groups per output pixel) or a pooling window; it sits in a ROM.

    Timing: the frame is written in ``in_beats`` cycles (one per beat), then the schedule is
    sent at one beat per cycle; ``cycles_per_frame = in_beats + len(schedule) + 1``.
    """

    def __init__(self, *, shape, lanes, in_beats, schedule, pad, memory_styles=None):
        check_positive_int("lanes", lanes)
        check_positive_int("in_beats", in_beats)
        if not schedule or any(s is not None and not 0 <= s < in_beats for s in schedule):
            raise ValueError(f"schedule must list beats in 0..{in_beats - 1} or None")
        self.shape, self.lanes, self.in_beats = check_shape("shape", shape), lanes, in_beats
        self.schedule, self.pad = list(schedule), int(pad)
        self.memory_styles = dict(memory_styles or {})
        super().__init__({"i": In(lanes_of(self.shape, lanes)), "o": Out(lanes_of(self.shape, lanes))})

    @property
    def cycles_per_frame(self):
        return self.in_beats + len(self.schedule) + 1

    def elaborate(self, platform):
        m = Module()
        word = data.ArrayLayout(self.shape, self.lanes)
        n_out = len(self.schedule)
        m.submodules.frame = frame = memory.Memory(shape=word, depth=self.in_beats, init=[],
                                                   attrs=style_attrs(self.memory_styles, "frame"))
        # schedule entry: stored beat index, and a padding flag in the top bit
        addr_bits = max(self.in_beats - 1, 1).bit_length()
        entries = [(1 << addr_bits) if s is None else s for s in self.schedule]
        m.submodules.taps = taps = memory.Memory(shape=unsigned(addr_bits + 1), depth=n_out, init=entries,
                                                 attrs=style_attrs(self.memory_styles, "schedule"))
        wp, rp, tp = frame.write_port(), frame.read_port(), taps.read_port()

        writing = Signal(init=1)
        w_cnt = Signal(range(max(self.in_beats, 2)))
        v1, v2, pad2 = Signal(), Signal(), Signal()
        # a new frame is written once the last read has left the schedule stage
        m.d.comb += [self.i.ready.eq(writing & ~v1), wp.addr.eq(w_cnt), wp.data.eq(self.i.payload),
                     wp.en.eq(self.i.valid & self.i.ready)]
        # reading: schedule ROM (cycle 1) → frame read (cycle 2) → output
        en = Signal()
        m.d.comb += en.eq(~self.o.valid | self.o.ready)
        r_cnt = Signal(range(max(n_out, 2)))
        issue = ~writing & en
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += w_cnt.eq(Mux(w_cnt == self.in_beats - 1, 0, w_cnt + 1))
            with m.If(w_cnt == self.in_beats - 1):
                m.d.sync += writing.eq(0)
        with m.If(issue):
            m.d.sync += r_cnt.eq(Mux(r_cnt == n_out - 1, 0, r_cnt + 1))
            with m.If(r_cnt == n_out - 1):
                m.d.sync += writing.eq(1)
        m.d.comb += [tp.addr.eq(r_cnt), tp.en.eq(en)]
        with m.If(en):
            m.d.sync += [v1.eq(issue), v2.eq(v1), pad2.eq(tp.data[addr_bits])]
        m.d.comb += [rp.addr.eq(tp.data[:addr_bits]), rp.en.eq(en)]
        m.d.comb += self.o.valid.eq(v2)
        for k in range(self.lanes):
            m.d.comb += self.o.payload[k].eq(Mux(pad2, self.pad, rp.data[k]))
        return m


class MaxPoolUnit(wiring.Component):
    """Maximum of each run of ``taps`` consecutive beats, lane by lane: one output beat per
    ``taps`` input beats; latency 1."""

    def __init__(self, *, shape, lanes, taps):
        check_positive_int("lanes", lanes)
        check_positive_int("taps", taps)
        self.shape, self.lanes, self.taps = check_shape("shape", shape), lanes, taps
        super().__init__({"i": In(lanes_of(self.shape, lanes)), "o": Out(lanes_of(self.shape, lanes))})

    def elaborate(self, platform):
        m = Module()
        count = Signal(range(max(self.taps, 2)))
        best = Signal(data.ArrayLayout(self.shape, self.lanes))
        m.d.comb += self.i.ready.eq(~self.o.valid | self.o.ready)
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        with m.If(self.i.valid & self.i.ready):
            first, last = count == 0, count == self.taps - 1
            m.d.sync += count.eq(Mux(last, 0, count + 1))
            for k in range(self.lanes):
                x = self.i.payload[k]
                new = Mux(first | (x > best[k]), x, best[k])
                m.d.sync += best[k].eq(new)
                with m.If(last):
                    m.d.sync += self.o.payload[k].eq(new)
            with m.If(last):
                m.d.sync += self.o.valid.eq(1)
        return m


class SumPoolUnit(wiring.Component):
    """Global sum per channel of a channels-last frame: ``pixels`` pixels of ``groups`` beats
    (``lanes`` channels each) in, one beat of ``lanes`` sums per group out during the last
    pixel.  Each sum starts at ``start`` (onnxruntime subtracts count · zero point).  The
    partial sums of the groups circulate in a ring of registers (no memory, no multiplexer);
    one beat per cycle, latency 1."""

    def __init__(self, *, shape, lanes, groups, pixels, acc_shape, start=0):
        for name, v in (("lanes", lanes), ("groups", groups), ("pixels", pixels)):
            check_positive_int(name, v)
        self.shape, self.acc_shape = check_shape("shape", shape), check_shape("acc_shape", acc_shape)
        self.lanes, self.groups, self.pixels, self.start = lanes, groups, pixels, int(start)
        super().__init__({"i": In(lanes_of(self.shape, lanes)), "o": Out(lanes_of(self.acc_shape, lanes))})

    def elaborate(self, platform):
        m = Module()
        word = data.ArrayLayout(self.acc_shape, self.lanes)
        ring = [Signal(word, name=f"ring{k}") for k in range(self.groups)]
        group = Signal(range(max(self.groups, 2)))
        pixel = Signal(range(max(self.pixels, 2)))
        first, last = pixel == 0, pixel == self.pixels - 1
        total = Signal(word)
        for k in range(self.lanes):
            m.d.comb += total[k].eq(Mux(first, self.start, ring[0][k]) + self.i.payload[k])
        m.d.comb += self.i.ready.eq(~self.o.valid | self.o.ready)
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += [ring[k].eq(ring[k + 1]) for k in range(self.groups - 1)]
            m.d.sync += ring[-1].eq(total)
            with m.If(group == self.groups - 1):
                m.d.sync += [group.eq(0), pixel.eq(Mux(last, 0, pixel + 1))]
            with m.Else():
                m.d.sync += group.eq(group + 1)
            with m.If(last):
                m.d.sync += [self.o.payload.eq(total), self.o.valid.eq(1)]
        return m
