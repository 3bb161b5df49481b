"""Memories and per-target resource estimates.

Where each ROM lives is decided here, not left to synthesis: a ROM of at least
``BLOCK_MIN_DEPTH`` words and ``BLOCK_MIN_BITS`` bits goes to block RAM, anything smaller to
logic, and the circuit carries that choice as a ``ram_style`` attribute that Yosys obeys.  A
RAM (a buffer, a line buffer, FIFO storage) carries no attribute: Yosys's memory_libmap puts it
where its cost model says is cheapest — flip-flops, distributed RAM (ECP5) or block RAM — and
``placement`` follows that model, so the block-RAM estimate is a count of blocks of the
target's geometry, not a guess."""
from dataclasses import dataclass

from .targets import TARGETS   # noqa: F401 (the registry, read here and by the estimator's callers)

BLOCK_MIN_DEPTH = 64
BLOCK_MIN_BITS = 1024
RAM_BLOCK_MIN_BITS = 128
# memory_libmap's soft-logic score of a block RAM's ports (2 a point; our read ports take
# between 72 and 80 flip-flop bits' worth with one iCE40 block: 9 × 8 bits stay in flip-flops,
# 10 × 8 go to a block, measured)
BLOCK_PORT_COST = 8


@dataclass(frozen=True)
class Memory:
    name: str
    width: int
    depth: int
    fifo: bool = False          # storage of an amaranth.lib.fifo queue (no style attribute)
    writable: bool = False      # a RAM (else a ROM)
    pinned: bool = False        # a RAM in block RAM wherever it is worth one (see style)
    spram: bool = False         # a ROM in the target's SPRAMs, loaded at run time (hdl.spram)

    @property
    def bits(self):
        return self.width * self.depth

    @property
    def worth_a_block(self):
        """A RAM of two words and ``RAM_BLOCK_MIN_BITS`` or more."""
        return self.writable and self.depth > 1 and self.bits >= RAM_BLOCK_MIN_BITS

    @property
    def style(self):
        """"block" or "logic" (a ROM: its ram_style attribute), "spram" (a ROM in SPRAM), "auto"
        (a RAM: Yosys chooses; a pinned RAM worth a block: "block")."""
        if self.spram:
            return "spram"
        if self.pinned and self.worth_a_block:
            return "block"
        if self.fifo or self.writable:
            return "auto"
        return "block" if self.depth >= BLOCK_MIN_DEPTH and self.bits >= BLOCK_MIN_BITS else "logic"


def block_bits(memories):
    """Bits of ``memories`` in block RAM on no target in particular (a kernel's own estimate):
    the ROMs styled so, and the RAMs worth a block."""
    return sum(m.bits for m in memories if m.style == "block" or m.worth_a_block)


