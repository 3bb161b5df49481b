"""Requantization kernels (twin of hdl/requant.py): the parallel and the serial requantizer."""
from dataclasses import dataclass, replace

import numpy as np

from .. import qgraph as qg
from ..numeric import signed_bits
from ..resources import Memory, block_bits
from .base import Kernel

PRODUCT_CHUNK = 2    # bits of the constant operand per partial product (hdl.requant.CHUNK)
NARROW_ROW = 16      # bits of a row of a serial requantizer's narrowed parameter ROM


def adder_levels(operands):
    """Levels of a binary adder tree over ``operands`` (mirrors hdl.requant.adder_stages)."""
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
              "float-emulation": 13 + adder_levels(-(-25 // PRODUCT_CHUNK))}[kind]
    return 4 + stages + tables


@dataclass(frozen=True, eq=False)
class RequantKernel(Kernel):
    """A layer's requantization of ``pe`` accumulators per beat by a proven plan
    (hdl.requant.Requant; ``serial``: hdl.requant.SerialRequant, one beat per ``period``)."""
    kind = "Requant"
    noun = "Requant"
    name: str
    node: qg.Requant
    plan: object
    pe: int
    acc_bits: int
    vectors: int = 1
    serial: bool = False      # hdl.requant.SerialRequant: one beat every ``period`` cycles
    interval: int = 1         # cycles between the producer's output beats
    param_words: int = 1      # serial: a beat's parameters as this many narrow ROM rows (narrowed)

    @property
    def channels(self):
        return self.node.channels

    @property
    def beats_out(self):
        return self.vectors * self.channels // self.pe

    @property
    def digits(self):
        """Two-bit digits of M the serial circuit steps through."""
        return max(1, -(-(self.mul_bits - 1) // PRODUCT_CHUNK))

    @property
    def period(self):
        """Cycles per beat: 1, or for the serial circuit two bits of M per cycle plus the take,
        the first digit's choice, adding C, adding the carry-save words, the result and its
        hand-over, and a cycle per row of narrowed parameters (mirrors
        hdl.requant.SerialRequant.period)."""
        if not self.serial:
            return 1
        return self.digits + 6 + (self.param_words if self.param_words > 1 else 0)

    @property
    def param_width(self):
        """Bits of a row of the parameter ROM: a beat's ``pe`` lanes, or a narrowed row of them."""
        return -(-self.pe * self.param_bits // self.param_words)

    def narrowed(self):
        """This serial requantizer with its parameters in 16-bit rows (hdl.requant.SerialRequant's
        ``param_words``), where that takes fewer block RAMs (counted as iCE40's 256 × 16; ECP5's
        1,024 × 18 never takes more) and the rows' cycles keep it within its producer's
        ``interval`` (no lag added); else itself."""
        words = -(-self.pe * self.param_bits // NARROW_ROW)
        if not self.serial or words < 2 or self.fold < 2:
            return self
        narrow = replace(self, param_words=words)
        wide_blocks = -(-self.param_width // NARROW_ROW) * -(-self.fold // 256)
        if narrow.period > self.interval or narrow.memories()[0].style != "block" or \
                self.memories()[0].style != "block" or -(-self.fold * words // 256) >= wide_blocks:
            return self
        return narrow

    @property
    def cycles_per_frame(self):
        return self.beats_out * self.period

    @property
    def layer(self):
        return self.node

    @staticmethod
    def summary(entry):
        return str(entry["pe"]), entry["implementation"]

    def needs(self, n):
        return n

    @property
    def mul_bits(self):
        """Width of the multiplier constant M of a mul-add-shift circuit (0 for other kinds)."""
        if self.plan.kind != "mul-add-shift":
            return 0
        return signed_bits(0, int(max(self.plan.impl.mul)))

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
        """Cycles from the beat it needs to an output beat (the lag is the pacing beat_times
        follows)."""
        return self.digits + 5 if self.serial else self.latency

    @property
    def latency(self):
        if self.serial:
            return self.digits + 5 + self.lag
        impl = self.plan.impl
        tables, depth = len(getattr(impl, "tables", ())), getattr(impl, "depth", 0)
        return requant_latency(self.plan.kind, self.mul_bits, tables, depth)

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
                width = self.acc_bits if name != "fix_code" else self.node.code.bits
                bits += width * max(v.shape[1], 1)
            else:
                bits += 25 if name == "mantissa" else signed_bits(min(int(v.min()), 0),
                                                                  max(int(v.max()), 0))
        return bits

    def memories(self):
        """Per-channel parameters, code tables, and the output queue (latency + 1 beats; the
        serial circuit has none)."""
        fold = self.fold
        mems = [Memory("params", self.param_width, fold * self.param_words)] if fold > 1 else []
        for i, t in enumerate(getattr(self.plan.impl, "tables", ())):
            mems += [Memory(f"table{i}_{p}", self.node.code.bits, fold * t.table.shape[1])
                     for p in range(self.pe)]
        if self.plan.kind == "threshold-search":        # stage j probes 2**(depth-1-j) thresholds
            depth = self.plan.impl.depth
            mems += [Memory(f"search{j}_{p}", self.acc_bits + 1, fold << (depth - 1 - j))
                     for j in range(depth) for p in range(self.pe)]
        if self.serial:         # hdl.requant.SerialRequant holds its result in its output register
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
        return [{(v >> j) & mask for v in self.lane_muls(lane)}
                for j in range(0, self.mul_bits, PRODUCT_CHUNK)]

    def varying_bits(self, lane):
        """Bits of M that differ between the channels of ``lane``."""
        muls = self.lane_muls(lane)
        return sum(len({(v >> j) & 1 for v in muls}) > 1 for j in range(self.mul_bits))

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
            # Fitted to Yosys (eight requantizers, folds 1–32, iCE40 and ECP5): per partial
            # product not always 0 an adder about as wide as acc (synthesis trims the sign
            # extension and the zero low bits); a varying digit's two rows added; a constant 3
            # one adder, a constant 1 or 2 a wire; and where a parameter comes from a ROM of more
            # than four words, the AND of each of its varying bits with acc (up to two address
            # bits fit in the adder's LUT beside the operand bits)
            fixes = self.plan.impl.fixes
            columns = [c for c in self.digit_columns(lane) if c != {0}]
            products = sum(acc + PRODUCT_CHUNK if len(c) > 1 else acc if c == {3} else 0
                           for c in columns)
            selects = acc * self.varying_bits(lane) if self.fold > 4 else 0
            lut = len(columns) * (acc + 3) + products + selects + fixes * (acc // 2 + out) + 3 * out
            # registers: acc and the partial products (a constant digit's is acc shifted, the
            # same register), then each level's sums (about as wide as acc plus the digits they
            # span), the fixes riding along (their codes only with more than two words, else a
            # constant or the address bit, merged)
            riding = fixes * (out + 1) if self.fold > 2 else fixes
            own = sum(len(c) > 1 or c == {3} for c in columns)
            ff = 2 * acc + own * (acc + PRODUCT_CHUNK) + riding
            operands, level = len(columns) + 1, 0
            while operands > 1:
                operands, level = -(-operands // 2), level + 1
                ff += operands * (acc + PRODUCT_CHUNK * (1 << level)) + riding
            return lut, ff
        # float emulation: 24×25-bit product as partial products, an adder tree, two roundings
        parts = -(-25 // PRODUCT_CHUNK)
        lut = acc + parts * (24 + PRODUCT_CHUNK) + parts * 49 + 49 * 4 + 25 * 18 + 4 * out
        ff = 2 * acc + parts * (24 + PRODUCT_CHUNK) + 49 * (adder_levels(parts) + 5) + 25 * 12 + 14
        return lut, ff

    # the serial circuit's LUTs on ECP5 over the iCE40 fit: 1.0 since ECP5 is mapped to LUT4s
    # only (abc -lut 4; 1.0–1.24× of the measured on four requantizers of the digits models,
    # where the wide-function mapping it had before took 1.18–1.48×)
    SERIAL_LUT_SCALE = {"ice40": 1.0, "ecp5": 1.0}

    def resources(self, family="ice40"):
        lut, ff = (sum(v) for v in zip(*(self._lane(p) for p in range(self.pe))))
        if self.serial:
            lut = round(lut * self.SERIAL_LUT_SCALE[family])
        # the parameter ROM's read register: flip-flops in logic, the block RAM's own in a block
        rom = self.memories()[0] if self.fold > 1 else None
        params = self.pe * self.param_bits if self.fold > 2 and rom.style == "logic" else 0
        if self.param_words > 1:
            # the rows' shift register, their address and two counts; where the rows span
            # several blocks in depth, a multiplexer of their outputs (about 0.6 LUT a bit a
            # block beyond the first: Yosys, 1,408 × 16 bits in six iCE40 blocks, +75 LUT and
            # +191 FF over the 128 × 176 ROM in eleven)
            rows = 256 if family == "ice40" else 1024
            count = (rom.depth - 1).bit_length() + 2 * self.param_words.bit_length()
            params = self.param_words * self.param_width + count + 1
            lut += count + 4 + round(0.6 * rom.width * (-(-rom.depth // rows) - 1))
        return {"lut": lut + 30, "ff": ff + params + 20,
                "dsp": 0, "bram_bits": block_bits(self.memories())}

    def to_json(self):
        return {"kind": self.kind, "name": self.name, "layer": self.node.name,
                "onnx_node": self.node.onnx_node,
                "implementation": self.plan.kind + (" (serial)" if self.serial else ""),
                **({"param_words": self.param_words} if self.param_words > 1 else {}),
                "channels": self.channels, "pe": self.pe, "acc_bits": self.acc_bits,
                "out_bits": self.node.code.bits, "out_signed": self.node.code.signed,
                **self.timing_json()}


