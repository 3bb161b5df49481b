"""Matrix-vector kernels (twins of hdl/mvu.py): the MVU and the depthwise vector unit."""
import math
from dataclasses import dataclass

from .. import qgraph as qg
from ..numeric import signed_bits
from ..resources import Memory, block_bits, spram_geometry
from .base import Kernel

MVU_LEVELS_PER_STAGE = 2      # adder-tree levels per stage (hdl.mvu.MVU.LEVELS_PER_STAGE)
DEPTHWISE_LATENCY = 4         # the depthwise unit's pipeline (hdl.mvu.DepthwiseUnit.LATENCY)


def mvu_tree_stages(simd):
    """Pipeline stages of the adder tree over ``simd`` products (hdl.mvu.MVU.tree_stages)."""
    return max(1, -(-(simd - 1).bit_length() // MVU_LEVELS_PER_STAGE))


def mvu_latency(simd):
    """Cycles from an MVU step to its output: memory read, operand registers, products, the
    adder tree (two levels per stage), the accumulator, the output's register slice
    (mirrors hdl.mvu.MVU.latency)."""
    return 5 + mvu_tree_stages(simd)


def dsp_slices(a_bits, b_bits, slice_bits=16):
    """Hard multipliers (16×16 on iCE40; 18×18 counted the same) one a×b product needs."""
    return -(-a_bits // slice_bits) * -(-b_bits // slice_bits)



def fifo_depth(pe, simd, in_features, out_features):
    """Beats the FIFO in front of an MVU must hold so that its producer never waits.

    An MVU reads its input vector (in_fold beats) during its first output tile and then
    computes the other out_fold - 1 tiles without reading; meanwhile the producer keeps
    producing at most one frame, so one frame of beats (+2 for the stage registers) is
    enough, and anything less can stall the producer."""
    in_fold = in_features // simd
    return in_fold + 2 if out_features // pe > 1 else 3   # a SyncFIFOBuffered of 2: half rate


def spram_loader(width, depth):
    """LUT and FF of the logic around a width × depth memory in SPRAMs (hdl.spram.loaded_rom):
    the load row and tile counters and the full flag, the bank and lane registers, the address
    multiplexer and write and chip selects of each SPRAM, the bank and lane multiplexers."""
    lanes, tiles, rows, banks = spram_geometry(width, depth)
    bits = lambda n: max(n - 1, 1).bit_length()      # noqa: E731
    ff = bits(rows) + bits(tiles) * (tiles > 1) + 1 + bits(banks) * (banks > 1) + bits(lanes) * (lanes > 1)
    lut = (2 * ff + 14 * banks + 2 * tiles * banks + 16 * tiles * (banks - 1)
           + width * (lanes - 1))
    return {"lut": lut, "ff": ff}


@dataclass(frozen=True, eq=False)
class MVUKernel(Kernel):
    """A dense layer, or a conv's windows, as ``vectors`` matrix-vector products per frame on
    ``pe`` × ``simd`` multipliers (hdl.mvu.MVU): in_fold input beats of ``simd`` codes per
    vector, out_fold output beats of ``pe`` accumulators."""
    kind = "MVU"
    noun = "MVU"
    name: str
    dense: qg.Dense
    pe: int
    simd: int
    in_code: qg.CodeType
    acc_lo: int
    acc_hi: int
    vectors: int = 1          # matrix-vector products per frame (output pixels of a conv)
    block_rams: bool = False  # its input buffer in block RAM, not where Yosys finds it cheapest
    split_products: bool = False  # each product in two stages (hdl.mvu.MVU.split_products)
    dsp_cell: str = None      # the DSP primitive its products are, registers used (hdl.mvu.MVU.dsp_cell)
    spram_cell: str = None    # its weights in the target's SPRAMs, loaded at run time (hdl.mvu.MVU.spram_cell)

    @staticmethod
    def summary(entry):
        return (f"{entry['pe']}×{entry['simd']}",
                f"{entry['in_features']}→{entry['out_features']}, "
                f"w{entry['weight_bits']} acc{entry['acc_bits']}")

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
    def layer(self):
        return self.dense

    @property
    def multipliers(self):
        return self.pe * self.simd

    @property
    def folding(self):
        return self.pe, self.simd

    @property
    def serial_interval(self):
        """Cycles between the beats it hands a requantizer."""
        return self.cycles_per_frame // self.beats_out

    @property
    def latency(self):
        return mvu_latency(self.simd) + self.split_products + (self.dsp_cell is not None)

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
        w = self.dense.weight
        return signed_bits(min(0, int(w.min())), max(0, int(w.max())))

    def stored_bits(self):
        """Its memories, and its weights when they are unrolled into logic (one step per frame)."""
        bits = super().stored_bits()
        if self.in_fold * self.out_fold == 1:
            bits += self.dense.weight.size * self.weight_bits
        return bits

    def memories(self):
        """Weights (one word per step), the kept input vector and the biases of the tiles."""
        mems = []
        if self.in_fold * self.out_fold > 1:
            mems.append(Memory("weights", self.pe * self.simd * self.weight_bits,
                               self.in_fold * self.out_fold, spram=self.spram_cell is not None))
        if self.out_fold > 1:
            mems += [Memory("buffer", self.simd * self.in_code.bits, self.in_fold, writable=True,
                            pinned=self.block_rams),
                     Memory("bias", self.pe * self.acc_bits, self.out_fold)]
        return mems

    @property
    def multiplier_luts(self):
        """LUTs of the products when built in logic (none when they go to DSP blocks)."""
        wb, xb = self.weight_bits, self.in_code.bits
        return self.pe * self.simd * (wb * xb + wb + xb)

    def resources(self, family="ice40"):
        """Structural count (mirrors hdl.mvu.MVU): counters; operand, product, adder-tree and
        accumulator registers; the output register slice; adders one LUT per bit."""
        pe, simd, acc = self.pe, self.simd, self.acc_bits
        xb, wb = self.in_code.bits, self.weight_bits
        prod = wb + xb
        counters = 2 * (math.ceil(math.log2(max(self.in_fold * self.out_fold, 2))) + 2)
        tree_regs = sum(-(-simd // (4 ** (s + 1))) if s + 1 < mvu_tree_stages(simd) else 1
                        for s in range(mvu_tree_stages(simd)))
        ff = (counters + 2 * simd * xb + pe * simd * (wb + prod + 2 * xb) + pe * tree_regs * acc
              + pe * acc
              + 2 * pe * acc + 16)
        lut = (self.multiplier_luts + 2 * counters + simd * xb * (self.out_fold > 1)
               + pe * (simd - 1) * acc + 2 * pe * acc + pe * acc + 20)
        if self.split_products:     # the two halves' registers, the adder joining them
            ff += pe * simd * (2 * wb + xb) + 4
            lut += pe * simd * prod
        if self.dsp_cell:           # the product registers are the blocks' own; a stage of control
            ff += 4 - pe * simd * prod
        if self.spram_cell:         # the loader's counters and flag, the address mux, the row select
            loader = spram_loader(pe * simd * wb, self.in_fold * self.out_fold)
            ff, lut = ff + loader["ff"], lut + loader["lut"]
        return {"lut": lut, "ff": ff, "dsp": pe * simd * dsp_slices(wb, xb),
                "bram_bits": block_bits(self.memories())}

    def to_json(self):
        return {"kind": self.kind, "name": self.name, "layer": self.dense.name,
                "onnx_node": self.dense.onnx_node, "in_features": self.dense.in_features,
                "out_features": self.dense.out_features, "pe": self.pe, "simd": self.simd,
                "input_bits": self.in_code.bits, "input_signed": self.in_code.signed,
                "weight_bits": self.weight_bits, "acc_bits": self.acc_bits,
                "cycles_per_frame": self.cycles_per_frame, "vectors": self.vectors,
                "latency": self.latency, "macs": self.macs, "estimate": self.resources(),
                **({"split_products": True} if self.split_products else {}),
                **({"dsp_cell": self.dsp_cell} if self.dsp_cell else {})}


@dataclass(frozen=True, eq=False)
class DepthwiseKernel(Kernel):
    """A depthwise conv as a vector unit (hdl.mvu.DepthwiseUnit): ``pe`` channels per beat,
    one tap per cycle, fed by a window generator in "channels" order."""
    kind = "Depthwise"
    noun = "Depthwise"
    name: str
    conv: qg.Conv
    pe: int
    in_code: qg.CodeType
    acc_lo: int
    acc_hi: int
    dsp_cell: str = None      # as MVUKernel.dsp_cell (hdl.mvu.DepthwiseUnit.dsp_cell)

    @property
    def layer(self):
        return self.conv

    @property
    def multipliers(self):
        return self.pe

    @property
    def folding(self):
        return self.pe, 1

    @property
    def serial_interval(self):
        """Cycles between the beats it hands a requantizer."""
        return self.cycles_per_frame // self.beats_out

    @staticmethod
    def summary(entry):
        return (f"{entry['pe']}×1", f"depthwise {entry['channels']} ch × {entry['taps']} taps, "
                f"w{entry['weight_bits']} acc{entry['acc_bits']}")

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
        return DEPTHWISE_LATENCY + (self.dsp_cell is not None)

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

    def resources(self, family="ice40"):
        """Products in logic (or DSPs), accumulators, operand and product registers, counters."""
        pe, acc, xb, wb = self.pe, self.acc_bits, self.in_code.bits, self.weight_bits
        counters = 3 * (max(self.taps * self.conv.out_channels // pe, 2).bit_length() + 1)
        lut = pe * (wb * xb + wb + xb) + pe * acc + 2 * counters + 10
        ff = pe * (xb + 3 * acc) + 2 * pe * acc + counters + 8
        if self.dsp_cell:   # the products are the blocks' registers; a stage of control and bias added
            ff += 4
        return {"lut": lut, "ff": ff, "dsp": pe * dsp_slices(wb, xb),
                "bram_bits": block_bits(self.memories())}

    @property
    def multiplier_luts(self):
        wb, xb = self.weight_bits, self.in_code.bits
        return self.pe * (wb * xb + wb + xb)

    def to_json(self):
        return {"kind": self.kind, "name": self.name, "layer": self.conv.name,
                "onnx_node": self.conv.onnx_node, "channels": self.conv.out_channels,
                "taps": self.taps, "pe": self.pe, "simd": 1, "input_bits": self.in_code.bits,
                "weight_bits": self.weight_bits, "acc_bits": self.acc_bits,
                "cycles_per_frame": self.cycles_per_frame, "vectors": self.vectors,
                "latency": self.latency, "macs": self.macs, "estimate": self.resources(),
                **({"dsp_cell": self.dsp_cell} if self.dsp_cell else {})}


