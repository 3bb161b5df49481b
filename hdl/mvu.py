"""Matrix-vector units: the MVU and the depthwise vector unit.  Each exposes ``latency``
(cycles from the input beat an output beat needs last to that output beat), which
mapper/kernels/mvu.py mirrors."""
import numpy as np
from amaranth.hdl import Module, Mux, Signal, Value
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from . import dsp, spram
from .streams import registered_output
from .util import check_positive_int, check_shape, pack, rom, signed_shape_for, style_attrs, tree_sum


def weight_shape(weights):
    """The narrowest signed shape of ``weights`` (and of zero)."""
    weights = np.asarray(weights)
    return signed_shape_for(min(0, weights.min()), max(0, weights.max()))


def weight_words(weights, pe, simd):
    """An MVU's weight memory words, one a step: tile by tile, the pe × simd weights of each
    input step (weight [p, s] at lane p · simd + s), of the weights' signed width."""
    weights = np.asarray(weights)
    wbits = weight_shape(weights).width
    out_fold, in_fold = weights.shape[0] // pe, weights.shape[1] // simd
    return [pack(weights[t * pe:(t + 1) * pe, i * simd:(i + 1) * simd], wbits)
            for t in range(out_fold) for i in range(in_fold)]


def load_image(weights, pe, simd):
    """The 16-bit words an MVU with its weights in SPRAM takes through ``load`` (hdl.spram.image
    of weight_words): the Verilog need not be built to know them."""
    return spram.image(weight_words(weights, pe, simd), pe * simd * weight_shape(weights).width)


