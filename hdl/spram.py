"""Weight memories in the iCE40 UP5K's single-port RAMs (SB_SPRAM256KA, 16 bits × 16,384
words, four on the chip), loaded at run time, and the wrapper that loads them before the
first frame.

A SPRAM has no initial contents in the bitstream (unlike block RAM), so weights placed there
arrive through a ``load`` stream of 16-bit words after reset: each memory takes its image
(``image``) in stream order of the units, and the design accepts no input beat until every
memory is full (``Loaded``).  A reset empties them again (the words stay in the RAMs, but the
design cannot know that they are the right ones).

A memory of ``width``-bit words packs ``lanes`` words a 16-bit row where they fit (two 8-bit
weights, four 4-bit), spans ``tiles`` SPRAMs side by side for wider words and ``banks`` of
16,384 rows for deeper ones (``geometry``).  A read is a ``rom``'s (hdl.util): the word at
``addr`` one cycle after ``en``, held while ``en`` is low; the output register is the SPRAM's
own.

The Verilog names the primitive, which Yosys's iCE40 flow and Lattice's tools know; the
simulators get the model below, guarded by ``ifndef SYNTHESIS``, and amaranth.sim, which runs
no primitive, the same memory in Amaranth (``MODEL``)."""
from amaranth.hdl import Cat, ClockSignal, Const, Instance, Module, Mux, Signal, unsigned
from amaranth.lib import memory, stream, wiring
from amaranth.lib.wiring import In, Out

from .util import instantiated_models

CELL = "SB_SPRAM256KA"
MODEL = "model"
WIDTH, DEPTH = 16, 16384
LOAD = unsigned(WIDTH)


