"""Window kernels (twins of hdl/window.py): the window generator and the pools it feeds."""
import functools
import math
from dataclasses import dataclass

import numpy as np

from .. import qgraph as qg
from ..numeric import signed_bits
from ..resources import Memory, block_bits
from .base import Kernel

def window_schedule(shape, lanes, kernel, strides, pads, dilations, order="taps"):
    """The beats a window generator sends for a channels-last (H, W, C) frame stored as beats
    of ``lanes`` channels: per output pixel, the taps (ky, kx) × channel groups ("taps": the
    conv vector order, tap-major) or channel groups × taps ("channels": runs of taps for a
    pool).  Each entry is a stored beat index, or None for padding.  Output sizes as
    onnxruntime computes them (qgraph.windows).  (With several taps a beat, consecutive
    entries of this list are one beat's taps.)"""
    c, h, w = shape
    groups = c // lanes
    (pt, _), (pl, _) = qg._pads(pads, kernel)
    oh, ow = qg.window_out_size((h, w), kernel, strides, pads, dilations)
    kh, kw = kernel
    out = []
    for oy in range(oh):
        for ox in range(ow):
            def beat(ky, kx, g):
                iy = oy * strides[0] + ky * dilations[0] - pt
                ix = ox * strides[1] + kx * dilations[1] - pl
                return (iy * w + ix) * groups + g if 0 <= iy < h and 0 <= ix < w else None
            taps = [(ky, kx) for ky in range(kh) for kx in range(kw)]
            if order == "taps":
                out += [beat(ky, kx, g) for ky, kx in taps for g in range(groups)]
            else:
                out += [beat(ky, kx, g) for g in range(groups) for ky, kx in taps]
    return out