class MVU(wiring.Component):
    """``acc = weights · x + bias`` on a stream of input vectors, ``pe`` outputs by ``simd``
    inputs per cycle.

    Parameters
    ----------
    weights : (out_features, in_features) integer array, constant
    bias : (out_features,) integer array, constant
    pe, simd : divisors of out_features and in_features
    input_shape : shape of one input code
    acc_shape : signed shape that holds every partial sum
    memory_styles : {"weights" | "buffer" | "bias": "block" | "logic"}, where each memory goes
    split_products : each product as two (the weight by the input's low and high halves) in a
        stage of their own, added in the next: for products built in LUTs, whose multiply is
        otherwise the critical path (one more cycle of latency)
    dsp_cell : None, or the DSP primitive the products are instantiated as, its operand and
        product registers used (hdl.dsp: "MULT18X18D" on ECP5, "SB_MAC16" on iCE40, two 8×8
        products a block): the operand registers then feed the block's own (one more cycle of
        latency)
    spram_cell : None, or where the weights are: hdl.spram.CELL (the UP5K's SPRAMs, filled at
        run time through ``load`` before the first frame; same timing) or hdl.spram.MODEL

    Members
    -------
    i : In(stream of ``simd`` input codes); a frame is in_features / simd beats, in order
    o : Out(stream of ``pe`` accumulators); a frame is out_features / pe beats, in order
    load : In(stream of 16-bit words), with a ``spram_cell``: ``load_image``, once after reset

    Timing: one beat per cycle, in_fold · out_fold cycles per frame; an output beat is valid
    ``latency`` = 5 + ``tree_stages`` cycles after the last step of its tile (one more with
    ``split_products`` or a ``dsp_cell``): the weight read, the operand registers, the
    products, one stage per ``LEVELS_PER_STAGE`` levels of the adder tree over ``simd``
    products (``tree_stages``), the accumulator and the output's register slice.
    """
    LEVELS_PER_STAGE = 2

    def __init__(self, *, weights, bias, pe, simd, input_shape, acc_shape, memory_styles=None,
                 split_products=False, dsp_cell=None, spram_cell=None):
        weights = np.asarray(weights)
        if weights.ndim != 2 or not np.issubdtype(weights.dtype, np.integer):
            raise TypeError(f"weights must be a 2-D integer array, not {weights.dtype} {weights.shape}")
        self.out_features, self.in_features = weights.shape
        check_positive_int("pe", pe)
        check_positive_int("simd", simd)
        if self.out_features % pe:
            raise ValueError(f"pe must divide out_features ({self.out_features}), not {pe}")
        if self.in_features % simd:
            raise ValueError(f"simd must divide in_features ({self.in_features}), not {simd}")
        bias = np.asarray(bias)
        if bias.shape != (self.out_features,):
            raise ValueError(f"bias must have shape ({self.out_features},), not {bias.shape}")
        self.weights, self.bias, self.pe, self.simd = weights, bias, pe, simd
        self.memory_styles = dict(memory_styles or {})
        self.input_shape = check_shape("input_shape", input_shape)
        self.acc_shape = check_shape("acc_shape", acc_shape)
        self.weight_shape = weight_shape(weights)
        self.split_products = bool(split_products) and self.input_shape.width > 1
        self.dsp_cell = dsp_cell
        if dsp_cell is not None:
            if self.split_products:
                raise ValueError("split_products is for products in LUTs, not with a dsp_cell")
            dsp.require(dsp_cell, self.weight_shape, self.input_shape)
        self.spram_cell = spram_cell
        members = {
            "i": In(stream.Signature(data.ArrayLayout(self.input_shape, simd))),
            "o": Out(stream.Signature(data.ArrayLayout(self.acc_shape, pe))),
        }
        if spram_cell is not None:
            if self.in_fold * self.out_fold == 1:
                raise ValueError("spram_cell is for weights of more than one step (one word is a constant)")
            members["load"] = In(spram.load_signature())
        super().__init__(members)

    @property
    def in_fold(self):
        return self.in_features // self.simd

    @property
    def out_fold(self):
        return self.out_features // self.pe

    @property
    def cycles_per_frame(self):
        return self.in_fold * self.out_fold

    @property
    def tree_stages(self):
        levels = (self.simd - 1).bit_length()
        return max(1, -(-levels // self.LEVELS_PER_STAGE))

    @property
    def latency(self):
        """Cycles from the last step of a tile to its output beat (see Timing)."""
        return 5 + self.tree_stages + self.split_products + (self.dsp_cell is not None)

    @property
    def weight_words(self):
        return weight_words(self.weights, self.pe, self.simd)

    @property
    def load_image(self):
        """The 16-bit words ``load`` takes with a ``spram_cell`` (load_image)."""
        return load_image(self.weights, self.pe, self.simd)

    def elaborate(self, platform):
        m = Module()
        pe, simd, in_fold, out_fold = self.pe, self.simd, self.in_fold, self.out_fold
        wbits = self.weight_shape.width
        lanes = data.ArrayLayout(self.weight_shape, pe * simd)

        out = registered_output(m, self.o)
        en = Signal()                       # the whole pipeline advances together
        m.d.comb += en.eq(~out.valid | out.ready)
        i_cnt = Signal(range(max(in_fold, 2)))
        t_cnt = Signal(range(max(out_fold, 2)))
        w_addr = Signal(range(max(in_fold * out_fold, 2)))
        first_pass = Signal(init=1)         # t_cnt == 0, as a register: it drives i.ready
        step = Signal()
        m.d.comb += [step.eq(en & (~first_pass | self.i.valid)),
                     self.i.ready.eq(en & first_pass)]
        with m.If(step):
            m.d.sync += [i_cnt.eq(Mux(i_cnt == in_fold - 1, 0, i_cnt + 1)),
                         w_addr.eq(Mux(w_addr == in_fold * out_fold - 1, 0, w_addr + 1))]
            with m.If(i_cnt == in_fold - 1):
                m.d.sync += [t_cnt.eq(Mux(t_cnt == out_fold - 1, 0, t_cnt + 1)),
                             first_pass.eq(t_cnt == out_fold - 1)]

        if self.spram_cell is None:
            w_word = lanes(rom(m, "weights", self.weight_words, pe * simd * wbits, w_addr, en, self.memory_styles))
        else:
            w_word = lanes(spram.loaded_rom(m, "weights", pe * simd * wbits, in_fold * out_fold, w_addr, en,
                                            self.load, self.spram_cell))

        # stage 1: weights and input vector
        s1 = {k: Signal(name=f"s1_{k}") for k in ("valid", "first_pass", "first", "last")}
        s1_t = Signal.like(t_cnt)
        s1_x = Signal(data.ArrayLayout(self.input_shape, simd))
        with m.If(en):
            m.d.sync += [s1["valid"].eq(step), s1["first_pass"].eq(first_pass), s1["first"].eq(i_cnt == 0),
                         s1["last"].eq(i_cnt == in_fold - 1), s1_t.eq(t_cnt), s1_x.eq(self.i.payload)]
        x = s1_x
        if out_fold > 1:                    # keep the vector for the other output tiles
            buf = memory.Memory(shape=data.ArrayLayout(self.input_shape, simd), depth=in_fold, init=[],
                                attrs=style_attrs(self.memory_styles, "buffer"))
            m.submodules.buffer = buf
            wp, rp = buf.write_port(), buf.read_port()
            m.d.comb += [wp.addr.eq(i_cnt), wp.data.eq(self.i.payload), wp.en.eq(step & first_pass),
                         rp.addr.eq(i_cnt), rp.en.eq(en)]
            x = Signal.like(s1_x)
            m.d.comb += x.eq(Mux(s1["first_pass"], s1_x, rp.data))

        # stage 2: weights and inputs registered (memory outputs are slow), then products
        # plain vectors viewed as lanes: Yosys (0.70, ECP5 flow) asserts on the per-lane
        # names Amaranth emits for layout-typed registers here
        w_reg = lanes(Signal(len(w_word.as_value()), name="w_reg", reset_less=True))
        x_reg = data.ArrayLayout(self.input_shape, simd)(Signal(self.input_shape.width * simd, name="x_reg",
                                                                 reset_less=True))
        s1b = {k: Signal(name=f"s1b_{k}") for k in ("valid", "first", "last")}
        s1b_t = Signal.like(t_cnt)
        with m.If(en):
            m.d.sync += [w_reg.eq(w_word), x_reg.eq(x), s1b_t.eq(s1_t)] + [s1b[k].eq(s1[k]) for k in s1b]
        w_word, x, s1, s1_t = w_reg, x_reg, s1b, s1b_t

        prod_shape = signed_shape_for(*self._product_range())
        if self.split_products:             # w · x = w · x_low + (w · x_high) << low
            low = self.input_shape.width // 2
            halves = [[(Signal(prod_shape, name=f"pl{p}_{s}", reset_less=True),
                        Signal(prod_shape, name=f"ph{p}_{s}", reset_less=True))
                       for s in range(simd)] for p in range(pe)]
            s2h = {k: Signal(name=f"s2h_{k}") for k in ("valid", "first", "last")}
            s2h_t = Signal.like(t_cnt)
            with m.If(en):
                m.d.sync += [s2h[k].eq(s1[k]) for k in s2h] + [s2h_t.eq(s1_t)]
                for p in range(pe):
                    for s in range(simd):
                        bits = Value.cast(x[s])
                        high = bits[low:].as_signed() if self.input_shape.signed else bits[low:]
                        lo, hi = halves[p][s]
                        m.d.sync += [lo.eq(w_word[p * simd + s] * bits[:low]), hi.eq(w_word[p * simd + s] * high)]
            s1, s1_t = s2h, s2h_t
        if self.dsp_cell is not None:       # the blocks' input registers: a stage of control
            s2d = {k: Signal(name=f"s2d_{k}") for k in ("valid", "first", "last")}
            s2d_t = Signal.like(t_cnt)
            with m.If(en):
                m.d.sync += [s2d[k].eq(s1[k]) for k in s2d] + [s2d_t.eq(s1_t)]
            lanes_ps = [(p, s) for p in range(pe) for s in range(simd)]
            flat_prods = dsp.registered_products(m, [(w_word[p * simd + s], x[s]) for p, s in lanes_ps], en,
                                                 prod_shape, cell=self.dsp_cell,
                                                 names=[f"dsp{p}_{s}" for p, s in lanes_ps])
            prods = [flat_prods[p * simd:(p + 1) * simd] for p in range(pe)]
            s1, s1_t = s2d, s2d_t
        else:
            prods = [[Signal(prod_shape, name=f"p{p}_{s}", reset_less=True) for s in range(simd)]
                     for p in range(pe)]
        s2 = {k: Signal(name=f"s2_{k}") for k in ("valid", "first", "last")}
        s2_t = Signal.like(t_cnt)
        with m.If(en):
            m.d.sync += [s2[k].eq(s1[k]) for k in s2] + [s2_t.eq(s1_t)]
            if self.split_products:
                m.d.sync += [prods[p][s].eq(halves[p][s][0] + (halves[p][s][1] << low))
                             for p in range(pe) for s in range(simd)]
            elif self.dsp_cell is None:     # (else the products are the blocks' output registers)
                m.d.sync += [prods[p][s].eq(w_word[p * simd + s] * x[s]) for p in range(pe) for s in range(simd)]

        # stages 3…: adder trees, two levels per stage; the bias of the tile is read alongside
        group = 1 << self.LEVELS_PER_STAGE
        sums, ctrl, ctrl_t = prods, s2, s2_t
        bias_layout = data.ArrayLayout(self.acc_shape, pe)
        bias_words = [pack(self.bias[t * pe:(t + 1) * pe], self.acc_shape.width) for t in range(out_fold)]
        for stage in range(self.tree_stages):
            last_stage = stage == self.tree_stages - 1
            if last_stage:
                bias = bias_layout(rom(m, "bias", bias_words, pe * self.acc_shape.width, ctrl_t, en,
                                         self.memory_styles))
            new_sums = []
            for p in range(pe):
                chunks = [sums[p]] if last_stage else [sums[p][k:k + group] for k in range(0, len(sums[p]), group)]
                regs = [Signal(self.acc_shape, name=f"sum{stage}_{p}_{k}") for k in range(len(chunks))]
                with m.If(en):
                    m.d.sync += [r.eq(tree_sum(c)) for r, c in zip(regs, chunks)]
                new_sums.append(regs)
            new_ctrl = {k: Signal(name=f"t{stage}_{k}") for k in ("valid", "first", "last")}
            new_t = Signal.like(t_cnt, name=f"t{stage}_t")
            with m.If(en):
                m.d.sync += [new_ctrl[k].eq(ctrl[k]) for k in new_ctrl] + [new_t.eq(ctrl_t)]
            sums, ctrl, ctrl_t = new_sums, new_ctrl, new_t
        sums = [s_[0] for s_ in sums]
        s3 = ctrl

        # stage 4: accumulate; the last input tile of an output tile makes an output beat
        acc = [Signal(self.acc_shape, name=f"acc{p}") for p in range(pe)]
        with m.If(en):
            m.d.sync += out.valid.eq(s3["valid"] & s3["last"])
            with m.If(s3["valid"]):
                for p in range(pe):
                    total = Mux(s3["first"], bias[p], acc[p]) + sums[p]
                    m.d.sync += acc[p].eq(total)
                    m.d.sync += out.payload[p].eq(total)
        return m

    def _product_range(self):
        w_lo, w_hi = min(0, int(self.weights.min())), max(0, int(self.weights.max()))
        s = self.input_shape
        x_lo, x_hi = (-(1 << (s.width - 1)), (1 << (s.width - 1)) - 1) if s.signed else (0, (1 << s.width) - 1)
        corners = [w_lo * x_lo, w_lo * x_hi, w_hi * x_lo, w_hi * x_hi]
        return min(corners), max(corners)


class DepthwiseUnit(wiring.Component):
    """Depthwise convolution (one filter per channel): for each output pixel and group of
    ``pe`` channels, the ``taps`` beats of that group's window arrive in a run (a window
    generator in "channels" order) and lane p accumulates ``weights[c, tap] · x`` for its
    channel c; the last tap makes an output beat of ``pe`` accumulators, bias included.

    weights : (channels, taps) integers; bias : (channels,)
    dsp_cell : None, or the DSP primitive each product is instantiated as (as in MVU)
    Timing: one beat per cycle, channels / pe · taps cycles per pixel; ``latency`` =
    ``LATENCY`` = 4 cycles from the last tap to the output beat (the input register beside the
    weight read, the product, the accumulator, the output register slice); one more with a
    ``dsp_cell`` (the block's input registers).
    """
    LATENCY = 4

    def __init__(self, *, weights, bias, pe, input_shape, acc_shape, memory_styles=None, dsp_cell=None):
        weights, bias = np.asarray(weights), np.asarray(bias)
        if weights.ndim != 2 or bias.shape != (weights.shape[0],):
            raise ValueError(f"weights must be (channels, taps) and bias (channels,), not {weights.shape}, "
                             f"{bias.shape}")
        check_positive_int("pe", pe)
        self.channels, self.taps = weights.shape
        if self.channels % pe:
            raise ValueError(f"pe must divide the {self.channels} channels, not {pe}")
        self.weights, self.bias, self.pe = weights, bias, pe
        self.memory_styles = dict(memory_styles or {})
        self.input_shape = check_shape("input_shape", input_shape)
        self.acc_shape = check_shape("acc_shape", acc_shape)
        self.weight_shape = weight_shape(weights)
        self.dsp_cell = dsp_cell
        dsp.require(dsp_cell, self.weight_shape, self.input_shape)
        self.latency = self.LATENCY + (dsp_cell is not None)
        super().__init__({"i": In(stream.Signature(data.ArrayLayout(self.input_shape, pe))),
                          "o": Out(stream.Signature(data.ArrayLayout(self.acc_shape, pe)))})

    def elaborate(self, platform):
        m = Module()
        pe, taps, groups = self.pe, self.taps, self.channels // self.pe
        wbits, abits = self.weight_shape.width, self.acc_shape.width
        out = registered_output(m, self.o)
        en = Signal()
        m.d.comb += [en.eq(~out.valid | out.ready), self.i.ready.eq(en)]
        step = self.i.valid & en
        tap = Signal(range(max(taps, 2)))
        group = Signal(range(max(groups, 2)))
        addr = Signal(range(max(taps * groups, 2)))
        with m.If(step):
            m.d.sync += [tap.eq(Mux(tap == taps - 1, 0, tap + 1)),
                         addr.eq(Mux(addr == taps * groups - 1, 0, addr + 1))]
            with m.If(tap == taps - 1):
                m.d.sync += group.eq(Mux(group == groups - 1, 0, group + 1))
        w_words = [pack(self.weights[g * pe:(g + 1) * pe, t], wbits) for g in range(groups) for t in range(taps)]
        w = data.ArrayLayout(self.weight_shape, pe)(rom(m, "weights", w_words, pe * wbits, addr, en,
                                                        self.memory_styles))
        b_words = [pack(self.bias[g * pe:(g + 1) * pe], abits) for g in range(groups)]
        bias = data.ArrayLayout(self.acc_shape, pe)(rom(m, "bias", b_words, pe * abits, group, en,
                                                        self.memory_styles))
        # stage 1: the input beat beside its weights (read this cycle) and the group's bias
        x = Signal(data.ArrayLayout(self.input_shape, pe), reset_less=True)
        v1, first1, last1 = Signal(), Signal(), Signal()
        with m.If(en):
            m.d.sync += [x.eq(self.i.payload), v1.eq(step), first1.eq(tap == 0), last1.eq(tap == taps - 1)]
        # stage 2: products (with a dsp_cell, a stage of the blocks' input registers before)
        if self.dsp_cell is not None:
            prods = dsp.registered_products(m, [(w[k], x[k]) for k in range(pe)], en, self.acc_shape,
                                            cell=self.dsp_cell, names=[f"dsp{k}" for k in range(pe)])
            v1d, first1d, last1d = Signal(), Signal(), Signal()
            bias1d = Signal(data.ArrayLayout(self.acc_shape, pe))
            with m.If(en):
                m.d.sync += [v1d.eq(v1), first1d.eq(first1), last1d.eq(last1), bias1d.eq(bias)]
            v1, first1, last1, bias = v1d, first1d, last1d, bias1d
        else:
            prods = [Signal(self.acc_shape, name=f"p{k}", reset_less=True) for k in range(pe)]
        bias2 = Signal(data.ArrayLayout(self.acc_shape, pe))
        v2, first2, last2 = Signal(), Signal(), Signal()
        with m.If(en):
            m.d.sync += [v2.eq(v1), first2.eq(first1), last2.eq(last1), bias2.eq(bias)]
            if self.dsp_cell is None:
                m.d.sync += [prods[k].eq(w[k] * x[k]) for k in range(pe)]
        # stage 3: accumulate; the last tap makes an output beat
        acc = [Signal(self.acc_shape, name=f"acc{k}") for k in range(pe)]
        with m.If(en):
            m.d.sync += out.valid.eq(v2 & last2)
            with m.If(v2):
                for k in range(pe):
                    total = Mux(first2, bias2[k], acc[k]) + prods[k]
                    m.d.sync += [acc[k].eq(total), out.payload[k].eq(total)]
        return m