def geometry(width, depth):
    """(lanes, tiles, rows, banks) of a ``width`` × ``depth`` memory: words a row (a power of
    two whose words fit 16 bits, else 1), SPRAMs side by side, rows, and banks of DEPTH rows;
    it takes tiles × banks SPRAMs (mirrored by mapper.resources.spram_geometry)."""
    lanes = 1
    while 2 * lanes * width <= WIDTH:
        lanes *= 2
    rows = -(-depth // lanes)
    return lanes, -(-lanes * width // WIDTH), rows, -(-rows // DEPTH)


def image(words, width):
    """The 16-bit load words of a memory holding ``words``: row by row, each row's 16-bit
    slices from its low end (a row: ``lanes`` words, the first in the low bits)."""
    lanes, tiles, rows, _ = geometry(width, len(words))
    mask = (1 << width) - 1
    out = []
    for r in range(rows):
        row = 0
        for k, w in enumerate(words[r * lanes:(r + 1) * lanes]):
            row |= (int(w) & mask) << (k * width)
        out += [(row >> (WIDTH * t)) & 0xFFFF for t in range(tiles)]
    return out


def load_signature():
    return stream.Signature(LOAD)


def loaded_rom(m, name, width, depth, addr, en, load, cell=CELL):
    """A ``width`` × ``depth`` memory in SPRAMs (``cell``: CELL, or MODEL for amaranth.sim) as
    submodules ``name``_b<bank>_t<tile>, filled by the stream ``load`` (its ready stays high
    until the memory is full), read like hdl.util.rom once full: returns the read data."""
    if cell not in (CELL, MODEL):
        raise ValueError(f"unknown SPRAM cell {cell!r}; known: {CELL}")
    lanes, tiles, rows, banks = geometry(width, depth)
    full = Signal(name=f"{name}_full")
    l_row = Signal(range(max(rows, 2)), name=f"{name}_load_row")
    l_tile = Signal(range(max(tiles, 2)), name=f"{name}_load_tile")
    take = Signal(name=f"{name}_load_take")
    m.d.comb += [load.ready.eq(~full), take.eq(load.valid & ~full)]
    with m.If(take):
        m.d.sync += l_tile.eq(Mux(l_tile == tiles - 1, 0, l_tile + 1))
        with m.If(l_tile == tiles - 1):
            m.d.sync += l_row.eq(l_row + 1)
            with m.If(l_row == rows - 1):
                m.d.sync += full.eq(1)

    row = Signal(range(max(rows, 2)), name=f"{name}_row")
    lane_bits = (lanes - 1).bit_length()
    m.d.comb += row.eq(addr >> lane_bits)
    read = Signal(name=f"{name}_read")
    m.d.comb += read.eq(full & en)
    bank_q = Signal(range(max(banks, 2)), name=f"{name}_bank")
    lane_q = Signal(range(max(lanes, 2)), name=f"{name}_lane")
    with m.If(read):
        m.d.sync += [bank_q.eq(row >> 14), lane_q.eq(addr[:lane_bits] if lane_bits else 0)]
    a = Signal(14, name=f"{name}_addr")
    m.d.comb += a.eq(Mux(full, row[:14], l_row[:14]))
    outs = []
    for b in range(banks):
        tiles_out = []
        for t in range(tiles):
            part = f"{name}_b{b}_t{t}"
            wren, cs, q = Signal(name=f"{part}_wren"), Signal(name=f"{part}_cs"), Signal(16, name=f"{part}_q")
            m.d.comb += [wren.eq(take & ((l_row >> 14) == b) & (l_tile == t)),
                         cs.eq(wren | (read & ((row >> 14) == b)))]
            _cell(m, part, cell, a, load.payload, wren, cs, q, min(DEPTH, rows - b * DEPTH))
            tiles_out.append(q)
        outs.append(Signal(16 * tiles, name=f"{name}_b{b}_row"))
        m.d.comb += outs[-1].eq(Cat(*tiles_out))
    row_q = Signal(16 * tiles, name=f"{name}_row_q")
    m.d.comb += row_q.eq(outs[0])
    for b in range(1, banks):
        with m.If(bank_q == b):
            m.d.comb += row_q.eq(outs[b])
    data = Signal(width, name=f"{name}_data")
    m.d.comb += data.eq(row_q.word_select(lane_q, width) if lanes > 1 else row_q[:width])
    return data


def _cell(m, name, cell, addr, data, wren, cs, q, depth):
    if cell == MODEL:
        mem = memory.Memory(shape=16, depth=depth, init=[])
        m.submodules[name] = mem
        wp, rp = mem.write_port(), mem.read_port()
        m.d.comb += [wp.addr.eq(addr), wp.data.eq(data), wp.en.eq(wren),
                     rp.addr.eq(addr), rp.en.eq(cs & ~wren), q.eq(rp.data)]
        return
    m.submodules[name] = Instance(
        CELL, i_ADDRESS=addr, i_DATAIN=data, i_MASKWREN=Const(0b1111, 4), i_WREN=wren,
        i_CHIPSELECT=cs, i_CLOCK=ClockSignal(), i_STANDBY=Const(0, 1), i_SLEEP=Const(0, 1),
        i_POWEROFF=Const(1, 1), o_DATAOUT=q)


def loaders(component):
    """The units inside ``component`` (a Chain, a Residual, a unit) that take a ``load``
    stream, in stream order (a residual block's first path, then its second)."""
    from .join import Residual
    from .streams import Chain
    if isinstance(component, Chain):
        return [u for unit in component.units for u in loaders(unit)]
    if isinstance(component, Residual):
        return [u for path in component.paths for u in loaders(path)]
    return [component] if "load" in component.signature.members else []


class Loaded(wiring.Component):
    """``design`` (stream members i and o) whose SPRAM memories (``loaders``) are filled
    through ``load`` first: the words go to each in turn (their ``load_image``, in order), and
    ``i`` accepts no beat until all are full."""

    def __init__(self, design, units):
        if not units:
            raise ValueError("a Loaded design needs a unit to load")
        self.design, self.units = design, list(units)
        super().__init__({"i": In(design.signature.members["i"].signature.flip()),
                          "o": Out(design.signature.members["o"].signature),
                          "load": In(load_signature())})

    def elaborate(self, platform):
        m = Module()
        m.submodules.design = d = self.design
        before, ready = Const(1), Const(0)
        for u in self.units:
            m.d.comb += [u.load.payload.eq(self.load.payload), u.load.valid.eq(self.load.valid & before)]
            ready = ready | (u.load.ready & before)
            before = before & ~u.load.ready
        loaded = Signal()
        m.d.comb += [loaded.eq(before), self.load.ready.eq(ready),
                     d.i.payload.eq(self.i.payload), d.i.valid.eq(self.i.valid & loaded),
                     self.i.ready.eq(d.i.ready & loaded)]
        wiring.connect(m, d.o, wiring.flipped(self.o))
        return m


SIM_MODELS = {CELL: """
`ifndef SYNTHESIS
// qloom's simulation model of the iCE40 SB_SPRAM256KA as hdl/spram.py uses it: STANDBY and
// SLEEP low, POWEROFF high (powered); a write (CHIPSELECT and WREN) stores the nibbles
// MASKWREN selects and leaves DATAOUT undefined, a read (CHIPSELECT, WREN low) registers the
// word, and DATAOUT holds otherwise (Yosys's cells_sim.v, without the power states).
module SB_SPRAM256KA(input [13:0] ADDRESS, input [15:0] DATAIN, input [3:0] MASKWREN,
    input WREN, CHIPSELECT, CLOCK, STANDBY, SLEEP, POWEROFF, output reg [15:0] DATAOUT);
  reg [15:0] mem [0:16383];
  always @(posedge CLOCK) begin
    if (CHIPSELECT) begin
      if (!WREN) begin
        DATAOUT <= mem[ADDRESS];
      end else begin
        if (MASKWREN[0]) mem[ADDRESS][ 3: 0] <= DATAIN[ 3: 0];
        if (MASKWREN[1]) mem[ADDRESS][ 7: 4] <= DATAIN[ 7: 4];
        if (MASKWREN[2]) mem[ADDRESS][11: 8] <= DATAIN[11: 8];
        if (MASKWREN[3]) mem[ADDRESS][15:12] <= DATAIN[15:12];
        DATAOUT <= 16'bx;
      end
    end
  end
endmodule
`endif
"""}


def sim_models(verilog):
    """The simulation model of the SPRAM when ``verilog`` instantiates it, to append to it."""
    return instantiated_models(verilog, SIM_MODELS)
