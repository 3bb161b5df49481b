"""Dataflow graph: how the hardware computes the QGraph (DESIGN.md §3).

Kernels carry their folding, widths, cycles per frame, latency and estimated
resources; width converters and FIFOs are explicit kernels.  The lowering only
connects what this graph says."""
import functools
import math
from dataclasses import dataclass, field, replace

import numpy as np

from . import limits, qgraph as qg
from .errors import UnsupportedError
from .folding import is_depthwise
from .resources import Memory
from .requant import signed_bits

MVU_LEVELS_PER_STAGE = 2      # adder-tree levels per pipeline stage (hdl.mvu.MVU.LEVELS_PER_STAGE)


def mvu_tree_stages(simd):
    return max(1, -(-(simd - 1).bit_length() // MVU_LEVELS_PER_STAGE))


def mvu_latency(simd):
    """Cycles from an MVU step to its output: memory read, operand registers, products, the
    adder tree (two levels per stage), the accumulator, the output's register slice
    (mirrors hdl.mvu.MVU.latency)."""
    return 5 + mvu_tree_stages(simd)

PRODUCT_CHUNK = 2    # bits of the constant operand per partial product (hdl.requant.CHUNK)


def adder_levels(operands):
    levels = 0
    while operands > 1:
        operands, levels = -(-operands // 2), levels + 1
    return levels


def requant_latency(kind, mul_bits=0, tables=0, search_depth=0):
    """Cycles through a requantization unit (mirrors hdl.requant.Requant.latency): the input
    register, the parameter register, the stages of the circuit, one per table ROM, and two
    through the output queue."""
    stages = {"shift": 1, "thresholds": 1, "threshold-search": 1 + search_depth,
              "mul-add-shift": 2 + adder_levels(-(-mul_bits // PRODUCT_CHUNK) + 1),
              "float-emulation": 12 + adder_levels(-(-25 // PRODUCT_CHUNK))}[kind]
    return 4 + stages + tables


def dsp_slices(a_bits, b_bits, slice_bits=16):
    """Hard multipliers (16×16 on iCE40; 18×18 counted the same) one a×b product needs."""
    return -(-a_bits // slice_bits) * -(-b_bits // slice_bits)


def window_schedule(shape, lanes, kernel, strides, pads, dilations, order="taps"):
    """The beats a window generator sends for a channels-last (H, W, C) frame stored as beats
    of ``lanes`` channels: per output pixel, the taps (ky, kx) × channel groups ("taps": the
    conv vector order, tap-major) or channel groups × taps ("channels": runs of taps for a
    pool).  Each entry is a stored beat index, or None for padding.  Output sizes as
    onnxruntime computes them (qgraph.windows)."""
    c, h, w = shape
    groups = c // lanes
    (pt, _), (pl, _) = qg._pads(pads, kernel)
    oh, ow = qg.window_out_size((h, w), kernel, strides, pads, dilations)
    kh, kw = kernel
    out = []
    for oy in range(oh):
        for ox in range(ow):
            def beat(ky, kx, g):
                iy, ix = oy * strides[0] + ky * dilations[0] - pt, ox * strides[1] + kx * dilations[1] - pl
                return (iy * w + ix) * groups + g if 0 <= iy < h and 0 <= ix < w else None
            taps = [(ky, kx) for ky in range(kh) for kx in range(kw)]
            if order == "taps":
                out += [beat(ky, kx, g) for ky, kx in taps for g in range(groups)]
            else:
                out += [beat(ky, kx, g) for g in range(groups) for ky, kx in taps]
    return out


def fifo_depth(pe, simd, in_features, out_features):
    """Beats the FIFO in front of an MVU must hold so that its producer never waits.

    An MVU reads its input vector (in_fold beats) during its first output tile and then
    computes the other out_fold - 1 tiles without reading; meanwhile the producer keeps
    producing at most one frame, so one frame of beats (+2 for the stage registers) is
    enough, and anything less can stall the producer."""
    in_fold = in_features // simd
    return in_fold + 2 if out_features // pe > 1 else 3     # a SyncFIFOBuffered of 2 runs at half rate


@dataclass(frozen=True)
class IOFormat:
    """How frames cross the host boundary: ``lanes`` codes per beat, lane 0 in the low bits,
    channels-last order, ``beats`` beats per frame."""
    shape: tuple
    lanes: int
    bits: int
    signed: bool
    scale: float
    zero_point: int

    @property
    def beats(self):
        return math.prod(self.shape) // self.lanes

    def to_json(self):
        return {"shape": list(self.shape), "lanes": self.lanes, "bits": self.bits, "signed": self.signed,
                "beats_per_frame": self.beats, "scale": self.scale, "zero_point": self.zero_point,
                "order": "channels-last; lane 0 in the low bits of a beat"}


@dataclass(frozen=True, eq=False)
class MVUKernel:
    name: str
    dense: qg.Dense
    pe: int
    simd: int
    in_code: qg.CodeType
    acc_lo: int
    acc_hi: int
    vectors: int = 1          # matrix-vector products per frame (output pixels of a conv)

    @property
    def in_fold(self):
        return self.dense.in_features // self.simd

    @property
    def out_fold(self):
        return self.dense.out_features // self.pe

    @property
    def cycles_per_frame(self):
        return self.vectors * self.in_fold * self.out_fold

    @property
    def macs(self):
        return self.vectors * self.dense.macs

    @property
    def latency(self):
        return mvu_latency(self.simd)

    def needs(self, n):
        """Input beats before the ``n``-th output beat (each vector gives out_fold beats)."""
        return -(-n // self.out_fold) * self.in_fold

    @property
    def beats_out(self):
        return self.vectors * self.out_fold

    @property
    def acc_bits(self):
        return signed_bits(self.acc_lo, self.acc_hi)

    @property
    def weight_bits(self):
        return signed_bits(min(0, int(self.dense.weight.min())), max(0, int(self.dense.weight.max())))

    def memories(self):
        """Weights (one word per step), the kept input vector and the biases of the tiles."""
        mems = []
        if self.in_fold * self.out_fold > 1:
            mems.append(Memory("weights", self.pe * self.simd * self.weight_bits, self.in_fold * self.out_fold))
        if self.out_fold > 1:
            mems += [Memory("buffer", self.simd * self.in_code.bits, self.in_fold, writable=True),
                     Memory("bias", self.pe * self.acc_bits, self.out_fold)]
        return mems

    @property
    def multiplier_luts(self):
        """LUTs of the products when built in logic (none when they go to DSP blocks)."""
        return self.pe * self.simd * (self.weight_bits * self.in_code.bits + self.weight_bits + self.in_code.bits)

    def resources(self):
        """Structural count (mirrors hdl.mvu.MVU): counters; operand, product, adder-tree and
        accumulator registers; the output register slice; adders one LUT per bit."""
        pe, simd, acc, xb, wb = self.pe, self.simd, self.acc_bits, self.in_code.bits, self.weight_bits
        prod = wb + xb
        counters = 2 * (math.ceil(math.log2(max(self.in_fold * self.out_fold, 2))) + 2)
        tree_regs = sum(-(-simd // (4 ** (s + 1))) if s + 1 < mvu_tree_stages(simd) else 1
                        for s in range(mvu_tree_stages(simd)))
        ff = (counters + 2 * simd * xb + pe * simd * (wb + prod + 2 * xb) + pe * tree_regs * acc + pe * acc
              + 2 * pe * acc + 16)
        lut = (self.multiplier_luts + 2 * counters + simd * xb * (self.out_fold > 1)
               + pe * (simd - 1) * acc + 2 * pe * acc + pe * acc + 20)
        return {"lut": lut, "ff": ff, "dsp": pe * simd * dsp_slices(wb, xb),
                "bram_bits": sum(m.bits for m in self.memories() if m.style == "block")}

    def to_json(self):
        return {"kind": "MVU", "name": self.name, "layer": self.dense.name, "onnx_node": self.dense.onnx_node,
                "in_features": self.dense.in_features, "out_features": self.dense.out_features,
                "pe": self.pe, "simd": self.simd, "input_bits": self.in_code.bits, "input_signed": self.in_code.signed,
                "weight_bits": self.weight_bits, "acc_bits": self.acc_bits, "cycles_per_frame": self.cycles_per_frame,
                "vectors": self.vectors, "latency": self.latency, "macs": self.macs, "estimate": self.resources()}


@dataclass(frozen=True, eq=False)
class DepthwiseKernel:
    """A depthwise conv as a vector unit (hdl.mvu.DepthwiseUnit): ``pe`` channels per beat,
    one tap per cycle, fed by a window generator in "channels" order."""
    name: str
    conv: qg.Conv
    pe: int
    in_code: qg.CodeType
    acc_lo: int
    acc_hi: int

    simd = 1

    @property
    def taps(self):
        return math.prod(self.conv.kernel)

    @property
    def vectors(self):
        return math.prod(self.conv.out_shape[1:])

    @property
    def weights(self):
        return self.conv.weight.reshape(self.conv.out_channels, -1)

    @property
    def cycles_per_frame(self):
        return self.vectors * self.conv.out_channels // self.pe * self.taps

    @property
    def macs(self):
        return self.conv.macs

    @property
    def latency(self):
        return 4

    def needs(self, n):
        return n * self.taps

    @property
    def beats_out(self):
        return self.vectors * self.conv.out_channels // self.pe

    @property
    def acc_bits(self):
        return signed_bits(self.acc_lo, self.acc_hi)

    @property
    def weight_bits(self):
        return signed_bits(min(0, int(self.weights.min())), max(0, int(self.weights.max())))

    def memories(self):
        groups = self.conv.out_channels // self.pe
        mems = [Memory("weights", self.pe * self.weight_bits, groups * self.taps)]
        return mems + ([Memory("bias", self.pe * self.acc_bits, groups)] if groups > 1 else [])

    def resources(self):
        """Products in logic (or DSPs), accumulators, operand and product registers, counters."""
        pe, acc, xb, wb = self.pe, self.acc_bits, self.in_code.bits, self.weight_bits
        counters = 3 * (max(self.taps * self.conv.out_channels // pe, 2).bit_length() + 1)
        lut = pe * (wb * xb + wb + xb) + pe * acc + 2 * counters + 10
        ff = pe * (xb + 3 * acc) + 2 * pe * acc + counters + 8
        return {"lut": lut, "ff": ff, "dsp": pe * dsp_slices(wb, xb),
                "bram_bits": sum(m.bits for m in self.memories() if m.style == "block")}

    @property
    def multiplier_luts(self):
        return self.pe * (self.weight_bits * self.in_code.bits + self.weight_bits + self.in_code.bits)

    def to_json(self):
        return {"kind": "Depthwise", "name": self.name, "layer": self.conv.name, "onnx_node": self.conv.onnx_node,
                "channels": self.conv.out_channels, "taps": self.taps, "pe": self.pe, "simd": 1,
                "input_bits": self.in_code.bits, "weight_bits": self.weight_bits, "acc_bits": self.acc_bits,
                "cycles_per_frame": self.cycles_per_frame, "vectors": self.vectors, "latency": self.latency,
                "macs": self.macs, "estimate": self.resources()}


@dataclass(frozen=True, eq=False)
class RequantKernel:
    name: str
    node: qg.Requant
    plan: object
    pe: int
    acc_bits: int
    vectors: int = 1
    serial: bool = False      # hdl.requant.SerialRequant: one beat every ``period`` cycles
    interval: int = 1         # cycles between the producer's output beats

    @property
    def channels(self):
        return self.node.channels

    @property
    def beats_out(self):
        return self.vectors * self.channels // self.pe

    @property
    def period(self):
        """Cycles per beat: 1, or for the serial circuit two bits of M per cycle plus the take,
        the first digit's choice, adding C, adding the carry-save words, the result and its
        hand-over (mirrors hdl.requant.SerialRequant.period)."""
        return max(1, -(-(self.mul_bits - 1) // PRODUCT_CHUNK)) + 6 if self.serial else 1

    @property
    def cycles_per_frame(self):
        return self.beats_out * self.period

    def needs(self, n):
        return n

    @property
    def mul_bits(self):
        """Width of the multiplier constant M of a mul-add-shift circuit (0 for other kinds)."""
        return signed_bits(0, int(max(self.plan.impl.mul))) if self.plan.kind == "mul-add-shift" else 0

    @property
    def lag(self):
        """A serial circuit slower than its producer's beats holds the producer back: at most
        (period − interval) cycles per beat of the frame (0 when it keeps up)."""
        return self.beats_out * max(0, self.period - self.interval) if self.serial else 0

    @property
    def fold(self):
        """Beats (channel groups) per pixel: the words of the parameter ROM."""
        return self.channels // self.pe

    @property
    def beat_latency(self):
        """Cycles from the beat it needs to an output beat (the lag is the pacing beat_times follows)."""
        return self.period - 1 if self.serial else self.latency

    @property
    def latency(self):
        if self.serial:
            return self.period - 1 + self.lag
        return requant_latency(self.plan.kind, self.mul_bits, len(getattr(self.plan.impl, "tables", ())),
                               getattr(self.plan.impl, "depth", 0))

    PARAMS = {"shift": ("exponent",), "mul-add-shift": ("mul", "add", "fix_acc", "fix_code"),
              "thresholds": ("base", "thresholds"), "float-emulation": ("mantissa", "exponent"),
              "threshold-search": ("base",)}

    @property
    def param_bits(self):
        """Bits of one lane's parameter word (mirrors hdl.requant.Requant._field_shape)."""
        bits = 0
        for name in self.PARAMS[self.plan.kind]:
            v = getattr(self.plan.impl, name, None)
            if v is None:
                continue
            v = np.asarray(v)
            if name in ("thresholds", "fix_acc", "fix_code"):
                bits += (self.acc_bits if name != "fix_code" else self.node.code.bits) * max(v.shape[1], 1)
            else:
                bits += 25 if name == "mantissa" else signed_bits(min(int(v.min()), 0), max(int(v.max()), 0))
        return bits

    def memories(self):
        """Per-channel parameters, code tables, and the output queue (latency + 1 beats; the
        serial circuit has none)."""
        fold = self.fold
        mems = [Memory("params", self.pe * self.param_bits, fold)] if fold > 1 else []
        for i, t in enumerate(getattr(self.plan.impl, "tables", ())):
            mems += [Memory(f"table{i}_{p}", self.node.code.bits, fold * t.table.shape[1]) for p in range(self.pe)]
        if self.plan.kind == "threshold-search":        # stage j probes 2**(depth-1-j) thresholds
            depth = self.plan.impl.depth
            mems += [Memory(f"search{j}_{p}", self.acc_bits + 1, fold << (depth - 1 - j))
                     for j in range(depth) for p in range(self.pe)]
        if self.serial:                 # hdl.requant.SerialRequant holds its result in its output register
            return mems
        return mems + [Memory("queue", self.pe * self.node.code.bits, self.latency, fifo=True)]

    def lane_muls(self, lane):
        """M of each channel of ``lane`` (channel t·pe + lane)."""
        return [int(v) for v in np.asarray(self.plan.impl.mul)[lane::self.pe]]

    def digit_columns(self, lane):
        """The ``PRODUCT_CHUNK``-bit digits of M for the channels of ``lane``, one set per digit
        position: a position whose digits are all 0 has no partial product in synthesis, one
        whose digit is the same for every channel a constant one (the parameters are constants
        or a small ROM, which Yosys/ABC fold)."""
        mask = (1 << PRODUCT_CHUNK) - 1
        return [{(v >> j) & mask for v in self.lane_muls(lane)} for j in range(0, self.mul_bits, PRODUCT_CHUNK)]

    def varying_bits(self, lane):
        """Bits of M that differ between the channels of ``lane``."""
        return sum(len({(v >> j) & 1 for v in self.lane_muls(lane)}) > 1 for j in range(self.mul_bits))

    def _lane(self, lane):
        """(LUT, FF) of lane ``lane``'s circuit (mirrors hdl.requant.Requant's stages)."""
        acc, out, kind = self.acc_bits, self.node.code.bits, self.plan.kind
        if kind == "shift":
            return 4 * acc, 2 * acc
        if kind == "thresholds":
            return self.plan.levels * (acc // 2 + 2) + 2 * out, 2 * acc
        if kind == "threshold-search":      # a comparator and the index per stage
            depth = self.plan.impl.depth
            return depth * (acc // 2 + depth + 2) + 2 * out, depth * (acc + depth) + out
        if kind == "mul-add-shift" and self.serial:
            # the {0, a, 2a, 3a} choice, two full adders per bit (carry-save), the final adder,
            # the digit select, the clamp and the fixes' compares
            fixes, width = self.plan.impl.fixes, acc + self.mul_bits + 1
            lut = 6 * width + acc + self.mul_bits + fixes * (acc // 2 + out) + 3 * out + 8
            ff = 3 * width + 2 * acc + out + 8
            return lut, ff
        if kind == "mul-add-shift":
            # Fitted to Yosys (eight requantizers, folds 1–32, iCE40 and ECP5): per partial product
            # not always 0 an adder about as wide as acc (synthesis trims the sign extension and
            # the zero low bits); a varying digit's two rows added; a constant 3 one adder, a
            # constant 1 or 2 a wire; and where a parameter comes from a ROM of more than four
            # words, the AND of each of its varying bits with acc (up to two address bits fit in
            # the adder's LUT beside the operand bits)
            fixes = self.plan.impl.fixes
            columns = [c for c in self.digit_columns(lane) if c != {0}]
            products = sum(acc + PRODUCT_CHUNK if len(c) > 1 else acc if c == {3} else 0 for c in columns)
            selects = acc * self.varying_bits(lane) if self.fold > 4 else 0
            lut = len(columns) * (acc + 3) + products + selects + fixes * (acc // 2 + out) + 3 * out
            # registers: acc and the partial products (a constant digit's is acc shifted, the
            # same register), then each level's sums (about as wide as acc plus the digits they
            # span), the fixes riding along (their codes only with more than two words, else a
            # constant or the address bit, merged)
            riding = fixes * (out + 1) if self.fold > 2 else fixes
            own = sum(len(c) > 1 or c == {3} for c in columns)
            ff, operands, level = 2 * acc + own * (acc + PRODUCT_CHUNK) + riding, len(columns) + 1, 0
            while operands > 1:
                operands, level = -(-operands // 2), level + 1
                ff += operands * (acc + PRODUCT_CHUNK * (1 << level)) + riding
            return lut, ff
        # float emulation: 24×25-bit product as partial products, an adder tree, two roundings
        parts = -(-25 // PRODUCT_CHUNK)
        lut = acc + parts * (24 + PRODUCT_CHUNK) + parts * 49 + 49 * 4 + 25 * 18 + 4 * out
        ff = 2 * acc + parts * (24 + PRODUCT_CHUNK) + 49 * (adder_levels(parts) + 5) + 25 * 12
        return lut, ff

    # the serial circuit's LUTs on ECP5 over the iCE40 fit: its digit select and {0, a, 2a, 3a}
    # choice map to LUT4s and wide muxes there (1.18–1.48× on five requantizers, measured)
    SERIAL_LUT_SCALE = {"ice40": 1.0, "ecp5": 1.3}
    per_family = True

    def resources(self, family="ice40"):
        lut, ff = (sum(v) for v in zip(*(self._lane(p) for p in range(self.pe))))
        if self.serial:
            lut = round(lut * self.SERIAL_LUT_SCALE[family])
        params = self.pe * self.param_bits if self.fold > 2 else 0     # the ROM's read register
        return {"lut": lut + 30, "ff": ff + params + 20,
                "dsp": 0, "bram_bits": sum(m.bits for m in self.memories() if m.style == "block")}

    def to_json(self):
        return {"kind": "Requant", "name": self.name, "layer": self.node.name, "onnx_node": self.node.onnx_node,
                "implementation": self.plan.kind + (" (serial)" if self.serial else ""), "channels": self.channels,
                "pe": self.pe,
                "acc_bits": self.acc_bits, "out_bits": self.node.code.bits, "out_signed": self.node.code.signed,
                "cycles_per_frame": self.cycles_per_frame, "latency": self.latency, "estimate": self.resources()}


@dataclass(frozen=True, eq=False)
class WidthConverterKernel:
    name: str
    code: qg.CodeType
    lanes_in: int
    lanes_out: int
    length: int

    @property
    def cycles_per_frame(self):
        return self.length // min(self.lanes_in, self.lanes_out)

    def needs(self, n):
        return -(-n * self.lanes_out // self.lanes_in)

    @property
    def beats_out(self):
        return self.length // self.lanes_out

    @property
    def latency(self):
        return 1

    def memories(self):
        return []

    def resources(self):
        bits = max(self.lanes_in, self.lanes_out) * self.code.bits
        return {"lut": bits, "ff": 2 * bits, "dsp": 0, "bram_bits": 0}

    def to_json(self):
        return {"kind": "WidthConverter", "name": self.name, "lanes_in": self.lanes_in, "lanes_out": self.lanes_out,
                "bits": self.code.bits, "cycles_per_frame": self.cycles_per_frame, "latency": self.latency,
                "estimate": self.resources()}


@dataclass(frozen=True, eq=False)
class WindowKernel:
    """Sends the windows of a channels-last frame through a line buffer (hdl.window.WindowGen):
    per output pixel the taps × channel groups, tap-major ("taps") or group-major ("channels")."""
    name: str
    code: qg.CodeType
    shape: tuple              # (C, H, W)
    lanes: int
    kernel: tuple
    strides: tuple
    pads: tuple
    dilations: tuple
    order: str
    pad: int
    what: str                 # "conv", "depthwise" or "pool"

    @property
    def out_size(self):
        return qg.window_out_size(self.shape[1:], self.kernel, self.strides, self.pads, self.dilations)

    @property
    def in_beats(self):
        return math.prod(self.shape) // self.lanes

    @property
    def row(self):
        """Beats per input row."""
        return self.shape[2] * (self.shape[0] // self.lanes)

    @property
    def span(self):
        """Input rows one window spans."""
        return (self.kernel[0] - 1) * self.dilations[0] + 1

    @property
    def depth(self):
        """The line buffer, in beats: the rows a window spans, the rows the next output row adds
        (written while this one is read) and one more (so the writer, released a little after the
        reads, keeps ahead), rounded up to a power of two (the address wraps for free)."""
        return 1 << max((self.span + self.strides[0] + 1) * self.row - 1, 1).bit_length()

    @property
    def beats_out(self):
        return math.prod(self.out_size) * math.prod(self.kernel) * (self.shape[0] // self.lanes)

    @property
    def cycles_per_frame(self):
        need, release = self.rows
        return window_timing(self.in_beats, self.depth, self.per_row, need, release)

    @property
    def per_row(self):
        """Output beats per output row."""
        return self.beats_out // self.out_size[0]

    @property
    def rows(self):
        """Per output row: the frame's beats it needs, and the beats released after it (row_schedule)."""
        return row_schedule(self.in_beats, self.row, self.span, self.strides[0],
                            qg._pads(self.pads, self.kernel)[0][0], self.out_size[0])

    def needs_array(self):
        """needs(n) for the beats of one frame, n = 1 … beats_out."""
        return np.asarray(self.rows[0], np.int64)[np.arange(self.beats_out) // self.per_row]

    def needs(self, n):
        """The input rows up to the last one of the n-th beat's output row (the rows of earlier
        frames all)."""
        frames, j = divmod(n - 1, self.beats_out)
        return frames * self.in_beats + self.rows[0][j // self.per_row]

    @property
    def latency(self):
        return 5                  # hdl.window.WindowGen.LATENCY

    def memories(self):
        return [Memory("frame", self.lanes * self.code.bits, self.depth, writable=True),
                Memory("queue", self.lanes * self.code.bits, 6, fifo=True)]

    # LUTs beside the output mux: per bit of the padded frame's positions, of the frame's
    # count and of the buffer's address, and a constant; fitted to Yosys on seven windows per
    # target family (iCE40 221–338 LUT; ECP5 298–491, where its compares take carry chains)
    LUT_FIT = {"ice40": (32, 7, 2, -50), "ecp5": (32, 0, 27, -26)}
    per_family = True

    def resources(self, family="ice40"):
        """The output mux, the loop counters with their running row, column (``pos`` bits: the
        padded frame) and address (``slot`` bits: the buffer) parts and sums, the padding
        compares, and the buffer's counters (``count`` bits: a frame) with their compares."""
        bits = self.lanes * self.code.bits
        _, h, w = self.shape
        (pt, pb), (pl, pr) = qg._pads(self.pads, self.kernel)
        pos = 2 * max(h + pt + pb + self.strides[0] + self.kernel[0] * self.dilations[0],
                      w + pl + pr + self.strides[1] + self.kernel[1] * self.dilations[1])
        pos, count, slot = pos.bit_length(), max(self.in_beats, 2).bit_length() + 1, self.depth.bit_length() - 1
        a, b, c, d = self.LUT_FIT[family]
        return {"lut": bits + a * pos + b * count + c * slot + d, "ff": 30 + 11 * pos + 3 * count + 4 * slot,
                "dsp": 0, "bram_bits": sum(m.bits for m in self.memories() if m.style == "block")}

    def to_json(self):
        return {"kind": "Window", "name": self.name, "for": self.what, "shape": list(self.shape),
                "lanes": self.lanes, "kernel": list(self.kernel), "strides": list(self.strides),
                "order": self.order, "beats_out": self.beats_out, "line_buffer": self.depth,
                "cycles_per_frame": self.cycles_per_frame, "latency": self.latency, "estimate": self.resources()}


@functools.lru_cache(maxsize=None)
def row_schedule(in_beats, row, span, stride, pad_top, oh):
    """For each output row of a window generator (hdl.window.WindowGen): the beats of the frame
    it needs (up to its last input row) and the beats released after its last read (up to the
    next output row's top row; the rest of the frame after the last), clamped to the frame."""
    def clamp(v):
        return min(max(v, 0), in_beats)
    tops = [(oy * stride - pad_top) * row for oy in range(oh)]
    need = tuple(clamp(top + span * row) for top in tops)
    release = tuple((clamp(tops[oy + 1]) if oy + 1 < oh else in_beats) - clamp(tops[oy]) for oy in range(oh))
    return need, release


@functools.lru_cache(maxsize=None)
def window_timing(in_beats, depth, per_row, need, release_after, frames=4):
    """Cycles per frame of a window generator whose input is always valid and whose output is
    always ready: hdl.window.WindowGen's line-buffer counters (``held``, ``ahead``, the
    release register) followed cycle by cycle over ``frames`` frames, the last frame's period
    returned (``need``/``release_after``: row_schedule).  Runs of cycles in which only the
    counts change are stepped over at once."""
    t, held, ahead, release, ends = 0, 0, 0, 0, []

    def cycles(n):
        """n cycles of the writer (one beat per cycle while held < depth); a pending release
        is applied at the end of the first."""
        nonlocal t, held, ahead, release
        if n and release:
            write = held < depth
            held, ahead, release, t, n = held + write - release, ahead + write, 0, t + 1, n - 1
        writes = min(n, max(depth - held, 0))
        held, ahead, t = held + writes, ahead + writes, t + n

    for f in range(frames):
        for row_need, row_release in zip(need, release_after):
            while ahead < row_need:                    # wait for the row's input
                if not release and held >= depth:
                    raise AssertionError("window generator deadlock: the line buffer is too small")
                cycles(1 if release else row_need - ahead)
            cycles(per_row - 1)                        # the row's beats but the last
            write = held < depth                       # the last: the rows passed are released
            held, ahead, t, release = held + write - release, ahead + write, t + 1, row_release
        ahead -= in_beats
        ends.append(t)
    return ends[-1] - ends[-2]


@dataclass(frozen=True, eq=False)
class PoolKernel:
    """Maximum over runs of ``taps`` beats (hdl.window.MaxPoolUnit)."""
    name: str
    code: qg.CodeType
    lanes: int
    taps: int
    beats_in: int

    @property
    def cycles_per_frame(self):
        return self.beats_in

    @property
    def latency(self):
        return 1

    def needs(self, n):
        return n * self.taps

    @property
    def beats_out(self):
        return self.beats_in // self.taps

    def memories(self):
        return []

    def resources(self):
        bits = self.lanes * self.code.bits
        return {"lut": 2 * bits + 10, "ff": 2 * bits + 10, "dsp": 0, "bram_bits": 0}

    def to_json(self):
        return {"kind": "MaxPool", "name": self.name, "lanes": self.lanes, "taps": self.taps,
                "cycles_per_frame": self.cycles_per_frame, "latency": self.latency, "estimate": self.resources()}


@dataclass(frozen=True, eq=False)
class SumPoolKernel:
    """Global sum per channel (hdl.window.SumPoolUnit); a Requant follows, as after an MVU."""
    name: str
    node: qg.SumPool
    code: qg.CodeType
    pe: int                   # lanes in and out
    acc_lo: int
    acc_hi: int
    vectors: int = 1

    @property
    def groups(self):
        return self.node.in_shape[0] // self.pe

    @property
    def cycles_per_frame(self):
        return self.node.count * self.groups

    def needs(self, n):
        """Sums leave during the last pixel of the frame."""
        frames, k = divmod(n - 1, self.groups)
        return (frames + 1) * self.cycles_per_frame - self.groups + k + 1

    @property
    def beats_out(self):
        return self.groups

    @property
    def latency(self):
        return 1

    @property
    def acc_bits(self):
        return signed_bits(self.acc_lo, self.acc_hi)

    def memories(self):
        return []

    def resources(self):
        """The ring of partial sums, the output register, one adder per lane, two counters."""
        acc = self.pe * self.acc_bits
        counters = 2 * max(self.node.count, self.groups, 2).bit_length()
        return {"lut": acc + self.pe * self.code.bits + 2 * counters + 4, "ff": (self.groups + 1) * acc + counters + 1,
                "dsp": 0, "bram_bits": 0}

    def to_json(self):
        return {"kind": "GlobalSum", "name": self.name, "layer": self.node.name, "onnx_node": self.node.onnx_node,
                "lanes": self.pe, "pixels": self.node.count, "acc_bits": self.acc_bits,
                "cycles_per_frame": self.cycles_per_frame, "latency": self.latency, "estimate": self.resources()}


@dataclass(frozen=True, eq=False)
class FloatSumKernel:
    """An average pool's float32 window sums (hdl.window.FloatSumUnit) over runs of ``taps``
    beats from a window generator; a Requant (the division and quantization) follows."""
    name: str
    node: qg.FloatSumPool
    code: qg.CodeType
    pe: int                   # lanes in and out
    acc_lo: int
    acc_hi: int
    vectors: int              # output pixels per frame

    @property
    def groups(self):
        return self.node.in_shape[0] // self.pe

    @property
    def beats_out(self):
        return self.vectors * self.groups

    @property
    def cycles_per_frame(self):
        return self.beats_out * self.node.taps

    def needs(self, n):
        return n * self.node.taps

    @property
    def latency(self):
        return 2

    @property
    def acc_bits(self):
        return signed_bits(self.acc_lo, self.acc_hi)

    def memories(self):
        return [Memory(f"terms{p}", self.acc_bits, 1 << self.code.bits) for p in range(self.pe)]

    def resources(self):
        """Per lane: the adder, the float32 rounding (magnitude, smeared mask, compare, round,
        sign: about five operations of the accumulator's width) and the running sum."""
        acc = self.acc_bits
        return {"lut": self.pe * 6 * acc + 2 * max(self.node.taps, 2).bit_length() + 4,
                "ff": self.pe * 2 * acc + max(self.node.taps, 2).bit_length() + 2, "dsp": 0,
                "bram_bits": sum(m.bits for m in self.memories() if m.style == "block")}

    def to_json(self):
        return {"kind": "FloatSum", "name": self.name, "layer": self.node.name, "onnx_node": self.node.onnx_node,
                "lanes": self.pe, "taps": self.node.taps, "acc_bits": self.acc_bits,
                "cycles_per_frame": self.cycles_per_frame, "latency": self.latency, "estimate": self.resources()}


@dataclass(frozen=True, eq=False)
class FifoKernel:
    name: str
    code: qg.CodeType
    lanes: int
    depth: int
    length: int

    @property
    def cycles_per_frame(self):
        return self.length // self.lanes

    @property
    def latency(self):
        return 2

    def needs(self, n):
        return n

    @property
    def beats_out(self):
        return self.length // self.lanes

    def memories(self):
        return [Memory("storage", self.lanes * self.code.bits, self.depth - 1, fifo=True)]

    def resources(self):
        """Control and the output register of an amaranth.lib.fifo.SyncFIFOBuffered (the
        storage is a memory, see memories())."""
        bits, count = self.lanes * self.code.bits, math.ceil(math.log2(self.depth + 1))
        return {"lut": bits + 8 * count, "ff": bits + 4 * count, "dsp": 0, "bram_bits": 0}

    def to_json(self):
        return {"kind": "FIFO", "name": self.name, "lanes": self.lanes, "bits": self.code.bits, "depth": self.depth,
                "cycles_per_frame": self.cycles_per_frame, "latency": self.latency, "estimate": self.resources()}


@dataclass(frozen=True, eq=False)
class AddKernel:
    """The join of a residual block: onnxruntime's QLinearAdd of two streams in step as a
    proven integer line (mapper.requant.AddLine; hdl.join.AddUnit)."""
    name: str
    node: qg.Add
    plan: object
    lanes: int
    a_code: qg.CodeType
    b_code: qg.CodeType
    length: int               # codes per frame

    @property
    def cycles_per_frame(self):
        return self.length // self.lanes

    @property
    def latency(self):
        return 5              # hdl.join.AddUnit.LATENCY

    @property
    def raw_add(self):
        """The line's constant for raw codes (the offsets a_lo, b_lo folded in)."""
        p = self.plan
        return p.add - p.mul_a * p.a_lo - p.mul_b * p.b_lo

    @property
    def sum_bits(self):
        """Width of the sum over every raw code (hdl.join.AddUnit's adders)."""
        p, a, b = self.plan, self.a_code, self.b_code
        return signed_bits(min(0, self.raw_add + p.mul_a * a.qmin + p.mul_b * b.qmin),
                           max(0, self.raw_add + p.mul_a * a.qmax + p.mul_b * b.qmax))

    kind = "Add"

    @property
    def first_takes(self):
        """Beats the join takes from each input before it takes one from the other."""
        return (1, 1)

    @property
    def path_beats(self):
        return (self.length // self.lanes,) * 2

    def describe(self):
        p = self.plan
        return {"line": {"mul_a": p.mul_a, "mul_b": p.mul_b, "add": p.add, "shift": p.shift}}

    def resources(self):
        """Per lane: the four 16-entry digit tables (a LUT per bit each), three adders, the clamp."""
        w, out = self.sum_bits, self.node.code.bits
        digits = -(-self.a_code.bits // 4) + -(-self.b_code.bits // 4)
        lut = self.lanes * (digits * w + digits * w + 2 * out + 4) + 8
        ff = self.lanes * (self.a_code.bits + self.b_code.bits + digits * w + 2 * w + 2 * out) + 8
        return {"lut": lut, "ff": ff, "dsp": 0, "bram_bits": 0}


@dataclass(frozen=True, eq=False)
class ConcatKernel:
    """The join of a channel concat (hdl.join.ConcatUnit): per pixel, the beats of input a,
    then those of input b, each through its QLinearConcat table when its scale differs."""
    name: str
    node: qg.Concat
    lanes: int
    channels: tuple           # (C_a, C_b)
    pixels: int

    kind = "Concat"

    @property
    def length(self):
        return sum(self.channels) * self.pixels

    @property
    def first_takes(self):
        return tuple(c // self.lanes for c in self.channels)

    @property
    def path_beats(self):
        return tuple(c // self.lanes * self.pixels for c in self.channels)

    @property
    def cycles_per_frame(self):
        return self.length // self.lanes

    @property
    def latency(self):
        return 2

    def describe(self):
        return {"tables": [t is not None for t in self.node.tables]}

    def resources(self):
        """Per lane: a ROM in logic per table (one LUT4 per output bit per 16 codes, and the
        multiplexers), the output register and its skid copy, the beat counter."""
        bits = self.node.code.bits
        tables = sum(t is not None for t in self.node.tables)
        rom = bits * ((1 << bits) // 16) * 21 // 16
        return {"lut": self.lanes * (tables * rom + bits) + 10, "ff": 2 * self.lanes * bits + 10, "dsp": 0,
                "bram_bits": 0}


@dataclass(frozen=True, eq=False)
class BranchKernel:
    """A fork (hdl.join.Fork), two paths of kernels, and the join where they meet again
    (AddKernel: a residual block; ConcatKernel).  Each path ends in a FIFO deep enough that
    the graph cannot deadlock (required_depths) and runs at full rate (full_rate_depths)."""
    name: str
    paths: tuple              # (kernels of path a, kernels of path b), each ending at the join's lanes
    join: object
    lanes: int                # of the stream into the fork
    code: qg.CodeType
    fork_length: int          # codes per frame into the fork

    @property
    def cycles_per_frame(self):
        return max(self.join.cycles_per_frame, self.fork_length // self.lanes)

    @property
    def latency(self):
        return 1 + self.join.latency

    def needs(self, n):
        return max(path_needs(p, n) for p in self.paths)

    def reach(self):
        """Per path: beats into the fork before that path's first output beats the join takes
        in a run (one for an add, a pixel's for a concat)."""
        return tuple(path_needs(p, n) for p, n in zip(self.paths, self.join.first_takes))

    def hold(self, path):
        """Beats into the fork that ``path`` certainly holds while its output waits: its FIFOs
        and line buffer up to the first kernel that changes the data rate (nothing is
        counted behind that: a lower bound)."""
        total = 0
        for k in body(path):
            if isinstance(k, FifoKernel):
                total += k.depth * k.lanes // self.lanes
            elif isinstance(k, WindowKernel):
                return total + k.depth * k.lanes // self.lanes
            elif not isinstance(k, WidthConverterKernel):
                return total
        return total

    @property
    def beats_out(self):
        return self.join.length // self.join.lanes

    def delay(self, path, ii):
        """A bound on the cycles from a frame's first beat into the fork to ``path``'s first
        output beat when every kernel streams at the design's rate (one frame per ``ii``
        cycles): each kernel waits for the beats it needs, then adds its latency."""
        t, beats_in = 0.0, self.fork_length // self.lanes
        for k in path:
            t += (k.needs(1) - 1) * ii / beats_in + k.latency
            beats_in = k.beats_out
        return t

    def full_rate_depths(self, ii):
        """Depth of the end FIFO of each path for full rate: it holds what arrives while the
        other path is still computing the same beats (the difference of the two delays, at
        one frame of join beats per ``ii`` cycles), and never less than required_depths."""
        delays = [self.delay(p, ii) for p in self.paths]
        beats = self.join.path_beats
        return tuple(max(need, -(-int(max(0.0, delays[1 - k] - delays[k]) * beats[k]) // ii) + 2)
                     for k, need in enumerate(self.required_depths()))

    def required_depths(self):
        """Depth of the FIFO at the end of each path (in join beats).  Before the join takes
        anything, the other path needs ``reach`` beats into the fork; the fork sends each beat
        to both paths, so this path receives them too.  What it cannot keep inside (``hold``)
        comes out as output beats, at most ``produced(reach)`` of them, which the end FIFO must
        hold; with less, the fork waits on a full path while the join waits on the other — a
        deadlock.  Minimum 3 (full rate), plus the beats the join takes in a run."""
        reach, out = self.reach(), []
        for k, path in enumerate(self.paths):
            waiting = reach[1 - k] if reach[1 - k] > self.hold(path) else 0
            out.append(max(3, produced(body(path), waiting) + 2 + self.join.first_takes[1 - k]))
        return tuple(out)

    def resources(self):
        fork = {"lut": 4, "ff": 2, "dsp": 0, "bram_bits": 0}
        return {key: v + fork[key] for key, v in self.join.resources().items()}

    def memories(self):
        return []

    def to_json(self):
        return {"kind": self.join.kind, "name": self.join.name, "layer": self.join.node.name,
                "onnx_node": self.join.node.onnx_node, "lanes": self.join.lanes,
                "paths": [[k.name for k in p] for p in self.paths], **self.join.describe(),
                "cycles_per_frame": self.cycles_per_frame, "latency": self.latency, "estimate": self.resources()}


def path_needs(kernels, n):
    """Beats into a chain of kernels before its ``n``-th output beat."""
    for k in reversed(kernels):
        n = k.needs(n)
    return n


def body(path):
    """A branch path without its join FIFO (the FIFO being sized)."""
    return path[:-1] if path and isinstance(path[-1], FifoKernel) and path[-1].name.startswith("join_") else path


def produced(kernels, n):
    """The most output beats a chain of kernels can produce from ``n`` input beats (the largest
    j with path_needs(kernels, j) ≤ n; path_needs is monotone)."""
    if n <= 0:
        return 0
    lo, hi = 0, 1
    while path_needs(kernels, hi) <= n:
        lo, hi = hi, hi * 2
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if path_needs(kernels, mid) <= n else (lo, mid)
    return lo


def flat(kernels):
    """Every kernel, the paths of a branch before its join, in stream order."""
    for k in kernels:
        if isinstance(k, BranchKernel):
            for p in k.paths:
                yield from flat(p)
        yield k


def beat_times(kernels, arrive):
    """When each output beat of a frame leaves a chain of ``kernels`` whose input beat i
    arrives at ``arrive[i - 1]``, without back-pressure: a kernel's beat n leaves its latency
    after the input beats it needs (``needs``, taken for every beat at once) are in, and no
    sooner than its issue interval after beat n − 1 (cycles per frame / beats out; one for a
    window generator, which reads a window as fast as it may); a join's beat leaves when the
    beats it takes from both paths are there.  A kernel of more than limits.BEATS beats per
    frame is refused before its arrays are made."""
    for k in kernels:
        if isinstance(k, BranchKernel):
            a, b = (beat_times(p, arrive) for p in k.paths)
            n = np.arange(k.beats_out)
            if isinstance(k.join, AddKernel):
                ready = np.maximum(a[n], b[n])
            else:                           # a concat: per pixel, first_takes beats of a, then of b
                ca, cb = k.join.first_takes
                pixel, r = divmod(n, ca + cb)
                ia = np.where(r < ca, pixel * ca + r, pixel * ca + ca - 1)
                ib = np.where(r < ca, pixel * cb - 1, pixel * cb + r - ca)
                ready = np.maximum(a[ia], np.where(ib >= 0, b[np.maximum(ib, 0)], 0))
            arrive = _paced(ready + k.latency, 1)
            continue
        error = limits.beats_violation(k)
        if error:                           # bounded before a beat's array is allocated
            raise error
        need = k.needs_array() if hasattr(k, "needs_array") else \
            np.asarray(k.needs(np.arange(1, k.beats_out + 1, dtype=np.int64)), np.int64)
        step = 1 if isinstance(k, WindowKernel) else k.cycles_per_frame / k.beats_out
        arrive = _paced(arrive[need - 1] + getattr(k, "beat_latency", k.latency), step)
    return arrive


def _paced(ready, step):
    """t[n] = max(ready[n], t[n − 1] + step)."""
    n = np.arange(len(ready)) * step
    return np.maximum.accumulate(ready - n) + n


@dataclass(frozen=True)
class Dataflow:
    kernels: tuple
    input: IOFormat
    output: IOFormat
    source: str = ""
    folding: dict = field(default_factory=dict)

    @property
    def all_kernels(self):
        return tuple(flat(self.kernels))

    @property
    def cycles_per_frame(self):
        return max(k.cycles_per_frame for k in self.all_kernels)

    @property
    def bottleneck(self):
        return max(self.all_kernels, key=lambda k: k.cycles_per_frame)

    @functools.cached_property
    def latency(self):
        """Cycles from the first input beat of a frame to its last output beat, the input
        offered every cycle and the output taken: beat_times through the whole graph.  For a
        chain of dense layers this is the pipeline latencies, the first MVU's whole frame and
        every later MVU's output tiles after its last input beat (exact, tested in RTL); with
        windows and branches back-pressure is left out (equal to the simulation on the digits
        CNN, 1–3 cycles above it on the residual CNNs and ResNet-8)."""
        beats = self.input.beats
        return int(round(beat_times(self.kernels, np.arange(beats, dtype=float))[-1])) + 1

    @property
    def latency_exact(self):
        """The latency model is exact for chains of dense layers; with windows and branches a
        model without back-pressure."""
        kinds = (WindowKernel, BranchKernel, SumPoolKernel, FloatSumKernel)
        return not any(isinstance(k, kinds) for k in self.all_kernels)

    @property
    def multipliers(self):
        return sum(k.pe * k.simd for k in self.all_kernels if isinstance(k, (MVUKernel, DepthwiseKernel)))

    def estimate(self):
        total = {"lut": 0, "ff": 0, "dsp": 0, "bram_bits": 0}
        for k in self.all_kernels:
            for key, v in k.resources().items():
                total[key] += v
        return total

    def to_json(self):
        return {"source": self.source, "cycles_per_frame": self.cycles_per_frame,
                "bottleneck": self.bottleneck.name, "latency_cycles": self.latency,
                "latency_exact": self.latency_exact,
                "multipliers": self.multipliers, "estimate": self.estimate(),
                "input": self.input.to_json(), "output": self.output.to_json(),
                "folding": self.folding, "kernels": [k.to_json() for k in self.all_kernels]}


HARDWARE_NODES = (qg.Quantize, qg.Dense, qg.Conv, qg.MaxPool, qg.SumPool, qg.FloatSumPool, qg.Add, qg.Concat,
                  qg.Requant, qg.Reshape, qg.Transpose, qg.Dequantize)


def check_hardware(graph, source="model"):
    """Refuse, before any folding, a graph with a node no hardware kernel exists for."""
    for node in graph.nodes:
        if not isinstance(node, HARDWARE_NODES):
            raise UnsupportedError(f"{node.label} in {source}: no hardware kernel for {type(node).__name__} "
                                   "yet; `qloom inspect` and `qloom check` work on this model.")
    if not graph.layers(qg.Dense) and not graph.layers(qg.Conv):
        raise UnsupportedError(f"{source}: the model has no quantized matrix product to build hardware for.")


def conv_matrix(conv):
    """A Conv as the matrix an MVU multiplies each window by: (out, kh·kw·C) in the window's
    order (tap-major, channels last); groups become a block-diagonal matrix."""
    o, cg, kh, kw = conv.weight.shape
    c, g = conv.in_shape[0], conv.groups
    full = np.zeros((o, kh, kw, c), np.int64)
    for k in range(g):
        rows = slice(k * (o // g), (k + 1) * (o // g))
        full[rows, :, :, k * cg:(k + 1) * cg] = np.transpose(conv.weight[rows], (0, 2, 3, 1))
    return qg.Dense(conv.name, conv.onnx_node, conv.inputs, conv.output, weight=full.reshape(o, -1),
                    bias=np.asarray(conv.bias, np.int64))


def stream_positions(shape):
    """For a tensor of ``shape`` as the hardware streams it (a (C, H, W) frame channels-last,
    anything else in order): the stream position of each element, as an array of that shape."""
    if len(shape) == 3:
        c, h, w = shape
        return np.arange(c * h * w).reshape(h, w, c).transpose(2, 0, 1)
    return np.arange(math.prod(shape)).reshape(shape)


def partial_sum_range(weight, bias, lo, hi):
    """Bounds of every partial sum an accumulator starting at ``bias`` holds while it adds the
    products of one row of ``weight`` (out, in) with codes in [lo, hi], in any order."""
    w = np.asarray(weight, np.int64)
    low = np.minimum(np.minimum(w * lo, w * hi), 0).sum(axis=1) + bias
    high = np.maximum(np.maximum(w * lo, w * hi), 0).sum(axis=1) + bias
    return int(min(low.min(), np.min(bias))), int(max(high.max(), np.max(bias)))


class _Chain:
    """Builds the kernels of one chain of QGraph nodes (the model, or one path of a fork).
    ``lanes``/``code``: the stream entering the chain (None before the first layer)."""

    def __init__(self, graph, folding, plans, fifo_depths, count, lanes, code, first, ii=None, latency_exact=True):
        self.graph, self.folding, self.plans, self.fifo_depths, self.ii = graph, folding, plans, fifo_depths, ii
        self.latency_exact = latency_exact
        self.count, self.lanes, self.code, self.first = count, lanes, code, first
        # view: where each element of the current (reshaped or transposed) tensor sits in the
        # stream, None while the tensor is streamed in its own order (stream_positions)
        self.kernels, self.in_format, self.view = [], None, None

    def fresh(self, kind):
        n = self.count.get(kind, 0)
        self.count[kind] = n + 1
        return f"{kind}{n}"

    def add_converter(self, lanes_in, lanes_out, length):
        if lanes_in != lanes_out:
            self.kernels.append(WidthConverterKernel(self.fresh("width"), self.code, lanes_in, lanes_out, length))

    def add_fifo(self, lanes, depth, length, name=None):
        self.kernels.append(FifoKernel(name or self.fresh("fifo"), self.code, lanes, depth, length))

    def feed(self, simd, length):
        """Bring the stream to ``simd`` lanes (the input format for the first layer)."""
        if self.first is not None:
            q = self.first
            self.in_format = IOFormat(q.shape, simd, self.code.bits, self.code.signed, q.scale, q.zero_point)
            self.first = None
            return True
        self.add_converter(self.lanes, simd, length)
        return False

    def add_mvu(self, node, dense, pe, simd, vectors, lo, hi):
        self.kernels.append(MVUKernel(f"mvu_{node.name}", dense, pe, simd, graph_code(self.graph, node.inputs[0]),
                                      *partial_sum_range(dense.weight, dense.bias, lo, hi), vectors))

    def requant(self, node, producer):
        """The layer's requantizer; serial (hdl.requant.SerialRequant, a tenth of the logic) when
        the design's interval is known and it then keeps below 7/8 of it, and, where the latency
        model is exact, keeps up with its producer's beats."""
        k = RequantKernel(f"requant_{node.name}", node, self.plans[node.name], producer.pe, producer.acc_bits,
                          producer.vectors)
        if self.ii is None or k.plan.kind != "mul-add-shift" or \
                not isinstance(producer, (MVUKernel, DepthwiseKernel, SumPoolKernel)):
            return k
        # a global sum sends its beats back to back at the frame's end
        interval = 1 if isinstance(producer, SumPoolKernel) else producer.cycles_per_frame // producer.beats_out
        serial = replace(k, serial=True, interval=interval)
        if serial.cycles_per_frame * 8 > self.ii * 7 or (self.latency_exact and serial.lag):
            return k
        return serial

    def node(self, node):
        graph, kernels = self.graph, self.kernels
        if self.view is not None and not isinstance(node, (qg.Dense, qg.Reshape, qg.Transpose, qg.Dequantize)):
            raise UnsupportedError(f"{node.label}: its input was transposed or reshaped out of the stream's "
                                   "channels-last order; only a dense layer can read such a tensor in hardware.")
        if isinstance(node, qg.Dense):
            pe, simd = self.folding[node.name]
            order = None if self.view is None else np.argsort(self.view.reshape(-1))
            dense = node if order is None else replace(node, weight=node.weight[:, order])
            self.view = None
            self.feed(simd, node.in_features)
            self.add_fifo(simd, fifo_depth(pe, simd, node.in_features, node.out_features), node.in_features)
            self.add_mvu(node, dense, pe, simd, 1, *graph.code_range(node.inputs[0]))
        elif isinstance(node, qg.Conv) and is_depthwise(node):
            pe, _ = self.folding[node.name]
            shape = tuple(node.in_shape)
            self.feed(pe, math.prod(shape))
            kernels.append(WindowKernel(f"window_{node.name}", self.code, shape, pe, node.kernel, node.strides,
                                        node.pads, node.dilations, "channels", node.zero_point, "depthwise"))
            lo, hi = graph.code_range(node.inputs[0])
            kernels.append(DepthwiseKernel(f"dw_{node.name}", node, pe, graph_code(graph, node.inputs[0]),
                                           *partial_sum_range(node.weight.reshape(node.out_channels, -1), node.bias,
                                                              min(lo, node.zero_point), max(hi, node.zero_point))))
        elif isinstance(node, qg.Conv):
            pe, simd = self.folding[node.name]
            shape = tuple(node.in_shape)
            beats = math.prod(shape)
            window = WindowKernel(f"window_{node.name}", self.code, shape, simd, node.kernel, node.strides,
                                  node.pads, node.dilations, "taps", node.zero_point, "conv")
            self.feed(simd, beats)
            if node.kernel != (1, 1) or tuple(node.strides) != (1, 1) or any(node.pads):
                kernels.append(window)           # (a 1×1 conv: every pixel is its own window)
            dense = conv_matrix(node)
            self.add_fifo(simd, fifo_depth(pe, simd, dense.in_features, dense.out_features), window.beats_out * simd)
            lo, hi = graph.code_range(node.inputs[0])
            self.add_mvu(node, dense, pe, simd, math.prod(node.out_shape[1:]), min(lo, node.zero_point),
                         max(hi, node.zero_point))
        elif isinstance(node, qg.MaxPool):
            shape = graph.shapes[node.inputs[0]]
            window = WindowKernel(f"window_{node.name}", self.code, shape, self.lanes, node.kernel, node.strides,
                                  node.pads, node.dilations, "channels", self.code.qmin, "pool")
            kernels.append(window)
            kernels.append(PoolKernel(f"pool_{node.name}", self.code, self.lanes, math.prod(node.kernel),
                                      window.beats_out))
        elif isinstance(node, qg.FloatSumPool):
            shape = graph.shapes[node.inputs[0]]
            kernels.append(WindowKernel(f"window_{node.name}", self.code, shape, self.lanes, node.kernel, node.strides,
                                        node.pads, (1, 1), "channels", node.zero_point, "pool"))
            lo, hi = node.acc_range(*graph.code_range(node.inputs[0]))
            kernels.append(FloatSumKernel(f"fsum_{node.name}", node, self.code, self.lanes, int(lo.min()),
                                          int(hi.max()), math.prod(node.out_shape[1:])))
        elif isinstance(node, qg.SumPool):
            lo, hi = node.acc_range(*graph.code_range(node.inputs[0]))
            kernels.append(SumPoolKernel(f"sum_{node.name}", node, self.code, self.lanes, int(lo.min()),
                                         int(hi.max())))
        elif isinstance(node, qg.Requant):
            mvu = kernels[-1]
            kernels.append(self.requant(node, mvu))
            self.lanes, self.code = mvu.pe, node.code
        elif isinstance(node, (qg.Reshape, qg.Transpose)):
            # no hardware: the data stays in stream order, only its meaning changes
            before = tuple(graph.shapes.get(node.inputs[0], ()))
            view = stream_positions(before) if self.view is None else self.view
            view = view.transpose(node.perm) if isinstance(node, qg.Transpose) else view.reshape(node.shape)
            self.view = None if np.array_equal(view, stream_positions(view.shape)) else view
        elif not isinstance(node, qg.Dequantize):
            raise UnsupportedError(f"{node.label}: no hardware kernel for {type(node).__name__} yet.")

    def fork(self, fork_node, paths, add):
        """The paths from ``fork_node`` to ``add`` (one list of nodes per Add input), each built
        as its own chain, then the join; FIFOs at the paths' ends sized so the graph cannot
        deadlock (BranchKernel.required_depths)."""
        if self.first is not None:
            raise UnsupportedError(f"{fork_node.label}: the model input feeds two layers; qloom needs one "
                                   "quantized layer before a residual branch.")
        if self.view is not None:
            raise UnsupportedError(f"{fork_node.label}: a transposed or reshaped tensor feeds two layers; "
                                   "only tensors in the stream's own order can branch in hardware.")
        join_lanes, chains = None, []
        for path in paths:
            c = _Chain(self.graph, self.folding, self.plans, self.fifo_depths, self.count, self.lanes, self.code, None,
                       self.ii, False)
            for n in path:
                c.node(n)
            chains.append(c)
            join_lanes = c.lanes if join_lanes is None else max(join_lanes, c.lanes)
        shape = self.graph.shapes[add.output]
        length = math.prod(shape)
        parts = [math.prod(self.graph.shapes[t]) for t in add.inputs]
        if isinstance(add, qg.Concat):
            channels = tuple(self.graph.shapes[t][0] for t in add.inputs)
            join_lanes = max(d for d in range(1, join_lanes + 1) if all(c % d == 0 for c in channels))
            join = ConcatKernel(f"concat_{add.name}", add, join_lanes, channels, math.prod(shape[1:]))
        else:
            join = AddKernel(f"add_{add.name}", add, self.plans[add.name], join_lanes, chains[0].code,
                             chains[1].code, length)
        for c, part in zip(chains, parts):
            c.add_converter(c.lanes, join_lanes, part)
            c.lanes = join_lanes
        fork_length = math.prod(self.graph.shapes[fork_node.output])
        branch = BranchKernel(f"branch_{add.name}", (tuple(chains[0].kernels), tuple(chains[1].kernels)),
                              join, self.lanes, self.code, fork_length)
        depths = []
        full = branch.full_rate_depths(self.ii) if self.ii else branch.required_depths()
        for k, (c, need) in enumerate(zip(chains, branch.required_depths())):
            name = f"join_{add.name}_{'ab'[k]}"
            depth = self.fifo_depths.pop(name, full[k])
            if depth < need:
                raise UnsupportedError(
                    f"{add.label}: FIFO '{name}' of depth {depth} can deadlock the residual branch: the other "
                    f"path takes {branch.reach()[1 - k]} beats of {self.lanes} lanes before its first output, "
                    f"so this path must hold {need} beats of {join_lanes} lanes. Use at least {need} in "
                    "fold.json's \"fifo_depths\" (or leave it out: qloom computes it).")
            c.add_fifo(join_lanes, depth, parts[k], name=name)
            depths.append(depth)
        self.kernels.append(replace(branch, paths=(tuple(chains[0].kernels), tuple(chains[1].kernels))))
        self.lanes, self.code = join_lanes, add.code


def branch_paths(graph, fork_node):
    """The two node paths from a tensor that feeds two layers to the Add where they meet, in the
    order of the Add's inputs; refused unless the graph is a fork → two chains → Add."""
    heads = graph.consumers(fork_node.output)
    if len(heads) != 2:
        raise UnsupportedError(f"{fork_node.label}: its output feeds {len(heads)} layers; qloom builds hardware "
                               "for a tensor that feeds two paths meeting again in an Add (a residual block).")
    found = []
    for head in heads:
        path, node, tensor = [], head, fork_node.output
        while not isinstance(node, (qg.Add, qg.Concat)):
            path.append(node)
            nxt = graph.consumers(node.output)
            if len(nxt) != 1:
                raise UnsupportedError(f"{node.label}: inside a residual branch from {fork_node.label}, its output "
                                       f"feeds {len(nxt)} layers; nested branches are not supported in hardware.")
            tensor, node = node.output, nxt[0]
        found.append((node, tensor, path))
    (add_a, t_a, p_a), (add_b, t_b, p_b) = found
    if add_a is not add_b or t_a == t_b or len(add_a.inputs) != 2:
        raise UnsupportedError(f"{fork_node.label}: its two paths do not meet in one Add or Concat of two "
                               "different tensors; only a fork → two paths → Add/Concat is supported in hardware.")
    return add_a, ([p_a, p_b] if add_a.inputs[0] == t_a else [p_b, p_a])


def build(graph, folding, plans, source="", fifo_depths=None):
    """Lower the QGraph to a Dataflow graph with the given folding {layer name: (pe, simd)}.
    Streams are channels-last; a conv is a window generator feeding an MVU; a residual block
    is a BranchKernel whose join FIFOs are sized for full rate at the design's initiation
    interval, and requantizers that idle most of that interval are serial (so built twice: the
    interval depends on neither).
    ``fifo_depths`` overrides those depths (refused when a depth could deadlock)."""
    first = _build(graph, folding, plans, source, dict(fifo_depths or {}), None, True)
    return _build(graph, folding, plans, source, dict(fifo_depths or {}), first.cycles_per_frame, first.latency_exact)


def _build(graph, folding, plans, source, fifo_depths, ii, latency_exact):
    nodes = list(graph.nodes)
    quantize = nodes[0]
    chain = _Chain(graph, folding, plans, fifo_depths, {}, None, quantize.code, quantize, ii, latency_exact)
    done = set()
    for node in nodes[1:]:
        if node in done:
            continue
        chain.node(node)
        while len(graph.consumers(node.output)) > 1:      # a block's output may fork again
            add, paths = branch_paths(graph, node)
            chain.fork(node, paths, add)
            done.update(n for p in paths for n in p)
            done.add(add)
            node = add
    if chain.in_format is None:
        raise UnsupportedError(f"{source}: the model has no quantized matrix product to build hardware for.")
    if fifo_depths:
        raise UnsupportedError(f"{source}: \"fifo_depths\" names {sorted(fifo_depths)}, which are not join "
                               "FIFOs of this design; see fold.json for their names.")
    last = nodes[-1]
    out_scale = last.scale if isinstance(last, qg.Dequantize) else 1.0
    out_zero = last.zero_point if isinstance(last, qg.Dequantize) else 0
    out_shape = graph.shapes[graph.outputs[0]]
    code = chain.code
    output = IOFormat(tuple(out_shape), chain.lanes, code.bits, code.signed, float(out_scale), int(out_zero))
    fold = {k: {"pe": v[0], "simd": v[1]} for k, v in folding.items()}
    joins = {k.name: k.depth for k in flat(chain.kernels) if isinstance(k, FifoKernel) and k.name.startswith("join_")}
    if joins:
        fold["fifo_depths"] = joins
    return Dataflow(tuple(chain.kernels), chain.in_format, output, source, fold)


def graph_code(graph, tensor):
    """The code type of a tensor, following reshapes and max pools back to its producer."""
    node = graph.producer(tensor)
    while isinstance(node, (qg.Reshape, qg.Transpose, qg.MaxPool)):
        node = graph.producer(node.inputs[0])
    return node.code
