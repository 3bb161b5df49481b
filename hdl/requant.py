"""Requantization unit: accumulators → output codes, by the circuit the planner proved."""
import numpy as np
from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from .arith import (CHUNK, adder_stages, clamp, encode_position, leading_above,
                    partial_products, rne_shift, rne_stages, rounding_position, wrap)
from .streams import CreditQueue
from .util import check_positive_int, check_shape, signed_shape_for, style_attrs

KINDS = ("shift", "mul-add-shift", "thresholds", "threshold-search", "float-emulation")


class _Rom:
    """Marks a value that a stage takes from a registered memory read (already one cycle late)."""
    def __init__(self, value):
        self.value = value


class Requant(wiring.Component):
    """Per-channel requantization of ``pe`` accumulator lanes; channel ``t·pe + p`` sits in lane
    ``p`` of the ``t``-th beat of a frame.

    Parameters
    ----------
    kind : one of "shift", "mul-add-shift", "thresholds", "threshold-search", "float-emulation"
    params : per-channel integer arrays of that kind (see ``FIELDS``); "threshold-search" also
        takes ``search`` (channels, 2**depth − 1), sorted thresholds searched one stage per bit
    channels, pe : channels per frame and lanes per beat (pe divides channels)
    acc_shape, out_shape : shapes of an accumulator and an output code
    lo, hi : output clamp (codes); zero_point, shift : constants of the kind
    tables : (channels, 2**bits) arrays applied after the first stage, in order, indexed
        by code - table_qmin (float-emulation only)
    memory_styles : {"params" | "table<i>_<lane>": "block" | "logic"}, where each memory goes

    Members: i (In, ``pe`` accumulators), o (Out, ``pe`` codes). One beat per cycle;
    ``latency`` = 3 + the stages (the parameter register's, the kind's, one per table) cycles
    from an accepted beat to its output (mapper.kernels.requant.requant_latency mirrors it).
    """
    FIELDS = {"shift": ("exponent",), "mul-add-shift": ("mul", "add"),
              "thresholds": ("base", "thresholds"), "float-emulation": ("mantissa", "exponent"),
              "threshold-search": ("base", "search")}
    OPTIONAL = {"mul-add-shift": ("fix_acc", "fix_code")}   # (channels, k): code fix_code where acc == fix_acc

    def __init__(self, *, kind, params, channels, pe, acc_shape, out_shape, lo, hi, zero_point=0,
                 shift=0, tables=(), table_qmin=0, memory_styles=None):
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}, not {kind!r}")
        check_positive_int("channels", channels)
        check_positive_int("pe", pe)
        if channels % pe:
            raise ValueError(f"pe must divide channels ({channels}), not {pe}")
        missing = set(self.FIELDS[kind]) - set(params)
        if missing:
            raise ValueError(f"{kind} needs parameters {', '.join(sorted(missing))}")
        self.kind, self.channels, self.pe = kind, channels, pe
        self.search = np.asarray(params["search"], dtype=object) if kind == "threshold-search" else None
        if self.search is not None and (self.search.ndim != 2 or (self.search.shape[1] + 1) & self.search.shape[1]):
            raise ValueError("search must be (channels, 2**depth - 1) sorted thresholds")
        self.fields = tuple(f for f in self.FIELDS[kind] if f != "search") + \
            tuple(f for f in self.OPTIONAL.get(kind, ()) if f in params)
        self.params = {k: np.asarray(params[k], dtype=object) for k in self.fields}
        if "fix_acc" in self.params and self.params["fix_acc"].shape != self.params["fix_code"].shape:
            raise ValueError("fix_acc and fix_code must have the same shape (channels, fixes)")
        self.acc_shape = check_shape("acc_shape", acc_shape)
        self.out_shape = check_shape("out_shape", out_shape)
        self.lo, self.hi, self.zero_point, self.shift = int(lo), int(hi), int(zero_point), int(shift)
        self.tables = [np.asarray(t) for t in tables]
        self.table_qmin = int(table_qmin)
        self.memory_styles = dict(memory_styles or {})
        super().__init__({
            "i": In(stream.Signature(data.ArrayLayout(self.acc_shape, pe))),
            "o": Out(stream.Signature(data.ArrayLayout(self.out_shape, pe))),
        })

    @property
    def out_fold(self):
        return self.channels // self.pe

    def _stage_list(self):
        return [self._params_stage] + getattr(self, "_stages_" + self.kind.replace("-", "_"))() + \
            [self._table_stage(k) for k in range(len(self.tables))]

    def _params_stage(self, m, vals):
        """The channel parameters, read from their ROM as the beat enters, get a register of
        their own (a wide ROM in logic is a deep mux); the accumulators wait one cycle."""
        params = Signal(vals["params"].shape(), name="params")
        with m.If(self._en):
            m.d.sync += params.eq(vals["params"])
        return {"acc": vals["acc"], "params": _Rom(params)}

    @property
    def latency(self):
        """Cycles from an accepted beat to its output: the input register, the parameter
        register, one per stage of the circuit and two through the output queue."""
        return 3 + len(self._stage_list())

    def _field_shape(self, name):
        values = self.params[name]
        if name in ("thresholds", "fix_acc"):
            return data.ArrayLayout(self.acc_shape, max(values.shape[1], 1))
        if name == "fix_code":
            return data.ArrayLayout(self.out_shape, max(values.shape[1], 1))
        if name == "mantissa":
            return unsigned(25)
        lo, hi = int(min(values.min(), 0)), int(max(values.max(), 0))
        return signed_shape_for(lo, hi)

    def elaborate(self, platform):
        m = Module()
        pe = self.pe
        # the pipeline never stalls: a beat is accepted only when the output queue has its place
        stages = self._stage_list()
        m.submodules.queue = queue = CreditQueue(self.o.signature, len(stages) + 4)
        wiring.connect(m, queue.o, wiring.flipped(self.o))
        out = queue.i
        en = self._en = Const(1)
        take = self.i.valid & queue.room
        m.d.comb += [self.i.ready.eq(queue.room), queue.reserve.eq(take)]
        t = self._beat_counter(m, take)
        params = self._params_port(m, t, en)      # parameters of the beat's channels, read as it enters
        vals = {"acc": [Signal(self.acc_shape, name=f"acc{p}") for p in range(pe)], "t": Signal.like(t),
                "valid": Signal()}
        with m.If(en):
            m.d.sync += [vals["valid"].eq(take), vals["t"].eq(t)]
            m.d.sync += [vals["acc"][p].eq(self.i.payload[p]) for p in range(pe)]
        vals["params"] = params

        for n, stage in enumerate(stages):
            new = stage(m, vals)
            new.setdefault("valid", vals["valid"])
            new.setdefault("t", vals["t"])
            vals = {key: value.value if isinstance(value, _Rom) else self._register(m, en, value, f"s{n}_{key}")
                    for key, value in new.items()}
        m.d.comb += out.valid.eq(vals["valid"])
        m.d.comb += [out.payload[p].eq(vals["code"][p]) for p in range(pe)]
        return m

    def _beat_counter(self, m, take):
        """Which beat of a frame (0 … channels/pe − 1) the next taken beat is."""
        t = Signal(range(max(self.out_fold, 2)))
        with m.If(take):
            m.d.sync += t.eq(Mux(t == self.out_fold - 1, 0, t + 1))
        return t

    @property
    def _fixes(self):
        """Fix slots per channel of a mul-add-shift plan (0 without fixes)."""
        return self.params["fix_acc"].shape[1] if "fix_acc" in self.params else 0

    def _param_words(self):
        """The layout of a beat's parameters (``pe`` lanes of the kind's fields) and their value
        for each beat of a frame."""
        pe, fold = self.pe, self.out_fold
        lane = data.StructLayout({f: self._field_shape(f) for f in self.fields})
        init = [[{f: self._field_value(f, tt * pe + p) for f in self.fields} for p in range(pe)]
                for tt in range(fold)]
        return data.ArrayLayout(lane, pe), init

    def _params_port(self, m, t, en):
        """The ``pe`` lanes' parameters of beat ``t`` of a frame: a constant when the frame is
        one beat, else a ROM read (the data one cycle after an ``en`` cycle, then held)."""
        word, init = self._param_words()
        if self.out_fold == 1:
            return Signal(word, init=init[0])         # never driven: a constant
        rom = memory.Memory(shape=word, depth=len(init), init=init, attrs=style_attrs(self.memory_styles, "params"))
        m.submodules.params = rom
        port = rom.read_port()
        m.d.comb += [port.addr.eq(t), port.en.eq(en)]
        return port.data

    def _product_width(self):
        """|acc · M + C| < 2**(acc_width - 1) · max M + max |C|: the width every partial sum may wrap to."""
        bound = (1 << (self.acc_shape.width - 1)) * int(self.params["mul"].max()) + \
            int(np.abs(self.params["add"].astype(np.int64)).max())
        return bound.bit_length() + 1

    def _register(self, m, en, value, name):
        """A pipeline register (advancing with ``en``) for a value or a nested list of values."""
        if isinstance(value, list):
            return [self._register(m, en, v, f"{name}_{k}") for k, v in enumerate(value)]
        reg = Signal.like(value, name=name) if isinstance(value, Signal) else Signal(value.shape(), name=name)
        with m.If(en):
            m.d.sync += reg.eq(value)
        return reg

    def _field_value(self, name, channel):
        v = self.params[name][channel]
        return [int(x) for x in v] if name in ("thresholds", "fix_acc", "fix_code") else int(v)

    def _clamped(self, v):
        return clamp(v, self.lo, self.hi)

    # -- the implementations; each stage returns every value the next one needs --------------------
    def _stages_shift(self):
        max_k = int(max(abs(int(self.params["exponent"].min())), abs(int(self.params["exponent"].max())), 1))

        def stage(m, vals):
            codes = []
            for p, acc in enumerate(vals["acc"]):
                e = vals["params"][p].exponent
                left = Signal(range(max_k + 1))
                right = Signal(range(max_k + 1))
                m.d.comb += [left.eq(Mux(e >= 0, e, 0)), right.eq(Mux(e < 0, -e, 0))]
                v = Mux(e >= 0, acc << left, rne_shift(m, acc, right, max_k))
                codes.append(self._clamped(v + self.zero_point))
            return {"code": codes}
        return [stage]

    def _stages_mul_add_shift(self):
        """``(acc · M + C) >> s`` as partial products and an adder tree; beside it, the
        channel's fixes (an equality compare per fix) choose a listed code instead."""
        fixes = self._fixes
        carry = ("hits", "fixes") if fixes else ()
        width = self._product_width()
        levels, unwrap = adder_stages(-(-self._field_shape("mul").width // CHUNK) + 1, carry, width)

        def partials(m, vals):           # acc · M as partial products, and C, to be added
            out = {"x": [[wrap(x, width) for x in partial_products(acc, vals["params"][p].mul.as_unsigned())] +
                         [vals["params"][p].add] for p, acc in enumerate(vals["acc"])]}
            if fixes:                     # compared here, chosen in the last stage
                out["hits"] = [Cat(*(acc == vals["params"][p].fix_acc[k] for k in range(fixes)))
                               for p, acc in enumerate(vals["acc"])]
                out["fixes"] = [[vals["params"][p].fix_code[k] for k in range(fixes)] for p in range(self.pe)]
            return out

        def shift(m, vals):
            vals = unwrap(m, vals)
            codes = [self._clamped(vals["x"][p] >> self.shift) for p in range(self.pe)]
            for k in range(fixes):
                codes = [Mux(vals["hits"][p][k], vals["fixes"][p][k], codes[p]) for p in range(self.pe)]
            return {"code": codes}
        return [partials, *levels, shift]

    def _stages_thresholds(self):
        def stage(m, vals):
            codes = []
            k = self.params["thresholds"].shape[1]
            for p, acc in enumerate(vals["acc"]):
                lane = vals["params"][p]
                count = sum((acc >= lane.thresholds[j] for j in range(k)), Const(0, range(k + 1)))
                codes.append(self._clamped(lane.base + count))
            return {"code": codes}
        return [stage]

    def _stages_threshold_search(self):
        """A binary search for the count of thresholds ≤ acc: the stage for bit j compares acc
        with the threshold at index ``idx + 2**j − 1`` (idx: the bits found so far, a multiple
        of 2**(j+1)), read from the stage's own ROM of the 2**(depth−1−j) thresholds it can
        probe per channel; the read is issued one stage ahead.  Thresholds are one bit wider
        than acc, so the padding above the accumulator range fits."""
        depth = (self.search.shape[1] + 1).bit_length() - 1
        pe, fold = self.pe, self.out_fold
        width = signed(self.acc_shape.width + 1)

        def read(m, vals, j, idx):
            per = 1 << (depth - 1 - j)
            ports = []
            for p in range(pe):
                words = [int(self.search[t * pe + p, (q << (j + 1)) + (1 << j) - 1])
                         for t in range(fold) for q in range(per)]
                name = f"search{j}_{p}"
                rom = memory.Memory(shape=width, depth=len(words), init=words,
                                    attrs=style_attrs(self.memory_styles, name))
                m.submodules[name] = rom
                port = rom.read_port()
                m.d.comb += [port.addr.eq(vals["t"] * per + (idx[p] >> (j + 1))), port.en.eq(self._en)]
                ports.append(port.data)
            return _Rom(ports)

        def issue(m, vals):
            idx = [Const(0, depth) for _ in range(pe)]
            return {"acc": vals["acc"], "base": [vals["params"][p].base for p in range(pe)], "idx": idx,
                    "thr": read(m, vals, depth - 1, idx)}

        def step(j):
            def stage(m, vals):
                idx = [vals["idx"][p] | ((vals["acc"][p] >= vals["thr"][p]) << j) for p in range(pe)]
                if j == 0:
                    return {"code": [self._clamped(vals["base"][p] + idx[p]) for p in range(pe)]}
                return {"acc": vals["acc"], "base": vals["base"], "idx": idx, "thr": read(m, vals, j - 1, idx)}
            return stage
        return [issue] + [step(j) for j in reversed(range(depth))]

    def _stages_float_emulation(self):
        """``RNE(f32(f32(acc) · m)) + zp`` in integers, pipelined so that each stage holds one
        wide operation: |acc|; partial products; their sum; the leading one; the rounding
        increment, the add and the shift of the float32 rounding; the same three for the
        rounding to an integer; sign and zero point; the clamp (a stage of its own: after the
        add, its compares were the critical path at 100 MHz on ECP5)."""
        pe, acc_width = self.pe, self.acc_shape.width
        keep = lambda vals, *names: {n: vals[n] for n in names}

        def magnitude(m, vals):          # f32(acc): exact below 2**24, else rounded to 24 bits
            mags, exps = [], []
            for acc in vals["acc"]:
                mag = Signal(acc_width)
                m.d.comb += mag.eq(Mux(acc < 0, -acc, acc))
                if acc_width - 1 <= 24:
                    mags.append(mag)
                    exps.append(Const(0, 6))
                else:
                    a, e = self._round_significant(m, mag)
                    mags.append(a)
                    exps.append(e)
            return {"sign": [acc < 0 for acc in vals["acc"]], "mag": mags, "ea": exps,
                    "mant": [vals["params"][p].mantissa for p in range(pe)],
                    "exponent": [vals["params"][p].exponent for p in range(pe)]}

        levels, unwrap = adder_stages(-(-25 // CHUNK), ("sign", "e0"))

        def partials(m, vals):           # the 24-bit significand product, as partial products
            return {"sign": vals["sign"], "e0": [vals["ea"][p] + vals["exponent"][p] for p in range(pe)],
                    "x": [partial_products(vals["mag"][p], vals["mant"][p]) for p in range(pe)]}

        def leading_one(m, vals):        # f32 rounding position: n - 24 for an n-bit product
            vals = unwrap(m, vals)
            return {**keep(vals, "sign", "e0", "x"), "lead": [leading_above(x, 24) for x in vals["x"]]}

        def position(m, vals):
            return {**keep(vals, "sign", "e0", "x"), "k": [encode_position(m, h) for h in vals["lead"]]}

        def renormalize(m, vals):        # rounding up to 2**24 carries into the exponent
            qs, es = [], []
            for p in range(pe):
                q = Signal(25)
                m.d.comb += q.eq(vals["x"][p])
                carry = q[24]
                qs.append(Mux(carry, q >> 1, q)[:24])
                es.append(vals["e0"][p] + vals["k"][p] + carry)
            return {"sign": vals["sign"], "q": qs, "e": es}

        def integer_position(m, vals):   # rounding to an integer: at bit -e, or a left shift by e
            out = {"sign": vals["sign"], "x": vals["q"], "neg": [], "left": [], "k": []}
            for e in vals["e"]:
                left, right = Signal(range(17)), Signal(range(27))
                m.d.comb += [left.eq(Mux(e >= 16, 16, Mux(e >= 0, e, 0))),
                             right.eq(Mux(e <= -26, 26, Mux(e < 0, -e, 0)))]
                out["left"].append(left)
                out["k"].append(right)
                out["neg"].append(e < 0)
            return out

        def integer_left(m, vals):       # a left shift when e ≥ 0; saturate to 12 bits
            out = {"sign": vals["sign"], "v": []}
            bits, limit = 12, (1 << 12) - 1
            for p in range(pe):
                x, left, neg = vals["x"][p], vals["left"][p], vals["neg"][p]
                # x · 2**left ≥ 2**12 exactly when x >> (12 - left) is not zero (or left ≥ 12 and x ≠ 0)
                over_left = Mux(left >= bits, x.any(), (x >> (bits - left)[:4]).any())
                big = Mux(neg, x[bits:].any(), over_left)
                narrow = Signal(bits)
                m.d.comb += narrow.eq(Mux(neg, x[:bits], (x[:bits] << left)[:bits]))
                out["v"].append(Mux(big, limit, narrow))
            return out

        def signed_value(m, vals):       # sign and zero point
            return {"v": [Mux(vals["sign"][p], -vals["v"][p], vals["v"][p]) + self.zero_point for p in range(pe)]}

        def finish(m, vals):
            return {"code": [self._clamped(v) for v in vals["v"]]}

        int_keep = ("sign", "neg", "left", "k")
        return [magnitude, partials, *levels, leading_one, position,
                *rne_stages(pe, ("sign", "e0", "k"), 24), renormalize, integer_position,
                *rne_stages(pe, int_keep, 24), integer_left, signed_value, finish]

    def _round_significant(self, m, x):
        """(q, sh): x ≈ q · 2**sh with q of at most 24 significant bits, RNE."""
        sh = rounding_position(m, x, 24)
        q = Signal(25)
        m.d.comb += q.eq(rne_shift(m, x, sh, max(len(x) - 24, 1)))
        carry = q[24]
        out = Signal(24)
        m.d.comb += out.eq(Mux(carry, q >> 1, q))
        return out, sh + carry

    def _table_stage(self, index):
        table = self.tables[index]
        size = table.shape[1]

        def stage(m, vals):
            codes = []
            for p in range(self.pe):
                words = [int(table[tt * self.pe + p, j]) & ((1 << self.out_shape.width) - 1)
                         for tt in range(self.out_fold) for j in range(size)]
                rom = memory.Memory(shape=self.out_shape, depth=len(words), attrs=style_attrs(
                    self.memory_styles, f"table{index}_{p}"), init=[
                    w - (1 << self.out_shape.width) if self.out_shape.signed and w >> (self.out_shape.width - 1) else w
                    for w in words])
                m.submodules[f"table{index}_{p}"] = rom
                port = rom.read_port()
                m.d.comb += [port.addr.eq(vals["t"] * size + (vals["code"][p] - self.table_qmin)),
                             port.en.eq(self._en)]
                codes.append(port.data)
            return {"code": _Rom(codes), "valid": vals["valid"], "t": vals["t"]}
        return stage


class SerialRequant(Requant):
    """The mul-add-shift circuit (with its fixes) forming ``acc · M`` two bits of M per cycle,
    most significant first (``p ← 4p + acc · digit``), the running product kept in carry-save
    form (a sum and a carry word, so a step is a four-way choice of {0, a, 2a, 3a} and a full
    adder per bit, no carry chain); then C is added in carry-save form, the two words are added
    once, and the result shifted, clamped and fixed.  One beat every ``period`` = ``digits`` + 6
    cycles (the next is taken the cycle after the result leaves); ``latency`` = ``digits`` + 5
    cycles from a taken beat to its result.  A tenth of the parallel circuit's logic, for
    layers whose requantizer would otherwise idle.  Same parameters as Requant, and
    ``param_words``: where above 1, a beat's parameters are that many narrow rows of a ROM
    that many times as deep (one block RAM where the wide ROM took several), read one a cycle
    while the unit waits for its next beat (``_narrow_params``): ``period`` grows by as many
    cycles, ``latency`` does not."""

    def __init__(self, *, param_words=1, **kwargs):
        super().__init__(kind="mul-add-shift", **kwargs)
        self.digits = max(1, -(-(self._field_shape("mul").width - 1) // CHUNK))
        check_positive_int("param_words", param_words)
        self.param_words = param_words if self.out_fold > 1 else 1

    @property
    def period(self):
        return self.digits + 6 + (self.param_words if self.param_words > 1 else 0)

    @property
    def latency(self):
        return self.digits + 5

    def elaborate(self, platform):
        m = Module()
        pe, n, fixes = self.pe, self.digits, self._fixes
        width = self._product_width()
        # 0 idle, 1 first digit, 2 … n + 1 digits, n + 2 add C, n + 3 add the words, n + 4 result
        phase = Signal(range(n + 5))
        take = Signal()
        # ready from registers only (not the consumer's ready: no path through the units)
        if self.param_words > 1:         # a beat is taken once its parameters are in
            params, have = self._narrow_params(m, phase == 0, take)
            m.d.comb += [self.i.ready.eq((phase == 0) & ~self.o.valid & have), take.eq(self.i.valid & self.i.ready)]
        else:
            m.d.comb += [self.i.ready.eq((phase == 0) & ~self.o.valid), take.eq(self.i.valid & self.i.ready)]
            params = self._params_port(m, self._beat_counter(m, take), take)
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        with m.If(take):
            m.d.sync += phase.eq(1)
        with m.Elif(phase == n + 4):
            m.d.sync += [phase.eq(0), self.o.valid.eq(1)]
        with m.Elif(phase != 0):
            m.d.sync += phase.eq(phase + 1)
        # the digit used in the next cycle: digit n − phase of M (phase 1 … n), most significant first
        position = Signal(range(max(CHUNK * n, 2)))
        m.d.comb += position.eq(CHUNK * (n - phase))

        def csa(x, y, z):               # x + y + z as a sum and a carry word, modulo 2**width
            return (x ^ y ^ z)[:width], (((x & y) | (x & z) | (y & z)) << 1)[:width]
        for p in range(pe):
            a, a3 = Signal(self.acc_shape, name=f"a{p}"), Signal(signed(self.acc_shape.width + 2), name=f"a3_{p}")
            total, carry, r = (Signal(width, name=f"{x}{p}") for x in ("sum", "carry", "r"))
            digit = Signal(CHUNK, name=f"digit{p}")
            lane = params[p]
            mul = Cat(lane.mul.as_unsigned(), Const(0, CHUNK))
            term, add = Signal(signed(width), name=f"term{p}"), Signal(signed(width), name=f"add{p}")
            m.d.comb += [term.eq(Mux(digit == 1, a, Mux(digit == 2, a << 1, Mux(digit == 3, a3, 0)))),
                         add.eq(lane.add)]            # sign-extended to the product's width
            with m.If(take):
                m.d.sync += [a.eq(self.i.payload[p]), a3.eq(self.i.payload[p] + (self.i.payload[p] << 1)),
                             total.eq(0), carry.eq(0)]
            with m.If((phase >= 1) & (phase <= n)):
                m.d.sync += digit.eq(mul.bit_select(position, CHUNK))
            with m.If((phase >= 2) & (phase <= n + 1)):
                m.d.sync += [x.eq(v) for x, v in zip((total, carry), csa(total << CHUNK, carry << CHUNK,
                                                                          term.as_unsigned()))]
            with m.If(phase == n + 2):
                m.d.sync += [x.eq(v) for x, v in zip((total, carry), csa(total, carry, add.as_unsigned()))]
            with m.If(phase == n + 3):
                m.d.sync += r.eq((total + carry)[:width])
            hits = Signal(max(fixes, 1), name=f"hits{p}")   # compared while the digits run
            with m.If(phase == 2):
                m.d.sync += [hits[k].eq(a == lane.fix_acc[k]) for k in range(fixes)]
            code = self._clamped(r.as_signed() >> self.shift)
            for k in range(fixes):
                code = Mux(hits[k], lane.fix_code[k], code)
            with m.If(phase == n + 4):
                m.d.sync += self.o.payload[p].eq(code)
        return m

    def _narrow_params(self, m, idle, take):
        """(the parameters of the next beat, whether they are all in): row j of a beat holds
        bits [j·w, (j+1)·w) of its parameter word; while ``idle`` (after a beat's result,
        before the next is taken) the rows are read one a cycle in address order (beats come in
        channel order, so the address only counts up and wraps) and shifted in from the top;
        ``take`` starts the next beat's."""
        k, fold = self.param_words, self.out_fold
        word, init = self._param_words()
        w = -(-word.size // k)
        rows = []
        for beat in init:
            value = word.const(beat).as_value().value
            rows += [(value >> (j * w)) & ((1 << w) - 1) for j in range(k)]
        rom = memory.Memory(shape=unsigned(w), depth=fold * k, init=rows,
                            attrs=style_attrs(self.memory_styles, "params"))
        m.submodules.params = rom
        port = rom.read_port()
        addr, issued, got = Signal(range(fold * k)), Signal(range(k + 1)), Signal(range(k + 1))
        landed, read, buf = Signal(), Signal(), Signal(k * w)
        m.d.comb += [read.eq(idle & (issued != k)), port.addr.eq(addr), port.en.eq(read)]
        m.d.sync += landed.eq(read)
        with m.If(read):
            m.d.sync += [addr.eq(Mux(addr == fold * k - 1, 0, addr + 1)), issued.eq(issued + 1)]
        with m.If(landed):
            m.d.sync += [buf.eq(Cat(buf[w:], port.data)), got.eq(got + 1)]
        with m.If(take):              # never with ``landed``: a beat is taken only when all are in
            m.d.sync += [issued.eq(0), got.eq(0)]
        return data.View(word, buf[:word.size]), got == k
