"""Memories and per-target resource estimates.

Where each memory lives is decided here, not left to synthesis: a ROM of at least
``BLOCK_MIN_DEPTH`` words and ``BLOCK_MIN_BITS`` bits, or a RAM of at least
``RAM_BLOCK_MIN_BITS`` bits and two words, goes to block RAM, anything smaller to logic, and the circuit
carries that choice as a ``ram_style`` attribute that Yosys obeys.  So
the block-RAM estimate is a count of blocks of the target's geometry, not a guess.  FIFO
storage (amaranth.lib.fifo) carries no attribute: see in_bram."""
from dataclasses import dataclass

from .targets import TARGETS   # noqa: F401 (the registry, read here and by the estimator's callers)

BLOCK_MIN_DEPTH = 64
BLOCK_MIN_BITS = 1024
RAM_BLOCK_MIN_BITS = 128
FIFO_BLOCK_MIN_BITS = 64      # iCE40: bits in flip-flops a block RAM is worth (see in_bram)


@dataclass(frozen=True)
class Memory:
    name: str
    width: int
    depth: int
    fifo: bool = False          # storage of an amaranth.lib.fifo queue (no style attribute)
    writable: bool = False      # a RAM (else a ROM)

    @property
    def bits(self):
        return self.width * self.depth

    @property
    def style(self):
        if self.fifo:
            return "auto"
        if self.writable:       # in logic a RAM is a register per bit; one word is a register
            # whatever its attribute (Yosys keeps a one-word memory in flip-flops: measured)
            return "block" if self.depth > 1 and self.bits >= RAM_BLOCK_MIN_BITS else "logic"
        return "block" if self.depth >= BLOCK_MIN_DEPTH and self.bits >= BLOCK_MIN_BITS else "logic"


def blocks(width, depth, target):
    """Block RAMs for a width × depth memory: the cheapest configuration, tiled."""
    return min(-(-width // w) * -(-depth // d) for w, d in TARGETS[target]["bram_shapes"])


def in_bram(mem, target):
    """FIFO storage carries no attribute: Yosys puts it on iCE40 in block RAM when it has at least
    64 bits per block it would take (its memory_libmap weighs a block, cost 64 in ice40/brams.txt,
    against a flip-flop per bit; in the digits CNN: 10 × 8 and 6 × 16 bits in a block, 6 × 8
    bits in flip-flops, and in the digits MLP 2 × 256 bits, 16 blocks, in flip-flops; measured), and
    on ECP5 in distributed RAM when shallow (66 words, measured), block RAM when deep (8,002
    words, measured; the depth between is this estimator's choice)."""
    if not mem.fifo:
        return mem.style == "block"
    depth = TARGETS[target]["fifo_bram_depth"]
    return mem.depth >= depth if depth else mem.bits >= FIFO_BLOCK_MIN_BITS * blocks(mem.width, mem.depth, target)


def lut_ram_luts(mem):
    """ECP5 distributed RAM: a TRELLIS_DPR16X4 holds 16 words × 4 bits and counts as 2 LUTs."""
    return 2 * -(-mem.depth // 16) * -(-mem.width // 4)


def logic_rom_luts(mem):
    """A ROM in logic: about one 4-input LUT per output bit per 16 words, plus the mux tree;
    none for two words (each bit is 0, 1, the address bit or its inverse, which the LUT
    reading it absorbs)."""
    if mem.depth <= 2:
        return 0
    per_bit = -(-mem.depth // 16)
    return mem.width * (per_bit + max(per_bit - 1, 0) // 3)


def dsp_kernels(dataflow, target):
    """The names of the kernels whose products go to DSP blocks on ``target``: DSPs first, in
    stream order, each kernel whole while the device's ``dsp_products`` last; the products of
    the rest in LUTs (qloom.synth tells Yosys which is which)."""
    left, names = TARGETS[target]["dsp_products"], set()
    for k in dataflow.all_kernels:
        need = k.resources(TARGETS[target]["family"])["dsp"] if k.multipliers else 0
        if 0 < need <= left:
            names.add(k.name)
            left -= need
    return frozenset(names)


def estimate_kernel(k, dataflow, target, in_dsp=None):
    """LUT, FF, DSP and block RAMs of one kernel of ``dataflow`` on ``target`` (``in_dsp``: the
    names dsp_kernels gives, computed when not passed)."""
    t = TARGETS[target]
    if in_dsp is None:
        in_dsp = dsp_kernels(dataflow, target)
    r = k.resources(t["family"])
    total = {"lut": r["lut"], "ff": r["ff"], "dsp": 0, "bram": 0}
    if k.name in in_dsp:        # the products (Kernel.multiplier_luts) in DSP blocks
        total["lut"] -= k.multiplier_luts
        total["dsp"] += r["dsp"]
    else:
        total["lut"] += round(k.multiplier_luts * (t["multiplier_scale"] - 1))
    for mem in k.memories():
        if in_bram(mem, target):
            total["bram"] += blocks(mem.width, mem.depth, target)
        elif not mem.fifo:
            total["lut"] += logic_rom_luts(mem)
            total["ff"] += mem.bits if mem.writable else 0
        elif t["fifo_bram_depth"] > 0:
            total["lut"] += lut_ram_luts(mem)
        else:                   # iCE40 has no distributed RAM: a flip-flop and about a LUT per bit
            total["lut"] += mem.bits
            total["ff"] += mem.bits
    return total


def estimate(dataflow, target):
    """LUT, FF, DSP and block RAMs of ``dataflow`` on ``target``."""
    total = {"lut": 0, "ff": 0, "dsp": 0, "bram": 0}
    in_dsp = dsp_kernels(dataflow, target)
    for k in dataflow.all_kernels:
        for key, v in estimate_kernel(k, dataflow, target, in_dsp).items():
            total[key] += v
    return total


def error_percent(estimated, measured):
    """(estimated − measured) / measured in percent; None when nothing was measured."""
    if measured == 0:
        return None if estimated == 0 else float("inf")
    return 100.0 * (estimated - measured) / measured