def blocks(width, depth, target):
    """Block RAMs for a width × depth memory: the cheapest configuration, tiled."""
    return min(-(-width // w) * -(-depth // d) for w, d in TARGETS[target]["bram_shapes"])


def spram_geometry(width, depth):
    """(lanes, tiles, rows, banks) of a width × depth memory in 16 × 16,384 SPRAMs: words a
    16-bit row (a power of two), SPRAMs side by side, rows, banks (mirrors hdl.spram.geometry)."""
    lanes = 1
    while 2 * lanes * width <= 16:
        lanes *= 2
    rows = -(-depth // lanes)
    return lanes, -(-lanes * width // 16), rows, -(-rows // 16384)


def spram_blocks(width, depth):
    """SPRAMs a width × depth memory takes: tiles × banks (hdl.spram.geometry)."""
    _, tiles, _, banks = spram_geometry(width, depth)
    return tiles * banks


def placement(mem, target):
    """Where ``mem`` goes on ``target``: "block", "distributed", "logic" or "spram".  A ROM goes
    where its style says; a RAM (style "auto") where Yosys's memory_libmap finds it cheapest: a bit
    in flip-flops costs 1, a block RAM ``bram_cost`` (64 on iCE40, 128 on ECP5: its brams
    files) plus BLOCK_PORT_COST, distributed RAM ``lut_ram`` = (words, bits, cost) a cell
    (16 × 4, 4 on ECP5) plus half a unit per bit of the read multiplexer and per write enable
    across the cells' depth.  Measured with Yosys: FIFO storage of 10 × 8 and 6 × 16 bits in a
    block and 6 × 8 and 2 × 256 in flip-flops on iCE40, and a 9 × 8 MVU buffer in flip-flops;
    66 words in distributed and 8,002 in block RAM on ECP5; a one-word RAM in flip-flops
    whatever its attribute."""
    if mem.style != "auto":
        return mem.style
    t = TARGETS[target]
    costs = {"logic": mem.bits,
             "block": t["bram_cost"] * blocks(mem.width, mem.depth, target) + BLOCK_PORT_COST}
    if t["lut_ram"]:
        words, bits, cost = t["lut_ram"]
        rows = -(-mem.depth // words)
        costs["distributed"] = cost * rows * -(-mem.width // bits) + 0.5 * (rows - 1) * mem.width + 0.5 * rows
    return min(costs, key=lambda k: (costs[k], k != "logic"))


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


def dsp_kernels(dataflow, target, planning=False):
    """The names of the kernels whose products go to DSP blocks on ``target``: DSPs first, in
    stream order, each kernel whole while the device's ``dsp_products`` blocks last; the
    products of the rest in LUTs (qloom.synth tells Yosys which is which).  A kernel's need is
    dsp_blocks with its own ``dsp_cell``, or, ``planning`` which kernels will instantiate the
    target's cell (dataflow.dsp_cells), with that cell where its operands fit it: the same
    names either way, as a kernel left out needs no fewer blocks without the cell.  Where the
    target has a cell, the products of a kernel whose operands do not fit it stay in LUTs (a
    design then never mixes instantiated and inferred blocks: qloom.synth)."""
    left, names = TARGETS[target]["dsp_products"], set()
    for k in dataflow.all_kernels:
        fitting = dsp_cell_for(k, target)
        if not k.multipliers or (fitting is None and TARGETS[target]["dsp_cell"] and hasattr(k, "dsp_cell")):
            continue
        cell = fitting if planning else getattr(k, "dsp_cell", None)
        need = dsp_blocks(k, target, cell)
        if 0 < need <= left:
            names.add(k.name)
            left -= need
    return frozenset(names)


def dsp_cell_for(k, target):
    """The primitive kernel ``k`` (an MVU or depthwise unit) would instantiate its products as
    on ``target`` (its "dsp_cell"), or None: the target has none, or the operands do not fit
    its ports (mirrors hdl.dsp.fits)."""
    t = TARGETS[target]
    if t["dsp_cell"] is None or not hasattr(k, "dsp_cell"):
        return None
    ports, signed_ports = t["dsp_ports"]
    fits = k.weight_bits <= ports and k.in_code.bits + (signed_ports and not k.in_code.signed) <= ports
    return t["dsp_cell"] if fits else None


def dsp_blocks(k, target, cell=None):
    """DSP blocks the products of ``k`` take on ``target``: two a block where they are
    instantiated as ``cell`` and it packs two products of operands of at most
    ``dsp_pair_bits`` (SB_MAC16's 8×8 mode; hdl.dsp.per_block), else Kernel.resources' count
    (a block a product, as Yosys infers them)."""
    pair = TARGETS[target]["dsp_pair_bits"]
    if cell is not None and pair and max(k.weight_bits, k.in_code.bits) <= pair:
        return -(-k.multipliers // 2)
    return k.resources(TARGETS[target]["family"])["dsp"]


def estimate_kernel(k, dataflow, target, in_dsp=None):
    """LUT, FF, DSP, block RAMs and SPRAMs of one kernel of ``dataflow`` on ``target`` (``in_dsp``: the
    names dsp_kernels gives, computed when not passed)."""
    t = TARGETS[target]
    if in_dsp is None:
        in_dsp = dsp_kernels(dataflow, target)
    r = k.resources(t["family"])
    total = {"lut": r["lut"], "ff": r["ff"], "dsp": 0, "bram": 0, "spram": 0}
    if k.name in in_dsp:        # the products (Kernel.multiplier_luts) in DSP blocks
        total["lut"] -= k.multiplier_luts
        total["dsp"] += dsp_blocks(k, target, getattr(k, "dsp_cell", None))
    else:
        total["lut"] += round(k.multiplier_luts * (t["multiplier_scale"] - 1))
    for mem in k.memories():
        where = placement(mem, target)
        if where == "block":
            total["bram"] += blocks(mem.width, mem.depth, target)
        elif where == "spram":
            total["spram"] += spram_blocks(mem.width, mem.depth)
        elif where == "distributed":
            total["lut"] += lut_ram_luts(mem)
        elif mem.style == "logic":
            total["lut"] += logic_rom_luts(mem)
        else:                   # a RAM in flip-flops: a flip-flop and, past one word, about a LUT a bit
            total["lut"] += mem.bits if mem.depth > 1 else 0
            total["ff"] += mem.bits
    return total


def estimate(dataflow, target):
    """LUT, FF, DSP, block RAMs and SPRAMs of ``dataflow`` on ``target``."""
    total = {"lut": 0, "ff": 0, "dsp": 0, "bram": 0, "spram": 0}
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