def tap_block(kernel, taps):
    """(rows, columns) of the block of ``taps`` consecutive taps a beat carries (mirrors
    hdl.window.tap_block; folding.tap_blocks lists the legal ones)."""
    kh, kw = kernel
    return (1, taps) if kw % taps == 0 else (taps // kw, kw)


WINDOW_LATENCY = 5            # hdl.window.WindowGen.LATENCY
WINDOW_QUEUE = 6              # hdl.window.WindowGen.QUEUE (its output queue, in beats)
MAX_POOL_LATENCY = 1          # hdl.window.MaxPoolUnit.LATENCY
SUM_POOL_LATENCY = 1          # hdl.window.SumPoolUnit.LATENCY
FLOAT_SUM_LATENCY = 2         # hdl.window.FloatSumUnit.LATENCY


@dataclass(frozen=True, eq=False)
class WindowKernel(Kernel):
    """Sends the windows of a channels-last frame through a line buffer (hdl.window.WindowGen):
    per output pixel the taps × channel groups, tap-major ("taps") or group-major ("channels").
    It reads a window as fast as its rows allow (issue interval 1; line-buffer back-pressure
    is in cycles_per_frame, so its timing is a model)."""
    kind = "Window"
    noun = "Window"
    exact_timing = False
    issue_interval = 1
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
    block_rams: bool = False  # its line buffer in block RAM, not where Yosys finds it cheapest
    taps: int = 1             # consecutive taps a beat (hdl.window.tap_block; then lanes = C)

    @property
    def lanes_out(self):
        return self.lanes * self.taps

    @property
    def out_size(self):
        return qg.window_out_size(self.shape[1:], self.kernel, self.strides, self.pads,
                                  self.dilations)

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
        return math.prod(self.out_size) * math.prod(self.kernel) * (self.shape[0] // self.lanes) // self.taps

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
        """Per output row: the frame's beats it needs, and the beats released after it
        (row_schedule)."""
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
        return WINDOW_LATENCY

    @staticmethod
    def summary(entry):
        kernel = "×".join(map(str, entry["kernel"]))
        taps = f", {entry['taps']} taps a beat" if entry.get("taps", 1) > 1 else ""
        return "", f"{entry['for']} {kernel}{taps}, line buffer {entry['line_buffer']} beats"

    def held_codes(self):
        """While its output waits it holds its line buffer's beats, and changes the rate."""
        return self.depth * self.lanes, False

    def memories(self):
        return [Memory("frame" if k == 0 else f"frame{k}", self.lanes * self.code.bits, self.depth, writable=True,
                       pinned=self.block_rams) for k in range(self.taps)] + \
               [Memory("queue", self.lanes_out * self.code.bits, WINDOW_QUEUE, fifo=True)]

    # LUTs and flip-flops per bit of a beat, of the padded frame's positions, of the frame's
    # count and of the buffer's address, and a constant; fitted to Yosys on ten windows per
    # target family (the digits CNN, residual CNN, DS-CNN and ResNet-8 at 32 multipliers, the
    # window generator testing a sign bit for its issue; iCE40 227–373 LUT, ECP5 281–458 with
    # `abc -lut 4`): LUTs within −11 / +16 % (a max pool's the +16), FFs within 4 %
    LUT_FIT = {"ice40": (3.2, 29.6, 12.3, 6.5, -129.2), "ecp5": (2.5, 30.0, 6.9, 24.7, -124.8)}
    FF_FIT = {"ice40": (4.5, 7.7, 8.0, 1.3, -15.6), "ecp5": (2.2, 10.5, 5.9, 6.8, -31.1)}
    # a beat of several taps: per bit of each tap's lanes beyond the first (its lanes of the
    # output mux and queue), and per row and column of the tap block beyond the first (its
    # padding compares, which the taps of a row or column share, and address registers):
    # (LUT, FF) = (per bit, per row or column), fitted to Yosys on four windows of 3–9 taps a
    # beat (the digits CNN's two convs, the residual CNN's first; 1 and 8 channels): within
    # −8 / +14 % LUT, −20 / +17 % FF
    EXTRA_TAP = {"ice40": ((1.5, 40), (1.5, 35)), "ecp5": ((1.0, 30), (1.8, 5))}

    def resources(self, family="ice40"):
        """The output mux, the loop counters with their running row, column (``pos`` bits: the
        padded frame) and address (``slot`` bits: the buffer) parts and sums, the padding
        compares, and the buffer's counters (``count`` bits: a frame) with their compares; a
        beat of several taps adds EXTRA_TAP a tap."""
        bits = self.lanes * self.code.bits
        _, h, w = self.shape
        (pt, pb), (pl, pr) = qg._pads(self.pads, self.kernel)
        pos = 2 * max(h + pt + pb + self.strides[0] + self.kernel[0] * self.dilations[0],
                      w + pl + pr + self.strides[1] + self.kernel[1] * self.dilations[1])
        pos, count = pos.bit_length(), max(self.in_beats, 2).bit_length() + 1
        slot = self.depth.bit_length() - 1
        terms = (bits, pos, count, slot, 1)
        (lut_bit, lut_one), (ff_bit, ff_one) = self.EXTRA_TAP[family]
        taps, sides = self.taps - 1, sum(tap_block(self.kernel, self.taps)) - 2
        return {"lut": round(sum(c * t for c, t in zip(self.LUT_FIT[family], terms)) + taps * lut_bit * bits
                             + sides * lut_one),
                "ff": round(sum(c * t for c, t in zip(self.FF_FIT[family], terms)) + taps * ff_bit * bits
                            + sides * ff_one),
                "dsp": 0, "bram_bits": block_bits(self.memories())}

    def to_json(self):
        return {"kind": self.kind, "name": self.name, "for": self.what, "shape": list(self.shape),
                "lanes": self.lanes, "kernel": list(self.kernel), "strides": list(self.strides),
                "order": self.order, "beats_out": self.beats_out, "line_buffer": self.depth,
                **({"taps": self.taps} if self.taps > 1 else {}), **self.timing_json()}


@functools.lru_cache(maxsize=None)
def row_schedule(in_beats, row, span, stride, pad_top, oh):
    """For each output row of a window generator (hdl.window.WindowGen): the beats of the frame
    it needs (up to its last input row) and the beats released after its last read (up to the
    next output row's top row; the rest of the frame after the last), clamped to the frame."""
    def clamp(v):
        return min(max(v, 0), in_beats)
    tops = [(oy * stride - pad_top) * row for oy in range(oh)]
    need = tuple(clamp(top + span * row) for top in tops)
    release = tuple((clamp(tops[oy + 1]) if oy + 1 < oh else in_beats) - clamp(tops[oy])
                    for oy in range(oh))
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
class MaxPoolKernel(Kernel):
    """Maximum over runs of ``taps`` beats (hdl.window.MaxPoolUnit)."""
    kind = "MaxPool"
    noun = "Pool"
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
        return MAX_POOL_LATENCY

    def needs(self, n):
        return n * self.taps

    @property
    def beats_out(self):
        return self.beats_in // self.taps

    def resources(self, family="ice40"):
        bits = self.lanes * self.code.bits
        return {"lut": 2 * bits + 10, "ff": 2 * bits + 10, "dsp": 0, "bram_bits": 0}

    def to_json(self):
        return {"kind": self.kind, "name": self.name, "lanes": self.lanes, "taps": self.taps,
                **self.timing_json()}


@dataclass(frozen=True, eq=False)
class SumPoolKernel(Kernel):
    """Global sum per channel (hdl.window.SumPoolUnit); a Requant follows, as after an MVU.
    Its sums leave back to back at the frame's end (serial_interval 1)."""
    kind = "GlobalSum"        # design.json's name for it
    noun = "SumPool"
    exact_timing = False
    serial_interval = 1
    name: str
    node: qg.SumPool
    code: qg.CodeType
    pe: int                   # lanes in and out
    acc_lo: int
    acc_hi: int
    vectors: int = 1

    @property
    def layer(self):
        return self.node

    @property
    def groups(self):
        return self.node.in_shape[0] // self.pe

    @property
    def cycles_per_frame(self):
        return self.node.count * self.groups

    @property
    def issue_interval(self):
        """A cycle between its sums: they leave back to back, not spread over the frame."""
        return 1

    def needs(self, n):
        """Sums leave during the last pixel of the frame."""
        frames, k = divmod(n - 1, self.groups)
        return (frames + 1) * self.cycles_per_frame - self.groups + k + 1

    @property
    def beats_out(self):
        return self.groups

    @property
    def latency(self):
        return SUM_POOL_LATENCY

    @property
    def acc_bits(self):
        return signed_bits(self.acc_lo, self.acc_hi)

    def resources(self, family="ice40"):
        """The ring of partial sums, the output register, one adder per lane, two counters."""
        acc = self.pe * self.acc_bits
        counters = 2 * max(self.node.count, self.groups, 2).bit_length()
        return {"lut": acc + self.pe * self.code.bits + 2 * counters + 4,
                "ff": (self.groups + 1) * acc + counters + 1,
                "dsp": 0, "bram_bits": 0}

    def to_json(self):
        return {"kind": self.kind, "name": self.name, "layer": self.node.name,
                "onnx_node": self.node.onnx_node,
                "lanes": self.pe, "pixels": self.node.count, "acc_bits": self.acc_bits,
                **self.timing_json()}


@dataclass(frozen=True, eq=False)
class FloatSumKernel(Kernel):
    """An average pool's float32 window sums (hdl.window.FloatSumUnit) over runs of ``taps``
    beats from a window generator; a Requant (the division and quantization) follows."""
    kind = "FloatSum"
    noun = "FloatSum"
    exact_timing = False
    name: str
    node: qg.FloatSumPool
    code: qg.CodeType
    pe: int                   # lanes in and out
    acc_lo: int
    acc_hi: int
    vectors: int              # output pixels per frame

    @property
    def layer(self):
        return self.node

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
        return FLOAT_SUM_LATENCY

    @property
    def acc_bits(self):
        return signed_bits(self.acc_lo, self.acc_hi)

    def memories(self):
        return [Memory(f"terms{p}", self.acc_bits, 1 << self.code.bits) for p in range(self.pe)]

    def resources(self, family="ice40"):
        """Per lane: the adder, the float32 rounding (magnitude, smeared mask, compare, round,
        sign: about five operations of the accumulator's width) and the running sum."""
        acc = self.acc_bits
        return {"lut": self.pe * 6 * acc + 2 * max(self.node.taps, 2).bit_length() + 4,
                "ff": self.pe * 2 * acc + max(self.node.taps, 2).bit_length() + 2, "dsp": 0,
                "bram_bits": block_bits(self.memories())}

    def to_json(self):
        return {"kind": self.kind, "name": self.name, "layer": self.node.name,
                "onnx_node": self.node.onnx_node,
                "lanes": self.pe, "taps": self.node.taps, "acc_bits": self.acc_bits,
                **self.timing_json()}


