"""Sliding windows over a frame of channels-last codes, and the pools over them (max, global
sum, float32 window sum).  Each unit exposes ``latency`` (its ``LATENCY``), which
mapper/kernels/window.py mirrors."""
from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import data, memory, wiring
from amaranth.lib.wiring import In, Out

from .streams import CreditQueue, lanes_signature
from .util import check_positive_int, check_shape, style_attrs


class WindowGen(wiring.Component):
    """Sends the windows of channels-last frames of ``frame`` = (C, H, W) codes, ``lanes``
    channels per beat, keeping only the rows they still need in a line buffer of ``depth``
    beats (a power of two, at least the rows one window spans): for each output pixel
    (``out_size`` = (OH, OW), as the mapper computed them) the taps (ky, kx) × channel groups g,
    tap-major (``order`` "taps", a conv's vector) or group-major ("channels", a run of taps per
    group, for pooling and depthwise).  A tap outside the frame is a padding beat (every lane
    ``pad``).

    With ``taps`` t > 1 (tap-major order, every channel in a beat: ``lanes`` = C) a beat carries
    t consecutive taps of a window, t·C lanes in the conv vector's order: t taps of a kernel row
    (t divides kw) or t / kw whole rows (then t / kw divides kh).  The buffer is then t copies
    written alike, one read port each at a constant offset from the first tap's address, so a
    window takes kh·kw / t beats: the first layers (few channels, many pixels) go parallel over
    taps, not only channels (FINN's MMV).

    The frame streams through the buffer: beat b of the frame sequence is stored at b mod
    ``depth``.  The windows of output row oy are sent once the input rows up to its last
    (``(oy·sh − pt + K)·W·G`` beats of the frame, K = (kh − 1)·dh + 1) have arrived; an input
    beat is taken while fewer than ``depth`` beats above the rows the current output row still
    needs are held.  Rows the reads have passed are released two cycles after their last read
    is issued (a register, then the count), so a write never meets a read of the same place.

    The addresses come from counters, not from a table: the input row and column of a tap are
    ``oy·sh − pt + ky·dh`` and ``ox·sw − pl + kx·dw``, kept as running sums, so the cost does
    not grow with the frame.  A window beat leaves ``latency`` = ``LATENCY`` cycles after its
    address is issued (two stages and the output queue); mapper.kernels.window.window_timing
    follows these registers cycle by cycle for the kernel's cycles per frame.
    """
    QUEUE = 6          # ≥ the read pipeline's 2 stages + 3: one beat per cycle (CreditQueue)
    LATENCY = 5

    def __init__(self, *, shape, lanes, frame, out_size, kernel, depth, strides=(1, 1), pads=(0, 0, 0, 0),
                 dilations=(1, 1), order="taps", pad=0, memory_styles=None, taps=1):
        check_positive_int("lanes", lanes)
        check_positive_int("taps", taps)
        c, h, w = frame
        if c % lanes or order not in ("taps", "channels"):
            raise ValueError(f"lanes must divide the {c} channels and order be 'taps' or 'channels'")
        self.taps = taps
        self.tap_rows, self.tap_cols = tap_block(kernel, taps)
        if taps > 1 and (lanes != c or order != "taps"):
            raise ValueError(f"several taps a beat need every channel in a beat (lanes {c}) and the "
                             "'taps' order")
        self.shape, self.lanes, self.frame = check_shape("shape", shape), lanes, tuple(frame)
        self.out_size, self.kernel = tuple(out_size), tuple(kernel)
        self.strides, self.pads, self.dilations = tuple(strides), tuple(pads), tuple(dilations)
        self.order, self.pad = order, int(pad)
        self.groups = c // lanes
        self.row = w * self.groups                           # beats per input row
        self.span = (self.kernel[0] - 1) * self.dilations[0] + 1
        self.in_beats = h * self.row
        check_positive_int("depth", depth)
        if depth & (depth - 1) or depth < max(min(self.span, h) * self.row, 2):
            raise ValueError(f"depth must be a power of two holding the {min(self.span, h)} rows of "
                             f"{self.row} beats a window spans, not {depth}")
        self.depth = depth
        self.memory_styles = dict(memory_styles or {})
        self.latency = self.LATENCY
        super().__init__({"i": In(lanes_signature(self.shape, lanes)),
                          "o": Out(lanes_signature(self.shape, lanes * taps))})

    def releases(self):
        """Beats released at the end of each output row: from its top row to the next one's
        (clamped to the frame), the rest of the frame after the last."""
        (oh, _), sh, pt, f = self.out_size, self.strides[0], self.pads[0], self.in_beats

        def clamp(v):
            return min(max(v, 0), f)
        return [clamp(((oy + 1) * sh - pt) * self.row if oy + 1 < oh else f) - clamp((oy * sh - pt) * self.row)
                for oy in range(oh)]

    def elaborate(self, platform):
        m = Module()
        _, h, w = self.frame
        (oh, ow), (kh, kw), (sh, sw), (dh, dw) = self.out_size, self.kernel, self.strides, self.dilations
        pt, pb, pl, pr = self.pads[0], self.pads[2], self.pads[1], self.pads[3]
        g_n, row, frame_beats = self.groups, self.row, self.in_beats
        word = data.ArrayLayout(self.shape, self.lanes)
        tr, tc = self.tap_rows, self.tap_cols
        # a tap of the beat: its row and column from the first tap's, and its address's offset
        offsets = [(i * dh, j * dw, (i * dh * row + j * dw * g_n) % self.depth) for i in range(tr) for j in range(tc)]
        ports = []
        for k in range(self.taps):
            name = "frame" if k == 0 else f"frame{k}"
            m.submodules[name] = frame = memory.Memory(shape=word, depth=self.depth, init=[],
                                                       attrs=style_attrs(self.memory_styles, name))
            ports.append((frame.write_port(), frame.read_port()))
        slot = self.depth.bit_length() - 1                  # address bits

        # held: beats written above the released rows; ahead: beats written since the current
        # output frame's first beat (negative while the writes trail the frame's unused rows)
        held = Signal(range(-frame_beats, self.depth + 1))
        ahead = Signal(range(-frame_beats, frame_beats + self.depth + 1))
        w_addr, base = Signal(slot), Signal(slot)
        release = Signal(range(frame_beats + 1))
        write = Signal()
        m.d.comb += [self.i.ready.eq(held < self.depth), write.eq(self.i.valid & self.i.ready)]
        m.d.comb += [s for wp, _ in ports for s in (wp.addr.eq(w_addr), wp.data.eq(self.i.payload), wp.en.eq(write))]
        m.d.sync += w_addr.eq(w_addr + write)

        # the read pipeline runs freely into a credit queue: the loop counters' enables depend
        # on registers only, never on the consumer's ready (which would chain through every
        # unit downstream)
        m.submodules.queue = queue = CreditQueue(self.o.signature, self.QUEUE)
        wiring.connect(m, queue.o, wiring.flipped(self.o))

        # the loop nest, outermost first; each loop carries the running parts of the input row
        # and column and of the address (modulo the buffer) that it steps:
        # (count, row step, column step, address step)
        loops = {"oy": (oh, sh, 0, sh * row), "ox": (ow, 0, sw, sw * g_n), "ky": (kh // tr, tr * dh, 0, tr * dh * row),
                 "kx": (kw // tc, 0, tc * dw, tc * dw * g_n), "g": (g_n, 0, 0, 1)}
        nest = ["oy", "ox", "ky", "kx", "g"] if self.order == "taps" else ["oy", "ox", "g", "ky", "kx"]
        start = {"oy": (-pt, 0, -pt * row), "ox": (0, -pl, -pl * g_n)}
        ys, xs = h + pt + pb + sh + kh * dh, w + pl + pr + sw + kw * dw
        parts = {}
        for name in nest:
            y0, x0, a0 = start.get(name, (0, 0, 0))
            parts[name] = (Signal(range(-ys, ys), init=y0, name=f"{name}_y"),
                           Signal(range(-xs, xs), init=x0, name=f"{name}_x"),
                           Signal(slot, init=a0 % self.depth, name=f"{name}_a"),
                           Signal(range(max(loops[name][0], 2)), name=f"{name}_n"))
        # an output row is sent once its last input row has arrived, or the whole frame has:
        # ``need`` = min((its top row + the rows a window spans) × row, frame_beats), a constant
        # per output row, kept as ``slack`` = ahead − need so that every test of the issue is a
        # sign bit, not a comparator (the sums are registers, the late row and frame ends only
        # choose)
        need = [min((self.span - pt + k * sh) * row, frame_beats) for k in range(oh)]
        slack = Signal(range(-frame_beats - need[0], frame_beats + self.depth + 1), init=-need[0])
        issue = (ahead >= 0) & (slack >= 0) & queue.room
        m.d.comb += queue.reserve.eq(issue)
        carry = issue
        for name in reversed(nest):                          # innermost first
            count, dy, dx, da = loops[name]
            y, x, a, n = parts[name]
            y0, x0, a0 = start.get(name, (0, 0, 0))
            if name == "oy":
                row_end = carry                              # the output row's last beat
            # n == count − 1 as a register of its own, set as n steps: the carry into the
            # outer loops is an AND of registers, not of comparators
            last = Signal(init=count == 1, name=f"{name}_last")
            with m.If(carry):
                with m.If(last):
                    m.d.sync += [n.eq(0), last.eq(count == 1), y.eq(y0), x.eq(x0), a.eq(a0 % self.depth)]
                with m.Else():
                    m.d.sync += [n.eq(n + 1), last.eq(n == count - 2), y.eq(y + dy), x.eq(x + dx),
                                 a.eq(a + da % self.depth)]
            carry = carry & last
        frame_end = carry
        # the rows passed are released (a constant per output row; most rows release sh·row)
        m.d.sync += release.eq(Mux(row_end, per_row(self.releases(), parts["oy"][3]), 0))
        # both sums from registers, the late frame_end only choosing between them; need's step
        # after each output row
        step = per_row([b - a for a, b in zip(need, need[1:])] or [0], parts["oy"][3])
        m.d.sync += [held.eq(held + write - release),
                     ahead.eq(Mux(frame_end, ahead + write - frame_beats, ahead + write)),
                     slack.eq(Mux(frame_end, ahead + write - frame_beats - need[0],
                                  Mux(row_end, slack + write - step, slack + write)))]
        with m.If(frame_end):
            m.d.sync += base.eq(base + frame_beats % self.depth)

        iy = sum(parts[n][0] for n in nest)
        ix = sum(parts[n][1] for n in nest)
        addr = sum(parts[n][2] for n in nest)
        v1, v2 = Signal(), Signal()
        m.d.sync += [v1.eq(issue), v2.eq(v1)]
        m.d.comb += queue.i.valid.eq(v2)
        for k, ((dy, dx, da), (_, rp)) in enumerate(zip(offsets, ports)):
            n = "" if k == 0 else str(k)
            addr1, pad1, pad2 = Signal(slot, name=f"addr1{n}"), Signal(name=f"pad1{n}"), Signal(name=f"pad2{n}")
            ty, tx = (iy + dy if dy else iy), (ix + dx if dx else ix)
            m.d.sync += [pad2.eq(pad1), addr1.eq(base + addr + da if da else base + addr),
                         pad1.eq((ty < 0) | (ty >= h) | (tx < 0) | (tx >= w))]
            m.d.comb += rp.addr.eq(addr1)
            for lane in range(self.lanes):
                m.d.comb += queue.i.payload[k * self.lanes + lane].eq(Mux(pad2, self.pad, rp.data[lane]))
        return m


def tap_block(kernel, taps):
    """(rows, columns) of the block of ``taps`` consecutive taps (tap-major) one beat carries:
    ``taps`` columns of a kernel row, or taps / kw whole rows."""
    kh, kw = kernel
    if kw % taps == 0:
        return 1, taps
    if taps % kw == 0 and kh % (taps // kw) == 0:
        return taps // kw, kw
    raise ValueError(f"{taps} taps a beat must divide a kernel row's {kw}, or be whole rows of it "
                     f"(a multiple of {kw} dividing {kh * kw})")


def per_row(values, row):
    """A constant per output row (``values[row]``): the most common one, the others chosen by
    the row counter."""
    common = max(set(values), key=values.count)
    out = common
    for k, v in enumerate(values):
        if v != common:
            out = Mux(row == k, v, out)
    return out


class MaxPoolUnit(wiring.Component):
    """Maximum of each run of ``taps`` consecutive beats, lane by lane: one output beat per
    ``taps`` input beats; ``latency`` = ``LATENCY`` = 1 cycle from the run's last beat."""
    LATENCY = 1

    def __init__(self, *, shape, lanes, taps):
        check_positive_int("lanes", lanes)
        check_positive_int("taps", taps)
        self.shape, self.lanes, self.taps = check_shape("shape", shape), lanes, taps
        self.latency = self.LATENCY
        super().__init__({"i": In(lanes_signature(self.shape, lanes)), "o": Out(lanes_signature(self.shape, lanes))})

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
    one beat per cycle; ``latency`` = ``LATENCY`` = 1 cycle from a group's last beat to its
    sum."""
    LATENCY = 1

    def __init__(self, *, shape, lanes, groups, pixels, acc_shape, start=0):
        for name, v in (("lanes", lanes), ("groups", groups), ("pixels", pixels)):
            check_positive_int(name, v)
        self.shape, self.acc_shape = check_shape("shape", shape), check_shape("acc_shape", acc_shape)
        self.lanes, self.groups, self.pixels, self.start = lanes, groups, pixels, int(start)
        self.latency = self.LATENCY
        super().__init__({"i": In(lanes_signature(self.shape, lanes)), "o": Out(lanes_signature(self.acc_shape, lanes))})

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


def round_to_f32(m, v):
    """``v`` (an integer in units of 2**e) rounded to 24 significant bits, half to even, as
    float32 rounds a sum: the bits below the leading one's 24th are a mask made by smearing
    the magnitude's leading one down (no shifter), then rounded off (mapper.numeric.round_to_f32)."""
    w = len(v)
    neg = v < 0
    mag = Signal(w)
    m.d.comb += mag.eq(Mux(neg, -v, v))
    smear, k = mag, 1
    while k < w:
        smear, k = smear | (smear >> k), 2 * k
    low = Signal(w)
    m.d.comb += low.eq(smear >> 24)
    half, rest = low ^ (low >> 1), mag & low
    up = low.any() & ((rest > half) | ((rest == half) & ((low + 1) & mag).any()))
    rounded = Signal(w + 1)
    m.d.comb += rounded.eq((mag & ~low) + Mux(up, low + 1, 0))
    return Mux(neg, -rounded, rounded)


class FloatSumUnit(wiring.Component):
    """The float32 sum of each run of ``taps`` consecutive beats, lane by lane, as onnxruntime's
    average pools add dequantized codes (mapper.qgraph.FloatSumPool): each code is looked up
    in ``terms`` (its dequantized value, an integer in units of 2**e, a ROM indexed by
    code − qmin) and added to the running sum, which is rounded to 24 significant bits after
    every addition.  One output beat (``acc_shape`` sums) per ``taps`` input beats; one beat
    per cycle; ``latency`` = ``LATENCY`` = 2 cycles from the run's last beat (the ROM read,
    the sum)."""
    LATENCY = 2

    def __init__(self, *, shape, lanes, taps, terms, acc_shape, memory_styles=None):
        check_positive_int("lanes", lanes)
        check_positive_int("taps", taps)
        self.shape, self.acc_shape = check_shape("shape", shape), check_shape("acc_shape", acc_shape)
        self.terms = [int(t) for t in terms]
        if len(self.terms) != 1 << self.shape.width:
            raise ValueError(f"terms must have one value per code ({1 << self.shape.width}), not {len(self.terms)}")
        self.lanes, self.taps = lanes, taps
        self.memory_styles = dict(memory_styles or {})
        self.latency = self.LATENCY
        super().__init__({"i": In(lanes_signature(self.shape, lanes)),
                          "o": Out(lanes_signature(self.acc_shape, lanes))})

    def elaborate(self, platform):
        m = Module()
        en, v1 = Signal(), Signal()
        count = Signal(range(max(self.taps, 2)))
        first, last = count == 0, count == self.taps - 1
        m.d.comb += [en.eq(~self.o.valid | self.o.ready), self.i.ready.eq(en)]
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        with m.If(en):
            m.d.sync += v1.eq(self.i.valid)
        step = en & v1
        # code − qmin: a signed code with its sign bit flipped
        flip = 1 << (self.shape.width - 1) if self.shape.signed else 0
        for k in range(self.lanes):
            name = f"terms{k}"
            rom = memory.Memory(shape=self.acc_shape, depth=len(self.terms), init=self.terms,
                                attrs=style_attrs(self.memory_styles, name))
            m.submodules[name] = rom
            port = rom.read_port()
            m.d.comb += [port.addr.eq(self.i.payload[k].as_unsigned() ^ flip), port.en.eq(en)]
            acc = Signal(self.acc_shape, name=f"acc{k}")
            total = Signal(self.acc_shape, name=f"total{k}")
            m.d.comb += total.eq(round_to_f32(m, Mux(first, 0, acc) + port.data))
            with m.If(step):
                m.d.sync += acc.eq(total)
                with m.If(last):
                    m.d.sync += self.o.payload[k].eq(total)
        with m.If(step):
            m.d.sync += count.eq(Mux(last, 0, count + 1))
            with m.If(last):
                m.d.sync += self.o.valid.eq(1)
        return m
